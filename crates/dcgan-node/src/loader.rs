//! The data loader: batches prepared on background threads (no libtorch involved). Opening a
//! dataset (a directory walk, an IDX header) and waiting for a batch happen on threads of their
//! own, never on JavaScript's.
use crate::errors::Failure;
use crate::promise::on_own_thread;
use dcgan_core::data::loader::{Batch, Loader, LoaderOptions};
use dcgan_core::data::open_source;
use dcgan_core::options::{BatchOptions, DatasetSpec};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::Arc;

/// A prepared batch and where the data order stands after it.
#[napi(object)]
pub struct LoadedBatch {
    pub data: Float32Array,
    pub shape: Vec<u32>,
    pub epoch: u32,
    pub position: u32,
    pub warnings: Vec<String>,
}

fn loaded_batch(b: Batch) -> LoadedBatch {
    LoadedBatch {
        data: Float32Array::new(b.data),
        shape: b.shape.iter().map(|&d| d as u32).collect(),
        epoch: b.next.epoch as u32,
        position: b.next.position as u32,
        warnings: b.warnings,
    }
}

/// Shuffled batches of a built-in dataset, prepared ahead.
#[napi]
pub struct NativeLoader {
    inner: Arc<Loader>,
}

/// Opens a dataset (`spec` and `batch` as JSON: `DatasetSpec`, `BatchOptions`) on a thread of
/// its own and starts preparing batches. `mnistFile` is the IDX file of kind 'mnist'.
#[napi(ts_return_type = "Promise<NativeLoader>")]
pub fn open_loader<'e>(env: &'e Env, spec_json: String, batch_json: String, mnist_file: Option<String>) -> Result<Object<'e>> {
    on_own_thread(
        env,
        "openDataset",
        move || {
            let spec = DatasetSpec::from_json(&spec_json)?;
            let batch = BatchOptions::from_json(&batch_json)?;
            let source = open_source(&spec, mnist_file.map(PathBuf::from).as_deref())?;
            Loader::new(source, LoaderOptions::new(&spec, &batch))
        },
        |_env, loader| Ok(NativeLoader { inner: Arc::new(loader) }),
    )
}

#[napi]
impl NativeLoader {
    /// Images in the dataset (after `limit`).
    #[napi(getter)]
    pub fn length(&self) -> u32 {
        self.inner.len as u32
    }

    /// Full batches per epoch (a last partial batch is dropped).
    #[napi(getter)]
    pub fn batches_per_epoch(&self) -> u32 {
        self.inner.batches_per_epoch as u32
    }

    /// The next batch if one is already prepared (no thread hop), else null: `next()` is then
    /// needed only when training outruns the loader.
    #[napi]
    pub fn try_next(&self, env: Env) -> Result<Option<LoadedBatch>> {
        match self.inner.try_next() {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(loaded_batch(b))),
            Some(Err(e)) => Err(Failure::from(e).into_napi(&env)),
        }
    }

    /// The next batch, waited for on a thread of its own; rejects naming the file of an image
    /// that cannot be read.
    #[napi(ts_return_type = "Promise<LoadedBatch>")]
    pub fn next<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let inner = self.inner.clone();
        on_own_thread(env, "nextBatch", move || inner.next(), |_env, b| Ok(loaded_batch(b)))
    }
}

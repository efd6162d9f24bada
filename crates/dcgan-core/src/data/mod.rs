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
}

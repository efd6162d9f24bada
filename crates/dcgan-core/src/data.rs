//! Batches for training: images in a seeded shuffled order, scaled to [−1, 1] and resized to the
//! model's image size (bilinear, as torchvision's Resize).
use crate::error::{Error, Result};
use crate::idx::IdxImages;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

pub struct IdxBatches {
    images: IdxImages,
    image_size: i64,
    batch_size: usize,
    seed: u64,
    /// Epoch in progress and position in its order: all that is needed to continue exactly.
    pub epoch: u64,
    pub position: usize,
    order: Vec<u32>,
    limit: usize,
}

impl IdxBatches {
    pub fn new(images: IdxImages, image_size: i64, batch_size: usize, seed: u64, limit: Option<usize>) -> Result<IdxBatches> {
        if batch_size == 0 {
            return Err(Error::config("batchSize", "got 0; allowed: an integer from 1"));
        }
        let limit = limit.unwrap_or(images.count).min(images.count);
        if limit < batch_size {
            return Err(Error::config("batchSize", format!("got {batch_size}, but the dataset has only {limit} images")));
        }
        let mut b = IdxBatches { images, image_size, batch_size, seed, epoch: 0, position: 0, order: Vec::new(), limit };
        b.shuffle();
        Ok(b)
    }

    fn shuffle(&mut self) {
        self.order = (0..self.limit as u32).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ self.epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.order.shuffle(&mut rng);
    }

    /// Full batches per epoch (the last partial batch is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        self.limit / self.batch_size
    }

    /// The next batch, [batch, 1, S, S] in [−1, 1]; starts a new epoch when this one is used up.
    pub fn next_batch(&mut self) -> Result<Tensor> {
        if self.position + self.batch_size > self.limit {
            self.epoch += 1;
            self.position = 0;
            self.shuffle();
        }
        let len = self.images.image_len();
        let mut bytes = vec![0u8; self.batch_size * len];
        for (k, &i) in self.order[self.position..self.position + self.batch_size].iter().enumerate() {
            self.images.read_into(i as usize, &mut bytes[k * len..(k + 1) * len])?;
        }
        self.position += self.batch_size;
        let (r, c) = (self.images.rows as i64, self.images.cols as i64);
        let x = Tensor::f_from_slice(&bytes)?.f_view([self.batch_size as i64, 1, r, c])?.f_to_kind(Kind::Float)?;
        let x = x.f_div_scalar(127.5)?.f_sub_scalar(1.0)?;
        let s = self.image_size;
        if r == s && c == s {
            return Ok(x);
        }
        Ok(x.f_upsample_bilinear2d([s, s], false, None, None)?)
    }
}

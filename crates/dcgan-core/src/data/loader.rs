//! Shuffled batches from a `Source`, prepared ahead on background threads. Memory is bounded by
//! `prefetch` batches whatever the dataset's size; the order depends only on the seed, so a run
//! can continue exactly from an (epoch, position) pair.
use super::prepare::prepare_into;
use super::Source;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Clone, Debug)]
pub struct LoaderOptions {
    pub image_size: u32,
    pub channels: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// Skip images that fail to decode (with a warning) instead of failing.
    pub skip_corrupt: bool,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Threads decoding the images of one batch.
    pub workers: usize,
    /// Use only the first `limit` images.
    pub limit: Option<usize>,
    /// Where to begin: epoch and position in that epoch's order.
    pub start: Position,
    /// Make only this rank's part of each batch (data-parallel training): `batch_size` stays the
    /// global batch, whose order and positions are the same on every rank.
    pub shard: Option<Shard>,
}

/// Rank `rank` of `world`: rows [rank·n/world, (rank+1)·n/world) of each batch of n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    /// This rank's rows of a batch of `n` (a multiple of `world`).
    fn rows(&self, n: usize) -> std::ops::Range<usize> {
        let per = n / self.world;
        self.rank * per..(self.rank + 1) * per
    }
}

/// A place in the data order: `position` images of epoch `epoch`'s order have been used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub position: usize,
}

pub struct Batch {
    /// batch×channels×size×size values in [−1, 1] (this rank's rows only with a shard).
    pub data: Vec<f32>,
    pub shape: [usize; 4],
    /// The place in the data order after this batch.
    pub next: Position,
    /// Images skipped as corrupt while making this batch.
    pub warnings: Vec<String>,
}

impl Batch {
    /// Only `shard`'s rows.
    fn keep_rows(mut self, shard: Shard) -> Batch {
        let per_image: usize = self.shape[1..].iter().product();
        let rows = shard.rows(self.shape[0]);
        self.data = self.data[rows.start * per_image..rows.end * per_image].to_vec();
        self.shape[0] = rows.len();
        self
    }
}

pub struct Loader {
    rx: Mutex<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub len: usize,
    pub batches_per_epoch: usize,
}

/// The order of epoch `epoch`: a seeded shuffle, or 0..n.
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
    }
    order
}

/// The batches in flight (prefetched, being made, held by the caller) and an epoch's order must
/// fit the memory limit: a huge batch at 256 px fails here, not in an allocation that aborts.
/// Checks that the batches in flight and the epoch's order fit the memory limit; returns what
/// is left of it for decoding, shared among the threads that decode at once.
fn check_memory(opts: &LoaderOptions, len: usize) -> Result<u64> {
    let per_batch = crate::limits::product(&[opts.batch_size as u64, opts.channels as u64, (opts.image_size as u64).pow(2), 4]).unwrap_or(u64::MAX);
    let bytes = per_batch.saturating_mul(opts.prefetch as u64 + 2).saturating_add(len as u64 * 4);
    let s = opts.image_size;
    let what = format!("an epoch's order of {len} images with {} batches of {} images at {s}×{s} prepared ahead", opts.prefetch + 2, opts.batch_size);
    crate::limits::within_memory(bytes, &what, |m| Error::config("batchSize", m))?;
    if len > u32::MAX as usize {
        return Err(Error::Input(format!("the dataset has {len} images; at most {} are supported", u32::MAX)));
    }
    // A decoder's buffer may be converted once more (RGBA to RGB): twice the allocation each.
    let threads = opts.workers.clamp(1, opts.batch_size.max(1)) as u64;
    Ok(crate::limits::memory_limit()?.saturating_sub(bytes) / (2 * threads))
}

impl Loader {
    pub fn new(source: Arc<dyn Source>, opts: LoaderOptions) -> Result<Loader> {
        let len = opts.limit.unwrap_or(usize::MAX).min(source.len());
        if opts.batch_size == 0 {
            return Err(Error::config("batchSize", "got 0; allowed: an integer from 1"));
        }
        if len < opts.batch_size {
            return Err(Error::config("batchSize", format!("got {}, but the dataset has only {len} images", opts.batch_size)));
        }
        if let Some(shard) = opts.shard {
            if shard.world == 0 || shard.rank >= shard.world || opts.batch_size % shard.world != 0 {
                return Err(Error::Input(format!(
                    "cannot give rank {} of {} processes its share of batches of {}: the batch must split evenly",
                    shard.rank, shard.world, opts.batch_size
                )));
            }
        }
        if opts.start.position > len {
            return Err(Error::Input(format!("cannot start at position {} of an epoch of {len} images", opts.start.position)));
        }
        source.limit_decoding(check_memory(&opts, len)?);
        crate::executor::tune_malloc();
        let (tx, rx) = sync_channel(opts.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let producer = Producer { source, opts: opts.clone(), len, stop: stop.clone(), colour_seen: Mutex::new(ColourSeen::No) };
        let thread = std::thread::Builder::new()
            .name("dcgan-data".into())
            .spawn(move || producer.run(tx))
            .map_err(|e| Error::Input(format!("cannot start the data thread: {e}")))?;
        Ok(Loader { rx: Mutex::new(rx), stop, thread: Some(thread), len, batches_per_epoch: len / opts.batch_size })
    }

    /// The next batch if one is ready, without waiting; None when none is (or another call is
    /// already waiting for one).
    pub fn try_next(&self) -> Option<Result<Batch>> {
        let rx = self.rx.try_lock().ok()?;
        match rx.try_recv() {
            Ok(b) => Some(b),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Some(Err(Error::Input("the data loader has stopped after an earlier error".into())))
            }
        }
    }

    /// The next batch, waiting for it if it is not ready.
    pub fn next(&self) -> Result<Batch> {
        let rx = self.rx.lock().map_err(|_| Error::Input("the data loader is unusable after an internal error".into()))?;
        rx.recv().map_err(|_| Error::Input("the data loader has stopped after an earlier error".into()))?
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a producer waiting on a full channel, then wait for it to see `stop`.
        if let Ok(rx) = self.rx.lock() {
            while rx.try_recv().is_ok() {}
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Producer {
    source: Arc<dyn Source>,
    opts: LoaderOptions,
    len: usize,
    stop: Arc<AtomicBool>,
    colour_seen: Mutex<ColourSeen>,
}

/// Whether a colour image was made gray for a one-channel model: said once per loader, with the
/// batch it was first seen in, because a folder of photos trained at the default `channels: 1`
/// otherwise turns gray without a word.
enum ColourSeen {
    No,
    /// Seen at this source index, not yet told.
    At(usize),
    Told,
}

impl Producer {
    fn run(self, tx: SyncSender<Result<Batch>>) {
        let mut at = self.opts.start;
        let mut order = epoch_order(self.len, self.opts.seed, at.epoch, self.opts.shuffle);
        let mut made_this_epoch = at.position > 0;
        while !self.stop.load(Ordering::Relaxed) {
            if at.position + self.opts.batch_size > self.len {
                if !made_this_epoch {
                    let _ = tx.send(Err(Error::Input(format!(
                        "a whole epoch of {} images gave no batch of {}: too many images are unreadable",
                        self.len, self.opts.batch_size
                    ))));
                    return;
                }
                at = Position { epoch: at.epoch + 1, position: 0 };
                order = epoch_order(self.len, self.opts.seed, at.epoch, self.opts.shuffle);
                made_this_epoch = false;
                continue;
            }
            match self.make_batch(&order, &mut at) {
                Ok(Some(batch)) => {
                    made_this_epoch = true;
                    // A closed channel means the loader was dropped.
                    if tx.send(Ok(batch)).is_err() {
                        return;
                    }
                }
                Ok(None) => continue, // the epoch ran out while skipping corrupt images
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    }

    /// Prepares the next batch from `order`, advancing `at`; None if the epoch ran out first.
    /// With a shard, only its rows are decoded, unless corrupt images are skipped: which images
    /// fill the batch then depends on the whole batch, so every rank decodes all of it (and keeps
    /// the same rows as the others would compute).
    fn make_batch(&self, order: &[u32], at: &mut Position) -> Result<Option<Batch>> {
        match self.opts.shard {
            Some(shard) if !self.opts.skip_corrupt => self.make_shard(order, at, shard),
            Some(shard) => Ok(self.make_whole_batch(order, at)?.map(|b| b.keep_rows(shard))),
            None => self.make_whole_batch(order, at),
        }
    }

    /// This rank's rows of the next batch, decoded alone.
    fn make_shard(&self, order: &[u32], at: &mut Position, shard: Shard) -> Result<Option<Batch>> {
        let o = &self.opts;
        if at.position + o.batch_size > self.len {
            return Ok(None);
        }
        let rows = shard.rows(o.batch_size);
        let per_image = o.channels * (o.image_size * o.image_size) as usize;
        let mut data = vec![0f32; rows.len() * per_image];
        let indices = &order[at.position + rows.start..at.position + rows.end];
        for r in self.prepare_parallel(indices, &mut data) {
            r?;
        }
        at.position += o.batch_size;
        let shape = [rows.len(), o.channels, o.image_size as usize, o.image_size as usize];
        let mut warnings = Vec::new();
        self.tell_colour(&mut warnings);
        Ok(Some(Batch { data, shape, next: self.after(at), warnings }))
    }

    /// After an epoch's last full batch, the order stands at the start of the next epoch.
    fn after(&self, at: &Position) -> Position {
        if at.position + self.opts.batch_size > self.len { Position { epoch: at.epoch + 1, position: 0 } } else { *at }
    }

    fn make_whole_batch(&self, order: &[u32], at: &mut Position) -> Result<Option<Batch>> {
        let o = &self.opts;
        let per_image = o.channels * (o.image_size * o.image_size) as usize;
        let mut data = vec![0f32; o.batch_size * per_image];
        let mut warnings = Vec::new();
        let mut filled = 0;
        while filled < o.batch_size {
            let want = o.batch_size - filled;
            if at.position + want > self.len {
                return Ok(None);
            }
            let indices = &order[at.position..at.position + want];
            let results = self.prepare_parallel(indices, &mut data[filled * per_image..]);
            at.position += want;
            // Failed slots are compacted away; later candidates fill the batch.
            let mut write = filled;
            for (k, r) in results.into_iter().enumerate() {
                match r {
                    Ok(()) => {
                        if write != filled + k {
                            data.copy_within((filled + k) * per_image..(filled + k + 1) * per_image, write * per_image);
                        }
                        write += 1;
                    }
                    Err(e) if o.skip_corrupt => warnings.push(self.skipped(indices[k] as usize, &e)),
                    Err(e) => return Err(e),
                }
            }
            filled = write;
        }
        self.tell_colour(&mut warnings);
        let shape = [o.batch_size, o.channels, o.image_size as usize, o.image_size as usize];
        Ok(Some(Batch { data, shape, next: self.after(at), warnings }))
    }

    /// "skipped <image>: <why>", naming the image once where the error already starts with it.
    fn skipped(&self, index: usize, e: &Error) -> String {
        let (what, why) = (self.source.describe(index), e.to_string());
        if why.starts_with(&what) { format!("skipped {why}") } else { format!("skipped {what}: {why}") }
    }

    fn saw_colour(&self, index: usize) {
        if let Ok(mut seen) = self.colour_seen.lock() {
            if matches!(*seen, ColourSeen::No) {
                *seen = ColourSeen::At(index);
            }
        }
    }

    /// The warning for the first colour image made gray, once.
    fn tell_colour(&self, warnings: &mut Vec<String>) {
        let Ok(mut seen) = self.colour_seen.lock() else { return };
        if let ColourSeen::At(index) = *seen {
            *seen = ColourSeen::Told;
            warnings.push(format!(
                "{} is in colour, but the model has 1 channel: colour images are converted to gray \
                 (channels: 3, dcgan train --channels 3, trains on colour)",
                self.source.describe(index)
            ));
        }
    }

    /// Decodes and prepares `indices` into consecutive slots of `out`, on `workers` threads.
    fn prepare_parallel(&self, indices: &[u32], out: &mut [f32]) -> Vec<Result<()>> {
        let o = &self.opts;
        let per_image = o.channels * (o.image_size * o.image_size) as usize;
        // Threads are started per batch: not worth it for a batch of little work.
        let small = indices.len() * per_image < 1 << 16;
        let workers = if small { 1 } else { o.workers.clamp(1, indices.len().max(1)) };
        let chunk = indices.len().div_ceil(workers);
        let mut results: Vec<Result<()>> = Vec::with_capacity(indices.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = indices
                .chunks(chunk)
                .zip(out.chunks_mut(chunk * per_image))
                .map(|(idx, slots)| {
                    s.spawn(move || {
                        idx.iter()
                            .zip(slots.chunks_mut(per_image))
                            .map(|(&i, slot)| {
                                let img = self.source.read(i as usize)?;
                                if o.channels == 1 && img.channels == 3 {
                                    self.saw_colour(i as usize);
                                }
                                prepare_into(&img, o.channels, o.image_size, slot);
                                Ok(())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                results.extend(h.join().unwrap_or_else(|_| vec![Err(Error::Input("a data thread panicked".into()))]));
            }
        });
        results
    }
}

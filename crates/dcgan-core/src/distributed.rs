//! Data-parallel training with DistributedDataParallel's semantics, on libtorch's own c10d engine
//! (a `TCPStore` rendezvous and a `ProcessGroupGloo`, through csrc/distributed.cpp).
//!
//! Each process holds both networks whole and trains on its own shard of every batch. The step
//! calls three hooks here, all no-ops until [`init`] has joined a group:
//! - [`step_vote`]: at the start of each step, one all-reduce carries every rank's ballot (stop,
//!   failed outside a step, refused its shard) and rank 0's BatchNorm running statistics, which
//!   then overwrite the others' (DDP's default `broadcast_buffers=True`, which DDP does before every
//!   forward; rank 0's values, the ones a checkpoint holds, are the same either way, because a
//!   training-mode forward does not read them). One exchange instead of three: on two CPU processes
//!   over loopback TCP each costs about 1.3 ms;
//! - [`average_gradients`]: before each Adam update, the network's flat gradient buffer is
//!   averaged over the ranks (DDP's all-reduce: each rank divides by the world size, then sum);
//! - [`local_latent`]: every rank draws the noise of the whole (global) batch from the shared
//!   random generator and keeps its own slice, so that the generator's state stays the same on
//!   every rank and equals a one-process run's with the same global batch.
//!
//! [`sync_from_rank0`] copies rank 0's whole state (weights, buffers, Adam moments and step,
//! random generator) to the others, as DDP broadcasts the module's state when it is built.
//! The group lives for the process, as torch.distributed's default group does. Backend: Gloo,
//! which also handles CUDA tensors (through host memory); NCCL is not built.
use crate::error::{Error, Result};
use crate::gan::Gan;
use crate::model::Network;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;
use tch::{Kind, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn dcgan_dist_init(host: *const c_char, port: c_int, rank: c_int, world: c_int, timeout_ms: i64, out: *mut *mut c_void) -> *const c_char;
    fn dcgan_dist_free(group: *mut c_void);
    fn dcgan_dist_allreduce_mean(group: *mut c_void, t: *mut C_tensor) -> *const c_char;
    fn dcgan_dist_allreduce_sum(group: *mut c_void, t: *mut C_tensor) -> *const c_char;
    fn dcgan_dist_broadcast(group: *mut c_void, t: *mut C_tensor, root: c_int) -> *const c_char;
    fn dcgan_dist_barrier(group: *mut c_void) -> *const c_char;
    fn dcgan_sync_batch_norm(
        group: *mut c_void,
        x: *mut C_tensor,
        weight: *mut C_tensor,
        bias: *mut C_tensor,
        running_mean: *mut C_tensor,
        running_var: *mut C_tensor,
        momentum: f64,
        eps: f64,
        out: *mut *mut C_tensor,
    ) -> *const c_char;
}

/// Most processes in one group (a bound on what a caller may ask for, not a limit of Gloo's).
pub const MAX_WORLD_SIZE: i64 = 4096;

/// Where this process stands in a group and how to meet the others: torchrun's variables.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DistributedOptions {
    /// This process's rank, 0 ≤ rank < worldSize (torchrun's `RANK`).
    pub rank: i64,
    /// Number of processes (`WORLD_SIZE`).
    pub world_size: i64,
    /// Host of rank 0's store (`MASTER_ADDR`).
    pub master_addr: String,
    /// Port of rank 0's store (`MASTER_PORT`).
    pub master_port: i64,
    /// Seconds to wait for the others to join and for each collective (a dead or hung peer).
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// BatchNorm on the statistics of the whole global batch (torch.nn.SyncBatchNorm) instead of
    /// each rank's shard (DDP's default): training then equals one process on the global batch.
    #[serde(default)]
    pub sync_batch_norm: bool,
}

fn default_timeout() -> f64 {
    300.0
}

impl DistributedOptions {
    pub fn from_json(text: &str) -> Result<DistributedOptions> {
        let o: DistributedOptions = serde_json::from_str(text).map_err(|e| Error::Options(format!("invalid distributed options: {e}")))?;
        o.validate()?;
        Ok(o)
    }

    pub fn validate(&self) -> Result<()> {
        crate::options::in_range("distributed.worldSize", self.world_size, 1, MAX_WORLD_SIZE)?;
        crate::options::in_range("distributed.rank", self.rank, 0, self.world_size - 1)?;
        crate::options::in_range("distributed.masterPort", self.master_port, 1, 65535)?;
        if self.master_addr.is_empty() || self.master_addr.len() > 253 || self.master_addr.contains('\0') {
            return Err(Error::config("distributed.masterAddr", format!("got {:?}; allowed: a host name or IP address", self.master_addr)));
        }
        if !(self.timeout.is_finite() && (0.1..=86400.0).contains(&self.timeout)) {
            return Err(Error::config("distributed.timeout", format!("got {}; allowed: seconds from 0.1 to 86400", self.timeout)));
        }
        Ok(())
    }
}

/// A joined group: the shim's handle, and who we are in it.
struct Group {
    handle: *mut c_void,
    options: DistributedOptions,
}

// SAFETY: the handle is only used under GROUP's lock; c10d's objects are thread-safe to move.
unsafe impl Send for Group {}

impl Drop for Group {
    fn drop(&mut self) {
        unsafe { dcgan_dist_free(self.handle) }
    }
}

static GROUP: Mutex<Option<Group>> = Mutex::new(None);

fn group() -> std::sync::MutexGuard<'static, Option<Group>> {
    GROUP.lock().unwrap_or_else(|p| p.into_inner())
}

fn shim_message(err: *const c_char) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: the shim returns a NUL-terminated string that lives until its next call on this thread.
    let text = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    Some(without_backtrace(&text))
}

/// libtorch's message without its C++ backtrace and final punctuation.
fn without_backtrace(text: &str) -> String {
    let cut = ["\nException raised from", "\nframe #"].iter().filter_map(|m| text.find(m)).min().unwrap_or(text.len());
    text[..cut].trim_end().trim_end_matches(['.', '!']).to_string()
}

/// Joins the group that `options` describe (rank 0 hosts the store), waiting up to the timeout
/// for every rank. Joining the same group again is a no-op; another group while one is joined is
/// refused.
pub fn init(options: &DistributedOptions) -> Result<()> {
    options.validate()?;
    let mut slot = group();
    if let Some(g) = &*slot {
        if g.options == *options {
            return Ok(());
        }
        return Err(Error::Input(format!(
            "this process already is rank {} of {} (store {}:{}); one process joins one group",
            g.options.rank, g.options.world_size, g.options.master_addr, g.options.master_port
        )));
    }
    let o = options;
    let host = CString::new(o.master_addr.as_str()).map_err(|_| Error::config("distributed.masterAddr", "holds a NUL byte"))?;
    let timeout_ms = (o.timeout * 1000.0).round() as i64;
    let mut handle: *mut c_void = std::ptr::null_mut();
    let err = unsafe { dcgan_dist_init(host.as_ptr(), o.master_port as c_int, o.rank as c_int, o.world_size as c_int, timeout_ms, &mut handle) };
    if let Some(message) = shim_message(err) {
        return Err(Error::Distributed(format!(
            "rank {} of {} could not join the group at {}:{} within {} s: {message}. Check MASTER_ADDR and MASTER_PORT \
             (rank 0's host and a free port) and that all {} ranks were started",
            o.rank, o.world_size, o.master_addr, o.master_port, o.timeout, o.world_size
        )));
    }
    *slot = Some(Group { handle, options: options.clone() });
    Ok(())
}

/// Leaves the group (after every rank reached this point, so no rank is left waiting on a peer
/// that already left). A no-op when none was joined.
pub fn shutdown() -> Result<()> {
    let mut slot = group();
    let result = match &*slot {
        Some(g) => collective(g, "the final barrier", |h| unsafe { dcgan_dist_barrier(h) }),
        None => Ok(()),
    };
    *slot = None;
    result
}

/// (rank, world size) of the joined group.
pub fn rank_and_world() -> Option<(i64, i64)> {
    group().as_ref().map(|g| (g.options.rank, g.options.world_size))
}

fn collective(g: &Group, what: &str, call: impl FnOnce(*mut c_void) -> *const c_char) -> Result<()> {
    match shim_message(call(g.handle)) {
        None => Ok(()),
        Some(message) => Err(Error::Distributed(format!(
            "rank {} of {}: {what} failed: {message}. Another rank has stopped (it died, was killed or hangs: \
             the timeout is {} s); the last checkpoint rank 0 wrote is intact",
            g.options.rank, g.options.world_size, g.options.timeout
        ))),
    }
}

fn raw(t: &Tensor) -> *mut C_tensor {
    t.as_ptr() as *mut C_tensor
}

/// Training-mode BatchNorm of `x` over the group's global batch when the joined group asked for
/// synchronised BatchNorm (see csrc/distributed.cpp, SyncBatchNorm), the running statistics updated
/// in place; None otherwise, and the caller normalises with this rank's own batch.
pub fn sync_batch_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, running_mean: &Tensor, running_var: &Tensor, momentum: f64, eps: f64) -> Result<Option<Tensor>> {
    let handle = match &*group() {
        Some(g) if g.options.sync_batch_norm && g.options.world_size > 1 => g.handle,
        _ => return Ok(None),
    };
    batch_norm_over(handle, x, weight, bias, running_mean, running_var, momentum, eps).map(Some)
}

/// SyncBatchNorm over the ranks of `handle` (this process's batch alone when null).
#[allow(clippy::too_many_arguments)]
fn batch_norm_over(handle: *mut c_void, x: &Tensor, weight: &Tensor, bias: &Tensor, running_mean: &Tensor, running_var: &Tensor, momentum: f64, eps: f64) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // The group outlives the step's graph (it is left only after training): the backward that
    // all-reduces through `handle` runs within the same step.
    let err = unsafe { dcgan_sync_batch_norm(handle, raw(x), raw(weight), raw(bias), raw(running_mean), raw(running_var), momentum, eps, &mut out) };
    if let Some(message) = shim_message(err) {
        let (rank, world) = rank_and_world().unwrap_or((0, 1));
        return Err(Error::Distributed(format!(
            "rank {rank} of {world}: the synchronised BatchNorm failed: {message}. Another rank has stopped (it died, was killed or hangs)"
        )));
    }
    // SAFETY: on success the shim stored a new heap-allocated at::Tensor in `out`.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Averages a (contiguous) gradient buffer over the ranks, in place.
pub fn average_gradients(flat: &Tensor) -> Result<()> {
    match &*group() {
        Some(g) if g.options.world_size > 1 => collective(g, "the gradient all-reduce", |h| unsafe { dcgan_dist_allreduce_mean(h, raw(flat)) }),
        _ => Ok(()),
    }
}

/// What one rank brings to the vote at the start of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ballot {
    /// Stop after the last completed step (a signal, a dataset that ran out).
    pub stop: bool,
    /// This rank failed outside a step (reading its batch, a callback, a checkpoint).
    pub failed: bool,
    /// This rank's shard of the batch was refused by the step's checks.
    pub refused: bool,
}

/// What the ranks decided together at the start of a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Some rank asked to stop: no rank takes the step.
    pub stop: bool,
    /// The ranks that failed outside a step: the others stop too instead of waiting for them
    /// until the timeout.
    pub failed: Vec<i64>,
    /// The ranks whose shard was refused: every rank fails the step.
    pub refused: Vec<i64>,
}

/// The one exchange at the start of a step: a sum over the ranks of [stops, failed per rank,
/// refused per rank, rank 0's BatchNorm buffers (zeros elsewhere)], after which every rank holds
/// rank 0's buffers. Every rank of a group calls it once per step, with or without a batch to
/// train on, so that the exchanges pair up. Without a group: this rank's own ballot.
pub fn step_vote(gan: &Gan, ballot: Ballot) -> Result<Verdict> {
    let slot = group();
    let g = match &*slot {
        Some(g) if g.options.world_size > 1 => g,
        _ => {
            let alone = |flag: bool| if flag { vec![0] } else { vec![] };
            return Ok(Verdict { stop: ballot.stop, failed: alone(ballot.failed), refused: alone(ballot.refused) });
        }
    };
    let (rank, world) = (g.options.rank as usize, g.options.world_size as usize);
    let mut votes = vec![0f64; 1 + 2 * world];
    votes[0] = ballot.stop as u8 as f64;
    votes[1 + rank] = ballot.failed as u8 as f64;
    votes[1 + world + rank] = ballot.refused as u8 as f64;
    let buffers = buffers(gan);
    // Only rank 0's buffers count in the sum: the others send zeros without reading theirs.
    let values = if rank == 0 {
        pack_on_host(&buffers)?
    } else {
        Tensor::f_zeros([buffers.iter().map(|b| b.numel() as i64).sum::<i64>()], (Kind::Double, tch::Device::Cpu))?
    };
    let all = Tensor::f_cat(&[Tensor::f_from_slice(&votes)?, values], 0)?;
    collective(g, "the vote at the start of the step", |h| unsafe { dcgan_dist_allreduce_sum(h, raw(&all)) })?;
    if rank != 0 {
        unpack_from_host(&all, votes.len() as i64, &buffers)?;
    }
    let v: Vec<f64> = Vec::<f64>::try_from(&all.f_narrow(0, 0, votes.len() as i64)?)?;
    let ranks = |from: usize| (0..world).filter(|&r| v[from + r] > 0.0).map(|r| r as i64).collect();
    Ok(Verdict { stop: v[0] > 0.0, failed: ranks(1), refused: ranks(1 + world) })
}

/// What the C++ SyncBatchNorm puts before the message of a failed exchange (csrc/distributed.cpp).
pub const SYNC_BN_EXCHANGE_FAILED: &str = "dcgan: the synchronised BatchNorm's exchange failed: ";

/// A failed SyncBatchNorm exchange, from libtorch's error text (its backward runs inside autograd).
pub fn sync_bn_error(torch_message: &str) -> Error {
    let (rank, world) = rank_and_world().unwrap_or((0, 1));
    let start = torch_message.find(SYNC_BN_EXCHANGE_FAILED).map(|i| i + SYNC_BN_EXCHANGE_FAILED.len()).unwrap_or(0);
    let rest = &torch_message[start..];
    let first_line = rest.lines().next().unwrap_or_default();
    Error::Distributed(format!(
        "rank {rank} of {world}: the synchronised BatchNorm's exchange failed: {}. Another rank has stopped (it died, was killed or hangs)",
        without_backtrace(first_line)
    ))
}

/// The error of a rank whose peers refused their shards of the batch.
pub fn refused_error(refused: &[i64]) -> Error {
    peers_error(refused, "refused {its} part of the batch ({its} message says why); every rank stops at this step")
}

/// The error of a rank whose peers failed outside a step (for callers that cannot stop cleanly).
pub fn failed_error(failed: &[i64]) -> Error {
    peers_error(failed, "stopped with an error (see {its} output); every rank stops after the last completed step")
}

/// "rank R of W: rank(s) … <what>", with `{its}` in `what` made "its" or "their".
fn peers_error(ranks: &[i64], what: &str) -> Error {
    let (rank, world) = rank_and_world().unwrap_or((0, 1));
    let many = ranks.len() > 1;
    let what = what.replace("{its}", if many { "their" } else { "its" });
    Error::Distributed(format!("rank {rank} of {world}: rank{} {} {what}", if many { "s" } else { "" }, list(ranks)))
}

/// "0", "0 and 2", "0, 1 and 3".
fn list(ranks: &[i64]) -> String {
    let names: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Rank 0's values of each tensor into every rank's, in place; one broadcast for all of them.
fn broadcast_all(g: &Group, what: &str, tensors: &[Tensor]) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let all = pack_on_host(tensors)?;
    collective(g, what, |h| unsafe { dcgan_dist_broadcast(h, raw(&all), 0) })?;
    if g.options.rank != 0 {
        unpack_from_host(&all, 0, tensors)?;
    }
    Ok(())
}

/// Every tensor's values as float64, one after another in the order given, in one host tensor
/// (Gloo exchanges host memory). One copy per device, not one per tensor: on a GPU each copy to
/// the host waits for the stream.
fn pack_on_host(tensors: &[Tensor]) -> Result<Tensor> {
    let mut parts: Vec<Option<Tensor>> = tensors.iter().map(|_| None).collect();
    for (_, positions) in crate::device::by_device(tensors) {
        let flat = positions.iter().map(|&i| tensors[i].f_to_kind(Kind::Double)?.f_reshape([-1])).collect::<std::result::Result<Vec<_>, _>>()?;
        let sizes: Vec<i64> = flat.iter().map(|t| t.numel() as i64).collect();
        let on_host = Tensor::f_cat(&flat, 0)?.f_to_device(tch::Device::Cpu)?;
        for (&i, part) in positions.iter().zip(on_host.f_split_with_sizes(&sizes, 0)?) {
            parts[i] = Some(part);
        }
    }
    Ok(Tensor::f_cat(&parts.into_iter().flatten().collect::<Vec<_>>(), 0)?)
}

/// The inverse of `pack_on_host`: each tensor, in place, from consecutive values of the flat
/// float64 host tensor `all` from `offset` on; one copy to each device.
fn unpack_from_host(all: &Tensor, offset: i64, tensors: &[Tensor]) -> Result<()> {
    let mut starts = Vec::with_capacity(tensors.len());
    let mut next = offset;
    for t in tensors {
        starts.push(next);
        next += t.numel() as i64;
    }
    for (device, positions) in crate::device::by_device(tensors) {
        let sizes: Vec<i64> = positions.iter().map(|&i| tensors[i].numel() as i64).collect();
        let slices = positions.iter().zip(&sizes).map(|(&i, &n)| all.f_narrow(0, starts[i], n)).collect::<std::result::Result<Vec<_>, _>>()?;
        let on_device = Tensor::f_cat(&slices, 0)?.f_to_device(device)?;
        for (&i, part) in positions.iter().zip(on_device.f_split_with_sizes(&sizes, 0)?) {
            let t = &tensors[i];
            let part = part.f_view(t.size().as_slice())?.f_to_kind(t.kind())?;
            tch::no_grad(|| t.shallow_clone().f_copy_(&part))?;
        }
    }
    Ok(())
}

fn buffers(gan: &Gan) -> Vec<Tensor> {
    gan.generator.state().into_iter().chain(gan.discriminator.state()).filter(|s| s.2).map(|s| s.1).collect()
}

/// Noise for this rank's `n` images: the whole batch's noise drawn from `rng` (the same on every
/// rank), this rank's slice kept.
pub fn local_latent(gan: &Gan, rng: &mut ChaCha8Rng, n: i64) -> Result<Tensor> {
    let (rank, world) = rank_and_world().unwrap_or((0, 1));
    let z = gan.latent(rng, n * world)?;
    Ok(z.f_narrow(0, rank * n, n)?.f_contiguous()?)
}

/// The random generator's state as numbers that survive a float64 broadcast (32-bit pieces).
fn rng_words(rng: &ChaCha8Rng) -> Vec<f64> {
    let mut words: Vec<f64> = rng.get_seed().chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect();
    let stream = rng.get_stream();
    let pos = rng.get_word_pos();
    words.extend([stream as u32, (stream >> 32) as u32].map(|w| w as f64));
    words.extend((0..4).map(|i| ((pos >> (32 * i)) as u32) as f64));
    words
}

fn rng_from_words(w: &[f64]) -> ChaCha8Rng {
    use rand::SeedableRng;
    let word = |i: usize| w[i] as u32;
    let mut seed = [0u8; 32];
    for i in 0..8 {
        seed[4 * i..4 * i + 4].copy_from_slice(&word(i).to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(word(8) as u64 | (word(9) as u64) << 32);
    rng.set_word_pos((0..4).fold(0u128, |acc, i| acc | (word(10 + i) as u128) << (32 * i)));
    rng
}

/// What synchronised BatchNorm does not support: R1's gradient of a gradient would need the
/// exchanges themselves differentiated, and bf16 was never checked against PyTorch.
fn check_sync_batch_norm(gan: &Gan) -> Result<()> {
    if gan.train.r1_gamma > 0.0 {
        return Err(Error::config("distributed.syncBatchNorm", "cannot be combined with the R1 penalty (r1Gamma > 0): set one of them off"));
    }
    if gan.train.precision != crate::config::Precision::Fp32 {
        return Err(Error::config("distributed.syncBatchNorm", "runs in fp32 only: leave precision at 'fp32' or turn syncBatchNorm off"));
    }
    Ok(())
}

/// Rank 0's whole training state on every rank: what DDP does when it wraps a module, plus what
/// our step needs the same everywhere (Adam's moments and step, the noise generator).
pub fn sync_from_rank0(gan: &mut Gan) -> Result<()> {
    // A group's steps vote and exchange gradients, which no captured graph does; the device's
    // Adam count would also miss rank 0's step count set below.
    gan.stop_cuda_graph();
    let slot = group();
    let g = match &*slot {
        Some(g) if g.options.world_size > 1 => g,
        _ => return Ok(()),
    };
    if g.options.sync_batch_norm {
        check_sync_batch_norm(gan)?;
    }
    let mut tensors: Vec<Tensor> = gan.generator.state().into_iter().chain(gan.discriminator.state()).map(|s| s.1).collect();
    for opt in [&gan.opt_g, &gan.opt_d] {
        tensors.extend(opt.exp_avg.iter().chain(&opt.exp_avg_sq).map(|t| t.shallow_clone()));
    }
    let counters = Tensor::f_from_slice(&[gan.steps_done as f64, gan.opt_g.step as f64, gan.opt_d.step as f64])?;
    let rng = Tensor::f_from_slice(&rng_words(&gan.rng))?;
    tensors.extend([counters.shallow_clone(), rng.shallow_clone()]);
    broadcast_all(g, "the broadcast of rank 0's initial state", &tensors)?;
    let c: Vec<f64> = Vec::<f64>::try_from(&counters)?;
    (gan.steps_done, gan.opt_g.step, gan.opt_d.step) = (c[0] as i64, c[1] as i64, c[2] as i64);
    gan.rng = rng_from_words(&Vec::<f64>::try_from(&rng)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// (output, gradients of x, weight and bias for the loss Σ y·r, running mean, running var).
    fn bn_results(sync: bool, x: &Tensor, r: &Tensor) -> Vec<Tensor> {
        let c = x.size()[1];
        let x = x.detach().set_requires_grad(true);
        let w = Tensor::linspace(0.5, 1.5, c, (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let b = Tensor::linspace(-0.2, 0.3, c, (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let (rm, rv) = (Tensor::zeros([c], (Kind::Float, tch::Device::Cpu)), Tensor::ones([c], (Kind::Float, tch::Device::Cpu)));
        let y = if sync {
            batch_norm_over(std::ptr::null_mut(), &x, &w, &b, &rm, &rv, 0.1, 1e-5).unwrap()
        } else {
            x.batch_norm(Some(&w), Some(&b), Some(&rm), Some(&rv), true, 0.1, 1e-5, true)
        };
        let grads = Tensor::run_backward(&[(&y * r).sum(Kind::Float)], &[&x, &w, &b], false, false);
        std::iter::once(y.detach()).chain(grads).chain([rm, rv]).collect()
    }

    #[test]
    fn synchronised_batch_norm_of_one_process_is_batch_norm() {
        tch::manual_seed(11);
        // Offset and scaled so that the variance is not the trivial one; channels-last as the models run.
        let x = crate::ffi::channels_last(&(Tensor::randn([6, 5, 4, 3], (Kind::Float, tch::Device::Cpu)) * 3.0 + 2.0)).unwrap();
        let r = Tensor::randn([6, 5, 4, 3], (Kind::Float, tch::Device::Cpu));
        let names = ["output", "x grad", "weight grad", "bias grad", "running mean", "running var"];
        for ((name, ours), torch) in names.iter().zip(bn_results(true, &x, &r)).zip(bn_results(false, &x, &r)) {
            // float32 sums in another order: relative to the values' size (sums of 72 terms).
            let diff = (&ours - &torch).abs().max().double_value(&[]);
            let scale = 1.0 + torch.abs().max().double_value(&[]);
            assert!(diff <= 1e-6 * scale, "{name}: differs from batch_norm by {diff} (values up to {scale})");
        }
    }

    /// The order of the flat tensor is the order given (every rank must agree on it), whatever the
    /// grouping by device; integer counters and float buffers come back as they were.
    #[test]
    fn packed_state_comes_back_in_order() {
        let cpu = tch::Device::Cpu;
        let tensors = vec![
            Tensor::from_slice(&[1.5f32, -2.0, 3.25, 4.0]).reshape([2, 2]),
            Tensor::from_slice(&[7i64]),
            Tensor::from_slice(&[0.125f32, 9.0]),
            Tensor::from_slice(&[123_456_789i64, -3]),
        ];
        let flat = pack_on_host(&tensors).unwrap();
        let expected = [1.5, -2.0, 3.25, 4.0, 7.0, 0.125, 9.0, 123_456_789.0, -3.0];
        assert_eq!(Vec::<f64>::try_from(&flat).unwrap(), expected);
        // Behind two leading values, as the vote puts its ballots first.
        let all = Tensor::f_cat(&[Tensor::from_slice(&[0.0f64, 1.0]), flat], 0).unwrap();
        let targets: Vec<Tensor> = tensors.iter().map(|t| t.zeros_like()).collect();
        unpack_from_host(&all, 2, &targets).unwrap();
        for (t, back) in tensors.iter().zip(&targets) {
            assert_eq!((back.kind(), back.size(), back.device()), (t.kind(), t.size(), cpu));
            assert!(back.equal(t), "{back:?} != {t:?}");
        }
    }

    #[test]
    fn rng_state_survives_the_float_words() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        rng.set_stream(0x1234_5678_9abc_def0);
        let _: [u64; 5] = rng.random();
        let mut back = rng_from_words(&rng_words(&rng));
        assert_eq!(back.get_word_pos(), rng.get_word_pos());
        assert_eq!(back.random::<u64>(), rng.random::<u64>());
    }
}

//! The model class: a `Gan` that lives on the libtorch thread, and what JavaScript can read of it
//! without waiting for that thread.
use crate::errors::{sync, Failure};
use crate::promise::{guarded, on_torch_thread, same, Settle};
use crate::tensor::{from_js, integer, integer_in, shape_of, tensor_js, tensors_js, HostTensor};
use dcgan_core::device::{device_name, DeviceSpec};
use dcgan_core::options::GanOptions;
use dcgan_core::{executor, Error as CoreError, Gan, GroupStep, ModelConfig, NormMode, TrainOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// A model and what can be read without waiting for the libtorch thread.
pub struct Model {
    slot: Mutex<Slot>,
    steps_done: AtomicI64,
    pub model: ModelConfig,
    /// The optimiser settings as of the last call (they change on resume).
    train: Mutex<TrainOptions>,
    /// The device asked for, and the one in use once the model is built.
    requested: DeviceSpec,
    device: Mutex<Option<tch::Device>>,
}

/// A model is built on the libtorch thread after its constructor returns (the constructor must
/// not wait behind other models' work, nor for CUDA to initialise); every later call is queued
/// after that build.
enum Slot {
    Pending,
    Ready(Box<Gan>),
    Failed(Failure),
    /// `dispose()` freed the networks; every later call rejects.
    Disposed,
}

pub type Shared = Arc<Model>;

impl Model {
    fn ready(gan: Gan) -> Shared {
        Arc::new(Model {
            steps_done: AtomicI64::new(gan.steps_done),
            model: gan.model.clone(),
            train: Mutex::new(gan.train.clone()),
            // Only shown while a model is being built; a loaded one is built.
            requested: DeviceSpec::Cpu,
            device: Mutex::new(Some(gan.device)),
            slot: Mutex::new(Slot::Ready(Box::new(gan))),
        })
    }

    fn device_name(&self) -> String {
        match *self.device.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(d) => device_name(d),
            None => self.requested.name(),
        }
    }
}

/// Runs `f` on the model; must be called on the libtorch thread.
pub fn with_gan<T>(shared: &Shared, f: impl FnOnce(&mut Gan) -> dcgan_core::Result<T>) -> dcgan_core::Result<T> {
    // A panic in an earlier job was caught; the model is still whole (every update happens in
    // single libtorch calls), so a poisoned lock is recovered, not fatal.
    let mut slot = shared.slot.lock().unwrap_or_else(|p| p.into_inner());
    let gan = match &mut *slot {
        Slot::Ready(g) => g,
        Slot::Failed(f) => return Err(CoreError::Input(format!("the model could not be built: {}", f.message))),
        Slot::Pending => return Err(CoreError::Input("the model is not built yet".into())),
        Slot::Disposed => return Err(CoreError::Input("the model was disposed (dispose()); load or create another".into())),
    };
    let out = f(gan);
    shared.steps_done.store(gan.steps_done, Ordering::Relaxed);
    out
}

/// The model's build failure, with its own code (e.g. an invalid device), when there was one.
fn build_failure(shared: &Shared) -> Option<Failure> {
    match &*shared.slot.lock().unwrap_or_else(|p| p.into_inner()) {
        Slot::Failed(f) => Some(Failure { code: f.code, message: f.message.clone() }),
        _ => None,
    }
}

/// The native DCGAN: generator, discriminator, both Adam optimisers. Use the `DCGAN` class of the
/// TypeScript API rather than this one.
#[napi]
pub struct NativeGan {
    pub(crate) gan: Shared,
}

impl NativeGan {
    /// A promise of `f` on this model, run on the libtorch thread; a failed build rejects with
    /// the build's own error.
    pub(crate) fn call<'e, T: Send + 'static, J: ToNapiValue + 'static>(
        &self,
        env: &'e Env,
        what: &'static str,
        to_js: impl FnOnce(Env, T) -> Result<J> + Send + 'static,
        f: impl FnOnce(&mut Gan) -> dcgan_core::Result<T> + Send + 'static,
    ) -> Result<Object<'e>> {
        let shared = self.gan.clone();
        let (settle, promise) = Settle::new(env)?;
        executor::spawn(move || {
            let outcome = match build_failure(&shared) {
                Some(failure) => Err(failure),
                None => guarded(what, || with_gan(&shared, f)),
            };
            settle.settle(outcome, to_js)
        })
        .map_err(|e| Failure::internal(e).into_napi(env))?;
        Ok(promise)
    }
}

/// Losses and discriminator outputs of one training step (dcgan_core::StepStats).
#[napi(object)]
pub struct StepStats {
    /// Discriminator loss, (BCE on real + BCE on fake) / 2.
    pub loss_d: f64,
    /// Generator loss.
    pub loss_g: f64,
    /// Mean D(x) over the real batch.
    pub d_real: f64,
    /// Mean D(G(z)) before the discriminator update.
    pub d_fake: f64,
    /// Mean D(G(z)) in the generator update.
    pub d_fake_after: f64,
}

fn step_stats(_env: Env, s: dcgan_core::StepStats) -> Result<StepStats> {
    Ok(StepStats { loss_d: s.loss_d, loss_g: s.loss_g, d_real: s.d_real, d_fake: s.d_fake, d_fake_after: s.d_fake_after })
}

/// A deferred step's numbers and the step (steps done after it) they belong to.
#[napi(object)]
pub struct DeferredStats {
    /// Steps done after this step: the step's number, counting from 1.
    pub step: i64,
    /// Its losses and discriminator outputs.
    pub stats: StepStats,
}

fn deferred_stats(env: Env, s: Option<(i64, dcgan_core::StepStats)>) -> Result<Option<DeferredStats>> {
    s.map(|(step, stats)| Ok(DeferredStats { step, stats: step_stats(env, stats)? })).transpose()
}

/// How a step of a group ended: `stats` when it was taken; otherwise `stop` (a rank asked to
/// stop), `failed` (ranks that failed outside a step) or `refused` (ranks that refused their shard).
#[napi(object)]
pub struct GroupStepResult {
    pub stats: Option<StepStats>,
    pub stop: bool,
    pub failed: Vec<u32>,
    pub refused: Vec<u32>,
}

fn group_step(env: Env, s: GroupStep) -> Result<GroupStepResult> {
    Ok(match s {
        GroupStep::Done(stats) => GroupStepResult { stats: Some(step_stats(env, stats)?), stop: false, failed: vec![], refused: vec![] },
        GroupStep::Stopped => GroupStepResult { stats: None, stop: true, failed: vec![], refused: vec![] },
        GroupStep::PeerFailed(ranks) => GroupStepResult { stats: None, stop: false, failed: ranks.into_iter().map(|r| r as u32).collect(), refused: vec![] },
        GroupStep::Refused(ranks) => GroupStepResult { stats: None, stop: false, failed: vec![], refused: ranks.into_iter().map(|r| r as u32).collect() },
    })
}

fn norm_mode(batch_stats: Option<bool>) -> NormMode {
    if batch_stats.unwrap_or(false) {
        NormMode::BatchStats
    } else {
        NormMode::Eval
    }
}

/// Models alive in native memory (created or loaded, not yet disposed or collected): what a
/// test watches to see that native memory is released.
#[napi]
pub fn live_models() -> u32 {
    dcgan_core::gan::live_models() as u32
}

/// A seed argument: an integer from 0 to 2^53 − 1 (negative seeds are refused, not folded onto 0).
fn seed_arg(v: f64) -> dcgan_core::Result<u64> {
    Ok(integer_in("seed", v, 0, dcgan_core::options::MAX_SEED as i64)? as u64)
}

#[napi]
impl NativeGan {
    /// Checks the options (JSON, see `optionSchema`) and queues the building of both networks on
    /// the libtorch thread, where the device is resolved too; methods called afterwards run after
    /// the build, and reject with its error if it failed.
    #[napi(constructor)]
    pub fn new(env: Env, options_json: String) -> Result<Self> {
        let o = sync(&env, GanOptions::from_json(&options_json))?;
        let requested = sync(&env, DeviceSpec::parse(&o.runtime.device))?;
        let shared = Arc::new(Model {
            slot: Mutex::new(Slot::Pending),
            steps_done: AtomicI64::new(0),
            model: o.model.clone(),
            train: Mutex::new(o.train.clone()),
            requested,
            device: Mutex::new(None),
        });
        let target = shared.clone();
        let built = move || {
            let outcome = guarded("the model's construction", || {
                if let Some(n) = o.runtime.threads {
                    // OpenMP's thread count is per calling thread: set it where the work runs.
                    dcgan_core::set_threads(n as i32)?;
                }
                let device = requested.resolve()?;
                Gan::new(o.model, o.train, device, o.runtime.seed)
            });
            let slot = match outcome {
                Ok(g) => {
                    *target.device.lock().unwrap_or_else(|p| p.into_inner()) = Some(g.device);
                    Slot::Ready(Box::new(g))
                }
                Err(f) => Slot::Failed(f),
            };
            *target.slot.lock().unwrap_or_else(|p| p.into_inner()) = slot;
        };
        executor::spawn(built).map_err(|e| Failure::internal(e).into_napi(&env))?;
        Ok(NativeGan { gan: shared })
    }

    /// Frees the networks and optimiser state now (after the calls already queued), instead of
    /// when the garbage collector finalises this object; later calls reject.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispose<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let shared = self.gan.clone();
        let (settle, promise) = Settle::new(env)?;
        executor::spawn(move || {
            let freed = std::mem::replace(&mut *shared.slot.lock().unwrap_or_else(|p| p.into_inner()), Slot::Disposed);
            drop(freed); // on the libtorch thread, like every other libtorch call
            settle.settle(Ok(()), same)
        })
        .map_err(|e| Failure::internal(e).into_napi(env))?;
        Ok(promise)
    }

    /// A promise that resolves once the model is built (rejects with the build's error).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn ready<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        self.call(env, "ready", same, |_| Ok(()))
    }

    /// The model's configuration as JSON: `{ model, train, device, stepsDone }` (never waits;
    /// `device` is the one asked for until the model is built).
    #[napi]
    pub fn config_json(&self) -> String {
        let g = &self.gan;
        serde_json::json!({
            "model": g.model, "train": *g.train.lock().unwrap_or_else(|p| p.into_inner()),
            "device": g.device_name(), "stepsDone": g.steps_done.load(Ordering::Relaxed),
        })
        .to_string()
    }

    /// One training iteration on `real` (values of an n×C×S×S batch in [−1, 1]); `noise`
    /// (n×zDim values) replaces the noise the model would draw.
    #[napi(ts_return_type = "Promise<StepStats>")]
    pub fn train_step<'e>(&self, env: &'e Env, real: Float32Array, shape: Vec<f64>, noise: Option<Float32Array>) -> Result<Object<'e>> {
        let shape = sync(env, shape_of(&shape, "the real batch"))?;
        let real = real.to_vec();
        let noise = noise.map(|n| n.to_vec());
        self.call(env, "trainStep", step_stats, move |g| {
            let r = from_js(&real, &shape, "the real batch")?;
            let z = match noise {
                Some(n) => {
                    let rows = *shape.first().ok_or_else(|| CoreError::Input("the real batch has shape []; expected [n, channels, imageSize, imageSize]".into()))?;
                    Some(from_js(&n, &[rows, g.model.z_dim], "the noise batch")?)
                }
                None => None,
            };
            g.train_step(&r, z.as_ref())
        })
    }

    /// `trainStep` without waiting for this step's numbers (dcgan_core's `train_step_deferred`):
    /// resolves with the previous deferred step's numbers and step, or null after the first.
    #[napi(ts_return_type = "Promise<DeferredStats | null>")]
    pub fn train_step_deferred<'e>(&self, env: &'e Env, real: Float32Array, shape: Vec<f64>) -> Result<Object<'e>> {
        let shape = sync(env, shape_of(&shape, "the real batch"))?;
        let real = real.to_vec();
        self.call(env, "trainStep", deferred_stats, move |g| {
            let r = from_js(&real, &shape, "the real batch")?;
            g.train_step_deferred(&r, None)
        })
    }

    /// From now on `trainStep` and `trainStepDeferred` run the step as a CUDA graph
    /// (dcgan_core's `use_cuda_graph`): `warmup` eager steps, then one captured and replayed.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn use_cuda_graph<'e>(&self, env: &'e Env, warmup: u32) -> Result<Object<'e>> {
        self.call(env, "useCudaGraph", same, move |g| g.use_cuda_graph(warmup as usize))
    }

    /// Steps taken by replaying the CUDA graph; null while graphs are off.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn cuda_graph_replays<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        self.call(env, "cudaGraphReplays", same, |g| Ok(g.cuda_graph_replays().map(|n| n as f64)))
    }

    /// The last deferred step's numbers and step (waiting for it), once; null when none is pending.
    #[napi(ts_return_type = "Promise<DeferredStats | null>")]
    pub fn flush_stats<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        self.call(env, "flushStats", deferred_stats, |g| g.take_pending_stats())
    }

    /// `trainStep` as one rank of a joined group: the ranks first vote (this rank's `stop`, and
    /// whether its batch passes the checks), and take the step only when none stops or failed.
    /// Resolves with the step's stats, or without them and with the verdict.
    #[napi(ts_return_type = "Promise<GroupStepResult>")]
    pub fn train_step_in_group<'e>(&self, env: &'e Env, real: Float32Array, shape: Vec<f64>, stop: bool) -> Result<Object<'e>> {
        let shape = sync(env, shape_of(&shape, "the real batch"))?;
        let real = real.to_vec();
        self.call(env, "trainStep", group_step, move |g| match from_js(&real, &shape, "the real batch") {
            Ok(r) => g.train_step_in_group(&r, None, stop),
            // The others are at the step's vote: take part in it, refusing, then say why.
            Err(e) => {
                dcgan_core::distributed::step_vote(g, dcgan_core::distributed::Ballot { stop, failed: false, refused: true })?;
                Err(e)
            }
        })
    }

    /// `n` images (n×C×S×S in [−1, 1]) from noise drawn with `seed`; BatchNorm uses running
    /// statistics unless `batchStats` is true.
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn generate<'e>(&self, env: &'e Env, n: f64, seed: Option<f64>, batch_stats: Option<bool>) -> Result<Object<'e>> {
        let n = sync(env, integer("n", n))?;
        let seed = sync(env, seed.map(seed_arg).transpose())?;
        let mode = norm_mode(batch_stats);
        self.call(env, "generate", tensor_js, move |g| HostTensor::of("images", &g.generate(n, seed, mode)?))
    }

    /// Images for given latent vectors (`z`: n×zDim values).
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn generate_from<'e>(&self, env: &'e Env, z: Float32Array, n: f64, batch_stats: Option<bool>) -> Result<Object<'e>> {
        let n = sync(env, integer("n", n))?;
        let z = z.to_vec();
        let mode = norm_mode(batch_stats);
        self.call(env, "generateFrom", tensor_js, move |g| {
            let z = from_js(&z, &[n, g.model.z_dim], "the latent batch")?;
            HostTensor::of("images", &g.generate_from(&z, mode)?)
        })
    }

    /// D(x), the probability that each image is real, for images (n×C×S×S values).
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn discriminate<'e>(&self, env: &'e Env, images: Float32Array, shape: Vec<f64>, batch_stats: Option<bool>) -> Result<Object<'e>> {
        let shape = sync(env, shape_of(&shape, "the image batch"))?;
        let data = images.to_vec();
        let mode = norm_mode(batch_stats);
        self.call(env, "discriminate", tensor_js, move |g| {
            let x = from_js(&data, &shape, "the image batch")?;
            HostTensor::of("probabilities", &g.discriminate(&x, mode)?)
        })
    }

    /// Every parameter and buffer under its PyTorch `state_dict` name (for inspection and tests).
    #[napi(ts_return_type = "Promise<TensorData[]>")]
    pub fn state<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        self.call(env, "state", tensors_js, |g| {
            g.state().into_iter().map(|(name, t, _)| HostTensor::of(name, &t)).collect()
        })
    }

    /// Saves weights, optimiser state, configuration and random state (safetensors, atomic), with
    /// `metadata` entries beside dcgan's own.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save<'e>(&self, env: &'e Env, path: String, metadata: Option<HashMap<String, String>>) -> Result<Object<'e>> {
        self.call(env, "save", same, move |g| g.save(&PathBuf::from(path), metadata.unwrap_or_default()))
    }

    /// Whether every weight and buffer is finite.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn all_finite<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        self.call(env, "allFinite", same, |g| g.all_finite())
    }

    /// `n` latent vectors z ~ N(0, I) (n×zDim values) drawn with `seed`, as `generate` draws them.
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn latent<'e>(&self, env: &'e Env, n: f64, seed: f64) -> Result<Object<'e>> {
        let n = sync(env, integer("n", n).and_then(|n| Gan::check_count(n).map(|_| n)))?;
        let seed = sync(env, seed_arg(seed))?;
        self.call(env, "latent", tensor_js, move |g| {
            use rand::SeedableRng;
            let z = g.latent(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), n)?;
            HostTensor::of("z", &z.f_view([n, g.model.z_dim])?)
        })
    }

    /// Replaces the optimiser settings (JSON: every field of `OptimizerConfig`, absent ones
    /// default) from the next step on; the Adam moments are kept.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_optimizer<'e>(&self, env: &'e Env, options_json: String) -> Result<Object<'e>> {
        let train = sync(env, TrainOptions::from_json(&options_json))?;
        let shared = self.gan.clone();
        self.call(env, "setOptimizer", same, move |g| {
            g.set_train_options(train.clone())?;
            *shared.train.lock().unwrap_or_else(|p| p.into_inner()) = train;
            Ok(())
        })
    }

    /// Loads PyTorch-named weights (`gen.*` and/or `disc.*` keys, as the seed's `state_dict`) into
    /// this model. Resolves to the networks that were found: 'generator', 'discriminator'.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn load_weights<'e>(&self, env: &'e Env, path: String) -> Result<Object<'e>> {
        self.call(env, "loadWeights", same, move |g| {
            let found = g.load_weights(&PathBuf::from(path))?;
            Ok(found.into_iter().map(String::from).collect::<Vec<_>>())
        })
    }
}

/// Loads a model file written by `NativeGan.save` onto `device` (default 'auto'), off the
/// JavaScript thread.
#[napi(ts_return_type = "Promise<NativeGan>")]
pub fn load_gan<'e>(env: &'e Env, path: String, device: Option<String>) -> Result<Object<'e>> {
    let spec = sync(env, DeviceSpec::parse(device.as_deref().unwrap_or("auto")))?;
    on_torch_thread(env, "load", move || Gan::load(&PathBuf::from(&path), spec.resolve()?), |_env, gan| Ok(NativeGan { gan: Model::ready(gan) }))
}

/// Whether libtorch sees a CUDA device (asked on the libtorch thread).
#[napi(ts_return_type = "Promise<boolean>")]
pub fn cuda_available<'e>(env: &'e Env) -> Result<Object<'e>> {
    on_torch_thread(env, "cudaAvailable", || Ok(dcgan_core::device::cuda_available()), same)
}

/// Threads libtorch uses on the CPU: read where the work runs (OpenMP's setting is per thread).
#[napi(ts_return_type = "Promise<number>")]
pub fn get_threads<'e>(env: &'e Env) -> Result<Object<'e>> {
    on_torch_thread(env, "getThreads", || Ok(tch::get_num_threads()), same)
}

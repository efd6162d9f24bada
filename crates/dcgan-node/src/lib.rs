//! dcgan-node: the napi-rs binding of dcgan-core. Converts JS values, runs long work on the libuv
//! thread pool, and turns every error (and any panic) into a JS exception with a useful message.
#![deny(clippy::all)]

mod eval;

use dcgan_core::{device, input, weights, Error as CoreError, Gan, GeneratorLoss, Init, ModelConfig, NormMode, Precision, TrainOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tch::Tensor;

fn to_js(e: CoreError) -> Error {
    let status = match e {
        CoreError::Config { .. } | CoreError::Input(_) => Status::InvalidArg,
        _ => Status::GenericFailure,
    };
    Error::new(status, e.to_string())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}

/// Runs `f` on the libtorch thread (see dcgan_core::executor), turning a panic into an error
/// instead of letting it unwind into Node.
fn guarded<T: Send + 'static>(what: &str, f: impl FnOnce() -> dcgan_core::Result<T> + Send + 'static) -> Result<T> {
    match dcgan_core::executor::run(f) {
        Ok(r) => r.map_err(to_js),
        Err(msg) => Err(Error::new(Status::GenericFailure, format!("internal error in {what}: {msg}"))),
    }
}

/// An integer option: absent gives `default`, a non-integer is an error naming the field.
fn int_option(field: &str, value: Option<f64>, default: i64) -> Result<i64> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
        Some(v) => Err(invalid(format!("invalid {field}: got {v}; allowed: an integer"))),
    }
}

fn enum_option<T: Copy>(field: &str, value: &Option<String>, default: T, choices: &[(&str, T)]) -> Result<T> {
    let Some(v) = value else { return Ok(default) };
    choices.iter().find(|(name, _)| name == v).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("'{n}'")).collect();
        invalid(format!("invalid {field}: got '{v}'; allowed: {}", names.join(", ")))
    })
}

fn norm_mode(batch_stats: Option<bool>) -> NormMode {
    if batch_stats.unwrap_or(false) {
        NormMode::BatchStats
    } else {
        NormMode::Eval
    }
}

/// Options of a new model. Every field is optional; defaults are the seed's settings.
#[napi(object)]
#[derive(Default)]
pub struct NativeOptions {
    pub z_dim: Option<f64>,
    pub channels: Option<f64>,
    pub features_g: Option<f64>,
    pub features_d: Option<f64>,
    pub image_size: Option<f64>,
    /// 'seed' (every Conv/BatchNorm weight N(0, 0.02)) or 'pytorch-example'.
    pub init: Option<String>,
    pub lr: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub d_steps: Option<f64>,
    /// 'non-saturating' or 'minimax'.
    pub generator_loss: Option<String>,
    /// 'fp32' (default) or 'bf16' (PyTorch autocast: bfloat16 convolutions, float32 weights and losses).
    pub precision: Option<String>,
    /// 'auto' | 'cpu' | 'cuda' | 'cuda:N'.
    pub device: Option<String>,
    /// CPU threads for libtorch (process-wide).
    pub threads: Option<f64>,
    /// Seed of the weights' initialisation and of the noise drawn in training.
    pub seed: Option<f64>,
}

fn model_config(o: &NativeOptions) -> Result<ModelConfig> {
    let d = ModelConfig::default();
    Ok(ModelConfig {
        z_dim: int_option("zDim", o.z_dim, d.z_dim)?,
        channels: int_option("channels", o.channels, d.channels)?,
        features_g: int_option("featuresG", o.features_g, d.features_g)?,
        features_d: int_option("featuresD", o.features_d, d.features_d)?,
        image_size: int_option("imageSize", o.image_size, d.image_size)?,
        init: enum_option("init", &o.init, d.init, &[("seed", Init::Seed), ("pytorch-example", Init::PytorchExample)])?,
    })
}

fn train_options(o: &NativeOptions) -> Result<TrainOptions> {
    let d = TrainOptions::default();
    let losses = [("non-saturating", GeneratorLoss::NonSaturating), ("minimax", GeneratorLoss::Minimax)];
    Ok(TrainOptions {
        lr: o.lr.unwrap_or(d.lr),
        beta1: o.beta1.unwrap_or(d.beta1),
        beta2: o.beta2.unwrap_or(d.beta2),
        eps: o.eps.unwrap_or(d.eps),
        d_steps: int_option("dSteps", o.d_steps, d.d_steps)?,
        generator_loss: enum_option("generatorLoss", &o.generator_loss, d.generator_loss, &losses)?,
        precision: enum_option("precision", &o.precision, d.precision, &[("fp32", Precision::Fp32), ("bf16", Precision::Bf16)])?,
    })
}

fn parse_device(spec: &Option<String>) -> Result<tch::Device> {
    device::parse_device(spec.as_deref().unwrap_or("auto")).map_err(to_js)
}

fn shape_of(shape: &[f64], what: &str) -> Result<Vec<i64>> {
    shape
        .iter()
        .map(|&d| int_option(&format!("{what} shape"), Some(d), 0))
        .collect()
}

/// Losses and discriminator outputs of one training step.
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

/// A batch of images or any named tensor: values in row-major order and their shape.
#[napi(object)]
pub struct TensorData {
    pub name: String,
    pub shape: Vec<u32>,
    pub data: Float32Array,
}

/// Host copy of a tensor, before it becomes a JS value.
pub struct HostTensor {
    name: String,
    shape: Vec<u32>,
    data: Vec<f32>,
}

fn to_host(name: String, t: &Tensor) -> dcgan_core::Result<HostTensor> {
    let t = t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
    let shape = t.size().iter().map(|&d| d as u32).collect();
    let data = Vec::<f32>::try_from(t.f_flatten(0, -1)?)?;
    Ok(HostTensor { name, shape, data })
}

impl HostTensor {
    fn into_js(self) -> TensorData {
        TensorData { name: self.name, shape: self.shape, data: Float32Array::new(self.data) }
    }
}

/// A model and what can be read without waiting for the libtorch thread.
pub struct Model {
    slot: Mutex<Slot>,
    steps_done: AtomicI64,
    model: ModelConfig,
    train: TrainOptions,
    device: tch::Device,
}

/// A model is built on the libtorch thread after its constructor returns (the constructor must
/// not wait behind other models' work); every later task is queued after that build.
enum Slot {
    Pending,
    Ready(Box<Gan>),
    Failed(String),
}

type Shared = Arc<Model>;

impl Model {
    fn ready(gan: Gan) -> Shared {
        Arc::new(Model {
            steps_done: AtomicI64::new(gan.steps_done),
            model: gan.model.clone(),
            train: gan.train.clone(),
            device: gan.device,
            slot: Mutex::new(Slot::Ready(Box::new(gan))),
        })
    }
}

fn with_gan<T: Send + 'static>(shared: &Shared, what: &str, f: impl FnOnce(&mut Gan) -> dcgan_core::Result<T> + Send + 'static) -> Result<T> {
    let shared = shared.clone();
    guarded(what, move || {
        // A panic in an earlier job was caught by the executor; the model is still whole (every
        // update happens in single libtorch calls), so a poisoned lock is recovered, not fatal.
        let mut slot = shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        let gan = match &mut *slot {
            Slot::Ready(g) => g,
            Slot::Failed(msg) => return Err(CoreError::Input(format!("the model could not be built: {msg}"))),
            Slot::Pending => return Err(CoreError::Input("the model is not built yet".into())),
        };
        let out = f(gan);
        shared.steps_done.store(gan.steps_done, Ordering::Relaxed);
        out
    })
}

/// Work run on the libuv thread pool: a closure over the model, and how to turn its result into JS.
pub struct GanTask<T: Send + 'static, J> {
    gan: Shared,
    what: &'static str,
    work: Option<Box<dyn FnOnce(&mut Gan) -> dcgan_core::Result<T> + Send>>,
    to_js: fn(T) -> J,
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for GanTask<T, J> {
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> Result<T> {
        let work = self.work.take().ok_or_else(|| invalid("task already ran"))?;
        with_gan(&self.gan, self.what, work)
    }

    fn resolve(&mut self, _env: Env, output: T) -> Result<J> {
        Ok((self.to_js)(output))
    }
}

fn task<T: Send + 'static, J: ToNapiValue + TypeName>(
    gan: &Shared,
    what: &'static str,
    to_js: fn(T) -> J,
    work: impl FnOnce(&mut Gan) -> dcgan_core::Result<T> + Send + 'static,
) -> AsyncTask<GanTask<T, J>> {
    AsyncTask::new(GanTask { gan: gan.clone(), what, work: Some(Box::new(work)), to_js })
}

fn unit(_: ()) {}

/// The native DCGAN: generator, discriminator, both Adam optimisers. Use the `DCGAN` class of the
/// TypeScript API rather than this one.
#[napi]
pub struct NativeGan {
    gan: Shared,
}

#[napi]
impl NativeGan {
    /// Checks the options and queues the building of both networks on the libtorch thread, so
    /// that it never waits for other work; methods called afterwards run after the build.
    #[napi(constructor)]
    pub fn new(options: Option<NativeOptions>) -> Result<Self> {
        let o = options.unwrap_or_default();
        let (model, train, device) = (model_config(&o)?, train_options(&o)?, parse_device(&o.device)?);
        model.validate().map_err(to_js)?;
        train.validate().map_err(to_js)?;
        let threads = o.threads.map(|_| int_option("threads", o.threads, 0)).transpose()?;
        if let Some(n) = threads {
            if !(1..=1024).contains(&n) {
                return Err(invalid(format!("invalid threads: got {n}; allowed: an integer from 1 to 1024")));
            }
        }
        let seed = match o.seed {
            None => None,
            Some(_) => Some(int_option("seed", o.seed, 0)?.max(0) as u64),
        };
        let shared = Arc::new(Model { slot: Mutex::new(Slot::Pending), steps_done: AtomicI64::new(0), model: model.clone(), train: train.clone(), device });
        let target = shared.clone();
        dcgan_core::executor::spawn(move || {
            let built = catch_unwind(AssertUnwindSafe(|| {
                if let Some(n) = threads {
                    // OpenMP's thread count is per calling thread: set it where the work runs.
                    dcgan_core::set_threads(n as i32)?;
                }
                Gan::new(model, train, device, seed)
            }));
            let slot = match built {
                Ok(Ok(g)) => Slot::Ready(Box::new(g)),
                Ok(Err(e)) => Slot::Failed(e.to_string()),
                Err(_) => Slot::Failed("panic while building the model".into()),
            };
            if let Ok(mut s) = target.slot.lock() {
                *s = slot;
            }
        })
        .map_err(|e| Error::new(Status::GenericFailure, e))?;
        Ok(NativeGan { gan: shared })
    }

    /// The model's configuration as JSON: `{ model, train, device, stepsDone }` (never waits).
    #[napi]
    pub fn config_json(&self) -> String {
        let g = &self.gan;
        serde_json::json!({
            "model": g.model, "train": g.train,
            "device": device::device_name(g.device), "stepsDone": g.steps_done.load(Ordering::Relaxed),
        })
        .to_string()
    }

    /// One training iteration on `real` (values of an n×C×S×S batch in [−1, 1]); `noise`
    /// (n×zDim values) replaces the noise the model would draw.
    #[napi(ts_return_type = "Promise<StepStats>")]
    pub fn train_step(&self, real: Float32Array, shape: Vec<f64>, noise: Option<Float32Array>) -> Result<AsyncTask<GanTask<dcgan_core::StepStats, StepStats>>> {
        let shape = shape_of(&shape, "real batch")?;
        let real = real.to_vec();
        let noise = noise.map(|n| n.to_vec());
        Ok(task(&self.gan, "trainStep", step_stats, move |g| {
            let r = input::tensor_from_f32(&real, &shape, tch::Device::Cpu, "the real batch")?;
            let z = match noise {
                Some(n) => {
                    let rows = *shape.first().ok_or_else(|| CoreError::Input("the real batch has shape []; expected [n, channels, imageSize, imageSize]".into()))?;
                    let zd = g.model.z_dim;
                    Some(input::tensor_from_f32(&n, &[rows, zd], tch::Device::Cpu, "the noise batch")?)
                }
                None => None,
            };
            g.train_step(&r, z.as_ref())
        }))
    }

    /// `n` images (n×C×S×S in [−1, 1]) from noise drawn with `seed`; BatchNorm uses running
    /// statistics unless `batchStats` is true.
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn generate(&self, n: f64, seed: Option<f64>, batch_stats: Option<bool>) -> Result<AsyncTask<GanTask<HostTensor, TensorData>>> {
        let n = int_option("n", Some(n), 0)?;
        let seed = seed.map(|s| int_option("seed", Some(s), 0)).transpose()?.map(|s| s.max(0) as u64);
        let mode = norm_mode(batch_stats);
        Ok(task(&self.gan, "generate", HostTensor::into_js, move |g| {
            to_host("images".into(), &g.generate(n, seed, mode)?)
        }))
    }

    /// Images for given latent vectors (`z`: n×zDim values).
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn generate_from(&self, z: Float32Array, n: f64, batch_stats: Option<bool>) -> Result<AsyncTask<GanTask<HostTensor, TensorData>>> {
        let n = int_option("n", Some(n), 0)?;
        let z = z.to_vec();
        let mode = norm_mode(batch_stats);
        Ok(task(&self.gan, "generateFrom", HostTensor::into_js, move |g| {
            let zd = g.model.z_dim;
            let z = input::tensor_from_f32(&z, &[n, zd], tch::Device::Cpu, "the latent batch")?;
            to_host("images".into(), &g.generate_from(&z, mode)?)
        }))
    }

    /// D(x), the probability that each image is real, for images (n×C×S×S values).
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn discriminate(&self, images: Float32Array, shape: Vec<f64>, batch_stats: Option<bool>) -> Result<AsyncTask<GanTask<HostTensor, TensorData>>> {
        let shape = shape_of(&shape, "image batch")?;
        let data = images.to_vec();
        let mode = norm_mode(batch_stats);
        Ok(task(&self.gan, "discriminate", HostTensor::into_js, move |g| {
            let x = input::tensor_from_f32(&data, &shape, tch::Device::Cpu, "the image batch")?;
            to_host("probabilities".into(), &g.discriminate(&x, mode)?)
        }))
    }

    /// Every parameter and buffer under its PyTorch `state_dict` name (for inspection and tests).
    #[napi(ts_return_type = "Promise<TensorData[]>")]
    pub fn state(&self) -> AsyncTask<GanTask<Vec<HostTensor>, Vec<TensorData>>> {
        task(&self.gan, "state", |v: Vec<HostTensor>| v.into_iter().map(HostTensor::into_js).collect(), |g| {
            use dcgan_core::model::Network;
            let mut all = g.generator.state();
            all.extend(g.discriminator.state());
            all.into_iter().map(|(name, t, _)| to_host(name, &t)).collect()
        })
    }

    /// Saves weights, optimiser state, configuration and random state (safetensors, atomic), with
    /// `metadata` entries beside dcgan's own.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save(&self, path: String, metadata: Option<HashMap<String, String>>) -> AsyncTask<GanTask<(), ()>> {
        task(&self.gan, "save", unit, move |g| g.save(&PathBuf::from(path), metadata.unwrap_or_default()))
    }

    /// Whether every weight and buffer is finite.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn all_finite(&self) -> AsyncTask<GanTask<bool, bool>> {
        task(&self.gan, "allFinite", |b| b, |g| g.all_finite())
    }

    /// `n` latent vectors z ~ N(0, I) (n×zDim values) drawn with `seed`, as `generate` draws them.
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn latent(&self, n: f64, seed: f64) -> Result<AsyncTask<GanTask<HostTensor, TensorData>>> {
        let n = int_option("n", Some(n), 0)?;
        if !(1..=65536).contains(&n) {
            return Err(invalid(format!("invalid n: got {n}; allowed: an integer from 1 to 65536")));
        }
        let seed = int_option("seed", Some(seed), 0)?.max(0) as u64;
        Ok(task(&self.gan, "latent", HostTensor::into_js, move |g| {
            use rand::SeedableRng;
            let z = g.latent(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), n)?;
            to_host("z".into(), &z.f_view([n, g.model.z_dim])?)
        }))
    }

    /// Loads PyTorch-named weights (`gen.*` and/or `disc.*` keys, as the seed's `state_dict`) into
    /// this model. Resolves to the networks that were found: 'generator', 'discriminator'.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn load_weights(&self, path: String) -> AsyncTask<GanTask<Vec<String>, Vec<String>>> {
        task(&self.gan, "loadWeights", |v| v, move |g| {
            use dcgan_core::model::Network;
            let path = PathBuf::from(path);
            let loaded = weights::load(&path)?;
            let has = |prefix: &str| loaded.tensors.keys().any(|k| k.starts_with(prefix));
            let mut found = Vec::new();
            if has("gen.") {
                g.generator.load_state(&loaded.tensors).map_err(|e| CoreError::file(&path, e))?;
                found.push("generator".to_string());
            }
            if has("disc.") {
                g.discriminator.load_state(&loaded.tensors).map_err(|e| CoreError::file(&path, e))?;
                found.push("discriminator".to_string());
            }
            if found.is_empty() {
                return Err(CoreError::file(&path, "holds no 'gen.*' or 'disc.*' tensors: not DCGAN weights"));
            }
            Ok(found)
        })
    }
}

fn step_stats(s: dcgan_core::StepStats) -> StepStats {
    StepStats { loss_d: s.loss_d, loss_g: s.loss_g, d_real: s.d_real, d_fake: s.d_fake, d_fake_after: s.d_fake_after }
}

/// Loads a model saved with `save` (runs off the JS thread).
pub struct LoadTask {
    path: String,
    device: Option<String>,
}

impl Task for LoadTask {
    type Output = Gan;
    type JsValue = NativeGan;

    fn compute(&mut self) -> Result<Gan> {
        let device = parse_device(&self.device)?;
        let path = PathBuf::from(&self.path);
        guarded("load", move || Gan::load(&path, device))
    }

    fn resolve(&mut self, _env: Env, gan: Gan) -> Result<NativeGan> {
        Ok(NativeGan { gan: Model::ready(gan) })
    }
}

/// Loads a model file written by `NativeGan.save`.
#[napi(ts_return_type = "Promise<NativeGan>")]
pub fn load_gan(path: String, device: Option<String>) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask { path, device })
}

/// Reads every tensor of a safetensors file as float32 (for tools and tests).
pub struct ReadTensorsTask {
    path: String,
}

impl Task for ReadTensorsTask {
    type Output = (Vec<HostTensor>, String);
    type JsValue = TensorFile;

    fn compute(&mut self) -> Result<Self::Output> {
        let path = PathBuf::from(&self.path);
        guarded("readTensors", move || {
            let loaded = weights::load(&path)?;
            let mut names: Vec<&String> = loaded.tensors.keys().collect();
            names.sort();
            let tensors = names.into_iter().map(|n| to_host(n.clone(), &loaded.tensors[n])).collect::<dcgan_core::Result<_>>()?;
            let meta = serde_json::to_string(&loaded.metadata).map_err(|e| CoreError::Input(e.to_string()))?;
            Ok((tensors, meta))
        })
    }

    fn resolve(&mut self, _env: Env, (tensors, metadata): Self::Output) -> Result<TensorFile> {
        Ok(TensorFile { tensors: tensors.into_iter().map(HostTensor::into_js).collect(), metadata_json: metadata })
    }
}

/// The tensors (sorted by name) and metadata (as JSON) of a safetensors file.
#[napi(object)]
pub struct TensorFile {
    pub tensors: Vec<TensorData>,
    pub metadata_json: String,
}

#[napi(ts_return_type = "Promise<TensorFile>")]
pub fn read_tensors(path: String) -> AsyncTask<ReadTensorsTask> {
    AsyncTask::new(ReadTensorsTask { path })
}

/// Checks model and optimiser options without building a model; throws naming the bad field.
#[napi]
pub fn validate_options(options: NativeOptions) -> Result<()> {
    model_config(&options)?.validate().map_err(to_js)?;
    train_options(&options)?.validate().map_err(to_js)?;
    if options.device.is_some() {
        parse_device(&options.device)?;
    }
    if options.threads.is_some() {
        let n = int_option("threads", options.threads, 0)?;
        if !(1..=1024).contains(&n) {
            return Err(invalid(format!("invalid threads: got {n}; allowed: an integer from 1 to 1024")));
        }
    }
    Ok(())
}

/// The metadata of a safetensors file (reads only its header).
#[napi]
pub fn read_metadata(path: String) -> Result<HashMap<String, String>> {
    weights::read_metadata(&PathBuf::from(path)).map_err(to_js)
}

/// Whether libtorch sees a CUDA device.
#[napi]
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// Threads libtorch uses on the CPU: read where the work runs (OpenMP's setting is per thread).
#[napi]
pub fn get_threads() -> Result<i32> {
    guarded("getThreads", || Ok(tch::get_num_threads()))
}

/// Writes a grid of images (n×C×H×W values in [−1, 1]) as one PNG file, `nrow` images per row.
#[napi(ts_return_type = "Promise<void>")]
pub fn write_image_grid(data: Float32Array, shape: Vec<f64>, path: String, nrow: Option<f64>, padding: Option<f64>) -> Result<AsyncTask<FnTask<()>>> {
    let shape: Vec<usize> = shape_of(&shape, "image batch")?.into_iter().map(|d| d.max(0) as usize).collect();
    let nrow = int_option("nrow", nrow, 8)?.max(1) as usize;
    let padding = int_option("padding", padding, 2)?.clamp(0, 64) as usize;
    let data = data.to_vec();
    Ok(fn_task("writeImageGrid", move || dcgan_core::image::save_grid(&PathBuf::from(path), &data, &shape, nrow, padding)))
}

/// Work that needs no model, run on the libuv thread pool.
pub struct FnTask<T: Send + 'static> {
    what: &'static str,
    work: Option<Box<dyn FnOnce() -> dcgan_core::Result<T> + Send>>,
}

impl<T: Send + ToNapiValue + TypeName + 'static> Task for FnTask<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> Result<T> {
        let work = self.work.take().ok_or_else(|| invalid("task already ran"))?;
        guarded(self.what, work)
    }

    fn resolve(&mut self, _env: Env, output: T) -> Result<T> {
        Ok(output)
    }
}

fn fn_task<T: Send + ToNapiValue + TypeName + 'static>(what: &'static str, work: impl FnOnce() -> dcgan_core::Result<T> + Send + 'static) -> AsyncTask<FnTask<T>> {
    AsyncTask::new(FnTask { what, work: Some(Box::new(work)) })
}

/// Options of a data loader.
#[napi(object)]
pub struct LoaderOptions {
    /// 'idx' (MNIST format, plain or .gz), 'cifar10' (binary batches) or 'folder' (PNG/JPEG, recursive).
    pub kind: String,
    /// Files (idx: one; cifar10: .bin files or one folder; folder: one folder).
    pub paths: Vec<String>,
    pub image_size: f64,
    /// 1 (grayscale) or 3 (RGB): images are converted to it.
    pub channels: f64,
    pub batch_size: f64,
    pub seed: Option<f64>,
    /// Default true.
    pub shuffle: Option<bool>,
    /// Skip unreadable images with a warning instead of failing. Default false.
    pub skip_corrupt: Option<bool>,
    /// Batches prepared ahead (default 4).
    pub prefetch: Option<f64>,
    /// Decoding threads (default 2).
    pub workers: Option<f64>,
    pub limit: Option<f64>,
    /// Start at this epoch and position in its order (to resume).
    pub epoch: Option<f64>,
    pub position: Option<f64>,
}

/// A prepared batch and where the data order stands after it.
#[napi(object)]
pub struct LoadedBatch {
    pub data: Float32Array,
    pub shape: Vec<u32>,
    pub epoch: u32,
    pub position: u32,
    pub warnings: Vec<String>,
}

/// Shuffled batches prepared on background threads (no libtorch involved).
#[napi]
pub struct NativeLoader {
    inner: Arc<dcgan_core::data::loader::Loader>,
}

pub struct NextTask {
    inner: Arc<dcgan_core::data::loader::Loader>,
}

impl Task for NextTask {
    type Output = dcgan_core::data::loader::Batch;
    type JsValue = LoadedBatch;

    // Waits on the loader's channel here, on a libuv thread: no libtorch work is involved.
    fn compute(&mut self) -> Result<Self::Output> {
        self.inner.next().map_err(to_js)
    }

    fn resolve(&mut self, _env: Env, b: Self::Output) -> Result<LoadedBatch> {
        Ok(loaded_batch(b))
    }
}

fn loaded_batch(b: dcgan_core::data::loader::Batch) -> LoadedBatch {
    LoadedBatch {
        data: Float32Array::new(b.data),
        shape: b.shape.iter().map(|&d| d as u32).collect(),
        epoch: b.next.epoch as u32,
        position: b.next.position as u32,
        warnings: b.warnings,
    }
}

fn open_source(kind: &str, paths: &[String]) -> dcgan_core::Result<Arc<dyn dcgan_core::data::Source>> {
    use dcgan_core::data::{cifar::Cifar10, folder::ImageFolder, idx::IdxImages};
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let one = |what: &str| -> dcgan_core::Result<&PathBuf> {
        match paths.as_slice() {
            [p] => Ok(p),
            _ => Err(CoreError::config("paths", format!("got {} paths; a {what} dataset takes exactly one", paths.len()))),
        }
    };
    Ok(match kind {
        "idx" => Arc::new(IdxImages::open(one("idx")?)?),
        "folder" => Arc::new(ImageFolder::open(one("folder")?)?),
        "cifar10" => {
            if paths.is_empty() {
                return Err(CoreError::config("paths", "got none; give CIFAR-10 .bin files or their folder"));
            }
            Arc::new(Cifar10::open(&paths)?)
        }
        other => return Err(CoreError::config("kind", format!("got '{other}'; allowed: 'idx', 'cifar10', 'folder'"))),
    })
}

#[napi]
impl NativeLoader {
    /// Opens the source (checking headers and sizes) and starts preparing batches.
    #[napi(constructor)]
    pub fn new(o: LoaderOptions) -> Result<Self> {
        let int = |f: &str, v: Option<f64>, d: i64| {
            let x = int_option(f, v, d)?;
            if x < 0 {
                return Err(invalid(format!("invalid {f}: got {x}; allowed: an integer ≥ 0")));
            }
            Ok(x)
        };
        let opts = dcgan_core::data::loader::LoaderOptions {
            image_size: int("imageSize", Some(o.image_size), 0)? as u32,
            channels: int("channels", Some(o.channels), 0)? as usize,
            batch_size: int("batchSize", Some(o.batch_size), 0)? as usize,
            seed: int("seed", o.seed, 0)? as u64,
            shuffle: o.shuffle.unwrap_or(true),
            skip_corrupt: o.skip_corrupt.unwrap_or(false),
            prefetch: int("prefetch", o.prefetch, 4)?.clamp(1, 64) as usize,
            workers: int("workers", o.workers, 2)?.clamp(1, 64) as usize,
            limit: o.limit.map(|l| int("limit", Some(l), 0)).transpose()?.map(|l| l as usize),
            start: dcgan_core::data::loader::Position {
                epoch: int("epoch", o.epoch, 0)? as u64,
                position: int("position", o.position, 0)? as usize,
            },
        };
        let source = open_source(&o.kind, &o.paths).map_err(to_js)?;
        let loader = dcgan_core::data::loader::Loader::new(source, opts).map_err(to_js)?;
        Ok(NativeLoader { inner: Arc::new(loader) })
    }

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

    /// The next batch if one is already prepared (no thread hop), else null: lets `next()` skip
    /// the libuv round trip whenever the loader is ahead of training, which is the usual case.
    #[napi]
    pub fn try_next(&self) -> Result<Option<LoadedBatch>> {
        self.inner.try_next().map(|r| r.map(loaded_batch).map_err(to_js)).transpose()
    }

    /// The next batch; rejects with the file's name if an image cannot be read.
    #[napi(ts_return_type = "Promise<LoadedBatch>")]
    pub fn next(&self) -> AsyncTask<NextTask> {
        AsyncTask::new(NextTask { inner: self.inner.clone() })
    }
}

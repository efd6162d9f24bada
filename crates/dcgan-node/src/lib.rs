//! dcgan-node: the napi-rs binding of dcgan-core. Converts JS values, runs long work on the libuv
//! thread pool, and turns every error (and any panic) into a JS exception with a useful message.
#![deny(clippy::all)]

use dcgan_core::{device, input, weights, Error as CoreError, Gan, GeneratorLoss, Init, ModelConfig, NormMode, TrainOptions};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;
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
    })
}

fn apply_threads(threads: Option<f64>) -> Result<()> {
    if threads.is_some() {
        let n = int_option("threads", threads, 0)?.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        // OpenMP's thread count is per calling thread: set it where the work runs.
        guarded("threads", move || dcgan_core::set_threads(n))?;
    }
    Ok(())
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

type Shared = Arc<Mutex<Gan>>;

fn with_gan<T: Send + 'static>(gan: &Shared, what: &str, f: impl FnOnce(&mut Gan) -> dcgan_core::Result<T> + Send + 'static) -> Result<T> {
    let gan = gan.clone();
    let poisoned = "this model is unusable after an internal error; load it again from a saved file";
    guarded(what, move || {
        let mut g = gan.lock().map_err(|_| CoreError::Input(poisoned.into()))?;
        f(&mut g)
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
    /// Builds and initialises both networks (fast: runs on the calling thread).
    #[napi(constructor)]
    pub fn new(options: Option<NativeOptions>) -> Result<Self> {
        let o = options.unwrap_or_default();
        apply_threads(o.threads)?;
        let (model, train, device) = (model_config(&o)?, train_options(&o)?, parse_device(&o.device)?);
        let seed = match o.seed {
            None => None,
            Some(_) => Some(int_option("seed", o.seed, 0)?.max(0) as u64),
        };
        let gan = guarded("new model", move || Gan::new(model, train, device, seed))?;
        Ok(NativeGan { gan: Arc::new(Mutex::new(gan)) })
    }

    /// The model's configuration as JSON: `{ model, train, device, stepsDone }`.
    #[napi]
    pub fn config_json(&self) -> Result<String> {
        with_gan(&self.gan, "config", |g| {
            let v = serde_json::json!({
                "model": g.model, "train": g.train,
                "device": device::device_name(g.device), "stepsDone": g.steps_done,
            });
            Ok(v.to_string())
        })
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
                    let rows = shape[0];
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

    /// Saves weights, optimiser state, configuration and random state (safetensors, atomic).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save(&self, path: String) -> AsyncTask<GanTask<(), ()>> {
        task(&self.gan, "save", unit, move |g| g.save(&PathBuf::from(path)))
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
        Ok(NativeGan { gan: Arc::new(Mutex::new(gan)) })
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

/// Whether libtorch sees a CUDA device.
#[napi]
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// Threads libtorch uses on the CPU.
#[napi]
pub fn get_threads() -> i32 {
    tch::get_num_threads()
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

/// Shuffled batches from an IDX image file (MNIST), scaled to [−1, 1] and resized.
#[napi]
pub struct NativeIdxBatches {
    inner: Arc<Mutex<dcgan_core::data::IdxBatches>>,
}

pub struct NextBatchTask {
    inner: Arc<Mutex<dcgan_core::data::IdxBatches>>,
}

impl Task for NextBatchTask {
    type Output = HostTensor;
    type JsValue = TensorData;

    fn compute(&mut self) -> Result<HostTensor> {
        let inner = self.inner.clone();
        guarded("nextBatch", move || {
            let mut b = inner.lock().map_err(|_| CoreError::Input("the dataset is unusable after an internal error".into()))?;
            to_host("batch".into(), &b.next_batch()?)
        })
    }

    fn resolve(&mut self, _env: Env, output: HostTensor) -> Result<TensorData> {
        Ok(output.into_js())
    }
}

#[napi]
impl NativeIdxBatches {
    /// Opens `path` (IDX images, plain or .gz) and checks its header against its size.
    #[napi(constructor)]
    pub fn new(path: String, image_size: f64, batch_size: f64, seed: Option<f64>, limit: Option<f64>) -> Result<Self> {
        let image_size = int_option("imageSize", Some(image_size), 0)?;
        let batch_size = int_option("batchSize", Some(batch_size), 0)?;
        if batch_size < 1 {
            return Err(invalid(format!("invalid batchSize: got {batch_size}; allowed: an integer from 1")));
        }
        let seed = int_option("seed", seed, 0)?.max(0) as u64;
        let limit = limit.map(|l| int_option("limit", Some(l), 0)).transpose()?.map(|l| l.max(0) as usize);
        let b = guarded("open IDX", move || {
            let images = dcgan_core::idx::IdxImages::open(&PathBuf::from(&path))?;
            dcgan_core::data::IdxBatches::new(images, image_size, batch_size as usize, seed, limit)
        })?;
        Ok(NativeIdxBatches { inner: Arc::new(Mutex::new(b)) })
    }

    /// Full batches in one epoch.
    #[napi(getter)]
    pub fn batches_per_epoch(&self) -> Result<u32> {
        let b = self.inner.lock().map_err(|_| invalid("the dataset is unusable after an internal error"))?;
        Ok(b.batches_per_epoch() as u32)
    }

    /// The next batch (batch×1×S×S); a new shuffled epoch starts when one is used up.
    #[napi(ts_return_type = "Promise<TensorData>")]
    pub fn next_batch(&self) -> AsyncTask<NextBatchTask> {
        AsyncTask::new(NextBatchTask { inner: self.inner.clone() })
    }
}

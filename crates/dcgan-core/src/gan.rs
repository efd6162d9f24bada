//! A DCGAN: both networks, both optimisers and the random generator that draws noise, with
//! sampling and saving. The training step lives in train.rs.
use crate::adam::Adam;
use crate::config::{ModelConfig, TrainOptions};
use crate::error::{Error, Result};
use crate::ffi::AdamHyper;
use crate::layers::{normal, NormMode};
use crate::model::{Discriminator, Generator, Network};
use crate::weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Tensor};

pub const FORMAT: &str = "dcgan/1";

/// Most images (or latent vectors) one call makes.
pub const MAX_COUNT: i64 = 65536;

pub struct Gan {
    pub model: ModelConfig,
    pub train: TrainOptions,
    pub device: Device,
    pub generator: Generator,
    pub discriminator: Discriminator,
    pub opt_g: Adam,
    pub opt_d: Adam,
    /// Convolutions run on channels-last tensors (see `channels_last_on`).
    pub channels_last: bool,
    /// Draws the initial weights and every noise batch: owned here, so it can be saved and restored.
    pub rng: ChaCha8Rng,
    /// Completed training steps (one generator update each).
    pub steps_done: i64,
    /// The moving average of the generator's weights (and BatchNorm statistics), when `emaDecay`
    /// is set: what `generate`, `generate_from` and evaluation use.
    pub ema: Option<Generator>,
    /// DiffAugment draws given by a caller (tests replaying PyTorch's), used before drawing any.
    pub fed_augment_draws: std::collections::VecDeque<Tensor>,
    /// The numbers of the last deferred step, on their way to the host (see `train_step_deferred`).
    pub pending_stats: Option<crate::train::PendingStats>,
    /// The step as a CUDA graph, once `use_cuda_graph` turned it on.
    pub cuda_graph: Option<crate::cuda_graph::GraphedStep>,
}

/// Models alive: incremented when one is built, decremented when one is dropped.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many models are alive in this process (each holds its weights and Adam state).
pub fn live_models() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Gan {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Prefix of the moving-average generator's tensors in a checkpoint: `ema.gen.0.0.weight`, ….
pub const EMA_PREFIX: &str = "ema.";

/// Serializable state of the random generator.
#[derive(serde::Serialize, serde::Deserialize)]
struct RngState {
    seed: Vec<u8>,
    stream: u64,
    word_pos: String,
}

/// Whether to lay weights and images out channels-last: on the CPU oneDNN's convolutions are
/// faster so (measured in the benchmark), and the results stay within 1e-5 of PyTorch's.
fn channels_last_on(device: Device) -> bool {
    crate::env_switch("DCGAN_CHANNELS_LAST", device == Device::Cpu)
}

fn hyper(t: &TrainOptions, lr: f64) -> AdamHyper {
    AdamHyper { lr, beta1: t.beta1, beta2: t.beta2, eps: t.eps }
}

impl Gan {
    /// New networks initialised from `seed` (random when `None`).
    pub fn new(model: ModelConfig, train: TrainOptions, device: Device, seed: Option<u64>) -> Result<Gan> {
        train.validate_for(device)?;
        Gan::build(model, train, device, seed)
    }

    /// `new` without asking whether `device` can train in the options' precision: a saved model
    /// loads anywhere (it samples in float32), and its first bf16 step asks (`check_real`).
    fn build(model: ModelConfig, train: TrainOptions, device: Device, seed: Option<u64>) -> Result<Gan> {
        model.validate()?;
        train.validate()?;
        check_precision(&model, &train)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed.unwrap_or_else(|| rand::rng().random()));
        let mut generator = Generator::new(&model, &mut rng, device)?;
        let mut discriminator = Discriminator::new(&model, &mut rng, device)?;
        let channels_last = channels_last_on(device);
        let opt_g = Adam::new(generator.parameters_mut(), hyper(&train, train.lr_of_g()), channels_last)?;
        let opt_d = Adam::new(discriminator.parameters_mut(), hyper(&train, train.lr_of_d()), channels_last)?;
        let ema = if train.ema_decay > 0.0 { Some(generator.copy()?) } else { None };
        let fed_augment_draws = Default::default();
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Gan { model, train, device, generator, discriminator, opt_g, opt_d, channels_last, rng, steps_done: 0, ema, fed_augment_draws, pending_stats: None, cuda_graph: None })
    }

    /// The generator that samples: the moving average when there is one, else the trained one.
    pub fn sampler(&mut self) -> &mut Generator {
        match &mut self.ema {
            Some(ema) => ema,
            None => &mut self.generator,
        }
    }

    /// Restarts the moving average from the generator's current weights (after weights were
    /// loaded into it); nothing when there is none.
    pub fn reset_ema(&mut self) -> Result<()> {
        if self.ema.is_some() {
            self.ema = Some(self.generator.copy()?);
        }
        Ok(())
    }

    /// Every parameter and buffer of both networks, then the moving average's (`ema.gen.…`).
    pub fn state(&self) -> Vec<(String, Tensor, bool)> {
        let mut all = self.generator.state();
        all.extend(self.discriminator.state());
        if let Some(ema) = &self.ema {
            all.extend(ema.state().into_iter().map(|(n, t, b)| (format!("{EMA_PREFIX}{n}"), t, b)));
        }
        all
    }

    /// Changes the optimiser settings from the next step on (a resumed run's new lr, say); the
    /// Adam moments are kept.
    pub fn set_train_options(&mut self, train: TrainOptions) -> Result<()> {
        train.validate()?;
        train.validate_for(self.device)?;
        check_precision(&self.model, &train)?;
        self.opt_g.hyper = hyper(&train, train.lr_of_g());
        self.opt_d.hyper = hyper(&train, train.lr_of_d());
        // A moving average turned on mid-run starts from the generator as it is.
        match (train.ema_decay > 0.0, self.ema.is_some()) {
            (true, false) => self.ema = Some(self.generator.copy()?),
            (false, true) => self.ema = None,
            _ => {}
        }
        self.train = train;
        // A captured graph holds the old options' arithmetic (learning rates, losses, dSteps):
        // it is dropped, and use_cuda_graph checks the new options before capturing again.
        self.stop_cuda_graph();
        Ok(())
    }

    /// `n` latent vectors z ~ N(0, I), shaped n×zDim×1×1, from `rng`.
    pub fn latent(&self, rng: &mut impl Rng, n: i64) -> Result<Tensor> {
        normal(rng, 0.0, 1.0, &[n, self.model.z_dim, 1, 1], self.device)
    }

    /// Checks a user-supplied latent batch (n×zDim or n×zDim×1×1) and moves it to the device.
    pub fn check_latent(&self, z: &Tensor, what: &str) -> Result<Tensor> {
        let size = z.size();
        let zd = self.model.z_dim;
        let ok = match size.as_slice() {
            [_, d] => *d == zd,
            [_, d, 1, 1] => *d == zd,
            _ => false,
        };
        if !ok || size[0] < 1 {
            return Err(Error::Input(format!(
                "{what} has shape {size:?}; expected [n, {zd}] or [n, {zd}, 1, 1] (zDim = {zd})"
            )));
        }
        crate::input::ensure_finite(z, what)?;
        crate::device::upload(&z.f_view([size[0], zd, 1, 1])?, self.device)
    }

    /// Checks an image batch: n×C×S×S for this model, every value finite.
    pub fn check_images(&self, x: &Tensor, what: &str) -> Result<()> {
        self.check_image_shape(x, what)?;
        crate::input::ensure_finite(x, what)
    }

    /// `check_images` without reading the values: the shape only.
    pub fn check_image_shape(&self, x: &Tensor, what: &str) -> Result<()> {
        let m = &self.model;
        let size = x.size();
        if size.len() != 4 || size[1..] != [m.channels, m.image_size, m.image_size] || size[0] < 1 {
            return Err(Error::Input(format!(
                "{what} has shape {size:?}; expected [n, {}, {}, {}] (channels, imageSize, imageSize)",
                m.channels, m.image_size, m.image_size
            )));
        }
        Ok(())
    }

    /// Images moved to the device in the layout the networks run on.
    pub fn prepare_images(&self, x: &Tensor) -> Result<Tensor> {
        let x = crate::device::upload_batch(x, self.device)?;
        if self.channels_last { crate::ffi::channels_last(&x) } else { Ok(x) }
    }

    /// D(x) for each image of `x`, without tracking gradients.
    pub fn discriminate(&mut self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        self.check_images(x, "the image batch")?;
        self.check_work(x.size()[0], false, "the discriminator on a batch")?;
        let x = self.prepare_images(x)?;
        tch::no_grad(|| self.discriminator.forward(&x, mode))
    }

    /// Images from the generator for the latent batch `z`, without tracking gradients.
    pub fn generate_from(&mut self, z: &Tensor, mode: NormMode) -> Result<Tensor> {
        let z = self.check_latent(z, "the latent batch")?;
        self.check_work(z.size()[0], false, "sampling")?;
        tch::no_grad(|| self.sampler().forward(&z, mode))
    }

    /// Checks a number of images or latent vectors to make at once.
    pub fn check_count(n: i64) -> Result<()> {
        crate::options::in_range("n", n, 1, MAX_COUNT)
    }

    /// Refuses a call on `n` images that would need more memory than the limit (crate::limits).
    pub fn check_work(&self, n: i64, training: bool, what: &str) -> Result<()> {
        let n = n.max(0) as u64;
        let bytes = if training { self.model.training_bytes(n) } else { self.model.activation_bytes(n, false) };
        let what = format!("{what} of {n} images");
        match self.device {
            Device::Cuda(index) => crate::limits::within_device_memory(bytes, index, &what, Error::Input),
            _ => crate::limits::within_memory(bytes, &what, Error::Input),
        }
    }

    /// `n` images from noise drawn with `seed` (or the model's own generator when `None`).
    pub fn generate(&mut self, n: i64, seed: Option<u64>, mode: NormMode) -> Result<Tensor> {
        Self::check_count(n)?;
        self.check_work(n, false, "sampling")?;
        let z = match seed {
            Some(s) => self.latent(&mut ChaCha8Rng::seed_from_u64(s), n)?,
            None => {
                let mut rng = self.rng.clone();
                let z = self.latent(&mut rng, n)?;
                self.rng = rng;
                z
            }
        };
        tch::no_grad(|| self.sampler().forward(&z, mode))
    }

    /// Every tensor of a checkpoint: both networks under their PyTorch names, then the Adam moments.
    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (net, opt, state) in [
            ("gen", &self.opt_g, self.generator.state()),
            ("disc", &self.opt_d, self.discriminator.state()),
        ] {
            let params: Vec<String> = state.iter().filter(|s| !s.2).map(|s| s.0.clone()).collect();
            out.extend(state.into_iter().map(|(n, t, _)| (n, t)));
            for (name, (m, v)) in params.iter().zip(opt.exp_avg.iter().zip(&opt.exp_avg_sq)) {
                out.push((format!("optim.{net}.exp_avg.{name}"), m.shallow_clone()));
                out.push((format!("optim.{net}.exp_avg_sq.{name}"), v.shallow_clone()));
            }
        }
        if let Some(ema) = &self.ema {
            out.extend(ema.state().into_iter().map(|(n, t, _)| (format!("{EMA_PREFIX}{n}"), t)));
        }
        out
    }

    fn metadata(&self) -> Result<HashMap<String, String>> {
        let rng = RngState {
            seed: self.rng.get_seed().to_vec(),
            stream: self.rng.get_stream(),
            word_pos: self.rng.get_word_pos().to_string(),
        };
        Ok(HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("model".to_string(), to_json(&self.model)?),
            ("train".to_string(), to_json(&self.train)?),
            ("rng".to_string(), to_json(&rng)?),
            ("steps".to_string(), self.steps_done.to_string()),
            ("optim.gen.step".to_string(), self.opt_g.step.to_string()),
            ("optim.disc.step".to_string(), self.opt_d.step.to_string()),
        ]))
    }

    /// Saves weights, buffers, Adam state, configuration and random state to a safetensors file,
    /// with `extra` metadata entries beside dcgan's own.
    pub fn save(&self, path: &Path, extra: HashMap<String, String>) -> Result<()> {
        let mut meta = self.metadata()?;
        for (k, v) in extra {
            if meta.contains_key(&k) || k == weights::CHECKSUM_KEY {
                return Err(Error::Input(format!("metadata key '{k}' is reserved by dcgan")));
            }
            meta.insert(k, v);
        }
        weights::save(path, &self.named_tensors(), meta)
    }

    /// Refuses a state that training cannot have produced, naming the tensor: NaN or infinite
    /// values, a negative variance or second moment, a step count out of range.
    fn check_state(&self) -> std::result::Result<(), String> {
        for (name, t) in self.named_tensors() {
            crate::model::check_values(&name, &t).map_err(|e| e.to_string())?;
        }
        // Counts reach JavaScript as numbers, exact up to 2⁵³ − 1 (and a count near i64::MAX
        // would wrap at the next step).
        const MAX_STEPS: i64 = (1 << 53) - 1;
        for (net, step) in [("gen", self.opt_g.step), ("disc", self.opt_d.step)] {
            if step < 0 || self.steps_done < 0 {
                return Err(format!("optim.{net}.step is {step} and steps {}: step counts cannot be negative", self.steps_done));
            }
            if step > MAX_STEPS || self.steps_done > MAX_STEPS {
                return Err(format!("optim.{net}.step is {step} and steps {}: step counts beyond 2^53 − 1 are not a run's", self.steps_done));
            }
        }
        Ok(())
    }

    /// Whether every parameter and buffer is finite.
    /// One host read per device (on a GPU each read waits for the stream), not one per tensor.
    pub fn all_finite(&self) -> Result<bool> {
        let state: Vec<Tensor> = self.generator.state().into_iter().chain(self.discriminator.state()).map(|s| s.1).collect();
        for (_, positions) in crate::device::by_device(&state) {
            let flags = positions.iter().map(|&i| state[i].f_isfinite()?.f_all()).collect::<std::result::Result<Vec<_>, _>>()?;
            if Tensor::f_stack(&flags, 0)?.f_all()?.f_int64_value(&[])? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The moving average from `tensors` (`ema.gen.…`) when they hold it; otherwise (a checkpoint
    /// written without one) it starts from the loaded generator.
    fn load_ema(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let Some(ema) = &mut self.ema else { return Ok(()) };
        if !tensors.keys().any(|k| k.starts_with(EMA_PREFIX)) {
            return self.reset_ema();
        }
        let own: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(EMA_PREFIX).map(|n| (n.to_string(), t.shallow_clone())))
            .collect();
        // Shapes checked by `check_tensors`, values by `check_state`, under their own names.
        ema.copy_state(&own)
    }

    /// Loads a file written by `save` onto `device`. The header is read and the model it declares
    /// checked (against the memory limit too) before any tensor is read; then every tensor is
    /// checked (present, dtype, shape, finite, variances non-negative) and named when wrong.
    pub fn load(path: &Path, device: Device) -> Result<Gan> {
        let header = Header::read(path)?;
        let unusable = |e: Error| Error::file(path, format!("declares a model that cannot be built: {e}"));
        header.model.validate().map_err(unusable)?;
        header.train.validate().map_err(unusable)?;
        let loaded = weights::load(path)?;
        let meta = &loaded.metadata;
        let field = |key: &str| metadata_field(path, meta, key);
        // A bf16 model trained on a GPU loads on a CPU without bfloat16 convolutions too: it
        // samples, exports and evaluates in float32; training it there is refused at its first
        // step, and resuming it in fp32 works.
        let mut gan = Gan::build(header.model, header.train, device, Some(0))?;
        gan.check_tensors(&loaded.tensors).map_err(|e| Error::file(path, e))?;
        // Copied unchecked (their shapes were checked above): the whole state's values are
        // checked once at the end (`check_state`), and a refused file drops this model.
        gan.generator.copy_state(&loaded.tensors).map_err(|e| Error::file(path, e))?;
        gan.discriminator.copy_state(&loaded.tensors).map_err(|e| Error::file(path, e))?;
        gan.load_ema(&loaded.tensors).map_err(|e| Error::file(path, e))?;
        let int = |key: &str| -> Result<i64> {
            field(key)?.parse().map_err(|_| Error::file(path, format!("bad '{key}' metadata")))
        };
        gan.steps_done = header.steps;
        for (net, state) in [("gen", gan.generator.state()), ("disc", gan.discriminator.state())] {
            let opt = if net == "gen" { &mut gan.opt_g } else { &mut gan.opt_d };
            opt.step = int(&format!("optim.{net}.step"))?;
            let params = state.iter().filter(|s| !s.2).map(|s| &s.0);
            for (i, name) in params.enumerate() {
                for (kind, dst) in [("exp_avg", &mut opt.exp_avg[i]), ("exp_avg_sq", &mut opt.exp_avg_sq[i])] {
                    let key = format!("optim.{net}.{kind}.{name}");
                    let src = loaded.tensors.get(&key).ok_or_else(|| Error::file(path, format!("lacks '{key}'")))?;
                    dst.f_copy_(&src.f_to_device(device)?)?;
                }
            }
        }
        let rng: RngState = serde_json::from_str(field("rng")?).map_err(|e| Error::file(path, format!("bad 'rng' metadata: {e}")))?;
        let seed: [u8; 32] = rng.seed.try_into().map_err(|_| Error::file(path, "bad 'rng' metadata: seed is not 32 bytes"))?;
        gan.rng = ChaCha8Rng::from_seed(seed);
        gan.rng.set_stream(rng.stream);
        gan.rng.set_word_pos(rng.word_pos.parse().map_err(|_| Error::file(path, "bad 'rng' metadata: word_pos"))?);
        gan.check_state().map_err(|e| Error::file(path, e))?;
        Ok(gan)
    }

    /// Loads the generator's and the discriminator's weights and BatchNorm buffers from `path`
    /// (a file from `save`, or any safetensors file with `gen.*` or `disc.*` tensors) into this
    /// model, in place: Adam's state, counters and random stream are kept, a moving average
    /// restarts from the loaded generator. Every tensor of each network found is checked before
    /// any is copied, so a refused file leaves the model as it was. Returns the networks loaded.
    pub fn load_weights(&mut self, path: &Path) -> Result<Vec<&'static str>> {
        let tensors = weights::as_module_names(path, weights::load(path)?.tensors)?;
        let has = |prefix: &str| tensors.keys().any(|k| k.starts_with(prefix));
        let (gen, disc) = (has("gen."), has("disc."));
        if !gen && !disc {
            return Err(Error::file(path, format!("holds no 'gen.*' or 'disc.*' tensors ({}): not DCGAN weights under the seed's names", weights::some_names(&tensors))));
        }
        let in_file = |e: Error| Error::file(path, e);
        if gen {
            self.generator.check_state(&tensors).map_err(in_file)?;
        }
        if disc {
            self.discriminator.check_state(&tensors).map_err(in_file)?;
        }
        let mut found = Vec::new();
        if gen {
            self.generator.copy_state(&tensors).map_err(in_file)?;
            self.reset_ema()?;
            found.push("generator");
        }
        if disc {
            self.discriminator.copy_state(&tensors).map_err(in_file)?;
            found.push("discriminator");
        }
        Ok(found)
    }

    /// Checks that `tensors` hold every tensor this model saves, each with its dtype and shape,
    /// before any is copied in (a wrong one would otherwise fail inside libtorch, or broadcast).
    fn check_tensors(&self, tensors: &HashMap<String, Tensor>) -> std::result::Result<(), String> {
        // A checkpoint written without a moving average still loads: the average starts from it.
        let has_ema = tensors.keys().any(|k| k.starts_with(EMA_PREFIX));
        for (name, expected) in self.named_tensors() {
            if !has_ema && name.starts_with(EMA_PREFIX) {
                continue;
            }
            let found = tensors.get(&name).ok_or_else(|| format!("lacks tensor '{name}': it was saved from a different model configuration, or is not a dcgan checkpoint"))?;
            let (kind, want_kind) = (found.kind(), expected.kind());
            if kind != want_kind {
                return Err(format!("tensor '{name}' has dtype {kind:?}; expected {want_kind:?}"));
            }
            if found.size() != expected.size() {
                return Err(format!("tensor '{name}' has shape {:?}; expected {:?} for the model its header declares", found.size(), expected.size()));
            }
        }
        Ok(())
    }
}

/// Refuses what the bf16 step does not implement.
fn check_precision(model: &ModelConfig, train: &TrainOptions) -> Result<()> {
    if model.spectral_norm && train.precision == crate::config::Precision::Bf16 {
        return Err(Error::config("spectralNorm", "got true with precision 'bf16'; spectral normalisation runs in 'fp32' only"));
    }
    Ok(())
}

/// What a dcgan file says about itself, checked: the metadata that `save` writes.
pub struct Header {
    pub model: ModelConfig,
    pub train: TrainOptions,
    pub steps: i64,
    /// What the caller stored under `trainer` (the TypeScript trainer's state), parsed.
    pub trainer: Option<serde_json::Value>,
}

/// A metadata field that `save` writes, or the error for a file that lacks it.
fn metadata_field<'a>(path: &Path, meta: &'a HashMap<String, String>, key: &str) -> Result<&'a String> {
    meta.get(key).ok_or_else(|| {
        Error::file(path, format!("has no '{key}' metadata: it was not written by dcgan's save() (weights saved elsewhere, from PyTorch say, load into a model with gan.loadWeights(file))"))
    })
}

impl Header {
    /// Reads only the file's header (not its tensors).
    pub fn read(path: &Path) -> Result<Header> {
        Header::parse(path, &weights::read_metadata(path)?)
    }

    fn parse(path: &Path, meta: &HashMap<String, String>) -> Result<Header> {
        let field = |key: &str| metadata_field(path, meta, key);
        if field("format")? != FORMAT {
            return Err(Error::file(path, format!("has format '{}', this version reads '{FORMAT}'", field("format")?)));
        }
        let parse_err = |key: &str, e: serde_json::Error| Error::file(path, format!("bad '{key}' metadata: {e}"));
        let json = |key: &str| -> Result<serde_json::Value> { serde_json::from_str(field(key)?).map_err(|e| parse_err(key, e)) };
        Ok(Header {
            model: serde_json::from_value(json("model")?).map_err(|e| parse_err("model", e))?,
            train: serde_json::from_value(json("train")?).map_err(|e| parse_err("train", e))?,
            steps: field("steps")?.parse().map_err(|_| Error::file(path, "bad 'steps' metadata"))?,
            trainer: meta.get("trainer").map(|_| json("trainer")).transpose()?,
        })
    }

    /// `{ format, model, optimizer, steps, trainer }` as JSON, for tools.
    pub fn to_json(&self) -> Result<String> {
        to_json(&serde_json::json!({
            "format": FORMAT, "model": self.model, "optimizer": self.train, "steps": self.steps, "trainer": self.trainer,
        }))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Input(format!("cannot encode metadata: {e}")))
}

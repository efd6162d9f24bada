//! Model and optimiser settings, with the validation that turns bad values into clear errors.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How weights are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// The seed: every Conv/ConvTranspose/BatchNorm weight ~ N(0, 0.02).
    #[serde(rename = "seed")]
    Seed,
    /// pytorch/examples: conv weights N(0, 0.02), BatchNorm weight N(1, 0.02) and bias 0.
    #[serde(rename = "pytorch-example")]
    PytorchExample,
}

/// The generator's objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GeneratorLoss {
    /// Maximise log D(G(z)): BCE of D(G(z)) against 1 (the seed's code, and the paper's advice).
    #[serde(rename = "non-saturating")]
    NonSaturating,
    /// Minimise log(1 − D(G(z))): the minimax objective as written.
    #[serde(rename = "minimax")]
    Minimax,
}

/// The arithmetic of the training step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// Everything in float32: the seed's numbers (PyTorch parity to 1e-5).
    #[default]
    #[serde(rename = "fp32")]
    Fp32,
    /// PyTorch's autocast to bfloat16: convolutions in bfloat16, weights, Adam moments, BatchNorm
    /// statistics and losses in float32, the losses as BCE-with-logits on D's pre-sigmoid output.
    #[serde(rename = "bf16")]
    Bf16,
}

/// The discriminator's adversarial loss (and the generator's matching one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdversarialLoss {
    /// The seed's binary cross-entropy on D's probabilities.
    #[default]
    #[serde(rename = "bce")]
    Bce,
    /// SNGAN's hinge loss on D's logits: D minimises E[relu(1 − D(x))] + E[relu(1 + D(G(z)))],
    /// G minimises −E[D(G(z))].
    #[serde(rename = "hinge")]
    Hinge,
}

/// DiffAugment's differentiable augmentations (Zhao et al. 2020), applied to every image D sees,
/// real and fake, in both updates (the generator's loss takes gradients through them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Augment {
    #[default]
    #[serde(rename = "none")]
    None,
    /// Shifts by up to 1/8 of the side, zero filled.
    #[serde(rename = "translation")]
    Translation,
    /// Zeroes a square of half the side at a random place.
    #[serde(rename = "cutout")]
    Cutout,
    /// Translation, then cutout (DiffAugment's policy 'translation,cutout').
    #[serde(rename = "translation,cutout")]
    TranslationCutout,
}

impl Augment {
    pub fn translation(self) -> bool {
        matches!(self, Augment::Translation | Augment::TranslationCutout)
    }
    pub fn cutout(self) -> bool {
        matches!(self, Augment::Cutout | Augment::TranslationCutout)
    }
}

/// The shape of both networks. `image_size` 64 is exactly the seed's network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelConfig {
    pub z_dim: i64,
    pub channels: i64,
    pub features_g: i64,
    pub features_d: i64,
    pub image_size: i64,
    pub init: Init,
    /// Spectral normalisation of every discriminator convolution, as torch.nn.utils.spectral_norm
    /// (one power iteration per training forward; `weight_orig`, `weight_u`, `weight_v` in the state).
    pub spectral_norm: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { z_dim: 100, channels: 1, features_g: 64, features_d: 64, image_size: 64, init: Init::Seed, spectral_norm: false }
    }
}

/// Optimiser and schedule of the training step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrainOptions {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub d_steps: i64,
    pub generator_loss: GeneratorLoss,
    /// Absent in checkpoints written before it existed: those trained in fp32.
    #[serde(default)]
    pub precision: Precision,
    /// Learning rate of D's Adam (TTUR); `None` = `lr`.
    pub lr_d: Option<f64>,
    /// Learning rate of G's Adam (TTUR); `None` = `lr`.
    pub lr_g: Option<f64>,
    /// D's target for real images with the BCE loss: 1 is the seed's, 0.9 one-sided label smoothing.
    pub real_label: f64,
    /// The adversarial loss.
    pub loss: AdversarialLoss,
    /// R1 penalty weight γ: γ/2 · E‖∇ₓ D(x)‖² on real images (D's logits); 0 = off.
    pub r1_gamma: f64,
    /// Lazy R1: the penalty on every N-th D update only, scaled by N.
    pub r1_every: i64,
    /// DiffAugment policy for every image D sees.
    pub augment: Augment,
    /// Decay of the generator's exponential moving average (used to sample when set); 0 = off.
    /// Warm-up: the decay at G update t is min(emaDecay, (1 + t) / (10 + t)).
    pub ema_decay: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            d_steps: 1,
            generator_loss: GeneratorLoss::NonSaturating,
            precision: Precision::Fp32,
            lr_d: None,
            lr_g: None,
            real_label: 1.0,
            loss: AdversarialLoss::Bce,
            r1_gamma: 0.0,
            r1_every: 1,
            augment: Augment::None,
            ema_decay: 0.0,
        }
    }
}

/// Bytes per parameter while training: the float32 weight, its gradient, Adam's two moments,
/// and the host copy its initial values are drawn in.
const BYTES_PER_PARAMETER: u64 = 5 * 4;

pub const MIN_IMAGE_SIZE: i64 = 16;
pub const MAX_IMAGE_SIZE: i64 = 256;

fn positive_int(field: &str, value: i64, max: i64) -> Result<()> {
    crate::options::in_range(field, value, 1, max)
}

impl ModelConfig {
    pub fn validate(&self) -> Result<()> {
        positive_int("zDim", self.z_dim, 4096)?;
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::config(
                "channels",
                format!("got {}; allowed: 1 (grayscale) or 3 (RGB)", self.channels),
            ));
        }
        positive_int("featuresG", self.features_g, 1024)?;
        positive_int("featuresD", self.features_d, 1024)?;
        let s = self.image_size;
        if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&s) || s.count_ones() != 1 {
            return Err(Error::config(
                "imageSize",
                format!("got {s}; allowed: a power of two from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (16, 32, 64, 128, 256)"),
            ));
        }
        self.check_size()
    }

    /// Refuses a model that is valid field by field but too large to hold: its parameters, their
    /// gradients and Adam moments (and one image's activations) must fit the memory limit.
    fn check_size(&self) -> Result<()> {
        let what = format!(
            "a model of featuresG {}, featuresD {} at imageSize {} ({:.3e} parameters)",
            self.features_g, self.features_d, self.image_size, self.parameter_count() as f64
        );
        crate::limits::within_memory(self.training_bytes(1), &what, |m| Error::config("featuresG/featuresD/imageSize", m))
    }

    /// Parameters of both networks (as model.rs builds them; u64 arithmetic cannot overflow
    /// within the fields' ranges).
    pub fn parameter_count(&self) -> u64 {
        let n = self.upsamplings() as u32;
        let (z, c) = (self.z_dim as u64, self.channels as u64);
        let k = 16; // 4×4 kernels
        let (fg, fd) = (self.features_g as u64, self.features_d as u64);
        let mut total = 0u64;
        let mut c_in = z;
        for i in 0..n {
            let c_out = fg << (n - i);
            total += c_in * c_out * k + 2 * c_out;
            c_in = c_out;
        }
        total += c_in * c * k + c;
        total += c * fd * k + fd;
        for j in 1..n {
            total += (fd << (j - 1)) * (fd << j) * k + 2 * (fd << j);
        }
        total + (fd << (n - 1)) * k + 1
    }

    /// About what training on batches of `n` images needs: weights, gradients, moments, activations.
    pub fn training_bytes(&self, n: u64) -> u64 {
        self.parameter_count().saturating_mul(BYTES_PER_PARAMETER).saturating_add(self.activation_bytes(n, true))
    }

    /// Values of every layer's output for one image, through both networks.
    fn activations_per_image(&self) -> u64 {
        let n = self.upsamplings() as u32;
        let s = self.image_size as u64;
        let (fg, fd) = (self.features_g as u64, self.features_d as u64);
        let generator: u64 = (0..n).map(|i| (fg << (n - i)) * (4u64 << i).pow(2)).sum::<u64>() + self.channels as u64 * s * s;
        let discriminator: u64 = (0..n).map(|j| (fd << j) * (s >> (j + 1)).pow(2)).sum();
        generator + discriminator
    }

    /// About what `n` images need beyond the weights: for training, every layer's output, its
    /// normalised and activated copies and their gradients (×6); for sampling, two live layers
    /// at a time at most, counted generously (×2).
    pub fn activation_bytes(&self, n: u64, training: bool) -> u64 {
        let copies = if training { 6 } else { 2 };
        self.activations_per_image().saturating_mul(n).saturating_mul(4 * copies)
    }

    /// Number of stride-2 layers between 4×4 and the image: 4 for 64×64.
    pub fn upsamplings(&self) -> usize {
        (self.image_size.trailing_zeros() - 2) as usize
    }
}

impl TrainOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", format!("got {}; allowed: a finite number > 0 (the seed uses 0.0002)", self.lr)));
        }
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(beta.is_finite() && (0.0..1.0).contains(&beta)) {
                return Err(Error::config(field, format!("got {beta}; allowed: a number in [0, 1)")));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::config("eps", format!("got {}; allowed: a finite number > 0", self.eps)));
        }
        positive_int("dSteps", self.d_steps, 100)?;
        for (field, lr) in [("lrD", self.lr_d), ("lrG", self.lr_g)] {
            if let Some(lr) = lr {
                if !(lr.is_finite() && lr > 0.0) {
                    return Err(Error::config(field, format!("got {lr}; allowed: a finite number > 0 (unset: lr)")));
                }
            }
        }
        self.validate_stabilisers()
    }

    /// The learning rates of D's and G's Adam.
    pub fn lr_of_d(&self) -> f64 {
        self.lr_d.unwrap_or(self.lr)
    }
    pub fn lr_of_g(&self) -> f64 {
        self.lr_g.unwrap_or(self.lr)
    }

    fn validate_stabilisers(&self) -> Result<()> {
        if !(self.real_label.is_finite() && self.real_label > 0.0 && self.real_label <= 1.0) {
            return Err(Error::config("realLabel", format!("got {}; allowed: a number in (0, 1] (1: the seed; 0.9: one-sided label smoothing)", self.real_label)));
        }
        if self.loss == AdversarialLoss::Hinge {
            if self.real_label != 1.0 {
                return Err(Error::config("realLabel", format!("got {} with loss 'hinge', which has no labels; allowed: 1", self.real_label)));
            }
            if self.generator_loss != GeneratorLoss::NonSaturating {
                return Err(Error::config("generatorLoss", "got 'minimax' with loss 'hinge', whose generator loss is −E[D(G(z))]; allowed: 'non-saturating'"));
            }
        }
        if !(self.r1_gamma.is_finite() && self.r1_gamma >= 0.0) {
            return Err(Error::config("r1Gamma", format!("got {}; allowed: a finite number ≥ 0 (0: no penalty)", self.r1_gamma)));
        }
        positive_int("r1Every", self.r1_every, 1000)?;
        if !(self.ema_decay.is_finite() && (0.0..1.0).contains(&self.ema_decay)) {
            return Err(Error::config("emaDecay", format!("got {}; allowed: a number in [0, 1) (0: no moving average)", self.ema_decay)));
        }
        if self.precision == Precision::Bf16 && self.r1_gamma > 0.0 {
            return Err(Error::config("r1Gamma", format!("got {} with precision 'bf16'; the R1 penalty (a double backward) runs in 'fp32' only", self.r1_gamma)));
        }
        Ok(())
    }

    /// Whether D's losses take its logits in fp32 (hinge loss, R1 penalty) rather than its probabilities.
    pub fn needs_logits(&self) -> bool {
        self.loss == AdversarialLoss::Hinge || self.r1_gamma > 0.0
    }

    /// Checks that `device` can train in the chosen precision.
    pub fn validate_for(&self, device: tch::Device) -> Result<()> {
        if self.precision == Precision::Bf16 && device == tch::Device::Cpu && !crate::ffi::cpu_bf16_supported()? {
            return Err(Error::config(
                "precision",
                "got 'bf16', but oneDNN has no bfloat16 convolutions for this CPU (on x86 they need AVX-512 BW/VL/DQ; \
                 PyTorch's torch.ops.mkldnn._is_mkldnn_bf16_supported() says the same); use 'fp32'",
            ));
        }
        Ok(())
    }
}

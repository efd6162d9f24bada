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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { z_dim: 100, channels: 1, features_g: 64, features_d: 64, image_size: 64, init: Init::Seed }
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
        positive_int("dSteps", self.d_steps, 100)
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

//! The seed's Generator and Discriminator, generalised to image sizes 16…256, with parameter and
//! buffer names equal to the keys of the seed's PyTorch `state_dict`.
use crate::config::{Init, ModelConfig};
use crate::error::{Error, Result};
use crate::layers::{copy_of, Activation, BatchNorm, Block, Conv, Lowering, NormMode};
use rand::Rng;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

const LEAKY_SLOPE: f64 = 0.2;

/// Visits every named tensor of a network in `state_dict` order. `is_buffer` marks running
/// statistics; `num_batches_tracked` is visited as an int64 scalar made on the fly.
fn block_state(prefix: &str, b: &Block, out: &mut Vec<(String, Tensor, bool)>) {
    conv_state(&format!("{prefix}.0"), &b.conv, out);
    out.push((format!("{prefix}.1.weight"), b.bn.weight.shallow_clone(), false));
    out.push((format!("{prefix}.1.bias"), b.bn.bias.shallow_clone(), false));
    out.push((format!("{prefix}.1.running_mean"), b.bn.running_mean.shallow_clone(), true));
    out.push((format!("{prefix}.1.running_var"), b.bn.running_var.shallow_clone(), true));
    let tracked = Tensor::from(b.bn.num_batches_tracked);
    out.push((format!("{prefix}.1.num_batches_tracked"), tracked, true));
}

/// Under spectral normalisation the weight is `weight_orig` and u, v are buffers, as in PyTorch.
fn conv_state(prefix: &str, c: &Conv, out: &mut Vec<(String, Tensor, bool)>) {
    let weight = if c.spectral.is_some() { "weight_orig" } else { "weight" };
    out.push((format!("{prefix}.{weight}"), c.weight.shallow_clone(), false));
    if let Some(b) = &c.bias {
        out.push((format!("{prefix}.bias"), b.shallow_clone(), false));
    }
    if let Some(sn) = &c.spectral {
        out.push((format!("{prefix}.weight_u"), sn.u.shallow_clone(), true));
        out.push((format!("{prefix}.weight_v"), sn.v.shallow_clone(), true));
    }
}

fn bn_weight_mean(init: Init) -> f32 {
    match init {
        Init::Seed => 0.0,
        Init::PytorchExample => 1.0,
    }
}

/// BatchNorm's count of batches seen: a buffer that only momentum-free BatchNorm reads, which
/// weights saved without it (an older PyTorch, a hand-made state_dict) leave out.
fn is_batch_count(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// One network: its stride-2 blocks between an input and an output layer.
pub trait Network {
    /// Every parameter and buffer with its PyTorch name, in `state_dict` order; the flag marks buffers.
    fn state(&self) -> Vec<(String, Tensor, bool)>;

    fn blocks_mut(&mut self) -> Vec<&mut Block>;

    /// The trainable tensors, in `state_dict` order, so that Adam can re-home them in its flat buffer.
    fn parameters_mut(&mut self) -> Vec<&mut Tensor>;

    /// Checks that `tensors` (keys as in `state`) hold every tensor of this network with its
    /// shape and values that training can produce: finite, variances not negative, batch counts
    /// whole and not negative. Named when wrong.
    fn check_state(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, target, _) in &self.state() {
            if is_batch_count(name) && !tensors.contains_key(name) {
                continue; // as PyTorch's BatchNorm takes a state_dict without it: 0
            }
            let source = tensors.get(name).ok_or_else(|| {
                Error::Input(format!("the weights lack '{name}': they were saved from a different model configuration"))
            })?;
            if source.size() != target.size() {
                return Err(Error::Input(format!(
                    "'{name}' has shape {:?} in the weights but {:?} in this model: the configurations differ",
                    source.size(),
                    target.size()
                )));
            }
            check_values(name, source)?;
        }
        Ok(())
    }

    /// Copies values from `tensors` (keys as in `state`) into this network once `check_state`
    /// passed: a refused file leaves the network as it was.
    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.check_state(tensors)?;
        self.copy_state(tensors)
    }

    /// `load_state` without its check, for a caller that ran `check_state` itself (before
    /// changing anything, over several networks).
    fn copy_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let state = self.state();
        let mut tracked = Vec::new();
        for (name, target, _) in &state {
            if is_batch_count(name) {
                tracked.push(match tensors.get(name) {
                    Some(source) => source.f_int64_value(&[])?,
                    None => 0,
                });
                continue;
            }
            let source = tensors.get(name).ok_or_else(|| Error::Input(format!("the weights lack '{name}'")))?;
            tch::no_grad(|| {
                let src = source.f_to_kind(Kind::Float)?.f_to_device(target.device())?;
                target.shallow_clone().f_copy_(&src)
            })?;
        }
        for (block, n) in self.blocks_mut().into_iter().zip(tracked) {
            block.bn.num_batches_tracked = n;
        }
        Ok(())
    }
}

/// Refuses values of tensor `name` that training cannot produce, naming the tensor: NaN or
/// infinite values, a negative variance (a BatchNorm running variance, Adam's second moment), a
/// batch count that is not a whole number ≥ 0.
pub(crate) fn check_values(name: &str, t: &Tensor) -> Result<()> {
    if name.ends_with("num_batches_tracked") {
        if t.kind() != Kind::Int64 || t.f_int64_value(&[])? < 0 {
            return Err(Error::Input(implausible(name, "is not a count of batches (an int64 ≥ 0)")));
        }
        return Ok(());
    }
    if t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(Error::Input(implausible(name, "holds NaN or infinite values")));
    }
    let variance = name.ends_with(".running_var") || name.starts_with("optim.") && name.contains(".exp_avg_sq.");
    if variance && t.f_lt(0.0)?.f_any()?.f_int64_value(&[])? != 0 {
        return Err(Error::Input(implausible(name, "holds negative values, which a variance cannot have")));
    }
    Ok(())
}

fn implausible(name: &str, why: &str) -> String {
    format!("tensor '{name}' {why}; the file is corrupt or was written by a run that diverged")
}

/// z (zDim×1×1) → 4×4 → … → C×S×S through transposed convolutions, BatchNorm and ReLU, Tanh out.
pub struct Generator {
    blocks: Vec<Block>,
    out: Conv,
}

impl Generator {
    pub fn new(cfg: &ModelConfig, rng: &mut impl Rng, device: Device) -> Result<Generator> {
        let n = cfg.upsamplings() as u32;
        let f = cfg.features_g;
        let mut blocks = Vec::new();
        let mut c_in = cfg.z_dim;
        for i in 0..n {
            let c_out = f << (n - i);
            let geometry = if i == 0 { (1, 0) } else { (2, 1) };
            let conv = Conv::new(rng, (c_in, c_out), geometry, true, false, device)?;
            let bn = BatchNorm::new(rng, c_out, bn_weight_mean(cfg.init), device)?;
            blocks.push(Block { conv, bn });
            c_in = c_out;
        }
        let out = Conv::new(rng, (c_in, cfg.channels), (2, 1), true, true, device)?;
        Ok(Generator { blocks, out })
    }

    /// An independent copy (the same values in new tensors, no gradients tracked): the start of a
    /// moving average of the weights.
    pub fn copy(&self) -> Result<Generator> {
        let conv = |c: &Conv| -> Result<Conv> { c.copy() };
        let blocks = self
            .blocks
            .iter()
            .map(|b| -> Result<Block> {
                let bn = BatchNorm {
                    weight: copy_of(&b.bn.weight)?,
                    bias: copy_of(&b.bn.bias)?,
                    running_mean: copy_of(&b.bn.running_mean)?,
                    running_var: copy_of(&b.bn.running_var)?,
                    num_batches_tracked: b.bn.num_batches_tracked,
                };
                Ok(Block { conv: conv(&b.conv)?, bn })
            })
            .collect::<Result<_>>()?;
        Ok(Generator { blocks, out: conv(&self.out)? })
    }

    /// `z` is N×zDim×1×1; returns N×C×S×S in [−1, 1].
    pub fn forward(&mut self, z: &Tensor, mode: NormMode) -> Result<Tensor> {
        self.forward_with(z, mode, Lowering::Convolution)
    }

    /// `forward`, with the convolutions lowered as `how` says.
    pub fn forward_with(&mut self, z: &Tensor, mode: NormMode, how: Lowering) -> Result<Tensor> {
        let mut x = z.shallow_clone();
        for block in &mut self.blocks {
            x = block.forward_with(&x, mode, &Activation::Relu, how)?;
        }
        Ok(self.out.forward_lowered(&x, how)?.f_tanh()?)
    }
}

fn block_parameters_mut<'a>(b: &'a mut Block, out: &mut Vec<&'a mut Tensor>) {
    out.push(&mut b.conv.weight);
    out.push(&mut b.bn.weight);
    out.push(&mut b.bn.bias);
}

fn conv_parameters_mut<'a>(c: &'a mut Conv, out: &mut Vec<&'a mut Tensor>) {
    out.push(&mut c.weight);
    if let Some(b) = &mut c.bias {
        out.push(b);
    }
}

impl Network for Generator {
    fn state(&self) -> Vec<(String, Tensor, bool)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            block_state(&format!("gen.{i}"), b, &mut out);
        }
        conv_state(&format!("gen.{}", self.blocks.len()), &self.out, &mut out);
        out
    }

    fn blocks_mut(&mut self) -> Vec<&mut Block> {
        self.blocks.iter_mut().collect()
    }

    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut out = Vec::new();
        for b in &mut self.blocks {
            block_parameters_mut(b, &mut out);
        }
        conv_parameters_mut(&mut self.out, &mut out);
        out
    }
}

/// C×S×S → strided convolutions with BatchNorm (none on the input layer) and LeakyReLU(0.2) →
/// one probability per image through a Sigmoid.
pub struct Discriminator {
    input: Conv,
    blocks: Vec<Block>,
    out: Conv,
}

impl Discriminator {
    pub fn new<R: Rng>(cfg: &ModelConfig, rng: &mut R, device: Device) -> Result<Discriminator> {
        let n = cfg.upsamplings() as u32;
        let f = cfg.features_d;
        // Spectral normalisation's u and v are drawn after each conv's weights (when it is on).
        let spectral = |c: Conv, rng: &mut R| if cfg.spectral_norm { c.with_spectral_norm(rng) } else { Ok(c) };
        let input = spectral(Conv::new(rng, (cfg.channels, f), (2, 1), false, true, device)?, rng)?;
        let mut blocks = Vec::new();
        for j in 1..n {
            let (c_in, c_out) = (f << (j - 1), f << j);
            let conv = spectral(Conv::new(rng, (c_in, c_out), (2, 1), false, false, device)?, rng)?;
            let bn = BatchNorm::new(rng, c_out, bn_weight_mean(cfg.init), device)?;
            blocks.push(Block { conv, bn });
        }
        let out = spectral(Conv::new(rng, (f << (n - 1), 1), (2, 0), false, true, device)?, rng)?;
        Ok(Discriminator { input, blocks, out })
    }

    /// `x` is N×C×S×S; returns N probabilities that each image is real.
    pub fn forward(&mut self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        self.forward_with(x, mode, Lowering::Convolution)
    }

    /// `forward`, with the convolutions lowered as `how` says.
    pub fn forward_with(&mut self, x: &Tensor, mode: NormMode, how: Lowering) -> Result<Tensor> {
        Ok(self.logits(x, mode, how)?.f_sigmoid()?)
    }

    /// The N pre-sigmoid outputs (logits): what a loss that is safe in bfloat16 takes, with the
    /// convolutions lowered as `how` says.
    pub fn logits(&mut self, x: &Tensor, mode: NormMode, how: Lowering) -> Result<Tensor> {
        let mut h = crate::ffi::leaky_relu(&self.input.forward_in(x, mode, how)?, LEAKY_SLOPE, true)?;
        for block in &mut self.blocks {
            h = block.forward_with(&h, mode, &Activation::LeakyRelu(LEAKY_SLOPE), how)?;
        }
        Ok(self.out.forward_in(&h, mode, how)?.f_reshape([-1])?)
    }

    /// The input of the last convolution (N×8f×4×4 for the seed's sizes): the features that
    /// evaluation measures on datasets other than MNIST. Running statistics are not updated
    /// unless `mode` is `Train`.
    pub fn features(&mut self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        let mut h = crate::ffi::leaky_relu(&self.input.forward_in(x, mode, Lowering::Convolution)?, LEAKY_SLOPE, false)?;
        for block in &mut self.blocks {
            h = block.forward(&h, mode, &Activation::LeakyRelu(LEAKY_SLOPE))?;
        }
        Ok(h)
    }
}

impl Network for Discriminator {
    fn state(&self) -> Vec<(String, Tensor, bool)> {
        let mut out = Vec::new();
        conv_state("disc.0", &self.input, &mut out);
        for (j, b) in self.blocks.iter().enumerate() {
            block_state(&format!("disc.{}", j + 2), b, &mut out);
        }
        conv_state(&format!("disc.{}", self.blocks.len() + 2), &self.out, &mut out);
        out
    }

    fn blocks_mut(&mut self) -> Vec<&mut Block> {
        self.blocks.iter_mut().collect()
    }
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut out = Vec::new();
        conv_parameters_mut(&mut self.input, &mut out);
        for b in &mut self.blocks {
            block_parameters_mut(b, &mut out);
        }
        conv_parameters_mut(&mut self.out, &mut out);
        out
    }
}

//! The two layer kinds the networks are made of, named as PyTorch names them in a `state_dict`.
use crate::error::Result;
use crate::ffi::{self, MatmulParts};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use tch::{Device, Kind, Tensor};

/// The side of every convolution kernel: 4×4 throughout a DCGAN.
pub const KERNEL: i64 = 4;

/// A Conv2d or ConvTranspose2d with a 4×4 kernel.
pub struct Conv {
    /// The weight (`weight_orig` under spectral normalisation).
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    transposed: bool,
    /// Spectral normalisation's power-iteration vectors, when it is on.
    pub spectral: Option<SpectralNorm>,
}

/// torch.nn.utils.spectral_norm's state for a Conv2d (dim 0): `weight_u` (out channels) and
/// `weight_v` (in channels × 4 × 4), unit vectors.
pub struct SpectralNorm {
    pub u: Tensor,
    pub v: Tensor,
}

/// A new tensor with `t`'s values.
pub fn copy_of(t: &Tensor) -> Result<Tensor> {
    let out = t.f_detach()?.f_zeros_like()?;
    out.shallow_clone().f_copy_(t)?;
    Ok(out)
}

/// PyTorch's spectral_norm ε (of F.normalize).
const SPECTRAL_EPS: f64 = 1e-12;

/// F.normalize(x, dim=0, eps): x / max(‖x‖₂, ε).
fn normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.f_norm_scalaropt_dim(2.0, [0i64], true)?.f_clamp_min(SPECTRAL_EPS)?;
    Ok(x.f_div(&norm.f_expand_as(x)?)?)
}

impl SpectralNorm {
    /// u, v ~ normalize(N(0, 1)) as spectral_norm draws them, from `rng`.
    pub fn new(rng: &mut impl Rng, weight: &Tensor) -> Result<SpectralNorm> {
        let size = weight.size();
        let (h, w) = (size[0], size[1..].iter().product::<i64>());
        // Normalised on the host, then moved: a GPU's norm may differ in the last bit, and a
        // seeded model starts from the same u and v on every device.
        let mut start = |n: i64| -> Result<Tensor> { Ok(normalize(&normal(rng, 0.0, 1.0, &[n], Device::Cpu)?)?.f_to_device(weight.device())?) };
        let u = start(h)?;
        let v = start(w)?;
        Ok(SpectralNorm { u, v })
    }

    /// weight / σ, σ = uᵀ W v; in training first one power iteration (u and v updated in place,
    /// without gradients), as spectral_norm's forward pre-hook computes it.
    fn normalized(&self, weight: &Tensor, power_iteration: bool) -> Result<Tensor> {
        let h = weight.size()[0];
        let mat = weight.f_reshape([h, -1])?;
        if power_iteration {
            tch::no_grad(|| -> Result<()> {
                let v = normalize(&mat.f_transpose(0, 1)?.f_mv(&self.u)?)?;
                self.v.shallow_clone().f_copy_(&v)?;
                let u = normalize(&mat.f_mv(&self.v)?)?;
                self.u.shallow_clone().f_copy_(&u)?;
                Ok(())
            })?;
        }
        // Copies, as PyTorch clones them: the next power iteration writes u and v in place while
        // this forward's graph still holds them.
        let (u, v) = (copy_of(&self.u)?, copy_of(&self.v)?);
        let sigma = u.f_dot(&mat.f_mv(&v)?)?;
        Ok(weight.f_div(&sigma)?)
    }
}

/// How a BatchNorm layer normalises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormMode {
    /// Batch statistics, running statistics updated (training).
    Train,
    /// Running statistics (evaluation).
    Eval,
    /// Batch statistics without touching the running ones (sampling as the seed watches progress).
    BatchStats,
}

pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// PyTorch's int64 buffer, kept on the host: with momentum 0.1 it never enters the arithmetic.
    pub num_batches_tracked: i64,
}

/// Draws from `dist` into a new float tensor of `shape` on `device` (uploaded without waiting for
/// the GPU's queue: the noise of every step is drawn here).
pub fn sample<D: Distribution<f32>>(rng: &mut impl Rng, dist: D, shape: &[i64], device: Device) -> Result<Tensor> {
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| dist.sample(rng)).collect();
    crate::device::upload(&Tensor::f_from_slice(&values)?.f_view(shape)?, device)
}

pub fn normal(rng: &mut impl Rng, mean: f32, std: f32, shape: &[i64], device: Device) -> Result<Tensor> {
    sample(rng, Normal::new(mean, std).expect("std is a positive constant"), shape, device)
}

fn parameter(t: Tensor) -> Result<Tensor> {
    Ok(t.f_set_requires_grad(true)?)
}

impl Conv {
    /// A 4×4 (transposed) convolution; weights N(0, 0.02) as in the seed, bias (when present)
    /// PyTorch's default U(−1/√fan_in, 1/√fan_in), which the seed leaves as it is.
    pub fn new(
        rng: &mut impl Rng,
        (c_in, c_out): (i64, i64),
        (stride, padding): (i64, i64),
        transposed: bool,
        bias: bool,
        device: Device,
    ) -> Result<Conv> {
        let shape = if transposed { [c_in, c_out, KERNEL, KERNEL] } else { [c_out, c_in, KERNEL, KERNEL] };
        let weight = parameter(normal(rng, 0.0, 0.02, &shape, device)?)?;
        let bias = if bias {
            let bound = 1.0 / ((shape[1] * KERNEL * KERNEL) as f32).sqrt();
            let dist = Uniform::new(-bound, bound).expect("bound is positive");
            Some(parameter(sample(rng, dist, &[c_out], device)?)?)
        } else {
            None
        };
        Ok(Conv { weight, bias, stride, padding, transposed, spectral: None })
    }

    /// An independent copy of the weights (no gradients tracked) and of the spectral state.
    pub fn copy(&self) -> Result<Conv> {
        let spectral = match &self.spectral {
            Some(sn) => Some(SpectralNorm { u: copy_of(&sn.u)?, v: copy_of(&sn.v)? }),
            None => None,
        };
        let bias = self.bias.as_ref().map(copy_of).transpose()?;
        let (stride, padding, transposed) = (self.stride, self.padding, self.transposed);
        Ok(Conv { weight: copy_of(&self.weight)?, bias, stride, padding, transposed, spectral })
    }

    /// Turns on spectral normalisation, drawing u and v from `rng`.
    pub fn with_spectral_norm(mut self, rng: &mut impl Rng) -> Result<Conv> {
        self.spectral = Some(SpectralNorm::new(rng, &self.weight)?);
        Ok(self)
    }

    /// The convolution with its weight (spectrally normalised when that is on, without a power
    /// iteration).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_in(x, NormMode::Eval, Lowering::Convolution)
    }

    /// The convolution in `mode`: under spectral normalisation a training forward first runs one
    /// power iteration, as PyTorch's hook does in `module.training`.
    pub fn forward_in(&self, x: &Tensor, mode: NormMode, how: Lowering) -> Result<Tensor> {
        match &self.spectral {
            None if how == Lowering::Convolution => self.convolve(x, &self.weight),
            None => self.forward_lowered(x, how),
            Some(sn) => self.convolve(x, &sn.normalized(&self.weight, mode == NormMode::Train)?),
        }
    }

    fn convolve(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let (s, p) = ([self.stride; 2], [self.padding; 2]);
        Ok(if self.transposed {
            x.f_conv_transpose2d(weight, self.bias.as_ref(), s, p, [0, 0], 1, [1, 1])?
        } else {
            x.f_conv2d(weight, self.bias.as_ref(), s, p, [1, 1], 1)?
        })
    }
}

/// How the convolutions of a network are computed. Both ways give the same sums in another order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lowering {
    /// libtorch's convolutions, as PyTorch runs them.
    Convolution,
    /// For float32 on the CPU: the two layers whose kernel covers their whole input or output
    /// (G's first, 1×1 → 4×4; D's last, 4×4 → 1×1) as one matrix product each, the others as
    /// convolutions. oneDNN runs those two as convolutions over a 1×1 or 4×4 image, 2.5–5× slower
    /// forward and backward than the matrix product (measured at 32–512 channels, batch 32–128).
    DenseMatmul,
    /// For float32 on the CPU: `DenseMatmul`, and in the strided layers the parts that oneDNN runs
    /// far below a matrix product's speed (2 threads, batch 128, AVX-512; `Conv::fp32_matmul_parts`):
    /// the weight gradient (and, transposed, the input gradient) of a wide layer at a 4×4 side
    /// (1024/512 channels: 237 against 494 ms), and the scatter of an image-side layer: G's
    /// output forward with 1–3 channels (128→1 channels at 32×32: 11 against 43 ms), D's input
    /// gradient and weight gradient on one-channel images.
    Fp32Matmul,
    /// For bfloat16 under autocast, where oneDNN's weight gradients are slow for some shapes
    /// (measured: tens of ms for 0.1 GFLOP on the dense layers, 3–4× a matrix product's time on
    /// wide layers at a 4×4 side): a layer whose kernel covers its whole input or output (G's
    /// first, 1×1 → 4×4; D's last, 4×4 → 1×1) as one matrix product, and a wide strided layer
    /// with its weight gradient as one matrix product.
    Bf16Matmul,
}

/// The fewest channels on both sides for which a matrix product beats oneDNN's bfloat16 weight
/// gradient at a 4×4 side (measured on an AMX CPU, batch 128, one thread: 512/1024 channels 223
/// vs 856 ms, 128/256 channels 25 vs 32 ms, 64/128 channels 10 vs 7 ms).
const MATMUL_WEIGHT_GRAD_MIN_CHANNELS: i64 = 128;

/// The same in float32 (AMD EPYC, AVX-512, 2 threads, batch 128): 768/384 channels 124 vs 234 ms,
/// 1024/512 channels 237 vs 494 ms, but 512/256 channels 61 vs 47 ms.
const FP32_MATMUL_WEIGHT_GRAD_MIN_CHANNELS: i64 = 384;

/// The most output channels of G's output layer (grey or RGB) for which oneDNN's float32
/// transposed convolution forward is slower than a matrix product and a fold (batch 128, 2
/// threads): 128→1 channels at 64×64 43 vs 12 ms, 128→3 76 vs 26 ms, 64→3 at 32×32 6.7 vs 5.3 ms.
const FP32_SCATTER_MAX_CHANNELS: i64 = 3;

/// The same for D's input gradient, needed in the generator update (all gradients of the
/// layer): on grey images 1→64 channels at 64×64 83 vs 51 ms, 1→32 at 32×32 7.8–10.1 vs 3.1–3.5
/// ms; not on RGB images at 32×32 (4.7–7.9 vs 7.3–10.7 ms).
const FP32_INPUT_SCATTER_MAX_CHANNELS: i64 = 1;

/// The fewest output channels of D's input layer on a one-channel image for which a matrix
/// product beats oneDNN's float32 weight gradient (all gradients of the layer, batch 128: 64
/// channels at 64×64 33–29 vs 58–64 ms, 32 at 32×32 3.0–3.1 vs 3.5–4.8 ms; but 16 channels 17.6 vs
/// 14.3 ms, and 3 image channels 48 vs 39 ms).
const FP32_GREY_INPUT_WEIGHT_GRAD_MIN_CHANNELS: i64 = 32;

impl Conv {
    /// `forward`, lowered as `how` says.
    pub fn forward_lowered(&self, x: &Tensor, how: Lowering) -> Result<Tensor> {
        if how == Lowering::Convolution {
            return self.convolve(x, &self.weight);
        }
        if self.is_dense() {
            return self.dense_matmul(x);
        }
        if how == Lowering::Bf16Matmul && self.bias.is_none() && self.matmul_weight_grad_pays(x, MATMUL_WEIGHT_GRAD_MIN_CHANNELS) {
            let (x, w) = (x.f_to_kind(Kind::BFloat16)?, self.weight.f_to_kind(Kind::BFloat16)?);
            return ffi::conv_by_matmul(&x, &w, None, self.transposed, MatmulParts::WEIGHT_GRAD);
        }
        if how == Lowering::Fp32Matmul {
            let parts = self.fp32_matmul_parts(x);
            if !parts.is_empty() {
                return ffi::conv_by_matmul(x, &self.weight, self.bias.as_ref(), self.transposed, parts);
            }
        }
        self.convolve(x, &self.weight)
    }

    /// Whether this is a stride-2 layer whose half-resolution side is 4×4 and whose channels are
    /// `min_channels` or more on both sides.
    fn matmul_weight_grad_pays(&self, x: &Tensor, min_channels: i64) -> bool {
        let size = x.size();
        let small_side = if self.transposed { size[2] } else { size[2] / 2 };
        let (a, b) = (self.weight.size()[0], self.weight.size()[1]);
        self.is_strided() && small_side <= 4 && a.min(b) >= min_channels
    }

    /// What `Lowering::Fp32Matmul` computes as matrix products in this layer for input `x`.
    fn fp32_matmul_parts(&self, x: &Tensor) -> MatmulParts {
        if !self.is_strided() {
            return MatmulParts::NONE;
        }
        // Dimension 1 of the weight is the high-resolution side in both kinds of layer.
        let (small, big) = (self.weight.size()[0], self.weight.size()[1]);
        let scatter_max = if self.transposed { FP32_SCATTER_MAX_CHANNELS } else { FP32_INPUT_SCATTER_MAX_CHANNELS };
        let mut parts = if big <= scatter_max { MatmulParts::SCATTER } else { MatmulParts::NONE };
        if !self.transposed && big == 1 && small >= FP32_GREY_INPUT_WEIGHT_GRAD_MIN_CHANNELS {
            parts = parts | MatmulParts::WEIGHT_GRAD;
        }
        if self.matmul_weight_grad_pays(x, FP32_MATMUL_WEIGHT_GRAD_MIN_CHANNELS) {
            parts = parts | MatmulParts::WEIGHT_GRAD;
            if self.transposed {
                parts = parts | MatmulParts::GATHER_GRAD;
            }
        }
        parts
    }

    /// Whether this is a 4×4, stride-2, padding-1 layer: one that halves or doubles the side.
    fn is_strided(&self) -> bool {
        self.stride == 2 && self.padding == 1
    }

    /// The map of a dense layer as one matrix product on channels-last views (no copies when
    /// input and weight are channels-last).
    fn dense_matmul(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.size()[0];
        let nhwc = |t: &Tensor| t.f_permute([0, 2, 3, 1]);
        if self.transposed {
            // z: N×I×1×1, weight I×O×4×4: out[n, :, :, o] = Σi z[n, i] w[i, :, :, o].
            let (i, o) = (self.weight.size()[0], self.weight.size()[1]);
            let w = nhwc(&self.weight)?.f_reshape([i, KERNEL * KERNEL * o])?;
            let y = x.f_reshape([n, i])?.f_matmul(&w)?.f_view([n, KERNEL, KERNEL, o])?.f_permute([0, 3, 1, 2])?;
            return Ok(match &self.bias {
                Some(b) => y.f_add(&b.f_view([1, o, 1, 1])?)?,
                None => y,
            });
        }
        // x: N×C×4×4, weight O×C×4×4: out[n, o] = Σ x[n, c, h, w] w[o, c, h, w], then N×O×1×1.
        let o = self.weight.size()[0];
        let xs = nhwc(x)?.f_reshape([n, -1])?;
        let w = nhwc(&self.weight)?.f_reshape([o, -1])?;
        Ok(xs.f_linear(&w, self.bias.as_ref())?.f_view([n, o, 1, 1])?)
    }

    /// Whether the kernel covers the whole input (transposed: a 1×1 input) so that
    /// `forward_dense` applies.
    pub fn is_dense(&self) -> bool {
        self.padding == 0 && (self.transposed == (self.stride == 1))
    }
}

impl BatchNorm {
    pub fn new(rng: &mut impl Rng, channels: i64, weight_mean: f32, device: Device) -> Result<BatchNorm> {
        Ok(BatchNorm {
            weight: parameter(normal(rng, weight_mean, 0.02, &[channels], device)?)?,
            bias: parameter(Tensor::f_zeros([channels], (Kind::Float, device))?)?,
            running_mean: Tensor::f_zeros([channels], (Kind::Float, device))?,
            running_var: Tensor::f_ones([channels], (Kind::Float, device))?,
            num_batches_tracked: 0,
        })
    }

    pub fn forward(&mut self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        let (running_mean, running_var) = match mode {
            NormMode::BatchStats => (None, None),
            _ => (Some(&self.running_mean), Some(&self.running_var)),
        };
        let training = mode != NormMode::Eval;
        if mode == NormMode::Train {
            self.num_batches_tracked += 1;
            if let Some(y) = crate::distributed::sync_batch_norm(x, &self.weight, &self.bias, &self.running_mean, &self.running_var, 0.1, 1e-5)? {
                return Ok(y);
            }
        }
        let cudnn = true; // what torch.nn.BatchNorm2d passes (torch.backends.cudnn.enabled)
        Ok(x.f_batch_norm(Some(&self.weight), Some(&self.bias), running_mean, running_var, training, 0.1, 1e-5, cudnn)?)
    }
}

/// A transposed or strided convolution followed by BatchNorm: one `_block` of the seed.
pub struct Block {
    pub conv: Conv,
    pub bn: BatchNorm,
}

/// Activation applied after a block.
pub enum Activation {
    Relu,
    LeakyRelu(f64),
}

impl Block {
    pub fn forward(&mut self, x: &Tensor, mode: NormMode, act: &Activation) -> Result<Tensor> {
        self.forward_with(x, mode, act, Lowering::Convolution)
    }

    /// `forward`, with the convolution lowered as `how` says.
    pub fn forward_with(&mut self, x: &Tensor, mode: NormMode, act: &Activation, how: Lowering) -> Result<Tensor> {
        let mut y = self.bn.forward(&self.conv.forward_in(x, mode, how)?, mode)?;
        // In place is safe: BatchNorm's backward needs its input, not its output.
        match act {
            Activation::Relu => Ok(y.f_relu_()?),
            Activation::LeakyRelu(slope) => ffi::leaky_relu(&y, *slope, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The parts `Fp32Matmul` picks for a (transposed) layer with `c_in` → `c_out` channels on
    /// an input of side `side`. The weight's dimensions differ between the two kinds of layer
    /// (transposed: in × out; convolution: out × in), which the choice must see through.
    fn parts(transposed: bool, (c_in, c_out): (i64, i64), geometry: (i64, i64), bias: bool, side: i64) -> MatmulParts {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let conv = Conv::new(&mut rng, (c_in, c_out), geometry, transposed, bias, Device::Cpu).unwrap();
        conv.fp32_matmul_parts(&Tensor::zeros([2, c_in, side, side], (Kind::Float, Device::Cpu)))
    }

    #[test]
    fn fp32_lowering_takes_the_matrix_products_only_where_they_were_measured_faster() {
        use MatmulParts as P;
        // G's output layer, grey and RGB: the forward's scatter.
        assert_eq!(parts(true, (128, 1), (2, 1), true, 32), P::SCATTER);
        assert_eq!(parts(true, (64, 3), (2, 1), true, 16), P::SCATTER);
        // D's input layer: grey from 32 channels scatter and weight gradient, fewer channels the
        // scatter alone; RGB neither.
        assert_eq!(parts(false, (1, 64), (2, 1), true, 64), P::SCATTER | P::WEIGHT_GRAD);
        assert_eq!(parts(false, (1, 16), (2, 1), true, 32), P::SCATTER);
        assert_eq!(parts(false, (3, 64), (2, 1), true, 64), P::NONE);
        // Wide layers at a 4×4 side: G's 1024→512 both gradients, D's 512→1024 the weight's;
        // 512/256 channels or an 8×8 side neither.
        assert_eq!(parts(true, (1024, 512), (2, 1), false, 4), P::WEIGHT_GRAD | P::GATHER_GRAD);
        assert_eq!(parts(false, (512, 1024), (2, 1), false, 8), P::WEIGHT_GRAD);
        assert_eq!(parts(true, (512, 256), (2, 1), false, 4), P::NONE);
        assert_eq!(parts(true, (1024, 512), (2, 1), false, 8), P::NONE);
        assert_eq!(parts(false, (256, 512), (2, 1), false, 8), P::NONE);
        // The dense layers are not strided: they have their own matrix product.
        assert_eq!(parts(true, (100, 1024), (1, 0), false, 1), P::NONE);
        assert_eq!(parts(false, (512, 1), (2, 0), true, 4), P::NONE);
    }
}

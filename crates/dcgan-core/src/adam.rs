//! Adam over tensors this library owns, so that its moments can be saved and restored
//! (tch's built-in optimiser hides them). The arithmetic is torch.optim.Adam's, in csrc/shim.cpp.
//!
//! All parameters of a network live in one flat buffer (each parameter a view into it), and so do
//! both moments: an update is then a handful of large element-wise ops instead of seven per
//! parameter. Element-wise arithmetic does not depend on layout. The update itself is ATen's fused
//! kernel (torch.optim.Adam(fused=True)); `DCGAN_FUSED_ADAM=0` switches to the per-op arithmetic,
//! whose numbers are exactly those of PyTorch's default per-parameter loop.
use crate::error::Result;
use crate::ffi::{self, AdamHyper, AdamKernel};
use tch::{Kind, Tensor};

pub struct Adam {
    pub hyper: AdamHyper,
    /// Number of updates made so far (PyTorch's `state['step']`).
    pub step: i64,
    /// The parameters (leaf views of the flat buffer), in order: what gradients are taken for.
    pub params: Vec<Tensor>,
    /// Per-parameter views of the flat moments, in parameter order.
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
    flat_params: Tensor,
    flat_exp_avg: Tensor,
    flat_exp_avg_sq: Tensor,
    channels_last: bool,
    kernel: AdamKernel,
    /// `step` as a tensor on the device, while updates run through a CUDA graph (`count_on_device`).
    device_step: Option<Tensor>,
}

/// Strides of a channels-last (NHWC in memory) tensor of NCHW `shape`.
fn channels_last_strides(shape: &[i64]) -> Vec<i64> {
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    vec![h * w * c, 1, w * c, c]
}

/// Views of `flat`, one per shape, laid out one after another; 4-d ones channels-last when asked,
/// which is the layout oneDNN's convolutions run fastest on.
fn views(flat: &Tensor, shapes: &[Vec<i64>], channels_last: bool) -> Result<Vec<Tensor>> {
    let mut offset = 0;
    let mut out = Vec::with_capacity(shapes.len());
    for shape in shapes {
        let n: i64 = shape.iter().product();
        let v = if channels_last && shape.len() == 4 {
            flat.f_as_strided(shape.as_slice(), channels_last_strides(shape).as_slice(), offset)?
        } else {
            flat.f_narrow(0, offset, n)?.f_view(shape.as_slice())?
        };
        out.push(v);
        offset += n;
    }
    Ok(out)
}

/// The values of `g` in the memory order of a parameter laid out as `views` lays it out.
fn physical_order(g: &Tensor, channels_last: bool) -> Result<Tensor> {
    Ok(if channels_last && g.dim() == 4 { g.f_permute([0, 2, 3, 1])?.f_reshape([-1])? } else { g.f_reshape([-1])? })
}

impl Adam {
    /// Moves `params` into one flat buffer (each becomes a leaf view of it, values unchanged) and
    /// makes zero moments beside it.
    pub fn new(params: Vec<&mut Tensor>, hyper: AdamHyper, channels_last: bool) -> Result<Adam> {
        let shapes: Vec<Vec<i64>> = params.iter().map(|p| p.size()).collect();
        let total: i64 = shapes.iter().map(|s| s.iter().product::<i64>()).sum();
        let device = params.first().map(|p| p.device()).unwrap_or(tch::Device::Cpu);
        let flat_params = Tensor::f_zeros([total], (Kind::Float, device))?;
        let mut leaves = Vec::with_capacity(shapes.len());
        for (p, mut view) in params.into_iter().zip(views(&flat_params, &shapes, channels_last)?) {
            tch::no_grad(|| view.f_copy_(p))?;
            *p = view.f_detach()?.f_set_requires_grad(true)?;
            leaves.push(p.shallow_clone());
        }
        let flat_exp_avg = flat_params.f_zeros_like()?;
        let flat_exp_avg_sq = flat_params.f_zeros_like()?;
        Ok(Adam {
            hyper,
            step: 0,
            params: leaves,
            exp_avg: views(&flat_exp_avg, &shapes, channels_last)?,
            exp_avg_sq: views(&flat_exp_avg_sq, &shapes, channels_last)?,
            flat_params,
            flat_exp_avg,
            flat_exp_avg_sq,
            channels_last,
            kernel: default_kernel(),
            device_step: None,
        })
    }

    /// The same optimiser computing its updates with `kernel` (the default is the process's:
    /// fused unless `DCGAN_FUSED_ADAM=0`); a count on the device is remade in the kernel's type.
    pub fn with_kernel(mut self, kernel: AdamKernel) -> Result<Adam> {
        self.kernel = kernel;
        if self.device_step.is_some() {
            self.count_on_device()?;
        }
        Ok(self)
    }

    /// Updates the parameters in place with `grads` (one per parameter, in order).
    pub fn update(&mut self, grads: &[Tensor]) -> Result<()> {
        self.update_sharing(grads, None).map(|_| ())
    }

    /// `update`, and in a data-parallel group `extra` (a few numbers: the step's losses) averaged
    /// over the ranks in the same all-reduce as the gradients, appended to their flat buffer.
    /// Returns `extra` averaged (as it is without a group).
    pub fn update_sharing(&mut self, grads: &[Tensor], extra: Option<&Tensor>) -> Result<Option<Tensor>> {
        let mut flat: Vec<Tensor> = grads.iter().map(|g| physical_order(g, self.channels_last)).collect::<Result<_>>()?;
        let in_group = crate::distributed::rank_and_world().is_some_and(|(_, world)| world > 1);
        let shared = match extra {
            Some(e) if in_group => Some(e.f_to_kind(Kind::Float)?.f_reshape([-1])?),
            _ => None,
        };
        flat.extend(shared.iter().map(|e| e.shallow_clone()));
        let all = Tensor::f_cat(&flat, 0)?;
        crate::distributed::average_gradients(&all)?;
        let total = self.flat_params.numel() as i64;
        let (flat_grad, averaged) = match shared {
            Some(e) => (all.f_narrow(0, 0, total)?, Some(all.f_narrow(0, total, e.numel() as i64)?)),
            None => (all, extra.map(|e| e.shallow_clone())),
        };
        self.step += 1;
        let count = match &self.device_step {
            Some(t) => ffi::StepCount::OnDevice(t),
            None => ffi::StepCount::Host(self.step),
        };
        ffi::adam_step(
            &[self.flat_params.shallow_clone()],
            &[flat_grad],
            &[self.flat_exp_avg.shallow_clone()],
            &[self.flat_exp_avg_sq.shallow_clone()],
            self.hyper,
            count,
            self.kernel,
        )?;
        Ok(averaged)
    }

    /// From now on the bias corrections come from a step count kept on the parameters' device
    /// (torch.optim.Adam's `capturable` arithmetic), so that a captured CUDA graph replays
    /// correct updates; `step` on the host still counts. Agrees with the host path within float
    /// rounding.
    pub fn count_on_device(&mut self) -> Result<()> {
        // The per-op arithmetic counts in float64, unlike PyTorch's float32 count: 1 − 0.999ᵗ loses
        // 1e-5 of itself in float32. The fused kernel reads a float32 count (exact to 2²⁴ steps)
        // and, on CUDA, computes 1 − βᵗ in the weights' float32, as torch's fused Adam does.
        let kind = match self.kernel {
            AdamKernel::PerOp => Kind::Double,
            AdamKernel::Fused => Kind::Float,
        };
        let t = Tensor::f_full([], self.step as f64, (kind, self.flat_params.device()))?;
        self.device_step = Some(t);
        Ok(())
    }

    /// Back to the host's step count (torch.optim.Adam's default arithmetic).
    pub fn count_on_host(&mut self) {
        self.device_step = None;
    }
}

/// Fused unless `DCGAN_FUSED_ADAM=0` (kept for measuring and for bit-for-bit runs), read once per
/// process.
fn default_kernel() -> AdamKernel {
    static KERNEL: std::sync::OnceLock<AdamKernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| if crate::env_switch("DCGAN_FUSED_ADAM", true) { AdamKernel::Fused } else { AdamKernel::PerOp })
}

//! Adam over tensors this library owns, so that its moments can be saved and restored
//! (tch's built-in optimiser hides them). The arithmetic is torch.optim.Adam's, in csrc/shim.cpp.
use crate::error::Result;
use crate::ffi::{self, AdamHyper};
use tch::Tensor;

pub struct Adam {
    pub hyper: AdamHyper,
    /// Number of updates made so far (PyTorch's `state['step']`).
    pub step: i64,
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
}

impl Adam {
    /// Zero moments shaped like `params`.
    pub fn new(params: &[Tensor], hyper: AdamHyper) -> Result<Adam> {
        let zeros = || params.iter().map(|p| p.f_zeros_like()).collect::<std::result::Result<Vec<_>, _>>();
        Ok(Adam { hyper, step: 0, exp_avg: zeros()?, exp_avg_sq: zeros()? })
    }

    /// Updates `params` in place with `grads` (same order as at construction).
    pub fn update(&mut self, params: &[Tensor], grads: &[Tensor]) -> Result<()> {
        self.step += 1;
        ffi::adam_step(params, grads, &self.exp_avg, &self.exp_avg_sq, self.hyper, self.step)
    }
}

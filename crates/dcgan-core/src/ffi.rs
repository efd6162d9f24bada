//! Safe wrappers over csrc/shim.cpp: libtorch calls that tch does not bind.
use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, CStr};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn dcgan_leaky_relu(x: *mut C_tensor, slope: f64, in_place: c_int, out: *mut *mut C_tensor) -> *const c_char;
    fn dcgan_channels_last(x: *mut C_tensor, out: *mut *mut C_tensor) -> *const c_char;
    fn dcgan_adam_step(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        step: i64,
    ) -> *const c_char;
}

fn check(err: *const c_char) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns a NUL-terminated string that lives until its next call on this thread.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    Err(Error::Torch(tch::TchError::Torch(message)))
}

fn raw(t: &Tensor) -> *mut C_tensor {
    t.as_ptr() as *mut C_tensor
}

/// `torch.nn.functional.leaky_relu(x, slope, inplace)`.
pub fn leaky_relu(x: &Tensor, slope: f64, in_place: bool) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    check(unsafe { dcgan_leaky_relu(raw(x), slope, in_place as c_int, &mut out) })?;
    // SAFETY: on success the shim stored a new heap-allocated at::Tensor in `out`.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `x` laid out channels-last (NHWC in memory; same shape and values). A no-op when it already is.
pub fn channels_last(x: &Tensor) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    check(unsafe { dcgan_channels_last(raw(x), &mut out) })?;
    // SAFETY: on success the shim stored a new heap-allocated at::Tensor in `out`.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Hyperparameters of one Adam update.
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// Applies Adam step number `step` (1-based) to every parameter, in place.
pub fn adam_step(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    hyper: AdamHyper,
    step: i64,
) -> Result<()> {
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        return Err(Error::Input(format!(
            "Adam got {n} parameters but {} gradients, {} first and {} second moments",
            grads.len(),
            exp_avgs.len(),
            exp_avg_sqs.len()
        )));
    }
    let ptrs = |ts: &[Tensor]| ts.iter().map(raw).collect::<Vec<_>>();
    let (p, g, m, v) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs));
    check(unsafe {
        dcgan_adam_step(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            n as i64,
            hyper.lr,
            hyper.beta1,
            hyper.beta2,
            hyper.eps,
            step,
        )
    })
}

//! Safe wrappers over csrc/shim.cpp: libtorch calls that tch does not bind.
use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use tch::{Device, Tensor};
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
    fn dcgan_adam_step_on_device(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        step: *mut C_tensor,
    ) -> *const c_char;
    fn dcgan_adam_step_fused(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        step: *mut C_tensor,
    ) -> *const c_char;
    fn dcgan_autocast_enter_bf16(device_type: c_int, prev: *mut c_int) -> *const c_char;
    fn dcgan_autocast_exit(device_type: c_int, prev: *const c_int) -> *const c_char;
    fn dcgan_cpu_bf16_supported(out: *mut c_int) -> *const c_char;
    fn dcgan_event_record(device_index: c_int, out: *mut *mut std::ffi::c_void) -> *const c_char;
    fn dcgan_event_synchronize(event: *mut std::ffi::c_void) -> *const c_char;
    fn dcgan_event_query(event: *mut std::ffi::c_void, done: *mut c_int) -> *const c_char;
    fn dcgan_event_free(event: *mut std::ffi::c_void);
    fn dcgan_pin_memory(x: *mut C_tensor, out: *mut *mut C_tensor) -> *const c_char;
    fn dcgan_upload_on_copy_stream(pinned: *mut C_tensor, device_index: c_int, out: *mut *mut C_tensor) -> *const c_char;
    fn dcgan_device_memory(device_index: c_int, free_bytes: *mut u64, total_bytes: *mut u64) -> *const c_char;
    fn dcgan_conv_by_matmul(
        x: *mut C_tensor,
        w: *mut C_tensor,
        bias: *mut C_tensor,
        transposed: c_int,
        parts: i64,
        out: *mut *mut C_tensor,
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

/// The tensor a shim call stores in its last argument, `out`, or the call's error.
fn new_tensor(call: impl FnOnce(*mut *mut C_tensor) -> *const c_char) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    check(call(&mut out))?;
    // SAFETY: on success the shim stored a new heap-allocated at::Tensor in `out`.
    Ok(unsafe { Tensor::from_ptr(out) })
}

fn raw(t: &Tensor) -> *mut C_tensor {
    t.as_ptr() as *mut C_tensor
}

/// `torch.nn.functional.leaky_relu(x, slope, inplace)`.
pub fn leaky_relu(x: &Tensor, slope: f64, in_place: bool) -> Result<Tensor> {
    new_tensor(|out| unsafe { dcgan_leaky_relu(raw(x), slope, in_place as c_int, out) })
}

/// `x` laid out channels-last (NHWC in memory; same shape and values). A no-op when it already is.
pub fn channels_last(x: &Tensor) -> Result<Tensor> {
    new_tensor(|out| unsafe { dcgan_channels_last(raw(x), out) })
}

/// Which parts of a 4×4 stride-2 padding-1 (transposed) convolution [`conv_by_matmul`] computes as
/// matrix products (bit flags, the values of `MatmulPart` in `csrc/shim.cpp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MatmulParts(i64);

impl MatmulParts {
    pub const NONE: MatmulParts = MatmulParts(0);
    /// The weight gradient.
    pub const WEIGHT_GRAD: MatmulParts = MatmulParts(1);
    /// A transposed convolution's input gradient (from the same 4×4 patches as `WEIGHT_GRAD`).
    pub const GATHER_GRAD: MatmulParts = MatmulParts(2);
    /// A transposed convolution's forward and a convolution's input gradient: a product folded
    /// onto the high-resolution side.
    pub const SCATTER: MatmulParts = MatmulParts(4);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for MatmulParts {
    type Output = MatmulParts;
    fn bitor(self, other: MatmulParts) -> MatmulParts {
        MatmulParts(self.0 | other.0)
    }
}

/// A 4×4, stride-2, padding-1 (transposed) convolution of `x` and `w` (plus `bias`) whose `parts`
/// run as matrix products and the rest as libtorch's convolutions: the same sums in another order.
pub fn conv_by_matmul(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, transposed: bool, parts: MatmulParts) -> Result<Tensor> {
    let bias = bias.map_or(std::ptr::null_mut(), raw);
    new_tensor(|out| unsafe { dcgan_conv_by_matmul(raw(x), raw(w), bias, transposed as c_int, parts.0, out) })
}

/// A pinned (page-locked) copy of host tensor `x`, for non-blocking copies to a GPU.
pub fn pin_memory(x: &Tensor) -> Result<Tensor> {
    new_tensor(|out| unsafe { dcgan_pin_memory(raw(x), out) })
}

/// Pinned host tensor `pinned` on GPU `device_index`, copied on a stream of its own that the
/// current stream waits for (see `dcgan_upload_on_copy_stream`). Without CUDA, libtorch's error.
pub fn upload_on_copy_stream(pinned: &Tensor, device_index: usize) -> Result<Tensor> {
    new_tensor(|out| unsafe { dcgan_upload_on_copy_stream(raw(pinned), device_index as c_int, out) })
}

/// (free, total) bytes of GPU `device_index`, as `torch.cuda.mem_get_info` gives them. Without
/// CUDA, libtorch's error.
pub fn device_memory(device_index: usize) -> Result<(u64, u64)> {
    let (mut free, mut total) = (0u64, 0u64);
    // SAFETY: the shim writes both outputs or neither, and returns an error or null.
    check(unsafe { dcgan_device_memory(device_index as c_int, &mut free, &mut total) })?;
    Ok((free, total))
}

/// Hyperparameters of one Adam update.
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// How an Adam update is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdamKernel {
    /// torch.optim.Adam's default single-tensor arithmetic, op for op: bit for bit with PyTorch.
    PerOp,
    /// torch.optim.Adam(fused=True): one ATen kernel (`_fused_adam_`), 3-4× faster on the CPU and
    /// one launch per network on CUDA. Agrees with `PerOp` to float rounding (1e-8 here).
    Fused,
}

/// Applies one Adam update to every parameter, in place.
pub fn adam_step(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    hyper: AdamHyper,
    step: StepCount,
    kernel: AdamKernel,
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
    let (lr, b1, b2, eps) = (hyper.lr, hyper.beta1, hyper.beta2, hyper.eps);
    if kernel == AdamKernel::Fused {
        let count = fused_count(params, step)?;
        return check(unsafe { dcgan_adam_step_fused(p.as_ptr(), g.as_ptr(), m.as_ptr(), v.as_ptr(), n as i64, lr, b1, b2, eps, raw(&count)) });
    }
    check(unsafe {
        match step {
            StepCount::Host(step) => dcgan_adam_step(p.as_ptr(), g.as_ptr(), m.as_ptr(), v.as_ptr(), n as i64, lr, b1, b2, eps, step),
            StepCount::OnDevice(step) => {
                dcgan_adam_step_on_device(p.as_ptr(), g.as_ptr(), m.as_ptr(), v.as_ptr(), n as i64, lr, b1, b2, eps, raw(step))
            }
        }
    })
}

/// The count the fused kernel increments and then reads: one float32 on the parameters' device,
/// which it reads through a pointer there. A host count comes as a fresh scalar one below it (no
/// wait); a device count must already be such a scalar.
fn fused_count(params: &[Tensor], step: StepCount) -> Result<Tensor> {
    let device = |fallback: Device| params.first().map_or(fallback, |p| p.device());
    match step {
        StepCount::Host(s) if s < 1 => Err(Error::Input(format!("Adam's step count must be 1 or more, got {s}"))),
        StepCount::Host(s) => Ok(Tensor::f_full([], (s - 1) as f64, (tch::Kind::Float, device(Device::Cpu)))?),
        StepCount::OnDevice(t) => {
            let device = device(t.device());
            if t.kind() != tch::Kind::Float || t.device() != device || t.numel() != 1 {
                return Err(Error::Input(format!(
                    "the fused Adam's step count must be one float32 value on {device:?}, got {:?} {:?} on {:?}",
                    t.kind(),
                    t.size(),
                    t.device()
                )));
            }
            Ok(t.shallow_clone())
        }
    }
}

/// Adam's step count for an update: a host number (torch.optim.Adam's default path), or a float
/// tensor on the parameters' device that the update increments (its `capturable` path; float32
/// for `AdamKernel::Fused`, whose kernel reads it as such).
pub enum StepCount<'a> {
    /// The count after this update.
    Host(i64),
    /// The count before this update.
    OnDevice(&'a Tensor),
}

/// c10::DeviceType of the devices that autocast regions are opened for.
fn autocast_device_type(device: Device) -> Result<c_int> {
    match device {
        Device::Cpu => Ok(0),
        Device::Cuda(_) => Ok(1),
        other => Err(Error::Input(format!("bf16 training runs on the CPU or CUDA, not on {other:?}"))),
    }
}

/// A `torch.autocast(device, dtype=torch.bfloat16)` region on the current thread: while it lives,
/// convolutions (and the other ops of autocast's lower-precision list) run in bfloat16 on
/// bfloat16 copies of their fp32 inputs and weights; the copies of weights are cached until the
/// outermost region ends. Dropping it leaves the region (also when a panic unwinds), restoring the
/// previous state. Autocast state is per thread, so the guard cannot be sent to another thread.
pub struct AutocastGuard {
    device_type: c_int,
    prev: [c_int; 3],
    _same_thread: PhantomData<*const ()>,
}

impl AutocastGuard {
    pub fn bf16(device: Device) -> Result<AutocastGuard> {
        let device_type = autocast_device_type(device)?;
        let mut prev = [0 as c_int; 3];
        check(unsafe { dcgan_autocast_enter_bf16(device_type, prev.as_mut_ptr()) })?;
        Ok(AutocastGuard { device_type, prev, _same_thread: PhantomData })
    }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // Only the device type can make the exit fail, and it was checked on entry.
        let _ = check(unsafe { dcgan_autocast_exit(self.device_type, self.prev.as_ptr()) });
    }
}

/// Whether oneDNN runs bfloat16 convolutions on this CPU (PyTorch's own check, asked once).
/// `DCGAN_CPU_BF16=0` answers no, as a CPU without them does (for tests of that answer on a
/// machine that has them).
pub fn cpu_bf16_supported() -> Result<bool> {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if let Some(&known) = SUPPORTED.get() {
        return Ok(known);
    }
    let mut out: c_int = 0;
    check(unsafe { dcgan_cpu_bf16_supported(&mut out) })?;
    Ok(*SUPPORTED.get_or_init(|| out != 0 && crate::env_switch("DCGAN_CPU_BF16", true)))
}

/// A point in a GPU's work queue (a CUDA event on the current stream): `wait` returns once the
/// work enqueued before it is done, whatever was enqueued after. On the CPU, where work is done
/// when its call returns, there is none to wait for.
pub struct DeviceEvent(*mut std::ffi::c_void);

// SAFETY: a c10::Event may be waited for and destroyed on any thread.
unsafe impl Send for DeviceEvent {}

impl DeviceEvent {
    /// An event after the work enqueued so far on `device`; None on the CPU.
    pub fn record(device: Device) -> Result<Option<DeviceEvent>> {
        let Device::Cuda(index) = device else { return Ok(None) };
        let mut out = std::ptr::null_mut();
        check(unsafe { dcgan_event_record(index as c_int, &mut out) })?;
        Ok(Some(DeviceEvent(out)))
    }

    /// Blocks until the work before the event is done.
    pub fn wait(&self) -> Result<()> {
        check(unsafe { dcgan_event_synchronize(self.0) })
    }

    /// Whether the work before the event is done, without waiting.
    pub fn done(&self) -> Result<bool> {
        let mut done: c_int = 0;
        check(unsafe { dcgan_event_query(self.0, &mut done) })?;
        Ok(done != 0)
    }
}

impl Drop for DeviceEvent {
    fn drop(&mut self) {
        unsafe { dcgan_event_free(self.0) }
    }
}

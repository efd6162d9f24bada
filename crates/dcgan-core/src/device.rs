//! The `device` option: 'auto' | 'cpu' | 'cuda' | 'cuda:N'. Parsing is pure and runs anywhere;
//! resolving asks libtorch about CUDA, which can take a while on a GPU machine, so the binding
//! resolves on the libtorch thread, never on JavaScript's.
use crate::cuda_lib;
use crate::error::{Error, Result};
use tch::{Cuda, Device};

/// A parsed device option, not yet checked against the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Auto,
    Cpu,
    /// A GPU by index; `None` is 'cuda', the first one.
    Cuda(Option<usize>),
}

impl DeviceSpec {
    pub fn parse(spec: &str) -> Result<DeviceSpec> {
        let bad = |why: &str| Error::config("device", format!("got '{spec}'; {why}"));
        match spec {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            _ => match spec.strip_prefix("cuda") {
                Some("") => Ok(DeviceSpec::Cuda(None)),
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .map(|i| DeviceSpec::Cuda(Some(i)))
                    .ok_or_else(|| bad("allowed: 'auto', 'cpu', 'cuda' or 'cuda:N' with N a GPU index")),
                None => Err(bad("allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'")),
            },
        }
    }

    /// The device on this machine: 'auto' is the first GPU when there is one.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Auto if cuda_available() => {
                configure_cudnn();
                Ok(Device::Cuda(0))
            }
            DeviceSpec::Auto => Ok(Device::Cpu),
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(index) => {
                let index = index.unwrap_or(0);
                let bad = |why: String| Error::config("device", format!("got '{}'; {why}", self.name()));
                cuda_lib::load().map_err(|why| bad(format!("CUDA cannot be used: {why}")))?;
                let count = Cuda::device_count() as usize;
                if count == 0 {
                    return Err(bad("CUDA is not available on this machine (no GPU or driver found); use 'cpu' or 'auto'".into()));
                }
                if index >= count {
                    return Err(bad(format!("this machine has {count} CUDA device(s), numbered 0 to {}", count - 1)));
                }
                configure_cudnn();
                Ok(Device::Cuda(index))
            }
        }
    }

    /// The name the user gave: 'auto', 'cpu', 'cuda' or 'cuda:N'.
    pub fn name(self) -> String {
        match self {
            DeviceSpec::Auto => "auto".into(),
            DeviceSpec::Cpu => "cpu".into(),
            DeviceSpec::Cuda(None) => "cuda".into(),
            DeviceSpec::Cuda(Some(i)) => format!("cuda:{i}"),
        }
    }
}

/// cuDNN times its convolution algorithms once per shape and keeps the fastest, as PyTorch does
/// with `torch.backends.cudnn.benchmark = True` (a training run repeats the same shapes).
/// `DCGAN_CUDNN_BENCHMARK=0` keeps cuDNN's heuristic choice, which is repeatable run to run.
fn configure_cudnn() {
    let on = std::env::var("DCGAN_CUDNN_BENCHMARK").map(|v| v.trim() != "0").unwrap_or(true);
    Cuda::cudnn_set_benchmark(on);
}

/// Whether libtorch sees a CUDA device, after loading its CUDA library where it is installed.
pub fn cuda_available() -> bool {
    cuda_lib::load().is_ok() && Cuda::is_available()
}

/// Parses and resolves a device option in one go (for tools and tests on the libtorch thread).
pub fn parse_device(spec: &str) -> Result<Device> {
    DeviceSpec::parse(spec)?.resolve()
}

/// The name a device is shown by: 'cpu' or 'cuda:N'.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// `x` on `device`. From the host to a GPU through pinned memory with a non-blocking copy, as a
/// DataLoader with `pin_memory=True` and `.to(non_blocking=True)` does: a plain copy from pageable
/// memory synchronises the stream, so the host would wait for all the GPU work enqueued before it
/// (the previous step) at every batch and every noise draw. The caching host allocator keeps the
/// pinned block until the copy is done; a plain copy if pinning fails.
pub fn upload(x: &tch::Tensor, device: Device) -> Result<tch::Tensor> {
    if !(device.is_cuda() && x.device() == Device::Cpu) {
        return Ok(x.f_to_device(device)?);
    }
    let pinned = crate::ffi::pin_memory(x).and_then(|p| Ok(p.f_to_device_(device, p.kind(), true, false)?));
    pinned.or_else(|_| Ok(x.f_to_device(device)?))
}

/// A batch of images on `device`, as `upload`, except that with `DCGAN_COPY_STREAM=1` a batch from
/// the host goes to a GPU on a copy stream of its own, which the step's stream waits for: with
/// deferred numbers the host enqueues the next batch while the GPU still runs the current step,
/// and the copy then overlaps that step instead of queueing behind it. Off by default until the
/// GPU check's `ours+host-batch+deferred+copy-stream` rows show what it gains.
pub fn upload_batch(x: &tch::Tensor, device: Device) -> Result<tch::Tensor> {
    match device {
        Device::Cuda(index) if x.device() == Device::Cpu && copy_stream_on() => match crate::ffi::pin_memory(x) {
            Ok(pinned) => crate::ffi::upload_on_copy_stream(&pinned, index),
            Err(_) => Ok(x.f_to_device(device)?),
        },
        _ => upload(x, device),
    }
}

fn copy_stream_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| crate::env_switch("DCGAN_COPY_STREAM", false))
}

/// The devices of `tensors`, each once, in order of first appearance, with the positions of its
/// tensors: for one transfer or one host read per device instead of one per tensor. A GPU model's
/// state mixes its tensors with host ones (BatchNorm's counters), which one `cat` cannot join.
pub fn by_device(tensors: &[tch::Tensor]) -> Vec<(Device, Vec<usize>)> {
    let mut groups: Vec<(Device, Vec<usize>)> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        match groups.iter_mut().find(|(d, _)| *d == t.device()) {
            Some((_, positions)) => positions.push(i),
            None => groups.push((t.device(), vec![i])),
        }
    }
    groups
}

//! Parsing of the `device` option: 'auto' | 'cpu' | 'cuda' | 'cuda:N'.
use crate::error::{Error, Result};
use tch::{Cuda, Device};

pub fn parse_device(spec: &str) -> Result<Device> {
    let bad = |why: String| Error::config("device", format!("got '{spec}'; {why}"));
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let index = match spec.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| bad("allowed: 'auto', 'cpu', 'cuda' or 'cuda:N' with N a GPU index".into()))?,
                None => return Err(bad("allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'".into())),
            };
            let count = Cuda::device_count() as usize;
            if count == 0 {
                return Err(bad("CUDA is not available on this machine (no GPU or driver found); use 'cpu' or 'auto'".into()));
            }
            if index >= count {
                return Err(bad(format!("this machine has {count} CUDA device(s), numbered 0 to {}", count - 1)));
            }
            Ok(Device::Cuda(index))
        }
    }
}

/// The name a device is shown by: 'cpu' or 'cuda:N'.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

//! Tensors crossing into JavaScript: values copied to the host, then handed over as a
//! `Float32Array` on the JavaScript thread.
use dcgan_core::input;
use dcgan_core::Error as CoreError;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tch::Tensor;

/// A batch of images or any named tensor: values in row-major order and their shape.
#[napi(object)]
pub struct TensorData {
    /// The tensor's name (its PyTorch name in a state; empty for images).
    pub name: String,
    /// Its shape, outermost dimension first.
    pub shape: Vec<u32>,
    /// Its values in row-major order.
    pub data: Float32Array,
}

/// Host copy of a tensor, made off the JavaScript thread.
pub struct HostTensor {
    name: String,
    shape: Vec<u32>,
    data: Vec<f32>,
}

impl HostTensor {
    pub fn of(name: impl Into<String>, t: &Tensor) -> dcgan_core::Result<HostTensor> {
        let t = t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
        let shape = t.size().iter().map(|&d| d as u32).collect();
        let data = Vec::<f32>::try_from(t.f_flatten(0, -1)?)?;
        Ok(HostTensor { name: name.into(), shape, data })
    }

    pub fn into_js(self) -> TensorData {
        TensorData { name: self.name, shape: self.shape, data: Float32Array::new(self.data) }
    }
}

/// `to_js` of a promise of one tensor.
pub fn tensor_js(_env: Env, t: HostTensor) -> Result<TensorData> {
    Ok(t.into_js())
}

/// `to_js` of a promise of several tensors.
pub fn tensors_js(_env: Env, ts: Vec<HostTensor>) -> Result<Vec<TensorData>> {
    Ok(ts.into_iter().map(HostTensor::into_js).collect())
}

/// An integer given as a JavaScript number (safe-integer range).
pub fn integer(field: &str, v: f64) -> dcgan_core::Result<i64> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_991.0 {
        Ok(v as i64)
    } else {
        Err(CoreError::config(field, format!("got {v}; allowed: an integer")))
    }
}

/// An integer from `lo` to `hi` given as a JavaScript number.
pub fn integer_in(field: &str, v: f64, lo: i64, hi: i64) -> dcgan_core::Result<i64> {
    let n = integer(field, v).map_err(|_| CoreError::config(field, format!("got {v}; allowed: {}", dcgan_core::options::range_text(lo, hi))))?;
    dcgan_core::options::in_range(field, n, lo, hi)?;
    Ok(n)
}

/// A shape given by JavaScript: every entry an integer ≥ 0.
pub fn shape_of(shape: &[f64], what: &str) -> dcgan_core::Result<Vec<i64>> {
    shape
        .iter()
        .map(|&d| {
            if d.is_finite() && d.fract() == 0.0 && (0.0..9.0e15).contains(&d) {
                Ok(d as i64)
            } else {
                Err(CoreError::Input(format!("{what}: shape {shape:?} holds {d}; every dimension must be an integer ≥ 0")))
            }
        })
        .collect()
}

/// A CPU tensor of `shape` from JavaScript's values, checked for size.
pub fn from_js(data: &[f32], shape: &[i64], what: &str) -> dcgan_core::Result<Tensor> {
    input::tensor_from_f32(data, shape, tch::Device::Cpu, what)
}

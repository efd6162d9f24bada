//! Turning caller-supplied numbers into tensors, with checks that name what is wrong.
use crate::error::{Error, Result};
use tch::{Device, Tensor};

/// A float tensor of `shape` from `data`, on `device`; `what` names it in errors.
pub fn tensor_from_f32(data: &[f32], shape: &[i64], device: Device, what: &str) -> Result<Tensor> {
    if shape.iter().any(|&d| d < 1) {
        return Err(Error::Input(format!("{what}: shape {shape:?} has a dimension below 1")));
    }
    let expected: i64 = shape.iter().product();
    if expected != data.len() as i64 {
        return Err(Error::Input(format!(
            "{what}: shape {shape:?} needs {expected} values but {} were given",
            data.len()
        )));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("{what}: value {i} is {} (NaN or ±Infinity); every value must be finite", data[i])));
    }
    Ok(Tensor::f_from_slice(data)?.f_view(shape)?.f_to_device(device)?)
}

/// Fails when `t` holds a NaN or an infinity.
pub fn ensure_finite(t: &Tensor, what: &str) -> Result<()> {
    if t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(Error::Input(format!("{what} contains NaN or ±Infinity; every value must be finite")));
    }
    Ok(())
}

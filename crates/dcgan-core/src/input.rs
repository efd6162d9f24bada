//! Turning caller-supplied numbers into tensors, with checks that name what is wrong.
use crate::error::{Error, Result};
use tch::{Device, Tensor};

/// A float tensor of `shape` from `data`, on `device`; `what` names it in errors.
pub fn tensor_from_f32(data: &[f32], shape: &[i64], device: Device, what: &str) -> Result<Tensor> {
    if shape.iter().any(|&d| d < 1) {
        return Err(Error::Input(format!("{what}: shape {shape:?} has a dimension below 1")));
    }
    let expected = shape
        .iter()
        .try_fold(1i64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Input(format!("{what}: shape {shape:?} is too large")))?;
    if expected != data.len() as i64 {
        return Err(Error::Input(format!(
            "{what}: shape {shape:?} needs {expected} values but {} were given",
            data.len()
        )));
    }
    // Finiteness is checked where the tensor is used (ensure_finite), once.
    Ok(Tensor::f_from_slice(data)?.f_view(shape)?.f_to_device(device)?)
}

/// Fails when `t` holds a NaN or an infinity, naming the first one (row-major index).
pub fn ensure_finite(t: &Tensor, what: &str) -> Result<()> {
    if t.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0 {
        return Ok(());
    }
    let flat = t.f_flatten(0, -1)?;
    let bad = flat.f_isfinite()?.f_logical_not()?.f_to_kind(tch::Kind::Uint8)?;
    let i = bad.f_argmax(0, false)?.f_int64_value(&[])?; // the first maximum: the first bad value
    let v = flat.f_double_value(&[i])?;
    Err(Error::Input(format!("{what}: value {i} is {v} (NaN or ±Infinity); every value must be finite")))
}

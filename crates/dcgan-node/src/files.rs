//! Files that are not models: safetensors contents and metadata, PNG grids, and the one
//! atomic write that every file of a run goes through.
use crate::errors::sync;
use crate::promise::{on_own_thread, on_torch_thread, same};
use crate::tensor::{integer_in, shape_of, HostTensor, TensorData};
use dcgan_core::{image, weights, Error as CoreError};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::path::PathBuf;

/// The tensors (sorted by name) and metadata (as JSON) of a safetensors file.
#[napi(object)]
pub struct TensorFile {
    pub tensors: Vec<TensorData>,
    pub metadata_json: String,
}

/// Reads every tensor of a safetensors file as float32 (for tools and tests).
#[napi(ts_return_type = "Promise<TensorFile>")]
pub fn read_tensors<'e>(env: &'e Env, path: String) -> Result<Object<'e>> {
    on_torch_thread(
        env,
        "readTensors",
        move || {
            let loaded = weights::load(&PathBuf::from(&path))?;
            let mut names: Vec<&String> = loaded.tensors.keys().collect();
            names.sort();
            let tensors = names.into_iter().map(|n| HostTensor::of(n.clone(), &loaded.tensors[n])).collect::<dcgan_core::Result<Vec<_>>>()?;
            let meta = serde_json::to_string(&loaded.metadata).map_err(|e| CoreError::Input(e.to_string()))?;
            Ok((tensors, meta))
        },
        |_env, (tensors, metadata_json): (Vec<HostTensor>, String)| {
            Ok(TensorFile { tensors: tensors.into_iter().map(HostTensor::into_js).collect(), metadata_json })
        },
    )
}

/// The metadata of a safetensors file (reads only its header; small, so on the caller's thread).
#[napi]
pub fn read_metadata(env: Env, path: String) -> Result<HashMap<String, String>> {
    sync(&env, weights::read_metadata(&PathBuf::from(path)))
}

/// What a dcgan model or checkpoint file says about itself (header only), checked, as JSON:
/// `{ format, model, optimizer, steps, trainer }`.
#[napi]
pub fn read_checkpoint_info(env: Env, path: String) -> Result<String> {
    sync(&env, dcgan_core::gan::Header::read(&PathBuf::from(path)).and_then(|h| h.to_json()))
}

/// torchvision's `make_grid` options that change pixels.
#[napi(object)]
pub struct GridOptions {
    /// Scale `valueRange` (or the batch's min and max) to [0, 1] instead of taking values in [−1, 1].
    pub normalize: Option<bool>,
    /// [low, high] for `normalize`: values are clamped to it.
    pub value_range: Option<Vec<f64>>,
    /// The padding's value in [0, 1] (default 0: black).
    pub pad_value: Option<f64>,
}

fn grid_style(o: Option<GridOptions>) -> std::result::Result<image::GridStyle, CoreError> {
    let Some(o) = o else { return Ok(image::GridStyle::default()) };
    let pad_value = o.pad_value.unwrap_or(0.0);
    if !pad_value.is_finite() {
        return Err(CoreError::Input(format!("invalid padValue: got {pad_value}; allowed: a finite number (0 black, 1 white)")));
    }
    let range = match (o.normalize.unwrap_or(false), o.value_range) {
        (false, None) => image::ValueRange::Signed,
        (false, Some(_)) => return Err(CoreError::Input("valueRange is used with normalize: true; add it, or leave valueRange out".into())),
        (true, None) => image::ValueRange::MinMax,
        (true, Some(r)) => match r[..] {
            [low, high] if low.is_finite() && high.is_finite() && low < high => image::ValueRange::Given(low as f32, high as f32),
            _ => return Err(CoreError::Input(format!("invalid valueRange: got {r:?}; allowed: [low, high], finite, low < high"))),
        },
    };
    Ok(image::GridStyle { range, pad_value: pad_value as f32 })
}

/// Writes a grid of images (n×C×H×W values in [−1, 1], or any range with `normalize`) as one PNG
/// file, `nrow` images per row: torchvision's `save_image(make_grid(...))`.
#[napi(ts_return_type = "Promise<void>")]
pub fn write_image_grid<'e>(env: &'e Env, data: Float32Array, shape: Vec<f64>, path: String, nrow: Option<f64>, padding: Option<f64>, options: Option<GridOptions>) -> Result<Object<'e>> {
    let shape: Vec<usize> = sync(env, shape_of(&shape, "the image batch"))?.into_iter().map(|d| d as usize).collect();
    let nrow = sync(env, integer_in("nrow", nrow.unwrap_or(8.0), 1, i64::MAX))? as usize;
    let padding = sync(env, integer_in("padding", padding.unwrap_or(2.0), 0, 64))? as usize;
    let style = sync(env, grid_style(options))?;
    let data = data.to_vec();
    on_own_thread(env, "writeImageGrid", move || image::save_grid_styled(&PathBuf::from(path), &data, &shape, nrow, padding, style), same)
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename, fsync of the folder):
/// a reader never sees half a file, and a crash leaves the old one.
#[napi]
pub fn write_file_atomic(env: Env, path: String, contents: Either<String, Buffer>) -> Result<()> {
    sync(&env, weights::write_atomically(&PathBuf::from(path), &bytes_of(contents)))
}

/// `writeFileAtomic` on a thread of its own (its fsyncs can take tens of milliseconds).
#[napi(ts_return_type = "Promise<void>")]
pub fn write_file_atomic_async<'e>(env: &'e Env, path: String, contents: Either<String, Buffer>) -> Result<Object<'e>> {
    let bytes = bytes_of(contents);
    on_own_thread(env, "writeFileAtomic", move || weights::write_atomically(&PathBuf::from(path), &bytes), same)
}

fn bytes_of(contents: Either<String, Buffer>) -> Vec<u8> {
    match contents {
        Either::A(s) => s.into_bytes(),
        Either::B(b) => b.to_vec(),
    }
}

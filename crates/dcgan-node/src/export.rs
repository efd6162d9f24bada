//! Exports for other runtimes: a network as an ONNX file, and the reader that checks such a file.
use crate::model::{with_gan, NativeGan};
use crate::promise::{on_own_thread, on_torch_thread, same};
use dcgan_core::export::onnx::{self, OnnxInfo, What};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;

fn info_json(info: &OnnxInfo) -> dcgan_core::Result<String> {
    serde_json::to_string(info).map_err(|e| dcgan_core::Error::Input(format!("cannot encode the ONNX file's description: {e}")))
}

/// Writes `what` ('generator', the default, or 'discriminator') of the model to `path` as an ONNX
/// model in inference form (atomically); resolves to the file's description as JSON (see
/// `readOnnxInfo`).
#[napi(ts_return_type = "Promise<string>")]
pub fn export_onnx<'e>(env: &'e Env, gan: &NativeGan, path: String, what: Option<String>) -> Result<Object<'e>> {
    let what = crate::errors::sync(env, What::parse(what.as_deref().unwrap_or("generator")))?;
    let shared = gan.gan.clone();
    on_torch_thread(env, "exportOnnx", move || with_gan(&shared, |g| info_json(&onnx::write(g, what, &PathBuf::from(path))?)), same)
}

/// Checks that an ONNX file is one dcgan exported and resolves to its description as JSON:
/// `{ format, what, model, opset, weights, steps, input, output }`. Any other file is refused with
/// "not an ONNX model written by dcgan: …" (code ERR_DCGAN_FILE).
#[napi(ts_return_type = "Promise<string>")]
pub fn read_onnx_info<'e>(env: &'e Env, path: String) -> Result<Object<'e>> {
    on_own_thread(env, "readOnnxInfo", move || info_json(&onnx::read_info(&PathBuf::from(path))?), same)
}

//! Options cross as JSON text and are read by the core's one schema (dcgan_core::options), as
//! swc's binding passes its options: nothing here redeclares a field.
use crate::errors::sync;
use dcgan_core::options::{self, TrainConfig};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Defaults, presets and the names of every option, as JSON:
/// `{ model, optimizer, runtime, run, ganKeys, trainKeys, presets, defaultRunSeed }`.
#[napi]
pub fn option_schema() -> String {
    options::schema_json()
}

/// Checks `new DCGAN()` options (JSON) without building a model; throws naming the bad field.
#[napi]
pub fn check_gan_options(env: Env, options_json: String) -> Result<()> {
    sync(&env, options::GanOptions::from_json(&options_json)).map(|_| ())
}

/// Defaults, then `preset`, then the config's fields (JSON), every field checked: the full
/// training config as JSON.
#[napi]
pub fn resolve_train_config(env: Env, config_json: String, preset: Option<String>) -> Result<String> {
    let c = sync(&env, TrainConfig::resolve(&config_json, preset.as_deref()))?;
    Ok(serde_json::Value::Object(c.to_map()).to_string())
}

//! dcgan-node: the napi-rs binding of dcgan-core. Each file holds one concern:
//! - `options`: the option schema crosses as JSON into the core's one definition;
//! - `promise`: calls return promises settled by the thread that did the work (no libuv thread
//!   waits for the libtorch thread);
//! - `errors`: every error (and any panic) becomes a JavaScript error with a stable `code`;
//! - `model`: the `NativeGan` class; `loader`: the data loader; `eval`: evaluation;
//! - `files`: safetensors, PNG grids and atomic writes; `tensor`: tensors to and from JavaScript;
//! - `export`: a network as an ONNX file, and the check that a file is one of ours.
#![deny(clippy::all)]

mod distributed;
mod errors;
mod eval;
mod export;
mod files;
mod loader;
mod model;
mod options;
mod promise;
mod tensor;

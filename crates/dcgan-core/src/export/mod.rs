//! Trained networks in formats other runtimes read: ONNX (onnx.rs), written with prost messages
//! derived from onnx.proto (proto.rs).
pub mod onnx;
mod proto;

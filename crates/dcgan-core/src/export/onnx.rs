//! A trained network as an ONNX model in inference form, and the reader that tells our files from
//! any other. libtorch's C++ API has no ONNX exporter, and a DCGAN is a handful of node kinds, so
//! the graph is written directly:
//!
//! - generator: `z` (n×zDim×1×1) → [ConvTranspose → BatchNormalization → Relu]× → ConvTranspose →
//!   Tanh → `images` (n×C×S×S in [−1, 1]);
//! - discriminator: `images` → Conv → LeakyRelu(0.2) → [Conv → BatchNormalization → LeakyRelu]× →
//!   Conv → Sigmoid → Reshape → `probabilities` (n).
//!
//! BatchNorm stays an ONNX `BatchNormalization` node on the running statistics (epsilon 1e-5, as
//! PyTorch's BatchNorm2d), not folded into the convolution: the file then holds exactly the
//! `state_dict` tensors under their PyTorch names, and runtimes fold it themselves when they
//! optimise. The batch dimension is symbolic (`n`). Opset 17, IR version 8.
use super::proto::*;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gan::Gan;
use crate::layers::KERNEL;
use crate::model::Network;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// The ONNX operator set the graph is written against (every op we use exists unchanged since).
pub const OPSET: i64 = 17;
/// The IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;
/// Written to `metadata_props` as `dcgan.format`: what `read_info` accepts.
pub const FORMAT: &str = "dcgan-onnx/1";
const PRODUCER: &str = "dcgan";
/// protobuf messages cannot exceed 2 GiB; a larger file is not one we wrote.
const MAX_FILE_BYTES: u64 = 2 << 30;
/// Fields and list entries in a file we read (`check_decoded_size`): the largest graph we export
/// has a few thousand.
const MAX_FIELDS: u64 = 200_000;
/// BatchNorm2d's epsilon (layers.rs passes 1e-5 to batch_norm).
const BN_EPSILON: f32 = 1e-5;
const LEAKY_SLOPE: f32 = 0.2;
/// The ops our graphs are made of: a file with any other is not ours.
const KNOWN_OPS: [&str; 8] = ["ConvTranspose", "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Tanh", "Sigmoid", "Reshape"];

/// Which network to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum What {
    Generator,
    Discriminator,
}

impl What {
    pub fn parse(s: &str) -> Result<What> {
        match s {
            "generator" => Ok(What::Generator),
            "discriminator" => Ok(What::Discriminator),
            other => Err(Error::config("what", format!("got '{other}'; allowed: 'generator', 'discriminator'"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            What::Generator => "generator",
            What::Discriminator => "discriminator",
        }
    }
}

/// What an ONNX file written by `write` says about itself, checked by `read_info`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnnxInfo {
    pub format: String,
    pub what: What,
    pub model: ModelConfig,
    pub opset: i64,
    /// Which weights were exported: "generator" (the trained ones) or "ema" (their moving average).
    pub weights: String,
    /// Training steps of the model that was exported.
    pub steps: i64,
    pub input: IoInfo,
    pub output: IoInfo,
}

/// A graph input or output: name and shape, `None` for the symbolic batch dimension.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IoInfo {
    pub name: String,
    pub shape: Vec<Option<i64>>,
}

/// The named tensors of the network to export and where they came from.
struct Source {
    tensors: HashMap<String, Tensor>,
    weights: &'static str,
}

/// The generator's weights as inference should use them: the moving average (`emaDecay`) when
/// the run keeps one, as `generate` samples it, else the trained generator.
fn generator_source(gan: &Gan) -> Source {
    match &gan.ema {
        Some(ema) => Source { tensors: named(ema.state()), weights: "ema" },
        None => Source { tensors: named(gan.generator.state()), weights: "generator" },
    }
}

fn discriminator_source(gan: &Gan) -> Result<Source> {
    if gan.model.spectral_norm {
        return Err(Error::Input(
            "the discriminator uses spectral normalisation (spectralNorm: true), which the ONNX export does not write yet: export the generator".into(),
        ));
    }
    Ok(Source { tensors: named(gan.discriminator.state()), weights: "discriminator" })
}

fn named(state: Vec<(String, Tensor, bool)>) -> HashMap<String, Tensor> {
    state.into_iter().map(|(n, t, _)| (n, t)).collect()
}

/// The network `what` of `gan` as ONNX bytes.
pub fn to_bytes(gan: &Gan, what: What) -> Result<Vec<u8>> {
    let m = &gan.model;
    let (source, graph) = match what {
        What::Generator => {
            let s = generator_source(gan);
            let g = generator_graph(m, &s.tensors)?;
            (s, g)
        }
        What::Discriminator => {
            let s = discriminator_source(gan)?;
            let g = discriminator_graph(m, &s.tensors)?;
            (s, g)
        }
    };
    let model_json = serde_json::to_string(m).map_err(|e| Error::Input(format!("cannot encode the model configuration: {e}")))?;
    let meta = [
        ("dcgan.format", FORMAT.to_string()),
        ("dcgan.what", what.name().to_string()),
        ("dcgan.model", model_json),
        ("dcgan.weights", source.weights.to_string()),
        ("dcgan.steps", gan.steps_done.to_string()),
    ];
    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some(PRODUCER.into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!("DCGAN {} ({}×{}, {} channel(s)), inference form: BatchNorm on running statistics", what.name(), m.image_size, m.image_size, m.channels)),
        graph: Some(graph),
        metadata_props: meta.into_iter().map(|(k, v)| StringStringEntryProto { key: Some(k.into()), value: Some(v) }).collect(),
        ..Default::default()
    };
    Ok(prost::Message::encode_to_vec(&model))
}

/// Writes the network `what` of `gan` to `path` (atomically) and returns what the file says.
pub fn write(gan: &Gan, what: What, path: &Path) -> Result<OnnxInfo> {
    let bytes = to_bytes(gan, what)?;
    crate::weights::write_atomically(path, &bytes)?;
    check(path, &bytes)
}

/// Builds a graph node by node; initializers keep their PyTorch names.
struct GraphBuilder<'a> {
    tensors: &'a HashMap<String, Tensor>,
    graph: GraphProto,
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::INTS), ints: values.to_vec(), ..Default::default() }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::FLOAT), f: Some(value), ..Default::default() }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::INT), i: Some(value), ..Default::default() }
}

fn value_info(name: &str, shape: &[Option<i64>]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|d| Dimension { value: Some(d.map_or(DimensionValue::DimParam("n".into()), DimensionValue::DimValue)) })
        .collect();
    let tensor = TypeProtoTensor { elem_type: Some(data_type::FLOAT), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: Some(name.into()), r#type: Some(TypeProto { tensor_type: Some(tensor) }) }
}

/// Float values of `t` as little-endian bytes, row-major whatever its memory layout or device.
fn f32_le_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let t = t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let n = t.numel();
    let mut values = vec![0f32; n];
    t.f_copy_data(&mut values, n)?;
    Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

impl<'a> GraphBuilder<'a> {
    fn new(tensors: &'a HashMap<String, Tensor>, name: &str) -> Self {
        GraphBuilder { tensors, graph: GraphProto { name: Some(name.into()), ..Default::default() } }
    }

    /// Adds the model's tensor `name` as an initializer; returns its name.
    fn weight(&mut self, name: &str) -> Result<String> {
        let t = self.tensors.get(name).ok_or_else(|| Error::Input(format!("the model has no tensor '{name}' to export")))?;
        self.graph.initializer.push(TensorProto {
            dims: t.size(),
            data_type: Some(data_type::FLOAT),
            name: Some(name.into()),
            raw_data: Some(f32_le_bytes(t)?),
        });
        Ok(name.to_string())
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>, output: &str) -> String {
        self.graph.node.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: Some(output.to_string()),
            op_type: Some(op.into()),
            attribute,
            ..Default::default()
        });
        output.to_string()
    }

    /// A 4×4 (transposed) convolution: PyTorch's and ONNX's weight layouts are the same
    /// (in×out×k×k transposed, out×in×k×k plain).
    fn conv(&mut self, x: String, prefix: &str, bias: bool, (stride, pad): (i64, i64), transposed: bool) -> Result<String> {
        let mut inputs = vec![x, self.weight(&format!("{prefix}.weight"))?];
        if bias {
            inputs.push(self.weight(&format!("{prefix}.bias"))?);
        }
        let attrs = vec![
            ints("kernel_shape", &[KERNEL, KERNEL]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad; 4]),
            ints("dilations", &[1, 1]),
            int("group", 1),
        ];
        let op = if transposed { "ConvTranspose" } else { "Conv" };
        Ok(self.node(op, inputs, attrs, &format!("{prefix}.out")))
    }

    /// BatchNormalization on the running statistics.
    fn batch_norm(&mut self, x: String, prefix: &str) -> Result<String> {
        let mut inputs = vec![x];
        for part in ["weight", "bias", "running_mean", "running_var"] {
            inputs.push(self.weight(&format!("{prefix}.{part}"))?);
        }
        Ok(self.node("BatchNormalization", inputs, vec![float("epsilon", BN_EPSILON)], &format!("{prefix}.out")))
    }

    fn finish(mut self, input: ValueInfoProto, output: ValueInfoProto) -> GraphProto {
        self.graph.input.push(input);
        self.graph.output.push(output);
        self.graph
    }
}

/// The generator's graph input and output shapes.
fn generator_io(m: &ModelConfig) -> (IoInfo, IoInfo) {
    let input = IoInfo { name: "z".into(), shape: vec![None, Some(m.z_dim), Some(1), Some(1)] };
    let output = IoInfo { name: "images".into(), shape: vec![None, Some(m.channels), Some(m.image_size), Some(m.image_size)] };
    (input, output)
}

fn discriminator_io(m: &ModelConfig) -> (IoInfo, IoInfo) {
    let input = IoInfo { name: "images".into(), shape: vec![None, Some(m.channels), Some(m.image_size), Some(m.image_size)] };
    (input, IoInfo { name: "probabilities".into(), shape: vec![None] })
}

/// As `Generator::forward` in evaluation mode (model.rs): block i is `gen.i` (ConvTranspose
/// `gen.i.0`, BatchNorm `gen.i.1`), the first 1×1 → 4×4 (stride 1, no padding), the others
/// doubling the side; then `gen.n` with bias and Tanh.
fn generator_graph(m: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<GraphProto> {
    let mut b = GraphBuilder::new(tensors, "dcgan_generator");
    let n = m.upsamplings();
    let mut x = "z".to_string();
    for i in 0..n {
        let geometry = if i == 0 { (1, 0) } else { (2, 1) };
        x = b.conv(x, &format!("gen.{i}.0"), false, geometry, true)?;
        x = b.batch_norm(x, &format!("gen.{i}.1"))?;
        x = b.node("Relu", vec![x], vec![], &format!("gen.{i}.relu"));
    }
    x = b.conv(x, &format!("gen.{n}"), true, (2, 1), true)?;
    b.node("Tanh", vec![x], vec![], "images");
    let (i, o) = generator_io(m);
    Ok(b.finish(value_info(&i.name, &i.shape), value_info(&o.name, &o.shape)))
}

/// As `Discriminator::forward` in evaluation mode: `disc.0` (bias, no BatchNorm), blocks
/// `disc.2`…, then `disc.last` (4×4 → 1×1, bias) and Sigmoid, flattened to one value per image.
fn discriminator_graph(m: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<GraphProto> {
    let mut b = GraphBuilder::new(tensors, "dcgan_discriminator");
    let n = m.upsamplings();
    let leaky = || vec![float("alpha", LEAKY_SLOPE)];
    let mut x = b.conv("images".into(), "disc.0", true, (2, 1), false)?;
    x = b.node("LeakyRelu", vec![x], leaky(), "disc.1.out");
    for j in 0..n - 1 {
        let prefix = format!("disc.{}", j + 2);
        x = b.conv(x, &format!("{prefix}.0"), false, (2, 1), false)?;
        x = b.batch_norm(x, &format!("{prefix}.1"))?;
        x = b.node("LeakyRelu", vec![x], leaky(), &format!("{prefix}.leaky"));
    }
    x = b.conv(x, &format!("disc.{}", n + 1), true, (2, 0), false)?;
    x = b.node("Sigmoid", vec![x], vec![], "sigmoid.out");
    b.graph.initializer.push(TensorProto {
        dims: vec![1],
        data_type: Some(data_type::INT64),
        name: Some("flat_shape".into()),
        raw_data: Some((-1i64).to_le_bytes().to_vec()),
    });
    b.node("Reshape", vec![x, "flat_shape".into()], vec![], "probabilities");
    let (i, o) = discriminator_io(m);
    Ok(b.finish(value_info(&i.name, &i.shape), value_info(&o.name, &o.shape)))
}

/// Reads an ONNX file and checks that dcgan wrote it; refuses anything else, saying why.
pub fn read_info(path: &Path) -> Result<OnnxInfo> {
    check(path, &crate::limits::read_regular(path, MAX_FILE_BYTES)?)
}

fn not_ours(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::file(path, format!("not an ONNX model written by dcgan: {why}"))
}

/// Decodes `bytes` and checks every claim our writer makes: producer, format, configuration,
/// opset, graph inputs and outputs, node kinds and initializer sizes.
fn check(path: &Path, bytes: &[u8]) -> Result<OnnxInfo> {
    check_decoded_size(bytes, MAX_FIELDS).map_err(|e| not_ours(path, e))?;
    let model: ModelProto = prost::Message::decode(bytes).map_err(|e| not_ours(path, format!("not a valid ONNX (protobuf) file: {e}")))?;
    let producer = model.producer_name.as_deref().unwrap_or("");
    if producer != PRODUCER {
        let by = if producer.is_empty() { "no producer named".to_string() } else { format!("produced by '{producer}'") };
        return Err(not_ours(path, format!("{by}; dcgan reads only the ONNX files it exports")));
    }
    let meta: HashMap<&str, &str> = model.metadata_props.iter().map(|e| (e.key.as_deref().unwrap_or(""), e.value.as_deref().unwrap_or(""))).collect();
    let field = |key: &str| meta.get(key).copied().ok_or_else(|| not_ours(path, format!("no '{key}' metadata")));
    if field("dcgan.format")? != FORMAT {
        return Err(not_ours(path, format!("format '{}', this version reads '{FORMAT}'", field("dcgan.format")?)));
    }
    let what = What::parse(field("dcgan.what")?).map_err(|e| not_ours(path, e))?;
    let m: ModelConfig = serde_json::from_str(field("dcgan.model")?).map_err(|e| not_ours(path, format!("bad 'dcgan.model' metadata: {e}")))?;
    m.validate().map_err(|e| not_ours(path, format!("bad 'dcgan.model' metadata: {e}")))?;
    let steps = field("dcgan.steps")?.parse().map_err(|_| not_ours(path, "bad 'dcgan.steps' metadata"))?;
    let opset = model.opset_import.iter().find(|o| o.domain.as_deref().unwrap_or("").is_empty()).and_then(|o| o.version);
    if opset != Some(OPSET) {
        return Err(not_ours(path, format!("opset {opset:?}, dcgan writes {OPSET}")));
    }
    let graph = model.graph.as_ref().ok_or_else(|| not_ours(path, "no graph"))?;
    let (input, output) = if what == What::Generator { generator_io(&m) } else { discriminator_io(&m) };
    check_io(path, "input", &graph.input, &input)?;
    check_io(path, "output", &graph.output, &output)?;
    check_nodes(path, graph)?;
    Ok(OnnxInfo { format: FORMAT.into(), what, model: m, opset: OPSET, weights: field("dcgan.weights")?.into(), steps, input, output })
}

fn check_io(path: &Path, kind: &str, actual: &[ValueInfoProto], expected: &IoInfo) -> Result<()> {
    let shape_of = |v: &ValueInfoProto| -> Option<Vec<Option<i64>>> {
        let dims = &v.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?.dim;
        Some(dims.iter().map(|d| match d.value { Some(DimensionValue::DimValue(v)) => Some(v), _ => None }).collect())
    };
    match actual {
        [v] if v.name.as_deref() == Some(expected.name.as_str()) && shape_of(v).as_ref() == Some(&expected.shape) => Ok(()),
        _ => Err(not_ours(path, format!("the graph's {kind} is not '{}' with shape {:?} as its metadata says", expected.name, expected.shape))),
    }
}

fn check_nodes(path: &Path, graph: &GraphProto) -> Result<()> {
    for node in &graph.node {
        let op = node.op_type.as_deref().unwrap_or("");
        if !KNOWN_OPS.contains(&op) || node.domain.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(not_ours(path, format!("node '{}' is a '{op}', which dcgan does not write", node.name.as_deref().unwrap_or(""))));
        }
    }
    for t in &graph.initializer {
        let name = t.name.as_deref().unwrap_or("");
        let width = match t.data_type {
            Some(data_type::FLOAT) => 4,
            Some(data_type::INT64) => 8,
            other => return Err(not_ours(path, format!("initializer '{name}' has data type {other:?}"))),
        };
        let count = t.dims.iter().try_fold(1i64, |acc, &d| if d < 0 { None } else { acc.checked_mul(d) });
        let len = t.raw_data.as_ref().map_or(0, |d| d.len()) as i64;
        if count.and_then(|c| c.checked_mul(width)) != Some(len) {
            return Err(not_ours(path, format!("initializer '{name}' holds {len} bytes for shape {:?}", t.dims)));
        }
    }
    Ok(())
}

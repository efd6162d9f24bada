//! The part of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto, proto2 syntax) that a DCGAN
//! needs, as prost messages derived by hand: field numbers and types are onnx.proto's, so what
//! prost writes is a valid ONNX file and what it reads is any ONNX file (unknown fields skipped).
//! Fields we never write are left out; `optional` keeps proto2's presence semantics.

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub domain: Option<String>,
    #[prost(int64, optional, tag = "5")]
    pub model_version: Option<i64>,
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
}

/// `AttributeProto.AttributeType` values we use.
pub mod attribute_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const INTS: i32 = 7;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
}

/// `TensorProto.DataType` values we use.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const INT64: i32 = 7;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// Fixed-width little-endian values.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProtoTensor {
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a fixed size or a named (dynamic) one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    #[prost(int64, tag = "1")]
    DimValue(i64),
    #[prost(string, tag = "2")]
    DimParam(String),
}

/// The messages above, for `check_decoded_size`: which fields are messages, and which are
/// repeated integers (which a sender may pack, one byte each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    /// OperatorSetIdProto, StringStringEntryProto, Dimension: scalars and strings only.
    Flat,
}

impl Message {
    fn field(self, tag: u64) -> Option<Message> {
        use Message::*;
        match (self, tag) {
            (Model, 7) => Some(Graph),
            (Model, 8 | 14) | (Shape, 1) => Some(Flat),
            (Graph, 1) => Some(Node),
            (Graph, 5) => Some(Tensor),
            (Graph, 11 | 12) => Some(ValueInfo),
            (Node, 5) => Some(Attribute),
            (ValueInfo, 2) => Some(Type),
            (Type, 1) => Some(TypeTensor),
            (TypeTensor, 2) => Some(Shape),
            _ => None,
        }
    }

    fn packed_integers(self, tag: u64) -> bool {
        matches!((self, tag), (Message::Attribute, 8) | (Message::Tensor, 1))
    }
}

/// Refuses a ModelProto whose decoding would allocate far more than its size: prost makes a
/// struct of about a hundred bytes for each entry of a repeated field, so two bytes of an empty
/// entry, repeated, would grow a small file eighty-fold. Counts, without allocating, every field
/// of every message this subset decodes (and each integer of a packed list) and refuses more than
/// `max`. Fields outside the subset, which prost skips, are not counted. The error says why.
pub fn check_decoded_size(bytes: &[u8], max: u64) -> std::result::Result<(), String> {
    let mut count = 0u64;
    count_fields(bytes, Message::Model, max, &mut count).map_err(|e| match e {
        Refusal::Malformed(why) => format!("not a valid ONNX (protobuf) file: {why}"),
        Refusal::TooMany => format!("more than {max} fields and list entries, far more than any model dcgan exports"),
    })
}

enum Refusal {
    Malformed(&'static str),
    TooMany,
}

fn count_fields(mut buf: &[u8], message: Message, max: u64, count: &mut u64) -> std::result::Result<(), Refusal> {
    let truncated = |what| move || Refusal::Malformed(what);
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let tag = key >> 3;
        *count += 1;
        match key & 7 {
            0 => drop(varint(&mut buf)?),
            1 => buf = buf.get(8..).ok_or_else(truncated("a truncated 64-bit field"))?,
            5 => buf = buf.get(4..).ok_or_else(truncated("a truncated 32-bit field"))?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| Refusal::Malformed("a field longer than memory"))?;
                let payload = buf.get(..len).ok_or_else(truncated("a field longer than the message holding it"))?;
                buf = &buf[len..];
                if let Some(inner) = message.field(tag) {
                    count_fields(payload, inner, max, count)?;
                } else if message.packed_integers(tag) {
                    *count += len as u64;
                }
            }
            _ => return Err(Refusal::Malformed("a wire type that ONNX files do not use")),
        }
        if *count > max {
            return Err(Refusal::TooMany);
        }
    }
    Ok(())
}

fn varint(buf: &mut &[u8]) -> std::result::Result<u64, Refusal> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(Refusal::Malformed("a truncated or overlong varint"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn model_with_nodes(nodes: Vec<NodeProto>) -> Vec<u8> {
        let graph = GraphProto { node: nodes, ..Default::default() };
        ModelProto { graph: Some(graph), producer_name: Some("dcgan".into()), ..Default::default() }.encode_to_vec()
    }

    /// Every field counted, nested lists included; the count's limit is exact.
    #[test]
    fn fields_are_counted_through_the_messages_prost_decodes() {
        let node = NodeProto { input: vec!["a".into(), "b".into()], attribute: vec![AttributeProto { ints: vec![1, 2, 3], ..Default::default() }], ..Default::default() };
        // model: producer + graph (2); per node: the node, 2 inputs, 1 attribute, 3 ints (7).
        let bytes = model_with_nodes(vec![node; 10]);
        assert_eq!(check_decoded_size(&bytes, 72), Ok(()));
        assert!(check_decoded_size(&bytes, 71).unwrap_err().starts_with("more than 71 fields and list entries"));
        ModelProto::decode(bytes.as_slice()).unwrap();
    }

    /// The bombs: many empty entries, and a packed list of one-byte integers.
    #[test]
    fn entries_that_cost_little_on_the_wire_are_counted() {
        let empty_nodes = model_with_nodes(vec![NodeProto::default(); 1000]);
        assert!(empty_nodes.len() < 2020);
        assert!(check_decoded_size(&empty_nodes, 1000).is_err());
        // AttributeProto.ints (field 8) packed: 1000 zeros in a 1003-byte field.
        let attribute = [&[0x42u8, 0xe8, 0x07][..], &[0u8; 1000]].concat();
        let node = [&[0x2au8, 0xeb, 0x07][..], &attribute].concat();
        let bytes = model_with_graph(&[&[0x0au8, 0xee, 0x07][..], &node].concat());
        assert_eq!(ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap().node[0].attribute[0].ints.len(), 1000);
        assert!(check_decoded_size(&bytes, 1000).is_err());
        assert_eq!(check_decoded_size(&bytes, 1004), Ok(()));
    }

    fn model_with_graph(graph: &[u8]) -> Vec<u8> {
        let mut len = Vec::new();
        prost::encoding::encode_varint(graph.len() as u64, &mut len);
        [&[0x3au8][..], &len, graph].concat()
    }

    #[test]
    fn malformed_wire_is_refused_as_not_protobuf() {
        for bytes in [&[0x3au8, 0x05, 0x0a][..], &[0x08, 0xff], &[0x0b], &[0x09, 1, 2]] {
            assert!(check_decoded_size(bytes, 100).unwrap_err().starts_with("not a valid ONNX (protobuf) file: "), "{bytes:?}");
        }
    }
}

//! The subset of `onnx.proto` (ONNX IR version 3–10, proto3 wire format) this
//! loader reads, as hand-written `prost` messages: no code generation at build
//! time. Fields not declared here (doc strings, value_info, subgraphs,
//! training info, functions, …) are skipped by the decoder without being
//! stored. Field numbers are those of `onnx/onnx.proto`.
//!
//! Before decoding, [`check_counts`] walks the wire format (iteratively, no
//! recursion) and refuses files with more nodes, attributes, initializers or
//! inputs/outputs than the limits below: a 2-byte empty message decodes into
//! a struct of ~200 bytes, so counts are bounded before any struct exists.

use prost::Message;

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// `AttributeProto.AttributeType`.
pub mod attr_type {
    pub const FLOAT: i32 = 1;
    pub const FLOATS: i32 = 6;
    pub const INT: i32 = 2;
    pub const STRINGS: i32 = 8;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const INTS: i32 = 7;
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// `AttributeType`; 0 in files older than IR version 2 (then the set field tells).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto.DataType`.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const DOUBLE: i32 = 11;

    pub fn name(t: i32) -> &'static str {
        match t {
            0 => "UNDEFINED",
            1 => "FLOAT",
            2 => "UINT8",
            3 => "INT8",
            4 => "UINT16",
            5 => "INT16",
            6 => "INT32",
            7 => "INT64",
            8 => "STRING",
            9 => "BOOL",
            10 => "FLOAT16",
            11 => "DOUBLE",
            12 => "UINT32",
            13 => "UINT64",
            14 => "COMPLEX64",
            15 => "COMPLEX128",
            16 => "BFLOAT16",
            _ => "an unknown type",
        }
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// 0 = DEFAULT (data in this message), 1 = EXTERNAL (in another file).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    /// The `tensor_type` member of the `value` oneof (other members skipped).
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// One dimension: the `value` oneof as two optional fields (same wire format).
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// Most nodes in one graph.
pub const MAX_NODES: usize = 1 << 16;
/// Most attributes over all nodes.
pub const MAX_ATTRIBUTES: usize = 1 << 18;
/// Most node inputs + outputs over all nodes.
pub const MAX_NODE_EDGES: usize = 1 << 20;
/// Most initializers.
pub const MAX_INITIALIZERS: usize = 1 << 16;
/// Most graph inputs + outputs + opset imports.
pub const MAX_GRAPH_IO: usize = 1 << 12;

/// Decodes a model after checking the counts above on the wire format.
pub fn decode(bytes: &[u8]) -> Result<ModelProto> {
    check_counts(bytes)?;
    ModelProto::decode(bytes)
        .map_err(|e| Error::format("ONNX", format!("not a readable ONNX protobuf (truncated, or not an .onnx file): {e}")))
}

fn malformed(why: &str) -> Error {
    Error::format("ONNX", format!("not a readable ONNX protobuf (truncated, or not an .onnx file): {why}"))
}

/// Calls `f(field number, payload)` for each length-delimited field of one
/// message; checks and skips the other wire types.
fn fields(mut buf: &[u8], mut f: impl FnMut(u32, &[u8]) -> Result<()>) -> Result<()> {
    fn varint(buf: &mut &[u8]) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let (&b, rest) = buf.split_first().ok_or_else(|| malformed("a varint runs past the end"))?;
            *buf = rest;
            if shift == 63 && b > 1 {
                return Err(malformed("a varint is longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("a varint is longer than 10 bytes"))
    }
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(malformed("invalid field number 0"));
        }
        let skip = match wire {
            0 => {
                varint(&mut buf)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = varint(&mut buf)?;
                let len = usize::try_from(len).ok().filter(|&l| l <= buf.len()).ok_or_else(|| malformed("a field runs past the end"))?;
                f(field as u32, &buf[..len])?;
                len
            }
            _ => return Err(malformed(&format!("wire type {wire} (groups are not used by ONNX)"))),
        };
        buf = buf.get(skip..).ok_or_else(|| malformed("a field runs past the end"))?;
    }
    Ok(())
}

fn too_many(what: &str, n: usize, limit: usize) -> Error {
    Error::too_large(format!("number of {what} in the ONNX graph"), n as u64, limit as u64)
}

/// Counts graph-level messages on the wire (a repeated `graph` field merges,
/// so all occurrences count) and refuses files past the limits.
pub fn check_counts(bytes: &[u8]) -> Result<()> {
    let (mut nodes, mut attrs, mut edges, mut inits, mut io) = (0usize, 0usize, 0usize, 0usize, 0usize);
    fields(bytes, |field, graph| {
        match field {
            8 => io += 1,
            7 => fields(graph, |field, payload| {
                match field {
                    1 => {
                        nodes += 1;
                        if nodes > MAX_NODES {
                            return Err(too_many("nodes", nodes, MAX_NODES));
                        }
                        fields(payload, |field, _| {
                            match field {
                                1 | 2 => edges += 1,
                                5 => attrs += 1,
                                _ => {}
                            }
                            Ok(())
                        })?;
                        if attrs > MAX_ATTRIBUTES {
                            return Err(too_many("node attributes", attrs, MAX_ATTRIBUTES));
                        }
                        if edges > MAX_NODE_EDGES {
                            return Err(too_many("node inputs and outputs", edges, MAX_NODE_EDGES));
                        }
                    }
                    5 => {
                        inits += 1;
                        if inits > MAX_INITIALIZERS {
                            return Err(too_many("initializers", inits, MAX_INITIALIZERS));
                        }
                    }
                    11 | 12 => io += 1,
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        if io > MAX_GRAPH_IO {
            return Err(too_many("graph inputs, outputs and opset imports", io, MAX_GRAPH_IO));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let node =
            NodeProto { input: vec!["x".into()], output: vec!["y".into()], name: "r".into(), op_type: "Relu".into(), ..Default::default() };
        let m = ModelProto {
            ir_version: 8,
            graph: Some(GraphProto { node: vec![node.clone()], ..Default::default() }),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
            ..Default::default()
        };
        let bytes = m.encode_to_vec();
        assert_eq!(decode(&bytes).unwrap(), m);
        // Many empty nodes: refused by counting, before decoding.
        let g = GraphProto { node: vec![NodeProto::default(); MAX_NODES + 1], ..Default::default() };
        let bytes = ModelProto { graph: Some(g), ..Default::default() }.encode_to_vec();
        assert!(matches!(decode(&bytes), Err(Error::TooLarge { .. })));
        // Truncation anywhere is an error or a shorter valid message, never a panic.
        let bytes = m.encode_to_vec();
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        assert!(decode(&[0x08]).is_err());
        assert!(decode(&[0x0b, 0x00]).is_err(), "group wire type");
        assert!(decode(&[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(), "graph longer than the file");
        assert!(decode(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err(), "11-byte varint");
    }
}

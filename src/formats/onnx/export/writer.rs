//! The ONNX graph writer the export builds with: nodes, initializers (each
//! written once), attributes, value infos and the channels-first reordering.

use std::collections::HashSet;

use super::super::proto::{
    AttributeProto, Dimension, NodeProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attr_type, data_type,
};
use super::MAX_EXPORT_BYTES;
use crate::engine::model::Activation;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// As the IR stores it: channels last (and every rank other than 3).
    Ir,
    /// `[N, C, H, W]` for an IR `[H, W, C]`.
    Nchw,
}

#[derive(Debug, Clone)]
pub(super) struct Value {
    pub(super) name: String,
    pub(super) layout: Layout,
    /// Token ids (int64), straight from the graph input.
    pub(super) int: bool,
}

#[derive(Default)]
pub(super) struct Graph {
    pub(super) nodes: Vec<NodeProto>,
    pub(super) inits: Vec<TensorProto>,
    /// Initializer names already written (shared constants, a model's unchanged weights).
    pub(super) written: HashSet<String>,
    /// Transposes and Casts already written (a value that two consumers read in the other layout).
    pub(super) derived: HashSet<String>,
    pub(super) weight_bytes: u64,
}

impl Graph {
    pub(super) fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, out: &str) -> String {
        self.op_named(op, inputs, attrs, out);
        out.to_string()
    }

    pub(super) fn op_named(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, out: &str) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name: out.to_string(),
            op_type: op.into(),
            attribute: attrs,
            domain: String::new(),
        });
    }

    pub(super) fn init(&mut self, t: TensorProto) -> String {
        let name = t.name.clone();
        if self.written.insert(name.clone()) {
            self.weight_bytes += t.raw_data.len() as u64;
            self.inits.push(t);
        }
        name
    }

    pub(super) fn const_f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        self.constant(name, dims, data_type::FLOAT, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub(super) fn const_i64(&mut self, name: &str, dims: &[usize], data: Vec<i64>) -> String {
        self.constant(name, dims, data_type::INT64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub(super) fn const_bool(&mut self, name: &str, dims: &[usize], data: Vec<bool>) -> String {
        self.constant(name, dims, data_type::BOOL, data.iter().map(|&b| b as u8).collect())
    }

    /// An initializer of element type `data_type` from its little-endian bytes.
    fn constant(&mut self, name: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> String {
        self.init(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.into(),
            raw_data,
            ..Default::default()
        })
    }

    pub(super) fn check_size(&self) -> Result<()> {
        if self.weight_bytes > MAX_EXPORT_BYTES {
            return Err(Error::too_large("weights of the exported ONNX graph (bytes)", self.weight_bytes, MAX_EXPORT_BYTES));
        }
        Ok(())
    }
}

pub(super) fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: attr_type::INT, ..Default::default() }
}

pub(super) fn attr_ints(name: &str, ints: &[usize]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: ints.iter().map(|&v| v as i64).collect(), r#type: attr_type::INTS, ..Default::default() }
}

pub(super) fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: v.as_bytes().to_vec(), r#type: attr_type::STRING, ..Default::default() }
}

pub(super) fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        r#type: attr_type::STRINGS,
        ..Default::default()
    }
}

pub(super) fn value_info(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension { dim_value: Some(*v), dim_param: None },
            None => Dimension { dim_value: None, dim_param: Some("N".into()) },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(TypeProtoTensor { elem_type: elem, shape: Some(TensorShapeProto { dim }) }) }),
    }
}

/// `[H, W, C]` data (row-major) → `[C, H, W]`.
pub(super) fn hwc_to_chw<T: Copy>(v: &[T], shape: &[usize]) -> Vec<T> {
    let [h, w, c] = shape else { return v.to_vec() };
    let (h, w, c) = (*h, *w, *c);
    let mut out = Vec::with_capacity(v.len());
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                out.push(v[(y * w + x) * c + ch]);
            }
        }
    }
    out
}

/// The ONNX op of an activation that is one op without attributes (also
/// what an ONNX RNN's `activations` attribute may name).
pub(super) fn act_name(a: Activation) -> Option<&'static str> {
    match a {
        Activation::Tanh => Some("Tanh"),
        Activation::Sigmoid => Some("Sigmoid"),
        Activation::Relu => Some("Relu"),
        Activation::Softplus => Some("Softplus"),
        _ => None,
    }
}

pub(super) fn attr_floats(name: &str, floats: Vec<f32>) -> AttributeProto {
    AttributeProto { name: name.into(), floats, r#type: attr_type::FLOATS, ..Default::default() }
}

pub(super) fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f, r#type: attr_type::FLOAT, ..Default::default() }
}

//! Small graphs built by hand for the op families' unit tests: one input
//! `x` of `[batch, shape…]`, one output `y`.

use crate::engine::model::Model;
use crate::error::Result;
use crate::formats::onnx::convert::build;
use crate::formats::onnx::proto::{
    AttributeProto, Dimension, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, data_type,
};

pub(crate) struct Net {
    g: GraphProto,
    opset: i64,
}

impl Net {
    /// A float input `[batch, shape…]`.
    pub(crate) fn new(shape: &[i64]) -> Net {
        Net::typed(shape, data_type::FLOAT)
    }

    /// An integer input (token ids).
    pub(crate) fn tokens(shape: &[i64]) -> Net {
        Net::typed(shape, data_type::INT64)
    }

    fn typed(shape: &[i64], elem_type: i32) -> Net {
        let dim = std::iter::once(Dimension { dim_value: None, dim_param: Some("N".into()) })
            .chain(shape.iter().map(|&d| Dimension { dim_value: Some(d), dim_param: None }))
            .collect();
        let ty = TypeProto { tensor_type: Some(TypeProtoTensor { elem_type, shape: Some(TensorShapeProto { dim }) }) };
        let g = GraphProto {
            input: vec![ValueInfoProto { name: "x".into(), r#type: Some(ty) }],
            output: vec![ValueInfoProto { name: "y".into(), r#type: None }],
            ..Default::default()
        };
        Net { g, opset: 13 }
    }

    /// Adds a node named after its first output.
    pub(crate) fn node(mut self, op: &str, input: &[&str], output: &[&str], attribute: Vec<AttributeProto>) -> Net {
        self.g.node.push(NodeProto {
            name: output.first().copied().unwrap_or(op).into(),
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: output.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
        self
    }

    pub(crate) fn init(mut self, t: TensorProto) -> Net {
        self.g.initializer.push(t);
        self
    }

    pub(crate) fn opset(mut self, v: i64) -> Net {
        self.opset = v;
        self
    }

    pub(crate) fn load(&self) -> Result<Model> {
        build(&self.g, self.opset, "t", 1 << 24)
    }
}

pub(crate) fn floats(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type: data_type::FLOAT, float_data: v.to_vec(), ..Default::default() }
}

pub(crate) fn ints(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type: data_type::INT64, int64_data: v.to_vec(), ..Default::default() }
}

pub(crate) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: 2, ..Default::default() }
}

pub(crate) fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: ints.to_vec(), r#type: 7, ..Default::default() }
}

pub(crate) fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f, r#type: 1, ..Default::default() }
}

pub(crate) fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: s.as_bytes().to_vec(), r#type: 3, ..Default::default() }
}

/// Runs `m` on one sample.
pub(crate) fn run(m: &Model, x: &[f32]) -> Vec<f32> {
    crate::engine::model::forward(m, x, 1, None, false, &mut |_, _| true).unwrap().probs
}

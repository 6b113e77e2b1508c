//! Graph checks before any conversion: named initializers, one input, one
//! output, one writer per tensor, the nodes the output needs (reading only
//! defined tensors) in topological order; and how the input is presented.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::convert::{Attrs, Val, bad, label};
use super::layout::{Layout, axes_in, plain};
use super::ops::{self, Role};
use super::proto::{GraphProto, NodeProto, ValueInfoProto, data_type};
use super::tensor::Const;
use crate::error::{Error, Result};

/// A checked graph: initializers as constants, the input and output, and
/// the needed nodes in an order where every node follows its inputs.
pub(super) struct Sorted<'g> {
    pub(super) vals: HashMap<&'g str, Val>,
    pub(super) input: &'g ValueInfoProto,
    pub(super) output: &'g str,
    pub(super) order: Vec<usize>,
    /// Readers of each tensor among the needed nodes (one entry per use).
    pub(super) readers: HashMap<&'g str, Vec<usize>>,
}

pub(super) fn sort(g: &GraphProto) -> Result<Sorted<'_>> {
    let nodes = g.node.as_slice();
    let mut vals: HashMap<&str, Val> = HashMap::new();
    for (k, t) in g.initializer.iter().enumerate() {
        if t.name.is_empty() {
            return Err(bad(format!("initializer {k} has no name")));
        }
        let c = Const::from_proto(t, &format!("initializer '{}'", t.name))?;
        if vals.insert(t.name.as_str(), Val::Const(Rc::new(c))).is_some() {
            return Err(bad(format!("two initializers are named '{}'", t.name)));
        }
    }
    let inputs: Vec<_> = g.input.iter().filter(|i| !vals.contains_key(i.name.as_str())).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(bad("the graph has no input (besides initializers)")),
        many => {
            return Err(Error::Unsupported {
                what: "ONNX graph inputs".into(),
                name: many.iter().map(|i| format!("'{}'", i.name)).collect::<Vec<_>>().join(", "),
                supported: "exactly one input".into(),
            });
        }
    };
    let output = match g.output.as_slice() {
        [one] => one.name.as_str(),
        [] => return Err(bad("the graph has no output")),
        many => {
            return Err(Error::Unsupported {
                what: "ONNX graph outputs".into(),
                name: many.iter().map(|o| format!("'{}'", o.name)).collect::<Vec<_>>().join(", "),
                supported: "exactly one output (the class scores)".into(),
            });
        }
    };
    if input.name.is_empty() {
        return Err(bad("the graph input has no name"));
    }

    // Who writes each tensor.
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if vals.contains_key(o.as_str()) || *o == input.name || producer.insert(o.as_str(), i).is_some() {
                return Err(bad(format!(
                    "tensor '{o}' is written by more than one node, initializer or input (by node {} among them)",
                    label(n)
                )));
            }
        }
    }
    // The nodes the output depends on; every tensor they read must be defined.
    let mut needed = vec![false; nodes.len()];
    let mut stack: Vec<(&str, Option<usize>)> = vec![(output, None)];
    while let Some((t, reader)) = stack.pop() {
        match producer.get(t) {
            Some(&i) if !needed[i] => {
                needed[i] = true;
                stack.extend(nodes[i].input.iter().filter(|s| !s.is_empty()).map(|s| (s.as_str(), Some(i))));
            }
            Some(_) => {}
            None if vals.contains_key(t) || t == input.name => {}
            None => {
                return Err(bad(match reader {
                    Some(i) => format!("node {} reads tensor '{t}', which no node, initializer or graph input defines", label(&nodes[i])),
                    None => format!("the graph output '{t}' is not computed by any node"),
                }));
            }
        }
    }
    // Topological order (Kahn; ties in file order). What is left is a cycle.
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut indeg = vec![0usize; nodes.len()];
    let mut next: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    for (i, n) in nodes.iter().enumerate().filter(|(i, _)| needed[*i]) {
        for s in n.input.iter().filter(|s| !s.is_empty()) {
            readers.entry(s.as_str()).or_default().push(i);
            if let Some(&p) = producer.get(s.as_str()) {
                indeg[i] += 1;
                next[p].push(i);
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| needed[i] && indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &next[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if let Some(i) = (0..nodes.len()).find(|&i| needed[i] && indeg[i] > 0) {
        return Err(bad(format!("the graph has a cycle through node {}", label(&nodes[i]))));
    }
    Ok(Sorted { vals, input, output, order, readers })
}

/// Per-sample input shape, fixed batch size (if any), and whether it holds
/// integers (token ids).
/// Is every reader of `input` a Cast to INT32/INT64 (ids stored as floats)?
pub(super) fn read_as_ids(nodes: &[NodeProto], readers: &HashMap<&str, Vec<usize>>, input: &str) -> bool {
    let to_int =
        |n: &NodeProto| n.op_type == "Cast" && Attrs(n).int("to", 0).is_ok_and(|t| matches!(t as i32, data_type::INT32 | data_type::INT64));
    readers.get(input).is_some_and(|r| !r.is_empty() && r.iter().all(|&i| to_int(&nodes[i])))
}

pub(super) fn input_shape(input: &ValueInfoProto) -> Result<(Vec<usize>, Option<i64>, bool)> {
    let name = &input.name;
    let t = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| bad(format!("the graph input '{name}' is not a tensor")))?;
    let tokens = match t.elem_type {
        data_type::FLOAT => false,
        data_type::INT64 | data_type::INT32 => true,
        other => {
            return Err(Error::Unsupported {
                what: "ONNX input type".into(),
                name: format!("{} of input '{name}'", data_type::name(other)),
                supported: "FLOAT, or INT64/INT32 token ids".into(),
            });
        }
    };
    let dims = &t
        .shape
        .as_ref()
        .ok_or_else(|| Error::Unsupported {
            what: "ONNX input shape".into(),
            name: format!("none declared for input '{name}'"),
            supported: "a declared shape [batch, fixed sizes…]".into(),
        })?
        .dim;
    let show = || {
        let d: Vec<String> = dims
            .iter()
            .map(|d| match (&d.dim_value, &d.dim_param) {
                (Some(v), _) => v.to_string(),
                (None, Some(p)) => format!("'{p}'"),
                _ => "?".into(),
            })
            .collect();
        format!("[{}] of input '{name}'", d.join(", "))
    };
    if dims.len() < 2 {
        return Err(Error::Unsupported {
            what: "ONNX input shape".into(),
            name: show(),
            supported: "[batch, fixed sizes…] with at least one axis besides the batch".into(),
        });
    }
    let batch = dims[0].dim_value.filter(|&v| v > 0);
    let shape = dims[1..]
        .iter()
        .map(|d| match d.dim_value {
            Some(v) if v > 0 && v as u64 <= crate::error::MAX_TENSOR_ELEMS => Ok(v as usize),
            _ => Err(Error::Unsupported {
                what: "ONNX input shape".into(),
                name: show(),
                supported: "fixed sizes besides the batch axis".into(),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((shape, batch, tokens))
}

/// The engine's input shape and how it stores the ONNX input: an image
/// `C×H×W` (it feeds a channels-first op, or looks like one: C ≤ 4 < H, W)
/// is stored channels-last, anything else as it is.
pub(super) fn input_layout(nodes: &[NodeProto], readers: &HashMap<&str, Vec<usize>>, input: &str, shape: &[usize]) -> (Vec<usize>, Layout) {
    let nchw = shape.len() == 3 && (feeds_channels_first(nodes, readers, input) || (shape[0] <= 4 && shape[1] > 4 && shape[2] > 4));
    // A channels-first sequence [C, L] reaching a Conv1d: the image [C, L, 1] (ops/conv1d.rs).
    let sequence = shape.len() == 2 && shape[0] > 1 && feeds_channels_first(nodes, readers, input);
    match () {
        _ if nchw => (vec![shape[1], shape[2], shape[0]], Layout::Axes(axes_in(shape, &[1, 2, 0]))),
        _ if sequence => (vec![shape[0], shape[1], 1], plain(shape)),
        _ => (shape.to_vec(), plain(shape)),
    }
}

/// Does the input reach a channels-first op (Conv, pooling, BatchNormalization)
/// through element-wise ops only?
fn feeds_channels_first(nodes: &[NodeProto], readers: &HashMap<&str, Vec<usize>>, input: &str) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![input];
    while let Some(t) = stack.pop() {
        for &i in readers.get(t).into_iter().flatten() {
            let n = &nodes[i];
            match ops::rule(&n.op_type).map(|r| r.role) {
                Some(Role::ChannelsFirst) => return true,
                Some(Role::Elementwise) if seen.insert(i) => stack.extend(n.output.first().map(String::as_str)),
                _ => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::onnx::proto::NodeProto;

    fn node(name: &str, op: &str, input: &[&str], output: &[&str]) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: output.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<NodeProto>) -> GraphProto {
        GraphProto {
            node: nodes,
            input: vec![ValueInfoProto { name: "x".into(), r#type: None }],
            output: vec![ValueInfoProto { name: "y".into(), r#type: None }],
            ..Default::default()
        }
    }

    #[test]
    fn needed_nodes_in_dependency_order() {
        // Written backwards, with a dead node that reads nothing defined.
        let g = graph(vec![
            node("b", "Relu", &["t"], &["y"]),
            node("dead", "FancyOp", &["nowhere"], &["u"]),
            node("a", "Relu", &["x"], &["t"]),
        ]);
        let s = sort(&g).unwrap();
        assert_eq!(s.order, [2, 0]);
        assert_eq!(s.readers["t"], [0]);
        assert!(!s.readers.contains_key("nowhere"));
    }

    #[test]
    fn cycles_undefined_and_doubly_written_tensors_are_errors() {
        let e = sort(&graph(vec![node("a", "Relu", &["y"], &["t"]), node("b", "Relu", &["t"], &["y"])])).err().unwrap();
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = sort(&graph(vec![node("a", "Relu", &["nope"], &["y"])])).err().unwrap();
        assert!(e.to_string().contains("'nope'") && e.to_string().contains("'a'"), "{e}");
        let e = sort(&graph(vec![node("a", "Relu", &["x"], &["y"]), node("b", "Relu", &["x"], &["y"])])).err().unwrap();
        assert!(e.to_string().contains("more than one"), "{e}");
    }

    #[test]
    fn images_are_stored_channels_last() {
        let g = graph(vec![node("a", "Relu", &["x"], &["t"]), node("c", "Conv", &["t"], &["y"])]);
        let s = sort(&g).unwrap();
        // C = 8 is no RGB-like image, but it reaches a Conv through a Relu.
        let (ir, layout) = input_layout(&g.node, &s.readers, "x", &[8, 5, 6]);
        assert_eq!((ir, layout), (vec![5, 6, 8], Layout::Axes(vec![1, 2, 0])));
        let g = graph(vec![node("a", "Flatten", &["x"], &["y"])]);
        let s = sort(&g).unwrap();
        assert_eq!(input_layout(&g.node, &s.readers, "x", &[8, 5, 6]).0, [8, 5, 6]);
        assert_eq!(input_layout(&g.node, &s.readers, "x", &[3, 5, 6]).0, [5, 6, 3]);
    }
}

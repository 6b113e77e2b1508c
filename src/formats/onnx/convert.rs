//! The conversion context: what is known about every tensor while the sorted
//! nodes are turned into IR layers through [`ModelBuilder`], and the
//! accessors the op converters in [`super::ops`] share.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::graph;
use super::layout::{Act, nonunit};
use super::ops::{self, SUPPORTED_OPS};
use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto, attr_type};
use super::tensor::Const;
use crate::engine::model::{InputKind, InputSpec, Model, ModelBuilder, NodeId, Op};
use crate::error::{Error, Result};

/// Largest kernel, window, stride or pad accepted.
pub(super) const MAX_WINDOW: usize = 1 << 16;
/// Work allowed for element-order bookkeeping (sum of tracked element maps).
pub(super) const MAX_LAYOUT_WORK: u64 = 1 << 26;
/// Largest sum of per-sample activation sizes over all layers.
pub(super) const MAX_TOTAL_ACTIVATION: u64 = 1 << 26;
/// Largest number of classes.
const MAX_CLASSES: usize = 1 << 20;
/// Stands for the (unknown) batch size in shapes computed by `Shape`.
pub(super) const BATCH: i64 = i64::MIN + 0x5eed;

#[derive(Debug, Clone)]
pub(super) enum Val {
    Const(Rc<Const>),
    Act(Act),
    /// A tensor of any shape filled with one value, computed at run time from
    /// a shape (tf2onnx's zero initial states: `Expand(0, Shape(x)…)`).
    Fill(f32),
}

pub(super) fn bad(msg: impl Into<String>) -> Error {
    Error::format("ONNX", msg)
}

/// How errors name a node: its name, else the tensor it writes.
pub(super) fn label(n: &NodeProto) -> String {
    match (n.name.is_empty(), n.output.first()) {
        (false, _) => format!("'{}' ({})", n.name, n.op_type),
        (true, Some(o)) => format!("{} writing '{o}'", n.op_type),
        (true, None) => n.op_type.clone(),
    }
}

pub(super) fn unsupported_option(n: &NodeProto, option: String, supported: &str) -> Error {
    Error::Unsupported { what: format!("option of ONNX node {}", label(n)), name: option, supported: supported.into() }
}

/// Typed attribute reads: a wrong type is a format error naming the node.
pub(super) struct Attrs<'a>(pub(super) &'a NodeProto);

impl<'a> Attrs<'a> {
    pub(super) fn get(&self, name: &str, want: i32, what: &str) -> Result<Option<&'a AttributeProto>> {
        match self.0.attribute.iter().find(|a| a.name == name) {
            Some(a) if a.r#type != 0 && a.r#type != want => {
                Err(bad(format!("attribute '{name}' of node {} must be {what}", label(self.0))))
            }
            other => Ok(other),
        }
    }
    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.get(name, attr_type::INT, "an integer")?.map_or(default, |a| a.i))
    }
    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.get(name, attr_type::INTS, "a list of integers")?.map(|a| a.ints.clone()))
    }
    pub(super) fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.get(name, attr_type::FLOAT, "a number")?.map_or(default, |a| a.f))
    }
    pub(super) fn string(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name, attr_type::STRING, "a string")?.map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }
    pub(super) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self.get(name, attr_type::TENSOR, "a tensor")?.and_then(|a| a.t.as_ref()))
    }
    /// A list of `len` sizes from 1 to `MAX_WINDOW` (kernel sizes, strides, dilations).
    pub(super) fn sizes(&self, name: &str, len: usize, default: Option<usize>) -> Result<Vec<usize>> {
        let Some(v) = self.ints(name)? else {
            return default.map(|d| vec![d; len]).ok_or_else(|| bad(format!("node {} has no '{name}' attribute", label(self.0))));
        };
        if v.len() != len || v.iter().any(|&x| x < 1 || x as u64 > MAX_WINDOW as u64) {
            return Err(bad(format!(
                "attribute '{name}' of node {} must be {len} integers from 1 to {MAX_WINDOW}, got {v:?}",
                label(self.0)
            )));
        }
        Ok(v.iter().map(|&x| x as usize).collect())
    }
}

pub(super) struct Cx<'g> {
    pub(super) nodes: &'g [NodeProto],
    pub(super) b: ModelBuilder,
    pub(super) vals: HashMap<&'g str, Val>,
    /// Readers of each tensor among the needed nodes (one entry per use).
    pub(super) readers: HashMap<&'g str, Vec<usize>>,
    pub(super) output: &'g str,
    /// Nodes fused into an earlier one (a bias Add, an activation).
    pub(super) absorbed: Vec<bool>,
    pub(super) opset: i64,
    /// The input's batch size when the file fixes it.
    pub(super) batch: Option<i64>,
    /// Floats still allowed to be materialised (weights, folded constants).
    pub(super) budget: u64,
    pub(super) layout_work: u64,
    pub(super) activations: u64,
    /// Slice/Gather nodes that take the last step of a recurrent output.
    pub(super) last_step: HashSet<usize>,
    /// Gathers of one direction of a bidirectional layer's `Y_h`, and that direction.
    pub(super) picks: HashMap<usize, Act>,
    /// The graph input holds integers (token ids).
    pub(super) int_input: bool,
    /// The first op on the input is an Add/Sub/Mul/Div by constants: the
    /// model scales its own input (Keras `Rescaling` through tf2onnx).
    pub(super) rescales: bool,
}

/// Builds the IR model for `g`. `opset` is the default domain's opset
/// version; `file_len` bounds what may be materialised from the file.
pub fn build(g: &GraphProto, opset: i64, name: &str, file_len: usize) -> Result<Model> {
    let nodes = g.node.as_slice();
    let graph::Sorted { mut vals, input, output, order, readers } = graph::sort(g)?;

    // The input, presented to the engine channels-last.
    let (shape, batch, tokens) = graph::input_shape(input)?;
    // A float input read only through casts to integers holds token ids as floats (tf2onnx's
    // export of a Keras Embedding model, whose Input is float32 by default).
    let tokens = tokens || graph::read_as_ids(nodes, &readers, &input.name);
    let (ir_shape, layout) = graph::input_layout(nodes, &readers, &input.name, &shape);
    let kind = match ir_shape.len() {
        _ if tokens => InputKind::Tokens,
        3 => InputKind::Image,
        _ => InputKind::Vectors,
    };
    let b = ModelBuilder::new(name, InputSpec::new(ir_shape, kind))?;
    let first = b.last();
    vals.insert(input.name.as_str(), Val::Act(Act::new(first, shape, layout)));

    let mut cx = Cx {
        nodes,
        b,
        vals,
        readers,
        output,
        absorbed: vec![false; nodes.len()],
        opset,
        batch,
        budget: (file_len as u64 / 2).saturating_add(1 << 20),
        layout_work: 0,
        activations: 0,
        last_step: HashSet::new(),
        picks: HashMap::new(),
        int_input: kind == InputKind::Tokens,
        rescales: false,
    };
    // Constants first; a second try once `Shape` of computed tensors is known.
    let mut folded = vec![false; nodes.len()];
    for &i in &order {
        folded[i] = cx.fold(i)?;
    }
    for &i in &order {
        if !folded[i] && !cx.absorbed[i] && !cx.fold(i)? {
            cx.node(i)?;
        }
    }
    cx.finish()
}

impl<'g> Cx<'g> {
    pub(super) fn n(&self, i: usize) -> &'g NodeProto {
        &self.nodes[i]
    }

    pub(super) fn ir_name(&self, i: usize) -> String {
        let n = self.n(i);
        match (n.name.is_empty(), n.output.first()) {
            (false, _) => n.name.clone(),
            (true, Some(o)) if !o.is_empty() => o.clone(),
            _ => format!("{}_{i}", n.op_type),
        }
    }

    /// Converts node `i` through its rule in the op table.
    fn node(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let unsupported = |name: String| Error::Unsupported { what: "ONNX op".into(), name, supported: SUPPORTED_OPS.into() };
        if !is_default_domain(n) {
            return Err(unsupported(format!("{}.{} (node {})", n.domain, n.op_type, label(n))));
        }
        match ops::rule(&n.op_type).and_then(|r| r.layer) {
            Some(convert) => convert(self, i),
            None => Err(unsupported(format!("{} (node {})", n.op_type, label(n)))),
        }
    }

    pub(super) fn spend(&mut self, floats: usize, i: usize) -> Result<()> {
        let f = floats as u64;
        if f > self.budget {
            return Err(Error::too_large(
                format!("values materialised for node {} (weights shared or broadcast beyond the file size)", label(self.n(i))),
                f,
                self.budget,
            ));
        }
        self.budget -= f;
        Ok(())
    }

    /// Input `k` of node `i`; an error if it is named but not computed yet.
    pub(super) fn input(&self, i: usize, k: usize) -> Result<Option<&Val>> {
        match self.n(i).input.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(t) => self
                .vals
                .get(t.as_str())
                .map(Some)
                .ok_or_else(|| bad(format!("node {} reads '{t}' before it is computed", label(self.n(i))))),
        }
    }

    /// Input `k` of node `n` if it is known by now (for look-ahead and folding).
    pub(super) fn known(&self, n: &NodeProto, k: usize) -> Option<&Val> {
        n.input.get(k).filter(|t| !t.is_empty()).and_then(|t| self.vals.get(t.as_str()))
    }

    /// Input `k` as a computed tensor with the batch first (the usual case).
    pub(super) fn act(&self, i: usize, k: usize) -> Result<Act> {
        let a = self.act_any(i, k)?;
        if a.batch != 0 || !a.fold.is_empty() {
            let n = self.n(i);
            return Err(Error::Unsupported {
                what: format!("input of ONNX node {}", label(n)),
                name: match a.batch {
                    0 => format!("a tensor whose batch axis holds {:?} per sample as well", a.fold),
                    b => format!("a tensor with its batch axis moved to axis {b}"),
                },
                supported: "the batch as the first axis (time-major sequences only around LSTM/GRU/RNN)".into(),
            });
        }
        Ok(a)
    }

    /// Input `k` as a computed tensor, wherever its batch axis is.
    pub(super) fn act_any(&self, i: usize, k: usize) -> Result<Act> {
        match self.input(i, k)? {
            Some(Val::Act(a)) => Ok(a.clone()),
            Some(Val::Const(_) | Val::Fill(_)) => Err(Error::Unsupported {
                what: "ONNX node input".into(),
                name: format!("constant input {k} ('{}') of node {}", self.n(i).input[k], label(self.n(i))),
                supported: "inputs computed from the graph input; constants only as weights, shapes and axes".into(),
            }),
            None => Err(bad(format!("node {} lacks input {k}", label(self.n(i))))),
        }
    }

    pub(super) fn konst(&self, i: usize, k: usize, what: &str) -> Result<Rc<Const>> {
        match self.input(i, k)? {
            Some(Val::Const(c)) => Ok(c.clone()),
            Some(Val::Act(_) | Val::Fill(_)) => Err(Error::Unsupported {
                what: "ONNX node input".into(),
                name: format!("{what} (input {k}, '{}') of node {} computed at run time", self.n(i).input[k], label(self.n(i))),
                supported: "weights, shapes and axes given as initializers or constants".into(),
            }),
            None => Err(bad(format!("node {} lacks its {what} (input {k})", label(self.n(i))))),
        }
    }

    pub(super) fn opt_konst(&self, i: usize, k: usize, what: &str) -> Result<Option<Rc<Const>>> {
        match self.input(i, k)? {
            None => Ok(None),
            Some(_) => self.konst(i, k, what).map(Some),
        }
    }

    pub(super) fn ints_input(&self, i: usize, k: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.opt_konst(i, k, what)? {
            None => Ok(None),
            Some(c) => {
                c.i64s().map(|v| Some(v.to_vec())).ok_or_else(|| bad(format!("{what} of node {} must be integers", label(self.n(i)))))
            }
        }
    }

    /// Integer operands that moved from attributes to inputs at opset
    /// `since` (Squeeze/Unsqueeze axes at 13, Slice's at 10).
    pub(super) fn ints_arg(&self, i: usize, k: usize, attr: &str, since: i64) -> Result<Option<Vec<i64>>> {
        if self.opset < since { Attrs(self.n(i)).ints(attr) } else { self.ints_input(i, k, attr) }
    }

    pub(super) fn bind(&mut self, i: usize, k: usize, v: Val) -> Result<()> {
        let t =
            self.n(i).output.get(k).filter(|s| !s.is_empty()).ok_or_else(|| bad(format!("node {} has no output {k}", label(self.n(i)))))?;
        self.vals.insert(t.as_str(), v);
        Ok(())
    }

    pub(super) fn bind_name(&mut self, t: &'g str, v: Val) {
        self.vals.insert(t, v);
    }

    pub(super) fn is_read(&self, t: &str) -> bool {
        !t.is_empty() && (t == self.output || self.readers.get(t).is_some_and(|r| !r.is_empty()))
    }

    /// Outputs after the first must be unused (Dropout's mask, MaxPool's indices, …).
    pub(super) fn first_output_only(&self, i: usize) -> Result<()> {
        let n = self.n(i);
        match n.output.iter().enumerate().skip(1).find(|(_, t)| self.is_read(t)) {
            Some((k, t)) => Err(unsupported_option(n, format!("output {k} ('{t}') is used"), "only the first output is used")),
            None => Ok(()),
        }
    }

    /// The only reader of tensor `t`, unless `t` is the graph output.
    pub(super) fn sole_reader(&self, t: &str) -> Option<usize> {
        match self.readers.get(t).map(Vec::as_slice) {
            Some(&[j]) if t != self.output && !self.absorbed[j] => Some(j),
            _ => None,
        }
    }

    pub(super) fn emit(&mut self, i: usize, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let id = self.b.add(self.ir_name(i), op, inputs)?;
        self.activations += self.b.shape(id).iter().product::<usize>() as u64;
        if self.activations > MAX_TOTAL_ACTIVATION {
            return Err(Error::too_large("sum of per-sample activations over all layers", self.activations, MAX_TOTAL_ACTIVATION));
        }
        Ok(id)
    }

    pub(super) fn ir_shape(&self, a: &Act) -> Vec<usize> {
        self.b.shape(a.node).to_vec()
    }

    fn finish(mut self) -> Result<Model> {
        let out = match self.vals.remove(self.output) {
            Some(Val::Act(a)) => a,
            Some(_) => return Err(Error::invalid("the ONNX graph output is a constant: it does not depend on the input")),
            None => return Err(bad(format!("the graph output '{}' was not computed", self.output))),
        };
        let ir = self.ir_shape(&out);
        let vector = nonunit(&out.shape).len() <= 1 && ir.len() == 1;
        let per_step = out.shape.len() == 2 && ir == out.shape;
        if out.batch != 0 || !out.fold.is_empty() || !out.is_plain() || !(vector || per_step) {
            return Err(Error::shape(
                "ONNX model output",
                "class scores per sample [batch, classes], or per step [batch, steps, classes]",
                format!("{:?} with the batch on axis {}", out.shape, out.batch),
            ));
        }
        let classes: usize = if per_step { out.shape[1] } else { out.shape.iter().product() };
        if out.node != self.b.last() {
            return Err(Error::Unsupported {
                what: "ONNX model output".into(),
                name: format!("'{}', computed before other layers it does not use", self.output),
                supported: "an output computed by the last layer".into(),
            });
        }
        if classes > MAX_CLASSES {
            return Err(Error::too_large("number of classes (model outputs)", classes as u64, MAX_CLASSES as u64));
        }
        let leads_with_scaling = self.rescales;
        let mut model = self.b.finish((0..classes).map(|c| c.to_string()).collect())?;
        model.input.rescales = model.scales_raw_pixels(leads_with_scaling);
        Ok(model)
    }
}

/// Ops of the default domain are ours; any other domain is not.
pub(super) fn is_default_domain(n: &NodeProto) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

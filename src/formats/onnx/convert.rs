//! ONNX graph → validated IR, through [`ModelBuilder`].
//!
//! ONNX tensors carry a batch axis and, for images, are channels-first
//! (NCHW); the IR is per sample and channels-last (NHWC). Every ONNX tensor
//! computed from the input is tracked as an [`Act`]: its *logical* per-sample
//! shape (what the ONNX graph means) plus how the IR node that holds it
//! *stores* it ([`Layout`]). Transpose, Squeeze/Unsqueeze and unit-axis
//! Reshapes only change that bookkeeping; Conv and pooling need their input
//! stored channels-last; Flatten of a tensor stored in another order than the
//! ONNX one becomes an IR Flatten plus an element order that the next Dense
//! layer absorbs by permuting its kernel rows. So the IR model computes the
//! same function on channels-last input as the ONNX model does on its own.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use ndarray::{Array1, Array2, Array4};

use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto, attr_type, data_type};
use super::tensor::{Const, Data};
use crate::engine::kernels::PoolKind;
use crate::engine::model::{Activation, Cell, InputKind, InputSpec, Model, ModelBuilder, NodeId, Op, Padding, Recurrent};
use crate::error::{Error, Result, checked_elems};

/// The ops this loader maps (constant-only ops are folded at load time).
pub const SUPPORTED_OPS: &str = "Gemm, MatMul (+ Add bias), Conv, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, \
Transpose, Squeeze, Unsqueeze, Relu, Tanh, Sigmoid, Softmax, Add, Sum, Sub/Mul/Div by a per-channel constant, \
BatchNormalization, Dropout, Identity, LSTM, GRU, RNN (forward), Gather (embedding; last step of a sequence), \
Slice (last step of a sequence), Tile (a vector repeated along a unit axis: RepeatVector), Cast; on constants and shapes also Constant, Shape, Gather, Concat, Slice, Cast, \
Expand, ConstantOfShape";

/// Largest kernel, window, stride or pad accepted.
const MAX_WINDOW: usize = 1 << 16;
/// Work allowed for element-order bookkeeping (sum of tracked element maps).
const MAX_LAYOUT_WORK: u64 = 1 << 26;
/// Largest sum of per-sample activation sizes over all layers.
const MAX_TOTAL_ACTIVATION: u64 = 1 << 26;
/// Largest number of classes.
const MAX_CLASSES: usize = 1 << 20;
/// Stands for the (unknown) batch size in shapes computed by `Shape`.
const BATCH: i64 = i64::MIN + 0x5eed;

/// How an IR node stores a logical per-sample tensor.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// The IR node's axes of size > 1, in order, are these logical axes (a
    /// permutation of the logical axes of size > 1). Axes of size 1 are free.
    Axes(Vec<usize>),
    /// The IR node is a vector; element `p` holds logical element `m[p]`
    /// (row-major flat index).
    Elems(Rc<Vec<u32>>),
}

#[derive(Debug, Clone)]
struct Act {
    node: NodeId,
    shape: Vec<usize>,
    layout: Layout,
    /// Where the batch axis sits in the ONNX tensor (0 but around recurrent
    /// layers, whose sequences are time-major).
    batch: usize,
    /// Leading per-sample axes that the ONNX graph merged into its batch axis
    /// (tf2onnx's TimeDistributed: `[N, T, F]` → `[N·T, F]`); the IR node
    /// stores `fold ++ shape` in its own order.
    fold: Vec<usize>,
}

impl Act {
    fn new(node: NodeId, shape: Vec<usize>, layout: Layout) -> Act {
        Act { node, shape, layout, batch: 0, fold: vec![] }
    }
}

#[derive(Debug, Clone)]
enum Val {
    Const(Rc<Const>),
    Act(Act),
    /// A tensor of any shape filled with one value, computed at run time from
    /// a shape (tf2onnx's zero initial states: `Expand(0, Shape(x)…)`).
    Fill(f32),
}

fn bad(msg: impl Into<String>) -> Error {
    Error::format("ONNX", msg)
}

fn label(n: &NodeProto) -> String {
    match (n.name.is_empty(), n.output.first()) {
        (false, _) => format!("'{}' ({})", n.name, n.op_type),
        (true, Some(o)) => format!("{} writing '{o}'", n.op_type),
        (true, None) => n.op_type.clone(),
    }
}

fn unsupported_option(n: &NodeProto, option: String, supported: &str) -> Error {
    Error::Unsupported { what: format!("option of ONNX node {}", label(n)), name: option, supported: supported.into() }
}

/// Logical axes of size > 1 in `order`.
fn axes_in(shape: &[usize], order: &[usize]) -> Vec<usize> {
    order.iter().copied().filter(|&a| shape[a] != 1).collect()
}

/// The layout of a tensor stored in its own axis order.
fn plain(shape: &[usize]) -> Layout {
    Layout::Axes((0..shape.len()).filter(|&a| shape[a] != 1).collect())
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

fn nonunit(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Per-sample axis of an ONNX axis attribute over a tensor of `rank` axes
/// including the batch; `None` for the batch axis or out of range.
fn sample_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis.checked_add(rank as i64)? } else { axis };
    (a >= 1 && (a as usize) < rank).then(|| a as usize - 1)
}

struct Attrs<'a>(&'a NodeProto);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str, want: i32, what: &str) -> Result<Option<&'a AttributeProto>> {
        match self.0.attribute.iter().find(|a| a.name == name) {
            Some(a) if a.r#type != 0 && a.r#type != want => {
                Err(bad(format!("attribute '{name}' of node {} must be {what}", label(self.0))))
            }
            other => Ok(other),
        }
    }
    fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.get(name, attr_type::INT, "an integer")?.map_or(default, |a| a.i))
    }
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.get(name, attr_type::INTS, "a list of integers")?.map(|a| a.ints.clone()))
    }
    fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.get(name, attr_type::FLOAT, "a number")?.map_or(default, |a| a.f))
    }
    fn string(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name, attr_type::STRING, "a string")?.map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }
    fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self.get(name, attr_type::TENSOR, "a tensor")?.and_then(|a| a.t.as_ref()))
    }
    /// A list of `len` sizes from 1 to `MAX_WINDOW` (kernel sizes, strides, dilations).
    fn sizes(&self, name: &str, len: usize, default: Option<usize>) -> Result<Vec<usize>> {
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

struct Cx<'g> {
    nodes: &'g [NodeProto],
    b: ModelBuilder,
    vals: HashMap<&'g str, Val>,
    /// Readers of each tensor among the needed nodes (one entry per use).
    readers: HashMap<&'g str, Vec<usize>>,
    output: &'g str,
    absorbed: Vec<bool>,
    opset: i64,
    /// The input's batch size when the file fixes it.
    batch: Option<i64>,
    /// Floats still allowed to be materialised (weights, folded constants).
    budget: u64,
    layout_work: u64,
    activations: u64,
    /// Slice/Gather nodes that take the last step of a recurrent output.
    last_step: HashSet<usize>,
    /// The graph input holds integers (token ids).
    int_input: bool,
}

/// Builds the IR model for `g`. `opset` is the default domain's opset
/// version; `file_len` bounds what may be materialised from the file.
pub fn build(g: &GraphProto, opset: i64, name: &str, file_len: usize) -> Result<Model> {
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

    // The input, presented to the engine channels-last.
    let (shape, batch, tokens) = input_shape(input)?;
    let nchw = shape.len() == 3 && (feeds_channels_first(nodes, &readers, &input.name) || (shape[0] <= 4 && shape[1] > 4 && shape[2] > 4));
    let (ir_shape, layout) =
        if nchw { (vec![shape[1], shape[2], shape[0]], Layout::Axes(axes_in(&shape, &[1, 2, 0]))) } else { (shape.clone(), plain(&shape)) };
    let kind = match ir_shape.len() {
        _ if tokens => InputKind::Tokens,
        3 => InputKind::Image,
        _ => InputKind::Vectors,
    };
    let b = ModelBuilder::new(name, InputSpec { shape: ir_shape, kind, scale: 1.0, offset: 0.0 })?;
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
        int_input: kind == InputKind::Tokens,
    };
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

/// Per-sample input shape, fixed batch size (if any), and whether it holds
/// integers (token ids).
fn input_shape(input: &super::proto::ValueInfoProto) -> Result<(Vec<usize>, Option<i64>, bool)> {
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

/// Does the input reach a channels-first op (Conv, pooling, BatchNormalization)
/// through element-wise ops only?
fn feeds_channels_first(nodes: &[NodeProto], readers: &HashMap<&str, Vec<usize>>, input: &str) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![input];
    while let Some(t) = stack.pop() {
        for &i in readers.get(t).into_iter().flatten() {
            let n = &nodes[i];
            match n.op_type.as_str() {
                "Conv" | "MaxPool" | "AveragePool" | "GlobalAveragePool" | "BatchNormalization" => return true,
                "Relu" | "Tanh" | "Sigmoid" | "Identity" | "Dropout" | "Add" | "Sub" | "Mul" | "Div" if seen.insert(i) => {
                    stack.extend(n.output.first().map(String::as_str));
                }
                _ => {}
            }
        }
    }
    false
}

impl<'g> Cx<'g> {
    fn n(&self, i: usize) -> &'g NodeProto {
        &self.nodes[i]
    }

    fn ir_name(&self, i: usize) -> String {
        let n = self.n(i);
        match (n.name.is_empty(), n.output.first()) {
            (false, _) => n.name.clone(),
            (true, Some(o)) if !o.is_empty() => o.clone(),
            _ => format!("{}_{i}", n.op_type),
        }
    }

    fn spend(&mut self, floats: usize, i: usize) -> Result<()> {
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

    fn input(&self, i: usize, k: usize) -> Result<Option<&Val>> {
        match self.n(i).input.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(t) => self
                .vals
                .get(t.as_str())
                .map(Some)
                .ok_or_else(|| bad(format!("node {} reads '{t}' before it is computed", label(self.n(i))))),
        }
    }

    /// Input `k` as a computed tensor with the batch first (the usual case).
    fn act(&self, i: usize, k: usize) -> Result<Act> {
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
    fn act_any(&self, i: usize, k: usize) -> Result<Act> {
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

    fn konst(&self, i: usize, k: usize, what: &str) -> Result<Rc<Const>> {
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

    fn opt_konst(&self, i: usize, k: usize, what: &str) -> Result<Option<Rc<Const>>> {
        match self.input(i, k)? {
            None => Ok(None),
            Some(_) => self.konst(i, k, what).map(Some),
        }
    }

    fn ints_input(&self, i: usize, k: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.opt_konst(i, k, what)? {
            None => Ok(None),
            Some(c) => {
                c.i64s().map(|v| Some(v.to_vec())).ok_or_else(|| bad(format!("{what} of node {} must be integers", label(self.n(i)))))
            }
        }
    }

    fn bind(&mut self, i: usize, k: usize, v: Val) -> Result<()> {
        let t =
            self.n(i).output.get(k).filter(|s| !s.is_empty()).ok_or_else(|| bad(format!("node {} has no output {k}", label(self.n(i)))))?;
        self.vals.insert(t.as_str(), v);
        Ok(())
    }

    fn bind_name(&mut self, t: &'g str, v: Val) {
        self.vals.insert(t, v);
    }

    fn is_read(&self, t: &str) -> bool {
        !t.is_empty() && (t == self.output || self.readers.get(t).is_some_and(|r| !r.is_empty()))
    }

    /// Outputs after the first must be unused (Dropout's mask, MaxPool's indices, …).
    fn first_output_only(&self, i: usize) -> Result<()> {
        let n = self.n(i);
        match n.output.iter().enumerate().skip(1).find(|(_, t)| self.is_read(t)) {
            Some((k, t)) => Err(unsupported_option(n, format!("output {k} ('{t}') is used"), "only the first output is used")),
            None => Ok(()),
        }
    }

    /// The only reader of tensor `t`, unless `t` is the graph output.
    fn sole_reader(&self, t: &str) -> Option<usize> {
        match self.readers.get(t).map(Vec::as_slice) {
            Some(&[j]) if t != self.output && !self.absorbed[j] => Some(j),
            _ => None,
        }
    }

    fn emit(&mut self, i: usize, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let id = self.b.add(self.ir_name(i), op, inputs)?;
        self.activations += self.b.shape(id).iter().product::<usize>() as u64;
        if self.activations > MAX_TOTAL_ACTIVATION {
            return Err(Error::too_large("sum of per-sample activations over all layers", self.activations, MAX_TOTAL_ACTIVATION));
        }
        Ok(id)
    }

    fn ir_shape(&self, a: &Act) -> Vec<usize> {
        self.b.shape(a.node).to_vec()
    }

    /// Storage position → logical flat index, for any layout.
    fn elem_map(&mut self, a: &Act) -> Result<Rc<Vec<u32>>> {
        let len: usize = a.shape.iter().product();
        self.layout_work += len as u64;
        if self.layout_work > MAX_LAYOUT_WORK {
            return Err(Error::too_large(
                "layout bookkeeping (transposes and flattens of large tensors)",
                self.layout_work,
                MAX_LAYOUT_WORK,
            ));
        }
        let axes = match &a.layout {
            Layout::Elems(m) => return Ok(m.clone()),
            Layout::Axes(ax) => ax,
        };
        let st = strides(&a.shape);
        let dims: Vec<usize> = axes.iter().map(|&j| a.shape[j]).collect();
        let sts: Vec<usize> = axes.iter().map(|&j| st[j]).collect();
        let mut idx = vec![0usize; dims.len()];
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(idx.iter().zip(&sts).map(|(i, s)| i * s).sum::<usize>() as u32);
            for k in (0..dims.len()).rev() {
                idx[k] += 1;
                if idx[k] < dims[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        Ok(Rc::new(out))
    }

    /// Is `a` stored in its own order (flat storage index = logical index)?
    fn is_plain(a: &Act) -> bool {
        match &a.layout {
            Layout::Axes(ax) => ax.windows(2).all(|w| w[0] < w[1]),
            Layout::Elems(m) => m.iter().enumerate().all(|(p, &v)| p == v as usize),
        }
    }

    /// `a` as (H, W, C) when it is a logical [C, H, W] stored channels-last.
    fn nchw(&self, i: usize, a: &Act) -> Result<(usize, usize, usize)> {
        let n = self.n(i);
        let [c, h, w] = a.shape[..] else {
            return Err(Error::Unsupported {
                what: format!("input shape of ONNX node {}", label(n)),
                name: format!("{:?} per sample", a.shape),
                supported: "2-D images [channels, height, width] (NCHW with the batch)".into(),
            });
        };
        if a.layout != Layout::Axes(axes_in(&a.shape, &[1, 2, 0])) || self.ir_shape(a) != [h, w, c] {
            return Err(Error::Unsupported {
                what: format!("input layout of ONNX node {}", label(n)),
                name: "a channels-first tensor that the engine cannot store channels-last (it reaches the node through a reshape)".into(),
                supported: "NCHW inputs and tensors computed by Conv/pooling, possibly transposed to NHWC and back".into(),
            });
        }
        Ok((h, w, c))
    }

    // ------------------------------------------------------------ constant folding

    /// Folds node `i` when it computes on constants only; `Ok(false)` otherwise.
    fn fold(&mut self, i: usize) -> Result<bool> {
        let n = self.n(i);
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Ok(false);
        }
        let op = n.op_type.as_str();
        if op == "Shape" {
            return match n.input.first().and_then(|t| self.vals.get(t.as_str())) {
                Some(Val::Const(c)) => {
                    let dims: Vec<i64> = c.dims.iter().map(|&d| d as i64).collect();
                    let v = self.shape_slice(i, dims)?;
                    self.bind(i, 0, Val::Const(Rc::new(Const::new(vec![v.len()], Data::I64(v)))))?;
                    Ok(true)
                }
                _ => Ok(false),
            };
        }
        // A filled tensor stays filled through layout ops; Expand and
        // ConstantOfShape make one from a scalar and a (run-time) shape.
        let val = |k: usize| n.input.get(k).filter(|t| !t.is_empty()).and_then(|t| self.vals.get(t.as_str()));
        let fill = match (op, val(0), val(1)) {
            ("Identity" | "Cast" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Transpose" | "Expand", Some(Val::Fill(v)), _) => {
                Some(*v)
            }
            ("Expand", Some(Val::Const(c)), Some(Val::Const(_))) if c.len() == 1 => Some(c.f32s()[0]),
            ("ConstantOfShape", Some(Val::Const(_)), _) => match Attrs(n).tensor("value")? {
                None => Some(0.0),
                Some(t) => {
                    let c = Const::from_proto(t, &format!("the value of node {}", label(n)))?;
                    (c.len() == 1).then(|| c.f32s()[0])
                }
            },
            _ => None,
        };
        if let Some(v) = fill {
            self.bind(i, 0, Val::Fill(v))?;
            return Ok(true);
        }
        if !matches!(
            op,
            "Constant"
                | "Identity"
                | "Cast"
                | "Reshape"
                | "Flatten"
                | "Squeeze"
                | "Unsqueeze"
                | "Transpose"
                | "Concat"
                | "Gather"
                | "Slice"
        ) {
            return Ok(false);
        }
        let mut ins = vec![];
        for t in &n.input {
            match self.vals.get(t.as_str()) {
                _ if t.is_empty() => ins.push(None),
                Some(Val::Const(c)) => ins.push(Some(c.clone())),
                // Computed at run time, or not yet known (derived from `Shape`).
                _ => return Ok(false),
            }
        }
        let at = Attrs(n);
        let first = || ins.first().cloned().flatten().ok_or_else(|| bad(format!("node {} lacks input 0", label(n))));
        let c: Const = match op {
            "Constant" => constant_value(n)?,
            "Identity" => (*first()?).clone(),
            "Cast" => {
                let c = first()?;
                match at.int("to", 0)? as i32 {
                    data_type::FLOAT | data_type::DOUBLE => Const::new(c.dims.clone(), Data::F32(c.f32s())),
                    data_type::INT64 | data_type::INT32 => match &c.data {
                        Data::I64(_) => (*c).clone(),
                        Data::F32(v) => Const::new(c.dims.clone(), Data::I64(v.iter().map(|&x| x as i64).collect())),
                    },
                    t => {
                        return Err(Error::Unsupported {
                            what: "ONNX Cast target".into(),
                            name: format!("{} in node {}", data_type::name(t), label(n)),
                            supported: "FLOAT, DOUBLE, INT32, INT64".into(),
                        });
                    }
                }
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
                let c = first()?;
                let dims = self.const_reshape(i, &c, &ins)?;
                Const::new(dims, c.data.clone())
            }
            "Transpose" => {
                let c = first()?;
                let r = c.dims.len();
                let perm = perm_attr(n, r)?;
                let st = strides(&c.dims);
                let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
                let total = c.len();
                let mut idx = vec![0usize; r];
                let mut flat = Vec::with_capacity(total);
                for _ in 0..total {
                    flat.push(idx.iter().zip(&perm).map(|(x, &p)| x * st[p]).sum::<usize>());
                    for k in (0..r).rev() {
                        idx[k] += 1;
                        if idx[k] < dims[k] {
                            break;
                        }
                        idx[k] = 0;
                    }
                }
                c.select(dims, flat.into_iter())
            }
            "Concat" => {
                let parts: Vec<Rc<Const>> = ins.iter().flatten().cloned().collect();
                let p0 = parts.first().ok_or_else(|| bad(format!("node {} has no inputs", label(n))))?;
                let r = p0.dims.len();
                let axis = at.int("axis", 0)?;
                let a = if axis < 0 { axis + r as i64 } else { axis };
                if a < 0 || a as usize >= r.max(1) || r == 0 {
                    return Err(bad(format!("axis {axis} of node {} is out of range", label(n))));
                }
                let a = a as usize;
                let int = p0.i64s().is_some();
                for p in &parts {
                    if p.dims.len() != r || p.dims.iter().enumerate().any(|(k, &d)| k != a && d != p0.dims[k]) || p.i64s().is_some() != int
                    {
                        return Err(Error::shape(
                            format!("inputs of node {}", label(n)),
                            format!("{:?} apart from axis {a}", p0.dims),
                            format!("{:?}", p.dims),
                        ));
                    }
                }
                let mut dims = p0.dims.clone();
                dims[a] = parts.iter().map(|p| p.dims[a]).sum();
                let total = checked_elems(&format!("output of node {}", label(n)), &dims)?;
                self.spend(total, i)?;
                let outer: usize = dims[..a].iter().product();
                let data = if int {
                    let mut v = Vec::with_capacity(total);
                    for o in 0..outer {
                        for p in &parts {
                            let chunk = p.dims[a..].iter().product::<usize>();
                            v.extend_from_slice(&p.i64s().unwrap_or(&[])[o * chunk..][..chunk]);
                        }
                    }
                    Data::I64(v)
                } else {
                    let mut v = Vec::with_capacity(total);
                    for o in 0..outer {
                        for p in &parts {
                            let chunk = p.dims[a..].iter().product::<usize>();
                            if let Data::F32(d) = &p.data {
                                v.extend_from_slice(&d[o * chunk..][..chunk]);
                            }
                        }
                    }
                    Data::F32(v)
                };
                Const::new(dims, data)
            }
            "Slice" => {
                let c = first()?;
                self.const_slice(i, &c, &ins)?
            }
            "Gather" => {
                let data = first()?;
                let idx = ins.get(1).cloned().flatten().ok_or_else(|| bad(format!("node {} lacks its indices", label(n))))?;
                let ind = idx.i64s().ok_or_else(|| bad(format!("indices of node {} must be integers", label(n))))?;
                let r = data.dims.len();
                let axis = at.int("axis", 0)?;
                let a = if axis < 0 { axis + r as i64 } else { axis };
                if r == 0 || a < 0 || a as usize >= r {
                    return Err(bad(format!("axis {axis} of node {} is out of range", label(n))));
                }
                let a = a as usize;
                let d = data.dims[a];
                let ind = ind
                    .iter()
                    .map(|&x| {
                        let y = if x < 0 { x + d as i64 } else { x };
                        usize::try_from(y)
                            .ok()
                            .filter(|&y| y < d)
                            .ok_or_else(|| bad(format!("index {x} of node {} is out of range 0..{d}", label(n))))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut dims = data.dims[..a].to_vec();
                dims.extend(&idx.dims);
                dims.extend(&data.dims[a + 1..]);
                let total = checked_elems(&format!("output of node {}", label(n)), &dims)?;
                self.spend(total, i)?;
                let inner: usize = data.dims[a + 1..].iter().product();
                let outer: usize = data.dims[..a].iter().product();
                let flat = (0..outer).flat_map(|o| ind.iter().flat_map(move |&x| (0..inner).map(move |k| (o * d + x) * inner + k)));
                data.select(dims, flat)
            }
            _ => return Ok(false),
        };
        self.spend(c.len(), i)?;
        self.bind(i, 0, Val::Const(Rc::new(c)))?;
        Ok(true)
    }

    /// New dims of a constant reshaped by Reshape/Flatten/Squeeze/Unsqueeze.
    fn const_reshape(&self, i: usize, c: &Const, ins: &[Option<Rc<Const>>]) -> Result<Vec<usize>> {
        let n = self.n(i);
        let at = Attrs(n);
        let r = c.dims.len();
        let axes_of = |k: usize, attr: &str| -> Result<Option<Vec<i64>>> {
            if self.opset < 13 {
                at.ints(attr)
            } else {
                match ins.get(k).cloned().flatten() {
                    None => Ok(None),
                    Some(a) => a.i64s().map(|v| Some(v.to_vec())).ok_or_else(|| bad(format!("axes of node {} must be integers", label(n)))),
                }
            }
        };
        let norm = |a: i64, rank: usize| -> Result<usize> {
            let x = if a < 0 { a + rank as i64 } else { a };
            usize::try_from(x).ok().filter(|&x| x < rank).ok_or_else(|| bad(format!("axis {a} of node {} is out of range", label(n))))
        };
        let dims = match n.op_type.as_str() {
            "Flatten" => {
                let a = norm(at.int("axis", 1)?, r + 1)?;
                vec![c.dims[..a].iter().product(), c.dims[a..].iter().product()]
            }
            "Squeeze" => match axes_of(1, "axes")? {
                None => c.dims.iter().copied().filter(|&d| d != 1).collect(),
                Some(ax) => {
                    let ax = ax.iter().map(|&a| norm(a, r)).collect::<Result<HashSet<_>>>()?;
                    if ax.iter().any(|&a| c.dims[a] != 1) {
                        return Err(Error::shape(
                            format!("node {}", label(n)),
                            "axes of size 1 to squeeze",
                            format!("{:?} from {:?}", ax, c.dims),
                        ));
                    }
                    c.dims.iter().enumerate().filter(|(k, _)| !ax.contains(k)).map(|(_, &d)| d).collect()
                }
            },
            "Unsqueeze" => {
                let ax = axes_of(1, "axes")?.ok_or_else(|| bad(format!("node {} has no axes", label(n))))?;
                let out = r + ax.len();
                let ax = ax.iter().map(|&a| norm(a, out)).collect::<Result<BTreeSet<_>>>()?;
                let mut rest = c.dims.iter();
                (0..out).map(|k| if ax.contains(&k) { 1 } else { rest.next().copied().unwrap_or(1) }).collect()
            }
            _ => {
                let shape = ins.get(1).cloned().flatten().ok_or_else(|| bad(format!("node {} lacks its shape input", label(n))))?;
                let want = shape.i64s().ok_or_else(|| bad(format!("shape of node {} must be integers", label(n))))?;
                let allowzero = self.opset >= 14 && at.int("allowzero", 0)? != 0;
                resolve_shape(want, &c.dims, allowzero).ok_or_else(|| {
                    Error::shape(format!("node {}", label(n)), format!("a shape for {} values", c.len()), format!("{want:?}"))
                })?
            }
        };
        if dims.iter().product::<usize>() != c.len() {
            return Err(Error::shape(format!("node {}", label(n)), c.len(), format!("{dims:?}")));
        }
        Ok(dims)
    }

    /// ONNX Slice of a constant (`starts`, `ends`, `axes`, `steps` as inputs
    /// from opset 10, attributes before).
    fn const_slice(&self, i: usize, c: &Const, ins: &[Option<Rc<Const>>]) -> Result<Const> {
        let n = self.n(i);
        let at = Attrs(n);
        let ints = |k: usize, attr: &str| -> Result<Option<Vec<i64>>> {
            if self.opset < 10 {
                return at.ints(attr);
            }
            match ins.get(k).cloned().flatten() {
                None => Ok(None),
                Some(v) => v.i64s().map(|v| Some(v.to_vec())).ok_or_else(|| bad(format!("{attr} of node {} must be integers", label(n)))),
            }
        };
        let starts = ints(1, "starts")?.ok_or_else(|| bad(format!("node {} has no starts", label(n))))?;
        let ends = ints(2, "ends")?.ok_or_else(|| bad(format!("node {} has no ends", label(n))))?;
        let r = c.dims.len();
        let axes = ints(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(bad(format!("node {}: starts, ends, axes and steps differ in length", label(n))));
        }
        let mut picks: Vec<Vec<usize>> = c.dims.iter().map(|&d| (0..d).collect()).collect();
        for k in 0..starts.len() {
            let a = if axes[k] < 0 { axes[k] + r as i64 } else { axes[k] };
            let a = usize::try_from(a)
                .ok()
                .filter(|&a| a < r)
                .ok_or_else(|| bad(format!("axis {} of node {} is out of range", axes[k], label(n))))?;
            let d = c.dims[a] as i128;
            let step = steps[k] as i128;
            if step == 0 {
                return Err(bad(format!("node {} has a zero step", label(n))));
            }
            let norm = |v: i64| if v < 0 { v as i128 + d } else { v as i128 };
            let (lo, hi) = if step > 0 { (0, d) } else { (-1, d - 1) };
            let (mut p, e) = (norm(starts[k]).clamp(lo, hi), norm(ends[k]).clamp(lo, hi));
            let mut v = vec![];
            while (step > 0 && p < e) || (step < 0 && p > e) {
                v.push(p as usize);
                p += step;
            }
            picks[a] = v;
        }
        let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
        let st = strides(&c.dims);
        let total: usize = dims.iter().product();
        let mut idx = vec![0usize; r];
        let mut flat = Vec::with_capacity(total);
        for _ in 0..total {
            flat.push(idx.iter().enumerate().map(|(a, &x)| picks[a][x] * st[a]).sum::<usize>());
            for k in (0..r).rev() {
                idx[k] += 1;
                if idx[k] < dims[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        Ok(c.select(dims, flat.into_iter()))
    }

    fn shape_slice(&self, i: usize, dims: Vec<i64>) -> Result<Vec<i64>> {
        let at = Attrs(self.n(i));
        let r = dims.len() as i64;
        let clamp = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) };
        let (s, e) = (clamp(at.int("start", 0)?), clamp(at.int("end", r)?));
        Ok(if s < e { dims[s as usize..e as usize].to_vec() } else { vec![] })
    }

    // ------------------------------------------------------------ ops on activations

    fn node(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(Error::Unsupported {
                what: "ONNX op".into(),
                name: format!("{}.{} (node {})", n.domain, n.op_type, label(n)),
                supported: SUPPORTED_OPS.into(),
            });
        }
        match n.op_type.as_str() {
            "Conv" => self.conv(i),
            "MaxPool" | "AveragePool" => self.pool(i),
            "GlobalAveragePool" => self.gap(i),
            "Gemm" => self.gemm(i),
            "MatMul" => self.matmul(i),
            "Add" | "Sum" | "Sub" | "Mul" | "Div" => self.arith(i),
            "Relu" | "Tanh" | "Sigmoid" => {
                let x = self.act_any(i, 0)?;
                let a = activation_of(&n.op_type).unwrap_or(Activation::Linear);
                let id = self.emit(i, Op::Activation(a), &[x.node])?;
                self.bind(i, 0, Val::Act(Act { node: id, ..x }))
            }
            "Softmax" => self.softmax(i),
            "BatchNormalization" => self.batch_norm(i),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => self.reshape(i),
            "Transpose" => self.transpose(i),
            "Identity" => {
                let x = self.act_any(i, 0)?;
                self.bind(i, 0, Val::Act(x))
            }
            "Cast" => {
                let x = self.act_any(i, 0)?;
                let to = Attrs(n).int("to", 0)? as i32;
                let float = matches!(to, data_type::FLOAT | data_type::DOUBLE);
                if !(float || (self.int_input && x.node == 0 && matches!(to, data_type::INT64 | data_type::INT32))) {
                    return Err(unsupported_option(
                        n,
                        format!("to={}", data_type::name(to)),
                        "casts to FLOAT, or of integer token ids to INT32/INT64",
                    ));
                }
                self.bind(i, 0, Val::Act(x))
            }
            "LSTM" | "GRU" | "RNN" => self.recurrent(i),
            "Tile" => self.tile(i),
            "Gather" => self.gather(i),
            "Slice" => self.slice(i),
            "Dropout" => {
                self.first_output_only(i)?;
                let x = self.act_any(i, 0)?;
                let id = self.emit(i, Op::Dropout, &[x.node])?;
                self.bind(i, 0, Val::Act(Act { node: id, ..x }))
            }
            "Shape" => {
                let x = self.act_any(i, 0)?;
                if !x.fold.is_empty() {
                    return Err(Error::Unsupported {
                        what: "ONNX node".into(),
                        name: format!("{} of a batch-merged tensor", label(n)),
                        supported: "Shape of tensors whose batch axis holds only samples".into(),
                    });
                }
                let mut dims: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
                dims.insert(x.batch.min(dims.len()), BATCH);
                let v = self.shape_slice(i, dims)?;
                self.bind(i, 0, Val::Const(Rc::new(Const::new(vec![v.len()], Data::I64(v)))))
            }
            _ => Err(Error::Unsupported {
                what: "ONNX op".into(),
                name: format!("{} (node {})", n.op_type, label(n)),
                supported: SUPPORTED_OPS.into(),
            }),
        }
    }

    /// After a Dense/Conv output of logical `shape` (channels on `axis`):
    /// fuses an `Add` of a per-channel constant (the bias) and then a
    /// Relu/Tanh/Sigmoid (or, for vectors, Softmax over the channels) when each
    /// is the only reader. Returns the tensor the result binds to, the extra
    /// bias and the activation.
    fn tail(&mut self, i: usize, shape: &[usize], axis: usize, softmax_ok: bool) -> Result<(&'g str, Option<Vec<f32>>, Activation)> {
        let nodes = self.nodes;
        let mut out: &'g str = nodes[i].output.first().map(String::as_str).unwrap_or("");
        let mut bias = None;
        if let Some(j) = self.sole_reader(out) {
            let m = &nodes[j];
            if m.op_type == "Add" && m.domain.is_empty() && m.input.len() == 2 && m.output.first().is_some_and(|o| !o.is_empty()) {
                let other = if m.input[0] == out { &m.input[1] } else { &m.input[0] };
                if let Some(Val::Const(c)) = self.vals.get(other.as_str())
                    && let Some(v) = channel_vector(c, shape.len() + 1, axis + 1, shape[axis])
                {
                    bias = Some(v);
                    self.absorbed[j] = true;
                    out = m.output[0].as_str();
                }
            }
        }
        let mut act = Activation::Linear;
        if let Some(j) = self.sole_reader(out) {
            let m = &nodes[j];
            let a = match m.op_type.as_str() {
                "Softmax" if softmax_ok && m.domain.is_empty() => {
                    let r = shape.len() as i64 + 1;
                    let axis = Attrs(m).int("axis", if self.opset < 13 { 1 } else { -1 })?;
                    (axis == r - 1 || axis == -1).then_some(Activation::Softmax)
                }
                op if m.domain.is_empty() => activation_of(op),
                _ => None,
            };
            if let (Some(a), Some(o)) = (a, m.output.first().filter(|o| !o.is_empty())) {
                act = a;
                self.absorbed[j] = true;
                out = o.as_str();
            }
        }
        Ok((out, bias, act))
    }

    fn gemm(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let at = Attrs(n);
        if at.int("transA", 0)? != 0 {
            return Err(unsupported_option(n, "transA=1".into(), "transA=0 (the batch stays the first axis)"));
        }
        let x = self.act_any(i, 0)?;
        if x.batch != 0 {
            return Err(Error::shape(
                format!("input A of Gemm node {}", label(n)),
                "[batch, features]",
                format!("batch on axis {}", x.batch),
            ));
        }
        if x.shape.len() != 1 {
            return Err(Error::shape(
                format!("input A of Gemm node {}", label(n)),
                "a matrix [batch, features]",
                format!("[batch, {:?}]", x.shape),
            ));
        }
        let w = self.konst(i, 1, "weights B")?;
        let [r, c] = w.dims[..] else {
            return Err(Error::shape(format!("weights B of node {}", label(n)), "2 dimensions", format!("{:?}", w.dims)));
        };
        let trans_b = at.int("transB", 0)? != 0;
        let (k, m) = if trans_b { (c, r) } else { (r, c) };
        if k != x.shape[0] {
            return Err(Error::shape(
                format!("weights B of node {}", label(n)),
                format!("{} input features", x.shape[0]),
                format!("{:?} (transB={})", w.dims, trans_b as u8),
            ));
        }
        let (alpha, beta) = (at.float("alpha", 1.0)?, at.float("beta", 1.0)?);
        let wv = w.f32s();
        let mut kernel = Array2::from_shape_vec((r, c), wv).map_err(|e| bad(e.to_string()))?;
        if trans_b {
            kernel = kernel.reversed_axes().as_standard_layout().into_owned();
        }
        if alpha != 1.0 {
            kernel.mapv_inplace(|v| v * alpha);
        }
        let bias = match self.opt_konst(i, 2, "bias C")? {
            None => vec![0.0; m],
            Some(cst) => channel_vector(&cst, 2, 1, m)
                .ok_or_else(|| {
                    Error::shape(
                        format!("bias C of node {}", label(n)),
                        format!("[{m}] or [1, {m}] or a scalar"),
                        format!("{:?}", cst.dims),
                    )
                })?
                .into_iter()
                .map(|v| v * beta)
                .collect(),
        };
        self.dense(i, x, kernel, bias)
    }

    fn matmul(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let x = self.act_any(i, 0)?;
        if x.batch == x.shape.len() {
            return Err(Error::shape(
                format!("input A of MatMul node {}", label(n)),
                "features on the last axis, not the batch",
                format!("batch on axis {}", x.batch),
            ));
        }
        let w = self.konst(i, 1, "weights B")?;
        let [k, m] = w.dims[..] else {
            return Err(Error::Unsupported {
                what: "ONNX MatMul weights".into(),
                name: format!("shape {:?} in node {}", w.dims, label(n)),
                supported: "a 2-D constant [in, out] as the second input".into(),
            });
        };
        if x.shape.last() != Some(&k) {
            return Err(Error::shape(
                format!("weights B of node {}", label(n)),
                format!("{:?} input features", x.shape.last()),
                format!("{:?}", w.dims),
            ));
        }
        let kernel = Array2::from_shape_vec((k, m), w.f32s()).map_err(|e| bad(e.to_string()))?;
        self.dense(i, x, kernel, vec![0.0; m])
    }

    /// An IR Dense over the last logical axis of `x`; `kernel` rows in logical order.
    fn dense(&mut self, i: usize, x: Act, mut kernel: Array2<f32>, mut bias: Vec<f32>) -> Result<()> {
        let n = self.n(i);
        let (k, m) = kernel.dim();
        let mut src = x.node;
        let stored: Vec<usize> = x.fold.iter().chain(&x.shape).copied().collect();
        if x.shape.len() == 1 && x.fold.is_empty() {
            if let Layout::Elems(map) = &x.layout {
                let rows: Vec<usize> = map.iter().map(|&r| r as usize).collect();
                kernel = kernel.select(ndarray::Axis(0), &rows);
            }
            if self.ir_shape(&x).len() != 1 {
                src = self.emit(i, Op::Flatten, &[x.node]).map_err(|e| bad(format!("node {}: {e}", label(n))))?;
            }
        } else if !Self::is_plain(&x) || self.ir_shape(&x) != stored {
            return Err(Error::Unsupported {
                what: format!("input layout of ONNX node {}", label(n)),
                name: format!("{:?} per sample, stored in another axis order", x.shape),
                supported: "vectors, or tensors whose last axis holds the features in their own order".into(),
            });
        }
        debug_assert_eq!(kernel.nrows(), k);
        let mut shape = x.shape.clone();
        *shape.last_mut().unwrap_or(&mut 0) = m;
        let (out, extra, activation) = self.tail(i, &shape, shape.len() - 1, true)?;
        if let Some(e) = extra {
            bias.iter_mut().zip(e).for_each(|(b, e)| *b += e);
        }
        self.spend(kernel.len() + bias.len(), i)?;
        let id = self.emit(i, Op::Dense { kernel, bias: Array1::from_vec(bias), activation }, &[src])?;
        let layout = plain(&shape);
        self.bind_name(out, Val::Act(Act { node: id, shape, layout, batch: x.batch, fold: x.fold }));
        Ok(())
    }

    /// The IR padding for an ONNX window (`pads` or `auto_pad`, `ceil_mode`).
    #[allow(clippy::too_many_arguments)]
    fn padding(&self, i: usize, h: usize, w: usize, kh: usize, kw: usize, s: &[usize], ceil: bool) -> Result<Padding> {
        let n = self.n(i);
        let at = Attrs(n);
        let auto = at.string("auto_pad")?.unwrap_or_default();
        let lower = |inp: usize, k: usize, st: usize| {
            let o = inp.div_ceil(st);
            let total = ((o - 1) * st + k).saturating_sub(inp);
            (total - total / 2, total / 2)
        };
        let pads = match auto.as_str() {
            "" | "NOTSET" => {
                let p = at.ints("pads")?.unwrap_or_else(|| vec![0; 4]);
                if p.len() != 4 || p.iter().any(|&x| x < 0 || x as u64 > MAX_WINDOW as u64) {
                    return Err(bad(format!("attribute 'pads' of node {} must be 4 integers from 0 to {MAX_WINDOW}, got {p:?}", label(n))));
                }
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            "VALID" => [0; 4],
            "SAME_UPPER" => return Ok(Padding::Same),
            "SAME_LOWER" => {
                let (t, b) = lower(h, kh, s[0]);
                let (l, r) = lower(w, kw, s[1]);
                [t, l, b, r]
            }
            other => return Err(bad(format!("auto_pad '{other}' of node {} is not an ONNX value", label(n)))),
        };
        let [t, l, mut b, mut r] = pads;
        if ceil {
            // ONNX ceil_mode: one more window where a partial one starts inside
            // the input or its leading padding; expressed as extra trailing padding.
            let extra = |inp: usize, before: usize, after: usize, k: usize, st: usize| -> usize {
                let span = (inp + before + after).saturating_sub(k);
                let mut o = span.div_ceil(st) + 1;
                if (o - 1) * st >= inp + before {
                    o -= 1;
                }
                ((o - 1) * st + k).saturating_sub(inp + before + after)
            };
            b += extra(h, t, b, kh, s[0]);
            r += extra(w, l, r, kw, s[1]);
        }
        if [t, l, b, r] == [0; 4] {
            return Ok(Padding::Valid);
        }
        let ex = Padding::Explicit([t, l, b, r]).geometry(h, w, 1, kh, kw, s[0], s[1]).ok_or_else(|| Error::Unsupported {
            what: format!("padding of ONNX node {}", label(n)),
            name: format!("pads [{t}, {l}, {b}, {r}] (after ceil_mode) for a {kh}×{kw} window on {h}×{w}"),
            supported: "pads smaller than the window, with a window that fits".into(),
        })?;
        match Padding::Same.geometry(h, w, 1, kh, kw, s[0], s[1]) {
            Some(g) if (g.oh, g.ow, g.pad_top, g.pad_left) == (ex.oh, ex.ow, ex.pad_top, ex.pad_left) => Ok(Padding::Same),
            _ => Ok(Padding::Explicit([t, l, b, r])),
        }
    }

    fn conv(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let at = Attrs(n);
        let x = self.act(i, 0)?;
        let w = self.konst(i, 1, "weights W")?;
        let &[m, cg, kh, kw] = &w.dims[..] else {
            return Err(Error::Unsupported {
                what: "ONNX Conv".into(),
                name: format!("weights of shape {:?} in node {}", w.dims, label(n)),
                supported: "2-D convolution: weights [out, in, kh, kw]".into(),
            });
        };
        let (h, wd, c) = self.nchw(i, &x)?;
        let group = at.int("group", 1)?;
        if group != 1 {
            return Err(unsupported_option(n, format!("group={group}"), "group=1 (no grouped or depthwise convolution)"));
        }
        if cg != c {
            return Err(Error::shape(format!("weights W of node {}", label(n)), format!("{c} input channels"), format!("{:?}", w.dims)));
        }
        if let Some(ks) = at.ints("kernel_shape")?
            && ks != [kh as i64, kw as i64]
        {
            return Err(Error::shape(format!("kernel_shape of node {}", label(n)), format!("{:?} (from W)", [kh, kw]), format!("{ks:?}")));
        }
        if kh > MAX_WINDOW || kw > MAX_WINDOW || kh == 0 || kw == 0 {
            return Err(bad(format!("node {}: kernel {kh}×{kw} is not from 1 to {MAX_WINDOW}", label(n))));
        }
        let dil = at.sizes("dilations", 2, Some(1))?;
        if dil != [1, 1] {
            return Err(unsupported_option(n, format!("dilations={dil:?}"), "dilations=[1, 1]"));
        }
        let s = at.sizes("strides", 2, Some(1))?;
        let padding = self.padding(i, h, wd, kh, kw, &s, false)?;
        let g = padding.geometry(h, wd, c, kh, kw, s[0], s[1]).ok_or_else(|| {
            Error::shape(format!("node {}", label(n)), format!("a {kh}×{kw} window that fits"), format!("input {h}×{wd}"))
        })?;
        let mut bias = match self.opt_konst(i, 2, "bias B")? {
            None => vec![0.0; m],
            Some(b) if b.len() == m => b.f32s(),
            Some(b) => return Err(Error::shape(format!("bias B of node {}", label(n)), m, format!("{:?}", b.dims))),
        };
        let shape = vec![m, g.oh, g.ow];
        let (out, extra, activation) = self.tail(i, &shape, 0, false)?;
        if let Some(e) = extra {
            bias.iter_mut().zip(e).for_each(|(b, e)| *b += e);
        }
        self.spend(w.len() + m, i)?;
        let wv = w.f32s();
        let kernel = Array4::from_shape_fn((kh, kw, c, m), |(dy, dx, ci, co)| wv[((co * c + ci) * kh + dy) * kw + dx]);
        let id =
            self.emit(i, Op::Conv2D { kernel, bias: Array1::from_vec(bias), strides: [s[0], s[1]], padding, activation }, &[x.node])?;
        let layout = Layout::Axes(axes_in(&shape, &[1, 2, 0]));
        self.bind_name(out, Val::Act(Act::new(id, shape, layout)));
        Ok(())
    }

    fn pool(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let at = Attrs(n);
        self.first_output_only(i)?;
        let x = self.act(i, 0)?;
        let (h, w, c) = self.nchw(i, &x)?;
        let k = at.sizes("kernel_shape", 2, None)?;
        let s = at.sizes("strides", 2, Some(1))?;
        let dil = at.sizes("dilations", 2, Some(1))?;
        if dil != [1, 1] {
            return Err(unsupported_option(n, format!("dilations={dil:?}"), "dilations=[1, 1]"));
        }
        let ceil = at.int("ceil_mode", 0)? != 0;
        let padding = self.padding(i, h, w, k[0], k[1], &s, ceil)?;
        let kind = if n.op_type == "MaxPool" { PoolKind::Max } else { PoolKind::Avg };
        if kind == PoolKind::Avg && at.int("count_include_pad", 0)? != 0 && padding != Padding::Valid {
            return Err(unsupported_option(
                n,
                "count_include_pad=1 with padding".into(),
                "count_include_pad=0 (padding not counted), or no padding",
            ));
        }
        let g = padding.geometry(h, w, c, k[0], k[1], s[0], s[1]).ok_or_else(|| {
            Error::shape(format!("node {}", label(n)), format!("a {}×{} window that fits", k[0], k[1]), format!("input {h}×{w}"))
        })?;
        let id = self.emit(i, Op::Pool2D { kind, size: [k[0], k[1]], strides: [s[0], s[1]], padding }, &[x.node])?;
        let shape = vec![c, g.oh, g.ow];
        let layout = Layout::Axes(axes_in(&shape, &[1, 2, 0]));
        self.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
    }

    fn gap(&mut self, i: usize) -> Result<()> {
        let x = self.act(i, 0)?;
        let (_, _, c) = self.nchw(i, &x)?;
        let id = self.emit(i, Op::GlobalAvgPool, &[x.node])?;
        let shape = vec![c, 1, 1];
        let layout = plain(&shape);
        self.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
    }

    fn batch_norm(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let at = Attrs(n);
        self.first_output_only(i)?;
        if at.int("training_mode", 0)? != 0 {
            return Err(unsupported_option(n, "training_mode=1".into(), "training_mode=0 (inference)"));
        }
        if at.int("spatial", 1)? != 1 {
            return Err(unsupported_option(n, "spatial=0".into(), "spatial=1"));
        }
        let x = self.act(i, 0)?;
        let Some(&c) = x.shape.first() else {
            return Err(Error::shape(format!("input of node {}", label(n)), "[batch, channels, …]", "[batch]"));
        };
        let eps = at.float("epsilon", 1e-5)? as f64;
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(bad(format!("epsilon of node {} must be a non-negative number", label(n))));
        }
        let mut p = vec![];
        for (k, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let v = self.konst(i, k, what)?;
            if v.len() != c {
                return Err(Error::shape(format!("{what} of node {}", label(n)), c, format!("{:?}", v.dims)));
            }
            let v = v.f32s();
            if !v.iter().all(|x| x.is_finite()) {
                return Err(Error::NonFinite { layer: self.ir_name(i), what: what.into() });
            }
            p.push(v);
        }
        let (mut s, mut t) = (Vec::with_capacity(c), Vec::with_capacity(c));
        let [gamma, beta, mean, var] = &p[..] else { unreachable!("four parameters were read") };
        for (ch, (((&g, &bt), &m), &v)) in gamma.iter().zip(beta).zip(mean).zip(var).enumerate() {
            let var = v as f64 + eps;
            if var <= 0.0 {
                return Err(Error::invalid(format!("node {}: input_var + epsilon must be positive (channel {ch} has {var})", label(n))));
            }
            let sc = g as f64 / var.sqrt();
            s.push(sc as f32);
            t.push((bt as f64 - m as f64 * sc) as f32);
        }
        let (scale, shift) = self.per_channel(i, &x, &s, &t)?;
        self.spend(scale.len() * 2, i)?;
        let id = self.emit(i, Op::BatchNorm { scale: Array1::from_vec(scale), shift: Array1::from_vec(shift) }, &[x.node])?;
        self.bind(i, 0, Val::Act(Act { node: id, ..x }))
    }

    /// Per-channel (logical axis 0) vectors as the IR's per-last-axis vectors.
    fn per_channel(&mut self, i: usize, x: &Act, s: &[f32], t: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let c = s.len();
        let ir = self.ir_shape(x);
        match &x.layout {
            Layout::Elems(map) => {
                let inner: usize = x.shape[1..].iter().product::<usize>().max(1);
                Ok(map.iter().map(|&f| (s[f as usize / inner], t[f as usize / inner])).unzip())
            }
            Layout::Axes(ax) if ir.last() == Some(&c) && (c == 1 || ax.last() == Some(&0)) => Ok((s.to_vec(), t.to_vec())),
            Layout::Axes(_) => Err(Error::Unsupported {
                what: format!("input layout of ONNX node {}", label(self.n(i))),
                name: format!("{:?} per sample with the channels (axis 1) not stored last", x.shape),
                supported: "channels stored last: NCHW tensors from Conv/pooling or the input, and vectors".into(),
            }),
        }
    }

    fn arith(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let op = n.op_type.as_str();
        let ins: Vec<Val> =
            (0..n.input.len()).map(|k| self.input(i, k)).collect::<Result<Vec<_>>>()?.into_iter().flatten().cloned().collect();
        let acts: Vec<&Act> = ins.iter().filter_map(|v| if let Val::Act(a) = v { Some(a) } else { None }).collect();
        if acts.len() == ins.len() && matches!(op, "Add" | "Sum") {
            let first = acts.first().ok_or_else(|| bad(format!("node {} has no inputs", label(n))))?;
            if acts.len() == 1 {
                let a = (*first).clone();
                return self.bind(i, 0, Val::Act(a));
            }
            for a in &acts[1..] {
                if a.shape != first.shape
                    || a.layout != first.layout
                    || a.batch != first.batch
                    || a.fold != first.fold
                    || self.ir_shape(a) != self.ir_shape(first)
                {
                    return Err(Error::Unsupported {
                        what: format!("inputs of ONNX node {}", label(n)),
                        name: format!("{:?} and {:?} per sample (broadcast or differently stored)", first.shape, a.shape),
                        supported: "inputs of the same shape, computed the same way (residual connections)".into(),
                    });
                }
            }
            let ids: Vec<NodeId> = acts.iter().map(|a| a.node).collect();
            let model = Act::clone(first);
            let mut out: &'g str = n.output.first().map(String::as_str).unwrap_or("");
            let mut activation = Activation::Linear;
            if let Some(j) = self.sole_reader(out) {
                let m = &self.nodes[j];
                if let (true, Some(a), Some(o)) =
                    (m.domain.is_empty(), activation_of(&m.op_type), m.output.first().filter(|o| !o.is_empty()))
                {
                    activation = a;
                    self.absorbed[j] = true;
                    out = o.as_str();
                }
            }
            let id = self.emit(i, Op::Add { activation }, &ids)?;
            self.bind_name(out, Val::Act(Act { node: id, ..model }));
            return Ok(());
        }
        let (x, c, x_first) = match (&ins[..], op) {
            ([Val::Act(a), Val::Const(c)], _) => (a.clone(), c.clone(), true),
            ([Val::Const(c), Val::Act(a)], "Add" | "Mul" | "Sub" | "Sum") => (a.clone(), c.clone(), false),
            _ => {
                return Err(Error::Unsupported {
                    what: format!("inputs of ONNX node {}", label(n)),
                    name: format!(
                        "{op} of {}",
                        ins.iter()
                            .map(|v| if matches!(v, Val::Act(_)) { "a computed tensor" } else { "a constant" })
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                    supported: "Add/Sum of computed tensors of one shape; Add/Sub/Mul/Div of a computed tensor and a per-channel constant"
                        .into(),
                });
            }
        };
        if x.batch != 0 {
            return Err(Error::Unsupported {
                what: format!("inputs of ONNX node {}", label(n)),
                name: format!("{op} of a constant and a tensor with its batch axis moved to axis {}", x.batch),
                supported: "constants broadcast over batch-first tensors".into(),
            });
        }
        let v = self.row_constant(i, &x, &c)?;
        let l = v.len();
        let (scale, shift): (Vec<f32>, Vec<f32>) = match (op, x_first) {
            ("Add", _) | ("Sum", _) => (vec![1.0; l], v),
            ("Sub", true) => (vec![1.0; l], v.iter().map(|c| -c).collect()),
            ("Sub", false) => (vec![-1.0; l], v),
            ("Mul", _) => (v, vec![0.0; l]),
            _ => (v.iter().map(|c| 1.0 / c).collect(), vec![0.0; l]),
        };
        self.spend(2 * l, i)?;
        let id = self.emit(i, Op::BatchNorm { scale: Array1::from_vec(scale), shift: Array1::from_vec(shift) }, &[x.node])?;
        self.bind(i, 0, Val::Act(Act { node: id, ..x }))
    }

    /// The constant `c`, broadcast over `x`, as one value per position of the
    /// IR's last axis; fails unless it is the same for every row.
    fn row_constant(&mut self, i: usize, x: &Act, c: &Const) -> Result<Vec<f32>> {
        let n = self.n(i);
        let full: Vec<usize> = std::iter::once(1).chain(x.shape.iter().copied()).collect();
        let cv = c.f32s();
        if c.dims.len() > full.len() {
            return Err(Error::shape(
                format!("constant of node {}", label(n)),
                format!("at most {} axes", full.len()),
                format!("{:?}", c.dims),
            ));
        }
        let off = full.len() - c.dims.len();
        let cst = strides(&c.dims);
        // Stride in the constant of each logical per-sample axis (0 = broadcast).
        let mut bst = vec![0usize; x.shape.len()];
        for (k, &d) in c.dims.iter().enumerate() {
            let pos = off + k;
            if d != 1 && (d != full[pos] || pos == 0) {
                return Err(Error::shape(
                    format!("constant of node {}", label(n)),
                    format!("a shape that broadcasts to [batch, {:?}]", x.shape),
                    format!("{:?}", c.dims),
                ));
            }
            if pos > 0 && d != 1 {
                bst[pos - 1] = cst[k];
            }
        }
        let lst = strides(&x.shape);
        let map = self.elem_map(x)?;
        let l = *self.ir_shape(x).last().unwrap_or(&1);
        let mut row = Vec::with_capacity(l);
        for (p, &f) in map.iter().enumerate() {
            let mut f = f as usize;
            let mut ci = 0;
            for (s, b) in lst.iter().zip(&bst) {
                ci += (f / s) * b;
                f %= s;
            }
            let v = cv.get(ci).copied().unwrap_or(f32::NAN);
            if p < l {
                row.push(v);
            } else if row[p % l].to_bits() != v.to_bits() {
                return Err(Error::Unsupported {
                    what: format!("constant of ONNX node {}", label(n)),
                    name: format!("shape {:?} on a tensor of {:?} per sample (varies along more than the channel axis)", c.dims, x.shape),
                    supported: "scalars and per-channel constants".into(),
                });
            }
        }
        Ok(row)
    }

    fn softmax(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let x = self.act_any(i, 0)?;
        if x.batch != 0 {
            return Err(Error::Unsupported {
                what: format!("ONNX node {}", label(n)),
                name: format!("Softmax of a tensor with its batch on axis {}", x.batch),
                supported: "batch-first tensors".into(),
            });
        }
        let r = x.shape.len() + 1;
        let axis = Attrs(n).int("axis", if self.opset < 13 { 1 } else { -1 })?;
        let a = sample_axis(axis, r).ok_or_else(|| Error::Unsupported {
            what: format!("option of ONNX node {}", label(n)),
            name: format!("axis={axis}"),
            supported: "a softmax over non-batch axes".into(),
        })?;
        let total: usize = x.shape.iter().product();
        let ir = self.ir_shape(&x);
        let last = *ir.last().unwrap_or(&0);
        // Elements sharing one softmax: all from axis `a` on (opset < 13), or axis `a`.
        let group: usize = if self.opset < 13 { x.shape[a..].iter().product() } else { x.shape[a] };
        let whole = group == total && last == total;
        let last_axis = matches!(&x.layout, Layout::Axes(ax) if ax.last() == Some(&a)) && last == x.shape[a] && group == x.shape[a];
        if !(whole || last_axis) {
            return Err(Error::Unsupported {
                what: format!("ONNX node {}", label(n)),
                name: format!("Softmax over axis {axis} of {:?} per sample", x.shape),
                supported: "a softmax over the features of a vector, or over the axis stored last".into(),
            });
        }
        let id = self.emit(i, Op::Activation(Activation::Softmax), &[x.node])?;
        self.bind(i, 0, Val::Act(Act { node: id, ..x }))
    }

    fn reshape(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let at = Attrs(n);
        let x = self.act_any(i, 0)?;
        let s = x.shape.clone();
        let r = s.len() + 1;
        let batch_op = |what: String| Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name: what,
            supported: "reshapes that keep the batch as the first axis".into(),
        };
        let axes_of =
            |this: &Self| -> Result<Option<Vec<i64>>> { if this.opset < 13 { at.ints("axes") } else { this.ints_input(i, 1, "axes") } };
        if matches!(n.op_type.as_str(), "Squeeze" | "Unsqueeze") {
            if !x.fold.is_empty() {
                return Err(batch_op(format!("{} of a tensor whose batch axis holds {:?} per sample as well", n.op_type, x.fold)));
            }
            // The whole ONNX shape, `None` for the batch axis.
            let mut full: Vec<Option<usize>> = s.iter().map(|&d| Some(d)).collect();
            full.insert(x.batch.min(s.len()), None);
            let norm = |a: i64, rank: usize| -> Result<usize> {
                let k = if a < 0 { a + rank as i64 } else { a };
                usize::try_from(k).ok().filter(|&k| k < rank).ok_or_else(|| bad(format!("axis {a} of node {} is out of range", label(n))))
            };
            if n.op_type == "Squeeze" {
                match axes_of(self)? {
                    None => full.retain(|d| *d != Some(1)),
                    Some(ax) => {
                        let drop = ax.iter().map(|&a| norm(a, r)).collect::<Result<BTreeSet<_>>>()?;
                        for &k in &drop {
                            match full[k] {
                                None => return Err(batch_op(format!("Squeeze of the batch axis {k}"))),
                                Some(1) => {}
                                Some(_) => {
                                    return Err(Error::shape(
                                        format!("node {}", label(n)),
                                        "axes of size 1 to squeeze",
                                        format!("axis {k} of {s:?} per sample"),
                                    ));
                                }
                            }
                        }
                        full = full.into_iter().enumerate().filter(|(k, _)| !drop.contains(k)).map(|(_, d)| d).collect();
                    }
                }
            } else {
                let ax = axes_of(self)?.ok_or_else(|| bad(format!("node {} has no axes", label(n))))?;
                let out = r + ax.len();
                let add = ax.iter().map(|&a| norm(a, out)).collect::<Result<BTreeSet<_>>>()?;
                if add.len() != ax.len() {
                    return Err(bad(format!("node {} repeats an axis in {ax:?}", label(n))));
                }
                let mut rest = full.into_iter();
                full = (0..out).map(|k| if add.contains(&k) { Some(1) } else { rest.next().flatten() }).collect();
            }
            let batch = full.iter().position(Option::is_none).ok_or_else(|| bad(format!("node {} lost the batch axis", label(n))))?;
            let target: Vec<usize> = full.iter().flatten().copied().collect();
            let mut out = self.reshape_to(i, Act { batch: 0, ..x }, target)?;
            out.batch = batch;
            return self.bind(i, 0, Val::Act(out));
        }
        if x.batch != 0 {
            return Err(batch_op(format!("{} of a tensor with its batch on axis {}", n.op_type, x.batch)));
        }
        let target: Vec<usize> = match n.op_type.as_str() {
            "Flatten" => {
                let axis = at.int("axis", 1)?;
                let a = if axis < 0 { axis + r as i64 } else { axis };
                if a < 1 || a as usize > r || s[..a as usize - 1].iter().any(|&d| d != 1) || !x.fold.is_empty() {
                    return Err(batch_op(format!("Flatten with axis={axis} of [batch, {s:?}]")));
                }
                vec![s.iter().product()]
            }
            _ => {
                let want = self.ints_input(i, 1, "shape")?.ok_or_else(|| bad(format!("node {} lacks its shape input", label(n))))?;
                let allowzero = self.opset >= 14 && at.int("allowzero", 0)? != 0;
                let first = *want.first().ok_or_else(|| batch_op("Reshape to a scalar".into()))?;
                let per_row: usize = s.iter().product();
                let rest: Option<usize> =
                    want[1..].iter().try_fold(1usize, |p, &d| usize::try_from(d).ok().filter(|&d| d > 0).and_then(|d| p.checked_mul(d)));
                if first == -1 && rest.is_some() && rest != Some(per_row) {
                    // Leading per-sample axes merged into the batch, or split back out of it.
                    let rest_dims: Vec<usize> = want[1..].iter().map(|&d| d as usize).collect();
                    return self.refold(i, x, rest_dims);
                }
                let keeps_batch = first == BATCH
                    || (first == 0 && !allowzero)
                    || (first == -1 && !want[1..].contains(&-1))
                    || (first > 0 && Some(first) == self.batch);
                if !keeps_batch || want[1..].contains(&BATCH) {
                    return Err(batch_op(format!("Reshape of [batch, {s:?}] to {want:?}")));
                }
                let mut full_s = vec![1usize];
                full_s.extend(&s);
                let mut w = want.clone();
                w[0] = 1;
                let t = resolve_shape(&w, &full_s, allowzero).ok_or_else(|| {
                    Error::shape(format!("node {}", label(n)), format!("a shape for [batch, {s:?}]"), format!("{want:?}"))
                })?;
                if !x.fold.is_empty() && t[1..] != s[..] {
                    return Err(batch_op(format!("Reshape of [batch·{}, {s:?}] to {want:?}", x.fold.iter().product::<usize>())));
                }
                t[1..].to_vec()
            }
        };
        if target.iter().product::<usize>() != s.iter().product::<usize>() || target.contains(&0) {
            return Err(Error::shape(
                format!("node {}", label(n)),
                format!("{} values per sample", s.iter().product::<usize>()),
                format!("{target:?}"),
            ));
        }
        if !x.fold.is_empty() {
            return self.bind(i, 0, Val::Act(x));
        }
        let out = self.reshape_to(i, x, target)?;
        self.bind(i, 0, Val::Act(out))
    }

    /// `Reshape(x, [-1, rest…])` that moves leading per-sample axes into the
    /// batch (`[N, T, F]` → `[N·T, F]`, tf2onnx's TimeDistributed) or back out.
    fn refold(&mut self, i: usize, x: Act, rest: Vec<usize>) -> Result<()> {
        let n = self.n(i);
        let whole: Vec<usize> = x.fold.iter().chain(&x.shape).copied().collect();
        let plain_stored = Self::is_plain(&x) && self.ir_shape(&x) == whole;
        let unsupported = || Error::Unsupported {
            what: "ONNX reshape".into(),
            name: format!("{} of [batch·{}, {:?}] to [-1, {rest:?}]", label(n), x.fold.iter().product::<usize>(), x.shape),
            supported: "flattening to a vector, adding or removing axes of size 1, and merging leading axes into the batch and back".into(),
        };
        if !plain_stored {
            return Err(unsupported());
        }
        if rest.iter().product::<usize>() == whole.iter().product::<usize>() && !x.fold.is_empty() {
            // Back out: the batch holds samples again.
            let out = self.reshape_to(i, Act { shape: whole.clone(), fold: vec![], layout: plain(&whole), ..x }, rest)?;
            return self.bind(i, 0, Val::Act(out));
        }
        match (1..=whole.len()).find(|&k| whole[k..] == rest[..]) {
            Some(k) if k > 0 => {
                let layout = plain(&rest);
                let out = Act { node: x.node, shape: rest, layout, batch: 0, fold: whole[..k].to_vec() };
                self.bind(i, 0, Val::Act(out))
            }
            _ => Err(unsupported()),
        }
    }

    fn reshape_to(&mut self, i: usize, x: Act, t: Vec<usize>) -> Result<Act> {
        let n = self.n(i);
        if nonunit(&t).len() <= 1 {
            let map = self.elem_map(&x)?;
            let identity = map.iter().enumerate().all(|(p, &v)| p == v as usize);
            let node = if self.ir_shape(&x).len() > 1 { self.emit(i, Op::Flatten, &[x.node])? } else { x.node };
            let layout = if identity { plain(&t) } else { Layout::Elems(map) };
            return Ok(Act { node, shape: t, layout, ..x });
        }
        if nonunit(&t) == nonunit(&x.shape) {
            let layout = match &x.layout {
                Layout::Elems(m) => Layout::Elems(m.clone()),
                Layout::Axes(ax) => {
                    let old: Vec<usize> = (0..x.shape.len()).filter(|&k| x.shape[k] != 1).collect();
                    let new: Vec<usize> = (0..t.len()).filter(|&k| t[k] != 1).collect();
                    Layout::Axes(ax.iter().map(|j| old.iter().position(|o| o == j).map_or(0, |p| new[p])).collect())
                }
            };
            return Ok(Act { shape: t, layout, ..x });
        }
        Err(Error::Unsupported {
            what: "ONNX reshape".into(),
            name: format!("{} of {:?} to {:?} per sample", label(n), x.shape, t),
            supported: "flattening to a vector, and adding or removing axes of size 1".into(),
        })
    }

    fn transpose(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let x = self.act_any(i, 0)?;
        if !x.fold.is_empty() {
            return Err(Error::Unsupported {
                what: format!("ONNX node {}", label(n)),
                name: format!("Transpose of a tensor whose batch holds {:?} per sample as well", x.fold),
                supported: "transposes of unmerged tensors".into(),
            });
        }
        let r = x.shape.len() + 1;
        let perm = perm_attr(n, r)?;
        // Old whole-tensor axis → per-sample axis (the batch has none).
        let per_sample = |j: usize| if j < x.batch { j } else { j - 1 };
        let batch = perm.iter().position(|&p| p == x.batch).unwrap_or(0);
        let q: Vec<usize> = perm.iter().filter(|&&p| p != x.batch).map(|&p| per_sample(p)).collect();
        let mut qinv = vec![0; q.len()];
        for (k, &j) in q.iter().enumerate() {
            qinv[j] = k;
        }
        let shape: Vec<usize> = q.iter().map(|&j| x.shape[j]).collect();
        let layout = match &x.layout {
            Layout::Axes(ax) => Layout::Axes(ax.iter().map(|&j| qinv[j]).collect()),
            Layout::Elems(m) => {
                self.elem_map(&x)?; // counts the work
                let old = strides(&x.shape);
                let new = strides(&shape);
                let moved: Vec<usize> = (0..x.shape.len()).map(|j| new[qinv[j]]).collect();
                Layout::Elems(Rc::new(
                    m.iter()
                        .map(|&f| {
                            let mut f = f as usize;
                            let mut g = 0;
                            for (s, t) in old.iter().zip(&moved) {
                                g += (f / s) * t;
                                f %= s;
                            }
                            g as u32
                        })
                        .collect(),
                ))
            }
        };
        self.bind(i, 0, Val::Act(Act { node: x.node, shape, layout, batch, fold: vec![] }))
    }

    /// `Tile` of a vector along one axis of size 1, the batch once, with
    /// constant repeats: tf2onnx's Keras RepeatVector (`Unsqueeze` to
    /// `[N, 1, F]`, then `Tile` by `[1, T, 1]`) → the IR's RepeatVector.
    fn tile(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let x = self.act_any(i, 0)?;
        let refuse = |name: String| Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name,
            supported:
                "Tile of a vector along one axis of size 1 by constant repeats, the batch once (Keras RepeatVector: Unsqueeze + Tile)"
                    .into(),
        };
        let reps = match self.input(i, 1)? {
            Some(Val::Const(c)) => {
                c.i64s().map(<[i64]>::to_vec).ok_or_else(|| bad(format!("repeats of node {} must be integers", label(n))))?
            }
            Some(_) => return Err(refuse("repeats computed at run time".into())),
            None => return Err(bad(format!("node {} lacks its repeats (input 1)", label(n)))),
        };
        if reps.contains(&BATCH) {
            return Err(refuse("repeats computed from the batch size at run time".into()));
        }
        if reps.len() != x.shape.len() + 1 {
            return Err(Error::shape(
                format!("repeats of node {}", label(n)),
                format!("{} values (one per axis)", x.shape.len() + 1),
                reps.len(),
            ));
        }
        if let Some(&k) = reps.iter().find(|&&k| k < 1) {
            return Err(bad(format!("node {} repeats an axis {k} times", label(n))));
        }
        if x.batch != 0 || !x.fold.is_empty() {
            return Err(refuse(format!("a tensor with the batch on axis {} or merged with {:?}", x.batch, x.fold)));
        }
        if reps[0] != 1 {
            return Err(refuse(format!("repeats {reps:?} (the batch {} times)", reps[0])));
        }
        let tiled: Vec<usize> = (0..x.shape.len()).filter(|&a| reps[a + 1] > 1).collect();
        let a = match tiled[..] {
            [] => return self.bind(i, 0, Val::Act(x)),
            [a] => a,
            _ => return Err(refuse(format!("repeats {reps:?} (more than one axis)"))),
        };
        let features: Vec<usize> = (0..x.shape.len()).filter(|&k| x.shape[k] != 1).collect();
        if x.shape[a] != 1 || features.len() > 1 || self.ir_shape(&x).len() != 1 || !Self::is_plain(&x) {
            return Err(refuse(format!("repeats {reps:?} of a tensor of shape {:?} per sample", x.shape)));
        }
        let f = x.shape.iter().product::<usize>() as u64;
        let times = reps[a + 1] as u64;
        if times.saturating_mul(f) > MAX_TOTAL_ACTIVATION {
            return Err(Error::too_large(format!("output of node {}", label(n)), times.saturating_mul(f), MAX_TOTAL_ACTIVATION));
        }
        let id = self.emit(i, Op::RepeatVector { times: times as usize }, &[x.node])?;
        let mut shape = x.shape.clone();
        shape[a] = times as usize;
        // The IR stores [times, F]: the repeated axis first, then the vector's.
        self.bind(i, 0, Val::Act(Act::new(id, shape, Layout::Axes([a].into_iter().chain(features).collect()))))
    }

    // ------------------------------------------------------------ sequences

    /// `Gather(table, ids)`: an embedding lookup of token ids.
    fn gather(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        if self.last_step.contains(&i) {
            return self.take_last_step(i);
        }
        let table =
            match self.input(i, 0)? {
                Some(Val::Const(c)) => c.clone(),
                _ => return Err(Error::Unsupported {
                    what: format!("ONNX node {}", label(n)),
                    name: "Gather from a computed tensor".into(),
                    supported:
                        "Gather of token ids from a constant embedding table (axis 0), or of the last step of a recurrent layer's output"
                            .into(),
                }),
            };
        let ids = self.act(i, 1)?;
        let axis = Attrs(n).int("axis", 0)?;
        let [vocab, dim] = table.dims[..] else {
            return Err(Error::shape(
                format!("embedding table of node {}", label(n)),
                "[vocabulary, dimension]",
                format!("{:?}", table.dims),
            ));
        };
        if axis != 0 {
            return Err(unsupported_option(n, format!("axis={axis}"), "axis=0 (rows of the embedding table)"));
        }
        if !Self::is_plain(&ids) || self.ir_shape(&ids) != ids.shape {
            return Err(Error::Unsupported {
                what: format!("input layout of ONNX node {}", label(n)),
                name: format!("token ids {:?} per sample, reordered", ids.shape),
                supported: "token ids in their own order".into(),
            });
        }
        self.spend(table.len(), i)?;
        let t = Array2::from_shape_vec((vocab, dim), table.f32s()).map_err(|e| bad(e.to_string()))?;
        let id = self.emit(i, Op::Embedding { table: t }, &[ids.node])?;
        let mut shape = ids.shape.clone();
        shape.push(dim);
        let layout = plain(&shape);
        self.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
    }

    fn slice(&mut self, i: usize) -> Result<()> {
        if self.last_step.contains(&i) {
            return self.take_last_step(i);
        }
        let n = self.n(i);
        Err(Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name: "Slice of a computed tensor".into(),
            supported: "the last step of a recurrent layer's output sequence (then the layer returns only its last state)".into(),
        })
    }

    /// A Slice/Gather that `recurrent` found taking the last step of its
    /// output: the layer already returns only that step (the time axis has
    /// size 1 here), so Slice is the identity and Gather drops the axis.
    fn take_last_step(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let x = self.act_any(i, 0)?;
        if n.op_type == "Gather" && self.opt_konst(i, 1, "indices")?.is_some_and(|c| c.dims.is_empty()) {
            let axis = Attrs(n).int("axis", 0)?;
            let r = x.shape.len() + 1;
            let a = usize::try_from(if axis < 0 { axis + r as i64 } else { axis })
                .ok()
                .filter(|&a| a < r && a != x.batch)
                .ok_or_else(|| bad(format!("axis {axis} of node {} is not a time axis", label(n))))?;
            let k = if a < x.batch { a } else { a - 1 };
            let mut shape = x.shape.clone();
            shape.remove(k);
            let batch = x.batch - usize::from(a < x.batch);
            let mut out = self.reshape_to(i, Act { batch: 0, ..x }, shape)?;
            out.batch = batch;
            return self.bind(i, 0, Val::Act(out));
        }
        self.bind(i, 0, Val::Act(x))
    }

    /// Follows the only readers of a recurrent layer's output `y` (time on
    /// whole-tensor axis `time` of `rank`) through Squeeze/Unsqueeze/
    /// Transpose/Identity to a Slice or Gather that keeps only the last of
    /// `steps` steps; returns that node.
    fn last_step_reader(&self, y: &str, mut time: usize, mut rank: usize, steps: usize) -> Option<usize> {
        let nodes = self.nodes;
        let mut cur = y;
        loop {
            let j = self.sole_reader(cur)?;
            let m = &nodes[j];
            if !m.domain.is_empty() || m.input.first().map(String::as_str) != Some(cur) {
                return None;
            }
            let at = Attrs(m);
            let ints = |k: usize, attr: &str| -> Option<Vec<i64>> {
                match m.input.get(k).filter(|s| !s.is_empty()).and_then(|t| self.vals.get(t.as_str())) {
                    Some(Val::Const(c)) => c.i64s().map(<[i64]>::to_vec),
                    Some(_) => None,
                    None => at.ints(attr).ok().flatten(),
                }
            };
            let norm = |a: i64, r: usize| usize::try_from(if a < 0 { a + r as i64 } else { a }).ok().filter(|&a| a < r);
            let is_last = |v: i64| v == -1 || v == steps as i64 - 1;
            match m.op_type.as_str() {
                "Identity" => {}
                "Squeeze" => {
                    let ax: Vec<usize> = ints(1, "axes")?.into_iter().map(|a| norm(a, rank)).collect::<Option<_>>()?;
                    if ax.contains(&time) {
                        return None;
                    }
                    time -= ax.iter().filter(|&&a| a < time).count();
                    rank -= ax.len();
                }
                "Unsqueeze" => {
                    let ax = ints(1, "axes")?;
                    let out = rank + ax.len();
                    let ax: BTreeSet<usize> = ax.into_iter().map(|a| norm(a, out)).collect::<Option<_>>()?;
                    time = (0..out).filter(|k| !ax.contains(k)).nth(time)?;
                    rank = out;
                }
                "Transpose" => {
                    let perm = perm_attr(m, rank).ok()?;
                    time = perm.iter().position(|&p| p == time)?;
                }
                "Slice" => {
                    let (starts, ends) = (ints(1, "starts")?, ints(2, "ends")?);
                    let axes: Vec<usize> = match ints(3, "axes") {
                        Some(a) => a.into_iter().map(|a| norm(a, rank)).collect::<Option<_>>()?,
                        None => (0..starts.len()).collect(),
                    };
                    let steps_ok = ints(4, "steps").is_none_or(|s| s.iter().all(|&s| s == 1));
                    let ok = axes == [time]
                        && starts.len() == 1
                        && ends.len() == 1
                        && is_last(starts[0])
                        && (ends[0] >= steps as i64)
                        && steps_ok;
                    return ok.then_some(j);
                }
                "Gather" => {
                    let idx = ints(1, "")?;
                    let axis = norm(at.int("axis", 0).ok()?, rank)?;
                    return (axis == time && idx.len() == 1 && is_last(idx[0])).then_some(j);
                }
                _ => return None,
            }
            cur = m.output.first()?;
        }
    }

    /// LSTM, GRU and RNN (forward, one direction, zero initial state) as the
    /// IR's Keras-semantics recurrent layer.
    fn recurrent(&mut self, i: usize) -> Result<()> {
        let n = self.n(i);
        let at = Attrs(n);
        let op = n.op_type.as_str();
        let x = self.act_any(i, 0)?;
        let layout = if self.opset >= 14 { at.int("layout", 0)? } else { 0 };
        let want_batch = if layout == 0 { 1 } else { 0 };
        let [steps, f] = x.shape[..] else {
            return Err(Error::shape(
                format!("input X of node {}", label(n)),
                "[sequence, batch, features]",
                format!("{:?} besides the batch", x.shape),
            ));
        };
        if x.batch != want_batch || !x.fold.is_empty() || !Self::is_plain(&x) || self.ir_shape(&x) != x.shape {
            return Err(Error::Unsupported {
                what: format!("input layout of ONNX node {}", label(n)),
                name: format!("X with the batch on axis {} (layout={layout})", x.batch),
                supported: "[sequence, batch, features] (layout=0) or [batch, sequence, features] (layout=1)".into(),
            });
        }
        let direction = at.string("direction")?.unwrap_or_else(|| "forward".into());
        if direction != "forward" {
            return Err(unsupported_option(n, format!("direction={direction}"), "direction=forward"));
        }
        for key in ["clip", "activation_alpha", "activation_beta"] {
            if n.attribute.iter().any(|a| a.name == key) {
                return Err(unsupported_option(n, key.into(), "no clip, activation_alpha or activation_beta"));
            }
        }
        if at.int("input_forget", 0)? != 0 {
            return Err(unsupported_option(n, "input_forget=1".into(), "input_forget=0"));
        }
        let (cell, gates) = match op {
            "LSTM" => (Cell::Lstm, 4),
            "GRU" => (Cell::Gru { reset_after: at.int("linear_before_reset", 0)? != 0 }, 3),
            _ => (Cell::SimpleRnn, 1),
        };
        let acts: Vec<String> = match at.get("activations", attr_type::STRINGS, "a list of strings")? {
            Some(a) => a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect(),
            None => match op {
                "LSTM" => vec!["Sigmoid".into(), "Tanh".into(), "Tanh".into()],
                "GRU" => vec!["Sigmoid".into(), "Tanh".into()],
                _ => vec!["Tanh".into()],
            },
        };
        let act = |k: usize| -> Result<Activation> {
            let name = acts.get(k).ok_or_else(|| bad(format!("node {} lists {} activations", label(n), acts.len())))?;
            activation_of(name).ok_or_else(|| Error::Unsupported {
                what: format!("activation in ONNX node {}", label(n)),
                name: name.clone(),
                supported: "Relu, Tanh, Sigmoid".into(),
            })
        };
        let (activation, recurrent_activation) = match op {
            "LSTM" => {
                if act(1)? != act(2)? {
                    return Err(unsupported_option(
                        n,
                        format!("activations={acts:?}"),
                        "the same activation for the cell input and output (g = h)",
                    ));
                }
                (act(1)?, act(0)?)
            }
            "GRU" => (act(1)?, act(0)?),
            _ => (act(0)?, Activation::Sigmoid),
        };
        let w = self.konst(i, 1, "weights W")?;
        let r = self.konst(i, 2, "recurrence weights R")?;
        let &[dirs, gu, fin] = &w.dims[..] else {
            return Err(Error::shape(
                format!("weights W of node {}", label(n)),
                "[directions, gates·hidden, input]",
                format!("{:?}", w.dims),
            ));
        };
        let units = gu / gates;
        if dirs != 1 || gu % gates != 0 || units == 0 || fin != f {
            return Err(Error::shape(
                format!("weights W of node {}", label(n)),
                format!("[1, {gates}·hidden, {f}]"),
                format!("{:?}", w.dims),
            ));
        }
        if let Some(h) = at.get("hidden_size", attr_type::INT, "an integer")?
            && h.i != units as i64
        {
            return Err(Error::shape(format!("hidden_size of node {}", label(n)), units, h.i));
        }
        if r.dims != [1, gu, units] {
            return Err(Error::shape(
                format!("recurrence weights R of node {}", label(n)),
                format!("[1, {gu}, {units}]"),
                format!("{:?}", r.dims),
            ));
        }
        let b = match self.opt_konst(i, 3, "bias B")? {
            None => vec![0.0; 2 * gu],
            Some(b) if b.dims == [1, 2 * gu] => b.f32s(),
            Some(b) => {
                return Err(Error::shape(format!("bias B of node {}", label(n)), format!("[1, {}]", 2 * gu), format!("{:?}", b.dims)));
            }
        };
        if self.input(i, 4)?.is_some() {
            return Err(unsupported_option(n, "sequence_lens".into(), "no sequence_lens (every sequence has the full length)"));
        }
        for (k, what) in [(5, "initial_h"), (6, "initial_c"), (7, "peepholes P")] {
            let zero = match self.input(i, k)? {
                None => true,
                Some(Val::Fill(v)) => *v == 0.0,
                Some(Val::Const(c)) => c.f32s().iter().all(|&v| v == 0.0),
                Some(Val::Act(_)) => false,
            };
            if !zero || (k > 5 && op != "LSTM" && n.input.get(k).is_some_and(|s| !s.is_empty())) {
                return Err(unsupported_option(n, format!("{what} (input {k})"), "zero initial states and no peepholes"));
            }
        }
        let outs: Vec<bool> = (0..3).map(|k| n.output.get(k).is_some_and(|t| self.is_read(t))).collect();
        if outs[2] || (outs[0] && outs[1]) {
            return Err(unsupported_option(
                n,
                "uses of Y_c, or of both Y and Y_h".into(),
                "one of Y (the sequence) and Y_h (the last state)",
            ));
        }
        // Y read only for its last step: the layer returns only that step.
        let time = if layout == 0 { 0 } else { 1 };
        let last = if outs[0] { n.output.first().and_then(|y| self.last_step_reader(y, time, 4, steps)) } else { None };
        let sequences = outs[0] && last.is_none();
        if let Some(j) = last {
            self.last_step.insert(j);
        }
        // ONNX gate blocks → Keras order: LSTM i,o,f,c → i,f,c,o; GRU z,r,h and RNN as they are.
        let order: &[usize] = match op {
            "LSTM" => &[0, 2, 3, 1],
            "GRU" => &[0, 1, 2],
            _ => &[0],
        };
        let (wv, rv) = (w.f32s(), r.f32s());
        // IR column k (Keras gate block k / units) is ONNX row `col(k)` of W, R and B.
        let col = |k: usize| order[k / units] * units + k % units;
        let kernel = Array2::from_shape_fn((f, gu), |(fi, k)| wv[col(k) * f + fi]);
        let recurrent = Array2::from_shape_fn((units, gu), |(h, k)| rv[col(k) * units + h]);
        let (wb, rb) = b.split_at(gu);
        let reorder = |v: &[f32]| -> Vec<f32> { (0..gu).map(|k| v[col(k)]).collect() };
        let (bias, recurrent_bias) = match cell {
            Cell::Gru { reset_after: true } => (reorder(wb), Some(Array1::from_vec(reorder(rb)))),
            _ => (reorder(wb).iter().zip(reorder(rb)).map(|(a, b)| a + b).collect(), None),
        };
        self.spend(kernel.len() + recurrent.len() + 2 * gu, i)?;
        let rec = Recurrent {
            cell,
            units,
            kernel,
            recurrent,
            bias: Array1::from_vec(bias),
            recurrent_bias,
            activation,
            recurrent_activation,
            return_sequences: sequences,
        };
        let id = self.emit(i, Op::Recurrent(Box::new(rec)), &[x.node])?;
        if outs[0] {
            // Y: [T, 1, N, H] (layout 0) or [N, T, 1, H]; T is 1 when only the last step is kept.
            let t = if sequences { steps } else { 1 };
            let shape = vec![t, 1, units];
            let layout_y = plain(&shape);
            self.bind(i, 0, Val::Act(Act { node: id, shape, layout: layout_y, batch: if layout == 0 { 2 } else { 0 }, fold: vec![] }))?;
        }
        if outs[1] {
            // Y_h: [1, N, H] (layout 0) or [N, 1, H].
            let shape = vec![1, units];
            let layout_h = plain(&shape);
            self.bind(i, 1, Val::Act(Act { node: id, shape, layout: layout_h, batch: if layout == 0 { 1 } else { 0 }, fold: vec![] }))?;
        }
        Ok(())
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
        if out.batch != 0 || !out.fold.is_empty() || !Self::is_plain(&out) || !(vector || per_step) {
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
        self.b.finish((0..classes).map(|c| c.to_string()).collect())
    }
}

fn activation_of(op: &str) -> Option<Activation> {
    match op {
        "Relu" => Some(Activation::Relu),
        "Tanh" => Some(Activation::Tanh),
        "Sigmoid" => Some(Activation::Sigmoid),
        _ => None,
    }
}

/// A constant broadcast along one axis only (`axis` of a `rank`-axis tensor,
/// counting the batch), as `len` values; `None` otherwise.
fn channel_vector(c: &Const, rank: usize, axis: usize, len: usize) -> Option<Vec<f32>> {
    if c.dims.len() > rank {
        return None;
    }
    let off = rank - c.dims.len();
    for (k, &d) in c.dims.iter().enumerate() {
        if d != 1 && !(off + k == axis && d == len) {
            return None;
        }
    }
    let v = c.f32s();
    match v.len() {
        l if l == len => Some(v),
        1 => Some(vec![v[0]; len]),
        _ => None,
    }
}

/// ONNX Reshape rules: 0 copies the input dimension (unless `allowzero`),
/// one -1 is inferred. `None` when impossible.
fn resolve_shape(want: &[i64], dims: &[usize], allowzero: bool) -> Option<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(want.len());
    let mut infer = None;
    for (k, &w) in want.iter().enumerate() {
        match w {
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            0 if !allowzero => out.push(*dims.get(k)?),
            w if w >= 0 && w as u64 <= crate::error::MAX_TENSOR_ELEMS => out.push(w as usize),
            _ => return None,
        }
    }
    if let Some(k) = infer {
        let known = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        if known == 0 || !total.is_multiple_of(known) {
            return None;
        }
        out[k] = total / known;
    }
    (out.iter().try_fold(1usize, |a, &d| a.checked_mul(d))? == total).then_some(out)
}

/// `perm` of a Transpose over `rank` axes (default: reversed), validated.
fn perm_attr(n: &NodeProto, rank: usize) -> Result<Vec<usize>> {
    let perm = match Attrs(n).ints("perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&x| usize::try_from(x).unwrap_or(usize::MAX)).collect::<Vec<_>>(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || !perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)) {
        return Err(bad(format!("perm {perm:?} of node {} is not a permutation of {rank} axes", label(n))));
    }
    Ok(perm)
}

fn constant_value(n: &NodeProto) -> Result<Const> {
    let at = Attrs(n);
    if let Some(t) = at.tensor("value")? {
        return Const::from_proto(t, &format!("the value of node {}", label(n)));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_float") {
        return Ok(Const::new(vec![], Data::F32(vec![a.f])));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_floats") {
        return Ok(Const::new(vec![a.floats.len()], Data::F32(a.floats.clone())));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_int") {
        return Ok(Const::new(vec![], Data::I64(vec![a.i])));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_ints") {
        return Ok(Const::new(vec![a.ints.len()], Data::I64(a.ints.clone())));
    }
    Err(Error::Unsupported {
        what: "ONNX Constant".into(),
        name: format!("node {} (no value, value_float(s) or value_int(s))", label(n)),
        supported: "value, value_float, value_floats, value_int, value_ints".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_rules() {
        assert_eq!(resolve_shape(&[-1, 784], &[2, 28, 28], false), Some(vec![2, 784]));
        assert_eq!(resolve_shape(&[0, -1], &[3, 4, 5], false), Some(vec![3, 20]));
        assert_eq!(resolve_shape(&[-1, -1], &[4], false), None);
        assert_eq!(resolve_shape(&[7], &[4], false), None);
        assert_eq!(resolve_shape(&[0, 3], &[4], true), None);
        assert_eq!(resolve_shape(&[-1, 3], &[4], false), None);
        assert_eq!(resolve_shape(&[i64::MAX, i64::MAX], &[4], false), None);
    }

    #[test]
    fn channel_vectors() {
        let c = Const::new(vec![1, 3, 1, 1], Data::F32(vec![1.0, 2.0, 3.0]));
        assert_eq!(channel_vector(&c, 4, 1, 3), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(channel_vector(&c, 4, 3, 3), None);
        let s = Const::new(vec![], Data::F32(vec![5.0]));
        assert_eq!(channel_vector(&s, 2, 1, 2), Some(vec![5.0, 5.0]));
        let bias = Const::new(vec![4], Data::F32(vec![0.0; 4]));
        assert_eq!(channel_vector(&bias, 2, 1, 4).map(|v| v.len()), Some(4));
        assert_eq!(channel_vector(&bias, 4, 1, 4), None, "a [4] bias broadcasts over W, not C");
    }
}

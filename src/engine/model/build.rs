//! Validated construction: each `add` infers the output shape from the inputs
//! and checks weights (shapes, finiteness) before the node exists.

use super::*;
use crate::error::{Error, Result, checked_elems};

/// Largest per-sample activation the engine accepts (16 Mi floats).
const MAX_ACTIVATION: u64 = 1 << 24;
/// Largest zero padding on a side (as the largest window).
const MAX_PAD: usize = 1 << 16;

pub struct ModelBuilder {
    name: String,
    nodes: Vec<Node>,
    input: InputSpec,
}

impl ModelBuilder {
    pub fn new(name: impl Into<String>, input: InputSpec) -> Result<Self> {
        if input.shape.is_empty() || input.shape.contains(&0) {
            return Err(Error::shape("model input", "non-empty shape without zeros", format!("{:?}", input.shape)));
        }
        let len = checked_elems("input shape", &input.shape)?;
        if len as u64 > MAX_ACTIVATION {
            return Err(Error::too_large("input size", len as u64, MAX_ACTIVATION));
        }
        Self::check_input(&input)?;
        let node = Node { name: "input".into(), op: Op::Input, inputs: vec![], shape: input.shape.clone(), source_params: None };
        Ok(ModelBuilder { name: name.into(), nodes: vec![node], input })
    }

    /// A given input map must be usable: a finite non-zero scale, a finite offset.
    pub fn check_input(input: &InputSpec) -> Result<()> {
        let finite = [input.scale, input.offset].iter().flatten().all(|v| v.is_finite());
        if !finite || input.scale == Some(0.0) {
            return Err(Error::invalid(format!(
                "input scale {} / offset {}: the scale must be a finite non-zero number, the offset a finite number",
                input.scale.map_or("(rule)".into(), |v| v.to_string()),
                input.offset.map_or("(rule)".into(), |v| v.to_string())
            )));
        }
        Ok(())
    }

    /// The most recently added node (the input right after `new`).
    pub fn last(&self) -> NodeId {
        self.nodes.len() - 1
    }

    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    /// Adds `op` reading `inputs` (ids of earlier nodes) and returns its id.
    pub fn add(&mut self, name: impl Into<String>, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let name = name.into();
        if let Some(&bad) = inputs.iter().find(|&&i| i >= self.nodes.len()) {
            return Err(Error::invalid(format!(
                "layer '{name}' reads node {bad}, which is not defined before it (graphs must be acyclic)"
            )));
        }
        let ins: Vec<&[usize]> = inputs.iter().map(|&i| self.nodes[i].shape.as_slice()).collect();
        let shape = infer(&name, &op, &ins)?;
        let len = checked_elems(&format!("output of layer '{name}'"), &shape)?;
        if len == 0 {
            return Err(Error::shape(format!("layer '{name}'"), "a non-empty output", format!("{shape:?}")));
        }
        if len as u64 > MAX_ACTIVATION {
            return Err(Error::too_large(format!("output of layer '{name}'"), len as u64, MAX_ACTIVATION));
        }
        check_finite(&name, &op)?;
        self.nodes.push(Node { name, op, inputs: inputs.to_vec(), shape, source_params: None });
        Ok(self.nodes.len() - 1)
    }

    /// Records how many parameters the source file stores for node `id`
    /// (shown to users, who compare it with their framework's count).
    pub fn declare_params(&mut self, id: NodeId, n: usize) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.source_params = Some(n);
        }
    }

    /// Adds `op` reading the last node.
    pub fn push(&mut self, name: impl Into<String>, op: Op) -> Result<NodeId> {
        let last = self.last();
        self.add(name, op, &[last])
    }

    /// Finishes the model: the last node must produce one value per class (or
    /// per step and class, `[T, C]`, for many-to-many tasks), and its logits
    /// must come from a Dense layer (possibly followed by a separate
    /// softmax/linear Activation), which the channeled module head needs.
    pub fn finish(self, class_names: Vec<String>) -> Result<Model> {
        let out = self.nodes.len() - 1;
        let shape = &self.nodes[out].shape;
        if shape.len() > 2 {
            return Err(Error::shape("model output", "one value per class, or per time step and class ([T, C])", format!("{shape:?}")));
        }
        let classes = shape[shape.len() - 1];
        if classes < 2 {
            return Err(Error::invalid(format!("a classifier needs at least 2 classes; the output has {classes}")));
        }
        if class_names.len() != classes {
            return Err(Error::shape("class names", classes, class_names.len()));
        }
        let head = match &self.nodes[out].op {
            Op::Dense { .. } => out,
            Op::Activation(Activation::Softmax | Activation::Linear)
                if matches!(self.nodes[out - 1].op, Op::Dense { .. }) && self.nodes[out].inputs == [out - 1] =>
            {
                out - 1
            }
            other => {
                return Err(Error::Unsupported {
                    what: "output layer".into(),
                    name: format!("{} ({})", self.nodes[out].name, other.kind()),
                    supported: "a Dense layer with softmax or linear activation, optionally followed by a Softmax activation".into(),
                });
            }
        };
        Ok(Model { name: self.name, nodes: self.nodes, input: self.input, class_names, head })
    }
}

fn infer(name: &str, op: &Op, ins: &[&[usize]]) -> Result<Vec<usize>> {
    let ctx = || format!("layer '{name}' ({})", op.kind());
    let want = match op {
        Op::Input => 0,
        Op::Add { .. } | Op::Concat => ins.len().max(2),
        Op::Multiply => 2,
        _ => 1,
    };
    if ins.len() != want {
        return Err(Error::shape(ctx(), format!("{want} input(s)"), ins.len()));
    }
    let image = |s: &[usize]| -> Result<(usize, usize, usize)> {
        match s {
            [h, w, c] => Ok((*h, *w, *c)),
            _ => Err(Error::shape(ctx(), "an image input [H, W, C]", format!("{s:?}"))),
        }
    };
    Ok(match op {
        Op::Input => return Err(Error::invalid(format!("layer '{name}': only the model has an Input"))),
        Op::Dense { kernel, bias, .. } => {
            let s = ins[0];
            let f = *s.last().unwrap_or(&0);
            if kernel.nrows() != f {
                return Err(Error::shape(format!("{} kernel rows", ctx()), f, kernel.nrows()));
            }
            if bias.len() != kernel.ncols() {
                return Err(Error::shape(format!("{} bias", ctx()), kernel.ncols(), bias.len()));
            }
            let mut o = s.to_vec();
            *o.last_mut().unwrap() = kernel.ncols();
            o
        }
        Op::Conv2D { kernel, bias, strides, padding, .. } => {
            let (h, w, c) = image(ins[0])?;
            let [kh, kw, kin, kout] = *kernel.shape() else { unreachable!() };
            if kin != c {
                return Err(Error::shape(format!("{} kernel input channels", ctx()), c, kin));
            }
            if bias.len() != kout {
                return Err(Error::shape(format!("{} bias", ctx()), kout, bias.len()));
            }
            let g = padding.geometry(h, w, c, kh, kw, strides[0], strides[1]).ok_or_else(|| {
                Error::shape(ctx(), format!("a {kh}×{kw} window with strides {strides:?} that fits"), format!("input {h}×{w}"))
            })?;
            vec![g.oh, g.ow, kout]
        }
        Op::DepthwiseConv2D { kernel, bias, strides, padding, .. } => {
            let (h, w, c) = image(ins[0])?;
            let [kh, kw, kin, mult] = *kernel.shape() else { unreachable!() };
            if kin != c {
                return Err(Error::shape(format!("{} kernel input channels", ctx()), c, kin));
            }
            if bias.len() != c * mult {
                return Err(Error::shape(format!("{} bias", ctx()), c * mult, bias.len()));
            }
            let g = padding.geometry(h, w, c, kh, kw, strides[0], strides[1]).ok_or_else(|| {
                Error::shape(ctx(), format!("a {kh}×{kw} window with strides {strides:?} that fits"), format!("input {h}×{w}"))
            })?;
            vec![g.oh, g.ow, c * mult]
        }
        Op::Pool2D { size, strides, padding, .. } => {
            let (h, w, c) = image(ins[0])?;
            let g = padding.geometry(h, w, c, size[0], size[1], strides[0], strides[1]).ok_or_else(|| {
                Error::shape(ctx(), format!("a {size:?} window with strides {strides:?} that fits"), format!("input {h}×{w}"))
            })?;
            vec![g.oh, g.ow, c]
        }
        Op::GlobalPool(_) => vec![image(ins[0])?.2],
        Op::Flatten => vec![ins[0].iter().product()],
        Op::Reshape { shape } => {
            let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if shape.is_empty() || len != Some(ins[0].iter().product::<usize>()) {
                return Err(Error::shape(ctx(), format!("{} values", ins[0].iter().product::<usize>()), format!("{shape:?}")));
            }
            shape.clone()
        }
        Op::ZeroPad2D { pads } => {
            let (h, w, c) = image(ins[0])?;
            if pads.iter().any(|&p| p > MAX_PAD) {
                return Err(Error::too_large(format!("padding of {}", ctx()), *pads.iter().max().unwrap_or(&0) as u64, MAX_PAD as u64));
            }
            vec![h + pads[0] + pads[2], w + pads[1] + pads[3], c]
        }
        Op::Concat => {
            let lead = |s: &[usize]| s[..s.len().saturating_sub(1)].to_vec();
            if ins.len() < 2 || ins.iter().any(|s| s.is_empty() || lead(s) != lead(ins[0])) {
                let got: Vec<String> = ins.iter().map(|s| format!("{s:?}")).collect();
                return Err(Error::shape(ctx(), "two or more inputs alike but in their last axis", got.join(" and ")));
            }
            let mut out = lead(ins[0]);
            out.push(ins.iter().map(|s| s[s.len() - 1]).sum());
            out
        }
        Op::Add { .. } | Op::Multiply => {
            if let Some(s) = ins.iter().find(|s| *s != &ins[0]) {
                return Err(Error::shape(ctx(), format!("{:?} (all inputs alike)", ins[0]), format!("{s:?}")));
            }
            ins[0].to_vec()
        }
        Op::BatchNorm { scale, shift } => {
            let c = *ins[0].last().unwrap_or(&0);
            if scale.len() != c || shift.len() != c {
                return Err(Error::shape(format!("{} parameters", ctx()), c, scale.len().max(shift.len())));
            }
            ins[0].to_vec()
        }
        Op::Activation(_) | Op::Dropout => ins[0].to_vec(),
        Op::PRelu { alpha } => {
            let (c, all) = (*ins[0].last().unwrap_or(&0), ins[0].iter().product::<usize>());
            if alpha.len() != c && alpha.len() != all {
                return Err(Error::shape(
                    format!("{} slopes", ctx()),
                    format!("{c} (one per channel) or {all} (one per value)"),
                    alpha.len(),
                ));
            }
            ins[0].to_vec()
        }
        Op::Embedding { table } => {
            if table.nrows() == 0 || table.ncols() == 0 {
                return Err(Error::shape(format!("{} table", ctx()), "a non-empty vocab × dim table", format!("{:?}", table.dim())));
            }
            [ins[0], &[table.ncols()]].concat()
        }
        Op::RepeatVector { times } => match ins[0] {
            [f] if *times > 0 => vec![*times, *f],
            [_] => return Err(Error::shape(ctx(), "at least one repetition", 0)),
            s => return Err(Error::shape(ctx(), "a vector input [F]", format!("{s:?}"))),
        },
        Op::Recurrent(r) => {
            let (t, f) = match ins[0] {
                [t, f] => (*t, *f),
                s => return Err(Error::shape(ctx(), "a sequence input [T, F]", format!("{s:?}"))),
            };
            let gu = r.cell.gates() * r.units;
            if r.units == 0 {
                return Err(Error::shape(ctx(), "at least one unit", 0));
            }
            if r.kernel.dim() != (f, gu) {
                return Err(Error::shape(format!("{} kernel", ctx()), format!("({f}, {gu})"), format!("{:?}", r.kernel.dim())));
            }
            if r.recurrent.dim() != (r.units, gu) {
                return Err(Error::shape(
                    format!("{} recurrent kernel", ctx()),
                    format!("({}, {gu})", r.units),
                    format!("{:?}", r.recurrent.dim()),
                ));
            }
            if r.bias.len() != gu {
                return Err(Error::shape(format!("{} bias", ctx()), gu, r.bias.len()));
            }
            let wants_rb = matches!(r.cell, Cell::Gru { reset_after: true });
            match &r.recurrent_bias {
                Some(rb) if !wants_rb => {
                    return Err(Error::invalid(format!(
                        "{}: only a GRU with reset_after has a recurrent bias ({} values given)",
                        ctx(),
                        rb.len()
                    )));
                }
                Some(rb) if rb.len() != gu => return Err(Error::shape(format!("{} recurrent bias", ctx()), gu, rb.len())),
                None if wants_rb => return Err(Error::invalid(format!("{}: a GRU with reset_after needs a recurrent bias", ctx()))),
                _ => {}
            }
            for a in [r.activation, r.recurrent_activation] {
                if a == Activation::Softmax {
                    return Err(Error::Unsupported {
                        what: format!("activation in {}", ctx()),
                        name: "softmax".into(),
                        supported: "an elementwise activation (any but softmax)".into(),
                    });
                }
            }
            if r.return_sequences { vec![t, r.units] } else { vec![r.units] }
        }
    })
}

fn check_finite(name: &str, op: &Op) -> Result<()> {
    fn finite<'a>(layer: &str, what: &str, mut v: impl Iterator<Item = &'a f32>) -> Result<()> {
        match v.all(|x| x.is_finite()) {
            true => Ok(()),
            false => Err(Error::NonFinite { layer: layer.into(), what: what.into() }),
        }
    }
    if let Some(a) = op.activation().or(match op {
        Op::Recurrent(r) => [r.activation, r.recurrent_activation].into_iter().find(|a| !a.is_valid()),
        _ => None,
    }) && !a.is_valid()
    {
        return Err(Error::NonFinite { layer: name.into(), what: format!("constant of its {a:?} activation") });
    }
    match op {
        Op::Dense { kernel, bias, .. } => finite(name, "kernel", kernel.iter()).and(finite(name, "bias", bias.iter())),
        Op::Conv2D { kernel, bias, .. } | Op::DepthwiseConv2D { kernel, bias, .. } => {
            finite(name, "kernel", kernel.iter()).and(finite(name, "bias", bias.iter()))
        }
        Op::BatchNorm { scale, shift } => finite(name, "scale", scale.iter()).and(finite(name, "shift", shift.iter())),
        Op::PRelu { alpha } => finite(name, "alpha", alpha.iter()),
        Op::Embedding { table } => finite(name, "embeddings", table.iter()),
        Op::Recurrent(r) => finite(name, "kernel", r.kernel.iter()).and(finite(name, "recurrent kernel", r.recurrent.iter())).and(finite(
            name,
            "bias",
            r.bias.iter().chain(r.recurrent_bias.iter().flatten()),
        )),
        _ => Ok(()),
    }
}

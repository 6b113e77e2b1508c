//! A forward pass that keeps every value, and its backward pass, with the
//! weights frozen: what learned masks ([`crate::engine::decompose`], the
//! `learned` relevance) train. Masked nodes (a module's tracked nodes) have
//! their output multiplied per unit by a fixed factor (the module's 0/1 mask)
//! and per channel (last axis) by a gate; the backward pass returns the
//! gradient of a loss on the head's logits with respect to every gate.
//!
//! Only what a gate can change runs each step: a node is *live* when it is
//! masked or reads a live node. What a live node reads from the rest — a
//! constant node's output, or a live node's pre-activation when none of its
//! inputs is live (a first layer) — is computed once for all samples
//! ([`GatedNet::constants`]) and gathered per batch. The gradient flows
//! through Dense, Conv2D (input only: the transposed convolution), max and
//! average pooling, global pooling, Flatten, Reshape, Dropout, activations
//! (linear, ReLU, leaky ReLU, ELU, tanh, sigmoid), PReLU, BatchNorm, Add,
//! ZeroPad2D and Concat; other live layers are refused. Everything sums in a
//! fixed order (the matmul kernel's, then plain loops), so results do not
//! depend on threads and match between page and CLI.

use std::collections::BTreeMap;

use super::*;
use crate::engine::kernels::{Conv2dGeom, conv2d, global_pool_samples, matmul, pool2d_samples};
use crate::error::{Error, Result};

/// What a live node takes from [`GatedNet::constants`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cached {
    /// A constant node's output.
    Out,
    /// A live node's pre-activation (none of its inputs is live).
    Pre,
}

/// Values computed once per sample: per cached node, `samples × len`.
#[derive(Debug, Clone, Default)]
pub struct Constants {
    values: BTreeMap<NodeId, Vec<f32>>,
    pub samples: usize,
}

/// One batch's values of every live node (and the cached ones it read);
/// its buffers are reused from step to step (fresh ones were page faults
/// for half the training time).
#[derive(Debug, Clone, Default)]
pub struct Tape {
    pub b: usize,
    pre: Vec<Vec<f32>>,
    act: Vec<Vec<f32>>,
    out: Vec<Vec<f32>>,
    /// Gradient buffers of the backward pass, per node, and spare ones.
    d: Vec<Option<Vec<f32>>>,
    spare: Vec<Vec<f32>>,
    col: Vec<f32>,
}

impl Tape {
    /// The head's pre-activations, `b × classes`.
    pub fn logits(&self, model: &Model) -> &[f32] {
        &self.pre[model.head]
    }
}

/// A model prepared for gated passes (see the module docs).
#[derive(Debug)]
pub struct GatedNet<'m> {
    model: &'m Model,
    masked: Vec<bool>,
    live: Vec<bool>,
    cached: Vec<Option<Cached>>,
    /// Dense: `Wᵀ` (out × in); Conv2D: `Wᵀ` (cout × kh·kw·cin).
    transposed: Vec<Option<Vec<f32>>>,
    geo: Vec<Option<Conv2dGeom>>,
}

/// Per masked node: a factor per unit (0 or 1; absent = 1) and per channel (absent = 1).
#[derive(Debug, Clone, Default)]
pub struct Gating {
    pub fixed: BTreeMap<NodeId, Vec<f32>>,
    pub gates: BTreeMap<NodeId, Vec<f32>>,
}

impl<'m> GatedNet<'m> {
    /// `masked`: the nodes whose outputs a [`Gating`] may scale.
    pub fn new(model: &'m Model, masked: &[NodeId]) -> Result<Self> {
        let n = model.nodes.len();
        let mut is_masked = vec![false; n];
        masked.iter().filter(|&&m| m < model.head).for_each(|&m| is_masked[m] = true);
        let mut live = vec![false; n];
        for id in 1..=model.head {
            live[id] = is_masked[id] || model.nodes[id].inputs.iter().any(|&i| live[i]);
        }
        let mut cached = vec![None; n];
        for id in 1..=model.head {
            if live[id] {
                if !model.nodes[id].inputs.iter().any(|&i| live[i]) {
                    cached[id] = Some(Cached::Pre);
                }
                for &i in &model.nodes[id].inputs {
                    if !live[i] {
                        cached[i] = Some(Cached::Out);
                    }
                }
            }
        }
        let mut transposed = vec![None; n];
        let mut geo = vec![None; n];
        for id in (1..=model.head).filter(|&id| live[id]) {
            let node = &model.nodes[id];
            let refuse = |what: String| {
                Err(Error::invalid(format!(
                    "learned masks: layer '{}' ({what}) has no backward pass; use the statistic relevance",
                    node.name
                )))
            };
            if id != model.head
                && let Some(a) = node.op.activation()
                && derivative(a, 0.0, 0.0).is_none()
            {
                return refuse(format!("activation {a:?}"));
            }
            match &node.op {
                Op::Dense { kernel, .. } => transposed[id] = Some(kernel.t().iter().copied().collect()),
                Op::Conv2D { kernel, strides, padding, .. } => {
                    let &[h, w, cin] = model.nodes[node.inputs[0]].shape.as_slice() else { return refuse("not an image".into()) };
                    let [kh, kw, _, cout] = *kernel.shape() else { unreachable!() };
                    geo[id] = padding.geometry(h, w, cin, kh, kw, strides[0], strides[1]);
                    let k = kernel.as_standard_layout();
                    let k = k.as_slice().expect("standard layout");
                    let len = kh * kw * cin;
                    transposed[id] = Some((0..cout).flat_map(|co| (0..len).map(move |r| k[r * cout + co])).collect());
                }
                Op::Pool2D { size, strides, padding, .. } => {
                    let &[h, w, c] = model.nodes[node.inputs[0]].shape.as_slice() else { return refuse("not an image".into()) };
                    geo[id] = padding.geometry(h, w, c, size[0], size[1], strides[0], strides[1]);
                }
                Op::GlobalPool(_)
                | Op::Flatten
                | Op::Reshape { .. }
                | Op::Dropout
                | Op::Activation(_)
                | Op::PRelu { .. }
                | Op::BatchNorm { .. }
                | Op::Add { .. }
                | Op::ZeroPad2D { .. }
                | Op::Concat => {}
                other => return refuse(other.kind().into()),
            }
        }
        Ok(GatedNet { model, masked: is_masked, live, cached, transposed, geo })
    }

    /// The cached values for `n` samples of `x` (already scaled), computed in chunks.
    pub fn constants(&self, x: &[f32], n: usize) -> Result<Constants> {
        let model = self.model;
        let in_len = model.input_len();
        let mut values: BTreeMap<NodeId, Vec<f32>> = (0..model.nodes.len())
            .filter(|&i| self.cached[i].is_some())
            .map(|i| (i, Vec::with_capacity(n * model.nodes[i].len())))
            .collect();
        const CHUNK: usize = 64;
        let mut vals: Vec<Vec<f32>> = vec![vec![]; model.nodes.len()];
        for start in (0..n).step_by(CHUNK) {
            let b = CHUNK.min(n - start);
            vals[0] = x[start * in_len..(start + b) * in_len].to_vec();
            for id in 1..=model.head {
                if self.live[id] && self.cached[id] != Some(Cached::Pre) {
                    continue;
                }
                let mut pre = vec![];
                self.eval(id, &vals, b, &mut pre)?;
                if self.cached[id] == Some(Cached::Pre) {
                    values.get_mut(&id).expect("listed").extend_from_slice(&pre);
                    continue;
                }
                let mut out = pre;
                if let Some(a) = model.nodes[id].op.activation().filter(|_| id != model.head) {
                    a.apply(&mut out, *model.nodes[id].shape.last().unwrap_or(&1));
                }
                if self.cached[id] == Some(Cached::Out) {
                    values.get_mut(&id).expect("listed").extend_from_slice(&out);
                }
                vals[id] = out;
            }
            if model.nodes[0].op == Op::Input && self.cached[0] == Some(Cached::Out) {
                values.get_mut(&0).expect("listed").extend_from_slice(&vals[0]);
            }
        }
        Ok(Constants { values, samples: n })
    }

    /// The gated forward pass over samples `idx` of `consts`.
    pub fn forward(&self, consts: &Constants, idx: &[usize], gating: &Gating) -> Result<Tape> {
        let mut tape = Tape::default();
        self.forward_into(consts, idx, gating, &mut tape)?;
        Ok(tape)
    }

    /// [`Self::forward`] into a tape whose buffers are reused.
    pub fn forward_into(&self, consts: &Constants, idx: &[usize], gating: &Gating, tape: &mut Tape) -> Result<()> {
        let model = self.model;
        let b = idx.len();
        let n = model.nodes.len();
        let gather = |id: NodeId, into: &mut Vec<f32>| {
            let len = model.nodes[id].len();
            let v = &consts.values[&id];
            into.clear();
            idx.iter().for_each(|&i| into.extend_from_slice(&v[i * len..(i + 1) * len]));
        };
        tape.b = b;
        for v in [&mut tape.pre, &mut tape.act, &mut tape.out] {
            v.resize(n, vec![]);
        }
        for id in 0..=model.head {
            match self.cached[id] {
                Some(Cached::Out) => {
                    gather(id, &mut tape.out[id]);
                    continue;
                }
                _ if !self.live[id] => continue,
                _ => {}
            }
            let node = &model.nodes[id];
            let mut pre = std::mem::take(&mut tape.pre[id]);
            if self.cached[id] == Some(Cached::Pre) {
                gather(id, &mut pre);
            } else {
                self.eval(id, &tape.out, b, &mut pre)?;
            }
            if id == model.head {
                tape.pre[id] = pre;
                break;
            }
            let (act, out) = (&mut tape.act[id], &mut tape.out[id]);
            act.clear();
            act.extend_from_slice(&pre);
            if let Some(a) = node.op.activation() {
                a.apply(act, *node.shape.last().unwrap_or(&1));
            }
            out.clear();
            out.extend_from_slice(act);
            if self.masked[id] {
                scale(out, gating, id, node.len(), *node.shape.last().unwrap_or(&1));
            }
            tape.pre[id] = pre;
        }
        Ok(())
    }

    /// `∂loss/∂gate` per gated node and channel (summed over the batch), from
    /// `d_logits = ∂loss/∂logits` (`b × classes`).
    pub fn backward(&self, tape: &mut Tape, d_logits: &[f32], gating: &Gating) -> BTreeMap<NodeId, Vec<f32>> {
        let model = self.model;
        let b = tape.b;
        let mut d = std::mem::take(&mut tape.d);
        d.resize(model.nodes.len(), None);
        d[model.head] = Some(d_logits.to_vec());
        let mut grads = BTreeMap::new();
        for id in (1..=model.head).rev() {
            if !self.live[id] || self.cached[id] == Some(Cached::Out) {
                continue;
            }
            let Some(mut g) = d[id].take() else { continue };
            let node = &model.nodes[id];
            let (len, ch) = (node.len(), *node.shape.last().unwrap_or(&1));
            if id != model.head {
                if self.masked[id] {
                    if gating.gates.contains_key(&id) {
                        let mut dg = vec![0f32; ch];
                        let fixed = gating.fixed.get(&id);
                        for (gs, as_) in g.chunks_exact(len).zip(tape.act[id].chunks_exact(len)) {
                            for (u, (&gv, &av)) in gs.iter().zip(as_).enumerate() {
                                dg[u % ch] += gv * av * fixed.map_or(1.0, |f| f[u]);
                            }
                        }
                        grads.insert(id, dg);
                    }
                    scale(&mut g, gating, id, len, ch);
                }
                if let Some(a) = node.op.activation() {
                    for ((x, &p), &y) in g.iter_mut().zip(&tape.pre[id]).zip(&tape.act[id]) {
                        *x *= derivative(a, p, y).unwrap_or(1.0);
                    }
                }
            }
            if self.cached[id] != Some(Cached::Pre) {
                self.propagate(id, &g, b, tape, &mut d);
            }
            tape.spare.push(g);
        }
        // Whatever reached a node without a gradient of its own (none should) goes back too.
        tape.spare.extend(d.iter_mut().filter_map(Option::take));
        tape.d = d;
        grads
    }

    /// Adds node `id`'s pre-activation gradient `g` into its live inputs' gradients.
    fn propagate(&self, id: NodeId, g: &[f32], b: usize, tape: &mut Tape, d: &mut [Option<Vec<f32>>]) {
        let model = self.model;
        let node = &model.nodes[id];
        let live_input = |k: usize| self.live[node.inputs[k]];
        let Tape { out: values, spare, col, .. } = tape;
        let values = &*values;
        let mut into = |k: usize, f: &mut dyn FnMut(&mut [f32])| {
            let src = node.inputs[k];
            if self.live[src] {
                f(d[src].get_or_insert_with(|| {
                    let mut v = spare.pop().unwrap_or_default();
                    v.clear();
                    v.resize(b * model.nodes[src].len(), 0.0);
                    v
                }));
            }
        };
        match &node.op {
            Op::Dense { kernel, .. } => {
                let (fin, fout) = kernel.dim();
                let rows = g.len() / fout;
                let mut tmp = vec![0f32; rows * fin];
                matmul(g, self.transposed[id].as_ref().expect("prepared"), &mut tmp, rows, fout, fin);
                into(0, &mut |x| x.iter_mut().zip(&tmp).for_each(|(a, b)| *a += b));
            }
            Op::Conv2D { kernel, .. } => {
                if !live_input(0) {
                    return;
                }
                let geo = self.geo[id].expect("prepared");
                let cout = kernel.shape()[3];
                let (plen, p) = (geo.patch_len(), geo.oh * geo.ow);
                let in_len = geo.h * geo.w * geo.cin;
                col.resize(p * plen, 0.0);
                let wt = self.transposed[id].as_ref().expect("prepared");
                into(0, &mut |x| {
                    for s in 0..b {
                        matmul(&g[s * p * cout..][..p * cout], wt, col, p, cout, plen);
                        let xs = &mut x[s * in_len..][..in_len];
                        for (oy, ox) in (0..geo.oh).flat_map(|y| (0..geo.ow).map(move |x| (y, x))) {
                            let row = &col[(oy * geo.ow + ox) * plen..][..plen];
                            for (ky, kx) in (0..geo.kh).flat_map(|a| (0..geo.kw).map(move |c| (a, c))) {
                                let Some((iy, ix)) = geo.tap(oy, ox, ky, kx) else { continue };
                                let src = &row[(ky * geo.kw + kx) * geo.cin..][..geo.cin];
                                xs[(iy * geo.w + ix) * geo.cin..][..geo.cin].iter_mut().zip(src).for_each(|(a, v)| *a += v);
                            }
                        }
                    }
                });
            }
            Op::Pool2D { kind, .. } => {
                let geo = self.geo[id].expect("prepared");
                let input = &values[node.inputs[0]];
                let (il, ol, c) = (geo.h * geo.w * geo.cin, node.len(), geo.cin);
                let mut taps = Vec::with_capacity(geo.kh * geo.kw);
                into(0, &mut |x| {
                    for s in 0..b {
                        let (xs, is) = (&mut x[s * il..][..il], &input[s * il..][..il]);
                        for (oy, ox) in (0..geo.oh).flat_map(|y| (0..geo.ow).map(move |x| (y, x))) {
                            taps.clear();
                            taps.extend(
                                (0..geo.kh)
                                    .flat_map(|a| (0..geo.kw).map(move |c| (a, c)))
                                    .filter_map(|(a, cc)| geo.tap(oy, ox, a, cc).map(|(y, x)| y * geo.w + x)),
                            );
                            for ch in 0..c {
                                let go = g[s * ol + (oy * geo.ow + ox) * c + ch];
                                match kind {
                                    // The first maximum wins, as in the forward kernel.
                                    PoolKind::Max => {
                                        let mut best: Option<usize> = None;
                                        for &t in &taps {
                                            if best.is_none_or(|bt| is[t * c + ch] > is[bt * c + ch]) {
                                                best = Some(t);
                                            }
                                        }
                                        if let Some(t) = best {
                                            xs[t * c + ch] += go;
                                        }
                                    }
                                    PoolKind::Avg => {
                                        let share = go / taps.len().max(1) as f32;
                                        taps.iter().for_each(|&t| xs[t * c + ch] += share);
                                    }
                                }
                            }
                        }
                    }
                });
            }
            Op::GlobalPool(kind) => {
                let il = model.nodes[node.inputs[0]].len();
                let c = node.len();
                let positions = il / c.max(1);
                let input = &values[node.inputs[0]];
                into(0, &mut |x| {
                    for s in 0..b {
                        let (xs, is) = (&mut x[s * il..][..il], &input[s * il..][..il]);
                        for ch in 0..c {
                            let go = g[s * c + ch];
                            match kind {
                                PoolKind::Avg => (0..positions).for_each(|p| xs[p * c + ch] += go / positions as f32),
                                PoolKind::Max => {
                                    let best = (0..positions).fold(0, |bt, p| if is[p * c + ch] > is[bt * c + ch] { p } else { bt });
                                    xs[best * c + ch] += go;
                                }
                            }
                        }
                    }
                });
            }
            Op::Flatten | Op::Reshape { .. } | Op::Dropout | Op::Activation(_) => {
                into(0, &mut |x| x.iter_mut().zip(g).for_each(|(a, v)| *a += v));
            }
            Op::PRelu { alpha } => {
                let input = &values[node.inputs[0]];
                let len = node.len();
                into(0, &mut |x| {
                    for (i, (a, v)) in x.iter_mut().zip(g).enumerate() {
                        *a += if input[i] > 0.0 { *v } else { v * alpha[(i % len) % alpha.len()] };
                    }
                });
            }
            Op::BatchNorm { scale, .. } => {
                into(0, &mut |x| x.iter_mut().zip(g).enumerate().for_each(|(i, (a, v))| *a += v * scale[i % scale.len()]));
            }
            Op::Add { .. } => {
                for k in 0..node.inputs.len() {
                    into(k, &mut |x| x.iter_mut().zip(g).for_each(|(a, v)| *a += v));
                }
            }
            Op::ZeroPad2D { .. } | Op::Concat => {
                let len = node.len();
                for u in 0..len {
                    let Some((k, v)) = model.route(id, u) else { continue };
                    let il = model.nodes[node.inputs[k]].len();
                    into(k, &mut |x| (0..b).for_each(|s| x[s * il + v] += g[s * len + u]));
                }
            }
            _ => unreachable!("refused by GatedNet::new"),
        }
    }

    /// Node `id`'s pre-activation for a batch of `b`, from its inputs' values in `vals`.
    fn eval(&self, id: NodeId, vals: &[Vec<f32>], b: usize, out: &mut Vec<f32>) -> Result<()> {
        let model = self.model;
        let node = &model.nodes[id];
        let input = |k: usize| vals[node.inputs[k]].as_slice();
        let in_shape = |k: usize| model.nodes[node.inputs[k]].shape.as_slice();
        out.clear();
        out.resize(b * node.len(), 0.0);
        match &node.op {
            Op::Dense { kernel, bias, .. } => {
                let (fin, fout) = kernel.dim();
                let rows = b * model.nodes[node.inputs[0]].len() / fin;
                let k = kernel.as_standard_layout();
                matmul(input(0), k.as_slice().expect("standard layout"), out, rows, fin, fout);
                out.chunks_exact_mut(fout).for_each(|r| r.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
            }
            Op::Conv2D { kernel, bias, strides, padding, .. } => {
                let &[h, w, c] = in_shape(0) else { unreachable!("the builder checked an image") };
                let [kh, kw, _, _] = *kernel.shape() else { unreachable!() };
                let g = padding.geometry(h, w, c, kh, kw, strides[0], strides[1]).expect("the builder checked the geometry");
                let k = kernel.as_standard_layout();
                let (il, ol) = (h * w * c, node.len());
                let mut scratch = vec![];
                for s in 0..b {
                    let (k, bias) = (k.as_slice().unwrap(), bias.as_slice().unwrap());
                    conv2d(&g, &input(0)[s * il..][..il], k, bias, &mut out[s * ol..][..ol], &mut scratch);
                }
            }
            Op::Pool2D { kind, size, strides, padding } => {
                let &[h, w, c] = in_shape(0) else { unreachable!() };
                let g = padding.geometry(h, w, c, size[0], size[1], strides[0], strides[1]).expect("checked");
                pool2d_samples(*kind, &g, &input(0)[..b * h * w * c], &mut out[..b * node.len()]);
            }
            Op::GlobalPool(kind) => {
                let il = model.nodes[node.inputs[0]].len();
                global_pool_samples(*kind, &input(0)[..b * il], il, node.len(), &mut out[..b * node.len()]);
            }
            Op::Flatten | Op::Reshape { .. } | Op::Dropout | Op::Activation(_) => out.copy_from_slice(input(0)),
            Op::PRelu { alpha } => {
                let len = node.len();
                for (i, (o, &x)) in out.iter_mut().zip(input(0)).enumerate() {
                    *o = if x > 0.0 { x } else { alpha[(i % len) % alpha.len()] * x };
                }
            }
            Op::BatchNorm { scale, shift } => {
                let c = scale.len();
                for (i, (o, &x)) in out.iter_mut().zip(input(0)).enumerate() {
                    *o = x * scale[i % c] + shift[i % c];
                }
            }
            Op::Add { .. } => {
                out.copy_from_slice(input(0));
                for k in 1..node.inputs.len() {
                    out.iter_mut().zip(input(k)).for_each(|(o, v)| *o += v);
                }
            }
            Op::ZeroPad2D { .. } | Op::Concat => {
                let len = node.len();
                for u in 0..len {
                    let Some((k, v)) = model.route(id, u) else { continue };
                    let il = model.nodes[node.inputs[k]].len();
                    (0..b).for_each(|s| out[s * len + u] = input(k)[s * il + v]);
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "learned masks: layer '{}' ({}) has no backward pass; use the statistic relevance",
                    node.name,
                    other.kind()
                )));
            }
        }
        Ok(())
    }
}

/// Multiplies a masked node's values (`len` per sample, `ch` channels) by its fixed factors and gates.
fn scale(v: &mut [f32], gating: &Gating, id: NodeId, len: usize, ch: usize) {
    let (fixed, gate) = (gating.fixed.get(&id), gating.gates.get(&id));
    for row in v.chunks_exact_mut(len) {
        for (u, x) in row.iter_mut().enumerate() {
            if let Some(f) = fixed {
                *x *= f[u];
            }
            if let Some(g) = gate {
                *x *= g[u % ch];
            }
        }
    }
}

/// `dy/dx` of activation `a` at pre-activation `x` with output `y`; `None`
/// for the ones without a backward pass here.
fn derivative(a: Activation, x: f32, y: f32) -> Option<f32> {
    Some(match a {
        Activation::Linear => 1.0,
        Activation::Relu => (x > 0.0) as u8 as f32,
        Activation::LeakyRelu(s) => {
            if x > 0.0 {
                1.0
            } else {
                s
            }
        }
        Activation::Elu(s) => {
            if x > 0.0 {
                1.0
            } else {
                y + s
            }
        }
        Activation::Tanh => 1.0 - y * y,
        Activation::Sigmoid => y * (1.0 - y),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array4};

    use super::*;
    use crate::engine::model::{InputKind, InputSpec, ModelBuilder};

    /// A deterministic pseudo-random number in [−1, 1).
    fn rnd(state: &mut u64) -> f32 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Conv (same) → BN → ReLU → max pool → conv (valid, leaky) ‖ zero pad + avg pool → concat → add with a
    /// residual → global avg … → dense: every op of the backward pass on a tiny random model.
    fn tiny_cnn(seed: u64) -> Model {
        let mut s = seed;
        let mut a4 = |shape: (usize, usize, usize, usize)| Array4::from_shape_fn(shape, |_| rnd(&mut s) * 0.7);
        let conv = |k: Array4<f32>, padding: Padding, activation: Activation| {
            let cout = k.shape()[3];
            Op::Conv2D { kernel: k, bias: Array1::from_elem(cout, 0.05), strides: [1, 1], padding, activation }
        };
        let spec = InputSpec::new(vec![6, 6, 2], InputKind::Image);
        let mut b = ModelBuilder::new("t", spec).unwrap();
        let c1 = b.push("c1", conv(a4((3, 3, 2, 3)), Padding::Same, Activation::Linear)).unwrap();
        let bn =
            b.push("bn", Op::BatchNorm { scale: Array1::from(vec![1.2, -0.7, 0.9]), shift: Array1::from(vec![0.1, 0.2, -0.1]) }).unwrap();
        let r1 = b.push("r1", Op::Activation(Activation::Relu)).unwrap();
        let _ = (c1, bn);
        let p1 = b.push("p1", Op::Pool2D { kind: PoolKind::Max, size: [2, 2], strides: [2, 2], padding: Padding::Valid }).unwrap();
        let c2 = b.push("c2", conv(a4((2, 2, 3, 4)), Padding::Same, Activation::LeakyRelu(0.1))).unwrap();
        let pad = b.add("pad", Op::ZeroPad2D { pads: [1, 1, 0, 0] }, &[r1]).unwrap();
        let ap = b.add("ap", Op::Pool2D { kind: PoolKind::Avg, size: [3, 3], strides: [3, 3], padding: Padding::Same }, &[pad]).unwrap();
        let _ = p1;
        let cat = b.add("cat", Op::Concat, &[c2, ap]).unwrap();
        let c3 = b.push("c3", conv(a4((1, 1, 7, 7)), Padding::Valid, Activation::Relu)).unwrap();
        let add = b.add("add", Op::Add { activation: Activation::Relu }, &[c3, cat]).unwrap();
        let _ = add;
        b.push("gap", Op::GlobalPool(PoolKind::Avg)).unwrap();
        let k = Array2::from_shape_fn((7, 3), |_| rnd(&mut s));
        b.push("out", Op::Dense { kernel: k, bias: Array1::zeros(3), activation: Activation::Softmax }).unwrap();
        b.finish(vec!["a".into(), "b".into(), "c".into()]).unwrap()
    }

    /// The loss used by the check: Σ logits · fixed weights.
    fn loss(net: &GatedNet, m: &Model, consts: &Constants, gating: &Gating, w: &[f32]) -> f64 {
        let tape = net.forward(consts, &[0, 1, 2], gating).unwrap();
        tape.logits(m).iter().zip(w).map(|(&z, &w)| (z * w) as f64).sum()
    }

    #[test]
    fn gate_gradients_match_finite_differences() {
        let m = tiny_cnn(7);
        let masked: Vec<NodeId> = m.tracked();
        let net = GatedNet::new(&m, &masked).unwrap();
        let mut s = 99u64;
        let x: Vec<f32> = (0..3 * m.input_len()).map(|_| rnd(&mut s)).collect();
        let consts = net.constants(&x, 3).unwrap();
        let mut gating = Gating::default();
        for &t in &masked {
            let ch = *m.nodes[t].shape.last().unwrap();
            gating.gates.insert(t, (0..ch).map(|_| 0.6 + 0.3 * rnd(&mut s)).collect());
        }
        // One unit of the first masked node fixed at 0 (a faithful mask).
        let first = masked[0];
        let mut fixed = vec![1.0; m.nodes[first].len()];
        fixed[1] = 0.0;
        gating.fixed.insert(first, fixed);
        let w: Vec<f32> = (0..9).map(|_| rnd(&mut s)).collect();
        let mut tape = net.forward(&consts, &[0, 1, 2], &gating).unwrap();
        let grads = net.backward(&mut tape, &w, &gating);
        assert_eq!(grads.len(), masked.len());
        let mut checked = 0;
        for (&node, g) in &grads {
            for (ch, &analytic) in g.iter().enumerate() {
                let h = 1e-2f32;
                let mut up = gating.clone();
                up.gates.get_mut(&node).unwrap()[ch] += h;
                let mut down = gating.clone();
                down.gates.get_mut(&node).unwrap()[ch] -= h;
                let numeric = (loss(&net, &m, &consts, &up, &w) - loss(&net, &m, &consts, &down, &w)) / (2.0 * h as f64);
                assert!(
                    (numeric - analytic as f64).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                    "node {} channel {ch}: analytic {analytic}, numeric {numeric}",
                    m.nodes[node].name
                );
                checked += 1;
            }
        }
        assert!(checked >= 10);
    }

    #[test]
    fn gates_at_one_reproduce_the_forward_pass_and_unsupported_layers_are_refused() {
        let m = tiny_cnn(3);
        let net = GatedNet::new(&m, &m.tracked()).unwrap();
        let mut s = 5u64;
        let x: Vec<f32> = (0..2 * m.input_len()).map(|_| rnd(&mut s)).collect();
        let consts = net.constants(&x, 2).unwrap();
        let tape = net.forward(&consts, &[0, 1], &Gating::default()).unwrap();
        let out = crate::engine::model::forward(&m, &x, 2, None, false, &mut |_, _| true).unwrap();
        for (a, b) in tape.logits(&m).iter().zip(&out.logits) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let mut b = ModelBuilder::new("e", InputSpec::new(vec![3], InputKind::Tokens)).unwrap();
        b.push("emb", Op::Embedding { table: Array2::ones((4, 2)) }).unwrap();
        b.push("flat", Op::Flatten).unwrap();
        b.push("h", Op::Dense { kernel: Array2::ones((6, 2)), bias: Array1::zeros(2), activation: Activation::Gelu }).unwrap();
        b.push("out", Op::Dense { kernel: Array2::ones((2, 2)), bias: Array1::zeros(2), activation: Activation::Softmax }).unwrap();
        let e = b.finish(vec!["a".into(), "b".into()]).unwrap();
        let err = GatedNet::new(&e, &e.tracked()).unwrap_err().to_string();
        assert!(err.contains("'h'"), "{err}");
    }
}

//! Batched forward pass, optionally with module masks applied and with an
//! activity record of every tracked unit.
//!
//! Memory per call: `batch × Σ_nodes len(node) × 4` bytes of activations, plus
//! one im2col buffer (`OH·OW·KH·KW·Cin × 4` bytes for the largest conv), plus
//! for recurrent layers `batch × T × (G+2)·U × 4` bytes of gate and state
//! buffers, plus, when recording, `Σ_tracked units × ⌈N/64⌉ × 8` bytes of bits
//! and `N × Σ_recurrent T·U × 4` bytes of recurrent states (`T·G·U` more
//! per recurrent layer with [`Record::Gates`]). `N × classes`
//! logits and probabilities are returned.

use std::collections::BTreeMap;

use super::recurrent::Scratch as CellScratch;
use super::*;
use crate::engine::bits::{BitMatrix, BitSet};
use crate::engine::kernels::{conv2d, global_pool, matmul, pool2d};
use crate::error::{Error, Result};

pub const DEFAULT_BATCH: usize = 128;
/// Activation bytes one batch may touch. Every layer's output for the whole
/// batch is written, then read by the next layer: when that exceeds the L2
/// cache, elementwise layers (activations, BatchNorm, Add, pooling) run at
/// memory speed — 128 samples of the residual CNN were 6 MB, and those
/// layers took over half its time. Results do not depend on the batch size.
const BATCH_BYTES: usize = 256 << 10;

/// Samples per batch: up to [`DEFAULT_BATCH`] (a tall GEMM for Dense and
/// recurrent layers), fewer when the layers' outputs and recurrent buffers
/// for one sample are large.
pub fn batch_size(model: &Model) -> usize {
    let per_sample: usize = (0..model.nodes.len())
        .map(|id| match &model.nodes[id].op {
            // Every step's states, plus one step's gates and states (see `Recurrent::run`).
            Op::Recurrent(r) => model.nodes[id].len() + model.steps(id) * r.units + (2 * r.cell.gates() + 4) * r.units,
            _ => model.nodes[id].len(),
        })
        .sum();
    (BATCH_BYTES / (4 * per_sample.max(1))).clamp(1, DEFAULT_BATCH)
}

/// Which units of one tracked node a module keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitMask {
    /// Units (flat index within the node's per-sample output) that stay; the
    /// others are forced to 0 after the activation.
    pub keep: BitSet,
    /// `reference` dense mode: kept units whose negative incoming weights are
    /// zeroed (the Dense layer computes them with `max(W, 0)`).
    pub clip_negative: Option<BitSet>,
    /// Recurrent layers decomposed per gate: the gate columns that stay,
    /// `T × G × U` (step-major, then gate block, then unit); `None` keeps
    /// every gate column of a kept unit.
    pub gates: Option<BitSet>,
}

/// A module's masks, keyed by node id. Nodes without an entry run unchanged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Masks {
    pub nodes: BTreeMap<NodeId, UnitMask>,
}

impl Masks {
    /// (kept, total) units over every mask — gate columns for per-gate masks.
    pub fn unit_counts(&self) -> (usize, usize) {
        self.nodes.values().map(|m| m.gates.as_ref().unwrap_or(&m.keep)).fold((0, 0), |(k, t), m| (k + m.count(), t + m.len()))
    }
}

/// One bit per (unit, sample): did the unit's output exceed 0? Recurrent
/// layers also keep their hidden states, which their statistics need.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Tracked node ids, in model order (see [`Model::tracked`]).
    pub nodes: Vec<NodeId>,
    /// `bits[k]` is `units(nodes[k]) × samples` (see [`Model::units`]).
    pub bits: Vec<BitMatrix>,
    /// Recurrent node → hidden states `h`, `samples × T × U`.
    pub states: BTreeMap<NodeId, Vec<f32>>,
    /// With [`Record::Gates`]: recurrent node → gate activations,
    /// `samples × T × G·U` (Keras gate order; SimpleRNN: its state).
    pub gates: BTreeMap<NodeId, Vec<f32>>,
    /// With sample groups given to the pass: per tracked non-recurrent node,
    /// Σ output and Σ output² of every unit over each group's samples (the
    /// class-relevance statistic; empty otherwise).
    pub moments: BTreeMap<NodeId, Moments>,
}

/// Σ v and Σ v² per (group, unit) of one node's outputs, `groups × units`
/// row-major, and the samples per group. Accumulated in f64: a sum over
/// thousands of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    pub units: usize,
    pub count: Vec<usize>,
    pub sum: Vec<f64>,
    pub sq: Vec<f64>,
}

impl Moments {
    fn new(groups: usize, units: usize) -> Self {
        Moments { units, count: vec![0; groups], sum: vec![0.0; groups * units], sq: vec![0.0; groups * units] }
    }
}

/// What a forward pass records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Nothing,
    /// Activity bits and recurrent states.
    Units,
    /// Also every recurrent gate's activation (the per-gate statistic).
    Gates,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForwardOutput {
    /// Head pre-activations, `samples × classes`.
    pub logits: Vec<f32>,
    /// The model's outputs (softmax of the logits for softmax heads).
    pub probs: Vec<f32>,
    pub recording: Option<Recording>,
}

/// Runs `model` over `n` samples in `x` (`n × input_len`, already scaled).
/// `progress(done, total)` is called after each batch; returning `false`
/// cancels with [`Error::Cancelled`].
pub fn forward(
    model: &Model,
    x: &[f32],
    n: usize,
    masks: Option<&Masks>,
    record: bool,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<ForwardOutput> {
    forward_with(model, x, n, masks, if record { Record::Units } else { Record::Nothing }, None, progress)
}

/// [`forward`] with a choice of what to record; with `groups` (one group id
/// per sample) the recording also sums every tracked unit's outputs per
/// group ([`Recording::moments`]).
pub fn forward_with(
    model: &Model,
    x: &[f32],
    n: usize,
    masks: Option<&Masks>,
    what: Record,
    groups: Option<&[u32]>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<ForwardOutput> {
    let record = what != Record::Nothing;
    let in_len = model.input_len();
    if x.len() != n * in_len {
        return Err(Error::shape("model input", format!("{n} × {in_len} = {} values", n * in_len), x.len()));
    }
    // Outputs per sample: classes, or steps × classes for a per-step head.
    let c = model.nodes[model.head].len();
    let tracked = if record { model.tracked() } else { vec![] };
    let mut bits: Vec<BitMatrix> = tracked.iter().map(|&t| BitMatrix::new(model.units(t), n)).collect();
    let mut states: BTreeMap<NodeId, Vec<f32>> = tracked
        .iter()
        .filter(|&&t| matches!(model.nodes[t].op, Op::Recurrent(_)))
        .map(|&t| (t, Vec::with_capacity(n * model.units(t))))
        .collect();
    let gate_len = |t: NodeId| match &model.nodes[t].op {
        Op::Recurrent(r) => model.steps(t) * r.cell.gates() * r.units,
        _ => 0,
    };
    let mut gates: BTreeMap<NodeId, Vec<f32>> =
        if what == Record::Gates { states.keys().map(|&t| (t, Vec::with_capacity(n * gate_len(t)))).collect() } else { BTreeMap::new() };
    if groups.is_some_and(|g| g.len() != n) {
        return Err(Error::shape("sample groups", format!("{n} group ids"), groups.map_or(0, <[u32]>::len)));
    }
    let n_groups = groups.and_then(|g| g.iter().max()).map_or(0, |&g| g as usize + 1);
    let mut moments: BTreeMap<NodeId, Moments> = match groups {
        Some(_) if record => tracked
            .iter()
            .filter(|&&t| !matches!(model.nodes[t].op, Op::Recurrent(_)))
            .map(|&t| (t, Moments::new(n_groups, model.units(t))))
            .collect(),
        _ => BTreeMap::new(),
    };
    let positive_kernels = positive_kernels(model, masks);
    let mut scratch = Scratch::default();
    let mut logits = vec![0f32; n * c];
    let mut probs = vec![0f32; n * c];
    let mut bufs: Vec<Vec<f32>> = vec![Vec::new(); model.nodes.len()];

    let batch = batch_size(model);
    let mut start = 0;
    while start < n {
        let b = batch.min(n - start);
        bufs[0].clear();
        bufs[0].extend_from_slice(&x[start * in_len..(start + b) * in_len]);
        for id in 1..model.nodes.len() {
            let mut out = std::mem::take(&mut bufs[id]);
            let node = &model.nodes[id];
            // Not cleared: every op overwrites all of its output (zero-filling every layer's
            // buffer was a pass over all activations per batch).
            out.resize(b * node.len(), 0.0);
            scratch.gates = gates.get_mut(&id).map(|g| {
                let start = g.len();
                g.resize(start + b * gate_len(id), 0.0);
                (std::mem::take(g), start)
            });
            let seq = run_node(model, id, &bufs, b, &mut out, &mut scratch, masks, &positive_kernels)?;
            if id == model.head {
                logits[start * c..(start + b) * c].copy_from_slice(&out);
            }
            if let Some(a) = node.op.activation() {
                a.apply(&mut out, *node.shape.last().unwrap());
            }
            if let (Some(m), None) = (masks.and_then(|m| m.nodes.get(&id)), seq) {
                apply_keep(&mut out, node.len(), &m.keep);
            }
            if let Some(k) = tracked.iter().position(|&t| t == id) {
                // A recurrent layer's units are its states at every step.
                let units = seq.unwrap_or(&out);
                let len = model.units(id);
                let mut sums = moments.get_mut(&id);
                for (s, row) in units.chunks_exact(len).enumerate() {
                    for (u, &v) in row.iter().enumerate() {
                        if v > 0.0 {
                            bits[k].set(u, start + s);
                        }
                    }
                    // ReLU outputs: the zeros add nothing, so only active units are summed.
                    if let (Some(m), Some(g)) = (sums.as_deref_mut(), groups) {
                        let g = g[start + s] as usize;
                        m.count[g] += 1;
                        let (sum, sq) = (&mut m.sum[g * len..(g + 1) * len], &mut m.sq[g * len..(g + 1) * len]);
                        for (u, &v) in row.iter().enumerate().filter(|&(_, &v)| v > 0.0) {
                            sum[u] += v as f64;
                            sq[u] += (v * v) as f64;
                        }
                    }
                }
                if let Some(st) = states.get_mut(&id) {
                    st.extend_from_slice(units);
                }
            }
            if let Some((g, _)) = scratch.gates.take() {
                gates.insert(id, g);
            }
            bufs[id] = out;
        }
        probs[start * c..(start + b) * c].copy_from_slice(&bufs[model.nodes.len() - 1]);
        start += b;
        if !progress(start, n) {
            return Err(Error::Cancelled);
        }
    }
    let recording = record.then_some(Recording { nodes: tracked, bits, states, gates, moments });
    Ok(ForwardOutput { logits, probs, recording })
}

fn apply_keep(out: &mut [f32], len: usize, keep: &BitSet) {
    for row in out.chunks_exact_mut(len) {
        for (u, v) in row.iter_mut().enumerate() {
            if !keep.contains(u) {
                *v = 0.0;
            }
        }
    }
}

/// `max(W, 0)` for every Dense node a mask asks to clip (computed once per call).
fn positive_kernels(model: &Model, masks: Option<&Masks>) -> BTreeMap<NodeId, Array2<f32>> {
    let mut out = BTreeMap::new();
    for (&id, m) in masks.map(|m| &m.nodes).into_iter().flatten() {
        if let (Some(_), Op::Dense { kernel, .. }) = (&m.clip_negative, &model.nodes[id].op) {
            out.insert(id, kernel.mapv(|w| w.max(0.0)));
        }
    }
    out
}

/// Computes node `id`'s pre-activation output for a batch of `b` samples.
/// A recurrent node applies its mask itself and returns its states at every
/// step (`b × T × U`, in `scratch`).
#[allow(clippy::too_many_arguments)]
fn run_node<'s>(
    model: &Model,
    id: NodeId,
    bufs: &[Vec<f32>],
    b: usize,
    out: &mut [f32],
    scratch: &'s mut Scratch,
    masks: Option<&Masks>,
    positive: &BTreeMap<NodeId, Array2<f32>>,
) -> Result<Option<&'s [f32]>> {
    let node = &model.nodes[id];
    let input = |k: usize| bufs[node.inputs[k]].as_slice();
    let in_shape = |k: usize| model.nodes[node.inputs[k]].shape.as_slice();
    match &node.op {
        Op::Input => unreachable!("input is node 0"),
        Op::Dense { kernel, bias, .. } => {
            let (fin, fout) = kernel.dim();
            let rows = b * model.nodes[node.inputs[0]].len() / fin;
            let w = kernel.as_standard_layout();
            matmul(input(0), w.as_slice().unwrap(), out, rows, fin, fout);
            if let (Some(wp), Some(clip)) = (positive.get(&id), masks.and_then(|m| m.nodes.get(&id)).and_then(|m| m.clip_negative.as_ref()))
            {
                let mut alt = vec![0f32; rows * fout];
                matmul(input(0), wp.as_standard_layout().as_slice().unwrap(), &mut alt, rows, fin, fout);
                // The mask's units are per sample (`steps × fout` for a per-step Dense); row r is step r % steps.
                let steps = node.len() / fout;
                for (r, (o, a)) in out.chunks_exact_mut(fout).zip(alt.chunks_exact(fout)).enumerate() {
                    let first = (r % steps) * fout;
                    for j in (0..fout).filter(|&j| clip.contains(first + j)) {
                        o[j] = a[j];
                    }
                }
            }
            add_bias(out, bias.as_slice().unwrap());
        }
        Op::Conv2D { kernel, bias, strides, padding, .. } => {
            let [h, w, cin] = in_shape(0) else { unreachable!() };
            let [kh, kw, _, _] = *kernel.shape() else { unreachable!() };
            let g = padding.geometry(*h, *w, *cin, kh, kw, strides[0], strides[1]).unwrap();
            let k = kernel.as_standard_layout();
            let (il, ol) = (h * w * cin, node.len());
            for s in 0..b {
                conv2d(
                    &g,
                    &input(0)[s * il..][..il],
                    k.as_slice().unwrap(),
                    bias.as_slice().unwrap(),
                    &mut out[s * ol..][..ol],
                    &mut scratch.im2col,
                );
            }
        }
        Op::Pool2D { kind, size, strides, padding } => {
            let [h, w, c] = in_shape(0) else { unreachable!() };
            let g = padding.geometry(*h, *w, *c, size[0], size[1], strides[0], strides[1]).unwrap();
            let (il, ol) = (h * w * c, node.len());
            for s in 0..b {
                pool2d(*kind, &g, &input(0)[s * il..][..il], &mut out[s * ol..][..ol]);
            }
        }
        Op::GlobalPool(kind) => {
            let il = model.nodes[node.inputs[0]].len();
            let c = node.len();
            for s in 0..b {
                global_pool(*kind, &input(0)[s * il..][..il], c, &mut out[s * c..][..c]);
            }
        }
        Op::Flatten | Op::Dropout | Op::Activation(_) => out.copy_from_slice(input(0)),
        Op::PRelu { alpha } => {
            let a = alpha.as_slice().expect("a standard-layout vector");
            for (row_out, row_in) in out.chunks_exact_mut(node.len()).zip(input(0).chunks_exact(node.len())) {
                for (u, (o, &x)) in row_out.iter_mut().zip(row_in).enumerate() {
                    *o = if x > 0.0 { x } else { a[u % a.len()] * x };
                }
            }
        }
        Op::ZeroPad2D { pads: [t, l, _, _] } => {
            let &[h, w, c] = in_shape(0) else { unreachable!("the builder checked an image") };
            let (ow, il, ol) = (node.shape[1], h * w * c, node.len());
            out.fill(0.0);
            for s in 0..b {
                for y in 0..h {
                    let dst = s * ol + ((y + t) * ow + l) * c;
                    out[dst..dst + w * c].copy_from_slice(&input(0)[s * il + y * w * c..][..w * c]);
                }
            }
        }
        Op::Concat => {
            // Row by row: each position's channels from each input in turn.
            let width = *node.shape.last().unwrap();
            let rows = b * node.len() / width;
            let mut at = 0;
            for r in 0..rows {
                for k in 0..node.inputs.len() {
                    let c = *in_shape(k).last().unwrap();
                    out[at..at + c].copy_from_slice(&input(k)[r * c..][..c]);
                    at += c;
                }
            }
        }
        // One pass each (not a copy, then an update in place).
        Op::Add { .. } => {
            out.iter_mut().zip(input(0)).zip(input(1)).for_each(|((o, a), b)| *o = a + b);
            for k in 2..node.inputs.len() {
                out.iter_mut().zip(input(k)).for_each(|(o, v)| *o += v);
            }
        }
        Op::BatchNorm { scale, shift } => {
            let c = scale.len();
            let (scale, shift) = (scale.as_slice().unwrap(), shift.as_slice().unwrap());
            for (o, x) in out.chunks_exact_mut(c).zip(input(0).chunks_exact(c)) {
                for j in 0..c {
                    o[j] = x[j] * scale[j] + shift[j];
                }
            }
        }
        Op::Embedding { table } => {
            let (vocab, d) = table.dim();
            for (&tok, row) in input(0).iter().zip(out.chunks_exact_mut(d)) {
                // Token ids arrive as floats; anything but an integer in range is an error, not a clamp.
                if !(tok >= 0.0 && tok < vocab as f32 && tok.fract() == 0.0) {
                    return Err(Error::invalid(format!(
                        "layer '{}' (Embedding) got token id {tok}; ids must be integers from 0 to {} (its vocabulary has {vocab} entries)",
                        node.name,
                        vocab - 1
                    )));
                }
                row.iter_mut().zip(table.row(tok as usize)).for_each(|(o, v)| *o = *v);
            }
        }
        Op::RepeatVector { times } => {
            let f = model.nodes[node.inputs[0]].len();
            for (o, v) in out.chunks_exact_mut(times * f).zip(input(0).chunks_exact(f)) {
                o.chunks_exact_mut(f).for_each(|step| step.copy_from_slice(v));
            }
        }
        Op::Recurrent(r) => {
            let steps = model.steps(id);
            let mut seq = std::mem::take(&mut scratch.seq);
            seq.clear();
            seq.resize(b * steps * r.units, 0.0);
            let mask = masks.and_then(|m| m.nodes.get(&id));
            let (keep, gate_keep) = (mask.map(|m| &m.keep), mask.and_then(|m| m.gates.as_ref()));
            let gates_out = scratch.gates.as_mut().map(|(g, start)| &mut g[*start..]);
            r.run(input(0), b, steps, keep, gate_keep, &mut seq, gates_out, &mut scratch.cell);
            let u = r.units;
            if r.return_sequences {
                out.copy_from_slice(&seq);
            } else {
                for (o, s) in out.chunks_exact_mut(u).zip(seq.chunks_exact(steps * u)) {
                    o.copy_from_slice(&s[(steps - 1) * u..]);
                }
            }
            scratch.seq = seq;
            return Ok(Some(&scratch.seq));
        }
    }
    Ok(None)
}

/// Reusable buffers of one forward call.
#[derive(Debug, Default)]
struct Scratch {
    im2col: Vec<f32>,
    seq: Vec<f32>,
    cell: CellScratch,
    /// The node's gate record while it runs (taken out of the map) and where this batch starts.
    gates: Option<(Vec<f32>, usize)>,
}

fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

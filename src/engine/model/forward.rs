//! Batched forward pass, optionally with module masks applied and with an
//! activity record of every tracked unit.
//!
//! Memory per call: `batch × Σ_nodes len(node) × 4` bytes of activations (the
//! input and Flatten/Dropout nodes are read in place, see `source`), every
//! Dense kernel once more (packed for the matmul, `kernels::DenseWeights`), plus
//! one im2col buffer (`OH·OW·KH·KW·Cin × 4` bytes for the largest conv), plus
//! for recurrent layers `batch × T × (G+2)·U × 4` bytes of gate and state
//! buffers, plus, when recording, `Σ_tracked units × ⌈N/64⌉ × 8` bytes of bits
//! and `N × Σ_recurrent T·U × 4` bytes of recurrent states (`T·G·U` more
//! per recurrent layer with [`Record::Gates`]). `N × classes`
//! logits and probabilities are returned. With several threads, each has its
//! own activations and buffers, and a wave of `4 × threads` batches' results
//! waits to be joined.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::fuse::{self, Chain, Fusion};
use super::recurrent::Scratch as CellScratch;
use super::*;
use crate::engine::bits::{BitMatrix, BitSet};
use crate::engine::kernels::{
    ConvEpilogue, DenseWeights, Epilogue, conv2d_fused, dense, depthwise2d, global_pool_samples, matmul, pool2d_samples,
};
use crate::engine::parallel;
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
/// for one sample are large; rounded down to whole 6-row blocks of the
/// matmul kernels when that costs under a quarter of it (the MLPs' 38 left 2
/// rows to a slow block: 36 or 42 ran 2–4 % faster).
pub fn batch_size(model: &Model) -> usize {
    let per_sample: usize = (0..model.nodes.len())
        .map(|id| match &model.nodes[id].op {
            // Every step's states, plus one step's gates and states (see `Recurrent::run`).
            Op::Recurrent(r) => model.nodes[id].len() + model.steps(id) * r.units + (2 * r.cell.gates() + 4) * r.units,
            _ => model.nodes[id].len(),
        })
        .sum();
    let batch = (BATCH_BYTES / (4 * per_sample.max(1))).clamp(1, DEFAULT_BATCH);
    if batch >= 4 * BLOCK_ROWS { batch - batch % BLOCK_ROWS } else { batch }
}

/// Rows of A per register block of the x86 matmul and dense kernels.
const BLOCK_ROWS: usize = 6;

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
///
/// Spans of consecutive batches are independent and run in parallel (see
/// [`parallel`]), a wave at a time; their results join the pass's in span
/// order. Spans depend on the model only, and each sums its own samples in
/// order (f64) before the spans' sums are added in span order, so every
/// output is the same for any number of threads (and on the page).
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
    if groups.is_some_and(|g| g.len() != n) {
        return Err(Error::shape("sample groups", format!("{n} group ids"), groups.map_or(0, <[u32]>::len)));
    }
    // Outputs per sample: classes, or steps × classes for a per-step head.
    let c = model.nodes[model.head].len();
    let tracked = if record { model.tracked() } else { vec![] };
    let n_groups = groups.and_then(|g| g.iter().max()).map_or(0, |&g| g as usize + 1);
    let positive = positive_kernels(model, masks);
    let kernels: Vec<_> = model.nodes.iter().map(|node| dense_kernel(&node.op).map(|k| k.as_standard_layout())).collect();
    let pass = Pass {
        model,
        masks,
        tracked: &tracked,
        positive: &positive,
        weights: kernels.iter().map(|k| k.as_ref().map(|k| DenseWeights::new(k.as_slice().unwrap(), k.nrows(), k.ncols()))).collect(),
        source: (0..model.nodes.len()).map(|id| source(model, masks, id)).collect(),
        fusion: fuse::plan(model, masks),
        gates: what == Record::Gates,
        groups: groups.filter(|_| record),
        n_groups,
    };
    let mut all = pass.empty(n, n * c);

    let batch = batch_size(model);
    // At least 64 samples (the CNNs' batches are one sample: a span per batch spent its time
    // handing out work); a recording's 512, in whole words of its bit rows (joining a span
    // costs a pass over every unit's row).
    let span = batch * (if record { 512usize } else { 64 }).div_ceil(batch);
    let spans = n.div_ceil(span);
    // A few spans per thread per wave: enough to balance uneven ones, few enough to
    // bound the memory of recorded results waiting to be joined.
    let wave = if parallel::threads() == 1 { 1 } else { parallel::threads() * if record { 2 } else { 4 } };
    // Buffers outlive waves: allocated once per thread and call, not once per span (the
    // dense models' spans are a fraction of a millisecond, fresh buffers a page fault per page).
    let workers = Mutex::new(Vec::<Worker>::new());
    let mut first = 0;
    while first < spans {
        let count = wave.min(spans - first);
        let parts = parallel::map(count, |i| {
            let start = (first + i) * span;
            let mut w = workers.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
            let part = pass.run(&mut w, x, start, span.min(n - start), batch);
            workers.lock().unwrap_or_else(|e| e.into_inner()).push(w);
            part
        });
        for (i, part) in parts.into_iter().enumerate() {
            let start = (first + i) * span;
            let part = part?;
            let b = part.logits.len() / c.max(1);
            all.join(start, c, part);
            if !progress(start + b, n) {
                return Err(Error::Cancelled);
            }
        }
        first += count;
    }
    let Part { logits, probs, bits, states, gates, moments, .. } = all;
    let recording = record.then(|| Recording {
        bits,
        states: tracked.iter().copied().zip(states).filter_map(|(t, v)| Some((t, v?))).collect(),
        gates: tracked.iter().copied().zip(gates).filter_map(|(t, v)| Some((t, v?))).collect(),
        moments: tracked.iter().copied().zip(moments).filter_map(|(t, v)| Some((t, v?))).collect(),
        nodes: tracked,
    });
    Ok(ForwardOutput { logits, probs, recording })
}

/// Gate activations per sample of recurrent node `t` (`T × G·U`).
fn gate_len(model: &Model, t: NodeId) -> usize {
    match &model.nodes[t].op {
        Op::Recurrent(r) => model.steps(t) * r.cell.gates() * r.units,
        _ => 0,
    }
}

/// What every span of one pass shares.
struct Pass<'a> {
    model: &'a Model,
    masks: Option<&'a Masks>,
    tracked: &'a [NodeId],
    positive: &'a BTreeMap<NodeId, Array2<f32>>,
    /// Per node, a Dense layer's kernel prepared once for every batch.
    weights: Vec<Option<DenseWeights<'a>>>,
    /// Per node, the node whose values it has (see [`source`]).
    source: Vec<NodeId>,
    /// Layers run inside the convolution before them.
    fusion: Fusion,
    /// Record recurrent gates.
    gates: bool,
    /// Per-sample groups of the per-group sums (recordings only), and how many.
    groups: Option<&'a [u32]>,
    n_groups: usize,
}

/// One thread's buffers, reused from batch to batch.
#[derive(Default)]
struct Worker {
    scratch: Scratch,
    bufs: Vec<Vec<f32>>,
}

/// The results of a span of samples, or (joined in span order) of the pass.
/// Per tracked node: activity bits, and where they apply, recurrent states,
/// gate activations and per-group sums.
struct Part {
    logits: Vec<f32>,
    probs: Vec<f32>,
    bits: Vec<BitMatrix>,
    states: Vec<Option<Vec<f32>>>,
    gates: Vec<Option<Vec<f32>>>,
    moments: Vec<Option<Moments>>,
    /// While a span runs: per tracked node, each unit's bits of the current 64 samples.
    word: Vec<Vec<u64>>,
}

impl Part {
    /// Adds span `p`, which starts at sample `start` (`c` outputs per sample).
    fn join(&mut self, start: usize, c: usize, p: Part) {
        let b = p.logits.len() / c.max(1);
        self.logits[start * c..(start + b) * c].copy_from_slice(&p.logits);
        self.probs[start * c..(start + b) * c].copy_from_slice(&p.probs);
        for k in 0..self.bits.len() {
            self.bits[k].or_columns(start, &p.bits[k]);
            for (all, part) in [(&mut self.states[k], &p.states[k]), (&mut self.gates[k], &p.gates[k])] {
                if let (Some(all), Some(part)) = (all, part) {
                    all.extend_from_slice(part);
                }
            }
            if let (Some(m), Some(q)) = (&mut self.moments[k], &p.moments[k]) {
                m.count.iter_mut().zip(&q.count).for_each(|(a, b)| *a += b);
                m.sum.iter_mut().zip(&q.sum).for_each(|(a, b)| *a += b);
                m.sq.iter_mut().zip(&q.sq).for_each(|(a, b)| *a += b);
            }
        }
    }
}

impl Pass<'_> {
    /// Empty results for `n` samples (`outputs` logits).
    fn empty(&self, n: usize, outputs: usize) -> Part {
        let model = self.model;
        let recurrent = |t: NodeId| matches!(model.nodes[t].op, Op::Recurrent(_));
        Part {
            logits: vec![0f32; outputs],
            probs: vec![0f32; outputs],
            bits: self.tracked.iter().map(|&t| BitMatrix::new(model.units(t), n)).collect(),
            states: self.tracked.iter().map(|&t| recurrent(t).then(|| Vec::with_capacity(n * model.units(t)))).collect(),
            gates: self.tracked.iter().map(|&t| (self.gates && recurrent(t)).then(|| Vec::with_capacity(n * gate_len(model, t)))).collect(),
            moments: self
                .tracked
                .iter()
                .map(|&t| (self.groups.is_some() && !recurrent(t)).then(|| Moments::new(self.n_groups, model.units(t))))
                .collect(),
            word: vec![vec![]; self.tracked.len()],
        }
    }

    /// The forward pass over samples `start..start + len` of `x`, in batches of `batch`.
    fn run(&self, w: &mut Worker, x: &[f32], start: usize, len: usize, batch: usize) -> Result<Part> {
        let c = self.model.nodes[self.model.head].len();
        let mut part = self.empty(len, len * c);
        for s in (0..len).step_by(batch) {
            self.batch(w, x, start + s, batch.min(len - s), s, &mut part)?;
        }
        Ok(part)
    }

    /// One batch of `b` samples from sample `first` of `x`; its results go
    /// to `part` from sample `at` on.
    fn batch(&self, w: &mut Worker, x: &[f32], first: usize, b: usize, at: usize, part: &mut Part) -> Result<()> {
        let model = self.model;
        let (in_len, c) = (model.input_len(), model.nodes[model.head].len());
        let Worker { scratch, bufs } = w;
        bufs.resize(model.nodes.len(), Vec::new());
        let x = &x[first * in_len..(first + b) * in_len];
        for id in 1..model.nodes.len() {
            if self.source[id] != id || self.fusion.absorbed[id] {
                continue;
            }
            let mut out = std::mem::take(&mut bufs[id]);
            let node = &model.nodes[id];
            // Not cleared: every op overwrites all of its output (zero-filling every layer's
            // buffer was a pass over all activations per batch).
            out.resize(b * node.len(), 0.0);
            let k = self.tracked.iter().position(|&t| t == id);
            scratch.gates = k.and_then(|k| part.gates[k].as_ref()).map(|_| vec![0.0; b * gate_len(model, id)]);
            let values = Values { x, bufs, source: &self.source };
            let seq = self.run_node(id, &values, b, &mut out, scratch)?;
            if id == model.head {
                part.logits[at * c..(at + b) * c].copy_from_slice(&out);
            }
            if let Some(a) = node.op.activation().filter(|_| !fused_relu(model, self.masks, id) && !self.fusion.relu_done(id)) {
                a.apply(&mut out, *node.shape.last().unwrap());
            }
            if let (Some(m), None) = (self.masks.and_then(|m| m.nodes.get(&id)), seq) {
                apply_keep(&mut out, node.len(), &m.keep);
            }
            if let Some(k) = k {
                // A recurrent layer's units are its states at every step.
                let units = seq.unwrap_or(&out);
                let len = model.units(id);
                let mut sums = part.moments[k].as_mut();
                let word = &mut part.word[k];
                word.resize(len, 0);
                for (s, row) in units.chunks_exact(len).enumerate() {
                    // Each unit's bits of 64 consecutive samples gather in one word, written to
                    // its row once they are complete (a bit at a time, every sample wrote to
                    // every unit's row: a cache line per unit, the pass's largest cost after conv).
                    let col = at + s;
                    word.iter_mut().zip(row).for_each(|(w, &v)| *w |= ((v > 0.0) as u64) << (col % 64));
                    if col % 64 == 63 || col + 1 == part.bits[k].cols() {
                        word.iter_mut().enumerate().for_each(|(u, w)| part.bits[k].or_word(u, col / 64, std::mem::take(w)));
                    }
                    if let (Some(m), Some(g)) = (sums.as_deref_mut(), self.groups) {
                        let g = g[first + s] as usize;
                        m.count[g] += 1;
                        let (sum, sq) = (&mut m.sum[g * len..(g + 1) * len], &mut m.sq[g * len..(g + 1) * len]);
                        // Only active units count; adding +0 for the others leaves every sum as it was
                        // (sums start at +0), without a branch.
                        for ((a, b), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(row) {
                            let v = if v > 0.0 { v } else { 0.0 };
                            *a += v as f64;
                            *b += (v * v) as f64;
                        }
                    }
                }
                if let Some(st) = &mut part.states[k] {
                    st.extend_from_slice(units);
                }
                if let (Some(all), Some(g)) = (&mut part.gates[k], scratch.gates.take()) {
                    all.extend_from_slice(&g);
                }
            }
            bufs[id] = out;
        }
        let last = Values { x, bufs, source: &self.source }.of(model.nodes.len() - 1);
        part.probs[at * c..(at + b) * c].copy_from_slice(last);
        Ok(())
    }
}

/// One batch's values of every node computed so far.
struct Values<'b> {
    /// The batch's inputs (node 0), read in place.
    x: &'b [f32],
    bufs: &'b [Vec<f32>],
    source: &'b [NodeId],
}

impl<'b> Values<'b> {
    fn of(&self, id: NodeId) -> &'b [f32] {
        match self.source[id] {
            0 => self.x,
            s => &self.bufs[s],
        }
    }
}

/// The node whose values node `id` has: its input's source for a Flatten or
/// Dropout (they only reshape; each copied the batch's inputs in a dense
/// model, as long as its matmul took to read them) unless it is masked or
/// the head, else itself.
fn source(model: &Model, masks: Option<&Masks>, id: NodeId) -> NodeId {
    let node = &model.nodes[id];
    let masked = masks.is_some_and(|m| m.nodes.contains_key(&id));
    match node.op {
        Op::Flatten | Op::Dropout if !masked && id != model.head && id + 1 != model.nodes.len() => source(model, masks, node.inputs[0]),
        _ => id,
    }
}

fn dense_kernel(op: &Op) -> Option<&Array2<f32>> {
    match op {
        Op::Dense { kernel, .. } => Some(kernel),
        _ => None,
    }
}

/// Whether Dense node `id` applies its ReLU in the matmul's output write: not
/// the head (its logits are the pre-activations) nor a layer whose mask
/// clips negative weights (its outputs are patched between product and bias).
fn fused_relu(model: &Model, masks: Option<&Masks>, id: NodeId) -> bool {
    matches!(model.nodes[id].op, Op::Dense { activation: Activation::Relu, .. }) && id != model.head && clip_of(masks, id).is_none()
}

fn clip_of(masks: Option<&Masks>, id: NodeId) -> Option<&BitSet> {
    masks.and_then(|m| m.nodes.get(&id)).and_then(|m| m.clip_negative.as_ref())
}

fn apply_keep(out: &mut [f32], len: usize, keep: &BitSet) {
    // A word of the mask at a time: most words keep all or none of their 64 units.
    for row in out.chunks_exact_mut(len) {
        for (chunk, &w) in row.chunks_mut(64).zip(keep.words()) {
            match w {
                u64::MAX => {}
                0 => chunk.fill(0.0),
                _ => {
                    // Only the removed units (a pruned conv channel clears one bit in every C).
                    let mut z = !w & (u64::MAX >> (64 - chunk.len()));
                    while z != 0 {
                        chunk[z.trailing_zeros() as usize] = 0.0;
                        z &= z - 1;
                    }
                }
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

impl Pass<'_> {
    /// Computes node `id`'s pre-activation output for a batch of `b` samples
    /// (a Dense layer's ReLU too, when [`fused_relu`]).
    /// A recurrent node applies its mask itself and returns its states at every
    /// step (`b × T × U`, in `scratch`).
    fn run_node<'s>(&self, id: NodeId, values: &Values, b: usize, out: &mut [f32], scratch: &'s mut Scratch) -> Result<Option<&'s [f32]>> {
        let (model, masks) = (self.model, self.masks);
        let node = &model.nodes[id];
        let input = |k: usize| values.of(node.inputs[k]);
        let in_shape = |k: usize| model.nodes[node.inputs[k]].shape.as_slice();
        if let Some(chain) = &self.fusion.chains[id] {
            self.conv(chain, values, b, out, scratch);
            return Ok(None);
        }
        match &node.op {
            Op::Input => unreachable!("input is node 0"),
            Op::Dense { kernel, bias, .. } => {
                let (fin, fout) = kernel.dim();
                let rows = b * model.nodes[node.inputs[0]].len() / fin;
                let w = self.weights[id].as_ref().expect("a Dense node's weights");
                let bias = bias.as_slice().unwrap();
                let clip = clip_of(masks, id);
                let Some((wp, clip)) = self.positive.get(&id).zip(clip) else {
                    dense(input(0), w, out, rows, Epilogue { bias: Some(bias), relu: fused_relu(model, masks, id) });
                    return Ok(None);
                };
                dense(input(0), w, out, rows, Epilogue::default());
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
                add_bias(out, bias);
            }
            Op::Conv2D { .. } => self.conv(&Chain { conv: id, affine: None, residual: None, relu: false }, values, b, out, scratch),
            Op::DepthwiseConv2D { kernel, bias, strides, padding, .. } => {
                let [h, w, c] = in_shape(0) else { unreachable!() };
                let [kh, kw, _, mult] = *kernel.shape() else { unreachable!() };
                let g = padding.geometry(*h, *w, *c, kh, kw, strides[0], strides[1]).unwrap();
                let k = kernel.as_standard_layout();
                let (il, ol) = (h * w * c, node.len());
                for s in 0..b {
                    depthwise2d(
                        &g,
                        mult,
                        &input(0)[s * il..][..il],
                        k.as_slice().unwrap(),
                        bias.as_slice().unwrap(),
                        &mut out[s * ol..][..ol],
                    );
                }
            }
            Op::Pool2D { kind, size, strides, padding } => {
                let [h, w, c] = in_shape(0) else { unreachable!() };
                let g = padding.geometry(*h, *w, *c, size[0], size[1], strides[0], strides[1]).unwrap();
                pool2d_samples(*kind, &g, &input(0)[..b * h * w * c], &mut out[..b * node.len()]);
            }
            Op::GlobalPool(kind) => {
                let il = model.nodes[node.inputs[0]].len();
                global_pool_samples(*kind, &input(0)[..b * il], il, node.len(), &mut out[..b * node.len()]);
            }
            Op::Flatten | Op::Reshape { .. } | Op::Dropout | Op::Activation(_) => out.copy_from_slice(input(0)),
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
            Op::Multiply => out.iter_mut().zip(input(0)).zip(input(1)).for_each(|((o, a), b)| *o = a * b),
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
                let gates_out = scratch.gates.as_deref_mut();
                r.run(input(0), b, steps, keep, gate_keep, &mut seq, gates_out, &mut scratch.cell);
                let u = r.units;
                if r.return_sequences {
                    out.copy_from_slice(&seq);
                } else {
                    for (o, s) in out.chunks_exact_mut(u).zip(seq.chunks_exact(steps * u)) {
                        o.copy_from_slice(&s[r.last_step(steps) * u..][..u]);
                    }
                }
                scratch.seq = seq;
                return Ok(Some(&scratch.seq));
            }
        }
        Ok(None)
    }
}

impl Pass<'_> {
    /// A convolution and the layers its chain takes (see [`fuse`]) for a batch of `b` samples.
    fn conv(&self, chain: &Chain, values: &Values, b: usize, out: &mut [f32], scratch: &mut Scratch) {
        let model = self.model;
        let node = &model.nodes[chain.conv];
        let Op::Conv2D { kernel, bias, strides, padding, .. } = &node.op else { unreachable!("a chain starts at a Conv2D") };
        let input = values.of(node.inputs[0]);
        let &[h, w, cin] = model.nodes[node.inputs[0]].shape.as_slice() else { unreachable!("the builder checked an image") };
        let [kh, kw, _, _] = *kernel.shape() else { unreachable!() };
        let g = padding.geometry(h, w, cin, kh, kw, strides[0], strides[1]).unwrap();
        let k = kernel.as_standard_layout();
        let affine = chain.affine.map(|bn| match &model.nodes[bn].op {
            Op::BatchNorm { scale, shift } => (scale.as_slice().unwrap(), shift.as_slice().unwrap()),
            _ => unreachable!("a chain's affine is a BatchNorm"),
        });
        let residual = chain.residual.map(|r| values.of(r));
        let (il, ol) = (h * w * cin, node.len());
        for s in 0..b {
            let epi = ConvEpilogue { affine, residual: residual.map(|r| &r[s * ol..][..ol]), relu: chain.relu };
            let (k, bias) = (k.as_slice().unwrap(), bias.as_slice().unwrap());
            conv2d_fused(&g, &input[s * il..][..il], k, bias, &mut out[s * ol..][..ol], &mut scratch.im2col, &epi);
        }
    }
}

/// Reusable buffers of one forward call.
#[derive(Debug, Default)]
struct Scratch {
    im2col: Vec<f32>,
    seq: Vec<f32>,
    cell: CellScratch,
    /// The batch's gate record of the recurrent node that runs, when recorded.
    gates: Option<Vec<f32>>,
}

fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

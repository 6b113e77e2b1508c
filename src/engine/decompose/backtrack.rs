//! Backtracking after channeling (ICSE'22 §3.4, Alg. 2 MC-BLN and Alg. 3
//! MC-BI), on a module's masks. Two parts:
//!
//! 1. **The δ rule** (MC-BLN and MC-BI) walks back from the channeled head
//!    through the Dense layers. At the layer feeding the head, a unit is
//!    removed when it pushes *against* the concern and *for* the unconcerned
//!    output: `w_c ≤ −δ` and `w_uc ≥ +δ` (`w_uc` = the channeled mean of the
//!    other columns). Alg. 2 line 5 as printed has the two signs the other way
//!    round, which would remove the units that most support the concern and
//!    contradicts the prose ("nodes that only participate in identifying the
//!    unconcerned classes"); we read it as a swapped vc/vuc. Further back a
//!    unit is removed when it has at least one strong edge (`|w| ≥ δ`) and all
//!    its strong edges lead to units the module does not keep ("nodes only
//!    connected to removed nodes", lines 8–14). Units removed at a Flatten are
//!    mapped back to the layer before it: a pooled unit to its whole window,
//!    a global-average channel to all its positions, an un-activated Add to
//!    both inputs (lines 15–25) — the first tracked layer on the way is masked.
//! 2. **Dead-unit elimination**: a unit whose value cannot reach any kept unit
//!    (every consumer position it feeds is removed, or its weights to the
//!    live ones are all 0) is removed as well. This never changes a module's
//!    scores; it makes the module smaller. MC-BLN stops at the last
//!    convolution (conv outputs are pruned, conv inputs are not); MC-BI goes
//!    on through every convolution to the input (Alg. 3: an input position
//!    is inactive when every output position its sliding windows feed is
//!    inactive, padding excluded).

use crate::engine::bits::BitSet;
use crate::engine::model::{Masks, Model, NodeId, Op};

/// Which modularisation of the concern (ALGORITHMS.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)] // the CLI's --mode/--technique/--head
#[serde(rename_all = "kebab-case")]
pub enum Technique {
    /// Channeling only (MC).
    Mc,
    /// MC + backtracking through the Dense layers to the last convolution.
    McBln,
    /// MC-BLN + backtracking through the convolutions to the input.
    McBi,
}

impl Technique {
    pub fn name(self) -> &'static str {
        match self {
            Technique::Mc => "mc",
            Technique::McBln => "mc-bln",
            Technique::McBi => "mc-bi",
        }
    }
}

/// Applies `technique` to the masks of the module of class `class`.
pub fn backtrack(model: &Model, class: usize, masks: &mut Masks, technique: Technique, delta: f32) {
    if technique == Technique::Mc {
        return;
    }
    delta_rule(model, class, masks, delta);
    eliminate_dead(model, masks, technique == Technique::McBi);
}

/// Skips layers that pass values through unchanged (Dropout at inference).
fn through_identity(model: &Model, mut id: NodeId) -> NodeId {
    while let (Op::Dropout, Some(&i)) = (&model.nodes[id].op, model.nodes[id].inputs.first()) {
        id = i;
    }
    id
}

fn delta_rule(model: &Model, class: usize, masks: &mut Masks, delta: f32) {
    let head = &model.nodes[model.head];
    let (Op::Dense { kernel, .. }, true) = (&head.op, head.len() == model.classes()) else { return };
    let classes = kernel.ncols();
    if classes < 2 {
        return;
    }
    let mut cur = through_identity(model, head.inputs[0]);
    let mut removed: Vec<usize> = (0..kernel.nrows())
        .filter(|&i| {
            let w_c = kernel[[i, class]];
            let w_uc = (kernel.row(i).sum() - w_c) / (classes - 1) as f32;
            w_c <= -delta && w_uc >= delta
        })
        .collect();
    loop {
        force_zero(model, cur, &removed, masks);
        let node = &model.nodes[cur];
        let Op::Dense { kernel, .. } = &node.op else { return };
        if node.len() != kernel.ncols() {
            return; // a per-step Dense: its units are per time step
        }
        let kept = |j: usize| masks.nodes.get(&cur).is_none_or(|m| m.keep.contains(j));
        let prev = through_identity(model, node.inputs[0]);
        removed = (0..kernel.nrows())
            .filter(|&i| {
                let mut strong = kernel.row(i).into_iter().enumerate().filter(|(_, w)| w.abs() >= delta).peekable();
                strong.peek().is_some() && strong.all(|(j, _)| !kept(j))
            })
            .collect();
        cur = prev;
    }
}

/// Forces the outputs `units` of node `id` to 0 in the module: masks them
/// at `id` when it is tracked, else at the first tracked layer behind it that
/// determines them (Flatten 1:1, a pooled unit → its window, a global-average
/// channel → its positions, an un-activated Add → both inputs).
fn force_zero(model: &Model, id: NodeId, units: &[usize], masks: &mut Masks) {
    if units.is_empty() {
        return;
    }
    let node = &model.nodes[id];
    if let Op::Recurrent(_) = node.op {
        return; // its mask is per time step; the rule speaks of a state
    }
    if let Some(m) = masks.nodes.get_mut(&id) {
        units.iter().for_each(|&u| m.keep.remove(u));
        return;
    }
    match &node.op {
        Op::Flatten | Op::Reshape { .. } | Op::Dropout => force_zero(model, node.inputs[0], units, masks),
        Op::Add { activation: crate::engine::model::Activation::Linear } => {
            node.inputs.iter().for_each(|&i| force_zero(model, i, units, masks))
        }
        Op::Pool2D { .. } => {
            let Some(g) = window(model, id) else { return };
            let c = g.cin;
            let mut taps = BitSet::new(g.h * g.w * c);
            for &u in units {
                let (p, ch) = (u / c, u % c);
                for dy in 0..g.kh {
                    for dx in 0..g.kw {
                        if let Some((y, x)) = g.tap(p / g.ow, p % g.ow, dy, dx) {
                            taps.insert((y * g.w + x) * c + ch);
                        }
                    }
                }
            }
            force_zero(model, node.inputs[0], &taps.iter().collect::<Vec<_>>(), masks);
        }
        Op::GlobalPool(_) => {
            let c = node.len();
            let positions = model.nodes[node.inputs[0]].len() / c;
            let all: Vec<usize> = (0..positions).flat_map(|p| units.iter().map(move |&ch| p * c + ch)).collect();
            force_zero(model, node.inputs[0], &all, masks);
        }
        // Padding zeros stay zeros; the rest is the input's (each part's, for a concatenation).
        Op::ZeroPad2D { .. } | Op::Concat => {
            for (k, &src) in node.inputs.iter().enumerate() {
                let from: Vec<usize> = units.iter().filter_map(|&u| model.route(id, u)).filter(|&(j, _)| j == k).map(|(_, v)| v).collect();
                force_zero(model, src, &from, masks);
            }
        }
        // Anything else (BatchNorm's shift, a linear Dense's bias) does not map 0 to 0.
        _ => {}
    }
}

/// The window sweep of a Conv2D, DepthwiseConv2D or Pool2D node over its input.
fn window(model: &Model, id: NodeId) -> Option<crate::engine::kernels::Conv2dGeom> {
    let node = &model.nodes[id];
    let [h, w, c] = model.nodes[node.inputs[0]].shape[..] else { return None };
    match &node.op {
        Op::Conv2D { kernel, strides, padding, .. } | Op::DepthwiseConv2D { kernel, strides, padding, .. } => {
            padding.geometry(h, w, c, kernel.shape()[0], kernel.shape()[1], strides[0], strides[1])
        }
        Op::Pool2D { size, strides, padding, .. } => padding.geometry(h, w, c, size[0], size[1], strides[0], strides[1]),
        _ => None,
    }
}

/// Dead-unit elimination, from the head back to the input: `live[id]` holds
/// the positions of node `id`'s output that some kept unit depends on.
fn eliminate_dead(model: &Model, masks: &mut Masks, through_conv: bool) {
    let n = model.nodes.len();
    let mut consumers: Vec<Vec<NodeId>> = vec![vec![]; n];
    for (k, node) in model.nodes.iter().enumerate() {
        node.inputs.iter().for_each(|&i| consumers[i].push(k));
    }
    // `needed[id]`: positions of node id's *computed* value that matter (its
    // live outputs minus those the module forces to 0); `None` = unknown
    // (taken as all). The head needs all its outputs.
    let mut needed: Vec<Option<BitSet>> = vec![None; n];
    needed[model.head] = Some(BitSet::full(model.nodes[model.head].len()));
    for id in (1..model.head).rev() {
        // Removing a recurrent unit at one step also changes later steps.
        if matches!(model.nodes[id].op, Op::Recurrent(_)) {
            continue;
        }
        let len = model.nodes[id].len();
        let mut live = BitSet::new(len);
        let mut known = !consumers[id].is_empty();
        for &k in &consumers[id] {
            match live_inputs(model, k, id, needed[k].as_ref(), through_conv) {
                Some(l) => live.union_with(&l),
                None => known = false,
            }
        }
        if !known {
            continue; // a consumer we cannot see through needs everything
        }
        needed[id] = Some(match masks.nodes.get_mut(&id) {
            Some(m) => {
                let dead: Vec<usize> = m.keep.iter().filter(|&u| !live.contains(u)).collect();
                dead.into_iter().for_each(|u| m.keep.remove(u));
                m.keep.clone()
            }
            None => live,
        });
    }
}

/// The positions of `src`'s output that consumer `k` reads for its needed
/// positions, or `None` when `k` is opaque here (the head, recurrent layers,
/// convolutions under MC-BLN).
fn live_inputs(model: &Model, k: NodeId, src: NodeId, needed: Option<&BitSet>, through_conv: bool) -> Option<BitSet> {
    let needed = needed?;
    let node = &model.nodes[k];
    let in_len = model.nodes[src].len();
    let mut live = BitSet::new(in_len);
    match &node.op {
        Op::Flatten
        | Op::Reshape { .. }
        | Op::Dropout
        | Op::Activation(_)
        | Op::PRelu { .. }
        | Op::BatchNorm { .. }
        | Op::Add { .. }
        | Op::Multiply => live.union_with(needed),
        Op::Dense { kernel, .. } if node.len() == kernel.ncols() => {
            for i in 0..kernel.nrows() {
                if needed.iter().any(|j| kernel[[i, j]] != 0.0) {
                    live.insert(i);
                }
            }
        }
        Op::GlobalPool(_) => {
            let c = node.len();
            (0..in_len).filter(|&u| needed.contains(u % c)).for_each(|u| live.insert(u));
        }
        Op::ZeroPad2D { .. } | Op::Concat => {
            for (j, v) in needed.iter().filter_map(|u| model.route(k, u)) {
                if node.inputs[j] == src {
                    live.insert(v);
                }
            }
        }
        Op::Pool2D { .. } => {
            let g = window(model, k)?;
            let c = g.cin;
            for u in needed.iter() {
                let (p, ch) = (u / c, u % c);
                for dy in 0..g.kh {
                    for dx in 0..g.kw {
                        if let Some((y, x)) = g.tap(p / g.ow, p % g.ow, dy, dx) {
                            live.insert((y * g.w + x) * c + ch);
                        }
                    }
                }
            }
        }
        Op::Conv2D { kernel, .. } if through_conv => {
            let g = window(model, k)?;
            let (cin, cout) = (g.cin, kernel.shape()[3]);
            let mut positions = BitSet::new(g.oh * g.ow);
            needed.iter().for_each(|u| positions.insert(u / cout));
            for p in positions.iter() {
                for dy in 0..g.kh {
                    for dx in 0..g.kw {
                        if let Some((y, x)) = g.tap(p / g.ow, p % g.ow, dy, dx) {
                            (0..cin).for_each(|ch| live.insert((y * g.w + x) * cin + ch));
                        }
                    }
                }
            }
        }
        // Output channel c·M + m reads input channel c only.
        Op::DepthwiseConv2D { kernel, .. } if through_conv => {
            let g = window(model, k)?;
            let (cin, mult) = (g.cin, kernel.shape()[3]);
            for u in needed.iter() {
                let (p, ch) = (u / (cin * mult), u % (cin * mult) / mult);
                for dy in 0..g.kh {
                    for dx in 0..g.kw {
                        if let Some((y, x)) = g.tap(p / g.ow, p % g.ow, dy, dx) {
                            live.insert((y * g.w + x) * cin + ch);
                        }
                    }
                }
            }
        }
        _ => return None,
    }
    Some(live)
}

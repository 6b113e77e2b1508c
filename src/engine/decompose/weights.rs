//! How many of the model's kernel weights a module keeps effective
//! ([`kept_weights`]): a weight counts while it can still change a kept
//! unit's value. A removed unit is forced to 0 after its activation, so a
//! weight is dead when what it reads is 0 at every position of every sample
//! ([`zero`]) or when everything its output channel reaches is removed
//! ([`live`]). Both trace a channel through the layers that keep channels
//! apart (BatchNorm, activations, pooling, padding, residual sums, concat)
//! and stop, counting the weight as kept, wherever they are unsure.

use super::{Module, input_kept, relevance};
use crate::engine::model::{Activation, Model, NodeId, Op};

/// Share of the model's kernel weights a module keeps effective (non-zero):
/// a Dense weight survives when its input unit and output unit are kept and it
/// is not a clipped negative; a Conv2D (or depthwise) weight when its output
/// channel is [`live`] and its input channel not always [`zero`]; a recurrent
/// weight (input or recurrent kernel, all gates) when its unit, its gate
/// column and its input are kept, averaged over the time steps. The head
/// counts its two channeled columns over kept inputs.
pub fn kept_weights(model: &Model, module: &Module) -> f32 {
    let (mut kept, mut total) = (0usize, 0usize);
    // A Dense kernel without a mask of its own whose units a tracked activation after it owns
    // (relevance::kernel_of) keeps the units that activation keeps.
    let owner: std::collections::BTreeMap<NodeId, NodeId> = module
        .masks
        .nodes
        .keys()
        .filter_map(|&t| relevance::kernel_of(model, t).filter(|&k| k != t && !module.masks.nodes.contains_key(&k)).map(|k| (k, t)))
        .collect();
    for (id, node) in model.nodes.iter().enumerate() {
        let mask_node = owner.get(&id).copied().unwrap_or(id);
        let unit_kept = |u: usize| module.masks.nodes.get(&mask_node).is_none_or(|m| m.keep.contains(u));
        let src = node.inputs.first().copied();
        match &node.op {
            Op::Dense { kernel, .. } => {
                let (fin, fout) = kernel.dim();
                total += kernel.len();
                let src = node.inputs[0];
                let in_kept = |i: usize| input_kept(model, module, src, i, None) && !zero(model, module, src, i);
                let live_in: Vec<bool> = (0..fin).map(in_kept).collect();
                if id == model.head {
                    kept += live_in.iter().filter(|&&l| l).count() * 2;
                    continue;
                }
                let clip = module.masks.nodes.get(&id).and_then(|m| m.clip_negative.as_ref());
                for j in (0..fout).filter(|&j| unit_kept(j)) {
                    let clipped = clip.is_some_and(|c| c.contains(j));
                    kept += (0..fin).filter(|&i| live_in[i] && !(clipped && kernel[[i, j]] < 0.0) && kernel[[i, j]] != 0.0).count();
                }
            }
            Op::Conv2D { kernel, .. } => {
                total += kernel.len();
                let [kh, kw, cin, cout] = [kernel.shape()[0], kernel.shape()[1], kernel.shape()[2], kernel.shape()[3]];
                let live_in = (0..cin).filter(|&ch| src.is_none_or(|s| !zero(model, module, s, ch))).count();
                let live_out = (0..cout).filter(|&ch| live(model, module, id, ch)).count();
                kept += kh * kw * live_in * live_out;
            }
            // A depthwise output channel c·M + m has its own kh·kw weights, reading input channel c.
            Op::DepthwiseConv2D { kernel, .. } => {
                total += kernel.len();
                let (cout, mult) = (kernel.shape()[2] * kernel.shape()[3], kernel.shape()[3]);
                let reads = |ch: usize| src.is_none_or(|s| !zero(model, module, s, ch / mult));
                let live_out = (0..cout).filter(|&ch| reads(ch) && live(model, module, id, ch)).count();
                kept += live_out * (kernel.len() / cout);
            }
            Op::Recurrent(r) => {
                let (steps, u, g, f) = (model.steps(id), r.units, r.cell.gates(), r.kernel.nrows());
                total += r.kernel.len() + r.recurrent.len();
                let gates = module.masks.nodes.get(&id).and_then(|m| m.gates.as_ref());
                let per_step: usize = (0..steps)
                    .map(|t| {
                        let units = (0..u).filter(|&n| unit_kept(t * u + n)).count();
                        let columns = match gates {
                            Some(k) => (0..g * u).filter(|&c| unit_kept(t * u + c % u) && k.contains(t * g * u + c)).count(),
                            None => units * g,
                        };
                        let live_in = (0..f).filter(|&i| input_kept(model, module, node.inputs[0], i, Some(t))).count();
                        columns * (live_in + units)
                    })
                    .sum();
                kept += per_step / steps;
            }
            _ => {}
        }
    }
    kept as f32 / total.max(1) as f32
}

/// Does the module remove channel `ch` (last axis) of `node`'s output at every position?
fn removed(model: &Model, module: &Module, node: NodeId, ch: usize) -> Option<bool> {
    let m = module.masks.nodes.get(&node)?;
    let channels = *model.nodes[node].shape.last().unwrap_or(&1);
    Some((0..m.keep.len() / channels.max(1)).all(|p| !m.keep.contains(p * channels + ch)))
}

/// Does layer `op` map channel `ch` of its input to channel `ch` of its output,
/// position by position or pooled (and nothing else into it)?
fn keeps_channels(model: &Model, from: NodeId, to: NodeId) -> bool {
    let same = model.nodes[from].shape.last() == model.nodes[to].shape.last();
    let elementwise = matches!(
        model.nodes[to].op,
        Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::PRelu { .. }
            | Op::Dropout
            | Op::Pool2D { .. }
            | Op::GlobalPool(_)
            | Op::ZeroPad2D { .. }
            | Op::Reshape { .. }
            | Op::Add { .. }
    );
    same && elementwise
}

/// Can channel `ch` of `node`'s output reach a kept unit? No when the
/// module removes it at every position, or when every layer reading it
/// passes it on (channel by channel) only to removed channels — a conv
/// feeding a residual sum whose activation drops the channel. Anything else
/// (a conv, a Dense, a Flatten, the model's output) reads it.
fn live(model: &Model, module: &Module, node: NodeId, ch: usize) -> bool {
    if let Some(gone) = removed(model, module, node, ch) {
        return !gone;
    }
    let readers: Vec<NodeId> = (0..model.nodes.len()).filter(|&k| model.nodes[k].inputs.contains(&node)).collect();
    readers.is_empty()
        || readers.into_iter().any(|k| match model.nodes[k].op {
            Op::Concat => offsets(model, k).into_iter().any(|(input, at)| input == node && live(model, module, k, at + ch)),
            _ if keeps_channels(model, node, k) => live(model, module, k, ch),
            _ => true,
        })
}

/// Is channel `ch` of `node`'s output 0 at every position for every sample?
/// Yes when the module removes it, or when it is made from channels that are
/// by layers that keep 0 at 0: a ReLU (or any activation with `f(0) = 0`),
/// pooling, padding, a sum of zeros, a BatchNorm without shift on that channel.
fn zero(model: &Model, module: &Module, node: NodeId, ch: usize) -> bool {
    if let Some(gone) = removed(model, module, node, ch) {
        return gone;
    }
    let n = &model.nodes[node];
    let zero_at_zero = |a: Activation| a != Activation::Softmax && a.at(0.0) == 0.0;
    let through = |input: NodeId| keeps_channels(model, input, node) && zero(model, module, input, ch);
    match &n.op {
        Op::BatchNorm { shift, .. } => shift.get(ch) == Some(&0.0) && through(n.inputs[0]),
        Op::Activation(a) => zero_at_zero(*a) && through(n.inputs[0]),
        Op::Add { activation } => zero_at_zero(*activation) && n.inputs.iter().all(|&i| through(i)),
        Op::PRelu { .. } | Op::Dropout | Op::Pool2D { .. } | Op::GlobalPool(_) | Op::ZeroPad2D { .. } | Op::Reshape { .. } => {
            through(n.inputs[0])
        }
        // Flatten copies `[.., C]` in order: its unit `ch` is channel `ch mod C` of its input.
        Op::Flatten => {
            let c = *model.nodes[n.inputs[0]].shape.last().unwrap_or(&1);
            zero(model, module, n.inputs[0], ch % c.max(1))
        }
        Op::Concat => offsets(model, node)
            .into_iter()
            .find(|&(i, at)| (at..at + model.nodes[i].shape.last().copied().unwrap_or(1)).contains(&ch))
            .is_some_and(|(i, at)| zero(model, module, i, ch - at)),
        _ => false,
    }
}

/// A Concat's inputs with the channel each starts at.
fn offsets(model: &Model, concat: NodeId) -> Vec<(NodeId, usize)> {
    let mut at = 0;
    model.nodes[concat]
        .inputs
        .iter()
        .map(|&i| {
            let start = at;
            at += model.nodes[i].shape.last().copied().unwrap_or(1);
            (i, start)
        })
        .collect()
}

/// Per tracked node (`tracked`, the nodes with recorded moments): the share
/// of the model's kernel weights in the convolutions that write or read its
/// channels — a conv's output channels belong to the first tracked node they
/// reach through layers that keep channels apart (BatchNorm, activation,
/// residual sum, …), its input channels to the tracked nodes they come from.
/// These are the weights that go with the node's whole channels.
pub(super) fn channel_weights(model: &Model, tracked: &[NodeId]) -> std::collections::BTreeMap<NodeId, f64> {
    let mut held: std::collections::BTreeMap<NodeId, usize> = tracked.iter().map(|&t| (t, 0)).collect();
    let mut total = 0usize;
    for (id, node) in model.nodes.iter().enumerate() {
        let n = match &node.op {
            Op::Dense { kernel, .. } => kernel.len(),
            Op::Recurrent(r) => r.kernel.len() + r.recurrent.len(),
            Op::Conv2D { kernel, .. } | Op::DepthwiseConv2D { kernel, .. } => kernel.len(),
            _ => 0,
        };
        total += n;
        if !matches!(node.op, Op::Conv2D { .. } | Op::DepthwiseConv2D { .. }) {
            continue;
        }
        let mut owners = std::collections::BTreeSet::new();
        writes(model, tracked, id, &mut owners);
        node.inputs.iter().for_each(|&i| reads(model, tracked, i, &mut owners));
        owners.into_iter().for_each(|t| *held.entry(t).or_default() += n);
    }
    held.into_iter().map(|(t, n)| (t, n as f64 / total.max(1) as f64)).collect()
}

/// The tracked nodes `node`'s channels reach first, channel by channel (`node` itself when tracked).
fn writes(model: &Model, tracked: &[NodeId], node: NodeId, out: &mut std::collections::BTreeSet<NodeId>) {
    if tracked.contains(&node) {
        out.insert(node);
        return;
    }
    for k in (0..model.nodes.len()).filter(|&k| model.nodes[k].inputs.contains(&node) && keeps_channels(model, node, k)) {
        writes(model, tracked, k, out);
    }
}

/// The tracked nodes `node`'s channels come from, channel by channel.
fn reads(model: &Model, tracked: &[NodeId], node: NodeId, out: &mut std::collections::BTreeSet<NodeId>) {
    if tracked.contains(&node) {
        out.insert(node);
        return;
    }
    for &i in model.nodes[node].inputs.iter().filter(|&&i| keeps_channels(model, i, node)) {
        reads(model, tracked, i, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bits::BitSet;
    use crate::engine::model::{Masks, UnitMask};

    use super::super::tests::tiny_residual as residual;

    /// A module of class 0 that removes `channel` of `node` at all 9 positions.
    fn without(node: NodeId, channel: usize) -> Module {
        let keep = BitSet::from_indices(18, (0..18).filter(|u| u % 2 != channel));
        let masks = Masks { nodes: [(node, UnitMask { keep, clip_negative: None, gates: None })].into() };
        let (kept_units, total_units) = masks.unit_counts();
        Module { class: 0, head: Default::default(), masks, concerned: 1, unconcerned: 1, kept_units, total_units, calibration: None }
    }

    #[test]
    fn a_conv_feeding_a_sum_whose_activation_drops_a_channel_loses_that_channel() {
        let (m, [_, _, c2, r2]) = residual([0.0, 0.0]);
        let module = without(r2, 1);
        assert!(!live(&m, &module, c2, 1) && live(&m, &module, c2, 0));
        // c1 keeps its 4 (r1 and c2 still read both its channels), c2 2 of 4 (output channel 1
        // reaches only the removed channel), the head 2 channeled columns over 1 live input.
        assert_eq!(kept_weights(&m, &module), (4.0 + 2.0 + 2.0) / 12.0);
    }

    #[test]
    fn a_conv_reading_a_removed_channel_loses_its_weights() {
        let (m, [c1, r1, _, _]) = residual([0.0, 0.0]);
        // r1 drops channel 0: c1's output channel 0 and c2's input channel 0 are dead; the
        // sum's channel 0 still has c2's output, so the head keeps both inputs.
        assert_eq!(kept_weights(&m, &without(r1, 0)), (2.0 + 2.0 + 4.0) / 12.0);
        // c1 itself drops channel 0: behind a BatchNorm without shift, c2 reads a 0 ...
        let (m0, _) = residual([0.0, 0.0]);
        assert!(zero(&m0, &without(c1, 0), r1, 0));
        // ... with a shift, a constant: counted as kept.
        let (m1, _) = residual([1.0, 0.0]);
        assert!(!zero(&m1, &without(c1, 0), r1, 0) && zero(&m1, &without(c1, 1), r1, 1));
    }

    #[test]
    fn a_tracked_node_holds_the_conv_weights_that_write_or_read_its_channels() {
        let (m, [_, r1, c2, r2]) = residual([0.0, 0.0]);
        let held = channel_weights(&m, &[r1, c2, r2]);
        // r1: c1 writes it (through the BatchNorm), c2 reads it; c2 writes itself; r2 reads into no conv.
        assert_eq!((held[&r1], held[&c2], held[&r2]), (8.0 / 12.0, 4.0 / 12.0, 0.0));
    }
}

//! Concern and tangling identification for recurrent layers (ALGORITHMS.md
//! §6), from the hidden states of the one recorded pass.
//!
//! `reference` (the ICSE'23 authors' code): per unit, the robust mean of |h|
//! over the concerned samples minus that over the unconcerned ones; the units
//! with the most negative difference are removed, at most `max_remove` of the
//! layer (plus any within 10 % of the worst). ReLU layers compare active rates
//! instead. `paper`: the sign rule of the dense papers — a unit stays when
//! h > 0 for any concerned or unconcerned sample.
//!
//! Rolled modules take the statistic at the last step and remove the same
//! units at every step; unrolled modules take each step's statistic and
//! remove per step.

use super::{Mode, Settings};
use crate::bits::BitSet;
use crate::model::{Activation, Model, NodeId, Op, Recording, UnitMask};

/// The mask (`T × U`, step-major) of recurrent node `node` for one module.
/// `concerned` / `unconcerned` are items: samples, or (sequence, step) pairs
/// (step-minor) for per-step tasks, whose statistic is taken at their step.
pub fn recurrent_mask(model: &Model, node: NodeId, rec: &Recording, k: usize, concerned: &BitSet, unconcerned: &BitSet, s: &Settings) -> UnitMask {
    let Op::Recurrent(r) = &model.nodes[node].op else { unreachable!("recurrent_mask on a {}", model.nodes[node].op.kind()) };
    let (steps, u) = (model.steps(node), r.units);
    let rows = rec.bits[k].cols();
    let item_steps = concerned.len() / rows.max(1);
    // Per-step items at this layer's own steps (a tagger, a decoder). An
    // encoder's steps are not the output's: its concerned samples are the
    // sequences with a concerned item, its unconcerned ones the others with
    // an unconcerned item, and it is treated as for per-sample labels.
    let per_step = item_steps > 1 && stepped_with_head(model, node);
    let encoder_sets = (item_steps > 1 && !per_step).then(|| {
        let c = BitSet::from_indices(rows, concerned.iter().map(|i| i / item_steps));
        let u = BitSet::from_indices(rows, unconcerned.iter().map(|i| i / item_steps).filter(|&r| !c.contains(r)));
        (c, u)
    });
    let (concerned, unconcerned) = encoder_sets.as_ref().map_or((concerned, unconcerned), |(c, u)| (c, u));
    // (row, step) pairs whose state counts: at step `t`, or (rolled) at the
    // last step for per-sample labels / at each item's own step for per-step labels.
    let pairs = |set: &BitSet, t: Option<usize>| -> Vec<(usize, usize)> {
        if per_step {
            set.iter().map(|i| (i / steps, i % steps)).filter(|&(_, st)| t.is_none_or(|t| t == st)).collect()
        } else {
            let st = t.unwrap_or(steps - 1);
            set.iter().map(|i| (i, st)).collect()
        }
    };
    let keep_at = |t: Option<usize>| -> Vec<bool> {
        let (pos, neg) = (pairs(concerned, t), pairs(unconcerned, t));
        match s.recurrent_mode {
            Mode::Paper => (0..u).map(|n| pos.iter().chain(&neg).any(|&(row, st)| rec.bits[k].get(st * u + n, row))).collect(),
            Mode::Reference => {
                let states = &rec.states[&node];
                let column = |p: &[(usize, usize)], n: usize| -> Vec<f32> { p.iter().map(|&(row, st)| states[(row * steps + st) * u + n]).collect() };
                let relu = r.activation == Activation::Relu;
                let d: Vec<f32> = if relu {
                    let rate = |v: Vec<f32>| v.iter().filter(|&&x| x > 0.0).count() as f32 / v.len().max(1) as f32;
                    (0..u).map(|n| rate(column(&pos, n)) - rate(column(&neg, n))).collect()
                } else {
                    let mean = |v: Vec<f32>| robust_mean(v.into_iter().map(f32::abs).collect());
                    (0..u).map(|n| mean(column(&pos, n)) - mean(column(&neg, n))).collect()
                };
                let removed = removal(&d, if relu { -0.5 } else { 0.0 }, s.max_remove, !relu);
                (0..u).map(|n| !removed.contains(&n)).collect()
            }
        }
    };
    let mut keep = BitSet::full(steps * u);
    let rolled = (!s.unrolled).then(|| keep_at(None));
    for t in 0..steps {
        let kept = match &rolled {
            Some(k) => k.clone(),
            None => keep_at(Some(t)),
        };
        kept.iter().enumerate().filter(|(_, k)| !**k).for_each(|(n, _)| keep.remove(t * u + n));
    }
    UnitMask { keep, clip_negative: None }
}

/// Do node `node`'s steps reach a per-step head as its steps? True when a
/// path to the head passes only layers that keep the time axis; false behind
/// a RepeatVector or a recurrent layer that returns only its last state
/// (an encoder, whose steps are the input's, not the output's).
pub fn stepped_with_head(model: &Model, node: NodeId) -> bool {
    let mut reach = vec![false; model.nodes.len()];
    reach[model.head] = true;
    for id in (node + 1..=model.head).rev() {
        let keeps_time = match &model.nodes[id].op {
            Op::RepeatVector { .. } => false,
            Op::Recurrent(r) => r.return_sequences,
            _ => true,
        };
        if reach[id] && keeps_time {
            model.nodes[id].inputs.iter().for_each(|&i| reach[i] = true);
        }
    }
    reach[node] && matches!(&model.nodes[node].op, Op::Recurrent(r) if r.return_sequences)
}

/// Units to remove given each unit's difference `d` (concerned − unconcerned):
/// those with `d` below `threshold` (`d < 0`; ReLU rates: `d ≤ −0.5`), most
/// negative first, at most `⌊max_remove · U⌋` of them; with `near_worst`, also
/// any further unit within 10 % of the worst difference (the authors' code).
pub fn removal(d: &[f32], threshold: f32, max_remove: f32, near_worst: bool) -> Vec<usize> {
    let mut cand: Vec<usize> = (0..d.len()).filter(|&n| if threshold < 0.0 { d[n] <= threshold } else { d[n] < threshold }).collect();
    cand.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
    let cap = (max_remove * d.len() as f32).floor() as usize;
    let Some(&worst) = cand.first() else { return vec![] };
    let worst = d[worst];
    cand.iter()
        .enumerate()
        .filter(|&(i, &n)| i < cap || (near_worst && d[n] <= 0.9 * worst))
        .map(|(_, &n)| n)
        .collect()
}

/// Mean of the values whose |x − median| / MAD < 2 (the authors' robust
/// mean). With MAD = 0 (at least half the values equal) the plain mean is
/// used — the code's division would give no finite answer there.
pub fn robust_mean(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let med = median(&mut v.clone());
    let mut dev: Vec<f32> = v.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut dev);
    if mad > 0.0 {
        v.retain(|x| (x - med).abs() / mad < 2.0);
    }
    v.iter().map(|&x| x as f64).sum::<f64>() as f32 / v.len().max(1) as f32
}

/// The median by selection (linear time; the values are reordered).
fn median(v: &mut [f32]) -> f32 {
    let n = v.len();
    let (left, &mut mid, _) = v.select_nth_unstable_by(n / 2, f32::total_cmp);
    if n % 2 == 1 { mid } else { 0.5 * (left.iter().copied().fold(f32::NEG_INFINITY, f32::max) + mid) }
}

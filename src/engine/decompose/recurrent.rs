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
//!
//! With `gates` (the authors' "with gate"), the statistic is taken per gate
//! column from the recorded gate activations and removal is capped per gate
//! block; the mask then keeps every unit and removes gate columns
//! (`UnitMask::gates`). SimpleRNN has no gates and stays per unit.

use super::columns::{Column, ColumnCache};
use super::{Mode, Settings};
use crate::engine::bits::BitSet;
use crate::engine::model::{Activation, Cell, Model, NodeId, Op, Recording, UnitMask};

/// The mask (`T × U`, step-major) of recurrent node `node` for one module.
/// `concerned` / `unconcerned` are items: samples, or (sequence, step) pairs
/// (step-minor) for per-step tasks, whose statistic is taken at their step;
/// the two are disjoint. `cache` holds the sorted columns across classes.
pub fn recurrent_mask(
    model: &Model,
    node: NodeId,
    rec: &Recording,
    k: usize,
    (concerned, unconcerned): (&BitSet, &BitSet),
    s: &Settings,
    cache: &ColumnCache,
) -> UnitMask {
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
    // The shared encoder kept whole (our deviation; docs/ALGORITHMS.md).
    if s.keep_encoder && item_steps > 1 && !per_step {
        return UnitMask { keep: BitSet::full(steps * u), clip_negative: None, gates: None };
    }
    // (row, step) pairs whose state counts: at step `t`, or (rolled) at the
    // last step for per-sample labels / at each item's own step for per-step labels.
    let pairs = |set: &BitSet, t: Option<usize>| -> Vec<(usize, usize)> {
        if per_step {
            set.iter().map(|i| (i / steps, i % steps)).filter(|&(_, st)| t.is_none_or(|t| t == st)).collect()
        } else {
            let st = t.unwrap_or(r.last_step(steps));
            set.iter().map(|i| (i, st)).collect()
        }
    };
    // Per gate column (SimpleRNN has no gates: its one "gate" is its state,
    // and removal stays per unit) or per unit.
    let gate_values = rec.gates.get(&node).filter(|_| s.gates && r.cell != Cell::SimpleRnn && s.recurrent_mode == Mode::Reference);
    let blocks = if gate_values.is_some() { r.cell.gates() } else { 1 };
    // A (row, step) pair's index among all the pairs a statistic at `t` ranges over.
    let index = |t: Option<usize>, (row, st): (usize, usize)| if per_step && t.is_none() { row * steps + st } else { row };
    // Unconcerned = every other item (at every step alike): their statistic
    // comes from the sorted columns and their pairs are never listed.
    let complement = concerned.count() + unconcerned.count() == concerned.len();
    let keep_at = |t: Option<usize>| -> Vec<bool> {
        let pos = pairs(concerned, t);
        if s.recurrent_mode == Mode::Paper {
            let neg = pairs(unconcerned, t);
            return (0..u).map(|n| pos.iter().chain(&neg).any(|&(row, st)| rec.bits[k].get(st * u + n, row))).collect();
        }
        let neg = if complement { vec![] } else { pairs(unconcerned, t) };
        let (data, gu) = match gate_values {
            Some(v) => (v, blocks * u),
            None => (&rec.states[&node], u),
        };
        let mut keep = vec![true; blocks * u];
        for g in 0..blocks {
            let rule = match (gate_values.is_some() && !gate_is_candidate(r.cell, g), r.activation) {
                (true, _) => Rule::Gate,
                (false, Activation::Relu) => Rule::Relu,
                (false, _) => Rule::Magnitude,
            };
            let value = |(row, st): (usize, usize), n: usize| data[(row * steps + st) * gu + g * u + n];
            let column = |p: &[(usize, usize)], n: usize| p.iter().map(|&i| value(i, n)).collect();
            let rest = complement.then(|| {
                let cols = cache.get_or_build((node, g, t), || {
                    // Unit-major in one sweep over the item-major recording.
                    let items = pairs(&BitSet::full(concerned.len()), t);
                    let mut by_unit = vec![Vec::with_capacity(items.len()); u];
                    items.iter().for_each(|&i| by_unit.iter_mut().enumerate().for_each(|(n, c)| c.push(value(i, n))));
                    by_unit.into_iter().map(|c| rule.column(c.into_iter())).collect()
                });
                (cols, pos.iter().map(|&i| index(t, i)).collect::<Vec<_>>())
            });
            let rest = rest.as_ref().map(|(c, i)| (&c[..], &i[..]));
            removed_units(column, &pos, &neg, u, rule, s.max_remove, rest).into_iter().for_each(|n| keep[g * u + n] = false);
        }
        keep
    };
    let width = blocks * u;
    let mut keep = BitSet::full(steps * width);
    let rolled = (!s.unrolled).then(|| keep_at(None));
    for t in 0..steps {
        let kept = match &rolled {
            Some(k) => k.clone(),
            None => keep_at(Some(t)),
        };
        kept.iter().enumerate().filter(|(_, k)| !**k).for_each(|(n, _)| keep.remove(t * width + n));
    }
    if gate_values.is_some() {
        UnitMask { keep: BitSet::full(steps * u), clip_negative: None, gates: Some(keep) }
    } else {
        UnitMask { keep, clip_negative: None, gates: None }
    }
}

/// How a column's concerned and unconcerned values are compared.
#[derive(Clone, Copy)]
enum Rule {
    /// Robust mean of |x| (tanh states and candidates); remove when the
    /// difference is negative, capped, plus any within 10 % of the worst.
    Magnitude,
    /// ReLU: active rate (x > 0); remove when the difference is ≤ −0.5, capped.
    Relu,
    /// A sigmoid gate: active rate (|g| ≥ 0.5, i.e. the gate at least half
    /// open); remove when the difference is negative, capped (no 10 % rule:
    /// rates tie often and the rule would pass the cap wholesale).
    Gate,
}

impl Rule {
    /// Is `x` active (the rate rules)?
    fn active(self, x: f32) -> bool {
        match self {
            Rule::Relu => x > 0.0,
            Rule::Gate => x.abs() >= 0.5,
            Rule::Magnitude => unreachable!("the magnitude rule has no active rate"),
        }
    }

    /// The rule's statistic over `v`.
    fn stat(self, v: &[f32]) -> f32 {
        match self {
            Rule::Magnitude => robust_mean(v.iter().map(|x| x.abs()).collect()),
            _ => v.iter().filter(|&&x| self.active(x)).count() as f32 / v.len().max(1) as f32,
        }
    }

    /// A sorted or counted column for the statistic of complements.
    fn column(self, values: impl Iterator<Item = f32>) -> Column {
        match self {
            Rule::Magnitude => Column::magnitudes(values),
            _ => Column::rate(values, |x| self.active(x)),
        }
    }
}

/// Columns `0..u` to remove, given how to read column `n` over a pair list.
/// With `rest` (the sorted columns and the concerned items' indices in
/// them), `neg` is every item but `pos` and its statistic comes from the columns.
fn removed_units(
    column: impl Fn(&[(usize, usize)], usize) -> Vec<f32>,
    pos: &[(usize, usize)],
    neg: &[(usize, usize)],
    u: usize,
    rule: Rule,
    max_remove: f32,
    rest: Option<(&[Column], &[usize])>,
) -> Vec<usize> {
    let d: Vec<f32> = (0..u)
        .map(|n| match (rest, rule) {
            // |x| of the concerned items, in item order, from the unit's own column.
            (Some((cols, idx)), Rule::Magnitude) => robust_mean(cols[n].magnitudes_at(idx)) - cols[n].complement_robust_mean(idx),
            (Some((cols, _)), _) => {
                let p = column(pos, n);
                rule.stat(&p) - cols[n].complement_rate(p.len(), p.iter().filter(|&&x| rule.active(x)).count())
            }
            (None, _) => rule.stat(&column(pos, n)) - rule.stat(&column(neg, n)),
        })
        .collect();
    match rule {
        Rule::Magnitude => removal(&d, 0.0, max_remove, true),
        Rule::Relu => removal(&d, -0.5, max_remove, false),
        Rule::Gate => removal(&d, 0.0, max_remove, false),
    }
}

/// Is gate block `g` the cell's candidate (tanh) block rather than a sigmoid gate?
fn gate_is_candidate(cell: Cell, g: usize) -> bool {
    g == 2 && cell != Cell::SimpleRnn
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
    cand.iter().enumerate().filter(|&(i, &n)| i < cap || (near_worst && d[n] <= 0.9 * worst)).map(|(_, &n)| n).collect()
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

//! Class relevance (Remodule's technique, not the papers'; ALGORITHMS.md §7):
//! after concern and tangling identification, a module of class `c` drops the
//! units that serve `c` least, up to a share `strength` of each layer.
//!
//! Why: tangling identification keeps every unit that any unconcerned sample
//! activates, and a trained ReLU network activates nearly every unit for some
//! input, so the faithful modules are (almost) the whole network for every
//! class alike. Relevance ranks units from statistics of the one recorded
//! pass — Σ output and Σ output² per class and unit ([`Moments`]) and the
//! activity bits — so no model runs to rank them.
//!
//! - **Relevance** of a unit for `c`, per layer family (`g` is the gradient
//!   of the module's margin `z_c − z_uc` with respect to the unit's output,
//!   [`super::gradient`]: back-propagated once per class through dense, conv,
//!   pooling and residual layers with mean-field derivatives; `μ_c` is the
//!   unit's mean output over class `c`'s samples, `μ_other` the mean of the
//!   other classes' means):
//!   - a **Dense** unit: `½ (μ_c + μ_other) · |g|`, how much of the margin
//!     the unit carries on the balanced "is it `c`?" task. The least goes first.
//!   - a **convolution channel**: `Σ (μ_c − μ_other) · g` over its positions,
//!     the first-order change in the gap between the mean margin on class `c`
//!     and on the others when the channel is removed. Negative means the
//!     channel blurs the class, and goes first. A channel that reaches the
//!     head only through a global pooling is one feature of the head, as a
//!     Dense unit is, and is ranked like one ([`pooled_into_head`]).
//!
//!   Measured on the bundled models trained on all of MNIST / Fashion-MNIST
//!   (composed top-1 change, 1000 test images; docs/FIDELITY.md): for dense
//!   layers the signed gap cost 1.5–2.4 points at strength 0.2 on the three
//!   MLPs where the carried share costs −0.6 to +0.2 at the same module↔module
//!   Jaccard (0.66–0.75) — the signed gap first drops units that pull the
//!   class's margin down on average, which are the ones that reject the
//!   confusable classes. For convolutions it is the other way round: the
//!   carried share keeps the same strong channels in every module (Jaccard
//!   0.81–0.95 at strength 0.2) where the signed gap picks per class (0.71–0.85)
//!   at about the same cost.
//! - **Granularity**: a Dense unit; a convolution's whole channel (the sum over
//!   its positions), so that removing it removes its kernel. Layers the
//!   gradient does not reach rank by the channel's `(μ_c − μ_other) / σ`.
//! - **Strength** `s ∈ [0, 1]`: each tracked Conv2D layer removes the `⌊s · n⌋`
//!   least relevant of its `n` channels, each Dense layer `⌊s_l · n⌋` of its
//!   units ([`layer_strength`]), always keeping at least one (`s = 0` is the
//!   faithful module). Units the faithful masks
//!   removed stay removed. Backtracking then runs as usual.
//!
//! Pruned modules are pruned differently, so their raw margins stop being
//! comparable; each module's margin is mapped affinely onto the full model's
//! margin for its class over calibration samples ([`Calibration::fit`]).
//! Measured on the digits MLP trained on 6,000 images, at strength 0.25 (71 % kept weights): the plain
//! standardised gap costs 7.3 points of composed accuracy, the
//! gradient-weighted gap 2.5 with each margin standardised by its own mean and
//! spread, and 1.8 with the fitted margins (standardising costs 1.7 points
//! even at strength 0.02, where the fit costs 0.6). On the digits CNN at 0.25
//! the gradient through the convolutions costs 2.5 points where the plain gap
//! on conv channels cost 6.5; pruning conv *positions* instead of channels
//! gave lower Jaccard (0.58 against 0.86) at 6.1 points. Replacing a removed
//! unit by its mean output instead of 0 changed nothing measurable once
//! margins are calibrated (digits MLP, strengths 0.1–0.5: ±0.2 points).

use super::gradient::margin_gradients;
use std::collections::BTreeMap;

use crate::engine::model::{Masks, Model, Moments, NodeId, Op, Recording};

/// A unit (or channel) kept by relevance; `σ` below this counts as constant.
const MIN_SPREAD: f64 = 1e-6;

/// A pruned module's margin `z_c − z_uc` recalibrated: `(margin − mean) / scale`
/// (two numbers per module; no weight changes).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub mean: f32,
    pub scale: f32,
}

impl Calibration {
    /// Standardisation: the margins' mean and standard deviation (the fallback of [`Calibration::fit`]).
    pub fn of(margins: &[f32]) -> Calibration {
        let n = margins.len().max(1) as f64;
        let mean = margins.iter().map(|&m| m as f64).sum::<f64>() / n;
        let var = margins.iter().map(|&m| (m as f64 - mean).powi(2)).sum::<f64>() / n;
        Calibration { mean: mean as f32, scale: var.sqrt().max(MIN_SPREAD) as f32 }
    }

    /// The affine map that best takes the module's margins to `target`, the
    /// full model's margins on the same samples (least squares); the
    /// standardisation when the two do not rise together.
    pub fn fit(margins: &[f32], target: &[f32]) -> Calibration {
        let n = margins.len().max(1) as f64;
        let mp = margins.iter().map(|&m| m as f64).sum::<f64>() / n;
        let mt = target.iter().map(|&m| m as f64).sum::<f64>() / n;
        let cov: f64 = margins.iter().zip(target).map(|(&p, &t)| (p as f64 - mp) * (t as f64 - mt)).sum::<f64>() / n;
        let var: f64 = margins.iter().map(|&p| (p as f64 - mp).powi(2)).sum::<f64>() / n;
        if cov <= 0.0 || var <= 0.0 {
            return Calibration::of(margins);
        }
        let a = cov / var;
        let b = mt - a * mp;
        // (m − mean) / scale = a·m + b.
        Calibration { mean: (-b / a) as f32, scale: (1.0 / a) as f32 }
    }

    pub fn apply(&self, margin: f32) -> f32 {
        (margin - self.mean) / self.scale
    }
}

/// Removes, in every tracked layer with recorded moments, the `⌊s_l · n⌋`
/// least relevant units (channels) for `class` from `masks`, `s_l` the
/// layer's share of `strength` ([`layer_strength`]; see the module docs).
pub fn prune(model: &Model, rec: &Recording, class: usize, strength: f32, masks: &mut Masks) {
    if strength <= 0.0 {
        return;
    }
    let scores = statistic_scores(model, rec, class);
    remove_lowest(model, rec, strength, masks, &|node| scores[&node].clone());
}

/// Every [`prunable`] node's relevance per channel for `class` (see the module docs).
pub(super) fn statistic_scores(model: &Model, rec: &Recording, class: usize) -> BTreeMap<NodeId, Vec<f32>> {
    let grads = margin_gradients(model, rec, class);
    let mut out = BTreeMap::new();
    for node in prunable(model, rec) {
        let (m, kernel) = (&rec.moments[&node], kernel_of(model, node).expect("prunable"));
        let channels = channels(model, node);
        let scores = match grads.get(&node) {
            Some(g) => {
                // Per unit, then Σ over a channel's positions. Dense units and channels pooled
                // whole into the head: the share of the margin the unit carries; conv: gap × gradient.
                let carries = matches!(model.nodes[kernel].op, Op::Dense { .. }) || pooled_into_head(model, node);
                let per_unit: Vec<f32> = if carries {
                    carried(m, class).iter().zip(g).map(|(a, g)| a * g.abs()).collect()
                } else {
                    gap(m, class).iter().zip(g).map(|(d, g)| d * g).collect()
                };
                let mut s = vec![0f32; channels];
                per_unit.iter().enumerate().for_each(|(u, v)| s[u % channels] += v);
                s
            }
            None => relevance(m, class, channels),
        };
        out.insert(node, scores);
    }
    out
}

/// The nodes [`prune`] prunes: tracked nodes with recorded moments whose
/// units are a kernel's own channels ([`kernel_of`]).
pub fn prunable(model: &Model, rec: &Recording) -> Vec<NodeId> {
    rec.moments.keys().copied().filter(|&n| kernel_of(model, n).is_some()).collect()
}

/// Per [`prunable`] node, the share of its channels `strength` removes: the
/// strength itself for a convolution, [`layer_strength`] for a Dense layer.
pub(super) fn layer_shares(model: &Model, rec: &Recording, strength: f32) -> BTreeMap<NodeId, f64> {
    let nodes = prunable(model, rec);
    let dense = |n: NodeId| kernel_of(model, n).filter(|&k| matches!(model.nodes[k].op, Op::Dense { .. }));
    let largest_dense = nodes.iter().filter_map(|&n| dense(n)).map(|k| model.nodes[k].op.params()).max().unwrap_or(0);
    nodes
        .iter()
        .map(|&n| {
            let share = match dense(n) {
                Some(k) => layer_strength(strength, model.nodes[k].op.params(), largest_dense),
                None => strength as f64,
            };
            (n, share)
        })
        .collect()
}

/// The channels to remove: among the `kept` ones, the `⌊share · channels⌋`
/// with the lowest scores (ties: the lower index first), always leaving one.
pub(super) fn lowest(scores: &[f32], kept: impl Fn(usize) -> bool, share: f64) -> Vec<usize> {
    let channels = scores.len();
    let mut order: Vec<usize> = (0..channels).filter(|&ch| kept(ch)).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let remove = ((share * channels as f64).floor() as usize).min(order.len().saturating_sub(1));
    order.truncate(remove);
    order
}

/// Removes, in every [`prunable`] node, the channels [`lowest`] picks by
/// `score(node)` (one per channel) at the node's [`layer_shares`]. Shared by
/// the statistic and the learned relevance, so both remove the same number
/// of units at a strength.
pub(super) fn remove_lowest(model: &Model, rec: &Recording, strength: f32, masks: &mut Masks, score: &dyn Fn(NodeId) -> Vec<f32>) {
    for (node, share) in layer_shares(model, rec, strength) {
        let Some(mask) = masks.nodes.get_mut(&node) else { continue };
        let channels = channels(model, node);
        let positions = mask.keep.len() / channels;
        // Only kept channels compete; a channel is kept when any of its positions is.
        let kept = |ch: usize| (0..positions).any(|p| mask.keep.contains(p * channels + ch));
        for ch in lowest(&score(node), kept, share) {
            for p in 0..positions {
                mask.keep.remove(p * channels + ch);
            }
        }
    }
}

/// A Dense layer's share of the strength: `s · r / (1 − s · (1 − r))` with
/// `r = (weights / largest)^0.15`, `largest` the model's largest pruned Dense
/// layer — smaller layers give up fewer units, and `s = 1` is still the
/// smallest module for every layer. Why: a unit of a small layer near the
/// head carries as much of the margin as one of the wide first layer but
/// holds far fewer weights. Measured on the bundled MLPs (digits, digits_b,
/// faulty, clothing; composed top-1 change on 1000 test images), exponent 0 /
/// 0.15 / 0.3: at strength 0.2, −0.4 +0.1 −0.4 −0.8 (Jaccard 0.69–0.75) /
/// −0.5 +0.2 −0.3 −0.5 (0.71–0.78) / −0.2 0.0 −0.2 −0.4 (0.75–0.81, above the
/// 0.8 the default must meet); at 0.35, −2.3 −0.7 −1.6 −2.3 / −1.9 −0.2 −1.1
/// −1.8 / −1.6 0.0 −0.7 −1.4, for 1–2 points more kept weights each step. With
/// 0.15 every MLP's front reaches ≤ 60 % kept weights within 2 points; with 0
/// only two do.
fn layer_strength(strength: f32, weights: usize, largest: usize) -> f64 {
    let s = strength as f64;
    let r = (weights as f64 / largest.max(1) as f64).min(1.0).powf(0.15);
    s * r / (1.0 - s * (1.0 - r))
}

/// The Dense or Conv2D node whose output channels are tracked node `t`'s
/// units: `t` itself (its own activation), or the kernel right before it when
/// `t` is a separate activation layer and the kernel has no other consumer —
/// Keras's `Dense` + `LeakyReLU()` or `Conv2D` + `PReLU()`. Otherwise `None`:
/// a ReLU after a residual Add is shared by the paths that meet there, and one
/// after a BatchNorm is left alone too. Measured on the residual CNN with
/// Conv → BatchNorm → ReLU blocks pruned as one: −1.1 points at strength 0.1
/// and −5.7 at 0.2 for 8 % fewer weights (−2.8 at 0.2 ranking its channels by
/// the carried share) — too dear for the default; pruning every ReLU, those
/// after Add included, cost 19 points at 0.1.
pub fn kernel_of(model: &Model, t: NodeId) -> Option<NodeId> {
    let node = &model.nodes[t];
    match node.op {
        Op::Dense { .. } | Op::Conv2D { .. } => return Some(t),
        Op::Activation(_) | Op::PRelu { .. } => {}
        _ => return None,
    }
    let src = *node.inputs.first()?;
    let alone = model.nodes.iter().enumerate().all(|(k, n)| k == t || !n.inputs.contains(&src));
    let channels_match = model.nodes[src].shape.last() == node.shape.last();
    (matches!(model.nodes[src].op, Op::Dense { .. } | Op::Conv2D { .. }) && alone && channels_match).then_some(src)
}

/// Does every path from `node` reach a global pooling before any kernel or
/// flattening? Then each of its channels is one feature of the head, as a
/// Dense unit is, and is ranked like one. Measured on the fixtures whose last
/// convolution is pooled whole into the head (composed top-1 change at
/// strength 0.2, 400 test images): conv1d_cnn −19.0 → −5.8 points,
/// gmp_cnn −7.2 → −2.0; ranking *every* convolution that way instead helped
/// no bundled CNN and raised their module↔module Jaccard (docs above).
fn pooled_into_head(model: &Model, node: NodeId) -> bool {
    let consumers = |n: NodeId| (n + 1..model.nodes.len()).filter(move |&k| model.nodes[k].inputs.contains(&n));
    let mut frontier = vec![node];
    let mut reached = false;
    while let Some(n) = frontier.pop() {
        for k in consumers(n) {
            match model.nodes[k].op {
                Op::GlobalPool(_) => reached = true,
                Op::Activation(_) | Op::PRelu { .. } | Op::Dropout | Op::Concat | Op::Pool2D { .. } | Op::ZeroPad2D { .. } => {
                    frontier.push(k)
                }
                _ => return false,
            }
        }
    }
    reached
}

/// Per unit: `(μ_c + μ_other) / 2`, its mean output with class `c` and the
/// other classes weighing alike (the balanced yes/no task a module solves).
fn carried(m: &Moments, class: usize) -> Vec<f32> {
    let d = gap(m, class);
    let mean = |u: usize| if m.count.get(class).is_some_and(|&n| n > 0) { m.sum[class * m.units + u] / m.count[class] as f64 } else { 0.0 };
    // μ_other = μ_c − gap.
    (0..m.units).map(|u| mean(u) as f32 - 0.5 * d[u]).collect()
}

/// Per unit: `μ_c − μ_other` (mean outputs, as in [`relevance`], unpooled).
fn gap(m: &Moments, class: usize) -> Vec<f32> {
    let groups: Vec<usize> = (0..m.count.len()).filter(|&g| m.count[g] > 0 && g != class).collect();
    let mean = |g: usize, u: usize| m.sum[g * m.units + u] / m.count[g].max(1) as f64;
    (0..m.units)
        .map(|u| {
            let other = groups.iter().map(|&g| mean(g, u)).sum::<f64>() / groups.len().max(1) as f64;
            (if m.count.get(class).is_some_and(|&n| n > 0) { mean(class, u) } else { 0.0 } - other) as f32
        })
        .collect()
}

/// Channels of a tracked node: the last dimension of its output (a Dense
/// layer's units; a convolution's filters).
pub(super) fn channels(model: &Model, node: NodeId) -> usize {
    *model.nodes[node].shape.last().unwrap_or(&1)
}

/// Relevance of every channel for `class`: `(μ_c − μ_other) / σ` over the
/// channel's positions pooled.
pub fn relevance(m: &Moments, class: usize, channels: usize) -> Vec<f32> {
    let groups = m.count.len();
    let positions = m.units / channels.max(1);
    // Per group and channel: mean output and mean square, over samples and positions.
    let mean_of = |g: usize, ch: usize, v: &[f64]| {
        let total: f64 = (0..positions).map(|p| v[g * m.units + p * channels + ch]).sum();
        total / (m.count[g].max(1) * positions) as f64
    };
    let present: Vec<usize> = (0..groups).filter(|&g| m.count[g] > 0).collect();
    let all: usize = m.count.iter().sum();
    (0..channels)
        .map(|ch| {
            let mu_c = if m.count.get(class).copied().unwrap_or(0) > 0 { mean_of(class, ch, &m.sum) } else { 0.0 };
            let others: Vec<f64> = present.iter().filter(|&&g| g != class).map(|&g| mean_of(g, ch, &m.sum)).collect();
            let mu_other = others.iter().sum::<f64>() / others.len().max(1) as f64;
            // Spread over every sample (each weighs by its count).
            let w = |g: usize| m.count[g] as f64 / all.max(1) as f64;
            let e1: f64 = present.iter().map(|&g| w(g) * mean_of(g, ch, &m.sum)).sum();
            let e2: f64 = present.iter().map(|&g| w(g) * mean_of(g, ch, &m.sq)).sum();
            let sd = (e2 - e1 * e1).max(0.0).sqrt();
            if sd < MIN_SPREAD { 0.0 } else { ((mu_c - mu_other) / sd) as f32 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, arr1};

    use super::super::tests::{dataset, mlp, two_class};
    use super::super::{Mode, Settings, Technique, decompose};
    use super::*;
    use crate::engine::compose::compose;
    use crate::engine::data::Dataset;
    use crate::engine::decompose::concerned_scores;
    use crate::engine::model::Model;

    fn settings(strength: f32) -> Settings {
        Settings { mode: Mode::Paper, technique: Technique::Mc, samples_per_class: 2, strength, ..Settings::default() }
    }

    /// Three classes, class k lights input k; hidden unit k copies input k;
    /// the head weighs unit k by 3, 2, 1 for class k.
    fn three_class() -> (Model, Dataset) {
        let m = mlp(Array2::eye(3), arr1(&[0.0; 3]), Array2::from_diag(&arr1(&[3.0, 2.0, 1.0])), arr1(&[0.0; 3]));
        let x = vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        (m, dataset(x, vec![0, 0, 1, 1, 2, 2], 3, 3))
    }

    #[test]
    fn each_module_drops_the_unit_that_separates_its_class_least() {
        let (m, d) = three_class();
        let faithful = decompose(&m, &d, &settings(0.0), &mut |_| true).unwrap();
        assert!(faithful.modules.iter().all(|md| md.masks.nodes[&1].keep.count() == 3 && md.calibration.is_none()));
        // Module 0: g = W2 · (1, −½, −½) = (3, −1, −½); gaps (μ_0 − μ_other) = (1, −½, −½);
        // relevance (3, ½, ¼): ⌊0.34 · 3⌋ = 1 unit goes, unit 2. Module 1: (¾, 2, ¼) → unit 2;
        // module 2: g = (−1½, −1, 1), relevance (¾, ½, 1) → unit 1.
        let dec = decompose(&m, &d, &settings(0.34), &mut |_| true).unwrap();
        let kept: Vec<Vec<usize>> = dec.modules.iter().map(|md| md.masks.nodes[&1].keep.iter().collect()).collect();
        assert_eq!(kept, vec![vec![0, 1], vec![0, 1], vec![0, 2]]);
        let rows: Vec<Vec<f32>> = dec.modules.iter().map(|md| concerned_scores(&m, md, &d.test.x, 6, &mut |_, _| true).unwrap()).collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        assert_eq!(compose(&refs, &[0, 1, 2], &d.test.y).unwrap().top1, 1.0);
        assert!(dec.modules.iter().all(|md| md.calibration.is_some_and(|c| c.scale > 0.0)));
    }

    #[test]
    fn the_fit_maps_margins_onto_the_model_s() {
        // Pruned margins (2, 2, 0, 0), the model's (2, 2, −2, −2): twice, shifted by −2.
        let c = Calibration::fit(&[2.0, 2.0, 0.0, 0.0], &[2.0, 2.0, -2.0, -2.0]);
        assert_eq!((c.mean, c.scale), (1.0, 0.5));
        assert_eq!([c.apply(2.0), c.apply(0.0)], [2.0, -2.0]);
        // Falling instead of rising: the standardisation.
        assert_eq!(Calibration::fit(&[1.0, 3.0], &[3.0, 1.0]), Calibration::of(&[1.0, 3.0]));
    }

    #[test]
    fn full_strength_keeps_one_unit_per_layer() {
        let (m, d) = two_class();
        let dec = decompose(&m, &d, &settings(1.0), &mut |_| true).unwrap();
        for module in &dec.modules {
            assert_eq!(module.masks.nodes[&1].keep.count(), 1, "class {}", module.class);
        }
    }

    #[test]
    fn a_dense_layers_share_shrinks_with_its_weights_and_keeps_the_ends() {
        // The largest layer gets the strength itself; s = 0 and s = 1 stay the ends for every layer.
        assert!((layer_strength(0.2, 1000, 1000) - 0.2).abs() < 1e-6);
        assert_eq!(layer_strength(0.0, 10, 1000), 0.0);
        assert!((layer_strength(1.0, 10, 1000) - 1.0).abs() < 1e-12);
        // A layer with 1 % of the weights: r = 0.01^0.15 ≈ 0.501 → 0.2·r / (1 − 0.2·(1 − r)) ≈ 0.111.
        let small = layer_strength(0.2, 10, 1000);
        assert!((small - 0.1113).abs() < 1e-3, "{small}");
        assert!(layer_strength(0.2, 100, 1000) > small);
    }

    #[test]
    fn relevance_is_the_standardised_difference_of_class_means() {
        // 2 groups × 2 units; group 0: 2 samples, group 1: 2 samples.
        // Unit 0 outputs 1, 1 (group 0) and 0, 0 (group 1): μ0 = 1, μ1 = 0, σ = 0.5 → +2 for class 0.
        // Unit 1 outputs 0, 2 (group 0) and 1, 1 (group 1): μ0 = 1, μ1 = 1 → 0.
        let m = Moments { units: 2, count: vec![2, 2], sum: vec![2.0, 2.0, 0.0, 2.0], sq: vec![2.0, 4.0, 0.0, 2.0] };
        assert_eq!(relevance(&m, 0, 2), vec![2.0, 0.0]);
        assert_eq!(relevance(&m, 1, 2), vec![-2.0, 0.0]);
        // One channel of two positions: the positions pool.
        assert_eq!(relevance(&m, 0, 1), vec![((1.0 - 0.5) / (1.0f64 - 0.75f64 * 0.75).sqrt()) as f32]);
    }

    #[test]
    fn channels_pooled_whole_into_the_head_rank_like_dense_units() {
        use crate::engine::kernels::PoolKind;
        use crate::engine::model::{Activation, InputKind, InputSpec, ModelBuilder, Padding};
        use ndarray::{Array1, Array4};
        let conv = || Op::Conv2D {
            kernel: Array4::ones((2, 2, 1, 1)),
            bias: Array1::zeros(1),
            strides: [1, 1],
            padding: Padding::Valid,
            activation: Activation::Relu,
        };
        let head = || Op::Dense { kernel: Array2::ones((1, 2)), bias: Array1::zeros(2), activation: Activation::Softmax };
        let build = |pooled: bool| {
            let mut b = ModelBuilder::new("m", InputSpec::new(vec![3, 3, 1], InputKind::Image)).unwrap();
            b.push("c1", conv()).unwrap();
            b.push("c2", conv()).unwrap();
            b.push("act", Op::Activation(Activation::Relu)).unwrap();
            b.push("pool", if pooled { Op::GlobalPool(PoolKind::Max) } else { Op::Flatten }).unwrap();
            b.push("out", head()).unwrap();
            b.finish(vec!["a".into(), "b".into()]).unwrap()
        };
        let (pooled, flat) = (build(true), build(false));
        // c2 reaches the head through an activation and the global pool; c1 meets c2's kernel first.
        assert!(pooled_into_head(&pooled, 2));
        assert!(!pooled_into_head(&pooled, 1));
        assert!(!pooled_into_head(&flat, 2));
        // The head itself has no consumer: nothing is pooled.
        assert!(!pooled_into_head(&pooled, 5));
    }

    #[test]
    fn calibration_is_mean_and_spread() {
        let c = Calibration::of(&[1.0, 3.0, 1.0, 3.0]);
        assert_eq!((c.mean, c.scale), (2.0, 1.0));
        assert_eq!(c.apply(4.0), 2.0);
        // A constant margin does not divide by zero.
        assert!(Calibration::of(&[5.0, 5.0]).apply(6.0).is_finite());
    }
}

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
//!   - a **convolution unit** (one channel at one position, of a Conv2D's
//!     activation or of a residual sum): the same, `½ (μ_c + μ_other) · |g|`
//!     per unit. A channel goes when all its positions do.
//!
//!   Measured on the bundled models trained on all of MNIST / Fashion-MNIST
//!   (composed top-1 change, 1000 test images; docs/FIDELITY.md): for dense
//!   layers the signed gap `(μ_c − μ_other) · g` cost 1.5–2.4 points at
//!   strength 0.2 on the three MLPs where the carried share costs −0.6 to
//!   +0.2 at the same module↔module Jaccard (0.66–0.75) — the signed gap first
//!   drops units that pull the class's margin down on average, which are the
//!   ones that reject the confusable classes. Convolutions used to drop whole
//!   channels by the signed gap summed over positions; ranking each unit by
//!   its carried share instead drops the positions where the class's evidence
//!   is not, and a first-layer channel (a general edge detector every class
//!   uses) stays. At strength 0.2 (composed top-1 change, Jaccard), channels
//!   by signed gap → units by carried share: clothing CNN −3.6, 0.85 → −1.0,
//!   0.85; digits CNN −0.1, 0.77 → +0.2, 0.89; digits CNN B −0.7, 0.71 → −0.1,
//!   0.89; the residual CNN, whose convolutions sit behind BatchNorm or a sum
//!   and were not pruned, 0.0, 0.98 → −0.1, 0.78. On seven convolutional
//!   fixtures trained by other scripts (tests/fixtures/layers, 400 test
//!   images) the worst cost went from −4.5 to −1.7 points, six of seven within
//!   a point (four before), mean Jaccard 0.82 → 0.81. Units by |gap · g| cost
//!   about as much; whole positions (all channels at once) 0.6–1.2 points more.
//! - a **recurrent unit** (removed at every step): the measured mean change of
//!   the margin when it is removed ([`UnitDamage`], `leave_out.rs`, where
//!   why it is measured and not estimated).
//! - **Granularity**: a Dense unit; a convolution's unit, then whole channels
//!   of the convolutions at the coarsest resolution ([`channel_layers`]), by
//!   their measured removal ([`UnitDamage`]). Layers the gradient does not
//!   reach rank whole channels by `(μ_c − μ_other) / σ`.
//! - **Strength** `s ∈ [0, 1]`: each Dense layer removes `⌊s_l · n⌋` of its
//!   `n` units ([`layer_strength`]), each convolutional layer `⌊s_c · n⌋` of
//!   the `n` units the faithful module keeps ([`conv_strength`]), then a
//!   [`channel_layers`] node `⌊min(½, 2 · s · w) · n⌋` of its `n` remaining
//!   channels ([`channel_share`]), always
//!   keeping at least one (`s = 0` is the faithful module); each recurrent
//!   layer `⌊s_r · U⌋` of all its units ([`recurrent_strength`]), in place of
//!   the ICSE'23 removal. Units the faithful
//!   masks removed stay removed. Backtracking then runs as usual.
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
use super::leave_out::UnitDamage;
use std::collections::{BTreeMap, BTreeSet};

use crate::engine::bits::BitSet;
use crate::engine::model::{Masks, Model, Moments, NodeId, Op, Recording, UnitMask};

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

/// Removes, in every tracked layer of one of `families` with recorded
/// moments, the units that serve `class` least: a Dense layer `⌊s_l · n⌋` of
/// its units, `s_l` its share of `strength` ([`layer_shares`]); a
/// convolutional layer `⌊s_c · n⌋` of its `n` kept units (channel ×
/// position), `s_c` = [`conv_strength`] (see the module docs).
pub fn prune(
    model: &Model,
    rec: &Recording,
    class: usize,
    strength: f32,
    masks: &mut Masks,
    families: &[Family],
    damage: Option<&UnitDamage>,
) {
    if strength <= 0.0 {
        return;
    }
    if let (true, Some(damage)) = (families.contains(&Family::Recurrent), damage) {
        prune_recurrent(model, class, strength, masks, damage);
    }
    let grads = margin_gradients(model, rec, class);
    if families.contains(&Family::Dense) {
        let scores = dense_scores(model, rec, class, &grads);
        remove_lowest(model, rec, strength, masks, &|node| scores[&node].clone());
    }
    if !families.contains(&Family::Conv) {
        return;
    }
    let whole = channel_layers(model, rec);
    let held = super::weights::channel_weights(model, &whole);
    for (&node, m) in &rec.moments {
        let Some(Family::Conv) = family(model, node) else { continue };
        let Some(mask) = masks.nodes.get_mut(&node) else { continue };
        let kept: Vec<usize> = mask.keep.iter().collect();
        match grads.get(&node) {
            // Each unit (a channel at a position) on its own, by the share of the margin it carries.
            Some(g) => {
                let score: Vec<f32> = carried(m, class).iter().zip(g).map(|(a, g)| a * g.abs()).collect();
                let count = (conv_strength(strength) * kept.len() as f64).floor() as usize;
                lowest(kept, &score, count).into_iter().for_each(|u| mask.keep.remove(u));
                // Then whole channels, by their measured damage, where they free many weights.
                if let (Some(&w), Some(d)) = (held.get(&node), damage.and_then(|d| d.0.get(&node))) {
                    let channels = channels(model, node);
                    let positions = mask.keep.len() / channels;
                    let alive: Vec<usize> =
                        (0..channels).filter(|&ch| (0..positions).any(|p| mask.keep.contains(p * channels + ch))).collect();
                    let count = (channel_share(strength, w) * alive.len() as f64).floor() as usize;
                    for ch in lowest(alive, &d[class], count) {
                        (0..positions).for_each(|p| mask.keep.remove(p * channels + ch));
                    }
                }
            }
            // Out of the gradient's reach: whole channels by the standardised gap.
            None => {
                let channels = channels(model, node);
                let positions = m.units / channels;
                let alive: BTreeSet<usize> = kept.iter().map(|u| u % channels).collect();
                let count = (conv_strength(strength) * channels as f64).floor() as usize;
                for ch in lowest(alive.into_iter().collect(), &relevance(m, class, channels), count) {
                    (0..positions).for_each(|p| mask.keep.remove(p * channels + ch));
                }
            }
        }
    }
}

/// Recurrent layers: the faithful (ICSE'23) removal gives way to relevance —
/// every unit back, then the `⌊s_r · U⌋` whose removal changes class `class`'s
/// margin least go, at every step ([`recurrent_strength`]).
fn prune_recurrent(model: &Model, class: usize, strength: f32, masks: &mut Masks, damage: &UnitDamage) {
    for (&node, per_class) in &damage.0 {
        let (Some(mask), Op::Recurrent(r)) = (masks.nodes.get_mut(&node), &model.nodes[node].op) else { continue };
        let (steps, u) = (model.steps(node), r.units);
        *mask = UnitMask { keep: BitSet::full(steps * u), clip_negative: None, gates: None };
        let count = (recurrent_strength(strength) * u as f64).floor() as usize;
        for n in lowest((0..u).collect(), &per_class[class], count) {
            (0..steps).for_each(|t| mask.keep.remove(t * u + n));
        }
    }
}

/// The Dense layers' units: what [`prune`] ranks by the statistic and
/// learned relevance ([`super::learned`]) by training.
pub fn dense_layers(model: &Model, rec: &Recording) -> Vec<NodeId> {
    rec.moments.keys().copied().filter(|&n| family(model, n) == Some(Family::Dense)).collect()
}

/// Every Dense layer's relevance per unit for `class`: the share of the
/// margin it carries, `½ (μ_c + μ_other) · |g|` (summed over the positions of
/// a per-step Dense), or the standardised gap where the gradient does not reach.
pub(super) fn statistic_scores(model: &Model, rec: &Recording, class: usize) -> BTreeMap<NodeId, Vec<f32>> {
    dense_scores(model, rec, class, &margin_gradients(model, rec, class))
}

fn dense_scores(model: &Model, rec: &Recording, class: usize, grads: &BTreeMap<NodeId, Vec<f32>>) -> BTreeMap<NodeId, Vec<f32>> {
    dense_layers(model, rec)
        .into_iter()
        .map(|node| {
            let (m, channels) = (&rec.moments[&node], channels(model, node));
            let scores = match grads.get(&node) {
                Some(g) => {
                    let mut s = vec![0f32; channels];
                    carried(m, class).iter().zip(g).enumerate().for_each(|(u, (a, g))| s[u % channels] += a * g.abs());
                    s
                }
                None => relevance(m, class, channels),
            };
            (node, scores)
        })
        .collect()
}

/// Per Dense layer ([`dense_layers`]), the share of its units `strength`
/// removes ([`layer_strength`]).
pub(super) fn layer_shares(model: &Model, rec: &Recording, strength: f32) -> BTreeMap<NodeId, f64> {
    let nodes = dense_layers(model, rec);
    let weights = |n: NodeId| kernel_of(model, n).map_or(0, |k| model.nodes[k].op.params());
    let largest = nodes.iter().map(|&n| weights(n)).max().unwrap_or(0);
    nodes.iter().map(|&n| (n, layer_strength(strength, weights(n), largest))).collect()
}

/// Removes, in every Dense layer, `⌊share · n⌋` of its `n` units ([`layer_shares`]),
/// those with the lowest `score(node)` among the kept ones. Shared by the
/// statistic and learned relevance, so both remove as many units at a strength.
pub(super) fn remove_lowest(model: &Model, rec: &Recording, strength: f32, masks: &mut Masks, score: &dyn Fn(NodeId) -> Vec<f32>) {
    for (node, share) in layer_shares(model, rec, strength) {
        let Some(mask) = masks.nodes.get_mut(&node) else { continue };
        let channels = channels(model, node);
        let positions = mask.keep.len() / channels;
        // Only kept units compete; a unit of a per-step Dense is kept when any of its steps is.
        let kept = (0..channels).filter(|&ch| (0..positions).any(|p| mask.keep.contains(p * channels + ch))).collect();
        for ch in lowest(kept, &score(node), (share * channels as f64).floor() as usize) {
            (0..positions).for_each(|p| mask.keep.remove(p * channels + ch));
        }
    }
}

/// The `count` of `candidates` with the lowest `score` (ties: the lower
/// index first), always leaving one.
pub(super) fn lowest(mut candidates: Vec<usize>, score: &[f32], count: usize) -> Vec<usize> {
    candidates.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
    candidates.truncate(count.min(candidates.len().saturating_sub(1)));
    candidates
}

/// The share of its kept units a convolutional layer gives up at `strength`:
/// `min(1, 1.25 · s)`. Convolutional units are cheaper to remove than dense
/// ones (a position's evidence is also in its neighbours'). Measured at
/// strength 0.2 (composed top-1 change, module↔module Jaccard) with 1 / 1.25 /
/// 1.5: clothing CNN −0.8, 0.93 / −1.0, 0.85 / −1.4, 0.79; digits CNN +0.4,
/// 0.93 / +0.2, 0.89 / +0.1, 0.85; digits CNN B 0.0, 0.93 / −0.1, 0.89 / 0.0,
/// 0.85; residual CNN 0.0, 0.82 / −0.1, 0.78 / −0.2, 0.73 — 1.25 is the
/// largest that keeps every bundled CNN within a point.
fn conv_strength(strength: f32) -> f64 {
    (1.25 * strength as f64).min(1.0)
}

/// The tracked convolutional nodes whose channels relevance also removes
/// whole ([`channel_share`]): those at the model's coarsest resolution (the
/// fewest positions), where a channel is a feature the head reads more or
/// less directly. Earlier channels serve every class: on the tiny residual
/// CNN (ranked by the carried share summed over positions), removing a fifth
/// of the channels of one 14×14 or 28×28 layer cost 0.5–1.4 points at
/// strength 0.2 and freed 3–7 % of the weights; of one 7×7 layer, 0.1–0.3
/// points for 9–13 %. The same share in every layer, ranked by measured
/// damage, cost 1.5 points for 64 % kept weights where these layers alone
/// cost 0.3 for 59 %.
///
/// Each of their channels costs one forward pass over the calibration
/// samples to measure, so a model with more than [`MAX_MEASURED_CHANNELS`]
/// of them keeps unit pruning alone: ResNet-20 (six tracked 8×8 layers, 384
/// channels, 10 classes) would pay 384 passes over a tenth of the recorded
/// samples, about 38 recorded passes, where its whole decomposition costs 3.
pub(super) fn channel_layers(model: &Model, rec: &Recording) -> Vec<NodeId> {
    let convs: Vec<NodeId> = rec.moments.keys().copied().filter(|&n| family(model, n) == Some(Family::Conv)).collect();
    let positions = |n: NodeId| model.nodes[n].len() / channels(model, n).max(1);
    let coarsest = convs.iter().map(|&n| positions(n)).min();
    let layers: Vec<NodeId> = convs.into_iter().filter(|&n| Some(positions(n)) == coarsest).collect();
    let measured: usize = layers.iter().map(|&n| channels(model, n)).sum();
    if measured <= MAX_MEASURED_CHANNELS { layers } else { vec![] }
}

/// The most channels whole-channel removal measures ([`channel_layers`]):
/// the bundled residual CNN's two 7×7 layers hold 64.
const MAX_MEASURED_CHANNELS: usize = 64;

/// The share of its remaining channels a [`channel_layers`] node gives up
/// after its units: `min(½, 2 · s · w)`, `w` the share of the model's kernel
/// weights in the convolutions that write or read its channels
/// ([`super::weights::channel_weights`]). Why: a convolution's kernel weight
/// serves every position, so removing units frees no weight until a whole
/// channel goes, and a whole channel costs more than its units — worth it
/// only where the convolutions hold the model's weights. On the tiny residual
/// CNN (w = 0.71 and 0.50 for its two 7×7 layers) this takes strength 0.2 from
/// 94 % kept weights to 69 % for −0.1 → −0.5 points, and its front reaches
/// 58 % at 0.3 for −1.8; the bundled small CNNs (w ≤ 0.12, their weights are
/// in the Dense layers) lose at most one channel at 0.2. Measured at 0.2
/// (composed top-1 change, kept weights) with factor 2 / 3 / 4: residual CNN
/// −0.5, 69 % / −0.3, 59 % / −1.1, 51 %; fixture gmp_cnn +0.2, 64 % / +0.2,
/// 52 % / −1.2, 48 % (+0.2, 89 % without); fixture conv1d_cnn −3.3 / −5.0 /
/// −3.3 (−3.0 without). Factor 3 met the residual CNN's front at the default
/// already, but cost the never-seen conv1d_cnn 2 more points there; 2 keeps
/// the default near what it was. ½ caps the higher strengths: uncapped,
/// factor 3 cost the residual CNN 4.2 points at 0.3 and 35.5 at 0.5 (capped
/// 2.1 and 10.0).
fn channel_share(strength: f32, weights: f64) -> f64 {
    (2.0 * strength as f64 * weights).min(0.5)
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
    bent(strength, (weights as f64 / largest.max(1) as f64).min(1.0).powf(0.15))
}

/// `s · r / (1 − s · (1 − r))`: the strength bent below the diagonal by
/// `r ∈ (0, 1]`, still 0 at 0 and 1 at 1.
fn bent(strength: f32, r: f64) -> f64 {
    let s = strength as f64;
    s * r / (1.0 - s * (1.0 - r))
}

/// The share of its units a recurrent layer gives up at `strength`:
/// [`bent`] with `r = 4/19`, so that the default 0.2 removes the ICSE'23
/// `max_remove` (5 %), 0.35 removes 10 %, 0.5 17 %, 0.7 33 % and 1 all but one.
/// Removing a recurrent unit costs more than a dense one (every other unit
/// reads its state at the next step). Composed top-1 change on the twelve
/// many-to-one models (the bundled lang_a LSTM, GRU, SimpleRNN, lang_b LSTM;
/// the torch LSTM, GRU, RNN, bidirectional GRU; Keras 3 and Keras 2
/// Bidirectional LSTMs and hard-sigmoid LSTMs): at 0.2 −0.1 to +0.2 (layers
/// under 20 units remove nothing); at 0.35 −2.9 (the bundled SimpleRNN) and
/// −1.1 to +1.6 for the rest; at 0.5 up to −6.8.
pub(super) fn recurrent_strength(strength: f32) -> f64 {
    bent(strength, 4.0 / 19.0)
}

/// The Dense or Conv2D node whose output channels are tracked node `t`'s
/// units: `t` itself (its own activation), or the kernel right before it when
/// `t` is a separate activation layer and the kernel has no other consumer —
/// Keras's `Dense` + `LeakyReLU()`, `Conv2D` + `PReLU()`, or `Conv2D` +
/// `BatchNormalization` + `ReLU` (the BatchNorm read only by the activation).
/// Otherwise `None` (a ReLU after a residual Add is shared by the paths that
/// meet there; [`family`] still prunes its units).
pub fn kernel_of(model: &Model, t: NodeId) -> Option<NodeId> {
    let node = &model.nodes[t];
    match node.op {
        Op::Dense { .. } | Op::Conv2D { .. } => return Some(t),
        Op::Activation(_) | Op::PRelu { .. } => {}
        _ => return None,
    }
    let read_only_by = |src: NodeId, reader: NodeId| model.nodes.iter().enumerate().all(|(k, n)| k == reader || !n.inputs.contains(&src));
    let mut src = *node.inputs.first()?;
    let mut reader = t;
    // Conv → BatchNorm → activation (the residual net's blocks): the BatchNorm keeps the conv's channels.
    if matches!(model.nodes[src].op, Op::BatchNorm { .. }) && read_only_by(src, t) {
        reader = src;
        src = *model.nodes[src].inputs.first()?;
        if !matches!(model.nodes[src].op, Op::Conv2D { .. }) {
            return None;
        }
    }
    let channels_match = model.nodes[src].shape.last() == node.shape.last();
    (matches!(model.nodes[src].op, Op::Dense { .. } | Op::Conv2D { .. }) && read_only_by(src, reader) && channels_match).then_some(src)
}

/// How relevance prunes a tracked node's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A Dense layer's units.
    Dense,
    /// A convolution's units, each channel at each position: the activation
    /// of a Conv2D ([`kernel_of`]), or of a residual sum (an `Add`, which
    /// holds no weights of its own).
    Conv,
    /// A recurrent layer's units, each removed at every step, ranked by the
    /// measured change of the margin ([`UnitDamage`]).
    Recurrent,
}

/// Which family `t`'s units prune as, or `None` when relevance leaves them alone.
pub fn family(model: &Model, t: NodeId) -> Option<Family> {
    if matches!(model.nodes[t].op, Op::Recurrent(_)) {
        return Some(Family::Recurrent);
    }
    match kernel_of(model, t).map(|k| &model.nodes[k].op) {
        Some(Op::Dense { .. }) => Some(Family::Dense),
        Some(_) => Some(Family::Conv),
        None => {
            let node = &model.nodes[t];
            let after_sum =
                matches!(node.op, Op::Activation(_)) && node.inputs.first().is_some_and(|&i| matches!(model.nodes[i].op, Op::Add { .. }));
            let spatial = node.shape.len() == 3;
            (matches!(node.op, Op::Add { .. }) || after_sum).then_some(Family::Conv).filter(|_| spatial)
        }
    }
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
    fn conv_batchnorm_activation_chains_and_residual_sums_prune_as_convolutions() {
        let (m, [c1, r1, c2, r2]) = super::super::tests::tiny_residual([0.0, 0.0]);
        let (bn, head) = (c1 + 1, m.head);
        // The ReLU after Conv → BatchNorm owns the conv's channels; c2 is its own activation.
        assert_eq!((kernel_of(&m, r1), kernel_of(&m, c2)), (Some(c1), Some(c2)));
        // A BatchNorm that another layer also reads is not the activation's alone.
        assert_eq!(kernel_of(&m, bn), None);
        // The ReLU after the sum has no kernel of its own, but its units prune as a convolution's.
        assert_eq!(kernel_of(&m, r2), None);
        assert_eq!([family(&m, r1), family(&m, r2), family(&m, head)], [Some(Family::Conv), Some(Family::Conv), Some(Family::Dense)]);
        assert_eq!(family(&m, 0), None);
    }

    #[test]
    fn a_convolution_gives_up_its_least_carrying_units_not_whole_channels() {
        // Units 0..4 (2 positions × 2 channels) carry 4, 1, 3, 2: at share ½ of 4 kept units,
        // units 1 and 3 go — one position of each channel, so both channels stay.
        let gone = lowest(vec![0, 1, 2, 3], &[4.0, 1.0, 3.0, 2.0], 2);
        assert_eq!(gone, vec![1, 3]);
        // Never the last one, and ties go to the lower index.
        assert_eq!(lowest(vec![2, 0], &[1.0, 0.0, 1.0], 5), vec![0]);
        assert_eq!(lowest(vec![1, 0, 2], &[1.0, 1.0, 1.0], 2), vec![0, 1]);
        assert!((conv_strength(0.2) - 0.25).abs() < 1e-6 && conv_strength(1.0) == 1.0);
        // Whole channels: 2 · s · w, at most half.
        assert!((channel_share(0.2, 0.5) - 0.2).abs() < 1e-6 && channel_share(0.5, 0.71) == 0.5 && channel_share(0.2, 0.0) == 0.0);
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

//! Class relevance of recurrent units: what removing each unit does to each
//! class's margin, measured by removing it (ALGORITHMS.md §7, "Recurrent
//! layers under the strength").
//!
//! Why measured and not estimated from the recording, as dense and conv units
//! are: a recurrent unit's state feeds every unit at the next step, so a unit
//! that carries little to the head at the last step can still steer the
//! others. On the twelve many-to-one models measured (the four bundled, eight
//! trained by other scripts), removing 20 % of each layer's units by the
//! carried share at the last step (`½ (μ_c + μ_other) · |g|`, the dense rule)
//! cost up to 13.5 points (the bundled SimpleRNN), by the ICSE'23 statistic
//! up to 28.6; removing the units whose removal changes the margin least cost
//! at most 6.9 (calibrated margins in all three).
//!
//! Cost: one forward pass over the calibration samples per recurrent unit —
//! units ÷ classes recorded passes — once per recording; every strength reads
//! the same table.
//!
//! The channels relevance drops whole (`relevance::channel_layers`) are
//! measured the same way, each removed at every position: ranked by the
//! carried share summed over a channel's positions instead, a small fixture
//! whose last convolution feeds the head through a global max pool
//! (tests/fixtures/layers/gmp_cnn, 16 channels) lost 6.0 points at strength
//! 0.2 when 7 of them went, 1.7 with 5; by the measured damage, 7 cost
//! nothing (+0.2 → +0.2). The tiny residual CNN lost about as much either way.

use std::collections::BTreeMap;

use super::model_margin;
use crate::engine::bits::BitSet;
use crate::engine::model::{Masks, Model, NodeId, Op, UnitMask, forward};
use crate::engine::parallel;
use crate::error::Result;

/// Per recurrent node (per unit) or convolutional node (per channel), per
/// class: the mean `|Δ(z_c − z_uc)|` when the unit is removed at every step
/// (the channel at every position), class `c`'s samples and the others
/// weighing one half each (the balanced "is it `c`?" task a module solves).
#[derive(Debug, Default)]
pub struct UnitDamage(pub BTreeMap<NodeId, Vec<Vec<f32>>>);

impl UnitDamage {
    /// Every recurrent layer of `model` and every channel of the tracked
    /// convolutional nodes `channels_of`, measured on `n` samples `x` with
    /// `labels` and the full model's `logits` on them (`n × classes`).
    pub fn measure(model: &Model, channels_of: &[NodeId], x: &[f32], n: usize, labels: &[usize], logits: &[f32]) -> Result<UnitDamage> {
        let k = model.classes();
        let mut all = BTreeMap::new();
        for (node, nd) in model.nodes.iter().enumerate() {
            // Units are the last axis of the mask: a step-major recurrent state, a position-major conv output.
            let (len, u) = match &nd.op {
                Op::Recurrent(r) => (model.steps(node) * r.units, r.units),
                _ if channels_of.contains(&node) => (nd.len(), nd.shape.last().copied().unwrap_or(1)),
                _ => continue,
            };
            let per_unit = parallel::map(u, |unit| -> Result<Vec<f32>> {
                let mut keep = BitSet::full(len);
                (0..len / u).for_each(|t| keep.remove(t * u + unit));
                let masks = Masks { nodes: [(node, UnitMask { keep, clip_negative: None, gates: None })].into() };
                let out = forward(model, x, n, Some(&masks), false, &mut |_, _| true)?;
                Ok((0..k).map(|c| balanced_change(&out.logits, logits, labels, k, c)).collect())
            });
            let per_unit = per_unit.into_iter().collect::<Result<Vec<_>>>()?;
            all.insert(node, (0..k).map(|c| per_unit.iter().map(|v| v[c]).collect()).collect());
        }
        Ok(UnitDamage(all))
    }
}

/// Mean `|margin − margin before|` for class `c`, its samples and the others' weighing alike.
fn balanced_change(after: &[f32], before: &[f32], labels: &[usize], k: usize, c: usize) -> f32 {
    let (mut sum, mut count) = ([0f64; 2], [0usize; 2]);
    for (i, &y) in labels.iter().enumerate() {
        let side = usize::from(y != c);
        sum[side] += (model_margin(after, k, i, c) - model_margin(before, k, i, c)).abs() as f64;
        count[side] += 1;
    }
    (0..2).map(|s| 0.5 * sum[s] / count[s].max(1) as f64).sum::<f64>() as f32
}

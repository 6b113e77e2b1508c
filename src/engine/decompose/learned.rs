//! Learned class relevance (the `relevance: learned` setting; in the spirit
//! of SeaM, Qi et al. ICSE'23) for the Dense layers: instead of ranking a
//! module's Dense units by statistics of the recorded pass alone
//! ([`super::relevance`]), each module learns which units to drop at the
//! requested strength, by gradient steps on one logit `θ_u` per unit of the
//! nodes [`super::relevance::dense_layers`] lists — with the model's weights
//! frozen ([`GatedNet`] runs the gated forward and backward passes). The
//! convolutions keep the statistic's units (fixed gates while training).
//!
//! - **Masks while training**: in every layer the units with the lowest `θ`,
//!   as many as the strength removes ([`super::relevance::layer_shares`],
//!   [`super::relevance::lowest`]), get gate 0, the others 1; units the
//!   faithful CI/TI masks removed stay at 0. The gradient with respect to a
//!   gate goes straight through to its `θ`, so a removed unit whose return
//!   would lower the loss climbs back and a kept one that hurts sinks. `θ`
//!   starts at the statistic's ranking (`rank / n`), so step 0 is the
//!   statistic's module.
//! - **Loss**, over every recorded sample (class `c` weighing one half, the
//!   others the other half), of the gated margin `m = z_c − z_uc`: the
//!   logistic loss of "is it `c`?" on `m / τ`, plus `β (m − m_full)² /
//!   var(m_full)`, which keeps the margin close to the full model's (what the
//!   module's calibration maps it to, and what the composition compares).
//! - **Optimiser**: SGD with momentum 0.9 on `θ`, [`STEPS`] minibatches of
//!   [`BATCH`] drawn in a fixed order (a seed per class).
//! - **Masks**: at the end, the same removal from the learned `θ`
//!   ([`prune_learned`]); backtracking and calibration follow as usual. The
//!   masks depend on the strength, so each strength trains anew (cached per
//!   strength in the recording).
//!
//! Cost: only what a gate can change runs each step (a dense model's first
//! layer is computed once); with the defaults a module sees 6,400 samples
//! forward and backward. Measured on the bundled models (decompose and score,
//! native, 2 threads): MLPs 0.2 s for all ten modules, the digits and
//! clothing CNNs 2.5 s, digits CNN B 4 s, per strength.
//!
//! Measured against the statistic on the front (docs/ALGORITHMS.md §7 has
//! the table): it wins on the MLPs at strength 0.35–0.5 (digits −1.3/−2.2
//! against −1.9/−4.6, clothing −0.5/−1.5 against −1.8/−2.3, at lower
//! Jaccard) and not on the CNNs (their dense layer learned, their
//! convolutions by the statistic: −0.1 to −2.4 points worse at 0.35–0.5).
//!
//! Everything is sequential within a class and sums in a fixed order;
//! classes run in parallel and return in order, so the masks do not depend
//! on the thread count.

use std::collections::BTreeMap;

use super::relevance::{channels, dense_layers, layer_shares, lowest};
use crate::engine::bits::BitSet;
use crate::engine::kernels::activation::sigmoid;
use crate::engine::model::{Constants, GatedNet, Gating, Masks, Model, NodeId, Op, Recording, Tape};
use crate::error::Result;

/// Per Dense layer, the learned logit of each unit.
pub type Theta = BTreeMap<NodeId, Vec<f32>>;

/// Minibatches per module.
pub const STEPS: usize = 200;
/// Samples per minibatch.
pub const BATCH: usize = 32;
/// SGD step size (momentum 0.9).
const LR: f32 = 0.05;
/// Weight of the distillation term.
const BETA: f32 = 10.0;
/// Temperature of the logistic term.
const TAU: f32 = 4.0;

/// What every class's training shares: the model prepared for gated passes
/// and its constant values over every recorded sample.
pub struct Trainer<'m> {
    model: &'m Model,
    rec: &'m Recording,
    net: GatedNet<'m>,
    consts: Constants,
    nodes: Vec<NodeId>,
}

impl<'m> Trainer<'m> {
    /// `x`: the recorded samples' inputs, `n` of them.
    pub fn new(model: &'m Model, rec: &'m Recording, x: &[f32], n: usize) -> Result<Self> {
        let masked: Vec<NodeId> = rec.nodes.iter().copied().filter(|&t| !matches!(model.nodes[t].op, Op::Recurrent(_))).collect();
        let net = GatedNet::new(model, &masked)?;
        let consts = net.constants(x, n)?;
        Ok(Trainer { model, rec, net, consts, nodes: dense_layers(model, rec) })
    }

    /// The unit logits of `class`'s module at `strength`: `faithful` its CI/TI
    /// masks (before relevance), `labels` per recorded sample, `full` the full
    /// model's channeled margins of every class for every recorded sample
    /// (`n × classes`), `statistic` the statistic's scores (the start).
    pub fn learn(
        &self,
        class: usize,
        faithful: &Masks,
        labels: &[usize],
        full: &[f32],
        strength: f32,
        statistic: &BTreeMap<NodeId, Vec<f32>>,
    ) -> Result<Theta> {
        let model = self.model;
        let classes = model.classes();
        let n = labels.len();
        let mut gating = Gating::default();
        for (&node, m) in &faithful.nodes {
            if m.keep.count() < m.keep.len() {
                gating.fixed.insert(node, (0..m.keep.len()).map(|u| m.keep.contains(u) as u8 as f32).collect());
            }
        }
        // θ starts at the statistic's ranking.
        let rank = |t: NodeId| -> Vec<f32> {
            let c = channels(model, t);
            let mut r = vec![0f32; c];
            if let Some(sc) = statistic.get(&t) {
                let mut order: Vec<usize> = (0..c).collect();
                order.sort_by(|&a, &b| sc[a].total_cmp(&sc[b]).then(a.cmp(&b)));
                order.iter().enumerate().for_each(|(k, &ch)| r[ch] = k as f32 / c as f32);
            }
            r
        };
        let mut theta: Theta = self.nodes.iter().map(|&t| (t, rank(t))).collect();
        let mut velocity: Theta = self.nodes.iter().map(|&t| (t, vec![0.0; channels(model, t)])).collect();
        if n == 0 || self.nodes.is_empty() || strength <= 0.0 {
            return Ok(theta);
        }
        // Channels the faithful masks kept (any position), and each layer's share at the strength.
        let kept: BTreeMap<NodeId, Vec<bool>> = self
            .nodes
            .iter()
            .map(|&t| {
                let ch = channels(model, t);
                let keep = &faithful.nodes[&t].keep;
                (t, (0..ch).map(|c| (0..keep.len() / ch).any(|p| keep.contains(p * ch + c))).collect())
            })
            .collect();
        let shares = layer_shares(model, self.rec, strength);
        let full_margins: Vec<f32> = (0..n).map(|i| full[i * classes + class]).collect();
        // Class `c` weighs one half, the other classes the other half.
        let concerned = BitSet::from_indices(n, (0..n).filter(|&i| labels[i] == class));
        let wc = 0.5 / concerned.count().max(1) as f32;
        let wu = 0.5 / (n - concerned.count()).max(1) as f32;
        let weight = |i: usize| if concerned.contains(i) { wc } else { wu };
        let mean_t = (0..n).map(|i| weight(i) * full_margins[i]).sum::<f32>();
        let var_t = (0..n).map(|i| weight(i) * (full_margins[i] - mean_t).powi(2)).sum::<f32>().max(1e-6);
        let mut rng = 0x9e3779b97f4a7c15u64 ^ (class as u64).wrapping_mul(0xbf58476d1ce4e5b9);
        let mut order: Vec<usize> = (0..n).collect();
        let mut at = n;
        let batch = BATCH.clamp(1, n);
        let mut tape = Tape::default();
        for _ in 0..STEPS {
            // The next minibatch of a reshuffled pass over the samples (Fisher–Yates, xorshift).
            if at + batch > n {
                for i in (1..n).rev() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    order.swap(i, (rng % (i as u64 + 1)) as usize);
                }
                at = 0;
            }
            let idx = &order[at..at + batch];
            at += batch;
            gating.gates = theta
                .iter()
                .map(|(&t, th)| {
                    let mut g = vec![1f32; th.len()];
                    let count = (shares[&t] * th.len() as f64).floor() as usize;
                    lowest((0..th.len()).filter(|&c| kept[&t][c]).collect(), th, count).into_iter().for_each(|c| g[c] = 0.0);
                    (t, g)
                })
                .collect();
            self.net.forward_into(&self.consts, idx, &gating, &mut tape)?;
            let z = tape.logits(model);
            let total: f32 = idx.iter().map(|&i| weight(i)).sum();
            let mut d = vec![0f32; idx.len() * classes];
            for (k, &i) in idx.iter().enumerate() {
                let zs = &z[k * classes..(k + 1) * classes];
                let m = zs[class] - (zs.iter().sum::<f32>() - zs[class]) / (classes - 1).max(1) as f32;
                let y = if labels[i] == class { 1.0 } else { -1.0 };
                // d/dm of softplus(−y·m/τ) + β (m − m_full)² / var.
                let dm = -y * sigmoid(-y * m / TAU) / TAU + BETA * 2.0 * (m - full_margins[i]) / var_t;
                let dm = dm * weight(i) / total;
                for (j, dz) in d[k * classes..(k + 1) * classes].iter_mut().enumerate() {
                    *dz = if j == class { dm } else { -dm / (classes - 1).max(1) as f32 };
                }
            }
            let grads = self.net.backward(&mut tape, &d, &gating);
            for (&t, th) in theta.iter_mut() {
                let (Some(g), v) = (grads.get(&t), velocity.get_mut(&t).expect("same keys")) else { continue };
                for ch in 0..th.len() {
                    // Straight through: ∂loss/∂θ is taken as ∂loss/∂gate.
                    v[ch] = 0.9 * v[ch] + g[ch];
                    th[ch] -= LR * v[ch];
                }
            }
        }
        Ok(theta)
    }
}

/// Removes from `masks` the units with the lowest learned logits (see the module docs).
pub fn prune_learned(model: &Model, rec: &Recording, theta: &Theta, strength: f32, masks: &mut Masks) {
    if strength <= 0.0 {
        return;
    }
    super::relevance::remove_lowest(model, rec, strength, masks, &|node| {
        theta.get(&node).cloned().unwrap_or_else(|| vec![0.0; channels(model, node)])
    });
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};

    use super::super::tests::{dataset, mlp};
    use super::super::{Head, Mode, Relevance, Settings, decompose};

    /// A deterministic pseudo-random number in [−1, 1).
    fn rnd(state: &mut u64) -> f32 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// 3 classes of 6-feature samples (class k lifts features 2k and 2k+1), an MLP 6 → 12 → 3.
    fn problem() -> (crate::engine::model::Model, crate::engine::data::Dataset) {
        let mut s = 11u64;
        let w1 = Array2::from_shape_fn((6, 12), |_| rnd(&mut s));
        let b1 = Array1::from_shape_fn(12, |_| 0.1 * rnd(&mut s));
        let w2 = Array2::from_shape_fn((12, 3), |_| rnd(&mut s));
        let m = mlp(w1, b1, w2, Array1::zeros(3));
        let (mut x, mut y) = (vec![], vec![]);
        for i in 0..60 {
            let c = i % 3;
            x.extend((0..6).map(|f| if f / 2 == c { 1.0 } else { 0.0 } + 0.3 * rnd(&mut s)));
            y.push(c as u32);
        }
        (m, dataset(x, y, 6, 3))
    }

    #[test]
    fn learned_masks_are_the_same_twice_and_remove_as_many_units_as_the_statistic() {
        let (m, d) = problem();
        let learned = Settings { samples_per_class: 20, strength: 0.5, relevance: Relevance::Learned, ..Settings::default() };
        let a = decompose(&m, &d, &learned, &mut |_| true).unwrap();
        let b = decompose(&m, &d, &learned, &mut |_| true).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.modules, b.modules);
        let statistic = decompose(&m, &d, &Settings { relevance: Relevance::Statistic, ..learned.clone() }, &mut |_| true).unwrap();
        for (l, s) in a.modules.iter().zip(&statistic.modules) {
            assert_eq!(l.masks.nodes[&1].keep.count(), s.masks.nodes[&1].keep.count(), "class {}", l.class);
            assert!(l.calibration.is_some());
        }
    }

    #[test]
    fn learned_relevance_is_refused_for_a_model_without_a_dense_layer_to_train() {
        use crate::engine::kernels::PoolKind;
        use crate::engine::model::{Activation, InputKind, InputSpec, ModelBuilder, Op, Padding};
        use ndarray::Array4;
        // 2×2×1 images → a 1×1 conv with 2 ReLU channels → global pooling → the head (not tracked).
        let mut b = ModelBuilder::new("convs", InputSpec::new(vec![2, 2, 1], InputKind::Image)).unwrap();
        let conv = Op::Conv2D {
            kernel: Array4::from_shape_vec((1, 1, 1, 2), vec![1.0, -1.0]).unwrap(),
            bias: Array1::from(vec![0.0, 1.0]),
            strides: [1, 1],
            padding: Padding::Valid,
            activation: Activation::Relu,
        };
        b.push("c", conv).unwrap();
        b.push("gap", Op::GlobalPool(PoolKind::Avg)).unwrap();
        let head = Op::Dense {
            kernel: Array2::from_shape_vec((2, 2), vec![1.0, -1.0, -1.0, 1.0]).unwrap(),
            bias: Array1::zeros(2),
            activation: Activation::Softmax,
        };
        b.push("out", head).unwrap();
        let m = b.finish(vec!["0".into(), "1".into()]).unwrap();
        let x: Vec<f32> = (0..8).flat_map(|i| [if i % 2 == 0 { 1.0 } else { 0.0 }; 4]).collect();
        let mut d = dataset(x, (0..8).map(|i| (i % 2) as u32).collect(), 4, 2);
        d.sample_shape = vec![2, 2, 1];
        // (At 0.5 relevance would remove one of the two channels whole and backtracking the other.)
        let statistic = Settings { samples_per_class: 4, strength: 0.3, ..Settings::default() };
        decompose(&m, &d, &statistic, &mut |_| true).unwrap();
        let e = decompose(&m, &d, &Settings { relevance: Relevance::Learned, ..statistic }, &mut |_| true).unwrap_err().to_string();
        assert!(e.contains("relevance 'learned'") && e.contains("'convs'"), "{e}");
    }

    #[test]
    fn learned_relevance_is_refused_where_it_does_not_apply_and_left_out_of_json_by_default() {
        let learned = Settings { relevance: Relevance::Learned, ..Settings::default() };
        learned.validate().unwrap();
        for s in [Settings { head: Head::Reference, ..learned.clone() }, Settings { mode: Mode::Reference, ..learned.clone() }] {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("relevance 'learned'"), "{e}");
        }
        assert!(!serde_json::to_string(&Settings::default()).unwrap().contains("relevance"));
        let json = serde_json::to_string(&learned).unwrap();
        assert!(json.contains(r#""relevance":"learned""#), "{json}");
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), learned);
    }
}

//! Learned class relevance (the `relevance: learned` setting; SeaM, Pan &
//! Rajan ICSE'23, in spirit): instead of ranking a module's units from
//! statistics of the recorded pass ([`super::relevance`]), each module trains
//! one gate per prunable unit — a Dense unit, or a convolution's output
//! channel, of the nodes [`super::relevance::prunable`] lists — with the
//! model's weights frozen, and ranks the units by the learned gate logits.
//!
//! - **Gates**: `g_u = σ(θ_u)` multiplies unit `u`'s output (every position of
//!   a channel); units the faithful CI/TI masks removed stay at 0. `θ` starts
//!   at [`Hyper::init`] (`g ≈ 0.95`).
//! - **Loss**, over the module's decomposition samples (concerned and
//!   unconcerned, each set weighing one half), of the gated margin
//!   `m = z_c − z_uc`: the logistic loss of "is it `c`?" on `m / τ`, plus
//!   `β · (m − m_full)² / var(m_full)` keeping the margin near the full
//!   model's (which the composition's calibration maps to), plus
//!   `λ · Σ_layers w_l · mean(g)` with `w_l` the layer's share of the prunable weights.
//! - **Optimiser**: Adam on `θ`, minibatches drawn in a fixed order from a
//!   seed per class, [`Hyper::steps`] steps; the weights never change.
//! - **Masks**: at strength `s` each layer removes as many units as the
//!   statistic does ([`super::relevance::remove_lowest`]), lowest `θ` first, so the
//!   two slot into the same front; backtracking and calibration follow as usual.
//!   The `θ` of every class are learned once per recording and serve every strength.
//!
//! Everything is sequential within a class and sums in a fixed order
//! ([`GatedNet`]); classes run in parallel and return in order, so the masks
//! do not depend on the thread count.

use std::collections::BTreeMap;

use super::relevance::{channels, prunable};
use crate::engine::bits::BitSet;
use crate::engine::kernels::activation::sigmoid;
use crate::engine::model::{Constants, GatedNet, Gating, Masks, Model, NodeId, Op, Recording, Tape};
use crate::error::Result;

/// Per prunable node, the learned gate logit of each channel.
pub type Theta = BTreeMap<NodeId, Vec<f32>>;

/// The training's constants (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub steps: usize,
    pub batch: usize,
    pub lr: f32,
    pub init: f32,
    pub lambda: f32,
    pub beta: f32,
    pub tau: f32,
    /// Train the masks of one strength: the gates of the units it removes are 0
    /// in the forward pass, the gradient passes straight through to `θ`.
    pub hard: bool,
    /// Every recorded sample (concerned half, the others half), not only the module's.
    pub all: bool,
    /// `θ` starts at `init + spread · (rank of the statistic score) / n`.
    pub spread: f32,
    /// SGD with momentum 0.9 instead of Adam.
    pub sgd: bool,
    /// The logistic term asks the margin to win (or lose) against the full model's
    /// best other margin (or winner's), as the composition will, not to be > 0.
    pub rank: bool,
    /// The task term is the cross-entropy of the model's winner among [t_1 … m … t_K] (needs `rank`).
    pub softmax: bool,
}

pub const HYPER: Hyper = Hyper {
    steps: 200,
    batch: 64,
    lr: 0.05,
    init: 3.0,
    lambda: 1.0,
    beta: 1.0,
    tau: 4.0,
    hard: false,
    all: false,
    spread: 0.0,
    sgd: false,
    rank: false,
    softmax: false,
};

/// The key a class's `θ` are cached under in a recording: the strength when they depend on it.
pub fn cache_key(strength: f32) -> u32 {
    if hyper().hard { strength.to_bits() } else { 0 }
}

fn hyper() -> Hyper {
    let mut h = HYPER;
    let get = |k: &str| std::env::var(format!("REMODULE_LEARN_{k}")).ok().and_then(|v| v.parse::<f32>().ok());
    if let Some(v) = get("STEPS") {
        h.steps = v as usize;
    }
    if let Some(v) = get("BATCH") {
        h.batch = v as usize;
    }
    if let Some(v) = get("LR") {
        h.lr = v;
    }
    if let Some(v) = get("INIT") {
        h.init = v;
    }
    if let Some(v) = get("LAMBDA") {
        h.lambda = v;
    }
    if let Some(v) = get("BETA") {
        h.beta = v;
    }
    if let Some(v) = get("TAU") {
        h.tau = v;
    }
    if let Some(v) = get("HARD") {
        h.hard = v != 0.0;
    }
    if let Some(v) = get("ALL") {
        h.all = v != 0.0;
    }
    if let Some(v) = get("SOFTMAX") {
        h.softmax = v != 0.0;
    }
    if let Some(v) = get("RANK") {
        h.rank = v != 0.0;
    }
    if let Some(v) = get("SGD") {
        h.sgd = v != 0.0;
    }
    if let Some(v) = get("SPREAD") {
        h.spread = v;
    }
    h
}

/// What every class's training shares: the model prepared for gated passes
/// and its constant values over every recorded sample.
pub struct Trainer<'m> {
    model: &'m Model,
    rec: &'m Recording,
    net: GatedNet<'m>,
    consts: Constants,
    nodes: Vec<NodeId>,
    /// Per prunable node, its share of the prunable weights.
    share: BTreeMap<NodeId, f32>,
    hyper: Hyper,
}

impl<'m> Trainer<'m> {
    /// `x`: the recorded samples' inputs, `n` of them.
    pub fn new(model: &'m Model, rec: &'m Recording, x: &[f32], n: usize) -> Result<Self> {
        let masked: Vec<NodeId> = rec.nodes.iter().copied().filter(|&t| !matches!(model.nodes[t].op, Op::Recurrent(_))).collect();
        let net = GatedNet::new(model, &masked)?;
        let consts = net.constants(x, n)?;
        let nodes = prunable(model, rec);
        let weights = |t: NodeId| super::relevance::kernel_of(model, t).map_or(0, |k| model.nodes[k].op.params()) as f32;
        let total: f32 = nodes.iter().map(|&t| weights(t)).sum::<f32>().max(1.0);
        let share = nodes.iter().map(|&t| (t, weights(t) / total)).collect();
        Ok(Trainer { model, rec, net, consts, nodes, share, hyper: hyper() })
    }

    /// The gate logits of `class`'s module: `faithful` its CI/TI masks (before
    /// relevance), `labels` per recorded sample and `full` the full model's
    /// channeled margins of every class for every recorded sample (`n × classes`).
    #[allow(clippy::too_many_arguments)]
    pub fn learn(
        &self,
        class: usize,
        faithful: &Masks,
        concerned: &BitSet,
        unconcerned: &BitSet,
        labels: &[usize],
        full: &[f32],
        strength: f32,
        statistic: &BTreeMap<NodeId, Vec<f32>>,
    ) -> Result<Theta> {
        let (model, h) = (self.model, self.hyper);
        let classes = model.classes();
        let full_margins: Vec<f32> = (0..labels.len()).map(|i| full[i * classes + class]).collect();
        // The composition's view: does the model pick `class` for sample i, and the margin to beat
        // (the runner-up's when it does, the winner's when it does not).
        let contest: Vec<(f32, f32)> = (0..labels.len())
            .map(|i| {
                let t = &full[i * classes..(i + 1) * classes];
                let other = (0..classes).filter(|&k| k != class).map(|k| t[k]).fold(f32::NEG_INFINITY, f32::max);
                if t[class] >= other { (1.0, other) } else { (-1.0, other) }
            })
            .collect();
        let mut gating = Gating::default();
        for (&node, m) in &faithful.nodes {
            if m.keep.count() < m.keep.len() {
                gating.fixed.insert(node, (0..m.keep.len()).map(|u| m.keep.contains(u) as u8 as f32).collect());
            }
        }
        let rank = |t: NodeId| -> Vec<f32> {
            let n = channels(model, t);
            let mut r = vec![0f32; n];
            if let Some(sc) = statistic.get(&t) {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| sc[a].total_cmp(&sc[b]).then(a.cmp(&b)));
                order.iter().enumerate().for_each(|(k, &ch)| r[ch] = k as f32 / n as f32);
            }
            r
        };
        let mut theta: Theta = self.nodes.iter().map(|&t| (t, rank(t).iter().map(|r| h.init + h.spread * r).collect())).collect();
        let (mut m1, mut m2): (Theta, Theta) = (theta.clone(), theta.clone());
        m1.values_mut().chain(m2.values_mut()).for_each(|v| v.fill(0.0));
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
        let shares = super::relevance::layer_shares(model, self.rec, strength);
        // Samples and their weights: each set weighs one half.
        let samples: Vec<usize> = if h.all {
            (0..labels.len()).collect()
        } else {
            concerned.iter().chain(unconcerned.iter().filter(|&i| !concerned.contains(i))).collect()
        };
        if samples.is_empty() || self.nodes.is_empty() {
            return Ok(theta);
        }
        let (concerned, unconcerned) = if h.all {
            let n = labels.len();
            (
                &BitSet::from_indices(n, (0..n).filter(|&i| labels[i] == class)),
                &BitSet::from_indices(n, (0..n).filter(|&i| labels[i] != class)),
            )
        } else {
            (concerned, unconcerned)
        };
        let wc = 0.5 / concerned.count().max(1) as f32;
        let wu = 0.5 / unconcerned.count().max(1) as f32;
        let weight = |i: usize| if labels[i] == class { wc } else { wu };
        let mean_t = samples.iter().map(|&i| weight(i) * full_margins[i]).sum::<f32>();
        let var_t = samples.iter().map(|&i| weight(i) * (full_margins[i] - mean_t).powi(2)).sum::<f32>().max(1e-6);
        let mut rng = 0x9e3779b97f4a7c15u64 ^ (class as u64).wrapping_mul(0xbf58476d1ce4e5b9);
        let mut order = samples.clone();
        let mut at = order.len();
        let batch = h.batch.clamp(1, samples.len());
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (mut p1, mut p2) = (1f32, 1f32);
        let mut tape = Tape::default();
        let debug = std::env::var("REMODULE_LEARN_DEBUG").is_ok();
        let fixed = gating.clone();
        let evaluate = |theta: &Theta, tape: &mut Tape| -> Result<(f32, f32)> {
            let mut g = fixed.clone();
            g.gates = theta
                .iter()
                .map(|(&t, th)| {
                    let mut v = vec![1f32; th.len()];
                    super::relevance::lowest(th, |c| kept[&t][c], shares[&t]).into_iter().for_each(|c| v[c] = 0.0);
                    (t, v)
                })
                .collect();
            let all: Vec<usize> = (0..labels.len()).collect();
            self.net.forward_into(&self.consts, &all, &g, tape)?;
            let z = tape.logits(model);
            let (mut mse, mut wrong, mut wsum) = (0f32, 0f32, 0f32);
            for &i in &all {
                let zs = &z[i * classes..(i + 1) * classes];
                let m = zs[class] - (zs.iter().sum::<f32>() - zs[class]) / (classes - 1).max(1) as f32;
                let w = if labels[i] == class { 0.5 / concerned.count() as f32 } else { 0.5 / unconcerned.count() as f32 };
                let w = if h.all { w } else { 1.0 / labels.len() as f32 };
                mse += w * (m - full_margins[i]).powi(2);
                wrong += w * (((m > 0.0) != (labels[i] == class)) as u8 as f32);
                wsum += w;
            }
            Ok((mse / wsum, wrong / wsum))
        };
        if debug {
            let (a, b) = evaluate(&theta, &mut tape)?;
            eprintln!("class {class} start mse {a:.3} err {b:.4}");
        }
        for _ in 0..h.steps {
            // The next minibatch of a reshuffled pass over the samples (Fisher–Yates, fixed seed).
            if at + batch > order.len() {
                for i in (1..order.len()).rev() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    order.swap(i, (rng % (i as u64 + 1)) as usize);
                }
                at = 0;
            }
            let idx = &order[at..at + batch];
            at += batch;
            gating.gates = if h.hard {
                theta
                    .iter()
                    .map(|(&t, th)| {
                        let mut g = vec![1f32; th.len()];
                        super::relevance::lowest(th, |c| kept[&t][c], shares[&t]).into_iter().for_each(|c| g[c] = 0.0);
                        (t, g)
                    })
                    .collect()
            } else {
                theta.iter().map(|(&t, th)| (t, th.iter().map(|&v| sigmoid(v)).collect())).collect()
            };
            self.net.forward_into(&self.consts, idx, &gating, &mut tape)?;
            let z = tape.logits(model);
            let total: f32 = idx.iter().map(|&i| weight(i)).sum();
            let mut d = vec![0f32; idx.len() * classes];
            for (k, &i) in idx.iter().enumerate() {
                let zs = &z[k * classes..(k + 1) * classes];
                let m = zs[class] - (zs.iter().sum::<f32>() - zs[class]) / (classes - 1).max(1) as f32;
                let (y, thr) = if h.rank { contest[i] } else { (if labels[i] == class { 1.0 } else { -1.0 }, 0.0) };
                // d/dm of softplus(−y·(m − thr)/τ) and of β (m − t)² / var.
                let task = if h.softmax {
                    // Cross-entropy of the model's winner under softmax([t_1 … m … t_K] / τ).
                    let t = &full[i * classes..(i + 1) * classes];
                    let top = (0..classes).map(|k| if k == class { m } else { t[k] }).fold(f32::NEG_INFINITY, f32::max);
                    let e = |v: f32| crate::engine::kernels::activation::exp((v - top) / h.tau);
                    let sum: f32 = (0..classes).map(|k| e(if k == class { m } else { t[k] })).sum();
                    (e(m) / sum - (y > 0.0) as u8 as f32) / h.tau
                } else {
                    -y * sigmoid(-y * (m - thr) / h.tau) / h.tau
                };
                let dm = task + h.beta * 2.0 * (m - full_margins[i]) / var_t;
                let dm = dm * weight(i) / total;
                for (j, dz) in d[k * classes..(k + 1) * classes].iter_mut().enumerate() {
                    *dz = if j == class { dm } else { -dm / (classes - 1).max(1) as f32 };
                }
            }
            let grads = self.net.backward(&mut tape, &d, &gating);
            p1 *= b1;
            p2 *= b2;
            for (&t, th) in theta.iter_mut() {
                let g_gate = grads.get(&t);
                let (ma, va) = (m1.get_mut(&t).expect("same keys"), m2.get_mut(&t).expect("same keys"));
                let sparsity = h.lambda * self.share[&t] / th.len() as f32;
                for ch in 0..th.len() {
                    // Straight through (hard gates), or through σ.
                    let slope = if h.hard { 1.0 } else { sigmoid(th[ch]) * (1.0 - sigmoid(th[ch])) };
                    let g = (g_gate.map_or(0.0, |g| g[ch]) + sparsity) * slope;
                    if h.sgd {
                        ma[ch] = 0.9 * ma[ch] + g;
                        th[ch] -= h.lr * ma[ch];
                        continue;
                    }
                    ma[ch] = b1 * ma[ch] + (1.0 - b1) * g;
                    va[ch] = b2 * va[ch] + (1.0 - b2) * g * g;
                    let (mh, vh) = (ma[ch] / (1.0 - p1), va[ch] / (1.0 - p2));
                    th[ch] -= h.lr * mh / (vh.sqrt() + eps);
                }
            }
        }
        if debug {
            let (a, b) = evaluate(&theta, &mut tape)?;
            eprintln!("class {class} end   mse {a:.3} err {b:.4}");
        }
        Ok(theta)
    }
}

/// Removes from `masks` the units with the lowest learned gate logits (see the module docs).
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

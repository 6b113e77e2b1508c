//! How a module turns the masked network's logits into its concerned score
//! (ALGORITHMS.md §3 and §5).
//!
//! - [`Head::Two`] (default): the channeled 2-unit head, `p_c = σ(z_c − z_uc)`
//!   (a module pruned by relevance standardises the margin first, [`Calibration`](super::Calibration)).
//! - [`Head::Reference`]: the authors' dense code — the module keeps an
//!   N-output layer in which `V_c` and `V_uc` are the only non-zero logits
//!   (the other N−2 are exactly 0 and still enter the softmax), after CM-RIE
//!   (hidden units of the layer feeding the head with `|w_c| < 0.05` are
//!   "irrelevant" and merged into one unit). A module then *votes* when its
//!   own answer is its class, and composition prefers voters (§5).
//!
//! Scores are what composition ranks. With `Two` a score is the log-odds of
//! `p_c`, i.e. the (calibrated) margin `z_c − z_uc` itself, and `p_c = σ(score)`
//! ([`Head::probability`]). Ranking the probabilities instead ties: σ rounds to
//! 1.0 in f32 from a margin of about 17, and `z_uc` is the mean of the other
//! logits, so a confident 10-class model gives its two best classes margins of
//! 30 and more; ties go to the first module. Measured on the digits CNN B
//! trained 20 epochs on all of MNIST: composing by `p_c` scored 83.2 % at
//! strength 0, by the margin 98.8 % (= the model; in exact arithmetic both
//! rank alike). With `Reference` a score is `p_c` plus 1 for a voting module,
//! so that the argmax over modules is the code's rule (one voter → it;
//! several → the voter with the largest `p_c`; none → the largest `p_c`).
//! [`Head::says_yes`] is the module's own yes/no answer.

use ndarray::{Array1, Array2, s};

use crate::engine::bits::BitSet;
use crate::engine::model::{Masks, Model, NodeId, Op, UnitMask, forward};
use crate::error::Result;

use super::Module;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)] // the CLI's --mode/--technique/--head
#[serde(rename_all = "snake_case")]
pub enum Head {
    #[default]
    Two,
    Reference,
}

impl Head {
    /// The module's own binary answer ("is it class c?") from its score.
    pub fn says_yes(self, score: f32) -> bool {
        match self {
            Head::Two => score > 0.0,
            Head::Reference => score > 0.5,
        }
    }

    /// `p_c` from a score (what the page shows beside each module).
    pub fn probability(self, score: f32) -> f32 {
        match self {
            Head::Two => sigmoid(score),
            Head::Reference if score > 1.0 => score - 1.0,
            Head::Reference => score,
        }
    }
}

/// CM-RIE's relevance threshold on the weight to `V_c` (the authors' 0.05).
pub const RIE_THRESHOLD: f32 = 0.05;

/// The module's score for each of the `n` samples in `x` (see module docs).
pub fn concerned_scores(
    model: &Model,
    module: &Module,
    x: &[f32],
    n: usize,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Vec<f32>> {
    let k = module.class;
    if module.head == Head::Two {
        let margins = margins(model, module, x, n, progress)?;
        return Ok(match module.calibration {
            Some(cal) => margins.iter().map(|&m| cal.apply(m)).collect(),
            None => margins,
        });
    }
    let merged = merge_irrelevant(model, module);
    let (m, masks) = merged.as_ref().map_or((model, &module.masks), |(m, masks)| (m, masks));
    let out = forward(m, x, n, Some(masks), false, progress)?;
    let c = model.classes();
    Ok(out
        .logits
        .chunks_exact(c)
        .map(|z| {
            let (zc, zuc) = (z[k], mean_others(z, k));
            // softmax over [z_c, z_uc, 0 × (N − 2)], computed from the largest.
            let zeros = (c - 2) as f32;
            let top = zc.max(zuc).max(if c > 2 { 0.0 } else { f32::NEG_INFINITY });
            let pc = (zc - top).exp() / ((zc - top).exp() + (zuc - top).exp() + zeros * (-top).exp());
            let votes = zc > zuc && (c == 2 || zc > 0.0);
            pc + votes as u8 as f32
        })
        .collect())
}

/// The channeled margin `z_c − z_uc` of the masked network for each sample
/// (before any calibration).
pub fn margins(model: &Model, module: &Module, x: &[f32], n: usize, progress: &mut dyn FnMut(usize, usize) -> bool) -> Result<Vec<f32>> {
    let k = module.class;
    let out = forward(model, x, n, Some(&module.masks), false, progress)?;
    Ok(out.logits.chunks_exact(model.classes()).map(|z| z[k] - mean_others(z, k)).collect())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `z_uc`: the channeled unconcerned logit, the mean of the other logits (the
/// head is linear, so this equals a node with the mean weights and bias).
fn mean_others(z: &[f32], k: usize) -> f32 {
    (z.iter().sum::<f32>() - z[k]) / (z.len() - 1) as f32
}

/// CM-RIE: a copy of the model in which the kept units of the Dense layer
/// feeding the head whose weight to `V_c` is below [`RIE_THRESHOLD`] are
/// replaced by one unit — incoming column and bias averaged over them (their
/// effective, possibly clipped, weights), outgoing row the sum of theirs, so
/// their edges to the other outputs collapse into `V_uc`. `None` when fewer
/// than two units qualify or the head is not fed by a plain Dense layer.
/// (The authors' code sums the wrong column for the merged negative weight;
/// we do not reproduce that.)
fn merge_irrelevant(model: &Model, module: &Module) -> Option<(Model, Masks)> {
    let head = &model.nodes[model.head];
    let Op::Dense { kernel: head_w, .. } = &head.op else { return None };
    // The layer feeding the head, through Dropout; every node on the way grows by one unit.
    let mut chain = vec![];
    let mut l = head.inputs[0];
    while matches!(model.nodes[l].op, Op::Dropout) {
        chain.push(l);
        l = model.nodes[l].inputs[0];
    }
    let Op::Dense { kernel, bias, activation } = &model.nodes[l].op else { return None };
    let h = kernel.ncols();
    let all = UnitMask { keep: BitSet::full(h), clip_negative: None, gates: None };
    let mask = module.masks.nodes.get(&l).unwrap_or(&all);
    if model.nodes[l].len() != h || head_w.nrows() != h {
        return None;
    }
    let irrelevant: Vec<usize> = mask.keep.iter().filter(|&i| head_w[[i, module.class]].abs() < RIE_THRESHOLD).collect();
    if irrelevant.len() < 2 {
        return None;
    }
    let clipped = |j: usize| mask.clip_negative.as_ref().is_some_and(|c| c.contains(j));
    let inv = 1.0 / irrelevant.len() as f32;
    let mut col = Array1::<f32>::zeros(kernel.nrows());
    let mut b = 0.0;
    let mut row = Array1::<f32>::zeros(head_w.ncols());
    for &j in &irrelevant {
        let w = kernel.column(j);
        col.zip_mut_with(&w, |a, &v| *a += inv * if clipped(j) { v.max(0.0) } else { v });
        b += inv * bias[j];
        row += &head_w.row(j);
    }
    let mut k2 = Array2::<f32>::zeros((kernel.nrows(), h + 1));
    k2.slice_mut(s![.., ..h]).assign(kernel);
    k2.column_mut(h).assign(&col);
    let mut b2 = Array1::<f32>::zeros(h + 1);
    b2.slice_mut(s![..h]).assign(bias);
    b2[h] = b;
    let mut hw2 = Array2::<f32>::zeros((h + 1, head_w.ncols()));
    hw2.slice_mut(s![..h, ..]).assign(head_w);
    hw2.row_mut(h).assign(&row);

    let mut m = model.clone();
    m.nodes[l].op = Op::Dense { kernel: k2, bias: b2, activation: *activation };
    for id in chain.iter().copied().chain([l]) {
        m.nodes[id].shape = vec![h + 1];
    }
    if let Op::Dense { kernel, .. } = &mut m.nodes[model.head].op {
        *kernel = hw2;
    }
    let mut masks = module.masks.clone();
    let grow = |set: &BitSet, extra: bool, drop: &[usize]| {
        BitSet::from_indices(h + 1, set.iter().filter(|i| !drop.contains(i)).chain(extra.then_some(h)))
    };
    let keep = grow(&mask.keep, true, &irrelevant);
    let clip_negative = mask.clip_negative.as_ref().map(|c| grow(c, false, &[]));
    masks.nodes.insert(l as NodeId, UnitMask { keep, clip_negative, gates: None });
    Some((m, masks))
}

//! Composition (ALGORITHMS.md §5): every selected module has a cached row of
//! scores (see `decompose::head`) over the evaluation samples; a composition is an
//! argmax over the selected rows. No model runs here.

use crate::error::{Error, Result};

/// Global class id: the page and the session give every (data set, class)
/// pair one id, so modules from different models and data sets compose.
pub type ClassId = u32;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Composition {
    /// Classes the composition can answer, ascending; matrix order.
    pub classes: Vec<ClassId>,
    /// Evaluation samples whose true class is covered.
    pub evaluated: usize,
    pub top1: f32,
    /// Only with at least 5 modules.
    pub top5: Option<f32>,
    /// `confusion[t][p]`: samples of class `classes[t]` answered `classes[p]`.
    pub confusion: Vec<Vec<u32>>,
    pub per_class: Vec<f32>,
}

/// Composes modules: `rows[m][s]` is module m's score (its head's ranking
/// value: the log-odds of its concerned probability) for
/// sample s, `row_class[m]` its class, `labels[s]` the true class. Voting as
/// the authors' code (§5); with 2-way heads this is the argmax of the log-odds of `p_c`, ties to
/// the first module.
pub fn compose(rows: &[&[f32]], row_class: &[ClassId], labels: &[ClassId]) -> Result<Composition> {
    if rows.is_empty() {
        return Err(Error::invalid("select at least one module to compose"));
    }
    if rows.len() != row_class.len() || rows.iter().any(|r| r.len() != labels.len()) {
        return Err(Error::shape("score rows", format!("{} rows of {} scores", row_class.len(), labels.len()), "rows of other lengths"));
    }
    let classes = classes_of(row_class);
    let k = classes.len();
    // Class id -> matrix index, as a table (ids are small and dense).
    let top_id = classes.iter().chain(labels).copied().max().unwrap_or(0) as usize;
    let mut lut = vec![u32::MAX; top_id + 1];
    classes.iter().enumerate().for_each(|(i, &c)| lut[c as usize] = i as u32);
    let row_t: Vec<u32> = row_class.iter().map(|&c| lut[c as usize]).collect();
    let n = labels.len();

    // Module-major streaming passes (contiguous rows, vectorisable):
    // 1) argmax over modules, ties to the first;
    let best_m = winners(rows);
    // 2) top-5: the true class is among the 5 best modules when fewer than 5
    //    modules score strictly above its best module.
    let top5 = rows.len() >= 5;
    let mut hits5 = 0usize;
    if top5 {
        let mut true_v = vec![f32::NEG_INFINITY; n];
        for (row, &t) in rows.iter().zip(&row_t) {
            for ((tv, &v), &y) in true_v.iter_mut().zip(row.iter()).zip(labels) {
                if lut[y as usize] == t && v > *tv {
                    *tv = v;
                }
            }
        }
        let mut above = vec![0u32; n];
        for row in rows {
            for ((a, &v), &tv) in above.iter_mut().zip(row.iter()).zip(&true_v) {
                *a += (v > tv) as u32;
            }
        }
        hits5 = (0..n).filter(|&s| lut[labels[s] as usize] != u32::MAX && above[s] < 5).count();
    }
    let mut confusion = vec![vec![0u32; k]; k];
    let mut evaluated = 0usize;
    for (s, &y) in labels.iter().enumerate() {
        let t = lut[y as usize];
        if t != u32::MAX {
            evaluated += 1;
            confusion[t as usize][row_t[best_m[s] as usize] as usize] += 1;
        }
    }
    let correct: u32 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class = confusion.iter().enumerate().map(|(i, r)| r[i] as f32 / r.iter().sum::<u32>().max(1) as f32).collect();
    let frac = |x: usize| x as f32 / evaluated.max(1) as f32;
    Ok(Composition { classes, evaluated, top1: frac(correct as usize), top5: top5.then(|| frac(hits5)), confusion, per_class })
}

/// The classes a composition answers: its modules' classes, ascending and
/// without repeats — the order of the confusion matrix, of `Composition::classes`
/// and of an exported graph's `argmax` labels.
pub fn classes_of(row_class: &[ClassId]) -> Vec<ClassId> {
    let mut classes = row_class.to_vec();
    classes.sort_unstable();
    classes.dedup();
    classes
}

/// THE voting rule: per sample, the row (module) with the highest score,
/// ties to the first — every composed answer (accuracy, try-it, verification,
/// sequences) comes from here, and an exported ONNX graph's `ArgMax` follows
/// the same tie rule (`select_last_index = 0`). Rows shorter than the first
/// are an error the callers rule out; an empty `rows` gives no winners.
pub fn winners(rows: &[&[f32]]) -> Vec<u32> {
    let Some(first) = rows.first() else { return vec![] };
    let mut best_v = first.to_vec();
    let mut best_m = vec![0u32; first.len()];
    for (m, row) in rows.iter().enumerate().skip(1) {
        for ((bv, bm), &v) in best_v.iter_mut().zip(best_m.iter_mut()).zip(row.iter()) {
            if v > *bv {
                *bv = v;
                *bm = m as u32;
            }
        }
    }
    best_m
}

/// The index of the largest value, ties to the first (a model's own answer
/// from its output probabilities).
pub fn argmax(v: &[f32]) -> usize {
    (1..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// A module as a binary classifier ("is this class c?": `yes(score)`, the
/// module head's `says_yes`), scored as balanced accuracy (mean of the
/// true-positive and true-negative rates), which equals accuracy on a
/// balanced concerned/unconcerned set.
pub fn binary_accuracy(row: &[f32], class: ClassId, labels: &[ClassId], yes: impl Fn(f32) -> bool) -> f32 {
    let (mut tp, mut pos, mut tn, mut neg) = (0usize, 0usize, 0usize, 0usize);
    for (&p, &y) in row.iter().zip(labels) {
        if y == class {
            pos += 1;
            tp += yes(p) as usize;
        } else {
            neg += 1;
            tn += !yes(p) as usize;
        }
    }
    let rate = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f32 / b as f32 };
    0.5 * (rate(tp, pos) + rate(tn, neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_voting_confusion_and_top5_by_hand() {
        // 3 modules (classes 0, 1, 2), 4 samples; sample 3 is class 9 (not covered).
        let r0 = [0.9, 0.2, 0.6, 0.9];
        let r1 = [0.1, 0.8, 0.7, 0.9];
        let r2 = [0.3, 0.1, 0.1, 0.9];
        let c = compose(&[&r0, &r1, &r2], &[0, 1, 2], &[0, 1, 2, 9]).unwrap();
        assert_eq!(c.evaluated, 3);
        assert_eq!(c.confusion, vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 1, 0]]);
        assert!((c.top1 - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(c.per_class, vec![1.0, 1.0, 0.0]);
        assert_eq!(c.top5, None);
        // Removing module 1 changes the answer for samples 1 and 2.
        let c = compose(&[&r0, &r2], &[0, 2], &[0, 1, 2, 9]).unwrap();
        assert_eq!((c.evaluated, c.confusion.clone()), (2, vec![vec![1, 0], vec![1, 0]]));
        assert!(compose(&[], &[], &[0]).is_err());
        assert!(compose(&[&r0[..2]], &[0], &[0, 1, 2]).is_err());
    }

    #[test]
    fn top5_counts_the_true_class_among_the_five_best() {
        let rows: Vec<Vec<f32>> = (0..6).map(|m| vec![m as f32 / 10.0]).collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        // Module 0 (class 0) has the lowest score: top-5 misses it; class 1 is 5th best.
        assert_eq!(compose(&refs, &[0, 1, 2, 3, 4, 5], &[0]).unwrap().top5, Some(0.0));
        assert_eq!(compose(&refs, &[0, 1, 2, 3, 4, 5], &[1]).unwrap().top5, Some(1.0));
    }

    #[test]
    fn binary_accuracy_is_balanced() {
        // 1 positive (caught), 3 negatives (one false alarm).
        let acc = binary_accuracy(&[0.9, 0.8, 0.1, 0.2], 0, &[0, 1, 1, 1], |p| p > 0.5);
        assert!((acc - (0.5 * (1.0 + 2.0 / 3.0))).abs() < 1e-6);
    }
}

//! Composition (ALGORITHMS.md §5): every selected module has a cached row of
//! concerned probabilities over the evaluation samples; a composition is an
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

/// Composes modules: `rows[m][s]` is module m's concerned probability for
/// sample s, `row_class[m]` its class, `labels[s]` the true class. Voting as
/// the authors' code (§5); with 2-way heads this is argmax of `p_c`, ties to
/// the first module.
pub fn compose(rows: &[&[f32]], row_class: &[ClassId], labels: &[ClassId]) -> Result<Composition> {
    if rows.is_empty() {
        return Err(Error::invalid("select at least one module to compose"));
    }
    if rows.len() != row_class.len() || rows.iter().any(|r| r.len() != labels.len()) {
        return Err(Error::shape("score rows", format!("{} rows of {} scores", row_class.len(), labels.len()), "rows of other lengths"));
    }
    let mut classes: Vec<ClassId> = row_class.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let index = |c: ClassId| classes.binary_search(&c).ok();
    let k = classes.len();
    let mut confusion = vec![vec![0u32; k]; k];
    let (mut evaluated, mut top5_hits) = (0usize, 0usize);
    let mut order: Vec<usize> = Vec::with_capacity(rows.len());
    for (s, &label) in labels.iter().enumerate() {
        let Some(t) = index(label) else { continue };
        evaluated += 1;
        let mut best = 0;
        for m in 1..rows.len() {
            if rows[m][s] > rows[best][s] {
                best = m;
            }
        }
        confusion[t][index(row_class[best]).unwrap()] += 1;
        if rows.len() >= 5 {
            order.clear();
            order.extend(0..rows.len());
            order.select_nth_unstable_by(4, |&a, &b| rows[b][s].total_cmp(&rows[a][s]));
            top5_hits += order[..5].iter().any(|&m| row_class[m] == label) as usize;
        }
    }
    let correct: u32 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class = confusion.iter().enumerate().map(|(i, r)| r[i] as f32 / r.iter().sum::<u32>().max(1) as f32).collect();
    let frac = |x: usize| x as f32 / evaluated.max(1) as f32;
    Ok(Composition {
        classes,
        evaluated,
        top1: frac(correct as usize),
        top5: (rows.len() >= 5).then(|| frac(top5_hits)),
        confusion,
        per_class,
    })
}

/// A module as a binary classifier ("is this class c?", `p_c > 0.5`), scored
/// as balanced accuracy (mean of the true-positive and true-negative rates),
/// which equals accuracy on a balanced concerned/unconcerned set.
pub fn binary_accuracy(row: &[f32], class: ClassId, labels: &[ClassId]) -> f32 {
    let (mut tp, mut pos, mut tn, mut neg) = (0usize, 0usize, 0usize, 0usize);
    for (&p, &y) in row.iter().zip(labels) {
        if y == class {
            pos += 1;
            tp += (p > 0.5) as usize;
        } else {
            neg += 1;
            tn += (p <= 0.5) as usize;
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
        let acc = binary_accuracy(&[0.9, 0.8, 0.1, 0.2], 0, &[0, 1, 1, 1]);
        assert!((acc - (0.5 * (1.0 + 2.0 / 3.0))).abs() < 1e-6);
    }
}

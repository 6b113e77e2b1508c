//! Which samples a module is decomposed with: the rows of the one recorded
//! pass, and each class's concerned and unconcerned sets. Module update
//! (`workbench`) draws its samples with the same functions, so both follow
//! one quota rule.

use super::{Mode, Settings};
use crate::engine::bits::BitSet;
use crate::engine::data::Dataset;
use crate::error::{Error, Result};

/// How many unconcerned samples to take from each of `other_classes` classes
/// for `concerned` concerned ones: `⌊concerned × ratio ÷ other_classes⌋`, at
/// least one (the papers' 1:1 at `ratio` = 1, spread evenly).
pub fn unconcerned_quota(concerned: usize, ratio: f32, other_classes: usize) -> usize {
    ((concerned as f32 * ratio / other_classes.max(1) as f32).floor() as usize).max(1)
}

/// Indices of the first `k` items labelled `class`, in order.
pub fn first_of_class(labels: impl Iterator<Item = usize>, class: usize, k: usize) -> Vec<usize> {
    labels.enumerate().filter(|&(_, y)| y == class).map(|(i, _)| i).take(k).collect()
}

/// The rows of the one recorded pass: the first `e` training samples of
/// every class; for per-step labels, the first sequences until every class
/// occurs in `e` of them.
pub fn decomposition_rows(data: &Dataset, e: usize) -> Vec<usize> {
    let steps = data.train.steps;
    if steps == 1 {
        return first_per_class(data.train.y.iter().map(|&y| y as usize), data.class_names.len(), e, |_| true);
    }
    let mut seen = vec![0usize; data.class_names.len()];
    (0..data.train.len())
        .filter(|&r| {
            let mut present: Vec<usize> =
                data.train.y[r * steps..(r + 1) * steps].iter().map(|&y| y as usize).filter(|&y| y < seen.len()).collect();
            present.sort_unstable();
            present.dedup();
            let wanted = present.iter().any(|&y| seen[y] < e);
            if wanted {
                present.iter().for_each(|&y| seen[y] += 1);
            }
            wanted
        })
        .collect()
}

/// Per-step tasks: every (sequence, step) item labelled `c` is concerned,
/// every other item unconcerned — a per-step statistic needs them all (a
/// deviation from the per-sample caps, documented in docs/ALGORITHMS.md).
pub(super) fn step_sample_sets(c: usize, labels: &[usize]) -> Result<(BitSet, BitSet)> {
    let n = labels.len();
    let concerned = BitSet::from_indices(n, (0..n).filter(|&i| labels[i] == c));
    if concerned.count() == 0 {
        return Err(Error::invalid(format!("class {c} labels no training step to decompose with")));
    }
    Ok((concerned, BitSet::from_indices(n, (0..n).filter(|&i| labels[i] != c))))
}

/// Indices of the first `per_class` items of each class (in order) that pass `keep`.
fn first_per_class(labels: impl Iterator<Item = usize>, classes: usize, per_class: usize, keep: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut taken = vec![0usize; classes];
    labels
        .enumerate()
        .filter(|&(i, y)| {
            y < classes && taken[y] < per_class && keep(i) && {
                taken[y] += 1;
                true
            }
        })
        .map(|(i, _)| i)
        .collect()
}

/// Concerned and unconcerned sample sets (over the recorded rows) of class `c`.
pub(super) fn sample_sets(c: usize, labels: &[usize], probs: &[f32], width: usize, s: &Settings) -> Result<(BitSet, BitSet)> {
    let n = labels.len();
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let concerned = BitSet::from_indices(
        n,
        (0..n).filter(|&i| labels[i] == c && (s.mode == Mode::Paper || probs[i * width + c] > s.confidence)).take(s.samples_per_class),
    );
    if concerned.count() == 0 {
        return Err(Error::invalid(format!(
            "class {c}: no training sample qualifies as concerned (reference mode needs the model to classify some with probability > {})",
            s.confidence
        )));
    }
    let per_class = unconcerned_quota(concerned.count(), s.tangling_ratio, classes.max(2) - 1);
    let unconcerned = BitSet::from_indices(n, first_per_class(labels.iter().copied(), classes, per_class, |i| labels[i] != c));
    Ok((concerned, unconcerned))
}

/// The ICSE'23 code's samples: the first `e` of class `c` (no confidence
/// filter) and the first `⌊e / (C − 1)⌋` of the other classes together, in
/// file order — not balanced per class.
pub(super) fn recurrent_sample_sets(c: usize, labels: &[usize], e: usize) -> Result<(BitSet, BitSet)> {
    let n = labels.len();
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let concerned = BitSet::from_indices(n, first_of_class(labels.iter().copied(), c, e));
    if concerned.count() == 0 {
        return Err(Error::invalid(format!("class {c} has no training samples to decompose with")));
    }
    let others = (e / (classes.max(2) - 1)).max(1);
    let unconcerned = BitSet::from_indices(n, (0..n).filter(|&i| labels[i] != c).take(others));
    Ok((concerned, unconcerned))
}

//! Sequence metrics for encoder–decoder tasks: exact match and corpus BLEU-4
//! (Papineni et al. 2002) over tokens — characters, for our models.

use std::collections::HashMap;

/// Share of candidates equal to their reference.
pub fn exact_match(candidates: &[Vec<u32>], references: &[Vec<u32>]) -> f32 {
    let hits = candidates.iter().zip(references).filter(|(c, r)| c == r).count();
    hits as f32 / candidates.len().max(1) as f32
}

/// Corpus BLEU-4 with one reference per candidate: the geometric mean of the
/// modified (clipped) 1- to 4-gram precisions, each summed over the corpus,
/// times the brevity penalty `exp(1 − r/c)` when the candidates' total length
/// `c` is below the references' `r`. No smoothing: a corpus with no matching
/// n-gram of some order scores 0 (as the standard definition).
pub fn bleu(candidates: &[Vec<u32>], references: &[Vec<u32>]) -> f32 {
    const N: usize = 4;
    let (mut matched, mut total) = ([0usize; N], [0usize; N]);
    let (mut c_len, mut r_len) = (0usize, 0usize);
    for (cand, refr) in candidates.iter().zip(references) {
        c_len += cand.len();
        r_len += refr.len();
        for n in 1..=N {
            let ref_counts = ngrams(refr, n);
            for (gram, count) in ngrams(cand, n) {
                matched[n - 1] += count.min(ref_counts.get(gram).copied().unwrap_or(0));
                total[n - 1] += count;
            }
        }
    }
    if c_len == 0 || matched.contains(&0) {
        return 0.0;
    }
    let log_p: f64 = (0..N).map(|i| (matched[i] as f64 / total[i] as f64).ln()).sum::<f64>() / N as f64;
    let bp = if c_len < r_len { (1.0 - r_len as f64 / c_len as f64).exp() } else { 1.0 };
    (bp * log_p.exp()) as f32
}

fn ngrams(s: &[u32], n: usize) -> HashMap<&[u32], usize> {
    let mut m = HashMap::new();
    for w in s.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

/// A per-step prediction as a token sequence: the steps before the first
/// `end` token (all of them when there is none).
pub fn until_end(steps: &[u32], end: Option<u32>) -> Vec<u32> {
    let stop = end.and_then(|e| steps.iter().position(|&t| t == e)).unwrap_or(steps.len());
    steps[..stop].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<u32> {
        s.chars().map(|c| c as u32).collect()
    }

    #[test]
    fn bleu_matches_a_hand_computed_corpus() {
        // Candidates "abcde" and "xbcd" against references "abcdef" and "abcd".
        // 1-grams: 5/5 + 3/4 (x misses)      = 8/9
        // 2-grams: 4/4 + 2/3 (xb misses)      = 6/7
        // 3-grams: 3/3 + 1/2 (xbc misses)     = 4/5
        // 4-grams: 2/2 + 0/1                  = 2/3
        // c = 9 < r = 10: BP = exp(1 − 10/9).
        let want = (1.0f64 - 10.0 / 9.0).exp() * ((8.0f64 / 9.0) * (6.0 / 7.0) * (4.0 / 5.0) * (2.0 / 3.0)).powf(0.25);
        let got = bleu(&[toks("abcde"), toks("xbcd")], &[toks("abcdef"), toks("abcd")]);
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        // = 0.89484 × 0.40635^¼ = 0.89484 × 0.79841.
        assert!((want - 0.7144).abs() < 1e-4, "hand value {want}");
    }

    #[test]
    fn bleu_clips_repeats_and_has_its_edge_cases() {
        // "aaaa" vs "aabb": 1-grams clipped to 2/4; no common 4-gram -> 0.
        assert_eq!(bleu(&[toks("aaaa")], &[toks("aabb")]), 0.0);
        // Identical corpora score 1; a longer candidate gets no penalty.
        assert!((bleu(&[toks("abcdefg")], &[toks("abcdefg")]) - 1.0).abs() < 1e-6);
        assert_eq!(bleu(&[vec![]], &[toks("abcd")]), 0.0);
        assert_eq!(exact_match(&[toks("ab"), toks("cd")], &[toks("ab"), toks("ce")]), 0.5);
    }

    #[test]
    fn predictions_stop_at_the_end_token() {
        assert_eq!(until_end(&[3, 4, 0, 5, 0], Some(0)), vec![3, 4]);
        assert_eq!(until_end(&[3, 4], Some(0)), vec![3, 4]);
        assert_eq!(until_end(&[3, 0], None), vec![3, 0]);
    }
}

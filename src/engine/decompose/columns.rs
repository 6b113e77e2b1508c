//! Sorted per-unit columns of a recorded recurrent layer, built once per
//! decomposition and shared by every class.
//!
//! Per-step tasks (taggers, decoders) and encoders compare a class's
//! concerned items with *every other* item, so each class's unconcerned
//! statistic reads nearly the whole recording: classes × items × units, more
//! than the recorded pass itself on an encoder–decoder. With each unit's
//! column sorted once, the unconcerned robust mean becomes order statistics
//! of "the column minus the concerned items": O(|concerned| · log N) per class
//! and unit. The median and MAD are exactly those of the direct computation;
//! only the final mean sums the same values in another order (f64, then f32).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::engine::bits::BitSet;
use crate::engine::model::NodeId;

/// One unit's (or gate column's) values over a layer's universe of items.
pub enum Column {
    /// For the robust mean of |x|: |x| ascending, each item's position in it,
    /// and prefix sums.
    Sorted { sorted: Vec<f32>, rank: Vec<u32>, prefix: Vec<f64> },
    /// For an active rate: how many of the `len` items are active.
    Rate { active: usize, len: usize },
}

impl Column {
    /// The column of magnitudes `|x|` of `values` (universe order).
    pub fn magnitudes(values: impl Iterator<Item = f32>) -> Self {
        // Non-negative floats order like their bit patterns: sort (bits, index) as integers.
        let mut keyed: Vec<u64> = values.enumerate().map(|(i, x)| ((x.abs().to_bits() as u64) << 32) | i as u64).collect();
        keyed.sort_unstable();
        let sorted: Vec<f32> = keyed.iter().map(|&k| f32::from_bits((k >> 32) as u32)).collect();
        let mut rank = vec![0u32; keyed.len()];
        keyed.iter().enumerate().for_each(|(pos, &k)| rank[k as u32 as usize] = pos as u32);
        let mut prefix = Vec::with_capacity(sorted.len() + 1);
        prefix.push(0.0);
        sorted.iter().fold(0.0f64, |acc, &x| {
            let acc = acc + x as f64;
            prefix.push(acc);
            acc
        });
        Column::Sorted { sorted, rank, prefix }
    }

    /// The rate column of `values` under `active`.
    pub fn rate(values: impl Iterator<Item = f32>, active: impl Fn(f32) -> bool) -> Self {
        let (mut len, mut on) = (0, 0);
        values.for_each(|x| {
            len += 1;
            on += active(x) as usize;
        });
        Column::Rate { active: on, len }
    }

    /// |x| of the items `idx` (universe indices), in that order.
    pub fn magnitudes_at(&self, idx: &[usize]) -> Vec<f32> {
        let Column::Sorted { sorted, rank, .. } = self else { unreachable!("magnitudes of a rate column") };
        idx.iter().map(|&i| sorted[rank[i] as usize]).collect()
    }

    /// The robust mean (see [`super::robust_mean`]) of |x| over every item
    /// except `concerned` (universe indices, distinct).
    pub fn complement_robust_mean(&self, concerned: &[usize]) -> f32 {
        let Column::Sorted { sorted: s, rank, prefix } = self else { unreachable!("robust mean of a rate column") };
        let n = s.len();
        // Their positions, sorted (through a bit set: cheaper than sorting).
        let p: Vec<usize> = BitSet::from_indices(n, concerned.iter().map(|&i| rank[i] as usize)).iter().collect();
        let m = n - p.len();
        if m == 0 {
            return 0.0;
        }
        // Concerned positions in [lo, hi).
        let holes = |lo: usize, hi: usize| p.partition_point(|&q| q < hi) - p.partition_point(|&q| q < lo);
        // Position of the j-th (0-based) remaining value: the smallest `pos`
        // with more than j remaining values in [0, pos]; it lies in [j, j + |p|].
        let at = |j: usize| {
            let (mut lo, mut hi) = (j, j + p.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if mid + 1 - holes(0, mid + 1) > j { hi = mid } else { lo = mid + 1 }
            }
            lo
        };
        let median_of = |kth: &dyn Fn(usize) -> f32| if m % 2 == 1 { kth(m / 2) } else { 0.5 * (kth(m / 2 - 1) + kth(m / 2)) };
        let med = median_of(&|j| s[at(j)]);
        // |x − med| falls towards `split` from the left and grows after it,
        // so "deviation ≤ d" (or any monotone test of it) holds on one range.
        let split = s.partition_point(|&x| x < med);
        let range = |near: &dyn Fn(f32) -> bool| {
            let lo = s[..split].partition_point(|&x| !near((x - med).abs()));
            (lo, split + s[split..].partition_point(|&x| near((x - med).abs())))
        };
        // The k-th smallest remaining deviation: the least d (over f32 bit
        // patterns, ordered like the non-negative values) with more than k
        // remaining deviations ≤ d. It is one of the deviations, exactly.
        let kth_dev = |k: usize| {
            let (mut lo, mut hi) = (0u32, f32::INFINITY.to_bits());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let (a, b) = range(&|dev| dev <= f32::from_bits(mid));
                if b - a - holes(a, b) > k { hi = mid } else { lo = mid + 1 }
            }
            f32::from_bits(lo)
        };
        let mad = median_of(&kth_dev);
        let (lo, hi) = if mad > 0.0 { range(&|dev| dev / mad < 2.0) } else { (0, n) };
        let (a, b) = (p.partition_point(|&q| q < lo), p.partition_point(|&q| q < hi));
        let sum = prefix[hi] - prefix[lo] - p[a..b].iter().map(|&q| s[q] as f64).sum::<f64>();
        let count = hi - lo - (b - a);
        sum as f32 / count.max(1) as f32
    }

    /// The active rate over every item except the `concerned` ones, given
    /// how many of those are active.
    pub fn complement_rate(&self, concerned: usize, concerned_active: usize) -> f32 {
        let Column::Rate { active, len } = self else { unreachable!("rate of a sorted column") };
        (active - concerned_active) as f32 / (len - concerned).max(1) as f32
    }
}

/// Columns per (recurrent node, gate block, step or rolled), built on first
/// use and kept for the decomposition's other classes (which may run on other
/// threads: a class asking for a column under construction waits for it).
#[derive(Default)]
pub struct ColumnCache {
    map: Mutex<HashMap<ColumnKey, Arc<Slot>>>,
}

/// One key's columns, built once by the first class that asks.
type Slot = OnceLock<Arc<[Column]>>;

/// (recurrent node, gate block, step — `None` for rolled statistics).
pub type ColumnKey = (NodeId, usize, Option<usize>);

impl ColumnCache {
    pub fn get_or_build(&self, key: ColumnKey, build: impl FnOnce() -> Vec<Column>) -> Arc<[Column]> {
        // The map's lock is held only to find the slot; the build runs outside it.
        let slot = self.map.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
        slot.get_or_init(|| build().into()).clone()
    }
}

//! Max / average pooling over NHWC samples, and global average pooling.

use super::Conv2dGeom;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Avg,
}

/// One sample, `input` H×W×C → `out` OH×OW×C. Padded taps are skipped: max
/// ignores them, average divides by the number of real taps (as TensorFlow).
pub fn pool2d(kind: PoolKind, g: &Conv2dGeom, input: &[f32], out: &mut [f32]) {
    let c = g.cin;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = &mut out[(oy * g.ow + ox) * c..][..c];
            o.fill(if kind == PoolKind::Max { f32::NEG_INFINITY } else { 0.0 });
            let mut taps = 0usize;
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let Some((y, x)) = g.tap(oy, ox, dy, dx) else { continue };
                    taps += 1;
                    let src = &input[(y * g.w + x) * c..][..c];
                    match kind {
                        // A select, not `f32::max` (an fmaxf call per element in wasm); the
                        // same result, as `a` starts at −∞ and NaN never wins either way.
                        PoolKind::Max => o.iter_mut().zip(src).for_each(|(a, &b)| *a = if b > *a { b } else { *a }),
                        PoolKind::Avg => o.iter_mut().zip(src).for_each(|(a, &b)| *a += b),
                    }
                }
            }
            if kind == PoolKind::Avg {
                let inv = 1.0 / taps.max(1) as f32;
                o.iter_mut().for_each(|a| *a *= inv);
            }
        }
    }
}

/// [`pool2d`] over the samples laid end to end in `input` and `out`.
pub fn pool2d_samples(kind: PoolKind, g: &Conv2dGeom, input: &[f32], out: &mut [f32]) {
    let (il, ol) = (g.h * g.w * g.cin, g.oh * g.ow * g.cin);
    input.chunks_exact(il).zip(out.chunks_exact_mut(ol)).for_each(|(i, o)| pool2d(kind, g, i, o));
}

/// [`global_pool`] over the samples laid end to end in `input` (`il` values
/// each) and `out` (`c` each).
pub fn global_pool_samples(kind: PoolKind, input: &[f32], il: usize, c: usize, out: &mut [f32]) {
    input.chunks_exact(il).zip(out.chunks_exact_mut(c)).for_each(|(i, o)| global_pool(kind, i, c, o));
}

/// One sample, `input` (positions × C) → `out` C: the mean or the max per channel.
pub fn global_pool(kind: PoolKind, input: &[f32], c: usize, out: &mut [f32]) {
    if kind == PoolKind::Avg {
        return global_avg_pool(input, c, out);
    }
    out[..c].fill(f32::NEG_INFINITY);
    for px in input.chunks_exact(c) {
        out.iter_mut().zip(px).for_each(|(a, &b)| *a = if b > *a { b } else { *a });
    }
}

/// One sample, `input` (positions × C) → `out` C.
pub fn global_avg_pool(input: &[f32], c: usize, out: &mut [f32]) {
    out[..c].fill(0.0);
    let n = input.len() / c;
    for px in input.chunks_exact(c) {
        out.iter_mut().zip(px).for_each(|(a, &b)| *a += b);
    }
    let inv = 1.0 / n.max(1) as f32;
    out[..c].iter_mut().for_each(|a| *a *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_avg_by_hand() {
        // 3x3 single channel, 2x2 window, stride 2, same padding -> 2x2 output.
        let x = [1., 2., 3., 4., 5., 6., 7., 8., 9.];
        let g = Conv2dGeom::new([3, 3, 1], [2, 2], [2, 2], true).unwrap();
        let mut o = [0f32; 4];
        pool2d(PoolKind::Max, &g, &x, &mut o);
        assert_eq!(o, [5., 6., 8., 9.]);
        pool2d(PoolKind::Avg, &g, &x, &mut o);
        assert_eq!(o, [3., 4.5, 7.5, 9.]);
        let mut c = [0f32; 1];
        global_avg_pool(&x, 1, &mut c);
        assert_eq!(c, [5.]);
    }
}

//! C[m×n] (+)= A[m×k] · B[k×n], all row-major, contiguous.
//!
//! Register-tiled: 4 rows of A × 8 columns of B per tile, accumulated in
//! registers across the whole k loop, so each B row segment is loaded once per
//! 4 output rows. Dense layers call this with A = batch activations and
//! B = the Keras kernel (in × out); convolutions call it on im2col patches.

/// `c = a · b` (overwrites `c`). Panics only on slice-length mismatch, which is
/// a caller bug (shapes are validated when the model is built).
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul slice sizes");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::matmul(a, b, c, m, k, n);
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        matmul_portable(a, b, c, m, k, n);
    }
}

const MR: usize = 4;
const NR: usize = 8;

/// Portable tiled kernel; also the reference the SIMD path is tested against.
pub fn matmul_portable(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let mut i = 0;
    while i < m {
        let rows = MR.min(m - i);
        let mut j = 0;
        while j < n {
            let cols = NR.min(n - j);
            let mut acc = [[0f32; NR]; MR];
            if rows == MR && cols == NR {
                for p in 0..k {
                    let brow: &[f32; NR] = b[p * n + j..p * n + j + NR].try_into().unwrap();
                    for r in 0..MR {
                        let av = a[(i + r) * k + p];
                        for q in 0..NR {
                            acc[r][q] += av * brow[q];
                        }
                    }
                }
            } else {
                for p in 0..k {
                    for r in 0..rows {
                        let av = a[(i + r) * k + p];
                        for q in 0..cols {
                            acc[r][q] += av * b[p * n + j + q];
                        }
                    }
                }
            }
            for r in 0..rows {
                c[(i + r) * n + j..(i + r) * n + j + cols].copy_from_slice(&acc[r][..cols]);
            }
            j += NR;
        }
        i += MR;
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::{MR, NR};

    #[inline(always)]
    fn store(s: &mut [f32], at: usize, v: v128) {
        let x: &mut [f32; 4] = (&mut s[at..at + 4]).try_into().unwrap();
        // SAFETY: `x` is exactly 16 writable bytes; v128_store allows unaligned.
        unsafe { v128_store(x.as_mut_ptr() as *mut v128, v) }
    }

    pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
        if k == 0 {
            c[..m * n].fill(0.0);
            return;
        }
        let full_m = m - m % MR;
        let full_n = n - n % NR;
        let mut i = 0;
        while i < full_m {
            let mut j = 0;
            // The tile's rows of A: bounds are checked here once, not per
            // element in the k loop.
            let rows: [&[f32]; MR] = core::array::from_fn(|r| &a[(i + r) * k..][..k]);
            while j < full_n {
                let mut acc = [f32x4_splat(0.0); 2 * MR];
                // B's tile column block, one row of NR per k; the last one ends at (k-1)·n + j + NR ≤ k·n.
                let b_tile = &b[j..(k - 1) * n + j + NR];
                for p in 0..k {
                    // SAFETY: p·n + NR ≤ (k−1)·n + NR = b_tile.len(); loads are unaligned-safe.
                    let (b0, b1) = unsafe {
                        let at = b_tile.as_ptr().add(p * n);
                        (v128_load(at as *const v128), v128_load(at.add(4) as *const v128))
                    };
                    for r in 0..MR {
                        // SAFETY: p < k = rows[r].len().
                        let av = f32x4_splat(unsafe { *rows[r].get_unchecked(p) });
                        acc[2 * r] = f32x4_add(acc[2 * r], f32x4_mul(av, b0));
                        acc[2 * r + 1] = f32x4_add(acc[2 * r + 1], f32x4_mul(av, b1));
                    }
                }
                for r in 0..MR {
                    store(c, (i + r) * n + j, acc[2 * r]);
                    store(c, (i + r) * n + j + 4, acc[2 * r + 1]);
                }
                j += NR;
            }
            i += MR;
        }
        // Edges (ragged rows or columns): portable code on the remaining blocks.
        edge(a, b, c, m, k, n, 0, full_m, full_n, n);
        edge(a, b, c, m, k, n, full_m, m, 0, n);
    }

    #[allow(clippy::too_many_arguments)]
    fn edge(a: &[f32], b: &[f32], c: &mut [f32], _m: usize, k: usize, n: usize, i0: usize, i1: usize, j0: usize, j1: usize) {
        for i in i0..i1 {
            for j in j0..j1 {
                let mut s = 0f32;
                for p in 0..k {
                    s += a[i * k + p] * b[p * n + j];
                }
                c[i * n + j] = s;
            }
        }
    }
}

/// Naive triple loop, for tests only.
#[cfg(test)]
pub(crate) fn matmul_naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for p in 0..k {
                s += a[i * k + p] as f64 * b[p * n + j] as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_naive(m in 1usize..19, k in 1usize..40, n in 1usize..27, seed in 0u64..1000) {
            let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut rnd = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5 };
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let want = matmul_naive(&a, &b, m, k, n);
            let mut got = vec![f32::NAN; m * n];
            matmul(&a, &b, &mut got, m, k, n);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }
}

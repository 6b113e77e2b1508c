//! C[m×n] (+)= A[m×k] · B[k×n], all row-major, contiguous.
//!
//! Register-tiled: 4 rows of A × 8 columns of B per tile, accumulated in
//! registers across the whole k loop, so each B row segment is loaded once per
//! 4 output rows. Dense layers call this with A = batch activations and
//! B = the Keras kernel (in × out); convolutions call it on im2col patches.
//! On x86-64 with AVX2 it runs `x86/matmul.rs` (the same order of sums).

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
        #[cfg(target_arch = "x86_64")]
        if super::x86::matmul(a, b, c, m, k, n) {
            return;
        }
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

    /// One `R × NR` block of C: rows of A at `a + r·lda`, B's NR columns at
    /// `b + p·ldb`. Sums run over p in order with separate mul and add (no
    /// FMA), so every element is bit-identical to the portable kernel's and
    /// independent of the tiling (and of the batch size).
    ///
    /// SAFETY: `a + r·lda + p` for r < R, p < k and `b + p·ldb + 0..NR` for
    /// p < k must be readable.
    #[inline(always)]
    unsafe fn tile<const R: usize>(a: *const f32, lda: usize, b: *const f32, ldb: usize, k: usize) -> [[v128; 2]; R] {
        let mut acc = [[f32x4_splat(0.0); 2]; R];
        for p in 0..k {
            // SAFETY: in bounds by the function's contract; loads are unaligned-safe.
            unsafe {
                let at = b.add(p * ldb);
                let (b0, b1) = (v128_load(at as *const v128), v128_load(at.add(4) as *const v128));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = v128_load32_splat(a.add(r * lda + p) as *const u32);
                    acc[0] = f32x4_add(acc[0], f32x4_mul(av, b0));
                    acc[1] = f32x4_add(acc[1], f32x4_mul(av, b1));
                }
            }
        }
        acc
    }

    /// Writes an `R × NR` block to C at row `i`, column `j`, keeping `cols` columns.
    #[inline(always)]
    fn put<const R: usize>(c: &mut [f32], n: usize, i: usize, j: usize, cols: usize, acc: [[v128; 2]; R]) {
        for (r, acc) in acc.iter().enumerate() {
            if cols == NR {
                // Straight stores: a copy through `tmp` is a `memory.copy` call per row,
                // which cost as much as the tile's arithmetic when k is 16 or 32.
                let row: &mut [f32; NR] = (&mut c[(i + r) * n + j..][..NR]).try_into().unwrap();
                // SAFETY: `row` is NR = 8 writable floats; v128_store allows unaligned.
                unsafe {
                    v128_store(row.as_mut_ptr() as *mut v128, acc[0]);
                    v128_store(row.as_mut_ptr().add(4) as *mut v128, acc[1]);
                }
                continue;
            }
            let mut tmp = [0f32; NR];
            // SAFETY: `tmp` is NR = 8 writable floats; v128_store allows unaligned.
            unsafe {
                v128_store(tmp.as_mut_ptr() as *mut v128, acc[0]);
                v128_store(tmp.as_mut_ptr().add(4) as *mut v128, acc[1]);
            }
            c[(i + r) * n + j..][..cols].copy_from_slice(&tmp[..cols]);
        }
    }

    /// Every block of C, including ragged ones, runs the SIMD tile: the last
    /// rows with a shorter tile, the last columns on a zero-padded copy of
    /// B's last columns (scalar edge code was up to 30 % of a dense model's
    /// time when the batch is not a multiple of 4 or the head has 10 or 5 outputs).
    pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
        if k == 0 {
            c[..m * n].fill(0.0);
            return;
        }
        let full_n = n - n % NR;
        let mut padded = Vec::new();
        if full_n < n {
            padded = vec![0f32; k * NR];
            for (p, row) in padded.chunks_exact_mut(NR).enumerate() {
                row[..n - full_n].copy_from_slice(&b[p * n + full_n..(p + 1) * n]);
            }
        }
        let mut j = 0;
        while j < n {
            // SAFETY (for `tile` below): a full block reads B up to (k−1)·n + j + NR ≤ k·n
            // (checked by the caller); the padded copy is k·NR long.
            let (bp, ldb, cols) = if j < full_n { (b[j..].as_ptr(), n, NR) } else { (padded.as_ptr(), NR, n - j) };
            let mut i = 0;
            while i + MR <= m {
                // SAFETY: rows i..i+MR of A exist (a.len() ≥ m·k).
                let acc = unsafe { tile::<MR>(a[i * k..].as_ptr(), k, bp, ldb, k) };
                put(c, n, i, j, cols, acc);
                i += MR;
            }
            // SAFETY: as above, for the m − i < MR remaining rows.
            let ap = a[i * k..].as_ptr();
            match m - i {
                1 => put(c, n, i, j, cols, unsafe { tile::<1>(ap, k, bp, ldb, k) }),
                2 => put(c, n, i, j, cols, unsafe { tile::<2>(ap, k, bp, ldb, k) }),
                3 => put(c, n, i, j, cols, unsafe { tile::<3>(ap, k, bp, ldb, k) }),
                _ => {}
            }
            j += NR;
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

//! AVX2 matmul: C[m×n] = A[m×k] · B[k×n], row-major, the same contract as
//! [`super::super::matmul_portable`]. Blocks of R rows × 8·V columns stay in
//! ymm registers across the whole k loop; every element is summed over p in
//! order from +0. With `FMA = false` each step is a separate mul and add, so
//! the result is bit-identical to the portable and the wasm kernels; with
//! `FMA = true` each step rounds once (faster on some CPUs, last bits differ).

// Index loops on purpose: iterator adapters are generic functions without AVX
// enabled, and one left out of line passes its __m256 values through memory.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

/// Rows per block for 16-column blocks: 12 accumulators, 2 B vectors, the
/// broadcast and (mul + add) a product temporary fill the 16 ymm registers.
const R2: usize = 6;
/// Rows per block for 8-column blocks.
const R1: usize = 8;

/// One `R × 8·V` block of C, summed over p in `0..k`.
///
/// SAFETY: the CPU has AVX2 and FMA; `a + r·lda + p` (r < R, p < k) and
/// `b + p·ldb + 0..8·V` (p < k) are readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize, const V: usize, const FMA: bool>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    k: usize,
) -> [[__m256; V]; R] {
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    for p in 0..k {
        // SAFETY: in bounds by the function's contract; loads are unaligned.
        unsafe {
            let bp = b.add(p * ldb);
            let mut bv = [_mm256_setzero_ps(); V];
            for q in 0..V {
                bv[q] = _mm256_loadu_ps(bp.add(8 * q));
            }
            for r in 0..R {
                let av = _mm256_set1_ps(*a.add(r * lda + p));
                for q in 0..V {
                    acc[r][q] =
                        if FMA { _mm256_fmadd_ps(av, bv[q], acc[r][q]) } else { _mm256_add_ps(acc[r][q], _mm256_mul_ps(av, bv[q])) };
                }
            }
        }
    }
    acc
}

/// Writes a block to C at (i, j), keeping `cols` ≤ 8·V columns.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn put<const R: usize, const V: usize>(c: &mut [f32], n: usize, i: usize, j: usize, cols: usize, acc: &[[__m256; V]; R]) {
    for r in 0..R {
        let row = &mut c[(i + r) * n + j..][..cols];
        if cols == 8 * V {
            for q in 0..V {
                // SAFETY: `row` has 8·V floats; storeu allows unaligned.
                unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * q), acc[r][q]) };
            }
        } else {
            let mut tmp = [0f32; 16];
            for q in 0..V {
                // SAFETY: `tmp` holds 16 ≥ 8·V floats.
                unsafe { _mm256_storeu_ps(tmp.as_mut_ptr().add(8 * q), acc[r][q]) };
            }
            row.copy_from_slice(&tmp[..cols]);
        }
    }
}

/// All row blocks of one column block: B's columns at `bp` with stride `ldb`,
/// written to C's columns `j..j + cols`.
///
/// SAFETY: the CPU has AVX2 and FMA; `a` holds m·k floats and
/// `bp + p·ldb + 0..8·V` is readable for p < k.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn column_block<const R: usize, const V: usize, const FMA: bool>(
    a: &[f32],
    bp: *const f32,
    ldb: usize,
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    (j, cols): (usize, usize),
) {
    let mut i = 0;
    while i + R <= m {
        // SAFETY: rows i..i+R of A exist; B by the contract.
        let acc = unsafe { tile::<R, V, FMA>(a[i * k..].as_ptr(), k, bp, ldb, k) };
        put(c, n, i, j, cols, &acc);
        i += R;
    }
    let ap = a[i * k..].as_ptr();
    macro_rules! rest {
        ($($r:literal)*) => {
            match m - i {
                // SAFETY: the m − i remaining rows of A exist; B by the contract.
                $($r if $r < R => put(c, n, i, j, cols, &unsafe { tile::<$r, V, FMA>(ap, k, bp, ldb, k) }),)*
                _ => {}
            }
        };
    }
    rest!(1 2 3 4 5 6 7);
}

/// `c = a · b`. 16-column blocks, then one 8-column block, then the last
/// n mod 8 columns on a zero-padded copy of B's (so edges run the same
/// vector code; scalar edges cost up to 30 % of a dense model in wasm).
///
/// SAFETY: the CPU has AVX2 and FMA. Slice sizes are checked by the caller
/// (`a.len() ≥ m·k`, `b.len() ≥ k·n`, `c.len() ≥ m·n`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn matmul<const FMA: bool>(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    let dims = (m, k, n);
    let mut j = 0;
    while j + 16 <= n {
        // SAFETY: B's columns j..j+16 of every row p < k are in b (k·n floats).
        unsafe { column_block::<R2, 2, FMA>(a, b[j..].as_ptr(), n, c, dims, (j, 16)) };
        j += 16;
    }
    if j + 8 <= n {
        // SAFETY: as above for columns j..j+8.
        unsafe { column_block::<R1, 1, FMA>(a, b[j..].as_ptr(), n, c, dims, (j, 8)) };
        j += 8;
    }
    if j < n {
        let cols = n - j;
        let mut padded = vec![0f32; k * 8];
        for (p, row) in padded.chunks_exact_mut(8).enumerate() {
            row[..cols].copy_from_slice(&b[p * n + j..][..cols]);
        }
        // SAFETY: the padded copy is k rows of 8 floats.
        unsafe { column_block::<R1, 1, FMA>(a, padded.as_ptr(), 8, c, dims, (j, cols)) };
    }
}

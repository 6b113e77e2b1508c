//! AVX2 dense layer: C[m×n] = A[m×k] · B[k×n], then + bias and ReLU, with B
//! packed once into column panels ([`Panels`]).
//!
//! Why a second kernel beside `matmul.rs`: a Dense layer multiplies by the
//! same B batch after batch. Packed, each 16-column panel is one contiguous
//! stream (B's rows are `n` floats apart otherwise: a strided walk through
//! up to 300 KB per block of rows). Blocks of 6 rows of A stay in L1 while
//! every panel streams past them (column-block-outer re-read all of A from L2
//! once per panel). The bias and ReLU are applied to the registers before the
//! store instead of in two more passes over C.
//!
//! Same sums as `matmul.rs`: every element over p in order from +0, a
//! separate mul and add unless `FMA`; then one add of the bias and
//! `max(x, 0)` (= `x > 0 ? x : 0`, the portable ReLU's select, also for NaN
//! and −0) — bit-identical to matmul, `add_bias` and `Activation::Relu` in turn.

// Index loops on purpose (see matmul.rs).
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

/// Rows per block: 12 accumulators for a 16-column panel.
const R: usize = 6;

/// B (`k × n`) as column panels: 16 columns each (the last one 8 when at
/// most 8 are left), `k` rows of the panel's width in a row, zero-padded.
#[derive(Debug, Clone)]
pub struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

/// The width of the panel that starts with `left` columns still to pack.
fn panel_width(left: usize) -> usize {
    if left <= 8 { 8 } else { 16 }
}

impl Panels {
    pub fn new(b: &[f32], k: usize, n: usize) -> Self {
        assert!(b.len() >= k * n, "panel source size");
        let mut data = Vec::with_capacity(k * (n + 15));
        let mut j = 0;
        while j < n {
            let (w, cols) = (panel_width(n - j), 16.min(n - j));
            for p in 0..k {
                data.extend_from_slice(&b[p * n + j..][..cols]);
                data.resize(data.len() + w - cols, 0.0);
            }
            j += cols;
        }
        Panels { k, n, data }
    }
}

/// One `ROWS × 8·V` block, summed over p in `0..k`: rows of A at `a + r·lda`,
/// the panel at `b` (`8·V` floats per p). Unrolled by 4 in p (the loop's
/// address arithmetic was a quarter of its instructions); each accumulator
/// still takes its terms in order.
///
/// SAFETY: the CPU has AVX2 and FMA; `a + r·lda + p` (r < ROWS, p < k) and
/// `b + 0..k·8·V` are readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const ROWS: usize, const V: usize, const FMA: bool>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    k: usize,
) -> [[__m256; V]; ROWS] {
    let mut acc = [[_mm256_setzero_ps(); V]; ROWS];
    macro_rules! step {
        ($p:expr) => {{
            let p = $p;
            // SAFETY: p < k, in bounds by the function's contract; loads are unaligned.
            unsafe {
                let bp = b.add(p * 8 * V);
                let mut bv = [_mm256_setzero_ps(); V];
                for q in 0..V {
                    bv[q] = _mm256_loadu_ps(bp.add(8 * q));
                }
                for r in 0..ROWS {
                    let av = _mm256_set1_ps(*a.add(r * lda + p));
                    for q in 0..V {
                        acc[r][q] =
                            if FMA { _mm256_fmadd_ps(av, bv[q], acc[r][q]) } else { _mm256_add_ps(acc[r][q], _mm256_mul_ps(av, bv[q])) };
                    }
                }
            }
        }};
    }
    let mut p = 0;
    while p + 4 <= k {
        step!(p);
        step!(p + 1);
        step!(p + 2);
        step!(p + 3);
        p += 4;
    }
    while p < k {
        step!(p);
        p += 1;
    }
    acc
}

/// Adds the bias, applies ReLU and writes a block to C at (i, j), keeping
/// `cols` ≤ 8·V columns. `bias` is the panel's 8·V biases (zero-padded).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn put<const ROWS: usize, const V: usize>(
    c: &mut [f32],
    n: usize,
    (i, j, cols): (usize, usize, usize),
    acc: &[[__m256; V]; ROWS],
    bias: Option<&[f32; 16]>,
    relu: bool,
) {
    assert!(cols <= 8 * V && (i + ROWS - 1) * n + j + cols <= c.len(), "dense block in C");
    // Lanes of each vector inside the row: a partial one is a masked store (a copy through
    // a buffer was a `memcpy` call per row, 1.4 % of an MLP with 10 outputs).
    let lanes = |q: usize| cols.saturating_sub(8 * q).min(8);
    let mask = |q: usize| {
        const ON_OFF: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: 8 − lanes ≤ 8, so 8 ints from there are inside ON_OFF.
        unsafe { _mm256_loadu_si256(ON_OFF.as_ptr().add(8 - lanes(q)) as *const __m256i) }
    };
    for r in 0..ROWS {
        let row = c[(i + r) * n + j..].as_mut_ptr();
        for q in 0..V {
            let mut v = acc[r][q];
            if let Some(bias) = bias {
                // SAFETY: `bias` holds 16 ≥ 8·V floats; loadu allows unaligned.
                v = _mm256_add_ps(v, unsafe { _mm256_loadu_ps(bias.as_ptr().add(8 * q)) });
            }
            if relu {
                // MAXPS returns its second operand unless the first is greater: x > 0 ? x : 0.
                v = _mm256_max_ps(v, _mm256_setzero_ps());
            }
            // SAFETY: the row has `cols` floats from `row` (asserted above); a full vector
            // stores 8 of them, a masked one only its first `lanes(q)` (the others are not
            // accessed); storeu allows unaligned.
            unsafe {
                match lanes(q) {
                    8 => _mm256_storeu_ps(row.add(8 * q), v),
                    0 => {}
                    _ => _mm256_maskstore_ps(row.add(8 * q), mask(q), v),
                }
            }
        }
    }
}

/// Rows `i..i + ROWS` of C, every panel.
///
/// SAFETY: the CPU has AVX2 and FMA; rows `i..i + ROWS` of A (`k` floats each) exist.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_block<const ROWS: usize, const FMA: bool>(a: &[f32], w: &Panels, c: &mut [f32], i: usize, bias: Option<&[f32]>, relu: bool) {
    let (k, n) = (w.k, w.n);
    let ap = a[i * k..].as_ptr();
    let (mut j, mut at) = (0, 0);
    while j < n {
        let (width, cols) = (panel_width(n - j), 16.min(n - j));
        let mut b16 = [0f32; 16];
        let bias = bias.map(|b| {
            b16[..cols].copy_from_slice(&b[j..j + cols]);
            &b16
        });
        let bp = w.data[at..].as_ptr();
        // SAFETY: A's rows by the contract; the panel is k·width floats from `at`.
        if width == 16 {
            put::<ROWS, 2>(c, n, (i, j, cols), &unsafe { tile::<ROWS, 2, FMA>(ap, k, bp, k) }, bias, relu);
        } else {
            put::<ROWS, 1>(c, n, (i, j, cols), &unsafe { tile::<ROWS, 1, FMA>(ap, k, bp, k) }, bias, relu);
        }
        j += cols;
        at += k * width;
    }
}

/// `c = relu?(a · B + bias)` for `m` rows of A.
///
/// SAFETY: the CPU has AVX2 and FMA. Slice sizes are checked by the caller
/// (`a.len() ≥ m·k`, `c.len() ≥ m·n`, `bias.len() == n`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dense<const FMA: bool>(a: &[f32], w: &Panels, c: &mut [f32], m: usize, bias: Option<&[f32]>, relu: bool) {
    let mut i = 0;
    while i + R <= m {
        // SAFETY: rows i..i+R exist.
        unsafe { row_block::<R, FMA>(a, w, c, i, bias, relu) };
        i += R;
    }
    macro_rules! rest {
        ($($r:literal)*) => {
            match m - i {
                // SAFETY: the m − i remaining rows exist.
                $($r => unsafe { row_block::<$r, FMA>(a, w, c, i, bias, relu) },)*
                _ => {}
            }
        };
    }
    rest!(1 2 3 4 5);
}

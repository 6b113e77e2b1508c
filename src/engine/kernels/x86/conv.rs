//! AVX2 direct convolution (no patch matrix) for `cout` = 8·V, V ≤ 4: as in
//! the wasm kernel, copying patches cost more than the arithmetic when a
//! window row is a few floats (cin = 1). P output pixels of one row share
//! each kernel vector load. Taps in the padding are skipped (they add 0·w,
//! which never changes a sum that starts at +0), taps run in im2col order
//! (dy, dx, ci), so with `FMA = false` this equals im2col + matmul bit for bit.

// Index loops on purpose: iterator adapters are generic functions without AVX
// enabled, and one left out of line passes its __m256 values through memory.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::super::Conv2dGeom;

/// `false` (nothing written) when `cout` is not 8, 16, 24 or 32.
///
/// SAFETY: the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn conv2d<const FMA: bool>(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32]) -> bool {
    let cout = bias.len();
    assert!(
        input.len() >= g.h * g.w * g.cin && kernel.len() >= g.patch_len() * cout && out.len() >= g.oh * g.ow * cout,
        "conv2d slice sizes"
    );
    // P·V accumulators + V kernel vectors + broadcast (+ product) ≤ 16 registers.
    match cout {
        8 => run::<1, 8, FMA>(g, input, kernel, bias, out),
        16 => run::<2, 4, FMA>(g, input, kernel, bias, out),
        24 => run::<3, 3, FMA>(g, input, kernel, bias, out),
        32 => run::<4, 2, FMA>(g, input, kernel, bias, out),
        _ => return false,
    }
    true
}

/// The window taps inside the image for output index `o`: `lo..hi`.
#[inline]
fn taps(o: usize, stride: usize, pad: usize, k: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    (pad.saturating_sub(start), k.min((size + pad).saturating_sub(start)))
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn run<const V: usize, const P: usize, const FMA: bool>(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32]) {
    let cout = 8 * V;
    let mut bv = [_mm256_setzero_ps(); V];
    for q in 0..V {
        // SAFETY: bias has cout = 8·V floats.
        bv[q] = unsafe { _mm256_loadu_ps(bias.as_ptr().add(8 * q)) };
    }
    let interior = |ox: usize| taps(ox, g.sw, g.pad_left, g.kw, g.w) == (0, g.kw);
    for oy in 0..g.oh {
        let (dy0, dy1) = taps(oy, g.sh, g.pad_top, g.kh, g.h);
        let mut ox = 0;
        while ox < g.ow {
            // Interior pixels form one interval, so checking both ends of a group suffices.
            let (group, (dx0, dx1)) = if ox + P <= g.ow && interior(ox) && interior(ox + P - 1) {
                (P, (0, g.kw))
            } else {
                (1, taps(ox, g.sw, g.pad_left, g.kw, g.w))
            };
            let mut acc = [[_mm256_setzero_ps(); V]; P];
            for dy in dy0..dy1 {
                let y = oy * g.sh + dy - g.pad_top;
                for dx in dx0..dx1 {
                    let x = ox * g.sw + dx - g.pad_left;
                    // SAFETY: y < h, and x + (group − 1)·sw < w for every pixel of the
                    // group (by `taps` / `interior`), so the cin inputs read are in
                    // bounds; tap (dy, dx) has cin kernel rows of cout floats (sizes
                    // asserted by the caller).
                    unsafe {
                        let src = input.as_ptr().add((y * g.w + x) * g.cin);
                        let krow = kernel.as_ptr().add((dy * g.kw + dx) * g.cin * cout);
                        for ci in 0..g.cin {
                            let kr = krow.add(ci * cout);
                            let mut kv = [_mm256_setzero_ps(); V];
                            for q in 0..V {
                                kv[q] = _mm256_loadu_ps(kr.add(8 * q));
                            }
                            if group == P {
                                for px in 0..P {
                                    let v = _mm256_set1_ps(*src.add(px * g.sw * g.cin + ci));
                                    step::<V, FMA>(&mut acc[px], v, &kv);
                                }
                            } else {
                                step::<V, FMA>(&mut acc[0], _mm256_set1_ps(*src.add(ci)), &kv);
                            }
                        }
                    }
                }
            }
            for px in 0..group {
                let o = &mut out[(oy * g.ow + ox + px) * cout..][..cout];
                for q in 0..V {
                    // SAFETY: `o` has cout = 8·V floats.
                    unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * q), _mm256_add_ps(acc[px][q], bv[q])) };
                }
            }
            ox += group;
        }
    }
}

/// acc += v · k, per vector (one rounding with FMA, two without).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn step<const V: usize, const FMA: bool>(acc: &mut [__m256; V], v: __m256, k: &[__m256; V]) {
    for q in 0..V {
        acc[q] = if FMA { _mm256_fmadd_ps(v, k[q], acc[q]) } else { _mm256_add_ps(acc[q], _mm256_mul_ps(v, k[q])) };
    }
}

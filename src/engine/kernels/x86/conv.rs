//! AVX2 direct convolution (no patch matrix) for `cout` a multiple of 8: as
//! in the wasm kernel, copying patches cost more than the arithmetic when a
//! window row is a few floats (cin = 1). The input is first copied into a
//! zero-padded image (unless the geometry needs no padding), so every window
//! lies inside it: a window row is then kw·cin contiguous inputs, summed in
//! one run against its kw·cin contiguous kernel rows, and groups of 6 pixels
//! (in row-major order, across rows) share each kernel vector load. Edge
//! pixels with taps in the padding ran alone at a third of the speed (one add
//! chain per vector); a padding tap now adds 0·w, which never changes a sum
//! that starts at +0 (the sum cannot become −0, and weights are finite), so
//! with `FMA = false` this equals im2col + matmul bit for bit. Window rows
//! that lie in the padding for every pixel of a group are skipped. The
//! epilogue (bias, then BatchNorm's affine, the residual and ReLU, each a
//! separate operation as the layers would do them) is applied to the
//! registers before the store.

// Index loops on purpose: iterator adapters are generic functions without AVX
// enabled, and one left out of line passes its __m256 values through memory.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::super::Conv2dGeom;
use super::super::conv::ConvEpilogue;

/// `false` (nothing written) when `cout` is not a multiple of 8.
///
/// SAFETY: the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn conv2d<const FMA: bool>(
    g: &Conv2dGeom,
    input: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    epi: &ConvEpilogue,
    scratch: &mut Vec<f32>,
) -> bool {
    let cout = bias.len();
    if cout == 0 || !cout.is_multiple_of(8) {
        return false;
    }
    let len = g.oh * g.ow * cout;
    assert!(input.len() >= g.h * g.w * g.cin && kernel.len() >= g.patch_len() * cout && out.len() >= len, "conv2d slice sizes");
    assert!(epi.affine.is_none_or(|(s, t)| s.len() == cout && t.len() == cout), "conv2d affine sizes");
    assert!(epi.residual.is_none_or(|r| r.len() >= len), "conv2d residual size");
    let padded = pad(g, input, scratch);
    let src = padded.unwrap_or(input).as_ptr();
    let width = if padded.is_some() { g.pad_left + g.w + pad_after(g.ow, g.sw, g.kw, g.pad_left, g.w) } else { g.w };
    let sweep = Sweep { g, input: src, width, kernel: kernel.as_ptr(), cout, bias, epi };
    // Blocks of 16 channels (then one of 8) × 6 pixels: the matmul's 6 × 16 register tile
    // (12 accumulators, 2 kernel vectors, the broadcast and the product fill the 16
    // registers); wider blocks had fewer pixels to share each kernel load and, once the
    // kernel outgrew L1 (32 channels × 9 taps × 32), streamed it from L2 twice as often.
    let mut at = 0;
    while at + 16 <= cout {
        sweep.block::<2, 6, FMA>(at, out);
        at += 16;
    }
    if at < cout {
        sweep.block::<1, 8, FMA>(at, out);
    }
    true
}

/// One convolution's operands (sizes checked by [`conv2d`]).
struct Sweep<'a> {
    g: &'a Conv2dGeom,
    /// The (padded) image: `width` pixels a row, every window inside it.
    input: *const f32,
    width: usize,
    kernel: *const f32,
    cout: usize,
    bias: &'a [f32],
    epi: &'a ConvEpilogue<'a>,
}

/// Padding after the image along one axis: what the last window needs beyond it.
fn pad_after(o: usize, stride: usize, k: usize, pad: usize, size: usize) -> usize {
    ((o - 1) * stride + k).saturating_sub(pad + size)
}

/// The input with its zero padding, in `scratch`; `None` when every window
/// already lies inside the image.
fn pad<'s>(g: &Conv2dGeom, input: &[f32], scratch: &'s mut Vec<f32>) -> Option<&'s [f32]> {
    let (below, right) = (pad_after(g.oh, g.sh, g.kh, g.pad_top, g.h), pad_after(g.ow, g.sw, g.kw, g.pad_left, g.w));
    if g.pad_top + g.pad_left + below + right == 0 {
        return None;
    }
    let row = (g.pad_left + g.w + right) * g.cin;
    scratch.clear();
    scratch.resize(g.pad_top * row, 0.0);
    for y in 0..g.h {
        scratch.resize(scratch.len() + g.pad_left * g.cin, 0.0);
        scratch.extend_from_slice(&input[y * g.w * g.cin..][..g.w * g.cin]);
        scratch.resize(scratch.len() + right * g.cin, 0.0);
    }
    scratch.resize(scratch.len() + below * row, 0.0);
    Some(scratch)
}

/// The window taps inside the image for output index `o`: `lo..hi`.
#[inline]
fn taps(o: usize, stride: usize, pad: usize, k: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    (pad.saturating_sub(start), k.min((size + pad).saturating_sub(start)))
}

impl Sweep<'_> {
    /// Output channels `c0..c0 + 8·V` of every pixel, in groups of P pixels in
    /// row-major order (a group may span rows; the last one overlaps its
    /// neighbour; single pixels when there are fewer than P).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn block<const V: usize, const P: usize, const FMA: bool>(&self, c0: usize, out: &mut [f32]) {
        let pixels = self.g.oh * self.g.ow;
        if pixels < P {
            for p in 0..pixels {
                self.group::<V, 1, FMA>(c0, p, out);
            }
            return;
        }
        let mut p = 0;
        while p < pixels {
            self.group::<V, P, FMA>(c0, p.min(pixels - P), out);
            p += P;
        }
    }

    /// Pixels `p0..p0 + P` (row-major), channels `c0..c0 + 8·V`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn group<const V: usize, const P: usize, const FMA: bool>(&self, c0: usize, p0: usize, out: &mut [f32]) {
        let (g, cout) = (self.g, self.cout);
        // Window rows any pixel of the group reads (a pixel outside its own reads zeros).
        let (oy0, oy1) = (p0 / g.ow, (p0 + P - 1) / g.ow);
        let (dy0, dy1) = (taps(oy1, g.sh, g.pad_top, g.kh, g.h).0, taps(oy0, g.sh, g.pad_top, g.kh, g.h).1);
        // Each pixel's window origin in the padded image.
        let mut origin = [self.input; P];
        for px in 0..P {
            let (oy, ox) = ((p0 + px) / g.ow, (p0 + px) % g.ow);
            origin[px] = self.input.wrapping_add((oy * g.sh * self.width + ox * g.sw) * g.cin);
        }
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        for dy in dy0..dy1 {
            let src = origin.map(|o| o.wrapping_add(dy * self.width * g.cin));
            // SAFETY: window row dy of every pixel is inside the padded image (kw·cin
            // inputs from `src`); its kw·cin kernel rows have cout floats, c0 + 8·V ≤ cout.
            // A window row's taps run in (dx, ci) order, as im2col lays them out.
            acc = unsafe { tap::<V, P, FMA>(acc, &src, self.kernel.add(dy * g.kw * g.cin * cout + c0), g.kw * g.cin, cout) };
        }
        let epi = self.epi;
        for px in 0..P {
            let at = (p0 + px) * cout + c0;
            let o = &mut out[at..][..8 * V];
            for q in 0..V {
                let c = c0 + 8 * q;
                // SAFETY: bias (and the affine's vectors) have cout ≥ c + 8 floats, the
                // residual as many as `out` (checked by `conv2d`); `o` has 8·V floats.
                unsafe {
                    let mut v = _mm256_add_ps(acc[px][q], _mm256_loadu_ps(self.bias.as_ptr().add(c)));
                    if let Some((scale, shift)) = epi.affine {
                        v = _mm256_mul_ps(v, _mm256_loadu_ps(scale.as_ptr().add(c)));
                        v = _mm256_add_ps(v, _mm256_loadu_ps(shift.as_ptr().add(c)));
                    }
                    if let Some(r) = epi.residual {
                        v = _mm256_add_ps(_mm256_loadu_ps(r.as_ptr().add(at + 8 * q)), v);
                    }
                    if epi.relu {
                        // MAXPS returns its second operand unless the first is greater: x > 0 ? x : 0.
                        v = _mm256_max_ps(v, _mm256_setzero_ps());
                    }
                    _mm256_storeu_ps(o.as_mut_ptr().add(8 * q), v);
                }
            }
        }
    }
}

/// One window row: `acc[px] += src[px][ci] · k[ci]` for ci in order. By value
/// (a `&mut` to the accumulators kept them in memory: a store after every add).
///
/// SAFETY: the CPU has AVX2 and FMA; `src[px] + 0..cin` and `k + ci·ldk + 0..8·V` are readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tap<const V: usize, const P: usize, const FMA: bool>(
    mut acc: [[__m256; V]; P],
    src: &[*const f32; P],
    k: *const f32,
    cin: usize,
    ldk: usize,
) -> [[__m256; V]; P] {
    for ci in 0..cin {
        // SAFETY: by the function's contract.
        unsafe {
            let kr = k.add(ci * ldk);
            let mut kv = [_mm256_setzero_ps(); V];
            for q in 0..V {
                kv[q] = _mm256_loadu_ps(kr.add(8 * q));
            }
            for px in 0..P {
                step::<V, FMA>(&mut acc[px], _mm256_set1_ps(*src[px].add(ci)), &kv);
            }
        }
    }
    acc
}

/// acc += v · k, per vector (one rounding with FMA, two without).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn step<const V: usize, const FMA: bool>(acc: &mut [__m256; V], v: __m256, k: &[__m256; V]) {
    for q in 0..V {
        acc[q] = if FMA { _mm256_fmadd_ps(v, k[q], acc[q]) } else { _mm256_add_ps(acc[q], _mm256_mul_ps(v, k[q])) };
    }
}

//! x86-64 kernels, chosen at run time: the native build targets baseline
//! x86-64 (SSE2), so AVX2 code lives in `#[target_feature]` functions that
//! run only after the CPU has been asked (once, cached).

mod conv;
mod dense;
mod matmul;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};

pub use dense::Panels;

use super::Conv2dGeom;
use super::activation;
use super::conv::ConvEpilogue;

const UNKNOWN: u8 = 0;
const NONE: u8 = 1;
const AVX2_FMA: u8 = 2;
static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);
static FMA: AtomicBool = AtomicBool::new(false);

/// True when the CPU has AVX2 and FMA (every x86-64 CPU with one has the
/// other; requiring both keeps one code path). AVX-512 is not used: on the
/// Zen 4 it was measured on (256-bit units), 32-column zmm blocks ran no
/// faster with FMA and 10 % slower with mul + add, and the arithmetic peak
/// of mul + add is the same for both widths (117 GFLOP/s, `tools/simd_peak.c`).
pub fn avx2() -> bool {
    match LEVEL.load(Relaxed) {
        UNKNOWN => {
            let has = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            LEVEL.store(if has { AVX2_FMA } else { NONE }, Relaxed);
            has
        }
        l => l == AVX2_FMA,
    }
}

/// See [`super::set_fma`].
pub fn set_fma(fma: bool) {
    FMA.store(fma, Relaxed);
}

pub fn fma() -> bool {
    FMA.load(Relaxed)
}

/// `c = a · b` with AVX2; `false` (nothing written) when the CPU lacks it.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) -> bool {
    if !avx2() {
        return false;
    }
    // SAFETY: AVX2 and FMA are present (checked above); the caller checked the slice sizes.
    unsafe { if fma() { matmul::matmul::<true>(a, b, c, m, k, n) } else { matmul::matmul::<false>(a, b, c, m, k, n) } }
    true
}

/// `c = relu?(a · B + bias)` on packed B with AVX2; `false` (nothing
/// written) when the CPU lacks it.
pub fn dense(a: &[f32], w: &Panels, c: &mut [f32], m: usize, bias: Option<&[f32]>, relu: bool) -> bool {
    if !avx2() {
        return false;
    }
    // SAFETY: AVX2 and FMA are present (checked above); the caller checked the slice sizes.
    unsafe { if fma() { dense::dense::<true>(a, w, c, m, bias, relu) } else { dense::dense::<false>(a, w, c, m, bias, relu) } }
    true
}

/// Direct convolution with AVX2, its epilogue fused; `false` when the CPU
/// lacks it or `cout` is not a multiple of 8 (then im2col + [`matmul`]).
pub fn conv2d(
    g: &Conv2dGeom,
    input: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    epi: &ConvEpilogue,
    scratch: &mut Vec<f32>,
) -> bool {
    if !avx2() {
        return false;
    }
    // SAFETY: AVX2 and FMA are present (checked above).
    unsafe {
        if fma() {
            conv::conv2d::<true>(g, input, kernel, bias, out, epi, scratch)
        } else {
            conv::conv2d::<false>(g, input, kernel, bias, out, epi, scratch)
        }
    }
}

/// The portable activation loops compiled for AVX2 (8 lanes instead of
/// SSE2's 4). Rust never fuses a mul and an add on its own, so these are
/// bit-identical to the portable loops, with or without `set_fma`.
#[target_feature(enable = "avx2,fma")]
fn tanh_avx2(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = activation::tanh(*x));
}

#[target_feature(enable = "avx2,fma")]
fn sigmoid_avx2(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = activation::sigmoid(*x));
}

/// `false` when the CPU lacks AVX2.
pub fn tanh_slice(v: &mut [f32]) -> bool {
    // SAFETY: AVX2 and FMA are present.
    avx2() && {
        unsafe { tanh_avx2(v) };
        true
    }
}

/// `false` when the CPU lacks AVX2.
pub fn sigmoid_slice(v: &mut [f32]) -> bool {
    // SAFETY: AVX2 and FMA are present.
    avx2() && {
        unsafe { sigmoid_avx2(v) };
        true
    }
}

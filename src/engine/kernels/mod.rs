//! Hot numeric kernels. Each has a portable path (plain loops LLVM can
//! vectorise; the reference in tests), on wasm32 with `simd128` a
//! hand-written `f32x4` path, and on x86-64 AVX2 paths chosen at run time
//! (`x86/`). `simd_active()` and `kernel_set()` tell which one runs.
//!
//! Determinism rule: every kernel sums each output over its terms in the
//! same order, with a separate multiply and add, so the portable, wasm and
//! default x86 kernels give the same bits — the page (and every browser) and
//! the CLI agree on numbers, masks and digests. `set_fma(true)` (CLI
//! `--fma`) swaps the x86 matmul and convolution for fused multiply-add:
//! measured on the bundled models (Zen 4, one core, two runs) mul + add ran
//! at 0.76–1.01 of FMA's speed per model, 0.89–0.90 in geometric mean: within
//! the ~15 % that bit-identical results everywhere are worth, so FMA is opt-in.

pub mod activation;
pub mod conv;
pub mod dense;
pub mod matmul;
pub mod pool;
pub mod smooth;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use conv::{Conv2dGeom, ConvEpilogue, conv2d, conv2d_fused, conv2d_im2col, depthwise2d};
pub use dense::{DenseWeights, Epilogue, dense};
pub use matmul::{matmul, matmul_portable};
pub use pool::{PoolKind, global_avg_pool, global_pool, global_pool_samples, pool2d, pool2d_samples};

/// True when SIMD kernels run: `simd128` on wasm, AVX2 on an x86-64 CPU that has it.
pub fn simd_active() -> bool {
    #[cfg(target_arch = "x86_64")]
    if x86::avx2() {
        return true;
    }
    cfg!(all(target_arch = "wasm32", target_feature = "simd128"))
}

/// Which kernel set runs (for `info` and `bench`).
pub fn kernel_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if x86::avx2() {
        return if x86::fma() {
            "x86-64 AVX2 + FMA (last bits differ from the page)"
        } else {
            "x86-64 AVX2 (mul + add, bit-identical to the page)"
        };
    }
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) { "wasm simd128" } else { "portable" }
}

/// Process-wide, x86-64 only: `true` selects the FMA kernels (one rounding
/// per multiply-add instead of two: faster, but results differ from the
/// portable and wasm kernels in the last bits). Off by default.
pub fn set_fma(fma: bool) {
    #[cfg(target_arch = "x86_64")]
    x86::set_fma(fma);
    let _ = fma;
}

/// Reproducible values in [−0.5, 0.5) for the kernels' tests (an LCG).
#[cfg(test)]
pub(crate) fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005) | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

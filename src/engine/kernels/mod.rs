//! Hot numeric kernels. Each has a portable path (plain loops LLVM can
//! vectorise) and, on wasm32 with `simd128`, a hand-written `f32x4` path.
//! `simd_active()` tells which one this build uses.

pub mod activation;
pub mod conv;
pub mod matmul;
pub mod pool;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use conv::{Conv2dGeom, conv2d, conv2d_im2col};
pub use matmul::{matmul, matmul_portable};
pub use pool::{PoolKind, global_avg_pool, pool2d};

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
        return if x86::exact() { "x86-64 AVX2 (exact: mul + add)" } else { "x86-64 AVX2 + FMA" };
    }
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) { "wasm simd128" } else { "portable" }
}

/// Process-wide: `true` selects the x86 kernels that sum with separate mul
/// and add, bit-identical to the portable and wasm kernels. No effect elsewhere.
pub fn set_exact(exact: bool) {
    #[cfg(target_arch = "x86_64")]
    x86::set_exact(exact);
    let _ = exact;
}

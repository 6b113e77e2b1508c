//! Hot numeric kernels. Each has a portable path (plain loops LLVM can
//! vectorise) and, on wasm32 with `simd128`, a hand-written `f32x4` path.
//! `simd_active()` tells which one this build uses.

pub mod activation;
pub mod conv;
pub mod matmul;
pub mod pool;
pub mod smooth;

pub use conv::{Conv2dGeom, conv2d, conv2d_im2col};
pub use matmul::{matmul, matmul_portable};
pub use pool::{PoolKind, global_avg_pool, global_pool, pool2d};

/// True when this build runs the `simd128` kernels.
pub const fn simd_active() -> bool {
    cfg!(all(target_arch = "wasm32", target_feature = "simd128"))
}

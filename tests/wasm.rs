//! Engine tests run as wasm in headless Chromium (`scripts/test`), so the
//! SIMD kernels are checked where they actually run.
#![cfg(target_arch = "wasm32")]

use remodule::kernels::{matmul, matmul_portable, simd_active};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn simd_is_compiled_in() {
    assert!(cfg!(target_feature = "simd128"), "build lost +simd128 (is RUSTFLAGS set?)");
    assert!(simd_active());
}

#[wasm_bindgen_test]
fn simd_matmul_matches_portable() {
    for &(m, k, n) in &[(1, 1, 1), (4, 8, 8), (5, 13, 11), (17, 33, 24), (64, 784, 64)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
        let (mut c1, mut c2) = (vec![0.0; m * n], vec![0.0; m * n]);
        matmul(&a, &b, &mut c1, m, k, n);
        matmul_portable(&a, &b, &mut c2, m, k, n);
        for (x, y) in c1.iter().zip(&c2) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{m}x{k}x{n}: {x} vs {y}");
        }
    }
}

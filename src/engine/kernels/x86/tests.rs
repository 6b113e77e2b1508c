//! Every x86 kernel against the portable one: bit for bit for the exact
//! (mul + add) kernels and the activations, within 1e-5 of Σ|a||b| for FMA.

use super::super::activation;
use super::super::conv::ConvEpilogue;
use super::super::matmul::matmul_portable;
use super::super::values;
use super::*;

/// Skips (with a line on stdout) when the CPU lacks AVX2/FMA.
fn cpu_ok() -> bool {
    let ok = avx2();
    if !ok {
        println!("skipped: this CPU has no AVX2 + FMA");
    }
    ok
}

const SIZES: [usize; 12] = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 33, 64];

/// The AVX2 kernel, with `FMA` chosen explicitly (not through the switch, which other tests may flip).
fn x86_matmul<const FMA: bool>(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![f32::NAN; m * n];
    // SAFETY: `cpu_ok` was checked by the caller; the slices have the sizes given.
    unsafe { matmul::matmul::<FMA>(a, b, &mut c, m, k, n) };
    c
}

#[test]
fn matmul_exact_is_bit_identical_and_fma_close() {
    if !cpu_ok() {
        return;
    }
    for &m in &SIZES {
        for &k in &[0, 1, 2, 3, 7, 9, 16, 33, 100] {
            for &n in &SIZES.iter().copied().chain([10, 27, 31, 40, 96, 130]).collect::<Vec<_>>() {
                let a = values((m * 1000 + k) as u64, m * k);
                let b = values((k * 1000 + n) as u64 + 7, k * n);
                let mut want = vec![f32::NAN; m * n];
                matmul_portable(&a, &b, &mut want, m, k, n);
                let exact = x86_matmul::<false>(&a, &b, m, k, n);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&exact), bits(&want), "exact m={m} k={k} n={n}");
                let fma = x86_matmul::<true>(&a, &b, m, k, n);
                for i in 0..m {
                    for j in 0..n {
                        let scale: f32 = (0..k).map(|p| (a[i * k + p] * b[p * n + j]).abs()).sum();
                        let (g, w) = (fma[i * n + j], want[i * n + j]);
                        assert!((g - w).abs() <= 1e-5 * scale, "fma m={m} k={k} n={n} ({i},{j}): {g} vs {w}");
                    }
                }
            }
        }
    }
}

/// im2col with the portable matmul: the reference for the direct kernel.
fn conv_portable(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f32> {
    let (plen, rows, cout) = (g.patch_len(), g.oh * g.ow, bias.len());
    let mut patches = vec![0f32; rows * plen];
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    if let Some((y, x)) = g.tap(oy, ox, dy, dx) {
                        let at = (oy * g.ow + ox) * plen + (dy * g.kw + dx) * g.cin;
                        patches[at..][..g.cin].copy_from_slice(&input[(y * g.w + x) * g.cin..][..g.cin]);
                    }
                }
            }
        }
    }
    let mut out = vec![0f32; rows * cout];
    matmul_portable(&patches, kernel, &mut out, rows, plen, cout);
    for px in out.chunks_exact_mut(cout) {
        px.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    out
}

#[test]
fn direct_conv_matches_im2col() {
    if !cpu_ok() {
        return;
    }
    let mut checked = 0;
    for &(h, w) in &[(1, 1), (3, 5), (7, 7), (9, 4), (12, 13), (28, 28)] {
        for &cin in &[1, 2, 3, 8, 16] {
            for &cout in &[8, 16, 24, 32, 4, 12, 40, 64] {
                for &(k, s) in &[(1, 1), (2, 2), (3, 1), (3, 2), (5, 3)] {
                    let geoms = [
                        Conv2dGeom::new([h, w, cin], [k, k], [s, s], true),
                        Conv2dGeom::new([h, w, cin], [k, k], [s, s], false),
                        Conv2dGeom::new([h, w, cin], [k, (k + 1).min(5)], [s, 1], true),
                        Conv2dGeom::explicit(h, w, cin, k, k, s, s, [k / 2, k.saturating_sub(1), 0, k / 2]),
                    ];
                    for g in geoms.into_iter().flatten() {
                        let seed = (h * 31 + w * 7 + cin * 5 + cout * 3 + k + s) as u64;
                        let input = values(seed, h * w * cin);
                        let kernel = values(seed + 1, g.patch_len() * cout);
                        let bias = values(seed + 2, cout);
                        let want = conv_portable(&g, &input, &kernel, &bias);
                        let mut exact = vec![f32::NAN; want.len()];
                        let mut fma = exact.clone();
                        // SAFETY: `cpu_ok` checked AVX2 + FMA.
                        let ran =
                            unsafe { conv::conv2d::<false>(&g, &input, &kernel, &bias, &mut exact, &Default::default(), &mut Vec::new()) };
                        assert_eq!(ran, cout % 8 == 0, "cout {cout}");
                        if !ran {
                            continue;
                        }
                        // SAFETY: as above.
                        unsafe { conv::conv2d::<true>(&g, &input, &kernel, &bias, &mut fma, &Default::default(), &mut Vec::new()) };
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&exact), bits(&want), "{g:?} cout {cout}");
                        let scale = g.patch_len() as f32 * 0.25 + 0.5;
                        for (f, w) in fma.iter().zip(&want) {
                            assert!((f - w).abs() <= 1e-5 * scale, "{g:?} cout {cout}: {f} vs {w}");
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 500, "{checked} geometries");
}

/// The fused epilogue (BatchNorm's affine, a residual, ReLU) against the
/// portable convolution followed by the layers' own loops, bit for bit.
#[test]
fn direct_conv_epilogue_matches_layers() {
    if !cpu_ok() {
        return;
    }
    for &(h, w, cin, cout, k, s) in
        &[(5, 7, 3, 8, 3, 1), (6, 6, 16, 16, 3, 2), (7, 7, 16, 32, 3, 1), (8, 8, 5, 64, 1, 1), (4, 9, 2, 24, 2, 1)]
    {
        let g = Conv2dGeom::new([h, w, cin], [k, k], [s, s], true).unwrap();
        let seed = (h * 31 + cin * 5 + cout) as u64;
        let (input, kernel, bias) = (values(seed, h * w * cin), values(seed + 1, g.patch_len() * cout), values(seed + 2, cout));
        let (scale, shift) = (values(seed + 3, cout), values(seed + 4, cout));
        let residual = values(seed + 5, g.oh * g.ow * cout);
        for mask in 0..8 {
            let epi = ConvEpilogue {
                affine: (mask & 1 != 0).then_some((&scale[..], &shift[..])),
                residual: (mask & 2 != 0).then_some(&residual[..]),
                relu: mask & 4 != 0,
            };
            let mut want = conv_portable(&g, &input, &kernel, &bias);
            for (i, v) in want.iter_mut().enumerate() {
                if mask & 1 != 0 {
                    *v = *v * scale[i % cout] + shift[i % cout];
                }
                if mask & 2 != 0 {
                    *v += residual[i];
                }
                if mask & 4 != 0 {
                    *v = if *v > 0.0 { *v } else { 0.0 };
                }
            }
            let mut got = vec![f32::NAN; want.len()];
            // SAFETY: `cpu_ok` checked AVX2 + FMA.
            assert!(unsafe { conv::conv2d::<false>(&g, &input, &kernel, &bias, &mut got, &epi, &mut Vec::new()) });
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{g:?} cout {cout} epilogue {mask}");
            // The portable path applies the same epilogue after the product.
            let mut portable = vec![f32::NAN; want.len()];
            super::super::conv::conv2d_im2col(&g, &input, &kernel, &bias, &mut portable, &mut Vec::new());
            epi.apply(&mut portable, cout);
            assert_eq!(bits(&portable), bits(&want), "portable {g:?} cout {cout} epilogue {mask}");
        }
    }
}

#[test]
fn activations_are_bit_identical() {
    if !cpu_ok() {
        return;
    }
    let x: Vec<f32> = (-120_000..=120_000)
        .map(|i| i as f32 * 1e-4 * (1.0 + (i % 7) as f32))
        .chain([-100.0, -88.5, 88.5, 100.0, 1e-30, -1e-30, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY])
        .collect();
    let (mut t, mut s) = (x.clone(), x.clone());
    assert!(tanh_slice(&mut t) && sigmoid_slice(&mut s));
    for (i, &v) in x.iter().enumerate() {
        assert_eq!(t[i].to_bits(), activation::tanh(v).to_bits(), "tanh({v})");
        assert_eq!(s[i].to_bits(), activation::sigmoid(v).to_bits(), "sigmoid({v})");
    }
}

#[test]
fn packed_dense_fma_is_close() {
    if !cpu_ok() {
        return;
    }
    for &m in &[1, 5, 6, 13, 38] {
        for &k in &[0, 3, 33, 100] {
            for &n in &[3, 8, 10, 17, 64, 96] {
                let (a, b) = (values((m * 1000 + k) as u64, m * k), values((k * 1000 + n) as u64 + 7, k * n));
                let mut want = vec![f32::NAN; m * n];
                matmul_portable(&a, &b, &mut want, m, k, n);
                let mut got = vec![f32::NAN; m * n];
                // SAFETY: `cpu_ok` checked AVX2 + FMA; the slices have the sizes given.
                unsafe { dense::dense::<true>(&a, &Panels::new(&b, k, n), &mut got, m, None, false) };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let (r, j) = (i / n, i % n);
                    let scale: f32 = (0..k).map(|p| (a[r * k + p] * b[p * n + j]).abs()).sum();
                    assert!((g - w).abs() <= 1e-5 * scale, "m={m} k={k} n={n} ({r},{j}): {g} vs {w}");
                }
            }
        }
    }
}

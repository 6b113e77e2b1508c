//! A Dense layer's product with its bias and ReLU: `c = relu?(a · B + bias)`.
//!
//! [`DenseWeights`] prepares B once for every batch of a pass: on x86-64 with
//! AVX2 it packs B into column panels (`x86/dense.rs`, which also adds the
//! bias and applies ReLU to the registers before the store); elsewhere it
//! keeps B as it is and [`dense`] runs [`matmul`], the bias and ReLU in turn.
//! Both give the same bits: the same sums, then one add, then `x > 0 ? x : 0`.

use super::matmul;

/// B (`k × n`, row-major) ready for [`dense`].
#[derive(Debug, Clone)]
pub struct DenseWeights<'a> {
    b: &'a [f32],
    k: usize,
    n: usize,
    #[cfg(target_arch = "x86_64")]
    panels: Option<super::x86::Panels>,
}

impl<'a> DenseWeights<'a> {
    pub fn new(b: &'a [f32], k: usize, n: usize) -> Self {
        assert!(b.len() >= k * n, "dense weight size");
        DenseWeights {
            b,
            k,
            n,
            #[cfg(target_arch = "x86_64")]
            panels: super::x86::avx2().then(|| super::x86::Panels::new(b, k, n)),
        }
    }
}

/// What follows the product, fused into its output write where the kernel can.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added to every row (`n` values).
    pub bias: Option<&'a [f32]>,
    /// Then `x > 0 ? x : 0` (Keras ReLU).
    pub relu: bool,
}

/// `c = a · B`, then the epilogue, for `m` rows of `a` (`m × k`).
pub fn dense(a: &[f32], w: &DenseWeights, c: &mut [f32], m: usize, epilogue: Epilogue) {
    let (k, n) = (w.k, w.n);
    assert!(a.len() >= m * k && c.len() >= m * n, "dense slice sizes");
    assert!(epilogue.bias.is_none_or(|b| b.len() == n), "dense bias size");
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.panels
        && super::x86::dense(a, p, c, m, epilogue.bias, epilogue.relu)
    {
        return;
    }
    matmul(a, w.b, c, m, k, n);
    let c = &mut c[..m * n];
    if let Some(bias) = epilogue.bias {
        for row in c.chunks_exact_mut(n.max(1)) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }
    if epilogue.relu {
        // A select, not `f32::max`: the ReLU of `Activation::apply_elementwise`.
        c.iter_mut().for_each(|x| *x = if *x > 0.0 { *x } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::{matmul_portable, values};

    /// Every shape the panels and row blocks can take, bit for bit against the
    /// portable matmul, then the bias add and the ReLU select in separate passes.
    #[test]
    fn fused_is_bit_identical_to_matmul_then_bias_then_relu() {
        for m in [1, 2, 5, 6, 7, 12, 13, 38] {
            for k in [0, 1, 3, 4, 5, 9, 64] {
                for n in [1, 7, 8, 9, 10, 16, 17, 24, 25, 48, 64, 96] {
                    let (a, b, bias) =
                        (values(m as u64 * 97 + k as u64, m * k), values(k as u64 * 31 + n as u64, k * n), values(n as u64, n));
                    let w = DenseWeights::new(&b, k, n);
                    for (with_bias, relu) in [(false, false), (true, false), (true, true), (false, true)] {
                        let mut want = vec![f32::NAN; m * n];
                        matmul_portable(&a, &b, &mut want, m, k, n);
                        for row in want.chunks_exact_mut(n) {
                            if with_bias {
                                row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b);
                            }
                            if relu {
                                row.iter_mut().for_each(|x| *x = if *x > 0.0 { *x } else { 0.0 });
                            }
                        }
                        let mut got = vec![f32::NAN; m * n];
                        dense(&a, &w, &mut got, m, Epilogue { bias: with_bias.then_some(&bias[..]), relu });
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&want), "m={m} k={k} n={n} bias={with_bias} relu={relu}");
                    }
                }
            }
        }
    }
}

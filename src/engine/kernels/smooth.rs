//! The activations beyond ReLU / tanh / sigmoid that small Keras and PyTorch
//! models use: leaky ReLU, ELU, GELU (exact and tanh form), swish (SiLU),
//! softplus and hard sigmoid. Each is written on `activation::exp` (no libm),
//! so wasm and native compute the same bits; the tests bound them against
//! f64 references.

use super::activation::{exp, sigmoid, tanh};

#[inline(always)]
pub fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x > 0.0 { x } else { alpha * x }
}

#[inline(always)]
pub fn elu(x: f32, alpha: f32) -> f32 {
    // exp(x) − 1 loses digits near 0; the series keeps them (|x| < 1/32).
    let small = x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x / 24.0)));
    let em1 = if x > -0.03125 { small } else { exp(x) - 1.0 };
    if x > 0.0 { x } else { alpha * em1 }
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - p * exp(-a * a);
    if x < 0.0 { -y } else { y }
}

/// GELU, exact: x·Φ(x) (Keras `gelu` with approximate=False, PyTorch's default, ONNX `Gelu`).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU, tanh form (Keras approximate=True, ONNX `approximate="tanh"`).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const K: f32 = 0.797_884_6; // √(2/π)
    0.5 * x * (1.0 + tanh(K * (x + 0.044_715 * x * x * x)))
}

#[inline(always)]
pub fn swish(x: f32) -> f32 {
    x * sigmoid(x)
}

/// ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^−|x|) so it neither overflows nor loses small values.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + (exp(-x.abs())).ln_1p()
}

/// clamp(αx + ½, 0, 1): Keras 2 and ONNX use α = 0.2, Keras 3 α = 1/6 (relu6(x + 3) / 6).
#[inline(always)]
pub fn hard_sigmoid(x: f32, alpha: f32) -> f32 {
    (alpha * x + 0.5).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f64> {
        (-40_000..=40_000).map(|i| i as f64 * 5e-4).chain([-80.0, -30.0, 30.0, 80.0, 1e-20, -1e-20, 0.0])
    }

    fn erf64(x: f64) -> f64 {
        // Taylor series (|x| < 3) or the continued fraction's tail: exact to f64 noise at these x.
        if x.abs() < 3.0 {
            let (mut sum, mut term, mut n) = (0.0, x, 0.0);
            while term.abs() > 1e-17 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            x.signum() * (1.0 - (-x * x).exp() / (x.abs() * std::f64::consts::PI.sqrt()) * (1.0 - 0.5 / (x * x)))
        }
    }

    fn close(what: &str, x: f64, got: f32, want: f64) {
        assert!((got as f64 - want).abs() <= 1e-6 + 2e-6 * want.abs(), "{what}({x}) = {got}, want {want}");
    }

    #[test]
    fn each_matches_its_f64_formula() {
        for x in grid() {
            let f = x as f32;
            let x = f as f64;
            let sig = 1.0 / (1.0 + (-x).exp());
            close("leaky_relu", x, leaky_relu(f, 0.3), if x > 0.0 { x } else { 0.3 * x });
            close("elu", x, elu(f, 1.5), if x > 0.0 { x } else { 1.5 * x.exp_m1() });
            close("erf", x, erf(f), erf64(x));
            close("gelu", x, gelu(f), 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())));
            let k = (2.0 / std::f64::consts::PI).sqrt();
            close("gelu_tanh", x, gelu_tanh(f), 0.5 * x * (1.0 + (k * (x + 0.044715 * x.powi(3))).tanh()));
            close("swish", x, swish(f), x * sig);
            close("softplus", x, softplus(f), x.max(0.0) + (-x.abs()).exp().ln_1p());
            close("hard_sigmoid", x, hard_sigmoid(f, 0.2), (0.2 * x + 0.5).clamp(0.0, 1.0));
        }
        assert_eq!((elu(0.0, 1.0), gelu(0.0), swish(0.0)), (0.0, 0.0, 0.0));
    }
}

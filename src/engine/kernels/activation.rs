//! Elementwise exp / tanh / sigmoid over slices, written so LLVM vectorises
//! them (no libm calls, no branches — selects only): with `simd128` on wasm
//! they become `f32x4` code, natively SSE/AVX. Recurrent cells spend most of
//! their time here (libm's `tanhf`/`expm1f` were 60 % of an LSTM pass).
//!
//! `exp`: range reduction `x = n·ln2 + r`, |r| ≤ ln2/2, and the degree-7
//! Taylor polynomial of `e^r` (truncation error < 6e-9 relative), scaled by
//! `2^n` through the exponent bits. tanh and sigmoid are built on it; the
//! tests bound all three against the standard library.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two so `n · LN2_HI` is exact for the n that occur.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Adding and subtracting 1.5·2^23 rounds an f32 of magnitude < 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;

#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((exponent(n, t) + 127) as u32) << 23)
}

/// The integer `n` (|n| ≤ 127) as an i32; `t` = n + ROUND, the float it came from.
#[inline(always)]
fn exponent(n: f32, t: f32) -> i32 {
    // On x86 the saturating `n as i32` does not vectorise (a scalar convert and
    // two compares per lane were most of an LSTM's tanh/sigmoid time); n is also
    // t's low mantissa bits (t = 1.5·2^23 + n has an ulp of 1). The same integer.
    #[cfg(target_arch = "x86_64")]
    {
        let _ = n;
        t.to_bits() as i32 - ROUND.to_bits() as i32
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = t;
        n as i32
    }
}

#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // Near 0, 1 − 2/(e^{2x}+1) cancels; the odd series is exact to f32 there.
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    let big = 1.0 - 2.0 / (exp(2.0 * x) + 1.0);
    if x.abs() < 0.0625 { small } else { big }
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

pub fn tanh_slice(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::x86::tanh_slice(v) {
        return;
    }
    v.iter_mut().for_each(|x| *x = tanh(*x));
}

pub fn sigmoid_slice(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::x86::sigmoid_slice(v) {
        return;
    }
    v.iter_mut().for_each(|x| *x = sigmoid(*x));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-200_000..=200_000).map(|i| i as f32 * 1e-4).chain([-100.0, -88.5, 88.5, 100.0, 1e-30, -1e-30, 0.0])
    }

    #[test]
    fn exp_matches_std() {
        for x in grid() {
            let (got, want) = (exp(x) as f64, (x.clamp(-87.0, 88.0) as f64).exp());
            assert!(((got - want) / want).abs() < 1e-6, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn exponent_bits_are_the_cast() {
        for x in grid() {
            let t = x.clamp(-87.0, 88.0) * LOG2E + ROUND;
            assert_eq!(exponent(t - ROUND, t), (t - ROUND) as i32, "{x}");
        }
    }

    #[test]
    fn tanh_and_sigmoid_match_std() {
        for x in grid() {
            let t = (x as f64).tanh();
            assert!((tanh(x) as f64 - t).abs() < 2e-7 + 1e-6 * t.abs(), "tanh({x}) = {}, want {t}", tanh(x));
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - s).abs() < 2e-7 + 1e-6 * s, "sigmoid({x}) = {}, want {s}", sigmoid(x));
        }
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(1e-30) > 0.0);
    }
}

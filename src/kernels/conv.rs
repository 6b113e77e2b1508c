//! 2-D convolution, NHWC, via im2col + the tiled matmul. Measured choice: for
//! the small kernels of bundled models (3×3, ≤ 32 channels) im2col keeps the
//! inner loop a long contiguous matmul, which the SIMD matmul handles well.

use super::matmul;

/// Geometry of one Conv2D (or pooling) window sweep, TensorFlow padding rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Conv2dGeom {
    /// `same = true` is TF "same" padding (output = ceil(in / stride), extra
    /// padding at bottom/right); otherwise "valid". `None` when the window does
    /// not fit (valid padding on a too-small input) or a stride/kernel is 0.
    pub fn new(h: usize, w: usize, cin: usize, kh: usize, kw: usize, sh: usize, sw: usize, same: bool) -> Option<Self> {
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || h == 0 || w == 0 {
            return None;
        }
        let (oh, ow, pt, pl) = if same {
            let oh = h.div_ceil(sh);
            let ow = w.div_ceil(sw);
            let ph = ((oh - 1) * sh + kh).saturating_sub(h);
            let pw = ((ow - 1) * sw + kw).saturating_sub(w);
            (oh, ow, ph / 2, pw / 2)
        } else {
            if kh > h || kw > w {
                return None;
            }
            ((h - kh) / sh + 1, (w - kw) / sw + 1, 0, 0)
        };
        Some(Conv2dGeom { h, w, cin, kh, kw, sh, sw, pad_top: pt, pad_left: pl, oh, ow })
    }

    /// Explicit zero padding `[top, left, bottom, right]` (ONNX `pads`, PyTorch
    /// `padding`): output = ⌊(in + before + after − k) / stride⌋ + 1. `None`
    /// when a stride/kernel is 0, the window does not fit, or a pad is not
    /// smaller than the window (such outputs would read only padding).
    #[allow(clippy::too_many_arguments)]
    pub fn explicit(h: usize, w: usize, cin: usize, kh: usize, kw: usize, sh: usize, sw: usize, pads: [usize; 4]) -> Option<Self> {
        let [pt, pl, pb, pr] = pads;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || h == 0 || w == 0 || pt.max(pb) >= kh || pl.max(pr) >= kw {
            return None;
        }
        let (ph, pw) = (h.checked_add(pt + pb)?, w.checked_add(pl + pr)?);
        if kh > ph || kw > pw {
            return None;
        }
        Some(Conv2dGeom { h, w, cin, kh, kw, sh, sw, pad_top: pt, pad_left: pl, oh: (ph - kh) / sh + 1, ow: (pw - kw) / sw + 1 })
    }

    /// Input (row, col) that window tap (dy, dx) of output (oy, ox) reads, or
    /// `None` when it falls in the padding.
    #[inline]
    pub fn tap(&self, oy: usize, ox: usize, dy: usize, dx: usize) -> Option<(usize, usize)> {
        let y = (oy * self.sh + dy).checked_sub(self.pad_top)?;
        let x = (ox * self.sw + dx).checked_sub(self.pad_left)?;
        (y < self.h && x < self.w).then_some((y, x))
    }

    pub fn patch_len(&self) -> usize {
        self.kh * self.kw * self.cin
    }
}

/// One sample: `input` is H×W×Cin, `kernel` is (kh·kw·Cin)×Cout (Keras layout
/// flattened), `out` is OH×OW×Cout; `scratch` is reused across calls.
pub fn conv2d(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32], scratch: &mut Vec<f32>) {
    let cout = bias.len();
    let plen = g.patch_len();
    let rows = g.oh * g.ow;
    scratch.clear();
    scratch.resize(rows * plen, 0.0);
    // A window row (dx = 0..kw) is kw·cin contiguous values in both the input
    // and the patch: copied as one span when it lies inside the image (one
    // copy per window row, not per tap: in wasm each copy is a memory.copy
    // call, which dominated the CNN profile for cin = 1).
    let span = g.kw * g.cin;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let row = &mut scratch[(oy * g.ow + ox) * plen..][..plen];
            let x0 = (ox * g.sw).checked_sub(g.pad_left).filter(|&x| x + g.kw <= g.w);
            for dy in 0..g.kh {
                let dst = &mut row[dy * span..][..span];
                let y = (oy * g.sh + dy).checked_sub(g.pad_top).filter(|&y| y < g.h);
                match (x0, y) {
                    (Some(x0), Some(y)) => dst.copy_from_slice(&input[(y * g.w + x0) * g.cin..][..span]),
                    _ => {
                        for dx in 0..g.kw {
                            let dst = &mut dst[dx * g.cin..][..g.cin];
                            match g.tap(oy, ox, dy, dx) {
                                Some((y, x)) => dst.copy_from_slice(&input[(y * g.w + x) * g.cin..][..g.cin]),
                                None => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }
    matmul(scratch, kernel, out, rows, plen, cout);
    for px in out[..rows * cout].chunks_exact_mut(cout) {
        for (v, b) in px.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f32> {
        let cout = bias.len();
        let mut out = vec![0f32; g.oh * g.ow * cout];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for co in 0..cout {
                    let mut s = bias[co] as f64;
                    for dy in 0..g.kh {
                        for dx in 0..g.kw {
                            if let Some((y, x)) = g.tap(oy, ox, dy, dx) {
                                for ci in 0..g.cin {
                                    s += input[(y * g.w + x) * g.cin + ci] as f64
                                        * kernel[((dy * g.kw + dx) * g.cin + ci) * cout + co] as f64;
                                }
                            }
                        }
                    }
                    out[(oy * g.ow + ox) * cout + co] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn same_padding_matches_tensorflow_rule() {
        // TF: 5 wide, k=3, s=2, same -> out 3, total pad 2, left 1.
        let g = Conv2dGeom::new(5, 5, 1, 3, 3, 2, 2, true).unwrap();
        assert_eq!((g.oh, g.ow, g.pad_top, g.pad_left), (3, 3, 1, 1));
        // 4 wide, k=3, s=2, same -> out 2, total pad 1, left 0 (extra goes right).
        let g = Conv2dGeom::new(4, 4, 1, 3, 3, 2, 2, true).unwrap();
        assert_eq!((g.oh, g.pad_top), (2, 0));
        assert!(Conv2dGeom::new(2, 2, 1, 3, 3, 1, 1, false).is_none());
    }

    #[test]
    fn explicit_padding_by_hand() {
        // PyTorch Conv2d(k=3, stride=2, padding=1) on 28: out 14, top pad 1
        // (TF "same" would pad 0 on top and 1 at the bottom).
        let g = Conv2dGeom::explicit(28, 28, 1, 3, 3, 2, 2, [1, 1, 1, 1]).unwrap();
        assert_eq!((g.oh, g.ow, g.pad_top, g.pad_left), (14, 14, 1, 1));
        assert_eq!(g.tap(0, 0, 0, 0), None);
        assert_eq!(g.tap(0, 0, 1, 1), Some((0, 0)));
        // Asymmetric: 5 high, k=2, pads top 0 bottom 1, stride 2 -> 3 rows.
        let g = Conv2dGeom::explicit(5, 4, 1, 2, 2, 2, 2, [0, 1, 1, 0]).unwrap();
        assert_eq!((g.oh, g.ow, g.pad_top, g.pad_left), (3, 2, 0, 1));
        assert!(Conv2dGeom::explicit(5, 5, 1, 3, 3, 1, 1, [3, 0, 0, 0]).is_none());
        assert!(Conv2dGeom::explicit(2, 2, 1, 5, 5, 1, 1, [1, 1, 1, 1]).is_none());
        assert!(Conv2dGeom::explicit(usize::MAX, 2, 1, 2, 2, 1, 1, [1, 1, 1, 1]).is_none());
    }

    proptest! {
        #[test]
        fn conv_matches_naive(h in 1usize..9, w in 1usize..9, cin in 1usize..4, cout in 1usize..6,
                              k in 1usize..4, s in 1usize..3, same: bool, seed in 0u32..500,
                              explicit in proptest::option::of([0usize..3, 0usize..3, 0usize..3, 0usize..3])) {
            let g = match explicit {
                Some(p) => Conv2dGeom::explicit(h, w, cin, k, k, s, s, p),
                None => Conv2dGeom::new(h, w, cin, k, k, s, s, same),
            };
            let Some(g) = g else { return Ok(()) };
            let f = |i: usize| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0;
            let input: Vec<f32> = (0..h * w * cin).map(f).collect();
            let kernel: Vec<f32> = (0..k * k * cin * cout).map(|i| f(i + 7777)).collect();
            let bias: Vec<f32> = (0..cout).map(|i| f(i + 99)).collect();
            let mut out = vec![0f32; g.oh * g.ow * cout];
            conv2d(&g, &input, &kernel, &bias, &mut out, &mut Vec::new());
            let want = naive(&g, &input, &kernel, &bias);
            for (a, b) in out.iter().zip(&want) { prop_assert!((a - b).abs() < 1e-4, "{a} {b}"); }
        }
    }
}

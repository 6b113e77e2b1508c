//! 2-D convolution, NHWC. Portable path: im2col + the tiled matmul. With
//! simd128, output channel counts that are a multiple of 4 up to 32 (every
//! bundled model) convolve directly, without the patch matrix: copying
//! patches was 35–45 % of the CNN's wasm time (a window row of 1 input
//! channel is 3 floats, one `memory.copy` each). On x86-64 with AVX2, every
//! multiple of 8 convolves directly too (`x86/conv.rs`). All paths sum the
//! taps in the same order, so their results are bit-identical. A
//! [`ConvEpilogue`] (the BatchNorm, Add and ReLU after a convolution) is
//! fused into the x86 kernel's store and applied after the others.

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
    pub fn new([h, w, cin]: [usize; 3], [kh, kw]: [usize; 2], [sh, sw]: [usize; 2], same: bool) -> Option<Self> {
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

/// What follows a convolution's bias add in the layers after it, fused into
/// its output write where the kernel can (and applied in the same order
/// otherwise): `x · scale + shift` (an inference BatchNorm), `residual + x`
/// (an Add), then `x > 0 ? x : 0` (ReLU) — separate operations, each rounded
/// as the layer would round it, so fused results equal unfused ones bit for bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvEpilogue<'a> {
    /// (scale, shift), `cout` values each.
    pub affine: Option<(&'a [f32], &'a [f32])>,
    /// The other input of an Add, shaped like the output.
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

impl ConvEpilogue<'_> {
    fn is_empty(&self) -> bool {
        self.affine.is_none() && self.residual.is_none() && !self.relu
    }

    /// Applies the epilogue to `out` (pixels of `cout` channels).
    pub(crate) fn apply(&self, out: &mut [f32], cout: usize) {
        if let Some((scale, shift)) = self.affine {
            for px in out.chunks_exact_mut(cout) {
                for j in 0..cout {
                    px[j] = px[j] * scale[j] + shift[j];
                }
            }
        }
        if let Some(r) = self.residual {
            out.iter_mut().zip(r).for_each(|(o, r)| *o += r);
        }
        if self.relu {
            // A select, not `f32::max`: the ReLU of `Activation::apply_elementwise`.
            out.iter_mut().for_each(|x| *x = if *x > 0.0 { *x } else { 0.0 });
        }
    }
}

/// One sample: `input` is H×W×Cin, `kernel` is (kh·kw·Cin)×Cout (Keras layout
/// flattened), `out` is OH×OW×Cout; `scratch` is reused across calls.
pub fn conv2d(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32], scratch: &mut Vec<f32>) {
    conv2d_fused(g, input, kernel, bias, out, scratch, &ConvEpilogue::default())
}

/// [`conv2d`], then `epi` (fused into the store on x86-64 with AVX2).
pub fn conv2d_fused(
    g: &Conv2dGeom,
    input: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    epi: &ConvEpilogue,
) {
    #[cfg(target_arch = "x86_64")]
    if super::x86::conv2d(g, input, kernel, bias, out, epi, scratch) {
        return;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd::conv2d(g, input, kernel, bias, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = false;
    if !done {
        conv2d_im2col(g, input, kernel, bias, out, scratch);
    }
    if !epi.is_empty() {
        let len = g.oh * g.ow * bias.len();
        epi.apply(&mut out[..len], bias.len());
    }
}

/// Depthwise convolution of one sample: `input` is H×W×C, `kernel` is
/// (kh, kw, C, M) flattened (so one tap's C·M weights are contiguous, output
/// channel `c·M + m`), `out` is OH×OW×(C·M). Each output sums its taps in
/// window order (row, then column; padding taps skipped), then adds its bias,
/// with separate multiplies and adds: one loop on every target (whatever
/// vector code the compiler makes of the channel loop keeps each lane's order),
/// so results are bit-identical.
pub fn depthwise2d(g: &Conv2dGeom, mult: usize, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32]) {
    let (c, co) = (g.cin, g.cin * mult);
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = &mut out[(oy * g.ow + ox) * co..][..co];
            o.fill(0.0);
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let Some((y, x)) = g.tap(oy, ox, dy, dx) else { continue };
                    let xin = &input[(y * g.w + x) * c..][..c];
                    let k = &kernel[(dy * g.kw + dx) * co..][..co];
                    if mult == 1 {
                        o.iter_mut().zip(k).zip(xin).for_each(|((o, &w), &v)| *o += v * w);
                    } else {
                        o.iter_mut().zip(k).enumerate().for_each(|(j, (o, &w))| *o += xin[j / mult] * w);
                    }
                }
            }
            o.iter_mut().zip(bias).for_each(|(o, &b)| *o += b);
        }
    }
}

/// im2col + [`matmul`]: the portable path, and the one for channel counts
/// the direct kernels do not take.
pub fn conv2d_im2col(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32], scratch: &mut Vec<f32>) {
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

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::Conv2dGeom;

    /// Direct convolution when `cout` is 4·V with V ≤ 8 (V accumulators of
    /// f32x4 per output pixel stay in registers); `false` otherwise. Taps in
    /// the padding are skipped: they add 0·w, which never changes a sum that
    /// starts at +0 (so this matches im2col + matmul bit for bit).
    pub fn conv2d(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32]) -> bool {
        let cout = bias.len();
        assert!(
            input.len() >= g.h * g.w * g.cin && kernel.len() >= g.patch_len() * cout && out.len() >= g.oh * g.ow * cout,
            "conv2d slice sizes"
        );
        match cout {
            4 => run::<1>(g, input, kernel, bias, out),
            8 => run::<2>(g, input, kernel, bias, out),
            12 => run::<3>(g, input, kernel, bias, out),
            16 => run::<4>(g, input, kernel, bias, out),
            20 => run::<5>(g, input, kernel, bias, out),
            24 => run::<6>(g, input, kernel, bias, out),
            28 => run::<7>(g, input, kernel, bias, out),
            32 => run::<8>(g, input, kernel, bias, out),
            _ => return false,
        }
        true
    }

    fn run<const V: usize>(g: &Conv2dGeom, input: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32]) {
        let cout = 4 * V;
        // SAFETY: bias has cout = 4·V floats; loads are unaligned-safe.
        let bias: [v128; V] = core::array::from_fn(|q| unsafe { v128_load(bias.as_ptr().add(4 * q) as *const v128) });
        // The window rows/columns inside the image for output row/column o: taps lo..hi.
        let range = |o: usize, s: usize, pad: usize, k: usize, size: usize| {
            let start = o * s;
            (pad.saturating_sub(start), k.min((size + pad).saturating_sub(start)))
        };
        for oy in 0..g.oh {
            let (dy0, dy1) = range(oy, g.sh, g.pad_top, g.kh, g.h);
            for ox in 0..g.ow {
                let (dx0, dx1) = range(ox, g.sw, g.pad_left, g.kw, g.w);
                let mut acc = [f32x4_splat(0.0); V];
                for dy in dy0..dy1 {
                    let y = oy * g.sh + dy - g.pad_top;
                    for dx in dx0..dx1 {
                        let x = ox * g.sw + dx - g.pad_left;
                        // SAFETY: y < h and x < w by `range`, so the cin inputs at
                        // (y, x) and the cin kernel rows of tap (dy, dx) are in bounds
                        // (sizes asserted by the caller).
                        unsafe {
                            let src = input.as_ptr().add((y * g.w + x) * g.cin);
                            let krow = kernel.as_ptr().add((dy * g.kw + dx) * g.cin * cout);
                            for ci in 0..g.cin {
                                let v = v128_load32_splat(src.add(ci) as *const u32);
                                let kr = krow.add(ci * cout);
                                for (q, a) in acc.iter_mut().enumerate() {
                                    *a = f32x4_add(*a, f32x4_mul(v, v128_load(kr.add(4 * q) as *const v128)));
                                }
                            }
                        }
                    }
                }
                let o = &mut out[(oy * g.ow + ox) * cout..][..cout];
                for q in 0..V {
                    // SAFETY: `o` has cout = 4·V floats.
                    unsafe { v128_store(o.as_mut_ptr().add(4 * q) as *mut v128, f32x4_add(acc[q], bias[q])) };
                }
            }
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
        let g = Conv2dGeom::new([5, 5, 1], [3, 3], [2, 2], true).unwrap();
        assert_eq!((g.oh, g.ow, g.pad_top, g.pad_left), (3, 3, 1, 1));
        // 4 wide, k=3, s=2, same -> out 2, total pad 1, left 0 (extra goes right).
        let g = Conv2dGeom::new([4, 4, 1], [3, 3], [2, 2], true).unwrap();
        assert_eq!((g.oh, g.pad_top), (2, 0));
        assert!(Conv2dGeom::new([2, 2, 1], [3, 3], [1, 1], false).is_none());
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
                None => Conv2dGeom::new([h, w, cin], [k, k], [s, s], same),
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

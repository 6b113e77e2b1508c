//! How an IR node stores an ONNX tensor, and the shape algebra every op
//! shares: axis normalisation, strides, index iteration, slice ranges.
//!
//! ONNX tensors carry a batch axis and, for images, are channels-first
//! (NCHW); the IR is per sample and channels-last (NHWC). Every tensor
//! computed from the input is an [`Act`]: its *logical* per-sample shape
//! (what the ONNX graph means) plus how the IR node holding it *stores* it
//! ([`Layout`]). Layout ops only change this record, so the IR computes the
//! ONNX function on channels-last input without transposing anything.

use std::rc::Rc;

use super::convert::{Cx, MAX_LAYOUT_WORK, label};
use crate::engine::model::NodeId;
use crate::error::{Error, Result};

/// How an IR node stores a logical per-sample tensor.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Layout {
    /// The IR node's axes of size > 1, in order, are these logical axes (a
    /// permutation of the logical axes of size > 1). Axes of size 1 are free.
    Axes(Vec<usize>),
    /// The IR node is a vector; element `p` holds logical element `m[p]`
    /// (row-major flat index).
    Elems(Rc<Vec<u32>>),
}

#[derive(Debug, Clone)]
pub(super) struct Act {
    pub(super) node: NodeId,
    pub(super) shape: Vec<usize>,
    pub(super) layout: Layout,
    /// Where the batch axis sits in the ONNX tensor (0 but around recurrent
    /// layers, whose sequences are time-major).
    pub(super) batch: usize,
    /// Leading per-sample axes that the ONNX graph merged into its batch axis
    /// (tf2onnx's TimeDistributed: `[N, T, F]` → `[N·T, F]`); the IR node
    /// stores `fold ++ shape` in its own order.
    pub(super) fold: Vec<usize>,
}

impl Act {
    pub(super) fn new(node: NodeId, shape: Vec<usize>, layout: Layout) -> Act {
        Act { node, shape, layout, batch: 0, fold: vec![] }
    }

    /// Is it stored in its own order (flat storage index = logical index)?
    pub(super) fn is_plain(&self) -> bool {
        match &self.layout {
            Layout::Axes(ax) => ax.windows(2).all(|w| w[0] < w[1]),
            Layout::Elems(m) => m.iter().enumerate().all(|(p, &v)| p == v as usize),
        }
    }
}

/// Logical axes of size > 1 in `order`.
pub(super) fn axes_in(shape: &[usize], order: &[usize]) -> Vec<usize> {
    order.iter().copied().filter(|&a| shape[a] != 1).collect()
}

/// The layout of a tensor stored in its own axis order.
pub(super) fn plain(shape: &[usize]) -> Layout {
    Layout::Axes((0..shape.len()).filter(|&a| shape[a] != 1).collect())
}

/// Row-major strides.
pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

pub(super) fn nonunit(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// An ONNX axis (or index) that may count from the end, as an index below
/// `rank`; `None` out of range. Every axis attribute and input goes through here.
pub(super) fn axis_index(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis.checked_add(rank as i64)? } else { axis };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

/// Per-sample axis of an ONNX axis over a tensor of `rank` axes including
/// the batch (axis 0); `None` for the batch axis or out of range.
pub(super) fn sample_axis(axis: i64, rank: usize) -> Option<usize> {
    axis_index(axis, rank).and_then(|a| a.checked_sub(1))
}

/// Visits every index of an array of shape `dims` in row-major order.
pub(super) fn odometer(dims: &[usize], mut visit: impl FnMut(&[usize])) {
    let total: usize = dims.iter().product();
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..total {
        visit(&idx);
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Flat index `f` of an array with strides `from`, re-expressed with the
/// strides `to` of the same axes (0 = broadcast along that axis).
pub(super) fn restride(mut f: usize, from: &[usize], to: &[usize]) -> usize {
    let mut g = 0;
    for (s, t) in from.iter().zip(to) {
        g += (f / s) * t;
        f %= s;
    }
    g
}

/// The positions an ONNX Slice keeps along an axis of size `d` (negative
/// bounds count from the end, then clamp; `step` ≠ 0).
pub(super) fn slice_range(start: i64, end: i64, step: i64, d: usize) -> Vec<usize> {
    let (d, step) = (d as i128, step as i128);
    let norm = |v: i64| if v < 0 { v as i128 + d } else { v as i128 };
    let (lo, hi) = if step > 0 { (0, d) } else { (-1, d - 1) };
    let (mut p, e) = (norm(start).clamp(lo, hi), norm(end).clamp(lo, hi));
    let mut v = vec![];
    while (step > 0 && p < e) || (step < 0 && p > e) {
        v.push(p as usize);
        p += step;
    }
    v
}

impl Cx<'_> {
    /// Storage position → logical flat index, for any layout.
    pub(super) fn elem_map(&mut self, a: &Act) -> Result<Rc<Vec<u32>>> {
        let len: usize = a.shape.iter().product();
        self.layout_work += len as u64;
        if self.layout_work > MAX_LAYOUT_WORK {
            return Err(Error::too_large(
                "layout bookkeeping (transposes and flattens of large tensors)",
                self.layout_work,
                MAX_LAYOUT_WORK,
            ));
        }
        let axes = match &a.layout {
            Layout::Elems(m) => return Ok(m.clone()),
            Layout::Axes(ax) => ax,
        };
        let st = strides(&a.shape);
        let dims: Vec<usize> = axes.iter().map(|&j| a.shape[j]).collect();
        let sts: Vec<usize> = axes.iter().map(|&j| st[j]).collect();
        let mut out = Vec::with_capacity(len);
        odometer(&dims, |idx| out.push(idx.iter().zip(&sts).map(|(i, s)| i * s).sum::<usize>() as u32));
        Ok(Rc::new(out))
    }

    /// `a` as (H, W, C) when it is a logical [C, H, W] stored channels-last
    /// (what Conv and pooling need). A node that stores those values in that
    /// order under other unit axes (a 1-D convolution's `[T, C]` read as
    /// `[C, 1, T]`, tf2onnx's Conv1D) is reshaped to `[H, W, C]` first.
    pub(super) fn nchw(&mut self, i: usize, a: &mut Act) -> Result<(usize, usize, usize)> {
        let n = self.n(i);
        let [c, h, w] = a.shape[..] else {
            return Err(Error::Unsupported {
                what: format!("input shape of ONNX node {}", label(n)),
                name: format!("{:?} per sample", a.shape),
                supported: "2-D images [channels, height, width] (NCHW with the batch)".into(),
            });
        };
        let ir = self.ir_shape(a);
        if a.layout == Layout::Axes(axes_in(&a.shape, &[1, 2, 0])) && ir != [h, w, c] && nonunit(&ir) == nonunit(&[h, w, c]) {
            let name = format!("{}_as_image", self.ir_name(i));
            a.node = self.b.add(name, crate::engine::model::Op::Reshape { shape: vec![h, w, c] }, &[a.node])?;
            self.activations += (h * w * c) as u64;
        }
        if a.layout != Layout::Axes(axes_in(&a.shape, &[1, 2, 0])) || self.ir_shape(a) != [h, w, c] {
            return Err(Error::Unsupported {
                what: format!("input layout of ONNX node {}", label(n)),
                name: "a channels-first tensor that the engine cannot store channels-last (it reaches the node through a reshape)".into(),
                supported: "NCHW inputs and tensors computed by Conv/pooling, possibly transposed to NHWC and back".into(),
            });
        }
        Ok((h, w, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_count_from_the_end() {
        assert_eq!(axis_index(-1, 3), Some(2));
        assert_eq!(axis_index(2, 3), Some(2));
        assert_eq!((axis_index(3, 3), axis_index(-4, 3), axis_index(0, 0)), (None, None, None));
        assert_eq!(axis_index(i64::MIN, 3), None);
        assert_eq!((sample_axis(0, 3), sample_axis(1, 3), sample_axis(-1, 3)), (None, Some(0), Some(1)));
    }

    #[test]
    fn strides_odometer_and_restride_agree() {
        let dims = [2, 3, 4];
        let st = strides(&dims);
        assert_eq!(st, [12, 4, 1]);
        let mut flat = vec![];
        odometer(&dims, |idx| flat.push(idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()));
        assert_eq!(flat, (0..24).collect::<Vec<_>>());
        let mut none = 0;
        odometer(&[2, 0], |_| none += 1);
        assert_eq!(none, 0);
        let mut scalar = 0;
        odometer(&[], |_| scalar += 1);
        assert_eq!(scalar, 1, "a scalar has one element");
        // Element (1, 2, 3) of [2, 3, 4] in the transposed [4, 3, 2], and broadcast over axis 1.
        assert_eq!(restride(12 + 8 + 3, &st, &strides(&[4, 3, 2]).iter().rev().copied().collect::<Vec<_>>()), 3 * 6 + 2 * 2 + 1);
        assert_eq!(restride(12 + 8 + 3, &st, &[4, 0, 1]), 4 + 3);
    }

    #[test]
    fn slices_clamp_like_onnx() {
        assert_eq!(slice_range(-1, i64::MAX, 1, 5), [4]);
        assert_eq!(slice_range(1, -1, 1, 5), [1, 2, 3]);
        assert_eq!(slice_range(-1, i64::MIN, -2, 5), [4, 2, 0]);
        assert_eq!(slice_range(3, 2, 1, 5), Vec::<usize>::new());
        assert_eq!(slice_range(-9, 9, 1, 2), [0, 1]);
    }

    #[test]
    fn layouts_know_their_order() {
        let plain_act = Act::new(0, vec![3, 1, 4], plain(&[3, 1, 4]));
        assert_eq!(plain_act.layout, Layout::Axes(vec![0, 2]));
        assert!(plain_act.is_plain());
        let nhwc = Act::new(0, vec![3, 4, 5], Layout::Axes(axes_in(&[3, 4, 5], &[1, 2, 0])));
        assert!(!nhwc.is_plain());
        assert!(!Act::new(0, vec![2], Layout::Elems(Rc::new(vec![1, 0]))).is_plain());
    }
}

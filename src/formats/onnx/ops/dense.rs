//! Gemm and MatMul as the IR's Dense layer, and the fusion of what follows a
//! Dense or Conv output (a bias Add, then an activation) into that layer.

use ndarray::{Array1, Array2};

use super::elementwise::activation_of;
use crate::engine::model::{Activation, Op};
use crate::error::{Error, Result};
use crate::formats::onnx::convert::{Attrs, Cx, Val, bad, label, unsupported_option};
use crate::formats::onnx::layout::{Act, Layout, plain};
use crate::formats::onnx::tensor::Const;

pub(super) fn gemm(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    if at.int("transA", 0)? != 0 {
        return Err(unsupported_option(n, "transA=1".into(), "transA=0 (the batch stays the first axis)"));
    }
    let x = cx.act_any(i, 0)?;
    if x.batch != 0 {
        return Err(Error::shape(format!("input A of Gemm node {}", label(n)), "[batch, features]", format!("batch on axis {}", x.batch)));
    }
    if x.shape.len() != 1 {
        return Err(Error::shape(
            format!("input A of Gemm node {}", label(n)),
            "a matrix [batch, features]",
            format!("[batch, {:?}]", x.shape),
        ));
    }
    let w = cx.konst(i, 1, "weights B")?;
    let [r, c] = w.dims[..] else {
        return Err(Error::shape(format!("weights B of node {}", label(n)), "2 dimensions", format!("{:?}", w.dims)));
    };
    let trans_b = at.int("transB", 0)? != 0;
    let (k, m) = if trans_b { (c, r) } else { (r, c) };
    if k != x.shape[0] {
        return Err(Error::shape(
            format!("weights B of node {}", label(n)),
            format!("{} input features", x.shape[0]),
            format!("{:?} (transB={})", w.dims, trans_b as u8),
        ));
    }
    let (alpha, beta) = (at.float("alpha", 1.0)?, at.float("beta", 1.0)?);
    let wv = w.f32s();
    let mut kernel = Array2::from_shape_vec((r, c), wv).map_err(|e| bad(e.to_string()))?;
    if trans_b {
        kernel = kernel.reversed_axes().as_standard_layout().into_owned();
    }
    if alpha != 1.0 {
        kernel.mapv_inplace(|v| v * alpha);
    }
    let bias = match cx.opt_konst(i, 2, "bias C")? {
        None => vec![0.0; m],
        Some(cst) => channel_vector(&cst, 2, 1, m)
            .ok_or_else(|| {
                Error::shape(format!("bias C of node {}", label(n)), format!("[{m}] or [1, {m}] or a scalar"), format!("{:?}", cst.dims))
            })?
            .into_iter()
            .map(|v| v * beta)
            .collect(),
    };
    dense(cx, i, x, kernel, bias)
}

pub(super) fn matmul(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    if x.batch == x.shape.len() {
        return Err(Error::shape(
            format!("input A of MatMul node {}", label(n)),
            "features on the last axis, not the batch",
            format!("batch on axis {}", x.batch),
        ));
    }
    let w = cx.konst(i, 1, "weights B")?;
    let [k, m] = w.dims[..] else {
        return Err(Error::Unsupported {
            what: "ONNX MatMul weights".into(),
            name: format!("shape {:?} in node {}", w.dims, label(n)),
            supported: "a 2-D constant [in, out] as the second input".into(),
        });
    };
    if x.shape.last() != Some(&k) {
        return Err(Error::shape(
            format!("weights B of node {}", label(n)),
            format!("{:?} input features", x.shape.last()),
            format!("{:?}", w.dims),
        ));
    }
    let kernel = Array2::from_shape_vec((k, m), w.f32s()).map_err(|e| bad(e.to_string()))?;
    dense(cx, i, x, kernel, vec![0.0; m])
}

/// An IR Dense over the last logical axis of `x`; `kernel` rows in logical
/// order (a vector stored in another element order permutes them).
fn dense(cx: &mut Cx, i: usize, x: Act, mut kernel: Array2<f32>, mut bias: Vec<f32>) -> Result<()> {
    let n = cx.n(i);
    let (k, m) = kernel.dim();
    let mut src = x.node;
    let stored: Vec<usize> = x.fold.iter().chain(&x.shape).copied().collect();
    if x.shape.len() == 1 && x.fold.is_empty() {
        if let Layout::Elems(map) = &x.layout {
            let rows: Vec<usize> = map.iter().map(|&r| r as usize).collect();
            kernel = kernel.select(ndarray::Axis(0), &rows);
        }
        if cx.ir_shape(&x).len() != 1 {
            src = cx.emit(i, Op::Flatten, &[x.node]).map_err(|e| bad(format!("node {}: {e}", label(n))))?;
        }
    } else if !x.is_plain() || cx.ir_shape(&x) != stored {
        return Err(Error::Unsupported {
            what: format!("input layout of ONNX node {}", label(n)),
            name: format!("{:?} per sample, stored in another axis order", x.shape),
            supported: "vectors, or tensors whose last axis holds the features in their own order".into(),
        });
    }
    debug_assert_eq!(kernel.nrows(), k);
    let mut shape = x.shape.clone();
    *shape.last_mut().unwrap_or(&mut 0) = m;
    let (out, extra, activation) = cx.tail(i, &shape, shape.len() - 1, true)?;
    if let Some(e) = extra {
        bias.iter_mut().zip(e).for_each(|(b, e)| *b += e);
    }
    cx.spend(kernel.len() + bias.len(), i)?;
    let id = cx.emit(i, Op::Dense { kernel, bias: Array1::from_vec(bias), activation }, &[src])?;
    let layout = plain(&shape);
    cx.bind_name(out, Val::Act(Act { node: id, shape, layout, batch: x.batch, fold: x.fold }));
    Ok(())
}

impl<'g> Cx<'g> {
    /// After a Dense/Conv output of logical `shape` (channels on `axis`):
    /// fuses an `Add` of a per-channel constant (the bias) and then a
    /// Relu/Tanh/Sigmoid (or, for vectors, Softmax over the channels) when each
    /// is the only reader. Returns the tensor the result binds to, the extra
    /// bias and the activation.
    pub(super) fn tail(
        &mut self,
        i: usize,
        shape: &[usize],
        axis: usize,
        softmax_ok: bool,
    ) -> Result<(&'g str, Option<Vec<f32>>, Activation)> {
        let nodes = self.nodes;
        let mut out: &'g str = nodes[i].output.first().map(String::as_str).unwrap_or("");
        let mut bias = None;
        if let Some(j) = self.sole_reader(out) {
            let m = &nodes[j];
            if m.op_type == "Add" && m.domain.is_empty() && m.input.len() == 2 && m.output.first().is_some_and(|o| !o.is_empty()) {
                let other = if m.input[0] == out { &m.input[1] } else { &m.input[0] };
                if let Some(Val::Const(c)) = self.vals.get(other.as_str())
                    && let Some(v) = channel_vector(c, shape.len() + 1, axis + 1, shape[axis])
                {
                    bias = Some(v);
                    self.absorbed[j] = true;
                    out = m.output[0].as_str();
                }
            }
        }
        let mut act = Activation::Linear;
        if let Some(j) = self.sole_reader(out) {
            let m = &nodes[j];
            let a = match m.op_type.as_str() {
                "Softmax" if softmax_ok && m.domain.is_empty() => {
                    let r = shape.len() as i64 + 1;
                    let axis = Attrs(m).int("axis", if self.opset < 13 { 1 } else { -1 })?;
                    (axis == r - 1 || axis == -1).then_some(Activation::Softmax)
                }
                op if m.domain.is_empty() => activation_of(op),
                _ => None,
            };
            if let (Some(a), Some(o)) = (a, m.output.first().filter(|o| !o.is_empty())) {
                act = a;
                self.absorbed[j] = true;
                out = o.as_str();
            }
        }
        Ok((out, bias, act))
    }
}

/// A constant broadcast along one axis only (`axis` of a `rank`-axis tensor,
/// counting the batch), as `len` values; `None` otherwise.
pub(super) fn channel_vector(c: &Const, rank: usize, axis: usize, len: usize) -> Option<Vec<f32>> {
    if c.dims.len() > rank {
        return None;
    }
    let off = rank - c.dims.len();
    for (k, &d) in c.dims.iter().enumerate() {
        if d != 1 && !(off + k == axis && d == len) {
            return None;
        }
    }
    let v = c.f32s();
    match v.len() {
        l if l == len => Some(v),
        1 => Some(vec![v[0]; len]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_float, attr_int, floats, run};
    use super::*;
    use crate::formats::onnx::tensor::Data;

    #[test]
    fn channel_vectors() {
        let c = Const::new(vec![1, 3, 1, 1], Data::F32(vec![1.0, 2.0, 3.0]));
        assert_eq!(channel_vector(&c, 4, 1, 3), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(channel_vector(&c, 4, 3, 3), None);
        let s = Const::new(vec![], Data::F32(vec![5.0]));
        assert_eq!(channel_vector(&s, 2, 1, 2), Some(vec![5.0, 5.0]));
        let bias = Const::new(vec![4], Data::F32(vec![0.0; 4]));
        assert_eq!(channel_vector(&bias, 2, 1, 4).map(|v| v.len()), Some(4));
        assert_eq!(channel_vector(&bias, 4, 1, 4), None, "a [4] bias broadcasts over W, not C");
    }

    #[test]
    fn gemm_with_trans_b_alpha_and_beta() {
        // y = 2 · x · Bᵀ + 0.5 · C, B = [[1, 2], [3, 4], [5, 6]] (3 outputs, 2 inputs).
        let m = Net::new(&[2])
            .init(floats("B", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
            .init(floats("C", &[3], &[2.0, 4.0, 6.0]))
            .node("Gemm", &["x", "B", "C"], &["y"], vec![attr_int("transB", 1), attr_float("alpha", 2.0), attr_float("beta", 0.5)])
            .load()
            .unwrap();
        assert_eq!(run(&m, &[1.0, -1.0]), [-2.0 + 1.0, -2.0 + 2.0, -2.0 + 3.0]);
    }

    #[test]
    fn matmul_fuses_its_bias_and_activation() {
        let m = Net::new(&[2])
            .init(floats("W", &[2, 2], &[1.0, 0.0, 0.0, 1.0]))
            .init(floats("b", &[2], &[-3.0, 1.0]))
            .node("MatMul", &["x", "W"], &["h"], vec![])
            .node("Add", &["h", "b"], &["z"], vec![])
            .node("Relu", &["z"], &["y"], vec![])
            .load()
            .unwrap();
        assert_eq!(m.nodes.len(), 2, "input and one Dense: {:?}", m.nodes);
        assert!(matches!(&m.nodes[1].op, Op::Dense { activation: Activation::Relu, bias, .. } if bias.to_vec() == [-3.0, 1.0]));
        assert_eq!(run(&m, &[1.0, 1.0]), [0.0, 2.0]);
        let e = Net::new(&[3]).init(floats("W", &[2, 2], &[0.0; 4])).node("MatMul", &["x", "W"], &["y"], vec![]).load().unwrap_err();
        assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("weights B"), "{e}");
    }
}

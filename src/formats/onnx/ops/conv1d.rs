//! 1-D Conv and pooling on `[N, C, L]` (PyTorch's Conv1d, MaxPool1d,
//! AvgPool1d and their global forms) as the 2-D ops the IR has.
//!
//! A `[C, L]` tensor the engine stores channels-last (`[L, C]`) is read as
//! the image `[C, 1, L]` (height 1), as tf2onnx writes Keras' Conv1D. The
//! graph input itself is channels-first: it is presented as the image
//! `[C, L, 1]` (height C, width L, one channel — the bytes the user stored),
//! and its first Conv is a 2-D convolution whose kernel spans all C rows
//! (`[C, k, 1, F]`): its output `[1, L', F]` is channels-last from there on.

use ndarray::{Array1, Array4};

use super::conv::padding;
use crate::engine::model::{Op, Padding};
use crate::error::{Error, Result};
use crate::formats::onnx::convert::{Attrs, Cx, Val, bad, label, unsupported_option};
use crate::formats::onnx::layout::{Act, Layout, axes_in};
use crate::formats::onnx::proto::NodeProto;

/// Is `x` a channels-first `[C, L]` (C > 1) stored in its own order (the
/// graph input, or element-wise ops on it)?
pub(super) fn channels_first(cx: &Cx, x: &Act) -> bool {
    matches!(x.shape[..], [c, _] if c > 1) && x.is_plain() && nonunit_ir(cx, x) == x.shape
}

fn nonunit_ir(cx: &Cx, x: &Act) -> Vec<usize> {
    cx.ir_shape(x).into_iter().filter(|&d| d != 1).collect()
}

/// A `[C, L]` tensor as the image `[C, 1, L]`: only the layout record moves.
pub(super) fn as_image(cx: &mut Cx, i: usize, x: Act) -> Result<Act> {
    let [c, l] = x.shape[..] else { return Ok(x) };
    if channels_first(cx, &x) {
        return Err(Error::Unsupported {
            what: format!("input layout of ONNX node {}", label(cx.n(i))),
            name: format!("a channels-first [{c}, {l}] sequence before any Conv1d"),
            supported: "a Conv1d first on a channels-first input; 1-D pooling after it".into(),
        });
    }
    super::shape::reshape_to(cx, i, x, vec![c, 1, l])
}

/// The 1-D attribute `name` as its 2-D form `[1, v]`.
pub(super) fn sizes(n: &NodeProto, name: &str, default: Option<usize>) -> Result<Vec<usize>> {
    Ok([vec![1], Attrs(n).sizes(name, 1, default)?].concat())
}

/// A logical `[C, 1, L']` result back as `[C, L']`, stored channels-last.
pub(super) fn bind_1d(cx: &mut Cx, i: usize, node: crate::engine::model::NodeId, c: usize, l: usize) -> Result<()> {
    let shape = vec![c, l];
    let layout = Layout::Axes(axes_in(&shape, &[1, 0]));
    cx.bind(i, 0, Val::Act(Act::new(node, shape, layout)))
}

/// Conv with weights `[M, C, k]` on `x` = `[C, L]`.
pub(super) fn conv(cx: &mut Cx, i: usize, x: Act, dims: [usize; 3]) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    let [m, cw, k] = dims;
    let [c, l] = x.shape[..] else {
        return Err(Error::shape(format!("input of node {}", label(n)), "[batch, channels, length]", format!("{:?} per sample", x.shape)));
    };
    if at.int("group", 1)? != 1 {
        return Err(unsupported_option(n, format!("group={}", at.int("group", 1)?), "group=1 for a 1-D convolution"));
    }
    if cw != c {
        return Err(Error::shape(format!("weights W of node {}", label(n)), format!("{c} input channels"), format!("{dims:?}")));
    }
    let dil = at.sizes("dilations", 1, Some(1))?;
    if dil != [1] {
        return Err(unsupported_option(n, format!("dilations={dil:?}"), "dilations=[1]"));
    }
    let s = sizes(n, "strides", Some(1))?;
    let first = channels_first(cx, &x);
    // The first Conv1d reads [C, L, 1]: a window of C rows that stays on row 0.
    let (mut node, (h, w, cin, kh)) = if first { (x.node, (c, l, 1, c)) } else { (x.node, (1, l, c, 1)) };
    if first {
        let auto = at.string("auto_pad")?.unwrap_or_default();
        if !matches!(auto.as_str(), "" | "NOTSET" | "VALID") {
            return Err(unsupported_option(n, format!("auto_pad={auto}"), "pads (or VALID) on the first Conv1d of a channels-first input"));
        }
        if cx.ir_shape(&x) != [c, l, 1] {
            node = cx.b.add(format!("{}_as_image", cx.ir_name(i)), Op::Reshape { shape: vec![c, l, 1] }, &[node])?;
        }
    } else {
        let mut img = as_image(cx, i, x)?;
        cx.nchw(i, &mut img)?;
        node = img.node;
    }
    let padding = padding(n, [h, w], [kh, k], &s, false, true)?;
    if first && padding == Padding::Same {
        // `Same` would pad the C rows too (never chosen for pads along L only with C > 1).
        return Err(unsupported_option(n, "padding of the channel rows".into(), "pads along the length only"));
    }
    let g = padding
        .geometry(h, w, cin, kh, k, s[0], s[1])
        .filter(|g| g.oh == 1 || !first)
        .ok_or_else(|| Error::shape(format!("node {}", label(n)), format!("a window of {k} that fits"), format!("length {l}")))?;
    let mut bias = match cx.opt_konst(i, 2, "bias B")? {
        None => vec![0.0; m],
        Some(b) if b.len() == m => b.f32s(),
        Some(b) => return Err(Error::shape(format!("bias B of node {}", label(n)), m, format!("{:?}", b.dims))),
    };
    let shape = vec![m, g.ow];
    let (out, extra, activation) = cx.tail(i, &shape, 0, false)?;
    if let Some(e) = extra {
        bias.iter_mut().zip(e).for_each(|(b, e)| *b += e);
    }
    let w = cx.konst(i, 1, "weights W")?;
    cx.spend(w.len() + m, i)?;
    let wv = w.f32s();
    // W[co, ci, dx]: on the first conv the input channels are the kernel's rows.
    let kernel = if first {
        Array4::from_shape_fn((c, k, 1, m), |(dy, dx, _, co)| wv[(co * c + dy) * k + dx])
    } else {
        Array4::from_shape_fn((1, k, c, m), |(_, dx, ci, co)| wv[(co * c + ci) * k + dx])
    };
    let op = Op::Conv2D { kernel, bias: Array1::from_vec(bias), strides: [s[0], s[1]], padding, activation };
    let id = cx.emit(i, op, &[node])?;
    let layout = Layout::Axes(axes_in(&shape, &[1, 0]));
    cx.bind_name(out, Val::Act(Act::new(id, shape, layout)));
    Ok(())
}

pub(super) fn check_dims(n: &NodeProto, dims: &[usize]) -> Result<[usize; 3]> {
    <[usize; 3]>::try_from(dims).map_err(|_| bad(format!("weights of node {} are not [out, in, k]", label(n))))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_int, attr_ints, attr_string, floats, run};

    fn identity(n: usize) -> Vec<f32> {
        (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect()
    }

    /// x [2 channels, 5 steps] → Conv1d (2 filters, k = 3, pads [1, 1], stride 2) → Flatten →
    /// a copying MatMul: ONNX's channel-major [F, L'] order, computed by hand.
    #[test]
    fn first_conv1d_reads_the_input_as_stored_with_its_pads_and_stride() {
        let w: Vec<f32> = (0..12).map(|k| k as f32 * 0.25 - 1.0).collect();
        let net = |attrs: Vec<_>| {
            Net::new(&[2, 5])
                .init(floats("W", &[2, 2, 3], &w))
                .init(floats("B", &[2], &[0.5, -0.5]))
                .node("Conv", &["x", "W", "B"], &["c"], attrs)
                .node("Flatten", &["c"], &["f"], vec![attr_int("axis", 1)])
                .init(floats("I", &[6, 6], &identity(6)))
                .node("MatMul", &["f", "I"], &["y"], vec![])
                .load()
        };
        let m = net(vec![attr_ints("pads", &[1, 1]), attr_ints("strides", &[2])]).unwrap();
        assert_eq!(m.input.shape, [2, 5, 1], "the input as the image [C, L, 1]");
        let x: Vec<f32> = (0..10).map(|k| (k as f32 * 0.7).sin()).collect();
        // x[c][t] at c·5 + t (channels first, as stored); zero outside 0..5.
        let at = |c: usize, t: i64| if (0..5).contains(&t) { x[c * 5 + t as usize] } else { 0.0 };
        let mut want = vec![];
        for f in 0..2 {
            for p in 0..3 {
                let mut s = [0.5, -0.5][f];
                for c in 0..2 {
                    for dx in 0..3 {
                        s += w[(f * 2 + c) * 3 + dx] * at(c, p as i64 * 2 + dx as i64 - 1);
                    }
                }
                want.push(s);
            }
        }
        let got = run(&m, &x);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "{got:?} vs {want:?}");
        // SAME would pad the channel rows too: refused naming it.
        let e = net(vec![attr_string("auto_pad", "SAME_UPPER")]).unwrap_err().to_string();
        assert!(e.contains("auto_pad=SAME_UPPER") && e.contains("supported: pads"), "{e}");
    }

    #[test]
    fn a_pool_before_any_conv1d_is_refused_by_name() {
        let e = Net::new(&[2, 6])
            .node("MaxPool", &["x"], &["p"], vec![attr_ints("kernel_shape", &[2]), attr_ints("strides", &[2])])
            .node("Flatten", &["p"], &["y"], vec![])
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("MaxPool") && e.contains("before any Conv1d"), "{e}");
    }
}

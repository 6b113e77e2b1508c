//! Conv, MaxPool/AveragePool, GlobalAveragePool and BatchNormalization on
//! NCHW tensors stored channels-last, and ONNX padding (`pads`, `auto_pad`,
//! `ceil_mode`) as the IR's `Valid`/`Same`/`Explicit` padding.

use ndarray::{Array1, Array4};

use crate::engine::kernels::PoolKind;
use crate::engine::model::{Op, Padding};
use crate::error::{Error, Result};
use crate::formats::onnx::convert::{Attrs, Cx, MAX_WINDOW, Val, bad, label, unsupported_option};
use crate::formats::onnx::layout::{Act, Layout, axes_in, plain};
use crate::formats::onnx::proto::NodeProto;

use super::conv1d;

/// The IR padding for an ONNX window (`pads` or `auto_pad`, `ceil_mode`);
/// a 1-D window's `pads` `[l, r]` pad the width of a height-1 image.
pub(super) fn padding(n: &NodeProto, [h, w]: [usize; 2], [kh, kw]: [usize; 2], s: &[usize], ceil: bool, one_d: bool) -> Result<Padding> {
    let at = Attrs(n);
    let auto = at.string("auto_pad")?.unwrap_or_default();
    let lower = |inp: usize, k: usize, st: usize| {
        let o = inp.div_ceil(st);
        let total = ((o - 1) * st + k).saturating_sub(inp);
        (total - total / 2, total / 2)
    };
    let pads = match auto.as_str() {
        "" | "NOTSET" => {
            let p = match at.ints("pads")? {
                Some(p) if one_d && p.len() == 2 => vec![0, p[0], 0, p[1]],
                Some(p) => p,
                None => vec![0; 4],
            };
            if p.len() != 4 || p.iter().any(|&x| x < 0 || x as u64 > MAX_WINDOW as u64) {
                return Err(bad(format!("attribute 'pads' of node {} must be 4 integers from 0 to {MAX_WINDOW}, got {p:?}", label(n))));
            }
            [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
        }
        "VALID" => [0; 4],
        "SAME_UPPER" => return Ok(Padding::Same),
        "SAME_LOWER" => {
            let (t, b) = lower(h, kh, s[0]);
            let (l, r) = lower(w, kw, s[1]);
            [t, l, b, r]
        }
        other => return Err(bad(format!("auto_pad '{other}' of node {} is not an ONNX value", label(n)))),
    };
    let [t, l, mut b, mut r] = pads;
    if ceil {
        // ONNX ceil_mode: one more window where a partial one starts inside
        // the input or its leading padding; expressed as extra trailing padding.
        let extra = |inp: usize, before: usize, after: usize, k: usize, st: usize| -> usize {
            let span = (inp + before + after).saturating_sub(k);
            let mut o = span.div_ceil(st) + 1;
            if (o - 1) * st >= inp + before {
                o -= 1;
            }
            ((o - 1) * st + k).saturating_sub(inp + before + after)
        };
        b += extra(h, t, b, kh, s[0]);
        r += extra(w, l, r, kw, s[1]);
    }
    if [t, l, b, r] == [0; 4] {
        return Ok(Padding::Valid);
    }
    let ex = Padding::Explicit([t, l, b, r]).geometry(h, w, 1, kh, kw, s[0], s[1]).ok_or_else(|| Error::Unsupported {
        what: format!("padding of ONNX node {}", label(n)),
        name: format!("pads [{t}, {l}, {b}, {r}] (after ceil_mode) for a {kh}×{kw} window on {h}×{w}"),
        supported: "pads smaller than the window, with a window that fits".into(),
    })?;
    match Padding::Same.geometry(h, w, 1, kh, kw, s[0], s[1]) {
        Some(g) if (g.oh, g.ow, g.pad_top, g.pad_left) == (ex.oh, ex.ow, ex.pad_top, ex.pad_left) => Ok(Padding::Same),
        _ => Ok(Padding::Explicit([t, l, b, r])),
    }
}

pub(super) fn conv(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    let mut x = cx.act(i, 0)?;
    let w = cx.konst(i, 1, "weights W")?;
    if w.dims.len() == 3 && x.shape.len() == 2 {
        let dims = conv1d::check_dims(n, &w.dims)?;
        return conv1d::conv(cx, i, x, dims);
    }
    let &[m, cg, kh, kw] = &w.dims[..] else {
        let one_d = if w.dims.len() == 3 { " (a 1-D convolution over channels-first [N, C, L], PyTorch's Conv1d)" } else { "" };
        return Err(Error::Unsupported {
            what: "ONNX Conv".into(),
            name: format!("weights of shape {:?} in node {}{one_d}", w.dims, label(n)),
            supported:
                "2-D convolution: weights [out, in, kh, kw] (a 1-D one loads as a 2-D one of height 1, as tf2onnx writes Keras' Conv1D)"
                    .into(),
        });
    };
    let (h, wd, c) = cx.nchw(i, &mut x)?;
    let group = at.int("group", 1)?;
    // Depthwise: one group per input channel, each with m / c filters (out channel ci·M + k).
    let depthwise = group != 1 && group == c as i64 && cg == 1 && m % c == 0;
    if group != 1 && !depthwise {
        return Err(unsupported_option(
            n,
            format!("group={group}"),
            &format!("group=1, or group={c} (the input channels: a depthwise convolution with weights [{c}·M, 1, kh, kw])"),
        ));
    }
    if cg != c && !depthwise {
        return Err(Error::shape(format!("weights W of node {}", label(n)), format!("{c} input channels"), format!("{:?}", w.dims)));
    }
    if let Some(ks) = at.ints("kernel_shape")?
        && ks != [kh as i64, kw as i64]
    {
        return Err(Error::shape(format!("kernel_shape of node {}", label(n)), format!("{:?} (from W)", [kh, kw]), format!("{ks:?}")));
    }
    if kh > MAX_WINDOW || kw > MAX_WINDOW || kh == 0 || kw == 0 {
        return Err(bad(format!("node {}: kernel {kh}×{kw} is not from 1 to {MAX_WINDOW}", label(n))));
    }
    let dil = at.sizes("dilations", 2, Some(1))?;
    if dil != [1, 1] {
        return Err(unsupported_option(n, format!("dilations={dil:?}"), "dilations=[1, 1]"));
    }
    let s = at.sizes("strides", 2, Some(1))?;
    let padding = padding(n, [h, wd], [kh, kw], &s, false, false)?;
    let g = padding
        .geometry(h, wd, c, kh, kw, s[0], s[1])
        .ok_or_else(|| Error::shape(format!("node {}", label(n)), format!("a {kh}×{kw} window that fits"), format!("input {h}×{wd}")))?;
    let mut bias = match cx.opt_konst(i, 2, "bias B")? {
        None => vec![0.0; m],
        Some(b) if b.len() == m => b.f32s(),
        Some(b) => return Err(Error::shape(format!("bias B of node {}", label(n)), m, format!("{:?}", b.dims))),
    };
    let shape = vec![m, g.oh, g.ow];
    let (out, extra, activation) = cx.tail(i, &shape, 0, false)?;
    if let Some(e) = extra {
        bias.iter_mut().zip(e).for_each(|(b, e)| *b += e);
    }
    cx.spend(w.len() + m, i)?;
    let wv = w.f32s();
    let (bias, strides) = (Array1::from_vec(bias), [s[0], s[1]]);
    let op = if depthwise {
        let mult = m / c;
        let kernel = Array4::from_shape_fn((kh, kw, c, mult), |(dy, dx, ci, k)| wv[((ci * mult + k) * kh + dy) * kw + dx]);
        Op::DepthwiseConv2D { kernel, bias, strides, padding, activation }
    } else {
        let kernel = Array4::from_shape_fn((kh, kw, c, m), |(dy, dx, ci, co)| wv[((co * c + ci) * kh + dy) * kw + dx]);
        Op::Conv2D { kernel, bias, strides, padding, activation }
    };
    let id = cx.emit(i, op, &[x.node])?;
    let layout = Layout::Axes(axes_in(&shape, &[1, 2, 0]));
    cx.bind_name(out, Val::Act(Act::new(id, shape, layout)));
    Ok(())
}

pub(super) fn pool(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    cx.first_output_only(i)?;
    let mut x = cx.act(i, 0)?;
    // 1-D: a height-1 image.
    let one_d = x.shape.len() == 2;
    let sizes = |name: &str, default| if one_d { conv1d::sizes(n, name, default) } else { at.sizes(name, 2, default) };
    let (k, s, dil) = (sizes("kernel_shape", None)?, sizes("strides", Some(1))?, sizes("dilations", Some(1))?);
    if one_d {
        x = conv1d::as_image(cx, i, x)?;
    }
    let (h, w, c) = cx.nchw(i, &mut x)?;
    if dil != [1, 1] {
        return Err(unsupported_option(n, format!("dilations={dil:?}"), "dilations=[1, 1]"));
    }
    let ceil = at.int("ceil_mode", 0)? != 0;
    let padding = padding(n, [h, w], [k[0], k[1]], &s, ceil, one_d)?;
    let kind = if n.op_type == "MaxPool" { PoolKind::Max } else { PoolKind::Avg };
    if kind == PoolKind::Avg && at.int("count_include_pad", 0)? != 0 && padding != Padding::Valid {
        return Err(unsupported_option(
            n,
            "count_include_pad=1 with padding".into(),
            "count_include_pad=0 (padding not counted), or no padding",
        ));
    }
    let g = padding.geometry(h, w, c, k[0], k[1], s[0], s[1]).ok_or_else(|| {
        Error::shape(format!("node {}", label(n)), format!("a {}×{} window that fits", k[0], k[1]), format!("input {h}×{w}"))
    })?;
    let id = cx.emit(i, Op::Pool2D { kind, size: [k[0], k[1]], strides: [s[0], s[1]], padding }, &[x.node])?;
    if one_d {
        return conv1d::bind_1d(cx, i, id, c, g.ow);
    }
    let shape = vec![c, g.oh, g.ow];
    let layout = Layout::Axes(axes_in(&shape, &[1, 2, 0]));
    cx.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
}

/// GlobalAveragePool, GlobalMaxPool.
pub(super) fn global_pool(cx: &mut Cx, i: usize) -> Result<()> {
    let mut x = cx.act(i, 0)?;
    let one_d = x.shape.len() == 2;
    if one_d {
        x = conv1d::as_image(cx, i, x)?;
    }
    let (_, _, c) = cx.nchw(i, &mut x)?;
    let kind = if cx.n(i).op_type == "GlobalMaxPool" { PoolKind::Max } else { PoolKind::Avg };
    let id = cx.emit(i, Op::GlobalPool(kind), &[x.node])?;
    let shape = if one_d { vec![c, 1] } else { vec![c, 1, 1] };
    let layout = plain(&shape);
    cx.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
}

/// Pad in `constant` mode with zeros, of the height and width of an NCHW
/// tensor stored channels-last: the IR's ZeroPadding2D.
pub(super) fn pad(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    let mode = at.string("mode")?.unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(unsupported_option(n, format!("mode={mode}"), "mode=constant (with value 0)"));
    }
    let (pads, value) = if cx.opset < 11 {
        (at.ints("pads")?, at.float("value", 0.0)?)
    } else {
        let value = match cx.opt_konst(i, 2, "constant_value")? {
            None => 0.0,
            Some(v) if v.len() == 1 => v.f32s()[0],
            Some(v) => return Err(Error::shape(format!("constant_value of node {}", label(n)), "one value", format!("{:?}", v.dims))),
        };
        if n.input.get(3).is_some_and(|a| !a.is_empty()) {
            return Err(unsupported_option(n, "axes".into(), "pads for every axis (no 'axes' input)"));
        }
        (cx.ints_input(i, 1, "pads")?, value)
    };
    if value != 0.0 {
        return Err(unsupported_option(n, format!("constant value {value}"), "mode=constant with value 0"));
    }
    let pads = pads.ok_or_else(|| bad(format!("node {} has no pads", label(n))))?;
    let mut x = cx.act(i, 0)?;
    // Zero pads change nothing (PyTorch writes them before an AvgPool, whatever its rank).
    if pads.len() == 2 * (x.shape.len() + 1) && pads.iter().all(|&p| p == 0) {
        return cx.bind(i, 0, Val::Act(x));
    }
    // [N, C, H, W] begins, then ends: only H and W padded.
    let ok = |p: &[i64]| p.len() == 8 && p.iter().all(|&v| (0..=MAX_WINDOW as i64).contains(&v)) && [0, 1, 4, 5].iter().all(|&k| p[k] == 0);
    if !ok(&pads) {
        return Err(Error::Unsupported {
            what: format!("pads of ONNX node {}", label(n)),
            name: format!("{pads:?}"),
            supported: format!("non-negative pads (up to {MAX_WINDOW}) of the height and width of an NCHW tensor"),
        });
    }
    let (h, w, c) = cx.nchw(i, &mut x)?;
    let [t, l, b, r] = [pads[2], pads[3], pads[6], pads[7]].map(|v| v as usize);
    let id = cx.emit(i, Op::ZeroPad2D { pads: [t, l, b, r] }, &[x.node])?;
    let shape = vec![c, h + t + b, w + l + r];
    let layout = Layout::Axes(axes_in(&shape, &[1, 2, 0]));
    cx.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
}

/// ReduceMean / ReduceMax over every axis but the one the engine stores
/// last (tf2onnx's GlobalAveragePooling1D / GlobalMaxPooling1D, after its
/// Transpose to [T, C]): a global pool.
pub(super) fn reduce(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act(i, 0)?;
    let rank = x.shape.len() + 1;
    let axes = cx.ints_arg(i, 1, "axes", 18)?.unwrap_or_default();
    let keep = Attrs(n).int("keepdims", 1)? != 0;
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| crate::formats::onnx::layout::axis_index(a, rank).filter(|&a| a >= 1).map(|a| a - 1))
        .collect::<Option<_>>()
        .ok_or_else(|| unsupported_option(n, format!("axes={axes:?}"), "per-sample axes"))?;
    let kept: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
    let ir = cx.ir_shape(&x);
    let stored_last =
        matches!((&x.layout, kept.as_slice()), (Layout::Axes(ax), [k]) if ax.last() == Some(k) && ir.last() == Some(&x.shape[*k]));
    if axes.is_empty() || !stored_last || ir.len() > 3 {
        return Err(Error::Unsupported {
            what: format!("axes of ONNX node {}", label(n)),
            name: format!("{} over axes {:?} of {:?}", n.op_type, axes.iter().map(|a| a + 1).collect::<Vec<_>>(), x.shape),
            supported: "every axis but the channel one (the one the engine stores last): a global pool".into(),
        });
    }
    let c = x.shape[kept[0]];
    let mut node = x.node;
    if ir.len() < 3 {
        let shape = [vec![1; 3 - ir.len()], ir].concat();
        node = cx.emit(i, Op::Reshape { shape }, &[node])?;
    }
    let kind = if n.op_type == "ReduceMax" { PoolKind::Max } else { PoolKind::Avg };
    let id = cx.emit(i, Op::GlobalPool(kind), &[node])?;
    let shape: Vec<usize> = if keep { (0..x.shape.len()).map(|a| if a == kept[0] { c } else { 1 }).collect() } else { vec![c] };
    let layout = plain(&shape);
    cx.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
}

pub(super) fn batch_norm(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    cx.first_output_only(i)?;
    if at.int("training_mode", 0)? != 0 {
        return Err(unsupported_option(n, "training_mode=1".into(), "training_mode=0 (inference)"));
    }
    if at.int("spatial", 1)? != 1 {
        return Err(unsupported_option(n, "spatial=0".into(), "spatial=1"));
    }
    let x = cx.act(i, 0)?;
    let Some(&c) = x.shape.first() else {
        return Err(Error::shape(format!("input of node {}", label(n)), "[batch, channels, …]", "[batch]"));
    };
    let eps = at.float("epsilon", 1e-5)? as f64;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(bad(format!("epsilon of node {} must be a non-negative number", label(n))));
    }
    let mut p = vec![];
    for (k, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
        let v = cx.konst(i, k, what)?;
        if v.len() != c {
            return Err(Error::shape(format!("{what} of node {}", label(n)), c, format!("{:?}", v.dims)));
        }
        let v = v.f32s();
        if !v.iter().all(|x| x.is_finite()) {
            return Err(Error::NonFinite { layer: cx.ir_name(i), what: what.into() });
        }
        p.push(v);
    }
    let (mut s, mut t) = (Vec::with_capacity(c), Vec::with_capacity(c));
    let [gamma, beta, mean, var] = &p[..] else { unreachable!("four parameters were read") };
    for (ch, (((&g, &bt), &m), &v)) in gamma.iter().zip(beta).zip(mean).zip(var).enumerate() {
        let var = v as f64 + eps;
        if var <= 0.0 {
            return Err(Error::invalid(format!("node {}: input_var + epsilon must be positive (channel {ch} has {var})", label(n))));
        }
        let sc = g as f64 / var.sqrt();
        s.push(sc as f32);
        t.push((bt as f64 - m as f64 * sc) as f32);
    }
    let (scale, shift) = per_channel(cx, i, &x, &s, &t)?;
    cx.spend(scale.len() * 2, i)?;
    let id = cx.emit(i, Op::BatchNorm { scale: Array1::from_vec(scale), shift: Array1::from_vec(shift) }, &[x.node])?;
    cx.bind(i, 0, Val::Act(Act { node: id, ..x }))
}

/// Per-channel (logical axis 0) vectors as the IR's per-last-axis vectors.
fn per_channel(cx: &Cx, i: usize, x: &Act, s: &[f32], t: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let c = s.len();
    let ir = cx.ir_shape(x);
    match &x.layout {
        Layout::Elems(map) => {
            let inner: usize = x.shape[1..].iter().product::<usize>().max(1);
            Ok(map.iter().map(|&f| (s[f as usize / inner], t[f as usize / inner])).unzip())
        }
        Layout::Axes(ax) if ir.last() == Some(&c) && (c == 1 || ax.last() == Some(&0)) => Ok((s.to_vec(), t.to_vec())),
        Layout::Axes(_) => Err(Error::Unsupported {
            what: format!("input layout of ONNX node {}", label(cx.n(i))),
            name: format!("{:?} per sample with the channels (axis 1) not stored last", x.shape),
            supported: "channels stored last: NCHW tensors from Conv/pooling or the input, and vectors".into(),
        }),
    }
}

/// Concat of computed tensors along the axis the IR stores last (channels of
/// an NCHW image, features of a vector): inputs alike in every other axis and
/// stored the same way (an inception-style block's branches).
pub(super) fn concat(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let acts: Vec<Act> = (0..n.input.len()).map(|k| cx.act(i, k)).collect::<Result<_>>()?;
    let first = acts.first().ok_or_else(|| bad(format!("node {} has no inputs", label(n))))?;
    let rank = first.shape.len() + 1;
    let axis = crate::formats::onnx::layout::axis_index(Attrs(n).int("axis", 1)?, rank)
        .filter(|&a| a >= 1)
        .map(|a| a - 1)
        .ok_or_else(|| unsupported_option(n, format!("axis={}", Attrs(n).int("axis", 1).unwrap_or(0)), "a per-sample axis"))?;
    let alike = |a: &Act| {
        a.batch == 0
            && a.fold.is_empty()
            && a.layout == first.layout
            && a.shape.len() == first.shape.len()
            && a.shape.iter().zip(&first.shape).enumerate().all(|(k, (x, y))| k == axis || x == y)
    };
    let last_stored = matches!(&first.layout, Layout::Axes(ax) if ax.last() == Some(&axis));
    if !last_stored || acts.iter().any(|a| !alike(a) || a.shape[axis] < 2) {
        return Err(Error::Unsupported {
            what: format!("inputs of ONNX node {}", label(n)),
            name: format!("Concat on axis {} of {:?}", axis + 1, acts.iter().map(|a| a.shape.clone()).collect::<Vec<_>>()),
            supported: "computed tensors alike but in the channel axis (the one the engine stores last), or constants".into(),
        });
    }
    let mut shape = first.shape.clone();
    shape[axis] = acts.iter().map(|a| a.shape[axis]).sum();
    let layout = first.layout.clone();
    let ids: Vec<_> = acts.iter().map(|a| a.node).collect();
    let id = cx.emit(i, Op::Concat, &ids)?;
    cx.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_float, attr_int, attr_ints, attr_string, floats, run};
    use super::*;

    fn pad(attrs: Vec<crate::formats::onnx::proto::AttributeProto>, hw: usize, k: usize, s: usize, ceil: bool) -> Result<Padding> {
        padding(&NodeProto { attribute: attrs, ..Default::default() }, [hw, hw], [k, k], &[s, s], ceil, false)
    }

    fn identity(n: usize) -> Vec<f32> {
        (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn padding_rules() {
        assert_eq!(pad(vec![], 5, 3, 1, false), Ok(Padding::Valid));
        // Equal pads that give Keras's "same" geometry are `Same`; others stay explicit.
        assert_eq!(pad(vec![attr_ints("pads", &[1, 1, 1, 1])], 5, 3, 1, false), Ok(Padding::Same));
        assert_eq!(pad(vec![attr_ints("pads", &[1, 0, 0, 0])], 5, 3, 1, false), Ok(Padding::Explicit([1, 0, 0, 0])));
        assert_eq!(pad(vec![attr_string("auto_pad", "SAME_UPPER")], 6, 3, 2, false), Ok(Padding::Same));
        assert_eq!(pad(vec![attr_string("auto_pad", "SAME_LOWER")], 6, 2, 2, false), Ok(Padding::Valid));
        assert_eq!(pad(vec![attr_string("auto_pad", "SAME_LOWER")], 5, 2, 1, false), Ok(Padding::Explicit([1, 1, 0, 0])));
        // ceil_mode: a last, partial window is extra trailing padding (here Keras's "same").
        assert_eq!(pad(vec![], 4, 3, 2, true), Ok(Padding::Same));
        assert_eq!(pad(vec![], 5, 3, 2, true), Ok(Padding::Valid), "the windows already cover the input");
        assert_eq!(pad(vec![attr_ints("pads", &[1, 1, 0, 0])], 6, 2, 2, false), Ok(Padding::Explicit([1, 1, 0, 0])));
        assert_eq!(pad(vec![attr_ints("pads", &[1, 1, 0, 0])], 6, 2, 2, true), Ok(Padding::Explicit([1, 1, 1, 1])));
        assert!(pad(vec![attr_ints("pads", &[1, 1])], 5, 3, 1, false).is_err());
        // A 1-D window's [l, r] pads the width of a height-1 image.
        let node = NodeProto { attribute: vec![attr_ints("pads", &[1, 1])], ..Default::default() };
        assert_eq!(padding(&node, [1, 5], [1, 3], &[1, 1], false, true), Ok(Padding::Same));
        assert!(pad(vec![attr_string("auto_pad", "WIDE")], 5, 3, 1, false).is_err());
    }

    #[test]
    fn conv_kernels_are_transposed_and_images_stored_channels_last() {
        // Two input channels, one output: out = in0 − in1 at each pixel (1×1 kernel), then Relu.
        let m = Net::new(&[2, 5, 5])
            .init(floats("W", &[1, 2, 1, 1], &[1.0, -1.0]))
            .node("Conv", &["x", "W"], &["c"], vec![attr_ints("kernel_shape", &[1, 1])])
            .node("Relu", &["c"], &["r"], vec![])
            .node("Flatten", &["r"], &["f"], vec![attr_int("axis", 1)])
            .init(floats("I", &[25, 25], &identity(25)))
            .node("MatMul", &["f", "I"], &["y"], vec![])
            .load()
            .unwrap();
        assert_eq!(m.input.shape, [5, 5, 2]);
        // NHWC: pixel p holds (in0, in1) at 2p, 2p + 1.
        let x: Vec<f32> = (0..50).map(|k| if k % 2 == 0 { (k / 2) as f32 } else { 3.0 }).collect();
        let want: Vec<f32> = (0..25).map(|p| (p as f32 - 3.0).max(0.0)).collect();
        assert_eq!(run(&m, &x), want);
        let e = Net::new(&[2, 5, 5])
            .init(floats("W", &[1, 2, 1, 1], &[1.0, -1.0]))
            .node("Conv", &["x", "W"], &["y"], vec![attr_int("group", 2)])
            .load()
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("group=2"), "{e}");
    }

    #[test]
    fn depthwise_conv_and_zero_pad_map_others_are_refused_by_name() {
        use super::super::testing::ints;
        // group = C = 2, multiplier 2: out channel 2c + k = in channel c × W[2c + k] (1×1 kernel), then Pad one column left.
        let net = |group: i64, mode: &str| {
            Net::new(&[2, 3, 3])
                .init(floats("W", &[4, 1, 1, 1], &[1.0, -1.0, 2.0, 3.0]))
                .node("Conv", &["x", "W"], &["c"], vec![attr_int("group", group)])
                .init(ints("pads", &[8], &[0, 0, 0, 1, 0, 0, 0, 0]))
                .node("Pad", &["c", "pads"], &["p"], vec![attr_string("mode", mode)])
                .node("GlobalAveragePool", &["p"], &["g"], vec![])
                .node("Flatten", &["g"], &["f"], vec![])
                .init(floats("I", &[4, 4], &identity(4)))
                .node("MatMul", &["f", "I"], &["y"], vec![])
                .load()
        };
        let m = net(2, "constant").unwrap();
        assert!(m.nodes.iter().any(|n| matches!(&n.op, Op::DepthwiseConv2D { kernel, .. } if kernel.shape() == [1, 1, 2, 2])));
        assert!(m.nodes.iter().any(|n| matches!(n.op, Op::ZeroPad2D { pads: [0, 1, 0, 0] })));
        // Channels 1 and 2 everywhere: means over 3×4 with a zero column are 3/4 of the value.
        let x: Vec<f32> = (0..18).map(|k| if k % 2 == 0 { 1.0 } else { 2.0 }).collect();
        assert_eq!(run(&m, &x), [0.75, -0.75, 3.0, 4.5]);
        let e = net(4, "constant").unwrap_err().to_string();
        assert!(e.contains("group=4") && e.contains("depthwise"), "{e}");
        let e = net(2, "reflect").unwrap_err().to_string();
        assert!(e.contains("mode=reflect") && e.contains("mode=constant"), "{e}");
    }

    #[test]
    fn pytorch_pads_from_constant_of_shape_and_zero_pads() {
        use super::super::testing::{attr_ints, ints};
        use crate::formats::onnx::proto::AttributeProto;
        // torch.onnx.export of F.pad(x, (1, 0, 1, 0)): the pads [1, 0, 1, 0] (W, H begin/end, last axis
        // first) are Concat'ed with ConstantOfShape zeros for N and C, reshaped to pairs, reversed,
        // transposed and flattened: [0, 0, 1, 1, 0, 0, 0, 0].
        let zero = ints("v", &[1], &[0]);
        let net = |pads: &[i64]| {
            Net::new(&[1, 3, 3])
                .init(ints("given", &[4], pads))
                .init(ints("four", &[1], &[4]))
                .node(
                    "ConstantOfShape",
                    &["four"],
                    &["z"],
                    vec![AttributeProto { name: "value".into(), t: Some(zero.clone()), r#type: 4, ..Default::default() }],
                )
                .node("Concat", &["given", "z"], &["cat"], vec![attr_int("axis", 0)])
                .init(ints("pairs", &[2], &[-1, 2]))
                .node("Reshape", &["cat", "pairs"], &["r"], vec![])
                .init(ints("s", &[1], &[-1]))
                .init(ints("e", &[1], &[i64::MIN]))
                .init(ints("a", &[1], &[0]))
                .init(ints("st", &[1], &[-1]))
                .node("Slice", &["r", "s", "e", "a", "st"], &["rev"], vec![])
                .node("Transpose", &["rev"], &["t"], vec![attr_ints("perm", &[1, 0])])
                .init(ints("flat", &[1], &[-1]))
                .node("Reshape", &["t", "flat"], &["pads"], vec![])
                .node("Pad", &["x", "pads"], &["p"], vec![])
                .node("Flatten", &["p"], &["f"], vec![])
        };
        let m = net(&[1, 0, 1, 0]).init(floats("I", &[16, 16], &identity(16))).node("MatMul", &["f", "I"], &["y"], vec![]).load().unwrap();
        assert!(m.nodes.iter().any(|n| matches!(n.op, Op::ZeroPad2D { pads: [1, 1, 0, 0] })), "{:?}", m.nodes);
        assert_eq!(run(&m, &[1.0; 9])[..5], [0.0, 0.0, 0.0, 0.0, 0.0], "a zero row on top");
        // Zero pads (PyTorch's before an AvgPool) are nothing.
        let m = net(&[0, 0, 0, 0]).init(floats("I", &[9, 9], &identity(9))).node("MatMul", &["f", "I"], &["y"], vec![]).load().unwrap();
        assert!(!m.nodes.iter().any(|n| matches!(n.op, Op::ZeroPad2D { .. })), "{:?}", m.nodes);
    }

    #[test]
    fn batch_norm_becomes_scale_and_shift() {
        let m = Net::new(&[2, 4, 4])
            .init(floats("g", &[2], &[2.0, 1.0]))
            .init(floats("b", &[2], &[1.0, 0.0]))
            .init(floats("mean", &[2], &[0.0, 1.0]))
            .init(floats("var", &[2], &[1.0, 4.0]))
            .node("BatchNormalization", &["x", "g", "b", "mean", "var"], &["n"], vec![attr_float("epsilon", 0.0)])
            .node("GlobalAveragePool", &["n"], &["p"], vec![])
            .node("Flatten", &["p"], &["f"], vec![])
            .init(floats("I", &[2, 2], &identity(2)))
            .node("MatMul", &["f", "I"], &["y"], vec![])
            .load()
            .unwrap();
        assert!(matches!(&m.nodes[1].op, Op::BatchNorm { scale, shift } if scale.to_vec() == [2.0, 0.5] && shift.to_vec() == [1.0, -0.5]));
        assert_eq!(run(&m, &[3.0; 32]), [7.0, 1.0]);
    }
}

//! Layout ops on computed tensors (Reshape, Flatten, Squeeze/Unsqueeze,
//! Transpose: only the [`Layout`] record changes, or an IR Flatten) and on
//! constants (the same ops plus Shape, Concat, Gather, Slice, folded at load
//! time). Where an op has both versions they share one shape rule.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::engine::model::Op;
use crate::error::{Error, Result, checked_elems};
use crate::formats::onnx::convert::{Attrs, BATCH, Cx, Val, bad, label};
use crate::formats::onnx::fold::{Consts, first};
use crate::formats::onnx::layout::{Act, Layout, axis_index, nonunit, odometer, plain, restride, slice_range, strides};
use crate::formats::onnx::proto::NodeProto;
use crate::formats::onnx::tensor::{Const, Data};

fn batch_op(n: &NodeProto, what: String) -> Error {
    Error::Unsupported {
        what: format!("ONNX node {}", label(n)),
        name: what,
        supported: "reshapes that keep the batch as the first axis".into(),
    }
}

/// The whole ONNX shape after Squeeze/Unsqueeze node `i`, for constants and
/// computed tensors alike; `None` stands for the batch axis, which stays.
/// `shown` describes the input in errors.
fn squeeze_unsqueeze(cx: &Cx, i: usize, full: Vec<Option<usize>>, shown: &str) -> Result<Vec<Option<usize>>> {
    let n = cx.n(i);
    let axes = cx.ints_arg(i, 1, "axes", 13)?;
    let norm = |a: i64, rank: usize| axis_index(a, rank).ok_or_else(|| bad(format!("axis {a} of node {} is out of range", label(n))));
    if n.op_type == "Squeeze" {
        let Some(ax) = axes else { return Ok(full.into_iter().filter(|d| *d != Some(1)).collect()) };
        let drop = ax.iter().map(|&a| norm(a, full.len())).collect::<Result<BTreeSet<_>>>()?;
        for &k in &drop {
            match full[k] {
                None => return Err(batch_op(n, format!("Squeeze of the batch axis {k}"))),
                Some(1) => {}
                Some(_) => {
                    return Err(Error::shape(format!("node {}", label(n)), "axes of size 1 to squeeze", format!("axis {k} of {shown}")));
                }
            }
        }
        return Ok(full.into_iter().enumerate().filter(|(k, _)| !drop.contains(k)).map(|(_, d)| d).collect());
    }
    let ax = axes.ok_or_else(|| bad(format!("node {} has no axes", label(n))))?;
    let out = full.len() + ax.len();
    let add = ax.iter().map(|&a| norm(a, out)).collect::<Result<BTreeSet<_>>>()?;
    if add.len() != ax.len() {
        return Err(bad(format!("node {} repeats an axis in {ax:?}", label(n))));
    }
    let mut rest = full.into_iter();
    Ok((0..out).map(|k| if add.contains(&k) { Some(1) } else { rest.next().flatten() }).collect())
}

pub(super) fn reshape(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    let x = cx.act_any(i, 0)?;
    let s = x.shape.clone();
    let r = s.len() + 1;
    let batch_op = |what: String| batch_op(n, what);
    if matches!(n.op_type.as_str(), "Squeeze" | "Unsqueeze") {
        if !x.fold.is_empty() {
            return Err(batch_op(format!("{} of a tensor whose batch axis holds {:?} per sample as well", n.op_type, x.fold)));
        }
        // The whole ONNX shape, `None` for the batch axis.
        let mut full: Vec<Option<usize>> = s.iter().map(|&d| Some(d)).collect();
        full.insert(x.batch.min(s.len()), None);
        let full = squeeze_unsqueeze(cx, i, full, &format!("{s:?} per sample"))?;
        let batch = full.iter().position(Option::is_none).ok_or_else(|| bad(format!("node {} lost the batch axis", label(n))))?;
        let target: Vec<usize> = full.iter().flatten().copied().collect();
        let mut out = reshape_to(cx, i, Act { batch: 0, ..x }, target)?;
        out.batch = batch;
        return cx.bind(i, 0, Val::Act(out));
    }
    if x.batch != 0 {
        return moved_batch_reshape(cx, i, x);
    }
    let target: Vec<usize> = match n.op_type.as_str() {
        "Flatten" => {
            let axis = at.int("axis", 1)?;
            // Flatten's axis may also be the rank (everything in the first factor).
            let a = if axis == r as i64 { Some(r) } else { axis_index(axis, r) };
            if !a.is_some_and(|a| a >= 1 && s[..a - 1].iter().all(|&d| d == 1)) || !x.fold.is_empty() {
                return Err(batch_op(format!("Flatten with axis={axis} of [batch, {s:?}]")));
            }
            vec![s.iter().product()]
        }
        _ => {
            let want = cx.ints_input(i, 1, "shape")?.ok_or_else(|| bad(format!("node {} lacks its shape input", label(n))))?;
            let allowzero = cx.opset >= 14 && at.int("allowzero", 0)? != 0;
            let first = *want.first().ok_or_else(|| batch_op("Reshape to a scalar".into()))?;
            let per_row: usize = s.iter().product();
            let rest: Option<usize> =
                want[1..].iter().try_fold(1usize, |p, &d| usize::try_from(d).ok().filter(|&d| d > 0).and_then(|d| p.checked_mul(d)));
            if first == -1 && rest.is_some() && rest != Some(per_row) {
                // Leading per-sample axes merged into the batch, or split back out of it.
                let rest_dims: Vec<usize> = want[1..].iter().map(|&d| d as usize).collect();
                return refold(cx, i, x, rest_dims);
            }
            let keeps_batch = first == BATCH
                || (first == 0 && !allowzero)
                || (first == -1 && !want[1..].contains(&-1))
                || (first > 0 && Some(first) == cx.batch);
            if !keeps_batch || want[1..].contains(&BATCH) {
                return Err(batch_op(format!("Reshape of [batch, {s:?}] to {want:?}")));
            }
            let mut full_s = vec![1usize];
            full_s.extend(&s);
            let mut w = want.clone();
            w[0] = 1;
            let t = resolve_shape(&w, &full_s, allowzero)
                .ok_or_else(|| Error::shape(format!("node {}", label(n)), format!("a shape for [batch, {s:?}]"), format!("{want:?}")))?;
            if !x.fold.is_empty() && t[1..] != s[..] {
                return Err(batch_op(format!("Reshape of [batch·{}, {s:?}] to {want:?}", x.fold.iter().product::<usize>())));
            }
            t[1..].to_vec()
        }
    };
    if target.iter().product::<usize>() != s.iter().product::<usize>() || target.contains(&0) {
        return Err(Error::shape(
            format!("node {}", label(n)),
            format!("{} values per sample", s.iter().product::<usize>()),
            format!("{target:?}"),
        ));
    }
    if !x.fold.is_empty() {
        return cx.bind(i, 0, Val::Act(x));
    }
    let out = reshape_to(cx, i, x, target)?;
    cx.bind(i, 0, Val::Act(out))
}

/// A Reshape of a tensor whose batch is not axis 0 (a time-major sequence)
/// that copies every axis up to the batch (`0`): PyTorch's `[0, 0, -1]`
/// merging a bidirectional layer's two directions.
fn moved_batch_reshape(cx: &mut Cx, i: usize, x: Act) -> Result<()> {
    let n = cx.n(i);
    let b = x.batch;
    let want = if n.op_type == "Reshape" { cx.ints_input(i, 1, "shape")? } else { None };
    let allowzero = cx.opset >= 14 && Attrs(n).int("allowzero", 0)? != 0;
    let keeps = |w: &[i64]| w.len() > b && w[..=b].iter().all(|&d| d == 0) && !allowzero && x.fold.is_empty();
    let Some(want) = want.filter(|w| keeps(w)) else {
        return Err(Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name: format!("{} of a tensor with its batch on axis {b}", n.op_type),
            supported: "reshapes that keep the batch as the first axis, or copy every axis up to it (0)".into(),
        });
    };
    let mut full = x.shape.clone();
    full.insert(b, 1);
    let mut t = resolve_shape(&want, &full, false)
        .ok_or_else(|| Error::shape(format!("node {}", label(n)), format!("a shape for {:?} per sample", x.shape), format!("{want:?}")))?;
    t.remove(b);
    let mut out = reshape_to(cx, i, Act { batch: 0, ..x }, t)?;
    out.batch = b;
    cx.bind(i, 0, Val::Act(out))
}

/// `Reshape(x, [-1, rest…])` that moves leading per-sample axes into the
/// batch (`[N, T, F]` → `[N·T, F]`, tf2onnx's TimeDistributed) or back out.
fn refold(cx: &mut Cx, i: usize, x: Act, rest: Vec<usize>) -> Result<()> {
    let n = cx.n(i);
    let whole: Vec<usize> = x.fold.iter().chain(&x.shape).copied().collect();
    let plain_stored = x.is_plain() && cx.ir_shape(&x) == whole;
    let unsupported = || Error::Unsupported {
        what: "ONNX reshape".into(),
        name: format!("{} of [batch·{}, {:?}] to [-1, {rest:?}]", label(n), x.fold.iter().product::<usize>(), x.shape),
        supported: "flattening to a vector, adding or removing axes of size 1, and merging leading axes into the batch and back".into(),
    };
    if !plain_stored {
        return Err(unsupported());
    }
    if rest.iter().product::<usize>() == whole.iter().product::<usize>() && !x.fold.is_empty() {
        // Back out: the batch holds samples again.
        let out = reshape_to(cx, i, Act { shape: whole.clone(), fold: vec![], layout: plain(&whole), ..x }, rest)?;
        return cx.bind(i, 0, Val::Act(out));
    }
    match (1..=whole.len()).find(|&k| whole[k..] == rest[..]) {
        Some(k) if k > 0 => {
            let layout = plain(&rest);
            let out = Act { node: x.node, shape: rest, layout, batch: 0, fold: whole[..k].to_vec() };
            cx.bind(i, 0, Val::Act(out))
        }
        _ => Err(unsupported()),
    }
}

pub(super) fn reshape_to(cx: &mut Cx, i: usize, x: Act, t: Vec<usize>) -> Result<Act> {
    let n = cx.n(i);
    if nonunit(&t).len() <= 1 {
        let map = cx.elem_map(&x)?;
        let identity = map.iter().enumerate().all(|(p, &v)| p == v as usize);
        let node = if cx.ir_shape(&x).len() > 1 { cx.emit(i, Op::Flatten, &[x.node])? } else { x.node };
        let layout = if identity { plain(&t) } else { Layout::Elems(map) };
        return Ok(Act { node, shape: t, layout, ..x });
    }
    if nonunit(&t) == nonunit(&x.shape) {
        let layout = match &x.layout {
            Layout::Elems(m) => Layout::Elems(m.clone()),
            Layout::Axes(ax) => {
                let old: Vec<usize> = (0..x.shape.len()).filter(|&k| x.shape[k] != 1).collect();
                let new: Vec<usize> = (0..t.len()).filter(|&k| t[k] != 1).collect();
                Layout::Axes(ax.iter().map(|j| old.iter().position(|o| o == j).map_or(0, |p| new[p])).collect())
            }
        };
        return Ok(Act { shape: t, layout, ..x });
    }
    Err(Error::Unsupported {
        what: "ONNX reshape".into(),
        name: format!("{} of {:?} to {:?} per sample", label(n), x.shape, t),
        supported: "flattening to a vector, and adding or removing axes of size 1".into(),
    })
}

pub(super) fn transpose(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    if !x.fold.is_empty() {
        return Err(Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name: format!("Transpose of a tensor whose batch holds {:?} per sample as well", x.fold),
            supported: "transposes of unmerged tensors".into(),
        });
    }
    let r = x.shape.len() + 1;
    let perm = perm_attr(n, r)?;
    // Old whole-tensor axis → per-sample axis (the batch has none).
    let per_sample = |j: usize| if j < x.batch { j } else { j - 1 };
    let batch = perm.iter().position(|&p| p == x.batch).unwrap_or(0);
    let q: Vec<usize> = perm.iter().filter(|&&p| p != x.batch).map(|&p| per_sample(p)).collect();
    let mut qinv = vec![0; q.len()];
    for (k, &j) in q.iter().enumerate() {
        qinv[j] = k;
    }
    let shape: Vec<usize> = q.iter().map(|&j| x.shape[j]).collect();
    let layout = match &x.layout {
        Layout::Axes(ax) => Layout::Axes(ax.iter().map(|&j| qinv[j]).collect()),
        Layout::Elems(m) => {
            cx.elem_map(&x)?; // counts the work
            let old = strides(&x.shape);
            let new = strides(&shape);
            let moved: Vec<usize> = (0..x.shape.len()).map(|j| new[qinv[j]]).collect();
            Layout::Elems(Rc::new(m.iter().map(|&f| restride(f as usize, &old, &moved) as u32).collect()))
        }
    };
    cx.bind(i, 0, Val::Act(Act { node: x.node, shape, layout, batch, fold: vec![] }))
}

/// `Shape` of a computed tensor: its dims with the batch size symbolic.
pub(super) fn shape(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    if !x.fold.is_empty() {
        return Err(Error::Unsupported {
            what: "ONNX node".into(),
            name: format!("{} of a batch-merged tensor", label(n)),
            supported: "Shape of tensors whose batch axis holds only samples".into(),
        });
    }
    let mut dims: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
    dims.insert(x.batch.min(dims.len()), BATCH);
    let v = shape_slice(n, dims)?;
    cx.bind(i, 0, Val::Const(Rc::new(Const::new(vec![v.len()], Data::I64(v)))))
}

/// `Shape` of a constant.
pub(super) fn fold_shape(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    let n = cx.n(i);
    let Some(Val::Const(c)) = cx.known(n, 0) else { return Ok(None) };
    let v = shape_slice(n, c.dims.iter().map(|&d| d as i64).collect())?;
    Ok(Some(Val::Const(Rc::new(Const::new(vec![v.len()], Data::I64(v))))))
}

/// Shape's `start`/`end` (opset 15), clamped like a Slice.
fn shape_slice(n: &NodeProto, dims: Vec<i64>) -> Result<Vec<i64>> {
    let at = Attrs(n);
    let r = dims.len();
    Ok(slice_range(at.int("start", 0)?, at.int("end", r as i64)?, 1, r).into_iter().map(|k| dims[k]).collect())
}

/// Reshape, Flatten, Squeeze and Unsqueeze of a constant: new dims, same data.
pub(super) fn fold_reshape(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, true, |cx, i, ins| {
        let c = first(cx.n(i), ins)?;
        let dims = const_dims(cx, i, &c, ins)?;
        Ok(Const::new(dims, c.data.clone()))
    })
}

fn const_dims(cx: &Cx, i: usize, c: &Const, ins: &Consts) -> Result<Vec<usize>> {
    let n = cx.n(i);
    let at = Attrs(n);
    let dims = match n.op_type.as_str() {
        "Flatten" => {
            let axis = at.int("axis", 1)?;
            let a = axis_index(axis, c.dims.len() + 1).ok_or_else(|| bad(format!("axis {axis} of node {} is out of range", label(n))))?;
            vec![c.dims[..a].iter().product(), c.dims[a..].iter().product()]
        }
        "Squeeze" | "Unsqueeze" => {
            let full = squeeze_unsqueeze(cx, i, c.dims.iter().map(|&d| Some(d)).collect(), &format!("{:?}", c.dims))?;
            full.into_iter().flatten().collect()
        }
        _ => {
            let shape = ins.get(1).cloned().flatten().ok_or_else(|| bad(format!("node {} lacks its shape input", label(n))))?;
            let want = shape.i64s().ok_or_else(|| bad(format!("shape of node {} must be integers", label(n))))?;
            let allowzero = cx.opset >= 14 && at.int("allowzero", 0)? != 0;
            resolve_shape(want, &c.dims, allowzero)
                .ok_or_else(|| Error::shape(format!("node {}", label(n)), format!("a shape for {} values", c.len()), format!("{want:?}")))?
        }
    };
    if dims.iter().product::<usize>() != c.len() {
        return Err(Error::shape(format!("node {}", label(n)), c.len(), format!("{dims:?}")));
    }
    Ok(dims)
}

pub(super) fn fold_transpose(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, true, |cx, i, ins| {
        let n = cx.n(i);
        let c = first(n, ins)?;
        let perm = perm_attr(n, c.dims.len())?;
        let st = strides(&c.dims);
        let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
        let mut flat = Vec::with_capacity(c.len());
        odometer(&dims, |idx| flat.push(idx.iter().zip(&perm).map(|(x, &p)| x * st[p]).sum::<usize>()));
        Ok(c.select(dims, flat.into_iter()))
    })
}

pub(super) fn fold_concat(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    // Filled tensors of one value stay one (tf2onnx's zero initial states of both directions).
    let fills: Option<Vec<f32>> =
        cx.n(i).input.iter().map(|t| if let Some(Val::Fill(v)) = cx.vals.get(t.as_str()) { Some(*v) } else { None }).collect();
    if let Some(f) = fills
        && f.first().is_some_and(|v| f.iter().all(|w| w.to_bits() == v.to_bits()))
    {
        return Ok(Some(Val::Fill(f[0])));
    }
    cx.fold_consts(i, false, |cx, i, ins| {
        let n = cx.n(i);
        let parts: Vec<Rc<Const>> = ins.iter().flatten().cloned().collect();
        let p0 = parts.first().ok_or_else(|| bad(format!("node {} has no inputs", label(n))))?;
        let r = p0.dims.len();
        let axis = Attrs(n).int("axis", 0)?;
        let a = axis_index(axis, r).ok_or_else(|| bad(format!("axis {axis} of node {} is out of range", label(n))))?;
        let int = p0.i64s().is_some();
        for p in &parts {
            if p.dims.len() != r || p.dims.iter().enumerate().any(|(k, &d)| k != a && d != p0.dims[k]) || p.i64s().is_some() != int {
                return Err(Error::shape(
                    format!("inputs of node {}", label(n)),
                    format!("{:?} apart from axis {a}", p0.dims),
                    format!("{:?}", p.dims),
                ));
            }
        }
        let mut dims = p0.dims.clone();
        dims[a] = parts.iter().map(|p| p.dims[a]).sum();
        let total = checked_elems(&format!("output of node {}", label(n)), &dims)?;
        cx.spend(total, i)?;
        let outer: usize = dims[..a].iter().product();
        let data = if int {
            let mut v = Vec::with_capacity(total);
            for o in 0..outer {
                for p in &parts {
                    let chunk = p.dims[a..].iter().product::<usize>();
                    v.extend_from_slice(&p.i64s().unwrap_or(&[])[o * chunk..][..chunk]);
                }
            }
            Data::I64(v)
        } else {
            let mut v = Vec::with_capacity(total);
            for o in 0..outer {
                for p in &parts {
                    let chunk = p.dims[a..].iter().product::<usize>();
                    if let Data::F32(d) = &p.data {
                        v.extend_from_slice(&d[o * chunk..][..chunk]);
                    }
                }
            }
            Data::F32(v)
        };
        Ok(Const::new(dims, data))
    })
}

pub(super) fn fold_gather(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, false, |cx, i, ins| {
        let n = cx.n(i);
        let data = first(n, ins)?;
        let idx = ins.get(1).cloned().flatten().ok_or_else(|| bad(format!("node {} lacks its indices", label(n))))?;
        let ind = idx.i64s().ok_or_else(|| bad(format!("indices of node {} must be integers", label(n))))?;
        let axis = Attrs(n).int("axis", 0)?;
        let a = axis_index(axis, data.dims.len()).ok_or_else(|| bad(format!("axis {axis} of node {} is out of range", label(n))))?;
        let d = data.dims[a];
        let ind = ind
            .iter()
            .map(|&x| axis_index(x, d).ok_or_else(|| bad(format!("index {x} of node {} is out of range 0..{d}", label(n)))))
            .collect::<Result<Vec<_>>>()?;
        let mut dims = data.dims[..a].to_vec();
        dims.extend(&idx.dims);
        dims.extend(&data.dims[a + 1..]);
        let total = checked_elems(&format!("output of node {}", label(n)), &dims)?;
        cx.spend(total, i)?;
        let inner: usize = data.dims[a + 1..].iter().product();
        let outer: usize = data.dims[..a].iter().product();
        let flat = (0..outer).flat_map(|o| ind.iter().flat_map(move |&x| (0..inner).map(move |k| (o * d + x) * inner + k)));
        Ok(data.select(dims, flat))
    })
}

/// ONNX Slice of a constant (`starts`, `ends`, `axes`, `steps` as inputs
/// from opset 10, attributes before).
pub(super) fn fold_slice(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, false, |cx, i, ins| {
        let n = cx.n(i);
        let c = first(n, ins)?;
        let arg = |k: usize, attr: &str| cx.ints_arg(i, k, attr, 10);
        let starts = arg(1, "starts")?.ok_or_else(|| bad(format!("node {} has no starts", label(n))))?;
        let ends = arg(2, "ends")?.ok_or_else(|| bad(format!("node {} has no ends", label(n))))?;
        let axes = arg(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = arg(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(bad(format!("node {}: starts, ends, axes and steps differ in length", label(n))));
        }
        let mut picks: Vec<Vec<usize>> = c.dims.iter().map(|&d| (0..d).collect()).collect();
        for k in 0..starts.len() {
            let a =
                axis_index(axes[k], c.dims.len()).ok_or_else(|| bad(format!("axis {} of node {} is out of range", axes[k], label(n))))?;
            if steps[k] == 0 {
                return Err(bad(format!("node {} has a zero step", label(n))));
            }
            picks[a] = slice_range(starts[k], ends[k], steps[k], c.dims[a]);
        }
        let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
        let st = strides(&c.dims);
        let mut flat = Vec::with_capacity(dims.iter().product());
        odometer(&dims, |idx| flat.push(idx.iter().enumerate().map(|(a, &x)| picks[a][x] * st[a]).sum::<usize>()));
        Ok(c.select(dims, flat.into_iter()))
    })
}

/// ONNX Reshape rules: 0 copies the input dimension (unless `allowzero`),
/// one -1 is inferred. `None` when impossible.
fn resolve_shape(want: &[i64], dims: &[usize], allowzero: bool) -> Option<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(want.len());
    let mut infer = None;
    for (k, &w) in want.iter().enumerate() {
        match w {
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            0 if !allowzero => out.push(*dims.get(k)?),
            w if w >= 0 && w as u64 <= crate::error::MAX_TENSOR_ELEMS => out.push(w as usize),
            _ => return None,
        }
    }
    if let Some(k) = infer {
        let known = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        if known == 0 || !total.is_multiple_of(known) {
            return None;
        }
        out[k] = total / known;
    }
    (out.iter().try_fold(1usize, |a, &d| a.checked_mul(d))? == total).then_some(out)
}

/// `perm` of a Transpose over `rank` axes (default: reversed), validated.
pub(super) fn perm_attr(n: &NodeProto, rank: usize) -> Result<Vec<usize>> {
    let perm = match Attrs(n).ints("perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&x| usize::try_from(x).unwrap_or(usize::MAX)).collect::<Vec<_>>(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || !perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)) {
        return Err(bad(format!("perm {perm:?} of node {} is not a permutation of {rank} axes", label(n))));
    }
    Ok(perm)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_int, attr_ints, floats, ints, run};
    use super::*;

    #[test]
    fn reshape_rules() {
        assert_eq!(resolve_shape(&[-1, 784], &[2, 28, 28], false), Some(vec![2, 784]));
        assert_eq!(resolve_shape(&[0, -1], &[3, 4, 5], false), Some(vec![3, 20]));
        assert_eq!(resolve_shape(&[-1, -1], &[4], false), None);
        assert_eq!(resolve_shape(&[7], &[4], false), None);
        assert_eq!(resolve_shape(&[0, 3], &[4], true), None);
        assert_eq!(resolve_shape(&[-1, 3], &[4], false), None);
        assert_eq!(resolve_shape(&[i64::MAX, i64::MAX], &[4], false), None);
    }

    /// `x [2]` times a kernel computed from the constant `w` by `ops` (ending in "W").
    fn weights(w: TensorProtoLike, ops: impl FnOnce(Net) -> Net) -> Result<Vec<f32>> {
        let m = ops(Net::new(&[2]).init(w)).node("MatMul", &["x", "W"], &["y"], vec![]).load()?;
        match &m.nodes[1].op {
            Op::Dense { kernel, .. } => Ok(kernel.iter().copied().collect()),
            other => panic!("{other:?}"),
        }
    }
    type TensorProtoLike = crate::formats::onnx::proto::TensorProto;

    #[test]
    fn constants_are_folded() {
        // [3, 2] transposed → [2, 3].
        let w = floats("w", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let t = weights(w.clone(), |n| n.node("Transpose", &["w"], &["W"], vec![attr_ints("perm", &[1, 0])])).unwrap();
        assert_eq!(t, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        // Rows 2, 0 (negative index counts from the end), then columns 1.. of a [2, 3] pair.
        let g =
            weights(w.clone(), |n| n.init(ints("rows", &[2], &[-1, 0])).node("Gather", &["w", "rows"], &["W"], vec![attr_int("axis", 0)]))
                .unwrap();
        assert_eq!(g, [5.0, 6.0, 1.0, 2.0]);
        let c = weights(w.clone(), |n| {
            n.node("Concat", &["w", "w"], &["c"], vec![attr_int("axis", 1)])
                .node("Slice", &["c", "s", "e", "a", "st"], &["W"], vec![])
                .init(ints("s", &[2], &[0, -1]))
                .init(ints("e", &[2], &[2, 0]))
                .init(ints("a", &[2], &[0, 1]))
                .init(ints("st", &[2], &[1, -2]))
        })
        .unwrap();
        // Concat gives rows [1, 2, 1, 2], [3, 4, 3, 4]; columns 3 and 1, backwards.
        assert_eq!(c, [2.0, 2.0, 4.0, 4.0]);
    }

    #[test]
    fn squeeze_and_unsqueeze_share_their_rule() {
        // The same bad axis, on a constant and on a computed tensor.
        let e = weights(floats("w", &[2, 2], &[0.0; 4]), |n| n.init(ints("ax", &[1], &[0])).node("Squeeze", &["w", "ax"], &["W"], vec![]))
            .unwrap_err();
        assert_eq!(e, Error::shape("node 'W' (Squeeze)", "axes of size 1 to squeeze", "axis 0 of [2, 2]"));
        let e = Net::new(&[2, 3]).init(ints("ax", &[1], &[2])).node("Squeeze", &["x", "ax"], &["y"], vec![]).load().unwrap_err();
        assert_eq!(e, Error::shape("node 'y' (Squeeze)", "axes of size 1 to squeeze", "axis 2 of [2, 3] per sample"));
        for input in ["x", "w"] {
            let e = Net::new(&[2])
                .init(floats("w", &[2], &[0.0; 2]))
                .init(ints("ax", &[2], &[1, 1]))
                .node("Unsqueeze", &[input, "ax"], &["y"], vec![])
                .load()
                .unwrap_err();
            assert!(e.to_string().contains("repeats an axis"), "{input}: {e}");
        }
        // Opset 11 reads the axes from the attribute.
        let k = weights(floats("w", &[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]), |n| {
            n.node("Squeeze", &["w"], &["W"], vec![attr_ints("axes", &[1])]).opset(11)
        })
        .unwrap();
        assert_eq!(k, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_flatten_in_another_order_permutes_the_next_dense() {
        // x [2, 3] transposed to [3, 2] and flattened: the IR keeps x's order
        // and the identity Dense's rows are permuted instead.
        let eye: Vec<f32> = (0..36).map(|k| if k / 6 == k % 6 { 1.0 } else { 0.0 }).collect();
        let m = Net::new(&[2, 3])
            .node("Transpose", &["x"], &["t"], vec![attr_ints("perm", &[0, 2, 1])])
            .node("Flatten", &["t"], &["f"], vec![])
            .init(floats("D", &[6, 6], &eye))
            .node("MatMul", &["f", "D"], &["y"], vec![])
            .load()
            .unwrap();
        assert_eq!(run(&m, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let e = Net::new(&[2, 3]).node("Flatten", &["x"], &["y"], vec![attr_int("axis", 2)]).load().unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("batch"), "{e}");
    }
}

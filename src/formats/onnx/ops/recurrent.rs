//! LSTM, GRU and RNN as the IR's recurrent layer (ONNX gates reordered to
//! Keras's), one direction or both. A Slice/Gather of one step of `Y` makes
//! the layers return only their state there (see [`last_step_reader`]).
//!
//! `direction="bidirectional"` becomes what a Keras `Bidirectional` becomes
//! ([`crate::formats::bidirectional`]): a forward and a backward layer and,
//! where ONNX keeps the two together (`Y`, `Y_h` read whole), their concat.
//! Read per direction (PyTorch's `h_n[-2]`, `h_n[-1]`; tf2onnx's Slice of
//! `Y` per direction) each is its own node. `Y` at an edge step (PyTorch's `out[:, -1]`) holds one direction's
//! last state and the other's state after one step: that one-step state is
//! a layer of its own over the input read as one step of `T·F` features,
//! its kernel non-zero only on the features of that step — exactly the
//! ONNX value, at the cost of `T`× that direction's input kernel.

use std::collections::BTreeSet;

use ndarray::{Array1, Array2};

use super::elementwise::activation_of;
use super::shape::perm_attr;
use crate::engine::model::{Activation, Cell, NodeId, Op, Recurrent};
use crate::error::{Error, Result};
use crate::formats::bidirectional::{self, Direction, Merge};
use crate::formats::onnx::convert::{Attrs, Cx, Val, bad, label, unsupported_option};
use crate::formats::onnx::layout::{Act, axis_index, plain, slice_range};
use crate::formats::onnx::proto::attr_type;

/// Follows the only readers of a recurrent layer's output `y` (time on
/// whole-tensor axis `time` of `rank`) through Squeeze/Unsqueeze/
/// Transpose/Identity, and Reshapes that copy every axis up to the time
/// axis (`0`, PyTorch's `[0, 0, -1]`), to a Slice or Gather that keeps only
/// one step of `steps`, one of `wanted`; returns that node and the step.
fn last_step_reader(cx: &Cx, y: &str, mut time: usize, mut rank: usize, steps: usize, wanted: &[usize]) -> Option<(usize, usize)> {
    let nodes = cx.nodes;
    let mut cur = y;
    loop {
        let j = cx.sole_reader(cur)?;
        let m = &nodes[j];
        if !m.domain.is_empty() || m.input.first().map(String::as_str) != Some(cur) {
            return None;
        }
        let at = Attrs(m);
        let ints = |k: usize, attr: &str| -> Option<Vec<i64>> {
            match cx.known(m, k) {
                Some(Val::Const(c)) => c.i64s().map(<[i64]>::to_vec),
                Some(_) => None,
                None => at.ints(attr).ok().flatten(),
            }
        };
        let norm = axis_index;
        let kept = |p: usize| wanted.contains(&p).then_some((j, p));
        match m.op_type.as_str() {
            "Identity" => {}
            "Squeeze" => {
                let ax: Vec<usize> = ints(1, "axes")?.into_iter().map(|a| norm(a, rank)).collect::<Option<_>>()?;
                if ax.contains(&time) {
                    return None;
                }
                time -= ax.iter().filter(|&&a| a < time).count();
                rank -= ax.len();
            }
            "Unsqueeze" => {
                let ax = ints(1, "axes")?;
                let out = rank + ax.len();
                let ax: BTreeSet<usize> = ax.into_iter().map(|a| norm(a, out)).collect::<Option<_>>()?;
                time = (0..out).filter(|k| !ax.contains(k)).nth(time)?;
                rank = out;
            }
            "Transpose" => {
                let perm = perm_attr(m, rank).ok()?;
                time = perm.iter().position(|&p| p == time)?;
            }
            "Reshape" => {
                let shape = ints(1, "shape")?;
                if shape.len() <= time || shape[..=time].iter().any(|&d| d != 0) || at.int("allowzero", 0).ok()? != 0 {
                    return None;
                }
                rank = shape.len();
            }
            "Slice" => {
                let (starts, ends) = (ints(1, "starts")?, ints(2, "ends")?);
                let axes: Vec<usize> = match ints(3, "axes") {
                    Some(a) => a.into_iter().map(|a| norm(a, rank)).collect::<Option<_>>()?,
                    None => (0..starts.len()).collect(),
                };
                let step = ints(4, "steps").unwrap_or(vec![1]);
                // The constant Slice's own rule: exactly one step is kept.
                if axes != [time] || (starts.len(), ends.len(), step.len()) != (1, 1, 1) || step[0] == 0 {
                    return None;
                }
                return match slice_range(starts[0], ends[0], step[0], steps)[..] {
                    [p] => kept(p),
                    _ => None,
                };
            }
            "Gather" => {
                let idx = ints(1, "")?;
                let axis = norm(at.int("axis", 0).ok()?, rank)?;
                return if axis == time && idx.len() == 1 { kept(norm(idx[0], steps)?) } else { None };
            }
            _ => return None,
        }
        cur = m.output.first()?;
    }
}

/// LSTM, GRU and RNN (forward, reverse or bidirectional; zero initial
/// state) as the IR's Keras-semantics recurrent layer.
pub(super) fn recurrent(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let at = Attrs(n);
    let op = n.op_type.as_str();
    let x = cx.act_any(i, 0)?;
    let layout = if cx.opset >= 14 { at.int("layout", 0)? } else { 0 };
    let want_batch = if layout == 0 { 1 } else { 0 };
    let [steps, f] = x.shape[..] else {
        return Err(Error::shape(
            format!("input X of node {}", label(n)),
            "[sequence, batch, features]",
            format!("{:?} besides the batch", x.shape),
        ));
    };
    if x.batch != want_batch || !x.fold.is_empty() || !x.is_plain() || cx.ir_shape(&x) != x.shape {
        return Err(Error::Unsupported {
            what: format!("input layout of ONNX node {}", label(n)),
            name: format!("X with the batch on axis {} (layout={layout})", x.batch),
            supported: "[sequence, batch, features] (layout=0) or [batch, sequence, features] (layout=1)".into(),
        });
    }
    let direction = at.string("direction")?.unwrap_or_else(|| "forward".into());
    let (reverse, dirs) = match direction.as_str() {
        "forward" => (false, 1),
        "reverse" => (true, 1),
        "bidirectional" => (false, 2),
        _ => {
            return Err(unsupported_option(n, format!("direction={direction}"), "direction=forward, reverse or bidirectional"));
        }
    };
    let layers = (0..dirs).map(|d| layer(cx, i, d, dirs, f)).collect::<Result<Vec<_>>>()?;
    if cx.input(i, 4)?.is_some() {
        return Err(unsupported_option(n, "sequence_lens".into(), "no sequence_lens (every sequence has the full length)"));
    }
    for (k, what) in [(5, "initial_h"), (6, "initial_c"), (7, "peepholes P")] {
        let zero = match cx.input(i, k)? {
            None => true,
            Some(Val::Fill(v)) => *v == 0.0,
            Some(Val::Const(c)) => c.f32s().iter().all(|&v| v == 0.0),
            Some(Val::Act(_)) => false,
        };
        if !zero || (k > 5 && op != "LSTM" && n.input.get(k).is_some_and(|s| !s.is_empty())) {
            return Err(unsupported_option(n, format!("{what} (input {k})"), "zero initial states and no peepholes"));
        }
    }
    let outs: Vec<bool> = (0..3).map(|k| n.output.get(k).is_some_and(|t| cx.is_read(t))).collect();
    if outs[2] || (outs[0] && outs[1]) {
        return Err(unsupported_option(n, "uses of Y_c, or of both Y and Y_h".into(), "one of Y (the sequence) and Y_h (the last state)"));
    }
    let time = if layout == 0 { 0 } else { 1 };
    if layers.len() == 2 {
        return bidirectional_outputs(cx, i, x, layers, &outs, time);
    }
    let mut rec = layers.into_iter().next().ok_or_else(|| bad(format!("node {} has no direction", label(n))))?;
    let units = rec.units;
    // Y read only for its last step: the layer returns only that step.
    let last = if outs[0] {
        n.output.first().and_then(|y| last_step_reader(cx, y, time, 4, steps, &[if reverse { 0 } else { steps - 1 }]))
    } else {
        None
    };
    let sequences = outs[0] && last.is_none();
    if let Some((j, _)) = last {
        cx.last_step.insert(j);
    }
    rec.return_sequences = sequences;
    rec.reverse = reverse;
    let id = cx.emit(i, Op::Recurrent(Box::new(rec)), &[x.node])?;
    if outs[0] {
        // Y: [T, 1, N, H] (layout 0) or [N, T, 1, H]; T is 1 when only the last step is kept.
        let t = if sequences { steps } else { 1 };
        let shape = vec![t, 1, units];
        let layout_y = plain(&shape);
        cx.bind(i, 0, Val::Act(Act { node: id, shape, layout: layout_y, batch: if layout == 0 { 2 } else { 0 }, fold: vec![] }))?;
    }
    if outs[1] {
        // Y_h: [1, N, H] (layout 0) or [N, 1, H].
        let shape = vec![1, units];
        let layout_h = plain(&shape);
        cx.bind(i, 1, Val::Act(Act { node: id, shape, layout: layout_h, batch: if layout == 0 { 1 } else { 0 }, fold: vec![] }))?;
    }
    Ok(())
}

/// Direction `d` of `dirs` of node `i` as an IR layer (forward, returning
/// its last state; the caller sets both).
fn layer(cx: &mut Cx, i: usize, d: usize, dirs: usize, f: usize) -> Result<Recurrent> {
    let n = cx.n(i);
    let at = Attrs(n);
    let op = n.op_type.as_str();
    // activation_alpha/beta are read with the HardSigmoid gates below (the only activation here
    // that takes them).
    if n.attribute.iter().any(|a| a.name == "clip") {
        return Err(unsupported_option(n, "clip".into(), "no clip"));
    }
    if at.int("input_forget", 0)? != 0 {
        return Err(unsupported_option(n, "input_forget=1".into(), "input_forget=0"));
    }
    let (cell, gates) = match op {
        "LSTM" => (Cell::Lstm, 4),
        "GRU" => (Cell::Gru { reset_after: at.int("linear_before_reset", 0)? != 0 }, 3),
        _ => (Cell::SimpleRnn, 1),
    };
    let defaults: &[&str] = match op {
        "LSTM" => &["Sigmoid", "Tanh", "Tanh"],
        "GRU" => &["Sigmoid", "Tanh"],
        _ => &["Tanh"],
    };
    // Each direction lists its own activations, forward first.
    let acts: Vec<String> = match at.get("activations", attr_type::STRINGS, "a list of strings")? {
        Some(a) => a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect(),
        None => (0..dirs).flat_map(|_| defaults.iter().map(|s| s.to_string())).collect(),
    };
    let per = defaults.len();
    // HardSigmoid takes the next activation_alpha and activation_beta in list order (ONNX's
    // defaults 0.2 and 0.5; tf2onnx writes Keras 2's hard_sigmoid recurrent activation so).
    let floats =
        |name: &str| -> Result<Vec<f32>> { Ok(at.get(name, attr_type::FLOATS, "a list of floats")?.map_or(vec![], |a| a.floats.clone())) };
    let (alphas, betas) = (floats("activation_alpha")?, floats("activation_beta")?);
    let mut parsed = Vec::with_capacity(acts.len());
    for name in &acts {
        let a = if name == "HardSigmoid" {
            let k = parsed.iter().filter(|a| matches!(a, Activation::HardSigmoid(_))).count();
            let (alpha, beta) = (alphas.get(k).copied().unwrap_or(0.2), betas.get(k).copied().unwrap_or(0.5));
            if beta != 0.5 {
                return Err(unsupported_option(n, format!("HardSigmoid beta {beta}"), "HardSigmoid with beta 0.5"));
            }
            Some(Activation::HardSigmoid(alpha))
        } else {
            activation_of(name)
        };
        parsed.push(a.ok_or_else(|| Error::Unsupported {
            what: format!("activation in ONNX node {}", label(n)),
            name: name.clone(),
            supported: "Relu, Tanh, Sigmoid, HardSigmoid".into(),
        })?);
    }
    let act = |k: usize| -> Result<Activation> {
        parsed.get(d * per + k).copied().ok_or_else(|| bad(format!("node {} lists {} activations", label(n), acts.len())))
    };
    let (activation, recurrent_activation) = match op {
        "LSTM" => {
            if act(1)? != act(2)? {
                return Err(unsupported_option(
                    n,
                    format!("activations={acts:?}"),
                    "the same activation for the cell input and output (g = h)",
                ));
            }
            (act(1)?, act(0)?)
        }
        "GRU" => (act(1)?, act(0)?),
        _ => (act(0)?, Activation::Sigmoid),
    };
    let w = cx.konst(i, 1, "weights W")?;
    let r = cx.konst(i, 2, "recurrence weights R")?;
    let &[wd, gu, fin] = &w.dims[..] else {
        return Err(Error::shape(format!("weights W of node {}", label(n)), "[directions, gates·hidden, input]", format!("{:?}", w.dims)));
    };
    let units = gu / gates;
    if wd != dirs || gu % gates != 0 || units == 0 || fin != f {
        return Err(Error::shape(
            format!("weights W of node {}", label(n)),
            format!("[{dirs}, {gates}·hidden, {f}]"),
            format!("{:?}", w.dims),
        ));
    }
    if let Some(h) = at.get("hidden_size", attr_type::INT, "an integer")?
        && h.i != units as i64
    {
        return Err(Error::shape(format!("hidden_size of node {}", label(n)), units, h.i));
    }
    if r.dims != [dirs, gu, units] {
        return Err(Error::shape(
            format!("recurrence weights R of node {}", label(n)),
            format!("[{dirs}, {gu}, {units}]"),
            format!("{:?}", r.dims),
        ));
    }
    let b = match cx.opt_konst(i, 3, "bias B")? {
        None => vec![0.0; 2 * gu],
        Some(b) if b.dims == [dirs, 2 * gu] => b.f32s()[d * 2 * gu..(d + 1) * 2 * gu].to_vec(),
        Some(b) => {
            return Err(Error::shape(format!("bias B of node {}", label(n)), format!("[{dirs}, {}]", 2 * gu), format!("{:?}", b.dims)));
        }
    };
    // ONNX gate blocks → Keras order: LSTM i,o,f,c → i,f,c,o; GRU z,r,h and RNN as they are.
    let order: &[usize] = match op {
        "LSTM" => &[0, 2, 3, 1],
        "GRU" => &[0, 1, 2],
        _ => &[0],
    };
    let (wv, rv) = (&w.f32s()[d * gu * f..(d + 1) * gu * f], &r.f32s()[d * gu * units..(d + 1) * gu * units]);
    // IR column k (Keras gate block k / units) is ONNX row `col(k)` of W, R and B.
    let col = |k: usize| order[k / units] * units + k % units;
    let kernel = Array2::from_shape_fn((f, gu), |(fi, k)| wv[col(k) * f + fi]);
    let recurrent = Array2::from_shape_fn((units, gu), |(h, k)| rv[col(k) * units + h]);
    let (wb, rb) = b.split_at(gu);
    let reorder = |v: &[f32]| -> Vec<f32> { (0..gu).map(|k| v[col(k)]).collect() };
    let (bias, recurrent_bias) = match cell {
        Cell::Gru { reset_after: true } => (reorder(wb), Some(Array1::from_vec(reorder(rb)))),
        _ => (reorder(wb).iter().zip(reorder(rb)).map(|(a, b)| a + b).collect(), None),
    };
    cx.spend(kernel.len() + recurrent.len() + 2 * gu, i)?;
    Ok(Recurrent {
        cell,
        units,
        kernel,
        recurrent,
        bias: Array1::from_vec(bias),
        recurrent_bias,
        activation,
        recurrent_activation,
        return_sequences: false,
        reverse: false,
    })
}

/// The outputs of a bidirectional node `i` (see the module doc): `Y` whole
/// or at an edge step, `Y_h` whole or one direction at a time.
fn bidirectional_outputs(cx: &mut Cx, i: usize, x: Act, layers: Vec<Recurrent>, outs: &[bool], time: usize) -> Result<()> {
    let n = cx.n(i);
    let name = cx.ir_name(i);
    let steps = x.shape[0];
    let Ok([mut fw, mut bw]) = <[Recurrent; 2]>::try_from(layers) else { return Err(bad("two directions")) };
    let units = fw.units;
    // The batch axis of Y ([T, 2, N, H] or [N, T, 2, H]) and Y_h ([2, N, H] or [N, 2, H]);
    // Y_h's direction axis is where Y's time axis is.
    let (y_batch, h_batch) = if time == 0 { (2, 1) } else { (0, 0) };
    let dir = |name: &str, op: Recurrent, input: NodeId| Direction { name: name.into(), op: Op::Recurrent(Box::new(op)), input };
    let (fname, bname) = (format!("{name}/forward"), format!("{name}/backward"));
    if outs[0]
        && let Some(per_direction) = direction_slices(cx, i, time)
    {
        return split_y(cx, i, x, [fw, bw], per_direction, time);
    }
    if outs[0] {
        let y = &n.output[0];
        let every: Vec<usize> = (0..steps).collect();
        let (merged, t) = match last_step_reader(cx, y, time, 4, steps, &every) {
            Some((_, p)) if p != 0 && p != steps - 1 => {
                return Err(unsupported_option(
                    n,
                    format!("Y of both directions read at step {p} of {steps} (neither direction's last state)"),
                    "Y whole, at its first or last step (PyTorch's out[:, 0], out[:, -1]), or Y_h",
                ));
            }
            Some((j, p)) => {
                cx.last_step.insert(j);
                // At the last step the forward layer has read everything, the backward one step;
                // at step 0 the other way round.
                let fi = if p == steps - 1 { x.node } else { one_step(cx, i, &x, &mut fw, p)? };
                let bi = if p == 0 { x.node } else { one_step(cx, i, &x, &mut bw, p)? };
                (merge(cx, &name, dir(&fname, fw, fi), dir(&bname, bw, bi))?, 1)
            }
            None => {
                fw.return_sequences = true;
                bw.return_sequences = true;
                (merge(cx, &name, dir(&fname, fw, x.node), dir(&bname, bw, x.node))?, steps)
            }
        };
        // Y per sample is [T, 2, H]: the concat's [fw H, bw H] at each step is its row-major order.
        let shape = vec![t, 2, units];
        return cx.bind(i, 0, Val::Act(Act { node: merged, shape: shape.clone(), layout: plain(&shape), batch: y_batch, fold: vec![] }));
    }
    if !outs[1] {
        return Ok(());
    }
    let y_h = &n.output[1];
    // PyTorch's h_n[-2], h_n[-1]: Gathers of one direction each.
    let picks: Option<Vec<(usize, usize)>> = cx.readers.get(y_h.as_str()).and_then(|rs| {
        rs.iter()
            .map(|&j| {
                let m = &cx.nodes[j];
                let idx = match cx.known(m, 1) {
                    Some(Val::Const(c)) if c.dims.is_empty() => c.i64s().and_then(|v| v.first().copied())?,
                    _ => return None,
                };
                let axis = axis_index(Attrs(m).int("axis", 0).ok()?, 3)?;
                let d = axis_index(idx, 2)?;
                (m.op_type == "Gather" && m.input.first() == Some(y_h) && axis == time).then_some((j, d))
            })
            .collect()
    });
    match picks {
        Some(picks) if !picks.is_empty() && y_h.as_str() != cx.output => {
            let used = [0, 1].map(|d| picks.iter().any(|&(_, e)| e == d));
            let ids = directions(cx, &name, [fw, bw], used, x.node)?;
            cx.activations += (units * ids.iter().flatten().count()) as u64;
            for (j, d) in picks {
                let node = ids[d].ok_or_else(|| bad("a picked direction"))?;
                cx.picks.insert(j, Act::new(node, vec![units], plain(&[units])));
            }
            Ok(())
        }
        _ => {
            let merged = merge(cx, &name, dir(&fname, fw, x.node), dir(&bname, bw, x.node))?;
            let shape = vec![2, units];
            cx.bind(i, 1, Val::Act(Act { node: merged, shape: shape.clone(), layout: plain(&shape), batch: h_batch, fold: vec![] }))
        }
    }
}

/// The readers of a bidirectional `Y` when each is a Slice keeping one
/// direction (tf2onnx's Keras Bidirectional), as (Slice node, direction).
fn direction_slices(cx: &Cx, i: usize, time: usize) -> Option<Vec<(usize, usize)>> {
    let y = cx.n(i).output.first()?;
    // Y is [T, 2, N, H] or [N, T, 2, H]: the direction axis follows the time axis.
    let axis = time + 1;
    let readers = cx.readers.get(y.as_str())?;
    if y.as_str() == cx.output || readers.is_empty() {
        return None;
    }
    readers
        .iter()
        .map(|&j| {
            let m = &cx.nodes[j];
            let ints = |k: usize| match cx.known(m, k) {
                Some(Val::Const(c)) => c.i64s().map(<[i64]>::to_vec),
                _ => None,
            };
            let (starts, ends, axes) = (ints(1)?, ints(2)?, ints(3)?);
            let step = if m.input.get(4).is_some_and(|s| !s.is_empty()) { ints(4)? } else { vec![1] };
            let ok = m.op_type == "Slice" && m.input.first() == Some(y) && axes.len() == 1 && axis_index(axes[0], 4) == Some(axis);
            match (ok, &starts[..], &ends[..], &step[..]) {
                (true, [s], [e], [st]) if *st != 0 => match slice_range(*s, *e, *st, 2)[..] {
                    [d] => Some((j, d)),
                    _ => None,
                },
                _ => None,
            }
        })
        .collect()
}

/// `Y` read one direction at a time: each direction a layer of its own,
/// returning its sequence, or its last state when its Slice is read only
/// for that step (Keras's backward layer: step 0).
fn split_y(cx: &mut Cx, i: usize, x: Act, layers: [Recurrent; 2], slices: Vec<(usize, usize)>, time: usize) -> Result<()> {
    let name = cx.ir_name(i);
    let steps = x.shape[0];
    let units = layers[0].units;
    let mut kept = [steps; 2];
    let [mut fw, mut bw] = layers;
    for (d, rec) in [&mut fw, &mut bw].into_iter().enumerate() {
        let mut last = None;
        for &(j, e) in &slices {
            let out = cx.n(j).output.first().map(String::as_str).unwrap_or("");
            if e == d {
                last = last_step_reader(cx, out, time, 4, steps, &[if d == 0 { steps - 1 } else { 0 }]);
                if slices.iter().filter(|&&(_, e)| e == d).count() > 1 {
                    last = None;
                }
            }
        }
        rec.return_sequences = last.is_none();
        if let Some((j, _)) = last {
            cx.last_step.insert(j);
            kept[d] = 1;
        }
    }
    let used = [0, 1].map(|d| slices.iter().any(|&(_, e)| e == d));
    let ids = directions(cx, &name, [fw, bw], used, x.node)?;
    for d in 0..2 {
        cx.activations += (kept[d] * units * usize::from(ids[d].is_some())) as u64;
    }
    let batch = if time == 0 { 2 } else { 0 };
    for (j, d) in slices {
        let node = ids[d].ok_or_else(|| bad("a sliced direction"))?;
        let shape = vec![kept[d], 1, units];
        cx.picks.insert(j, Act { node, shape: shape.clone(), layout: plain(&shape), batch, fold: vec![] });
    }
    Ok(())
}

/// The directions that are `used`, each read on its own (no merge): both
/// through the shared builder, or the one alone.
fn directions(cx: &mut Cx, name: &str, [fw, mut bw]: [Recurrent; 2], used: [bool; 2], input: NodeId) -> Result<[Option<NodeId>; 2]> {
    let dir = |name: String, op: Recurrent| Direction { name, op: Op::Recurrent(Box::new(op)), input };
    let (fname, bname) = (format!("{name}/forward"), format!("{name}/backward"));
    Ok(match used {
        [true, true] => {
            let (f, k, _) = bidirectional::build(&mut cx.b, name, dir(fname, fw), dir(bname, bw), None)?;
            [Some(f), Some(k)]
        }
        [true, false] => [Some(cx.b.add(fname, Op::Recurrent(Box::new(fw)), &[input])?), None],
        _ => {
            bw.reverse = true;
            [None, Some(cx.b.add(bname, Op::Recurrent(Box::new(bw)), &[input])?)]
        }
    })
}

/// The two directions and their concat, counted as activations.
fn merge(cx: &mut Cx, name: &str, forward: Direction, backward: Direction) -> Result<NodeId> {
    let (f, k, merged) = bidirectional::build(&mut cx.b, name, forward, backward, Some(Merge::Concat))?;
    let merged = merged.ok_or_else(|| bad("a merge"))?;
    for id in [f, k, merged] {
        cx.activations += cx.b.shape(id).iter().product::<usize>() as u64;
    }
    Ok(merged)
}

/// Makes `rec` the state after reading only step `p` from a zero state:
/// one step over the input read as `[1, T·F]`, the kernel's rows zero but
/// for step `p`'s features. Returns the reshaped input.
fn one_step(cx: &mut Cx, i: usize, x: &Act, rec: &mut Recurrent, p: usize) -> Result<NodeId> {
    let [steps, f] = x.shape[..] else { return Err(bad("a sequence [T, F]")) };
    let gu = rec.kernel.ncols();
    cx.spend(steps * f * gu, i)?;
    let kernel = &rec.kernel;
    rec.kernel = Array2::from_shape_fn((steps * f, gu), |(r, k)| if r / f == p { kernel[[r % f, k]] } else { 0.0 });
    let name = format!("{}/step{p}", cx.ir_name(i));
    let id = cx.b.add(name, Op::Reshape { shape: vec![1, steps * f] }, &[x.node])?;
    cx.activations += (steps * f) as u64;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_int, attr_ints, attr_string, floats, ints, run};
    use super::*;

    /// Tokens [T] → embedding [T, 1] → time-major → a bidirectional 1-unit tanh RNN (forward W = 1,
    /// backward W = 2, R = ½ both) → Y at step `step` → [N, 2] (forward, backward) → a copying MatMul.
    fn net(steps: i64, step: i64) -> Result<crate::engine::model::Model> {
        Net::tokens(&[steps])
            .init(floats("table", &[3, 1], &[0.0, 0.5, 1.0]))
            .node("Gather", &["table", "x"], &["e"], vec![])
            .node("Transpose", &["e"], &["t"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(floats("W", &[2, 1, 1], &[1.0, 2.0]))
            .init(floats("R", &[2, 1, 1], &[0.5, 0.5]))
            .node("RNN", &["t", "W", "R"], &["Y"], vec![attr_int("hidden_size", 1), attr_string("direction", "bidirectional")])
            .init(ints("i", &[], &[step]))
            .node("Gather", &["Y", "i"], &["g"], vec![attr_int("axis", 0)])
            .node("Transpose", &["g"], &["n"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(ints("ax", &[1], &[2]))
            .node("Squeeze", &["n", "ax"], &["h"], vec![])
            .init(floats("D", &[2, 2], &[1.0, 0.0, 0.0, 1.0]))
            .node("MatMul", &["h", "D"], &["y"], vec![])
            .load()
    }

    #[test]
    fn bidirectional_y_at_an_edge_step_is_one_state_of_each_direction() {
        let t = f32::tanh;
        // Tokens (1, 2) embed as (0.5, 1.0). At the last step: the forward layer has read both,
        // the backward one only the last token; at step 0 the other way round.
        let m = net(2, -1).unwrap();
        let got = run(&m, &[1.0, 2.0]);
        let want = [t(1.0 + 0.5 * t(0.5)), t(2.0)];
        assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
        let m = net(2, 0).unwrap();
        let got = run(&m, &[1.0, 2.0]);
        let want = [t(0.5), t(1.0 + 0.5 * t(2.0))];
        assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
        let reverse: Vec<bool> = m.nodes.iter().filter_map(|n| if let Op::Recurrent(r) = &n.op { Some(r.reverse) } else { None }).collect();
        assert_eq!(reverse, [false, true]);
        // A middle step is neither direction's last state: refused, naming it.
        let e = net(3, 1).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("step 1 of 3"), "{e}");
    }

    /// tf2onnx's Keras Bidirectional: Y sliced per direction (axis 1), each squeezed, then the
    /// forward one's last step and the backward one's step 0, summed (merge_mode="sum").
    #[test]
    fn bidirectional_y_sliced_per_direction_is_two_layers() {
        let slice = |net: Net, y: &str, s: i64, e: i64, axis: i64, out: &str| {
            let k = format!("{out}_");
            net.init(ints(&format!("{k}s"), &[1], &[s]))
                .init(ints(&format!("{k}e"), &[1], &[e]))
                .init(ints(&format!("{k}a"), &[1], &[axis]))
                .node("Slice", &[y, &format!("{k}s"), &format!("{k}e"), &format!("{k}a")], &[&format!("{k}sl")], vec![])
                .node("Squeeze", &[&format!("{k}sl"), &format!("{k}a")], &[out], vec![])
        };
        let net = Net::tokens(&[2])
            .init(floats("table", &[3, 1], &[0.0, 0.5, 1.0]))
            .node("Gather", &["table", "x"], &["e"], vec![])
            .node("Transpose", &["e"], &["t"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(floats("W", &[2, 1, 1], &[1.0, 2.0]))
            .init(floats("R", &[2, 1, 1], &[0.5, 0.5]))
            .node("RNN", &["t", "W", "R"], &["Y"], vec![attr_int("hidden_size", 1), attr_string("direction", "bidirectional")]);
        let net = slice(net, "Y", 0, 1, 1, "fs");
        let net = slice(net, "fs", -1, i64::MAX, 0, "f");
        let net = slice(net, "Y", 1, 2, 1, "bs");
        let net = slice(net, "bs", 0, 1, 0, "b");
        let m = net
            .node("Add", &["f", "b"], &["h"], vec![])
            .init(floats("D", &[1, 2], &[1.0, 0.0]))
            .node("MatMul", &["h", "D"], &["y"], vec![])
            .load()
            .unwrap();
        let t = f32::tanh;
        let got = run(&m, &[1.0, 2.0]);
        // Both read everything: the forward one ends on token 2, the backward one on token 1.
        let want = t(1.0 + 0.5 * t(0.5)) + t(1.0 + 0.5 * t(2.0));
        assert!((got[0] - want).abs() < 1e-6, "{got:?} vs {want}");
        let layers: Vec<(bool, bool)> = m
            .nodes
            .iter()
            .filter_map(|n| if let Op::Recurrent(r) = &n.op { Some((r.reverse, r.return_sequences)) } else { None })
            .collect();
        assert_eq!(layers, [(false, false), (true, false)]);
    }

    /// PyTorch's `h_n.transpose(0, 1).reshape(N, -1)` of a bidirectional layer: Y_h read whole is
    /// both final states side by side, merged by the helper's Concat.
    #[test]
    fn bidirectional_y_h_read_whole_is_both_final_states() {
        let m = Net::tokens(&[2])
            .init(floats("table", &[3, 1], &[0.0, 0.5, 1.0]))
            .node("Gather", &["table", "x"], &["e"], vec![])
            .node("Transpose", &["e"], &["t"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(floats("W", &[2, 1, 1], &[1.0, 2.0]))
            .init(floats("R", &[2, 1, 1], &[0.5, 0.5]))
            .node("RNN", &["t", "W", "R"], &["", "Y_h"], vec![attr_string("direction", "bidirectional")])
            .node("Transpose", &["Y_h"], &["n"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(ints("s", &[2], &[0, -1]))
            .node("Reshape", &["n", "s"], &["h"], vec![])
            .init(floats("D", &[2, 2], &[1.0, 0.0, 0.0, 1.0]))
            .node("MatMul", &["h", "D"], &["y"], vec![])
            .load()
            .unwrap();
        let t = f32::tanh;
        let got = run(&m, &[1.0, 2.0]);
        let want = [t(1.0 + 0.5 * t(0.5)), t(1.0 + 0.5 * t(2.0))];
        assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
        assert!(m.nodes.iter().any(|n| matches!(n.op, Op::Concat)));
    }
}

//! Sequences: token-id embeddings (Gather from a constant table), the
//! Slice/Gather of the last step of a recurrent layer's `Y` (the layer, in
//! `recurrent.rs`, then returns only its last state) or of one direction of
//! its `Y_h`, and tf2onnx's Keras RepeatVector (Unsqueeze + Tile by
//! constant repeats).

use ndarray::Array2;

use super::shape::reshape_to;
use crate::engine::model::Op;
use crate::error::{Error, Result};
use crate::formats::onnx::convert::{Attrs, BATCH, Cx, MAX_TOTAL_ACTIVATION, Val, bad, label, unsupported_option};
use crate::formats::onnx::layout::{Act, Layout, axis_index, plain};

/// `Gather(table, ids)`: an embedding lookup of token ids; or the last step
/// of a recurrent output (see `recurrent.rs`).
pub(super) fn gather(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    if cx.last_step.contains(&i) {
        return take_last_step(cx, i);
    }
    if let Some(a) = cx.picks.remove(&i) {
        return cx.bind(i, 0, Val::Act(a));
    }
    let table = match cx.input(i, 0)? {
        Some(Val::Const(c)) => c.clone(),
        Some(Val::Act(x)) if unit_pick(cx, i, x)? => return take_last_step(cx, i),
        _ => {
            return Err(Error::Unsupported {
                what: format!("ONNX node {}", label(n)),
                name: "Gather from a computed tensor".into(),
                supported:
                    "Gather of token ids from a constant embedding table (axis 0), or of the last step of a recurrent layer's output".into(),
            });
        }
    };
    let ids = cx.act(i, 1)?;
    let axis = Attrs(n).int("axis", 0)?;
    let [vocab, dim] = table.dims[..] else {
        return Err(Error::shape(format!("embedding table of node {}", label(n)), "[vocabulary, dimension]", format!("{:?}", table.dims)));
    };
    if axis != 0 {
        return Err(unsupported_option(n, format!("axis={axis}"), "axis=0 (rows of the embedding table)"));
    }
    if !ids.is_plain() || cx.ir_shape(&ids) != ids.shape {
        return Err(Error::Unsupported {
            what: format!("input layout of ONNX node {}", label(n)),
            name: format!("token ids {:?} per sample, reordered", ids.shape),
            supported: "token ids in their own order".into(),
        });
    }
    cx.spend(table.len(), i)?;
    let t = Array2::from_shape_vec((vocab, dim), table.f32s()).map_err(|e| bad(e.to_string()))?;
    let id = cx.emit(i, Op::Embedding { table: t }, &[ids.node])?;
    let mut shape = ids.shape.clone();
    shape.push(dim);
    let layout = plain(&shape);
    cx.bind(i, 0, Val::Act(Act::new(id, shape, layout)))
}

/// Is Gather node `i` of the computed `x` a scalar index 0 or -1 into an axis
/// of size 1 (PyTorch's `h_n[-1]` of a one-layer recurrent state `[1, N, H]`)?
/// Then it only drops that axis.
fn unit_pick(cx: &Cx, i: usize, x: &Act) -> Result<bool> {
    let n = cx.n(i);
    let Some(Val::Const(idx)) = cx.input(i, 1)? else { return Ok(false) };
    let r = x.shape.len() + 1;
    let Some(a) = axis_index(Attrs(n).int("axis", 0)?, r).filter(|&a| a != x.batch) else { return Ok(false) };
    let size = x.shape[if a < x.batch { a } else { a - 1 }];
    Ok(size == 1 && idx.dims.is_empty() && x.fold.is_empty() && matches!(idx.i64s(), Some([0 | -1])))
}

/// Slices of computed tensors: only the last step of a recurrent output.
pub(super) fn slice(cx: &mut Cx, i: usize) -> Result<()> {
    if cx.last_step.contains(&i) {
        return take_last_step(cx, i);
    }
    if let Some(a) = cx.picks.remove(&i) {
        return cx.bind(i, 0, Val::Act(a));
    }
    let n = cx.n(i);
    Err(Error::Unsupported {
        what: format!("ONNX node {}", label(n)),
        name: "Slice of a computed tensor".into(),
        supported:
            "the last step of a recurrent layer's output sequence (then the layer returns only its last state), or one direction of a bidirectional one"
                .into(),
    })
}

/// A Slice/Gather that `recurrent` found taking the last step of its
/// output: the layer already returns only that step (the time axis has
/// size 1 here), so Slice is the identity and Gather drops the axis.
fn take_last_step(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    if n.op_type == "Gather" && cx.opt_konst(i, 1, "indices")?.is_some_and(|c| c.dims.is_empty()) {
        let axis = Attrs(n).int("axis", 0)?;
        let r = x.shape.len() + 1;
        let a = axis_index(axis, r)
            .filter(|&a| a != x.batch)
            .ok_or_else(|| bad(format!("axis {axis} of node {} is not a time axis", label(n))))?;
        let k = if a < x.batch { a } else { a - 1 };
        let mut shape = x.shape.clone();
        shape.remove(k);
        let batch = x.batch - usize::from(a < x.batch);
        let mut out = reshape_to(cx, i, Act { batch: 0, ..x }, shape)?;
        out.batch = batch;
        return cx.bind(i, 0, Val::Act(out));
    }
    cx.bind(i, 0, Val::Act(x))
}

/// `Tile` of a vector along one axis of size 1, the batch once, with
/// constant repeats: tf2onnx's Keras RepeatVector (`Unsqueeze` to
/// `[N, 1, F]`, then `Tile` by `[1, T, 1]`) → the IR's RepeatVector.
pub(super) fn tile(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    let refuse = |name: String| Error::Unsupported {
        what: format!("ONNX node {}", label(n)),
        name,
        supported: "Tile of a vector along one axis of size 1 by constant repeats, the batch once (Keras RepeatVector: Unsqueeze + Tile)"
            .into(),
    };
    let reps = match cx.input(i, 1)? {
        Some(Val::Const(c)) => {
            c.i64s().map(<[i64]>::to_vec).ok_or_else(|| bad(format!("repeats of node {} must be integers", label(n))))?
        }
        Some(_) => return Err(refuse("repeats computed at run time".into())),
        None => return Err(bad(format!("node {} lacks its repeats (input 1)", label(n)))),
    };
    if reps.contains(&BATCH) {
        return Err(refuse("repeats computed from the batch size at run time".into()));
    }
    if reps.len() != x.shape.len() + 1 {
        return Err(Error::shape(
            format!("repeats of node {}", label(n)),
            format!("{} values (one per axis)", x.shape.len() + 1),
            reps.len(),
        ));
    }
    if let Some(&k) = reps.iter().find(|&&k| k < 1) {
        return Err(bad(format!("node {} repeats an axis {k} times", label(n))));
    }
    if x.batch != 0 || !x.fold.is_empty() {
        return Err(refuse(format!("a tensor with the batch on axis {} or merged with {:?}", x.batch, x.fold)));
    }
    if reps[0] != 1 {
        return Err(refuse(format!("repeats {reps:?} (the batch {} times)", reps[0])));
    }
    let tiled: Vec<usize> = (0..x.shape.len()).filter(|&a| reps[a + 1] > 1).collect();
    let a = match tiled[..] {
        [] => return cx.bind(i, 0, Val::Act(x)),
        [a] => a,
        _ => return Err(refuse(format!("repeats {reps:?} (more than one axis)"))),
    };
    let features: Vec<usize> = (0..x.shape.len()).filter(|&k| x.shape[k] != 1).collect();
    if x.shape[a] != 1 || features.len() > 1 || cx.ir_shape(&x).len() != 1 || !x.is_plain() {
        return Err(refuse(format!("repeats {reps:?} of a tensor of shape {:?} per sample", x.shape)));
    }
    let f = x.shape.iter().product::<usize>() as u64;
    let times = reps[a + 1] as u64;
    if times.saturating_mul(f) > MAX_TOTAL_ACTIVATION {
        return Err(Error::too_large(format!("output of node {}", label(n)), times.saturating_mul(f), MAX_TOTAL_ACTIVATION));
    }
    let id = cx.emit(i, Op::RepeatVector { times: times as usize }, &[x.node])?;
    let mut shape = x.shape.clone();
    shape[a] = times as usize;
    // The IR stores [times, F]: the repeated axis first, then the vector's.
    cx.bind(i, 0, Val::Act(Act::new(id, shape, Layout::Axes([a].into_iter().chain(features).collect()))))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_int, attr_ints, floats, ints, run};
    use super::*;
    use crate::engine::model::Cell;

    /// Token ids [2] → embedding [2, 1] → time-major → a 1-unit tanh RNN
    /// (W = 1, R = 0) → `last` keeps the last step → [N, 1] → a Dense copying it.
    fn rnn(last: impl FnOnce(Net) -> Net) -> Result<crate::engine::model::Model> {
        let net = Net::tokens(&[2])
            .init(floats("table", &[3, 1], &[0.0, 0.5, 1.0]))
            .node("Gather", &["table", "x"], &["e"], vec![])
            .node("Transpose", &["e"], &["t"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(floats("W", &[1, 1, 1], &[1.0]))
            .init(floats("R", &[1, 1, 1], &[0.0]))
            .node("RNN", &["t", "W", "R"], &["Y"], vec![attr_int("hidden_size", 1)]);
        last(net).init(floats("D", &[1, 2], &[1.0, 0.0])).node("MatMul", &["h", "D"], &["y"], vec![]).load()
    }

    fn returns_sequences(m: &crate::engine::model::Model) -> bool {
        m.nodes.iter().any(|n| matches!(&n.op, Op::Recurrent(r) if r.return_sequences))
    }

    #[test]
    fn last_step_of_y_is_the_last_state() {
        let gather = rnn(|net| {
            net.init(ints("last", &[], &[-1]))
                .node("Gather", &["Y", "last"], &["g"], vec![attr_int("axis", 0)])
                .node("Squeeze", &["g", "ax"], &["h"], vec![])
                .init(ints("ax", &[1], &[0]))
        })
        .unwrap();
        assert!(!returns_sequences(&gather));
        // Tokens (1, 2): the last state is tanh(1.0) (R = 0 forgets the first step).
        assert!((run(&gather, &[1.0, 2.0])[0] - 1f32.tanh()).abs() < 1e-6);
        let slice = rnn(|net| {
            net.init(ints("s", &[1], &[1]))
                .init(ints("end", &[1], &[i64::MAX]))
                .init(ints("a", &[1], &[0]))
                .node("Slice", &["Y", "s", "end", "a"], &["l"], vec![])
                .init(ints("ax", &[2], &[0, 1]))
                .node("Squeeze", &["l", "ax"], &["h"], vec![])
        })
        .unwrap();
        assert!(!returns_sequences(&slice));
        assert!((run(&slice, &[1.0, 2.0])[0] - 1f32.tanh()).abs() < 1e-6);
        // A Slice of the first step is not the last state: refused.
        let e = rnn(|net| {
            net.init(ints("s", &[1], &[0]))
                .init(ints("end", &[1], &[1]))
                .init(ints("a", &[1], &[0]))
                .node("Slice", &["Y", "s", "end", "a"], &["l"], vec![])
                .init(ints("ax", &[2], &[0, 1]))
                .node("Squeeze", &["l", "ax"], &["h"], vec![])
        })
        .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("Slice of a computed tensor"), "{e}");
    }

    #[test]
    fn h_n_of_the_last_layer_is_the_last_state() {
        // PyTorch's `h_n[-1]`: Gather(Y_h [1, N, H], -1, axis 0) → [N, H].
        let net = |index: i64| {
            Net::tokens(&[2])
                .init(floats("table", &[3, 1], &[0.0, 0.5, 1.0]))
                .node("Gather", &["table", "x"], &["e"], vec![])
                .node("Transpose", &["e"], &["t"], vec![attr_ints("perm", &[1, 0, 2])])
                .init(floats("W", &[1, 1, 1], &[1.0]))
                .init(floats("R", &[1, 1, 1], &[0.0]))
                .node("RNN", &["t", "W", "R"], &["", "Y_h"], vec![attr_int("hidden_size", 1)])
                .init(ints("i", &[], &[index]))
                .node("Gather", &["Y_h", "i"], &["h"], vec![attr_int("axis", 0)])
                .init(floats("D", &[1, 2], &[1.0, 0.0]))
                .node("MatMul", &["h", "D"], &["y"], vec![])
                .load()
        };
        for index in [-1, 0] {
            let m = net(index).unwrap();
            assert!(!returns_sequences(&m));
            assert!((run(&m, &[1.0, 2.0])[0] - 1f32.tanh()).abs() < 1e-6);
        }
        let e = net(1).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("Gather from a computed tensor"), "{e}");
    }

    #[test]
    fn lstm_gates_are_reordered_for_the_ir() {
        // ONNX blocks i, o, f, c → the IR's (Keras) i, f, c, o.
        let m = Net::new(&[3, 1])
            .node("Transpose", &["x"], &["t"], vec![attr_ints("perm", &[1, 0, 2])])
            .init(floats("W", &[1, 4, 1], &[1.0, 2.0, 3.0, 4.0]))
            .init(floats("R", &[1, 4, 1], &[10.0, 20.0, 30.0, 40.0]))
            .node("LSTM", &["t", "W", "R"], &["Y", "Y_h"], vec![])
            .node("Squeeze", &["Y_h", "ax"], &["h"], vec![])
            .init(ints("ax", &[1], &[0]))
            .init(floats("D", &[1, 2], &[1.0, 0.0]))
            .node("MatMul", &["h", "D"], &["y"], vec![])
            .load()
            .unwrap();
        let Some(Op::Recurrent(r)) = m.nodes.iter().map(|n| &n.op).find(|op| matches!(op, Op::Recurrent(_))) else { panic!() };
        assert_eq!((r.cell, r.return_sequences), (Cell::Lstm, false));
        assert_eq!(r.kernel.iter().copied().collect::<Vec<_>>(), [1.0, 3.0, 4.0, 2.0]);
        assert_eq!(r.recurrent.iter().copied().collect::<Vec<_>>(), [10.0, 30.0, 40.0, 20.0]);
    }

    #[test]
    fn tile_of_a_vector_is_a_repeat_vector() {
        let net = |reps: &[i64]| {
            Net::new(&[2])
                .init(ints("ax", &[1], &[1]))
                .node("Unsqueeze", &["x", "ax"], &["u"], vec![])
                .init(ints("reps", &[3], reps))
                .node("Tile", &["u", "reps"], &["t"], vec![])
                .init(floats("D", &[2, 2], &[1.0, 0.0, 0.0, 1.0]))
                .node("MatMul", &["t", "D"], &["y"], vec![])
                .load()
        };
        let m = net(&[1, 3, 1]).unwrap();
        assert!(m.nodes.iter().any(|n| matches!(n.op, Op::RepeatVector { times: 3 })));
        assert_eq!(run(&m, &[1.0, 2.0]), [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        let e = net(&[2, 3, 1]).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("the batch 2 times"), "{e}");
    }
}

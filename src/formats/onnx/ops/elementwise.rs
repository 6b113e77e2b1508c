//! Element-wise ops: Add/Sum of computed tensors (residual connections),
//! Add/Sub/Mul/Div by a per-channel constant (an IR BatchNorm), activations,
//! Softmax, and the ops that leave values alone (Identity, Dropout, Cast).

use ndarray::Array1;

use crate::engine::model::{Activation, NodeId, Op};
use crate::error::{Error, Result};
use crate::formats::onnx::convert::{Attrs, Cx, Val, bad, label, unsupported_option};
use crate::formats::onnx::fold::first;
use crate::formats::onnx::layout::{Act, Layout, restride, sample_axis, strides};
use crate::formats::onnx::proto::{NodeProto, data_type};
use crate::formats::onnx::tensor::{Const, Data};

/// The activation an op name stands for without attributes (also in recurrent `activations`).
pub(super) fn activation_of(op: &str) -> Option<Activation> {
    match op {
        "Relu" => Some(Activation::Relu),
        "Tanh" => Some(Activation::Tanh),
        "Sigmoid" => Some(Activation::Sigmoid),
        "Softplus" => Some(Activation::Softplus),
        _ => None,
    }
}

/// The activation of node `n`, with its attributes (ONNX defaults).
fn activation_with_attrs(n: &NodeProto) -> Result<Activation> {
    let a = Attrs(n);
    Ok(match n.op_type.as_str() {
        "LeakyRelu" => Activation::LeakyRelu(a.float("alpha", 0.01)?),
        "Elu" => Activation::Elu(a.float("alpha", 1.0)?),
        "HardSigmoid" => {
            let beta = a.float("beta", 0.5)?;
            if beta != 0.5 {
                return Err(unsupported_option(n, format!("beta={beta}"), "beta=0.5"));
            }
            Activation::HardSigmoid(a.float("alpha", 0.2)?)
        }
        "Gelu" => match a.string("approximate")?.as_deref() {
            None | Some("none") => Activation::Gelu,
            Some("tanh") => Activation::GeluTanh,
            Some(other) => return Err(unsupported_option(n, format!("approximate={other}"), "approximate=none or tanh")),
        },
        op => activation_of(op).unwrap_or(Activation::Linear),
    })
}

/// Relu, Tanh, Sigmoid (x·Sigmoid(x) read as swish), Softplus, LeakyRelu, Elu, HardSigmoid, Gelu.
pub(super) fn activation(cx: &mut Cx, i: usize) -> Result<()> {
    let x = cx.act_any(i, 0)?;
    let n = cx.n(i);
    let mut a = activation_with_attrs(n)?;
    let mut out: &str = n.output.first().map(String::as_str).unwrap_or("");
    // SiLU as exported: Mul(x, Sigmoid(x)), in either order.
    if a == Activation::Sigmoid
        && let Some(j) = cx.sole_reader(out)
    {
        let m = &cx.nodes[j];
        let x_name = n.input.first().map(String::as_str).unwrap_or("");
        let other = m.input.iter().find(|t| t.as_str() != out).map(String::as_str);
        if m.domain.is_empty() && m.op_type == "Mul" && m.input.len() == 2 && other == Some(x_name) {
            a = Activation::Swish;
            cx.absorbed[j] = true;
            out = m.output.first().map(String::as_str).unwrap_or("");
        }
    }
    let id = cx.emit(i, Op::Activation(a), &[x.node])?;
    cx.bind_name(out, Val::Act(Act { node: id, ..x }));
    Ok(())
}

/// PRelu with a constant slope per channel (or one for all).
pub(super) fn prelu(cx: &mut Cx, i: usize) -> Result<()> {
    let x = cx.act_any(i, 0)?;
    let slope = cx.konst(i, 1, "slope")?;
    let alpha = row_constant(cx, i, &x, &slope)?;
    cx.spend(alpha.len(), i)?;
    let id = cx.emit(i, Op::PRelu { alpha: Array1::from_vec(alpha) }, &[x.node])?;
    cx.bind(i, 0, Val::Act(Act { node: id, ..x }))
}

pub(super) fn dropout(cx: &mut Cx, i: usize) -> Result<()> {
    cx.first_output_only(i)?;
    let x = cx.act_any(i, 0)?;
    let id = cx.emit(i, Op::Dropout, &[x.node])?;
    cx.bind(i, 0, Val::Act(Act { node: id, ..x }))
}

pub(super) fn identity(cx: &mut Cx, i: usize) -> Result<()> {
    let x = cx.act_any(i, 0)?;
    cx.bind(i, 0, Val::Act(x))
}

pub(super) fn fold_identity(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, true, |cx, i, ins| Ok((*first(cx.n(i), ins)?).clone()))
}

/// Casts to float change nothing (the IR computes in f32); token ids may be
/// cast between integer types.
pub(super) fn cast(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    let to = Attrs(n).int("to", 0)? as i32;
    let float = matches!(to, data_type::FLOAT | data_type::DOUBLE);
    if !(float || (cx.int_input && x.node == 0 && matches!(to, data_type::INT64 | data_type::INT32))) {
        return Err(unsupported_option(n, format!("to={}", data_type::name(to)), "casts to FLOAT, or of integer token ids to INT32/INT64"));
    }
    cx.bind(i, 0, Val::Act(x))
}

pub(super) fn fold_cast(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, true, |cx, i, ins| {
        let n = cx.n(i);
        let c = first(n, ins)?;
        Ok(match Attrs(n).int("to", 0)? as i32 {
            data_type::FLOAT | data_type::DOUBLE => Const::new(c.dims.clone(), Data::F32(c.f32s())),
            data_type::INT64 | data_type::INT32 => match &c.data {
                Data::I64(_) => (*c).clone(),
                Data::F32(v) => Const::new(c.dims.clone(), Data::I64(v.iter().map(|&x| x as i64).collect())),
            },
            t => {
                return Err(Error::Unsupported {
                    what: "ONNX Cast target".into(),
                    name: format!("{} in node {}", data_type::name(t), label(n)),
                    supported: "FLOAT, DOUBLE, INT32, INT64".into(),
                });
            }
        })
    })
}

/// A scalar constant input `k` of node `m` equal to `v` (to 1e-5).
fn scalar_is(cx: &Cx, m: &NodeProto, k: usize, v: f32) -> bool {
    matches!(cx.known(m, k), Some(Val::Const(c)) if c.len() == 1 && (c.f32s()[0] - v).abs() < 1e-5)
}

/// GELU as exporters without a Gelu op write it (PyTorch before opset 20):
/// `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)` from the Div (or a Mul by
/// 1/√2) at node `i`, each later node the previous one's only reader, either
/// operand order. Returns the nodes after `i` and the tensor the result binds to.
fn gelu_chain<'g>(cx: &Cx<'g>, i: usize) -> Option<([usize; 4], &'g str)> {
    let n = cx.n(i);
    let x = n.input.first()?.as_str();
    let ok = match n.op_type.as_str() {
        "Div" => scalar_is(cx, n, 1, std::f32::consts::SQRT_2),
        "Mul" => scalar_is(cx, n, 1, std::f32::consts::FRAC_1_SQRT_2),
        _ => false,
    };
    // The only reader of `cur`, an op of the default domain, whose other input satisfies `other`.
    let next = |cur: &str, op: &str, other: &dyn Fn(&NodeProto, usize) -> bool| -> Option<(usize, &'g str)> {
        let j = cx.sole_reader(cur)?;
        let m = &cx.nodes[j];
        let k = m.input.iter().position(|t| t == cur)?;
        let others_ok = (0..m.input.len()).filter(|&o| o != k).all(|o| other(m, o));
        (m.domain.is_empty() && m.op_type == op && m.input.len() == if op == "Erf" { 1 } else { 2 } && others_ok)
            .then(|| m.output.first().filter(|o| !o.is_empty()).map(|o| (j, o.as_str())))
            .flatten()
    };
    if !ok {
        return None;
    }
    let (e, t) = next(n.output.first()?.as_str(), "Erf", &|_, _| true)?;
    let (a, t) = next(t, "Add", &|m, o| scalar_is(cx, m, o, 1.0))?;
    let (m1, t) = next(t, "Mul", &|m, o| m.input[o] == x)?;
    let (m2, t) = next(t, "Mul", &|m, o| scalar_is(cx, m, o, 0.5))?;
    Some(([e, a, m1, m2], t))
}

/// Erf is mapped only inside a GELU ([`gelu_chain`]), which the Div before it converts.
pub(super) fn erf(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    Err(Error::Unsupported {
        what: format!("ONNX node {}", label(n)),
        name: "Erf outside a GELU".into(),
        supported: "Erf in GELU as exporters write it: Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)".into(),
    })
}

pub(super) fn arith<'g>(cx: &mut Cx<'g>, i: usize) -> Result<()> {
    let n = cx.n(i);
    let op = n.op_type.as_str();
    if let Some((rest, out)) = gelu_chain(cx, i) {
        let x = cx.act_any(i, 0)?;
        let id = cx.emit(i, Op::Activation(Activation::Gelu), &[x.node])?;
        rest.iter().for_each(|&j| cx.absorbed[j] = true);
        cx.bind_name(out, Val::Act(Act { node: id, ..x }));
        return Ok(());
    }
    let ins: Vec<Val> = (0..n.input.len()).map(|k| cx.input(i, k)).collect::<Result<Vec<_>>>()?.into_iter().flatten().cloned().collect();
    let acts: Vec<&Act> = ins.iter().filter_map(|v| if let Val::Act(a) = v { Some(a) } else { None }).collect();
    if acts.len() == ins.len() && (matches!(op, "Add" | "Sum") || (op == "Mul" && acts.len() == 2)) {
        let first = acts.first().ok_or_else(|| bad(format!("node {} has no inputs", label(n))))?;
        if acts.len() == 1 {
            let a = (*first).clone();
            return cx.bind(i, 0, Val::Act(a));
        }
        for a in &acts[1..] {
            if a.shape != first.shape
                || a.layout != first.layout
                || a.batch != first.batch
                || a.fold != first.fold
                || cx.ir_shape(a) != cx.ir_shape(first)
            {
                return Err(Error::Unsupported {
                    what: format!("inputs of ONNX node {}", label(n)),
                    name: format!("{:?} and {:?} per sample (broadcast or differently stored)", first.shape, a.shape),
                    supported: "inputs of the same shape, computed the same way (residual connections)".into(),
                });
            }
        }
        if op == "Mul" {
            // Two computed tensors multiplied element-wise (a Bidirectional's `mul` merge).
            let id = cx.emit(i, Op::Multiply, &[acts[0].node, acts[1].node])?;
            return cx.bind(i, 0, Val::Act(Act { node: id, ..Act::clone(first) }));
        }
        let ids: Vec<NodeId> = acts.iter().map(|a| a.node).collect();
        let model = Act::clone(first);
        let mut out: &'g str = n.output.first().map(String::as_str).unwrap_or("");
        let mut activation = Activation::Linear;
        if let Some(j) = cx.sole_reader(out) {
            let m = &cx.nodes[j];
            if let (true, Some(a), Some(o)) = (m.domain.is_empty(), activation_of(&m.op_type), m.output.first().filter(|o| !o.is_empty())) {
                activation = a;
                cx.absorbed[j] = true;
                out = o.as_str();
            }
        }
        let id = cx.emit(i, Op::Add { activation }, &ids)?;
        cx.bind_name(out, Val::Act(Act { node: id, ..model }));
        return Ok(());
    }
    let (x, c, x_first) = match (&ins[..], op) {
        ([Val::Act(a), Val::Const(c)], _) => (a.clone(), c.clone(), true),
        ([Val::Const(c), Val::Act(a)], "Add" | "Mul" | "Sub" | "Sum") => (a.clone(), c.clone(), false),
        _ => {
            return Err(Error::Unsupported {
                what: format!("inputs of ONNX node {}", label(n)),
                name: format!(
                    "{op} of {}",
                    ins.iter()
                        .map(|v| if matches!(v, Val::Act(_)) { "a computed tensor" } else { "a constant" })
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                supported: "Add/Sum/Mul of computed tensors of one shape; Add/Sub/Mul/Div of a computed tensor and a per-channel constant"
                    .into(),
            });
        }
    };
    if x.batch != 0 {
        return Err(Error::Unsupported {
            what: format!("inputs of ONNX node {}", label(n)),
            name: format!("{op} of a constant and a tensor with its batch axis moved to axis {}", x.batch),
            supported: "constants broadcast over batch-first tensors".into(),
        });
    }
    let v = row_constant(cx, i, &x, &c)?;
    let l = v.len();
    let (scale, shift): (Vec<f32>, Vec<f32>) = match (op, x_first) {
        ("Add", _) | ("Sum", _) => (vec![1.0; l], v),
        ("Sub", true) => (vec![1.0; l], v.iter().map(|c| -c).collect()),
        ("Sub", false) => (vec![-1.0; l], v),
        ("Mul", _) => (v, vec![0.0; l]),
        _ => (v.iter().map(|c| 1.0 / c).collect(), vec![0.0; l]),
    };
    cx.spend(2 * l, i)?;
    cx.rescales |= x.node == 0;
    let id = cx.emit(i, Op::BatchNorm { scale: Array1::from_vec(scale), shift: Array1::from_vec(shift) }, &[x.node])?;
    cx.bind(i, 0, Val::Act(Act { node: id, ..x }))
}

/// The constant `c`, broadcast over `x`, as one value per position of the
/// IR's last axis; fails unless it is the same for every row.
fn row_constant(cx: &mut Cx, i: usize, x: &Act, c: &Const) -> Result<Vec<f32>> {
    let n = cx.n(i);
    let full: Vec<usize> = std::iter::once(1).chain(x.shape.iter().copied()).collect();
    let cv = c.f32s();
    if c.dims.len() > full.len() {
        return Err(Error::shape(
            format!("constant of node {}", label(n)),
            format!("at most {} axes", full.len()),
            format!("{:?}", c.dims),
        ));
    }
    let off = full.len() - c.dims.len();
    let cst = strides(&c.dims);
    // Stride in the constant of each logical per-sample axis (0 = broadcast).
    let mut bst = vec![0usize; x.shape.len()];
    for (k, &d) in c.dims.iter().enumerate() {
        let pos = off + k;
        if d != 1 && (d != full[pos] || pos == 0) {
            return Err(Error::shape(
                format!("constant of node {}", label(n)),
                format!("a shape that broadcasts to [batch, {:?}]", x.shape),
                format!("{:?}", c.dims),
            ));
        }
        if pos > 0 && d != 1 {
            bst[pos - 1] = cst[k];
        }
    }
    let lst = strides(&x.shape);
    let map = cx.elem_map(x)?;
    let l = *cx.ir_shape(x).last().unwrap_or(&1);
    let mut row = Vec::with_capacity(l);
    for (p, &f) in map.iter().enumerate() {
        let v = cv.get(restride(f as usize, &lst, &bst)).copied().unwrap_or(f32::NAN);
        if p < l {
            row.push(v);
        } else if row[p % l].to_bits() != v.to_bits() {
            return Err(Error::Unsupported {
                what: format!("constant of ONNX node {}", label(n)),
                name: format!("shape {:?} on a tensor of {:?} per sample (varies along more than the channel axis)", c.dims, x.shape),
                supported: "scalars and per-channel constants".into(),
            });
        }
    }
    Ok(row)
}

pub(super) fn softmax(cx: &mut Cx, i: usize) -> Result<()> {
    let n = cx.n(i);
    let x = cx.act_any(i, 0)?;
    if x.batch != 0 {
        return Err(Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name: format!("Softmax of a tensor with its batch on axis {}", x.batch),
            supported: "batch-first tensors".into(),
        });
    }
    let r = x.shape.len() + 1;
    let axis = Attrs(n).int("axis", if cx.opset < 13 { 1 } else { -1 })?;
    let a = sample_axis(axis, r).ok_or_else(|| Error::Unsupported {
        what: format!("option of ONNX node {}", label(n)),
        name: format!("axis={axis}"),
        supported: "a softmax over non-batch axes".into(),
    })?;
    let total: usize = x.shape.iter().product();
    let ir = cx.ir_shape(&x);
    let last = *ir.last().unwrap_or(&0);
    // Elements sharing one softmax: all from axis `a` on (opset < 13), or axis `a`.
    let group: usize = if cx.opset < 13 { x.shape[a..].iter().product() } else { x.shape[a] };
    let whole = group == total && last == total;
    let last_axis = matches!(&x.layout, Layout::Axes(ax) if ax.last() == Some(&a)) && last == x.shape[a] && group == x.shape[a];
    if !(whole || last_axis) {
        return Err(Error::Unsupported {
            what: format!("ONNX node {}", label(n)),
            name: format!("Softmax over axis {axis} of {:?} per sample", x.shape),
            supported: "a softmax over the features of a vector, or over the axis stored last".into(),
        });
    }
    let id = cx.emit(i, Op::Activation(Activation::Softmax), &[x.node])?;
    cx.bind(i, 0, Val::Act(Act { node: id, ..x }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Net, attr_int, floats, run};
    use super::*;
    use crate::engine::model::InputKind;

    fn head(net: Net, from: &str, n: usize) -> Result<crate::engine::model::Model> {
        let eye: Vec<f32> = (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect();
        net.init(floats("D", &[n as i64, n as i64], &eye)).node("MatMul", &[from, "D"], &["y"], vec![]).load()
    }

    #[test]
    fn arithmetic_with_a_per_channel_constant_is_a_batch_norm() {
        let c = floats("c", &[2], &[2.0, 4.0]);
        for (op, const_first, want) in
            [("Sub", false, [-1.0, -3.0]), ("Sub", true, [1.0, 3.0]), ("Div", false, [0.5, 0.25]), ("Mul", true, [2.0, 4.0])]
        {
            let ins = if const_first { ["c", "x"] } else { ["x", "c"] };
            let m = head(Net::new(&[2]).init(c.clone()).node(op, &ins, &["a"], vec![]), "a", 2).unwrap();
            assert!(matches!(m.nodes[1].op, Op::BatchNorm { .. }), "{op}");
            assert_eq!(run(&m, &[1.0, 1.0]), want, "{op} (constant first: {const_first})");
        }
        // Div of a constant by a tensor has no IR form.
        let e = head(Net::new(&[2]).init(c.clone()).node("Div", &["c", "x"], &["a"], vec![]), "a", 2).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("Div of a constant and a computed tensor"), "{e}");
        // A constant that varies along more than the channel axis neither.
        let e = head(
            Net::new(&[2, 2]).init(floats("m", &[2, 2], &[1.0, 2.0, 3.0, 4.0])).node("Mul", &["x", "m"], &["a"], vec![]).node(
                "Flatten",
                &["a"],
                &["f"],
                vec![],
            ),
            "f",
            4,
        )
        .unwrap_err();
        assert!(e.to_string().contains("per-channel"), "{e}");
    }

    #[test]
    fn residual_adds_fuse_their_activation() {
        let m = head(
            Net::new(&[2]).node("Relu", &["x"], &["r"], vec![]).node("Add", &["x", "r"], &["s"], vec![]).node(
                "Tanh",
                &["s"],
                &["t"],
                vec![],
            ),
            "t",
            2,
        )
        .unwrap();
        assert!(m.nodes.iter().any(|n| matches!(n.op, Op::Add { activation: Activation::Tanh })), "{:?}", m.nodes);
        assert_eq!(m.nodes.len(), 4, "input, Relu, Add + Tanh, Dense");
    }

    #[test]
    fn gelu_written_out_with_erf_is_one_activation() {
        // PyTorch's nn.GELU at opset < 20: x · (1 + erf(x / √2)) · 0.5.
        let net = |sqrt2: f32, half: f32| {
            let net = Net::new(&[2])
                .init(floats("s", &[], &[sqrt2]))
                .node("Div", &["x", "s"], &["d"], vec![])
                .node("Erf", &["d"], &["e"], vec![])
                .init(floats("one", &[], &[1.0]))
                .node("Add", &["e", "one"], &["a"], vec![])
                .node("Mul", &["x", "a"], &["m"], vec![])
                .init(floats("half", &[], &[half]))
                .node("Mul", &["m", "half"], &["g"], vec![]);
            head(net, "g", 2)
        };
        let m = net(std::f32::consts::SQRT_2, 0.5).unwrap();
        assert!(matches!(m.nodes[1].op, Op::Activation(Activation::Gelu)), "{:?}", m.nodes);
        assert_eq!(m.nodes.len(), 3, "input, GELU, Dense");
        let y = run(&m, &[1.0, -2.0]);
        assert!((y[0] - 0.841_344_7).abs() < 1e-5 && (y[1] + 0.045_500_26).abs() < 1e-5, "{y:?}");
        // Another formula is not GELU: its Erf is refused, naming the pattern.
        let e = net(std::f32::consts::SQRT_2, 0.25).unwrap_err().to_string();
        assert!(e.contains("Erf") && e.contains("GELU"), "{e}");
    }

    #[test]
    fn softmax_and_cast_options() {
        let e = head(Net::new(&[2]).node("Softmax", &["x"], &["s"], vec![attr_int("axis", 0)]), "s", 2).unwrap_err();
        assert!(e.to_string().contains("axis=0"), "{e}");
        let m = head(Net::new(&[2]).node("Cast", &["x"], &["c"], vec![attr_int("to", data_type::DOUBLE as i64)]), "c", 2).unwrap();
        assert_eq!(m.nodes.len(), 2, "a cast to a float type is nothing");
        // A float input read only through a cast to integers holds token ids (tf2onnx's Embedding models)…
        let m = head(Net::new(&[2]).node("Cast", &["x"], &["c"], vec![attr_int("to", data_type::INT64 as i64)]), "c", 2).unwrap();
        assert_eq!(m.input.kind, InputKind::Tokens);
        // …but one also read as floats does not, and the cast is refused.
        let net = Net::new(&[2]).node("Cast", &["x"], &["c"], vec![attr_int("to", data_type::INT64 as i64)]).node(
            "Add",
            &["x", "c"],
            &["s"],
            vec![],
        );
        let e = head(net, "s", 2).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("to=INT64"), "{e}");
    }
}

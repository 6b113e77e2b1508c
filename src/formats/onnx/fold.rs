//! Constant folding: a node whose inputs are all constants is computed at
//! load time (exporters compute shapes with Shape/Gather/Concat/… subgraphs),
//! through the `fold` entry of its rule in the op table. The batch size stays
//! symbolic ([`BATCH`](super::convert::BATCH)); a scalar broadcast to a
//! run-time shape (zero initial states) stays a [`Val::Fill`].

use std::rc::Rc;

use super::convert::{Attrs, Cx, Val, is_default_domain, label};
use super::ops;
use super::proto::NodeProto;
use super::tensor::{Const, Data};
use crate::error::{Error, Result};

/// Constant inputs of a node (`None` for an absent optional input).
pub(super) type Consts = [Option<Rc<Const>>];

impl Cx<'_> {
    /// Folds node `i` when its rule can compute it from what is known; `Ok(false)` otherwise.
    pub(super) fn fold(&mut self, i: usize) -> Result<bool> {
        let n = self.n(i);
        if !is_default_domain(n) {
            return Ok(false);
        }
        let Some(fold) = ops::rule(&n.op_type).and_then(|r| r.fold) else { return Ok(false) };
        match fold(self, i)? {
            Some(v) => {
                self.bind(i, 0, v)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The usual fold: `compute` on constant inputs (charged to the budget);
    /// a layout op (`keeps_fill`) passes a filled tensor on unchanged.
    pub(super) fn fold_consts(
        &mut self,
        i: usize,
        keeps_fill: bool,
        compute: impl FnOnce(&mut Self, usize, &Consts) -> Result<Const>,
    ) -> Result<Option<Val>> {
        let n = self.n(i);
        if keeps_fill && let Some(Val::Fill(v)) = self.known(n, 0) {
            return Ok(Some(Val::Fill(*v)));
        }
        let mut ins = vec![];
        for t in &n.input {
            match self.vals.get(t.as_str()) {
                _ if t.is_empty() => ins.push(None),
                Some(Val::Const(c)) => ins.push(Some(c.clone())),
                // Computed at run time, or not yet known (derived from `Shape`).
                _ => return Ok(None),
            }
        }
        let c = compute(self, i, &ins)?;
        self.spend(c.len(), i)?;
        Ok(Some(Val::Const(Rc::new(c))))
    }
}

/// Input 0 of a folded node.
pub(super) fn first(n: &NodeProto, ins: &Consts) -> Result<Rc<Const>> {
    ins.first().cloned().flatten().ok_or_else(|| super::convert::bad(format!("node {} lacks input 0", label(n))))
}

pub(super) fn constant(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    cx.fold_consts(i, false, |cx, i, _| constant_value(cx.n(i)))
}

fn constant_value(n: &NodeProto) -> Result<Const> {
    let at = Attrs(n);
    if let Some(t) = at.tensor("value")? {
        return Const::from_proto(t, &format!("the value of node {}", label(n)));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_float") {
        return Ok(Const::new(vec![], Data::F32(vec![a.f])));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_floats") {
        return Ok(Const::new(vec![a.floats.len()], Data::F32(a.floats.clone())));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_int") {
        return Ok(Const::new(vec![], Data::I64(vec![a.i])));
    }
    if let Some(a) = n.attribute.iter().find(|a| a.name == "value_ints") {
        return Ok(Const::new(vec![a.ints.len()], Data::I64(a.ints.clone())));
    }
    Err(Error::Unsupported {
        what: "ONNX Constant".into(),
        name: format!("node {} (no value, value_float(s) or value_int(s))", label(n)),
        supported: "value, value_float, value_floats, value_int, value_ints".into(),
    })
}

/// `Expand` of a filled tensor, or of a scalar to a constant shape: a fill
/// (the shape is the reader's business).
pub(super) fn expand(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    let n = cx.n(i);
    Ok(match (cx.known(n, 0), cx.known(n, 1)) {
        (Some(Val::Fill(v)), _) => Some(Val::Fill(*v)),
        (Some(Val::Const(c)), Some(Val::Const(_))) if c.len() == 1 => Some(Val::Fill(c.f32s()[0])),
        _ => None,
    })
}

/// `ConstantOfShape` of a scalar value (0 by default): a constant when the
/// shape is known without the batch size (PyTorch's pads for `F.pad`), else a fill.
pub(super) fn constant_of_shape(cx: &mut Cx, i: usize) -> Result<Option<Val>> {
    let n = cx.n(i);
    let Some(Val::Const(shape)) = cx.known(n, 0) else { return Ok(None) };
    let value = match Attrs(n).tensor("value")? {
        None => Const::new(vec![1], Data::F32(vec![0.0])),
        Some(t) => Const::from_proto(t, &format!("the value of node {}", label(n)))?,
    };
    if value.len() != 1 {
        return Ok(None);
    }
    let dims: Option<Vec<usize>> = shape.i64s().and_then(|s| s.iter().map(|&d| usize::try_from(d).ok()).collect());
    let Some(dims) = dims else { return Ok(Some(Val::Fill(value.f32s()[0]))) };
    let len = crate::error::checked_elems(&format!("the shape of node {}", label(n)), &dims)?;
    cx.spend(len, i)?;
    let data = match value.data {
        Data::F32(v) => Data::F32(vec![v[0]; len]),
        Data::I64(v) => Data::I64(vec![v[0]; len]),
    };
    Ok(Some(Val::Const(Rc::new(Const::new(dims, data)))))
}

#[cfg(test)]
mod tests {
    use super::super::ops::testing::{Net, attr_int, attr_ints, floats, ints};
    use super::*;

    #[test]
    fn constants_and_fills() {
        // Shape → Gather → Concat builds the Reshape target [batch, 12] from the input's own shape.
        let m = Net::new(&[3, 4])
            .node("Shape", &["x"], &["s"], vec![])
            .init(ints("zero", &[], &[0]))
            .node("Gather", &["s", "zero"], &["n"], vec![attr_int("axis", 0)])
            .node("Constant", &[], &["twelve"], vec![attr_ints("value_ints", &[12])])
            .node("Unsqueeze", &["n"], &["n1"], vec![attr_ints("axes", &[0])])
            .node("Concat", &["n1", "twelve"], &["target"], vec![attr_int("axis", 0)])
            .node("Reshape", &["x", "target"], &["flat"], vec![])
            .init(floats("W", &[12, 2], &[0.5; 24]))
            .node("MatMul", &["flat", "W"], &["y"], vec![])
            .opset(11)
            .load()
            .unwrap();
        assert_eq!(m.input_len(), 12);
        let kinds: Vec<&str> = m.nodes.iter().map(|n| n.op.kind()).collect();
        assert_eq!(kinds[1..], ["Flatten", "Dense"], "nothing else is left of the shape arithmetic");
        // A Constant without a value is a typed error.
        let e = Net::new(&[3]).node("Constant", &[], &["c"], vec![]).node("Add", &["x", "c"], &["y"], vec![]).load().unwrap_err();
        assert!(matches!(&e, Error::Unsupported { what, .. } if what == "ONNX Constant"), "{e}");
    }
}

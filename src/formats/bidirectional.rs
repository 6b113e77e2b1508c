//! A bidirectional recurrent layer in the IR, as both importers build it
//! (Keras `Bidirectional`, ONNX `direction="bidirectional"`): two recurrent
//! nodes — the forward one, and the backward one with [`Recurrent::reverse`]
//! (steps last to first, each state output at its own step) — and their
//! merge: `Concat` (an IR `Concat`), `Sum` (`Add`), `Ave` (`Add` then × ½),
//! `Mul` (`Multiply`).
//! Each direction's units are units of their own (docs/ALGORITHMS.md).

use ndarray::Array1;

use crate::engine::model::{Activation, ModelBuilder, NodeId, Op, Recurrent};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    Concat,
    Sum,
    Ave,
    Mul,
}

/// One direction: its IR name, its layer (a `Recurrent`; `reverse` is set
/// here), and the node it reads (the shared input, or a view of it).
pub struct Direction {
    pub name: String,
    pub op: Op,
    pub input: NodeId,
}

/// Adds the forward and the backward node, then the merge named `name`
/// when one is given (else the caller merges, or reads one direction).
/// Returns (forward, backward, merged).
pub fn build(
    b: &mut ModelBuilder,
    name: &str,
    forward: Direction,
    backward: Direction,
    merge: Option<Merge>,
) -> Result<(NodeId, NodeId, Option<NodeId>)> {
    let directed = |op: Op, reverse: bool| match op {
        Op::Recurrent(r) => Op::Recurrent(Box::new(Recurrent { reverse, ..*r })),
        other => other,
    };
    let f = b.add(forward.name, directed(forward.op, false), &[forward.input])?;
    let k = b.add(backward.name, directed(backward.op, true), &[backward.input])?;
    let merged = match merge {
        None => None,
        Some(Merge::Concat) => Some(b.add(name, Op::Concat, &[f, k])?),
        Some(Merge::Sum) => Some(b.add(name, Op::Add { activation: Activation::Linear }, &[f, k])?),
        Some(Merge::Mul) => Some(b.add(name, Op::Multiply, &[f, k])?),
        Some(Merge::Ave) => {
            let sum = b.add(format!("{name}/sum"), Op::Add { activation: Activation::Linear }, &[f, k])?;
            let units = *b.shape(sum).last().unwrap_or(&0);
            let half = Op::BatchNorm { scale: Array1::from_elem(units, 0.5), shift: Array1::zeros(units) };
            let id = b.add(name, half, &[sum])?;
            b.declare_params(id, 0);
            Some(id)
        }
    };
    Ok((f, k, merged))
}

//! The op table: every ONNX op the loader maps, with the function that turns
//! it into IR layers and the one that computes it on constants. The list of
//! supported ops in error messages ([`SUPPORTED_OPS`]) is rendered from it at
//! compile time, so the two cannot drift apart.

use super::convert::{Cx, Val};
use super::fold;
use crate::error::Result;

mod conv;
mod conv1d;
mod dense;
mod elementwise;
mod recurrent;
mod sequence;
mod shape;
#[cfg(test)]
pub(super) mod testing;

/// Converts node `i` (on computed tensors) into IR layers and binds its outputs.
pub(super) type Layer = fn(&mut Cx, usize) -> Result<()>;
/// Computes node `i` from what is known at load time; `Ok(None)` leaves it to its [`Layer`].
pub(super) type Fold = fn(&mut Cx, usize) -> Result<Option<Val>>;

/// What deciding the input's layout needs to know of an op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Role {
    Other,
    /// Reads NCHW images (an input reaching it is an image).
    ChannelsFirst,
    /// Keeps its input's layout (looked through on the way to a [`Role::ChannelsFirst`] op).
    Elementwise,
}

pub(super) struct Rule {
    pub(super) op: &'static str,
    pub(super) layer: Option<Layer>,
    pub(super) fold: Option<Fold>,
    pub(super) role: Role,
    /// What of the op is mapped, for the supported list ("" = all of it).
    pub(super) note: &'static str,
}

impl Rule {
    const fn layer(op: &'static str, layer: Layer) -> Rule {
        Rule { op, layer: Some(layer), fold: None, role: Role::Other, note: "" }
    }
    /// An op that exists only on constants (computing shapes and initial states).
    const fn consts(op: &'static str, fold: Fold) -> Rule {
        Rule { op, layer: None, fold: Some(fold), role: Role::Other, note: "" }
    }
    const fn fold(self, fold: Fold) -> Rule {
        Rule { fold: Some(fold), ..self }
    }
    const fn note(self, note: &'static str) -> Rule {
        Rule { note, ..self }
    }
    const fn role(self, role: Role) -> Rule {
        Rule { role, ..self }
    }
}

use Role::{ChannelsFirst, Elementwise};

/// Every supported op, by family (the file that implements it).
const FAMILIES: &[&[Rule]] = &[
    &[
        Rule::layer("Gemm", dense::gemm).note("fused with a following bias Add and activation"),
        Rule::layer("MatMul", dense::matmul).note("fused with a following bias Add and activation"),
    ],
    &[
        Rule::layer("Conv", conv::conv).role(ChannelsFirst).note("group 1 or depthwise; fused with a following bias Add and activation"),
        Rule::layer("MaxPool", conv::pool).role(ChannelsFirst),
        Rule::layer("AveragePool", conv::pool).role(ChannelsFirst),
        Rule::layer("GlobalAveragePool", conv::global_pool).role(ChannelsFirst),
        Rule::layer("GlobalMaxPool", conv::global_pool).role(ChannelsFirst),
        Rule::layer("BatchNormalization", conv::batch_norm).role(ChannelsFirst),
        Rule::layer("Pad", conv::pad).role(ChannelsFirst).note("constant mode, zeros, of height and width"),
        Rule::layer("ReduceMean", conv::reduce).note("over all axes but the channels: a global pool"),
        Rule::layer("ReduceMax", conv::reduce).note("over all axes but the channels: a global pool"),
    ],
    &[
        Rule::layer("Add", elementwise::arith).role(Elementwise).note("of computed tensors of one shape, or a per-channel constant"),
        Rule::layer("Sum", elementwise::arith).note("of computed tensors of one shape, or a per-channel constant"),
        Rule::layer("Mul", elementwise::arith).role(Elementwise).note("of computed tensors of one shape, or a per-channel constant"),
        Rule::layer("Sub", elementwise::arith).role(Elementwise).note("by a per-channel constant"),
        Rule::layer("Div", elementwise::arith).role(Elementwise).note("by a per-channel constant"),
        Rule::layer("Relu", elementwise::activation).role(Elementwise),
        Rule::layer("Tanh", elementwise::activation).role(Elementwise),
        Rule::layer("Sigmoid", elementwise::activation).role(Elementwise).note("Mul(x, Sigmoid(x)): swish"),
        Rule::layer("Softplus", elementwise::activation).role(Elementwise),
        Rule::layer("LeakyRelu", elementwise::activation).role(Elementwise),
        Rule::layer("PRelu", elementwise::prelu).role(Elementwise).note("a constant slope per channel"),
        Rule::layer("Elu", elementwise::activation).role(Elementwise),
        Rule::layer("HardSigmoid", elementwise::activation).role(Elementwise).note("beta 0.5"),
        Rule::layer("Gelu", elementwise::activation).role(Elementwise),
        Rule::layer("Erf", elementwise::erf).note("in GELU: x·(1 + Erf(x/√2))/2"),
        Rule::layer("Softmax", elementwise::softmax),
        Rule::layer("Dropout", elementwise::dropout).role(Elementwise),
        Rule::layer("Identity", elementwise::identity).fold(elementwise::fold_identity).role(Elementwise),
        Rule::layer("Cast", elementwise::cast).fold(elementwise::fold_cast),
    ],
    &[
        Rule::layer("Flatten", shape::reshape).fold(shape::fold_reshape),
        Rule::layer("Reshape", shape::reshape).fold(shape::fold_reshape),
        Rule::layer("Squeeze", shape::reshape).fold(shape::fold_reshape),
        Rule::layer("Unsqueeze", shape::reshape).fold(shape::fold_reshape),
        Rule::layer("Transpose", shape::transpose).fold(shape::fold_transpose),
        Rule::layer("Shape", shape::shape).fold(shape::fold_shape),
        Rule::layer("Concat", conv::concat).fold(shape::fold_concat).note("of computed tensors along the channel axis; of constants"),
        Rule::consts("Constant", fold::constant),
        Rule::consts("Expand", fold::expand).note("of a scalar"),
        Rule::consts("ConstantOfShape", fold::constant_of_shape),
    ],
    &[
        Rule::layer("LSTM", recurrent::recurrent).note("zero initial state"),
        Rule::layer("GRU", recurrent::recurrent).note("zero initial state"),
        Rule::layer("RNN", recurrent::recurrent).note("zero initial state"),
        Rule::layer("Gather", sequence::gather)
            .fold(shape::fold_gather)
            .note("embedding; last step of a sequence; one direction of a final state"),
        Rule::layer("Slice", sequence::slice).fold(shape::fold_slice).note("last step of a sequence; one direction of a bidirectional one"),
        Rule::layer("Tile", sequence::tile).note("a vector repeated along a unit axis: RepeatVector"),
    ],
];

/// The rule for an op of the default domain.
pub(super) fn rule(op: &str) -> Option<&'static Rule> {
    FAMILIES.iter().flat_map(|f| f.iter()).find(|r| r.op == op)
}

/// The ops this loader maps, family by family; then those it only computes
/// on constants (at load time). Rendered from the table.
pub const SUPPORTED_OPS: &str = match std::str::from_utf8(&RENDERED) {
    Ok(s) => s,
    Err(_) => panic!("op names are UTF-8"),
};

const RENDERED: [u8; render(&mut [])] = {
    let mut out = [0; render(&mut [])];
    render(&mut out);
    out
};

/// Writes the supported list into `out` (when it is long enough) and
/// returns its length. Ops with one note in a row share it: "Sub, Mul, Div (…)".
const fn render(out: &mut [u8]) -> usize {
    let mut at = 0;
    let mut f = 0;
    while f < FAMILIES.len() {
        at = list(out, at, FAMILIES[f], true, if f == 0 { "" } else { "; " });
        f += 1;
    }
    let mut f = 0;
    let mut sep = "; on constants only: ";
    while f < FAMILIES.len() {
        let before = at;
        at = list(out, at, FAMILIES[f], false, sep);
        if at != before {
            sep = ", ";
        }
        f += 1;
    }
    at
}

/// Lists the ops of `rules` that have (`layers`) or lack a layer, after `sep`.
const fn list(out: &mut [u8], mut at: usize, rules: &[Rule], layers: bool, sep: &str) -> usize {
    let mut k = 0;
    let mut first = true;
    while k < rules.len() {
        let r = &rules[k];
        if r.layer.is_some() == layers {
            at = put(out, at, if first { sep } else { ", " });
            first = false;
            at = put(out, at, r.op);
            let next_shares = k + 1 < rules.len() && (rules[k + 1].layer.is_some() == layers) && same(rules[k + 1].note, r.note);
            if !r.note.is_empty() && !next_shares {
                at = put(out, at, " (");
                at = put(out, at, r.note);
                at = put(out, at, ")");
            }
        }
        k += 1;
    }
    at
}

const fn put(out: &mut [u8], at: usize, s: &str) -> usize {
    let b = s.as_bytes();
    if out.len() >= at + b.len() {
        let mut j = 0;
        while j < b.len() {
            out[at + j] = b[j];
            j += 1;
        }
    }
    at + b.len()
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut j = 0;
    while j < a.len() {
        if a[j] != b[j] {
            return false;
        }
        j += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_once_and_listed() {
        let rules: Vec<&Rule> = FAMILIES.iter().flat_map(|f| f.iter()).collect();
        for (k, r) in rules.iter().enumerate() {
            assert!(rules[..k].iter().all(|o| o.op != r.op), "{} twice", r.op);
            assert!(r.layer.is_some() || r.fold.is_some(), "{} does nothing", r.op);
            assert!(SUPPORTED_OPS.contains(r.op), "{} not listed", r.op);
            assert_eq!(rule(r.op).map(|f| f.op), Some(r.op));
        }
        assert!(rule("FancyOp").is_none());
    }

    #[test]
    fn the_list_reads_well() {
        assert!(SUPPORTED_OPS.starts_with("Gemm, MatMul (fused with a following bias Add and activation); Conv ("), "{SUPPORTED_OPS}");
        assert!(
            SUPPORTED_OPS.contains(
                "Add, Sum, Mul (of computed tensors of one shape, or a per-channel constant), Sub, Div (by a per-channel constant), Relu"
            ),
            "{SUPPORTED_OPS}"
        );
        assert!(SUPPORTED_OPS.contains("LSTM, GRU, RNN (zero initial state), Gather (embedding"), "{SUPPORTED_OPS}");
        assert!(SUPPORTED_OPS.ends_with("; on constants only: Constant, Expand (of a scalar), ConstantOfShape"), "{SUPPORTED_OPS}");
        assert!(SUPPORTED_OPS.contains("Concat (of computed tensors along the channel axis; of constants)"), "{SUPPORTED_OPS}");
    }
}

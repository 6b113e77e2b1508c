//! ONNX models (`.onnx`, a protobuf `ModelProto`), as written by PyTorch's
//! exporter, tf2onnx and `onnx.helper`.
//!
//! - Decoding: hand-written `prost` messages for the subset of `onnx.proto`
//!   needed ([`proto`]); counts of nodes, attributes and initializers are
//!   checked on the wire before decoding, every tensor's declared size
//!   against its stored bytes, and the weights materialised into the IR
//!   against the file size (shared or broadcast weights cannot blow up).
//! - Graph: one float input `[batch, …]` with fixed sizes besides the batch,
//!   one output `[batch, classes]`. Nodes may come in any order (they are
//!   sorted; a cycle or a read of an undefined tensor is an error); only the
//!   nodes the output depends on are converted.
//! - Layout: the IR is channels-last. An image input `N×C×H×W` (it reaches a
//!   Conv, pooling or BatchNormalization through element-wise ops, or looks
//!   like one: C ≤ 4 < H, W) is presented to the engine as `H×W×C`: feed it
//!   NHWC data (for one channel the bytes are the same, so the bundled
//!   `N×28×28` images feed both kinds). Conv kernels are transposed from
//!   (out, in, kh, kw) to (kh, kw, in, out); a Flatten of a channels-first
//!   tensor reorders the next Dense layer's rows, so the IR computes the ONNX
//!   function. tf2onnx's NHWC↔NCHW Transposes (or Reshapes, for one channel)
//!   cost nothing. See `convert` for the details.
//! - Sequences: integer inputs are token ids (`InputKind::Tokens`); Gather
//!   from a constant table is an Embedding; LSTM (ONNX gates i,o,f,c → Keras
//!   i,f,c,o), GRU (z,r,h; `linear_before_reset=1` ≡ Keras `reset_after`) and
//!   RNN become the IR's recurrent layer (forward direction, zero initial
//!   state, no peepholes/clip). Time-major transposes are tracked; a Slice or
//!   Gather of the last step of `Y` makes the layer return its last state;
//!   tf2onnx's TimeDistributed (`[N·T, F]` reshapes) maps to a per-step Dense.
//! - Ops: [`SUPPORTED_OPS`]; anything else is `Error::Unsupported` naming the
//!   op and the node.

mod convert;
pub mod export;
mod fold;
mod graph;
mod layout;
mod ops;
pub mod proto;
mod tensor;

pub use ops::SUPPORTED_OPS;

use crate::engine::model::Model;
use crate::error::{Error, Result};

/// Largest `.onnx` file accepted (1 GiB, like a Keras weights file).
pub const MAX_ONNX_BYTES: u64 = 1 << 30;

/// Loads an ONNX model. `name` becomes the model name.
pub fn load_onnx(bytes: &[u8], name: &str) -> Result<Model> {
    if bytes.len() as u64 > MAX_ONNX_BYTES {
        return Err(Error::too_large("ONNX file size", bytes.len() as u64, MAX_ONNX_BYTES));
    }
    let m = proto::decode(bytes)?;
    let graph = m.graph.as_ref().ok_or_else(|| Error::format("ONNX", "the file has no graph (is it an ONNX model?)"))?;
    let opset = m
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or_else(|| Error::format("ONNX", "the model imports no operator set for the default domain (opset_import)"))?;
    if !(1..=1000).contains(&opset) {
        return Err(Error::format("ONNX", format!("opset version {opset} is not a valid ONNX opset")));
    }
    convert::build(graph, opset, name, bytes.len())
}

/// Does `bytes` start like an ONNX `ModelProto` (field 1 `ir_version`, a small
/// varint, as every exporter writes first)?
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    matches!(bytes, [0x08, v, ..] if (1..=20).contains(v))
}

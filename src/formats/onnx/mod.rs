//! ONNX models (`.onnx`, a protobuf `ModelProto`), as written by PyTorch's
//! exporter, tf2onnx and `onnx.helper`, read into the IR; and written back
//! out ([`export`]).
//!
//! `torch.onnx.export` itself (PyTorch 1.13, TorchScript exporter, opset 17) is
//! tested on `tests/fixtures/torch` (`tools/make_torch_fixtures.py`,
//! `tests/torch_fixtures.rs`): MLPs flattened by `view`, Conv2d/BatchNorm2d/pools,
//! LeakyReLU/PReLU/ELU/SiLU/Hardsigmoid, GELU (Erf form), `F.pad`, depthwise conv,
//! adaptive/global pools, Conv1d with the 1-D pools on `[N, C, L]`, and one-layer
//! LSTM/GRU/RNN read by `out[:, -1]` or `h_n[-1]` — bidirectional ones by `out[:, -1]`
//! or `cat([h_n[-2], h_n[-1]])` — load.
//!
//! # Files
//! - [`proto`]: hand-written `prost` messages for the subset of `onnx.proto`
//!   needed (no code generation); node, attribute and initializer counts are
//!   checked on the wire before decoding.
//! - `tensor.rs`: initializers and constants, declared sizes checked against
//!   the stored bytes.
//! - `graph.rs`: one float (or token-id) input `[batch, …]` with fixed sizes
//!   besides the batch, one output. Nodes may come in any order: they are
//!   sorted (a cycle, or a read of a tensor nothing defines, is an error) and
//!   only those the output depends on are converted.
//! - `layout.rs`: the layout record below, and the shape algebra every op
//!   uses (axis normalisation, strides, index iteration, slice ranges).
//! - `fold.rs`: constant folding. `convert.rs`: the conversion context.
//! - `ops/`: the op table (`ops/mod.rs`) and one file per family: `dense`
//!   (Gemm, MatMul, bias/activation fusion), `conv` (Conv, pooling,
//!   BatchNormalization, padding), `elementwise` (arithmetic, activations,
//!   GELU written out with Erf, Softmax, Identity/Dropout/Cast), `shape` (Reshape, Flatten, Transpose,
//!   Squeeze/Unsqueeze, Shape, Concat, and the constant versions of Gather
//!   and Slice), `conv1d` (Conv and pooling on `[N, C, L]`), `recurrent`
//!   (LSTM/GRU/RNN, one direction or both), `sequence` (embeddings, last
//!   step, Tile).
//!
//! # Layout
//! The IR is per sample and channels-last; ONNX tensors carry the batch and
//! images are channels-first. Every computed tensor carries its ONNX
//! (logical) shape and how the IR node stores it: an axis permutation, or an
//! element order after a Flatten, plus where the batch axis is (time-major
//! sequences) and any leading axes merged into the batch (tf2onnx's
//! TimeDistributed: `[N·T, F]` reshapes, then a per-step Dense). Transposes,
//! Squeeze/Unsqueeze and unit-axis reshapes only update that record, so
//! tf2onnx's NHWC↔NCHW Transposes cost nothing; Conv and pooling need their
//! input stored channels-last; a Flatten of a channels-first tensor becomes an
//! IR Flatten whose element order the next Dense absorbs by permuting its
//! kernel rows. Conv kernels are transposed from (out, in, kh, kw) to
//! (kh, kw, in, out). So the IR computes the ONNX function.
//!
//! **Inputs**: an image input `N×C×H×W` (it reaches a Conv, pooling or
//! BatchNormalization through element-wise ops, or looks like one: C ≤ 4 <
//! H, W) is presented to the engine channels-last, `H×W×C`: feed it NHWC data
//! (for one channel the bytes are the same, so the bundled `N×28×28` images
//! feed both kinds). A sequence input `N×C×L` reaching a Conv is the image
//! `C×L×1`, as stored (see `ops/conv1d.rs`). Integer inputs are token ids (`InputKind::Tokens`),
//! as is a float input read only through Casts to integers (tf2onnx's Keras Embedding models),
//! and a Gather from a constant table is an Embedding.
//!
//! # Folding and fusion
//! Constant-only subgraphs (Shape/Gather/Concat/Slice/Cast/Reshape…) are
//! folded at load time, with the batch size kept symbolic;
//! `Expand`/`ConstantOfShape` of a scalar to a shape that holds the batch
//! size (zero initial states) stay symbolic fills; to a known shape
//! (PyTorch's `F.pad` pads) `ConstantOfShape` is a constant. Biases and activations after Gemm/MatMul/Conv/Add fuse into the IR
//! layer; per-channel constant Add/Sub/Mul/Div become a BatchNorm. ONNX
//! `pads` map to the IR's `Same` when they give its geometry, else
//! `Padding::Explicit`; `ceil_mode` becomes extra trailing padding.
//!
//! # Sequences
//! LSTM (ONNX gates i,o,f,c → the IR's Keras order i,f,c,o), GRU (z,r,h;
//! `linear_before_reset=1` ≡ Keras `reset_after`) and RNN map to the IR's
//! recurrent layer: zero initial state, no peepholes/clip; forward, reverse,
//! or bidirectional as a Keras Bidirectional is (`ops/recurrent.rs` says which
//! reads of `Y` and `Y_h` load). A Slice or Gather of the last step of `Y` makes the layer
//! return its last state; a Gather of index 0 or −1 on an axis of size 1
//! (PyTorch's `h_n[-1]` of `Y_h`) only drops that axis. A `Tile` of such a vector along a unit axis by
//! constant repeats (tf2onnx's Keras RepeatVector: Unsqueeze + Tile) becomes
//! a `RepeatVector`; any other Tile is a typed error.
//!
//! # Limits
//! Weights and folded constants materialised into the IR are capped by the
//! file size (shared or broadcast weights cannot multiply memory), as are the
//! sum of activation sizes and the layout bookkeeping. Ops outside
//! [`SUPPORTED_OPS`] are `Error::Unsupported` naming the op and the node;
//! options an op's converter cannot express are `Error::Unsupported` naming
//! the option; malformed files are `Error::Format`. Nothing panics.
//!
//! # Adding an op
//! Write its converter, `fn(&mut Cx, usize) -> Result<()>` (read inputs
//! with `cx.act`/`cx.konst`, emit IR layers with `cx.emit`, bind outputs with
//! `cx.bind`), in the family file it belongs to under `ops/`; if it can also
//! be computed on constants, a fold, `fn(&mut Cx, usize) -> Result<Option<Val>>`
//! (usually `cx.fold_consts(..)`). Add one row to `FAMILIES` in `ops/mod.rs`:
//! `Rule::layer("Op", family::convert)`, with `.fold(..)`, `.role(..)` (if it
//! reads images, or is element-wise) and `.note(..)` (if only part of it is
//! mapped). The supported list in errors follows from that row. Test it in
//! the family file's `tests` module with a small graph from `ops/testing.rs`
//! (`Net::new(&[..]).node(..).load()`), and, if an exporter writes it, with
//! a fixture from `tools/make_onnx_fixtures.py` in `tests/onnx_fixtures.rs`.

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

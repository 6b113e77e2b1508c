//! The model IR: a DAG of layers in topological order (a node only reads
//! earlier nodes, so a cycle cannot be expressed). Every format loads into
//! this; decomposition and composition work on it. Shapes are per sample
//! (the batch axis is implicit): images `[H, W, C]` (NHWC), vectors `[F]`.

mod backward;
mod build;
mod forward;
mod fuse;
mod recurrent;

pub use backward::{Constants, GatedNet, Gating, Tape};
pub use build::ModelBuilder;
pub use forward::{DEFAULT_BATCH, ForwardOutput, Masks, Moments, Record, Recording, UnitMask, forward, forward_with};
pub use recurrent::{Cell, Recurrent};

use ndarray::{Array1, Array2, Array4};
use serde::{Deserialize, Serialize};

use crate::engine::kernels::{self, PoolKind};

pub type NodeId = usize;

/// Elementwise activations (and softmax, per row). The parameterised ones
/// carry their constant: leaky ReLU's negative slope, ELU's α, hard
/// sigmoid's slope (Keras 2 and ONNX 0.2, Keras 3 1/6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Linear,
    Relu,
    Tanh,
    Sigmoid,
    Softmax,
    LeakyRelu(f32),
    Elu(f32),
    /// Exact: x·Φ(x).
    Gelu,
    /// The tanh approximation.
    GeluTanh,
    /// x·sigmoid(x) (SiLU).
    Swish,
    Softplus,
    HardSigmoid(f32),
}

impl Activation {
    pub const SUPPORTED: &'static str = "linear, relu, tanh, sigmoid, softmax, leaky_relu, elu, gelu, swish (silu), softplus, hard_sigmoid";

    /// An activation by the name Keras and PyTorch give it, with their
    /// default constants (leaky_relu 0.2, elu 1). `hard_sigmoid` is not
    /// here: its slope depends on the Keras version (the Keras reader decides).
    pub fn parse(name: &str) -> crate::Result<Self> {
        Ok(match name {
            "linear" | "identity" | "none" => Activation::Linear,
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "softmax" => Activation::Softmax,
            "leaky_relu" => Activation::LeakyRelu(0.2),
            "elu" => Activation::Elu(1.0),
            "gelu" => Activation::Gelu,
            "swish" | "silu" => Activation::Swish,
            "softplus" => Activation::Softplus,
            other => {
                return Err(crate::Error::Unsupported { what: "activation".into(), name: other.into(), supported: Self::SUPPORTED.into() });
            }
        })
    }

    /// Its constant must be a finite number (a file could say anything).
    pub fn is_valid(self) -> bool {
        match self {
            Activation::LeakyRelu(a) | Activation::Elu(a) | Activation::HardSigmoid(a) => a.is_finite(),
            _ => true,
        }
    }

    /// One value through an elementwise activation. Softmax is not
    /// elementwise: it passes values through, and layers that call this
    /// (recurrent cells) refuse it at construction.
    pub fn at(self, x: f32) -> f32 {
        use kernels::smooth;
        match self {
            Activation::Linear | Activation::Softmax => x,
            Activation::Relu => x.max(0.0),
            Activation::Tanh => kernels::activation::tanh(x),
            Activation::Sigmoid => kernels::activation::sigmoid(x),
            Activation::LeakyRelu(a) => smooth::leaky_relu(x, a),
            Activation::Elu(a) => smooth::elu(x, a),
            Activation::Gelu => smooth::gelu(x),
            Activation::GeluTanh => smooth::gelu_tanh(x),
            Activation::Swish => smooth::swish(x),
            Activation::Softplus => smooth::softplus(x),
            Activation::HardSigmoid(a) => smooth::hard_sigmoid(x, a),
        }
    }

    /// Applies an elementwise activation in place (softmax passes values
    /// through, as in [`Self::at`]).
    pub fn apply_elementwise(self, v: &mut [f32]) {
        match self {
            Activation::Linear | Activation::Softmax => {}
            // A select, not `f32::max` (which wasm lowers to an fmaxf call per element).
            Activation::Relu => v.iter_mut().for_each(|x| *x = if *x > 0.0 { *x } else { 0.0 }),
            Activation::Tanh => kernels::activation::tanh_slice(v),
            Activation::Sigmoid => kernels::activation::sigmoid_slice(v),
            a => v.iter_mut().for_each(|x| *x = a.at(*x)),
        }
    }

    /// Applies in place to rows of length `width` (softmax is per row).
    pub fn apply(self, v: &mut [f32], width: usize) {
        match self {
            Activation::Softmax => v.chunks_exact_mut(width).for_each(softmax_row),
            a => a.apply_elementwise(v),
        }
    }

    /// For ReLU-like activations (a unit is "on" when its output is > 0 and
    /// nearly linear then): the slope where it is off — 0 for ReLU and the
    /// smooth ones (ELU, GELU, swish, softplus flatten out), α for leaky
    /// ReLU. `None` for squashing and linear activations.
    pub fn off_slope(self) -> Option<f32> {
        match self {
            Activation::Relu | Activation::Elu(_) | Activation::Gelu | Activation::GeluTanh | Activation::Swish | Activation::Softplus => {
                Some(0.0)
            }
            Activation::LeakyRelu(a) => Some(a),
            _ => None,
        }
    }
}

pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    Valid,
    /// TensorFlow "same": output = ⌈in / stride⌉, any odd padding at the bottom/right.
    Same,
    /// Zero padding `[top, left, bottom, right]` (ONNX `pads`); each smaller than the window.
    Explicit([usize; 4]),
}

impl Padding {
    /// The window sweep over an `h × w × c` input, or `None` when it does not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn geometry(
        self,
        h: usize,
        w: usize,
        c: usize,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
    ) -> Option<crate::engine::kernels::Conv2dGeom> {
        use crate::engine::kernels::Conv2dGeom;
        match self {
            Padding::Valid => Conv2dGeom::new([h, w, c], [kh, kw], [sh, sw], false),
            Padding::Same => Conv2dGeom::new([h, w, c], [kh, kw], [sh, sw], true),
            Padding::Explicit(p) => Conv2dGeom::explicit(h, w, c, kh, kw, sh, sw, p),
        }
    }
}

/// One layer. Weights use Keras layouts: Dense kernel (in, out), Conv2D kernel
/// (kh, kw, in, out). BatchNorm is stored folded for inference.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Input,
    /// Applies to the last axis (so on `[T, F]` it is a TimeDistributed Dense).
    Dense {
        kernel: Array2<f32>,
        bias: Array1<f32>,
        activation: Activation,
    },
    Conv2D {
        kernel: Array4<f32>,
        bias: Array1<f32>,
        strides: [usize; 2],
        padding: Padding,
        activation: Activation,
    },
    /// Each input channel `c` convolved with its own `M` filters (Keras
    /// DepthwiseConv2D, ONNX Conv with `group` = C): output channel `c·M + m`.
    /// Kernel (kh, kw, C, M) as Keras stores it; bias per output channel.
    DepthwiseConv2D {
        kernel: Array4<f32>,
        bias: Array1<f32>,
        strides: [usize; 2],
        padding: Padding,
        activation: Activation,
    },
    Pool2D {
        kind: PoolKind,
        size: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
    },
    /// Average or max over all positions of `[H, W, C]`: `[C]`.
    GlobalPool(PoolKind),
    Flatten,
    /// The same values in another shape (row-major order kept): the 1-D
    /// layers run as 2-D ones of height 1 between a `[T, C]` → `[1, T, C]`
    /// reshape and its inverse.
    Reshape {
        shape: Vec<usize>,
    },
    /// Zeros around an image `[H, W, C]`: `[top, left, bottom, right]` rows/columns.
    ZeroPad2D {
        pads: [usize; 4],
    },
    /// Its inputs side by side along the last axis (all other axes alike).
    Concat,
    /// Element-wise sum of its inputs (residual connections), then an activation.
    Add {
        activation: Activation,
    },
    /// Element-wise product of its two inputs (a Bidirectional's `mul` merge,
    /// Keras `Multiply`).
    Multiply,
    /// `y = x * scale + shift` per channel (last axis): inference BatchNorm folded.
    BatchNorm {
        scale: Array1<f32>,
        shift: Array1<f32>,
    },
    Activation(Activation),
    /// Leaky ReLU with learned slopes: `x > 0 ? x : α·x`, α per channel (last
    /// axis) or per value of the node (`alpha[u % alpha.len()]`).
    PRelu {
        alpha: Array1<f32>,
    },
    /// Identity at inference; kept so the diagram matches the source model.
    Dropout,
    /// Token ids `[T]` → vectors `[T, D]`: row `id` of `table` (vocab × D).
    Embedding {
        table: Array2<f32>,
    },
    /// `[F]` → `[times, F]`: the vector once per step (Keras RepeatVector; the
    /// bridge from an encoder's last state to a decoder's input sequence).
    RepeatVector {
        times: usize,
    },
    /// SimpleRNN / LSTM / GRU over `[T, F]`: `[T, U]` with `return_sequences`,
    /// else the last state `[U]`. Boxed: it is much larger than the other ops.
    Recurrent(Box<Recurrent>),
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Dense { .. } => "Dense",
            Op::Conv2D { .. } => "Conv2D",
            Op::DepthwiseConv2D { .. } => "DepthwiseConv2D",
            Op::Pool2D { kind: PoolKind::Max, .. } => "MaxPool2D",
            Op::Pool2D { kind: PoolKind::Avg, .. } => "AvgPool2D",
            Op::GlobalPool(PoolKind::Avg) => "GlobalAveragePooling2D",
            Op::GlobalPool(PoolKind::Max) => "GlobalMaxPooling2D",
            Op::Flatten => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::ZeroPad2D { .. } => "ZeroPadding2D",
            Op::Concat => "Concatenate",
            Op::Add { .. } => "Add",
            Op::Multiply => "Multiply",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Activation(_) => "Activation",
            Op::PRelu { .. } => "PReLU",
            Op::Dropout => "Dropout",
            Op::Embedding { .. } => "Embedding",
            Op::RepeatVector { .. } => "RepeatVector",
            Op::Recurrent(r) => r.cell.kind(),
        }
    }

    /// The activation applied at the end of this op, if it has one.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Op::Dense { activation, .. }
            | Op::Conv2D { activation, .. }
            | Op::DepthwiseConv2D { activation, .. }
            | Op::Add { activation } => Some(*activation),
            Op::Activation(a) => Some(*a),
            _ => None,
        }
    }

    pub fn params(&self) -> usize {
        match self {
            Op::Dense { kernel, bias, .. } => kernel.len() + bias.len(),
            Op::Conv2D { kernel, bias, .. } | Op::DepthwiseConv2D { kernel, bias, .. } => kernel.len() + bias.len(),
            Op::BatchNorm { scale, shift } => scale.len() + shift.len(),
            Op::PRelu { alpha } => alpha.len(),
            Op::Embedding { table } => table.len(),
            Op::Recurrent(r) => r.params(),
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Output shape per sample.
    pub shape: Vec<usize>,
    /// The parameter count the source file declares, when it differs from
    /// the IR's (BatchNorm stores 4 numbers per channel where the IR folds
    /// them into 2; a layer without bias gets a zero bias here).
    pub source_params: Option<usize>,
}

impl Node {
    pub fn params(&self) -> usize {
        self.source_params.unwrap_or_else(|| self.op.params())
    }

    /// Values per sample (the product of the shape).
    #[allow(clippy::len_without_is_empty)] // a node always has a shape; "empty" has no meaning
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Image,
    Tokens,
    Vectors,
}

/// What the model expects: per-sample shape, what the values mean, and what
/// decides the map from stored data to model input (`engine::data::input_map`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub shape: Vec<usize>,
    pub kind: InputKind,
    /// Model input = stored × scale + offset, when given (`--scale`, a plan,
    /// the page); `None` leaves each part to the input rule. Files saved
    /// before the rule always carry both (their map then stays as it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f32>,
    /// The model starts with its own `Rescaling` / `Normalization`: integer
    /// images are fed raw.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rescales: bool,
}

impl InputSpec {
    /// A spec with the map left to the input rule.
    pub fn new(shape: Vec<usize>, kind: InputKind) -> Self {
        InputSpec { shape, kind, scale: None, offset: None, rescales: false }
    }
}

/// A validated model. Build one with [`ModelBuilder`]; fields are read-only by
/// convention (mutating them bypasses validation).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub name: String,
    pub nodes: Vec<Node>,
    pub input: InputSpec,
    pub class_names: Vec<String>,
    /// The node whose pre-activation outputs are the class logits.
    pub head: NodeId,
}

impl Model {
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
    /// Classified items per sample: 1, or T for a per-step (many-to-many) head.
    pub fn out_steps(&self) -> usize {
        self.nodes[self.head].len() / self.classes()
    }
    pub fn input_len(&self) -> usize {
        self.input.shape.iter().product()
    }
    pub fn params(&self) -> usize {
        self.nodes.iter().map(Node::params).sum()
    }

    /// Whether the model's own leading affine map (node 1: a Keras `Rescaling` or
    /// `Normalization`, or an ONNX Add/Sub/Mul/Div by constants, on the input;
    /// `leads_with_scaling` says the loader saw one) was made for raw 0–255
    /// values: read as (x − m) / σ per channel, it expects values up to m + σ,
    /// and beyond 2 they are not [0, 1] data. `Rescaling(1/255)` (σ = 255): yes;
    /// a `Normalization` adapted on [0, 1] images (m ≈ 0.1, σ ≈ 0.3), or
    /// `Rescaling(2, offset=−1)`: no — those want the input rule's 1/255.
    pub fn scales_raw_pixels(&self, leads_with_scaling: bool) -> bool {
        match self.nodes.get(1) {
            Some(Node { op: Op::BatchNorm { scale, shift }, inputs, .. }) if leads_with_scaling && inputs == &[0] => {
                scale.iter().zip(shift).any(|(&s, &t)| s != 0.0 && -t / s + 1.0 / s.abs() > 2.0)
            }
            _ => false,
        }
    }

    /// Where output unit `u` of a routing node (one that only moves values:
    /// Flatten, Reshape, Dropout, ZeroPad2D, Concat) comes from: `(input index, unit)`,
    /// or `None` for a padding zero. `None` too for nodes that compute.
    pub fn route(&self, id: NodeId, u: usize) -> Option<(usize, usize)> {
        let node = &self.nodes[id];
        match &node.op {
            Op::Flatten | Op::Reshape { .. } | Op::Dropout => Some((0, u)),
            Op::ZeroPad2D { pads: [t, l, _, _] } => {
                let &[h, w, c] = self.nodes[node.inputs[0]].shape.as_slice() else { return None };
                let ow = node.shape[1];
                let (p, ch) = (u / c, u % c);
                let (y, x) = ((p / ow).checked_sub(*t)?, (p % ow).checked_sub(*l)?);
                (y < h && x < w).then_some((0, (y * w + x) * c + ch))
            }
            Op::Concat => {
                let width = *node.shape.last()?;
                let (pos, mut ch) = (u / width, u % width);
                for (k, &i) in node.inputs.iter().enumerate() {
                    let c = *self.nodes[i].shape.last()?;
                    if ch < c {
                        return Some((k, pos * c + ch));
                    }
                    ch -= c;
                }
                None
            }
            _ => None,
        }
    }

    /// Nodes whose units decomposition tracks: hidden outputs of ReLU-like
    /// activations (ReLU, leaky ReLU, ELU, GELU, swish, softplus: see
    /// [`Activation::off_slope`]) — Dense and Conv2D units, Add outputs,
    /// standalone activations — and recurrent layers. A unit's activity bit is
    /// "output > 0" (for ReLU: pre-activation > 0, as in the papers; for the
    /// others the same sign rule); removing a unit forces its output to 0.
    /// The head is never tracked.
    pub fn tracked(&self) -> Vec<NodeId> {
        (0..self.head)
            .filter(|&i| {
                let op = &self.nodes[i].op;
                op.activation().and_then(Activation::off_slope).is_some() || matches!(op, Op::Recurrent(_) | Op::PRelu { .. })
            })
            .collect()
    }

    /// Units a tracked node has per sample (its mask and activity-record
    /// width): its output, except that a recurrent layer has one unit per
    /// hidden unit and time step (`T × U`, step-major) even when it returns
    /// only the last state.
    pub fn units(&self, id: NodeId) -> usize {
        match &self.nodes[id].op {
            Op::Recurrent(r) => self.steps(id) * r.units,
            _ => self.nodes[id].len(),
        }
    }

    /// Time steps of a recurrent node (the length of its input sequence).
    pub fn steps(&self, id: NodeId) -> usize {
        self.nodes[id].inputs.first().map_or(1, |&i| self.nodes[i].shape[0])
    }

    pub fn is_recurrent(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n.op, Op::Recurrent(_)))
    }
}

#[cfg(test)]
mod tests;

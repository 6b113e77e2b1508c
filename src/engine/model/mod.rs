//! The model IR: a DAG of layers in topological order (a node only reads
//! earlier nodes, so a cycle cannot be expressed). Every format loads into
//! this; decomposition and composition work on it. Shapes are per sample
//! (the batch axis is implicit): images `[H, W, C]` (NHWC), vectors `[F]`.

mod build;
mod forward;
mod recurrent;

pub use build::ModelBuilder;
pub use forward::{DEFAULT_BATCH, ForwardOutput, Masks, Moments, Record, Recording, UnitMask, forward, forward_with};
pub use recurrent::{Cell, Recurrent};

use ndarray::{Array1, Array2, Array4};
use serde::{Deserialize, Serialize};

use crate::engine::kernels::{self, PoolKind};

pub type NodeId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Linear,
    Relu,
    Tanh,
    Sigmoid,
    Softmax,
}

impl Activation {
    pub const SUPPORTED: &'static str = "linear, relu, tanh, sigmoid, softmax";

    pub fn parse(name: &str) -> crate::Result<Self> {
        Ok(match name {
            "linear" | "identity" | "none" => Activation::Linear,
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "softmax" => Activation::Softmax,
            other => {
                return Err(crate::Error::Unsupported { what: "activation".into(), name: other.into(), supported: Self::SUPPORTED.into() });
            }
        })
    }

    /// One value through an elementwise activation. Softmax is not
    /// elementwise: it passes values through, and layers that call this
    /// (recurrent cells) refuse it at construction.
    pub fn at(self, x: f32) -> f32 {
        match self {
            Activation::Linear | Activation::Softmax => x,
            Activation::Relu => x.max(0.0),
            Activation::Tanh => kernels::activation::tanh(x),
            Activation::Sigmoid => kernels::activation::sigmoid(x),
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
        }
    }

    /// Applies in place to rows of length `width` (softmax is per row).
    pub fn apply(self, v: &mut [f32], width: usize) {
        match self {
            Activation::Softmax => v.chunks_exact_mut(width).for_each(softmax_row),
            a => a.apply_elementwise(v),
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
    Pool2D {
        kind: PoolKind,
        size: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
    },
    GlobalAvgPool,
    Flatten,
    /// Element-wise sum of its inputs (residual connections), then an activation.
    Add {
        activation: Activation,
    },
    /// `y = x * scale + shift` per channel (last axis): inference BatchNorm folded.
    BatchNorm {
        scale: Array1<f32>,
        shift: Array1<f32>,
    },
    Activation(Activation),
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
            Op::Pool2D { kind: PoolKind::Max, .. } => "MaxPool2D",
            Op::Pool2D { kind: PoolKind::Avg, .. } => "AvgPool2D",
            Op::GlobalAvgPool => "GlobalAveragePooling2D",
            Op::Flatten => "Flatten",
            Op::Add { .. } => "Add",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Activation(_) => "Activation",
            Op::Dropout => "Dropout",
            Op::Embedding { .. } => "Embedding",
            Op::RepeatVector { .. } => "RepeatVector",
            Op::Recurrent(r) => r.cell.kind(),
        }
    }

    /// The activation applied at the end of this op, if it has one.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Op::Dense { activation, .. } | Op::Conv2D { activation, .. } | Op::Add { activation } => Some(*activation),
            Op::Activation(a) => Some(*a),
            _ => None,
        }
    }

    pub fn params(&self) -> usize {
        match self {
            Op::Dense { kernel, bias, .. } => kernel.len() + bias.len(),
            Op::Conv2D { kernel, bias, .. } => kernel.len() + bias.len(),
            Op::BatchNorm { scale, shift } => scale.len() + shift.len(),
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

/// What the model expects: per-sample shape, what the values mean, and the
/// affine map from stored data (u8 pixels, token ids) to model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub shape: Vec<usize>,
    pub kind: InputKind,
    /// Model input = raw * scale + offset (e.g. pixels 0..255 with scale 1/255).
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub offset: f32,
}

fn one() -> f32 {
    1.0
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

    /// Nodes whose units decomposition tracks: hidden ReLU outputs (Dense and
    /// Conv2D units, Add outputs, standalone ReLU activations) and recurrent
    /// layers. A unit's activity bit is "output > 0", i.e. pre-activation > 0,
    /// as in the papers; removing a unit forces its output to 0. The head is
    /// never tracked.
    pub fn tracked(&self) -> Vec<NodeId> {
        (0..self.head)
            .filter(|&i| self.nodes[i].op.activation() == Some(Activation::Relu) || matches!(self.nodes[i].op, Op::Recurrent(_)))
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

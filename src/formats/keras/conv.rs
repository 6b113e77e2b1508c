//! The convolution family beyond Conv2D: the 1-D layers (Conv1D, the 1-D
//! pools and global pools) and DepthwiseConv2D / SeparableConv2D.
//!
//! A 1-D layer runs as the 2-D one of height 1: its `[T, C]` input is held as
//! `[1, T, C]` (an IR `Reshape`), and its output stays so while 1-D layers
//! (or a Flatten) read it; any other reader gets a `Reshape` back to `[T, C]`
//! (see [`Tensors`]). SeparableConv2D is two IR nodes: the depthwise
//! convolution (no bias, linear) and a 1×1 Conv2D with the bias and activation.

use ndarray::{Array1, Array4};
use serde_json::Value;

use super::config::{Class, Layer, bad};
use super::convert::{MAX_WINDOW, Params, WeightSource, bias, weights};
use crate::engine::kernels::PoolKind;
use crate::engine::model::{Activation, ModelBuilder, NodeId, Op, Padding};
use crate::error::{Error, Result};

/// The IR nodes of the Keras layers built so far: each layer's output as
/// Keras shapes it (`plain`) and, for `[T, C]` tensors, as `[1, T, C]`
/// (`lifted`); either is made from the other on first request.
pub struct Tensors {
    plain: Vec<Option<NodeId>>,
    lifted: Vec<Option<NodeId>>,
    names: Vec<String>,
}

impl Tensors {
    pub fn new(names: Vec<String>) -> Self {
        let n = names.len();
        Tensors { plain: vec![None; n], lifted: vec![None; n], names }
    }

    pub fn set(&mut self, layer: usize, id: NodeId, lifted: bool) {
        let slot = if lifted { &mut self.lifted } else { &mut self.plain };
        if let Some(s) = slot.get_mut(layer) {
            *s = Some(id);
        }
    }

    /// Layer `j`'s output as Keras shapes it.
    pub fn plain(&mut self, b: &mut ModelBuilder, j: usize) -> Result<Option<NodeId>> {
        if let Some(id) = self.plain.get(j).copied().flatten() {
            return Ok(Some(id));
        }
        let Some(l) = self.lifted.get(j).copied().flatten() else { return Ok(None) };
        let shape = b.shape(l).get(1..).unwrap_or(&[]).to_vec();
        let id = b.add(format!("{}_as_sequence", self.names[j]), Op::Reshape { shape }, &[l])?;
        self.plain[j] = Some(id);
        Ok(Some(id))
    }

    /// Layer `j`'s `[T, C]` output as `[1, T, C]`.
    pub fn lifted(&mut self, b: &mut ModelBuilder, j: usize, reader: &Layer) -> Result<Option<NodeId>> {
        if let Some(id) = self.lifted.get(j).copied().flatten() {
            return Ok(Some(id));
        }
        let Some(p) = self.plain.get(j).copied().flatten() else { return Ok(None) };
        let shape = match *b.shape(p) {
            [t, c] => vec![1, t, c],
            ref s => return Err(Error::shape(reader.label(), "a sequence input [steps, channels]", format!("{s:?}"))),
        };
        let id = b.add(format!("{}_as_image", self.names[j]), Op::Reshape { shape }, &[p])?;
        self.lifted[j] = Some(id);
        Ok(Some(id))
    }

    /// Layer `j`'s output held as `[1, T, C]` if it is, else as Keras shapes it.
    pub fn either(&mut self, b: &mut ModelBuilder, j: usize) -> Result<Option<NodeId>> {
        match self.lifted.get(j).copied().flatten() {
            Some(id) => Ok(Some(id)),
            None => self.plain(b, j),
        }
    }
}

/// Whether the layer reads its input as `[1, T, C]`.
pub fn reads_lifted(class: Class) -> bool {
    matches!(class, Class::Conv1D | Class::MaxPool1D | Class::AvgPool1D | Class::GlobalAvgPool1D | Class::GlobalMaxPool1D)
}

/// Builds a layer of this family reading node `input`; returns its last node
/// and whether that node holds a `[T, C]` tensor as `[1, T, C]`. `None` for
/// the other classes.
pub fn build(p: &Params, b: &mut ModelBuilder, input: NodeId, src: &dyn WeightSource) -> Result<Option<(NodeId, bool)>> {
    let l = p.0;
    let name = l.name.clone();
    Ok(Some(match l.class {
        Class::Conv1D => {
            let [_, _, c] = image(l, b.shape(input))?;
            p.channels_last()?;
            let dilation = single(p, "dilation_rate", Some(1))?;
            if dilation != 1 {
                return Err(p.unsupported_option(format!("dilation_rate={dilation}"), "dilation_rate=1"));
            }
            let groups = p.count_or("groups", 1)?;
            if groups != 1 {
                return Err(p.unsupported_option(format!("groups={groups}"), "groups=1"));
            }
            let filters = p.count("filters")?;
            let k = single(p, "kernel_size", None)?;
            let stride = single(p, "strides", Some(1))?;
            let padding = p.padding()?;
            let activation = p.activation("activation")?;
            let use_bias = p.flag("use_bias", true)?;
            let mut want = vec![("kernel", vec![k, c, filters])];
            if use_bias {
                want.push(("bias", vec![filters]));
            }
            let mut w = weights(src, l, &want)?.into_iter();
            let kernel = Array4::from_shape_vec((1, k, c, filters), w.next().unwrap_or_default())
                .map_err(|e| Error::invalid(format!("{}: {e}", l.label())))?;
            let op = Op::Conv2D { kernel, bias: bias(w.next(), filters), strides: [1, stride], padding, activation };
            let id = b.add(name, op, &[input])?;
            if !use_bias {
                b.declare_params(id, k * c * filters);
            }
            (id, true)
        }
        Class::MaxPool1D | Class::AvgPool1D => {
            image(l, b.shape(input))?;
            p.channels_last()?;
            let size = single(p, "pool_size", Some(2))?;
            let stride = single(p, "strides", Some(size))?;
            let kind = if l.class == Class::MaxPool1D { PoolKind::Max } else { PoolKind::Avg };
            let op = Op::Pool2D { kind, size: [1, size], strides: [1, stride], padding: p.padding()? };
            (b.add(name, op, &[input])?, true)
        }
        Class::GlobalAvgPool1D | Class::GlobalMaxPool1D => {
            image(l, b.shape(input))?;
            p.channels_last()?;
            if p.flag("keepdims", false)? {
                return Err(p.unsupported_option("keepdims=true".into(), "keepdims=false"));
            }
            let kind = if l.class == Class::GlobalMaxPool1D { PoolKind::Max } else { PoolKind::Avg };
            (b.add(name, Op::GlobalPool(kind), &[input])?, false)
        }
        Class::DepthwiseConv2D | Class::SeparableConv2D => {
            let [_, _, c] = image(l, b.shape(input))?;
            p.channels_last()?;
            let dilation = p.pair("dilation_rate", Some([1, 1]))?;
            if dilation != [1, 1] {
                return Err(p.unsupported_option(format!("dilation_rate={dilation:?}"), "dilation_rate=1"));
            }
            let mult = p.count_or("depth_multiplier", 1)?;
            let [kh, kw] = p.pair("kernel_size", None)?;
            let strides = p.pair("strides", Some([1, 1]))?;
            let padding = p.padding()?;
            let activation = p.activation("activation")?;
            let use_bias = p.flag("use_bias", true)?;
            let cm =
                c.checked_mul(mult).ok_or_else(|| Error::too_large(format!("channels of {}", l.label()), u64::MAX, u32::MAX as u64))?;
            let depthwise =
                |data: Vec<f32>| Array4::from_shape_vec((kh, kw, c, mult), data).map_err(|e| Error::invalid(format!("{}: {e}", l.label())));
            if l.class == Class::DepthwiseConv2D {
                // Keras 3 names the kernel `kernel`, Keras 2 `depthwise_kernel` (read by position).
                let mut want = vec![("kernel", vec![kh, kw, c, mult])];
                if use_bias {
                    want.push(("bias", vec![cm]));
                }
                let mut w = weights(src, l, &want)?.into_iter();
                let kernel = depthwise(w.next().unwrap_or_default())?;
                let op = Op::DepthwiseConv2D { kernel, bias: bias(w.next(), cm), strides, padding, activation };
                let id = b.add(name, op, &[input])?;
                if !use_bias {
                    b.declare_params(id, kh * kw * cm);
                }
                (id, false)
            } else {
                let filters = p.count("filters")?;
                let mut want = vec![("depthwise_kernel", vec![kh, kw, c, mult]), ("pointwise_kernel", vec![1, 1, cm, filters])];
                if use_bias {
                    want.push(("bias", vec![filters]));
                }
                let mut w = weights(src, l, &want)?.into_iter();
                let kernel = depthwise(w.next().unwrap_or_default())?;
                let op = Op::DepthwiseConv2D { kernel, bias: Array1::zeros(cm), strides, padding, activation: Activation::Linear };
                let dw = b.add(format!("{name}_depthwise"), op, &[input])?;
                b.declare_params(dw, kh * kw * cm);
                let pointwise = Array4::from_shape_vec((1, 1, cm, filters), w.next().unwrap_or_default())
                    .map_err(|e| Error::invalid(format!("{}: {e}", l.label())))?;
                let op =
                    Op::Conv2D { kernel: pointwise, bias: bias(w.next(), filters), strides: [1, 1], padding: Padding::Valid, activation };
                let id = b.add(name, op, &[dw])?;
                if !use_bias {
                    b.declare_params(id, cm * filters);
                }
                (id, false)
            }
        }
        _ => return Ok(None),
    }))
}

fn image(l: &Layer, s: &[usize]) -> Result<[usize; 3]> {
    match *s {
        [h, w, c] => Ok([h, w, c]),
        ref s => Err(Error::shape(l.label(), "an input [steps, channels] (or an image [H, W, C])", format!("{s:?}"))),
    }
}

/// A 1-D size: an int or a list of one int (Keras writes `[3]`).
fn single(p: &Params, key: &str, default: Option<usize>) -> Result<usize> {
    let Some(v) = p.get(key) else {
        return default.ok_or_else(|| bad(format!("{} has no '{key}'", p.0.label())));
    };
    match v {
        Value::Array(a) => match a.as_slice() {
            [x] => p.positive(key, x, MAX_WINDOW),
            _ => Err(p.err(key, "one integer", v)),
        },
        x => p.positive(key, x, MAX_WINDOW),
    }
}

//! Layer graph + stored weights → validated IR, through [`ModelBuilder`].
//! Each layer's parameters are read here, with the shapes of its inputs known,
//! so every weight array is checked against exactly what the config implies
//! before it is read.

use ndarray::{Array1, Array2, Array4};
use serde_json::Value;

use super::config::{Class, Graph, Layer, bad, short};
use super::h5::{H5, StoredArray};
use super::{bidirectional, conv};
use crate::engine::kernels::PoolKind;
use crate::engine::model::{Activation, Cell, InputKind, InputSpec, Model, ModelBuilder, NodeId, Op, Padding, Recurrent};
use crate::error::{Error, Result};

/// Largest kernel, pool window, stride or dilation accepted from a config.
pub(super) const MAX_WINDOW: usize = 1 << 16;
/// Largest number of classes (one name string each).
const MAX_CLASSES: usize = 1 << 20;

/// Where a layer's weight arrays are stored.
pub trait WeightSource {
    fn h5(&self) -> &H5;
    /// The arrays stored for `layer`, in storage order (Keras: trainable then
    /// non-trainable, each in creation order).
    fn arrays(&self, layer: &Layer) -> Result<Vec<StoredArray>>;
}

pub fn build(graph: &Graph, src: &dyn WeightSource, name: &str) -> Result<Model> {
    let layers = &graph.layers;
    let (&first, rest) = graph.order.split_first().ok_or_else(|| bad("the model has no layers"))?;
    let input = layers.get(first).ok_or_else(|| bad("bad build order"))?;
    let shape = input_shape(input)?;
    let reads_tokens = layers.iter().any(|l| l.class == Class::Embedding && l.inputs == [first]);
    let kind = match shape.len() {
        3 => InputKind::Image,
        _ if reads_tokens => InputKind::Tokens,
        _ => InputKind::Vectors,
    };
    let mut b = ModelBuilder::new(name, InputSpec::new(shape, kind))?;
    let mut tensors = conv::Tensors::new(layers.iter().map(|l| l.name.clone()).collect());
    tensors.set(first, b.last(), false);
    for &i in rest {
        let l = layers.get(i).ok_or_else(|| bad("bad build order"))?;
        let mut ins = Vec::with_capacity(l.inputs.len());
        for &j in &l.inputs {
            let id = match l.class {
                c if conv::reads_lifted(c) => tensors.lifted(&mut b, j, l)?,
                // A Flatten reads [1, T, C] as it would [T, C].
                Class::Flatten => tensors.either(&mut b, j)?,
                _ => tensors.plain(&mut b, j)?,
            };
            ins.push(id.ok_or_else(|| bad(format!("{} reads a layer that is not built before it", l.label())))?);
        }
        let p = Params(l, graph.keras2);
        if l.class == Class::Bidirectional {
            let [one] = ins.as_slice() else { return Err(Error::shape(l.label(), "1 input", ins.len())) };
            tensors.set(i, bidirectional::build(&p, &mut b, *one, src)?, false);
            continue;
        }
        if let Some((id, lifted)) = match ins.as_slice() {
            [one] => conv::build(&p, &mut b, *one, src)?,
            _ if conv::reads_lifted(l.class) || matches!(l.class, Class::DepthwiseConv2D | Class::SeparableConv2D) => {
                return Err(Error::shape(l.label(), "1 input", ins.len()));
            }
            _ => None,
        } {
            tensors.set(i, id, lifted);
            continue;
        }
        let op = op_for(l, &b, &ins, src, graph.keras2)?;
        let stored = stored_params(l, &op)?;
        let id = b.add(l.name.clone(), op, &ins)?;
        if let Some(n) = stored {
            b.declare_params(id, n);
        }
        tensors.set(i, id, false);
    }
    let classes = b.shape(b.last()).last().copied().unwrap_or(0);
    if classes > MAX_CLASSES {
        return Err(Error::too_large("number of classes (model outputs)", classes as u64, MAX_CLASSES as u64));
    }
    let mut model = b.finish((0..classes).map(|i| i.to_string()).collect())?;
    // A model that scales raw pixels itself is fed integer images raw (the input rule).
    let first = rest.first().and_then(|&i| layers.get(i)).map(|l| l.class);
    model.input.rescales = model.scales_raw_pixels(matches!(first, Some(Class::Rescaling | Class::Normalization)));
    Ok(model)
}

fn input_shape(l: &Layer) -> Result<Vec<usize>> {
    let p = Params(l, false);
    let (v, batch) = match (p.get("batch_shape").or_else(|| p.get("batch_input_shape")), p.get("shape")) {
        (Some(v), _) => (v, true),
        (None, Some(v)) => (v, false),
        (None, None) => return Err(bad(format!("{} has no input shape ('batch_shape' or 'batch_input_shape')", l.label()))),
    };
    let dims = v.as_array().ok_or_else(|| p.err("batch_shape", "a list of dimensions", v))?;
    let dims = if batch { dims.get(1..).unwrap_or(&[]) } else { dims.as_slice() };
    if dims.is_empty() {
        return Err(bad(format!("{}: the input shape {} has no dimensions besides the batch", l.label(), short(v))));
    }
    dims.iter()
        .map(|d| match d {
            Value::Null => Err(Error::Unsupported {
                what: "input shape".into(),
                name: format!("{} of {}", short(v), l.label()),
                supported: "fixed sizes (no None dimension besides the batch)".into(),
            }),
            d => d.as_u64().and_then(|x| usize::try_from(x).ok()).ok_or_else(|| p.err("batch_shape", "non-negative integers", v)),
        })
        .collect()
}

fn op_for(l: &Layer, b: &ModelBuilder, ins: &[NodeId], src: &dyn WeightSource, keras2: bool) -> Result<Op> {
    let p = Params(l, keras2);
    let one = || one_input(l, b, ins);
    let image = || -> Result<[usize; 3]> {
        match *one_input(l, b, ins)? {
            [h, w, c] => Ok([h, w, c]),
            ref s => Err(Error::shape(l.label(), "an image input [H, W, C]", format!("{s:?}"))),
        }
    };
    Ok(match l.class {
        Class::Input => return Err(bad(format!("{} is a second input", l.label()))),
        // Built by `conv::build` and `bidirectional::build`.
        Class::Bidirectional
        | Class::Conv1D
        | Class::DepthwiseConv2D
        | Class::SeparableConv2D
        | Class::MaxPool1D
        | Class::AvgPool1D
        | Class::GlobalAvgPool1D
        | Class::GlobalMaxPool1D => return Err(Error::shape(l.label(), "1 input", ins.len())),
        Class::Dense => {
            let fin = one()?.last().copied().unwrap_or(0);
            let units = p.count("units")?;
            let activation = p.activation("activation")?;
            let use_bias = p.flag("use_bias", true)?;
            let mut want = vec![("kernel", vec![fin, units])];
            if use_bias {
                want.push(("bias", vec![units]));
            }
            let mut w = weights(src, l, &want)?.into_iter();
            let kernel = Array2::from_shape_vec((fin, units), w.next().unwrap_or_default())
                .map_err(|e| Error::invalid(format!("{}: {e}", l.label())))?;
            let bias = bias(w.next(), units);
            Op::Dense { kernel, bias, activation }
        }
        Class::Conv2D => {
            let [_, _, c] = image()?;
            p.channels_last()?;
            let dilation = p.pair("dilation_rate", Some([1, 1]))?;
            if dilation != [1, 1] {
                return Err(p.unsupported_option(format!("dilation_rate={dilation:?}"), "dilation_rate=1"));
            }
            let groups = p.count_or("groups", 1)?;
            if groups != 1 {
                return Err(p.unsupported_option(format!("groups={groups}"), "groups=1"));
            }
            let filters = p.count("filters")?;
            let [kh, kw] = p.pair("kernel_size", None)?;
            let strides = p.pair("strides", Some([1, 1]))?;
            let padding = p.padding()?;
            let activation = p.activation("activation")?;
            let use_bias = p.flag("use_bias", true)?;
            let mut want = vec![("kernel", vec![kh, kw, c, filters])];
            if use_bias {
                want.push(("bias", vec![filters]));
            }
            let mut w = weights(src, l, &want)?.into_iter();
            let kernel = Array4::from_shape_vec((kh, kw, c, filters), w.next().unwrap_or_default())
                .map_err(|e| Error::invalid(format!("{}: {e}", l.label())))?;
            let bias = bias(w.next(), filters);
            Op::Conv2D { kernel, bias, strides, padding, activation }
        }
        Class::MaxPool | Class::AvgPool => {
            image()?;
            p.channels_last()?;
            let size = p.pair("pool_size", Some([2, 2]))?;
            let strides = p.pair("strides", Some(size))?;
            let padding = p.padding()?;
            let kind = if l.class == Class::MaxPool { PoolKind::Max } else { PoolKind::Avg };
            Op::Pool2D { kind, size, strides, padding }
        }
        Class::GlobalAvgPool | Class::GlobalMaxPool => {
            image()?;
            p.channels_last()?;
            if p.flag("keepdims", false)? {
                return Err(p.unsupported_option("keepdims=true".into(), "keepdims=false"));
            }
            Op::GlobalPool(if l.class == Class::GlobalMaxPool { PoolKind::Max } else { PoolKind::Avg })
        }
        Class::Flatten => {
            if one()?.len() > 1 {
                p.channels_last()?;
            }
            Op::Flatten
        }
        Class::Dropout => Op::Dropout,
        Class::Activation => Op::Activation(p.activation("activation")?),
        Class::ReLU => {
            if let Some(v) = p.get("max_value") {
                return Err(p.unsupported_option(
                    format!("max_value={}", short(v)),
                    "a plain ReLU (max_value=null, negative_slope=0, threshold=0)",
                ));
            }
            for key in ["negative_slope", "threshold"] {
                if p.float(key, 0.0)? != 0.0 {
                    return Err(p.unsupported_option(
                        format!("{key}={}", p.float(key, 0.0)?),
                        "a plain ReLU (max_value=null, negative_slope=0, threshold=0)",
                    ));
                }
            }
            Op::Activation(Activation::Relu)
        }
        Class::LeakyRelu => {
            // Keras 3 names the slope negative_slope, Keras 2 alpha; both default to 0.3.
            let key = if p.get("negative_slope").is_some() { "negative_slope" } else { "alpha" };
            Op::Activation(Activation::LeakyRelu(p.float(key, 0.3)? as f32))
        }
        Class::Elu => Op::Activation(Activation::Elu(p.float("alpha", 1.0)? as f32)),
        Class::PRelu => prelu(&p, one()?, src)?,
        Class::Rescaling => rescaling(&p, one()?)?,
        Class::Normalization => normalization(&p, one()?, src)?,
        Class::Softmax => {
            p.last_axis(one()?.len())?;
            Op::Activation(Activation::Softmax)
        }
        Class::Add => Op::Add { activation: Activation::Linear },
        Class::Concat => {
            let rank = ins.first().map_or(0, |&i| b.shape(i).len());
            p.last_axis(rank)?;
            Op::Concat
        }
        Class::ZeroPad => {
            image()?;
            p.channels_last()?;
            Op::ZeroPad2D { pads: p.pads()? }
        }
        Class::BatchNorm => batch_norm(&p, one()?, src)?,
        Class::Embedding => {
            one()?;
            if p.flag("mask_zero", false)? {
                return Err(p.unsupported_option("mask_zero=true".into(), "mask_zero=false (every step of a sequence is used)"));
            }
            let (vocab, dim) = (p.count("input_dim")?, p.count("output_dim")?);
            let mut w = weights(src, l, &[("embeddings", vec![vocab, dim])])?.into_iter();
            Op::Embedding {
                table: Array2::from_shape_vec((vocab, dim), w.next().unwrap_or_default())
                    .map_err(|e| Error::invalid(format!("{}: {e}", l.label())))?,
            }
        }
        Class::RepeatVector => {
            one()?;
            Op::RepeatVector { times: p.count("n")? }
        }
        Class::SimpleRnn | Class::Lstm | Class::Gru => recurrent(&p, one()?, src)?,
    })
}

/// SimpleRNN / LSTM / GRU with Keras weights: kernel (F, G·U), recurrent
/// kernel (U, G·U), bias (G·U) — or (2, G·U) for a GRU with `reset_after`
/// (input bias, then recurrent bias).
pub(super) fn recurrent(p: &Params, input: &[usize], src: &dyn WeightSource) -> Result<Op> {
    let l = p.0;
    let f = match input {
        [_, f] => *f,
        s => return Err(Error::shape(l.label(), "a sequence input [T, F]", format!("{s:?}"))),
    };
    for (key, why) in [
        ("return_state", "return_state=false (the IR has one output per layer)"),
        ("go_backwards", "go_backwards=false"),
        ("stateful", "stateful=false (every sequence starts from a zero state)"),
    ] {
        if p.flag(key, false)? {
            return Err(p.unsupported_option(format!("{key}=true"), why));
        }
    }
    let cell = match l.class {
        Class::SimpleRnn => Cell::SimpleRnn,
        Class::Lstm => Cell::Lstm,
        _ => Cell::Gru { reset_after: p.flag("reset_after", true)? },
    };
    let units = p.count("units")?;
    let gu = units
        .checked_mul(cell.gates())
        .ok_or_else(|| Error::too_large(format!("units of {}", l.label()), units as u64, u32::MAX as u64))?;
    let activation = p.activation("activation")?;
    let recurrent_activation = if cell == Cell::SimpleRnn { Activation::Sigmoid } else { p.activation("recurrent_activation")? };
    let use_bias = p.flag("use_bias", true)?;
    let two_biases = cell == Cell::Gru { reset_after: true };
    let mut want = vec![("kernel", vec![f, gu]), ("recurrent_kernel", vec![units, gu])];
    if use_bias {
        want.push(("bias", if two_biases { vec![2, gu] } else { vec![gu] }));
    }
    let mut w = weights(src, l, &want)?.into_iter();
    let shape_err = |e: ndarray::ShapeError| Error::invalid(format!("{}: {e}", l.label()));
    let kernel = Array2::from_shape_vec((f, gu), w.next().unwrap_or_default()).map_err(shape_err)?;
    let recurrent = Array2::from_shape_vec((units, gu), w.next().unwrap_or_default()).map_err(shape_err)?;
    let mut b = w.next().unwrap_or_else(|| vec![0.0; if two_biases { 2 * gu } else { gu }]);
    let recurrent_bias = two_biases.then(|| Array1::from_vec(b.split_off(gu)));
    Ok(Op::Recurrent(Box::new(Recurrent {
        cell,
        units,
        kernel,
        recurrent,
        bias: Array1::from_vec(b),
        recurrent_bias,
        activation,
        recurrent_activation,
        return_sequences: p.flag("return_sequences", false)?,
        reverse: false,
    })))
}

/// What Keras counts as the layer's parameters where the IR holds a
/// different number: BatchNorm keeps gamma, beta, mean and variance (the IR
/// folds them to 2 per channel); `use_bias=false` layers have no bias.
fn stored_params(l: &Layer, op: &Op) -> Result<Option<usize>> {
    let p = Params(l, false);
    Ok(match op {
        Op::BatchNorm { .. } if l.class == Class::Rescaling => Some(0),
        // Adapted mean, variance and count (Keras counts them), or none when given in the config.
        Op::BatchNorm { scale, .. } if l.class == Class::Normalization => Some(if p.get("mean").is_some() {
            0
        } else if p.per_value_axis() {
            3
        } else {
            2 * scale.len() + 1
        }),
        Op::BatchNorm { scale, .. } => Some(scale.len() * (2 + p.flag("center", true)? as usize + p.flag("scale", true)? as usize)),
        Op::Dense { kernel, .. } if !p.flag("use_bias", true)? => Some(kernel.len()),
        Op::Conv2D { kernel, .. } if !p.flag("use_bias", true)? => Some(kernel.len()),
        Op::Recurrent(r) if !p.flag("use_bias", true)? => Some(r.kernel.len() + r.recurrent.len()),
        _ => None,
    })
}

/// The shape of the only input of a single-input layer.
fn one_input<'a>(l: &Layer, b: &'a ModelBuilder, ins: &[NodeId]) -> Result<&'a [usize]> {
    match ins {
        [i] => Ok(b.shape(*i)),
        _ => Err(Error::shape(l.label(), "1 input", ins.len())),
    }
}

pub(super) fn bias(w: Option<Vec<f32>>, n: usize) -> Array1<f32> {
    match w {
        Some(v) => Array1::from_vec(v),
        None => Array1::zeros(n),
    }
}

/// A number or one per channel (`key` of Rescaling), as `c` values.
fn per_channel(p: &Params, key: &str, default: f64, c: usize) -> Result<Vec<f32>> {
    let v = match p.get(key) {
        None => return Ok(vec![default as f32; c]),
        Some(v) => v,
    };
    let values: Vec<f32> = match v {
        Value::Array(a) => a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect::<Option<_>>().ok_or_else(|| p.err(key, "numbers", v))?,
        x => vec![x.as_f64().ok_or_else(|| p.err(key, "a number or a list of numbers", v))? as f32],
    };
    match values.len() {
        1 => Ok(vec![values[0]; c]),
        n if n == c => Ok(values),
        n => Err(Error::shape(format!("'{key}' of {}", p.0.label()), format!("1 or {c} values (one per channel)"), n)),
    }
}

/// `PReLU`: its `alpha` has the input's per-sample shape with the `shared_axes`
/// (Keras counts the batch as axis 0) of size 1; stored per channel when only
/// the channel axis varies, else per value (broadcast over the shared axes).
fn prelu(p: &Params, input: &[usize], src: &dyn WeightSource) -> Result<Op> {
    let l = p.0;
    let shared: Vec<usize> = match p.get("shared_axes") {
        None => Some(vec![]),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_u64().map(|x| x as usize).filter(|&x| x >= 1 && x <= input.len())).collect::<Option<_>>()
        }
        Some(v) => v.as_u64().map(|x| vec![x as usize]).filter(|a| a[0] >= 1 && a[0] <= input.len()),
    }
    .ok_or_else(|| p.err("shared_axes", &format!("axes from 1 to {}", input.len()), p.get("shared_axes").unwrap_or(&Value::Null)))?;
    let dims: Vec<usize> = input.iter().enumerate().map(|(k, &d)| if shared.contains(&(k + 1)) { 1 } else { d }).collect();
    let alpha = weights(src, l, &[("alpha", dims.clone())])?.into_iter().next().unwrap_or_default();
    if !alpha.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFinite { layer: l.name.clone(), what: "alpha".into() });
    }
    let c = input.last().copied().unwrap_or(1);
    if dims.iter().rev().skip(1).all(|&d| d == 1) && alpha.len() == c {
        return Ok(Op::PRelu { alpha: Array1::from_vec(alpha) });
    }
    // Per value: broadcast over the shared axes (row-major over the input shape).
    let n: usize = input.iter().product();
    let full: Vec<f32> = (0..n)
        .map(|i| {
            let (mut rest, mut at, mut stride) = (i, 0, 1);
            for k in (0..input.len()).rev() {
                let ix = rest % input[k];
                rest /= input[k];
                at += if dims[k] == 1 { 0 } else { ix * stride };
                stride *= dims[k];
            }
            alpha[at]
        })
        .collect();
    Ok(Op::PRelu { alpha: Array1::from_vec(full) })
}

/// `Rescaling`: y = x · scale + offset, per channel (a folded BatchNorm).
fn rescaling(p: &Params, input: &[usize]) -> Result<Op> {
    let c = input.last().copied().unwrap_or(1);
    let (scale, shift) = (per_channel(p, "scale", 1.0, c)?, per_channel(p, "offset", 0.0, c)?);
    if !scale.iter().chain(&shift).all(|v| v.is_finite()) {
        return Err(Error::NonFinite { layer: p.0.name.clone(), what: "scale/offset".into() });
    }
    Ok(Op::BatchNorm { scale: Array1::from_vec(scale), shift: Array1::from_vec(shift) })
}

/// `Normalization` (adapted or given mean and variance) over the last axis
/// or all axes: y = (x − mean) / max(√variance, ε) with Keras' ε = 1e-7.
fn normalization(p: &Params, input: &[usize], src: &dyn WeightSource) -> Result<Op> {
    let l = p.0;
    if p.flag("invert", false)? {
        return Err(p.unsupported_option("invert=true".into(), "invert=false"));
    }
    let c = input.last().copied().unwrap_or(1);
    let n = if p.per_value_axis() { 1 } else { p.last_axis(input.len()).map(|_| c)? };
    let (mean, var) = match (p.get("mean"), p.get("variance")) {
        (Some(_), Some(_)) => (per_channel(p, "mean", 0.0, n)?, per_channel(p, "variance", 1.0, n)?),
        _ => {
            let arrays = src.arrays(l)?;
            // Adapted: mean, variance and the sample count (not used at inference).
            // axis=None stores scalars.
            let dims = if p.per_value_axis() { vec![] } else { vec![n] };
            let want = [("mean", dims.clone()), ("variance", dims), ("count", vec![])];
            let want = &want[..arrays.len().clamp(2, 3)];
            let mut w = weights(src, l, want)?.into_iter();
            (w.next().unwrap_or_default(), w.next().unwrap_or_default())
        }
    };
    if !mean.iter().chain(&var).all(|v| v.is_finite()) {
        return Err(Error::NonFinite { layer: l.name.clone(), what: "mean/variance".into() });
    }
    if let Some(k) = var.iter().position(|&v| v < 0.0) {
        return Err(Error::invalid(format!("{}: variance must be ≥ 0 (channel {k} has {})", l.label(), var[k])));
    }
    let (mut scale, mut shift) = (Vec::with_capacity(c), Vec::with_capacity(c));
    for k in 0..c {
        let (m, v) = (mean[k % n] as f64, var[k % n] as f64);
        let s = 1.0 / v.sqrt().max(1e-7);
        scale.push(s as f32);
        shift.push((-m * s) as f32);
    }
    Ok(Op::BatchNorm { scale: Array1::from_vec(scale), shift: Array1::from_vec(shift) })
}

/// Inference BatchNormalization folded into `y = x * scale + shift`.
fn batch_norm(p: &Params, input: &[usize], src: &dyn WeightSource) -> Result<Op> {
    let l = p.0;
    p.last_axis(input.len())?;
    if p.flag("renorm", false)? {
        return Err(p.unsupported_option("renorm=true".into(), "renorm=false"));
    }
    let c = input.last().copied().unwrap_or(0);
    let (center, scale) = (p.flag("center", true)?, p.flag("scale", true)?);
    let eps = p.float("epsilon", 1e-3)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(p.err("epsilon", "a non-negative number", &Value::from(eps)));
    }
    let mut want = vec![];
    if scale {
        want.push(("gamma", vec![c]));
    }
    if center {
        want.push(("beta", vec![c]));
    }
    want.push(("moving_mean", vec![c]));
    want.push(("moving_variance", vec![c]));
    let w = weights(src, l, &want)?;
    for ((what, _), v) in want.iter().zip(&w) {
        if !v.iter().all(|x| x.is_finite()) {
            return Err(Error::NonFinite { layer: l.name.clone(), what: (*what).into() });
        }
    }
    let mut w = w.into_iter();
    let ones = || vec![1f32; c];
    let gamma = if scale { w.next().unwrap_or_else(ones) } else { ones() };
    let beta = if center { w.next().unwrap_or_default() } else { vec![0.0; c] };
    let (mean, var) = (w.next().unwrap_or_default(), w.next().unwrap_or_default());
    let mut s = Vec::with_capacity(c);
    let mut t = Vec::with_capacity(c);
    for k in 0..c {
        let g = gamma.get(k).copied().unwrap_or(1.0) as f64;
        let bt = beta.get(k).copied().unwrap_or(0.0) as f64;
        let m = mean.get(k).copied().unwrap_or(0.0) as f64;
        let v = var.get(k).copied().unwrap_or(1.0) as f64 + eps;
        if v <= 0.0 {
            return Err(Error::invalid(format!("{}: moving_variance + epsilon must be positive (channel {k} has {v})", l.label())));
        }
        let sc = g / v.sqrt();
        s.push(sc as f32);
        t.push((bt - m * sc) as f32);
    }
    Ok(Op::BatchNorm { scale: Array1::from_vec(s), shift: Array1::from_vec(t) })
}

/// Reads the layer's arrays, matched to `want` (name, shape) by the names the
/// file gives them when it names them all, by position otherwise.
pub(super) fn weights(src: &dyn WeightSource, l: &Layer, want: &[(&'static str, Vec<usize>)]) -> Result<Vec<Vec<f32>>> {
    let arrays = src.arrays(l)?;
    let names = want.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    if arrays.len() != want.len() {
        let found = arrays.iter().map(|a| a.path.as_str()).collect::<Vec<_>>();
        return Err(Error::format(
            "Keras",
            format!(
                "{}: the config needs {} weight array(s) ({names}), the weights file has {}: {found:?}",
                l.label(),
                want.len(),
                arrays.len()
            ),
        ));
    }
    let role_of = |name: &str| arrays.iter().position(|a| a.role.as_deref() == Some(name));
    let by_role = want.iter().all(|(n, _)| role_of(n).is_some())
        && want.iter().enumerate().all(|(k, (n, _))| want.iter().skip(k + 1).all(|(m, _)| m != n));
    want.iter()
        .enumerate()
        .map(|(k, (what, shape))| {
            let at = if by_role { role_of(what).unwrap_or(k) } else { k };
            let a = arrays.get(at).ok_or_else(|| bad(format!("{}: no array for {what}", l.label())))?;
            src.h5().read(a, shape, &format!("layer '{}' {what}", l.name))
        })
        .collect()
}

/// Typed access to a layer's `config` object (and whether Keras 2 wrote it).
pub(super) struct Params<'a>(pub(super) &'a Layer, pub(super) bool);

impl Params<'_> {
    /// The value at `key`, treating JSON null as absent.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.0.config.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn err(&self, key: &str, want: &str, got: &Value) -> Error {
        bad(format!("{}: '{key}' must be {want}, got {}", self.0.label(), short(got)))
    }

    pub(super) fn unsupported_option(&self, option: String, supported: &str) -> Error {
        Error::Unsupported { what: format!("option of {}", self.0.label()), name: option, supported: supported.into() }
    }

    pub(super) fn positive(&self, key: &str, v: &Value, max: usize) -> Result<usize> {
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .filter(|&x| x >= 1 && x <= max)
            .ok_or_else(|| self.err(key, &format!("an integer from 1 to {max}"), v))
    }

    pub(super) fn count(&self, key: &str) -> Result<usize> {
        let v = self.get(key).ok_or_else(|| bad(format!("{} has no '{key}'", self.0.label())))?;
        self.positive(key, v, crate::error::MAX_TENSOR_ELEMS as usize)
    }

    pub(super) fn count_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.count(key),
        }
    }

    /// An int or a list of two ints (kernel sizes, strides, …).
    pub(super) fn pair(&self, key: &str, default: Option<[usize; 2]>) -> Result<[usize; 2]> {
        let Some(v) = self.get(key) else {
            return default.ok_or_else(|| bad(format!("{} has no '{key}'", self.0.label())));
        };
        match v {
            Value::Array(a) => match a.as_slice() {
                [x, y] => Ok([self.positive(key, x, MAX_WINDOW)?, self.positive(key, y, MAX_WINDOW)?]),
                _ => Err(self.err(key, "two integers", v)),
            },
            _ => {
                let x = self.positive(key, v, MAX_WINDOW)?;
                Ok([x, x])
            }
        }
    }

    /// ZeroPadding2D's `padding`: n, (rows, cols), or ((top, bottom), (left, right)) → [t, l, b, r].
    pub(super) fn pads(&self) -> Result<[usize; 4]> {
        let v = self.get("padding").ok_or_else(|| bad(format!("{} has no 'padding'", self.0.label())))?;
        let n = |x: &Value| x.as_u64().and_then(|x| usize::try_from(x).ok()).filter(|&x| x <= MAX_WINDOW);
        let pair = |x: &Value| match x {
            Value::Array(a) => match a.as_slice() {
                [p, q] => n(p).zip(n(q)),
                _ => None,
            },
            x => n(x).map(|p| (p, p)),
        };
        let pads = match v {
            Value::Array(a) => match a.as_slice() {
                [r, c] if r.is_array() || c.is_array() => pair(r).zip(pair(c)).map(|((t, b), (l, r))| [t, l, b, r]),
                [r, c] => n(r).zip(n(c)).map(|(r, c)| [r, c, r, c]),
                _ => None,
            },
            x => n(x).map(|p| [p; 4]),
        };
        pads.ok_or_else(|| {
            self.err("padding", &format!("n, (rows, cols) or ((top, bottom), (left, right)) of integers up to {MAX_WINDOW}"), v)
        })
    }

    pub(super) fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(key, "true or false", v)),
        }
    }

    pub(super) fn float(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.err(key, "a number", v)),
        }
    }

    pub(super) fn text(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(|s| Some(s.to_ascii_lowercase())).ok_or_else(|| self.err(key, "a string", v)),
        }
    }

    pub(super) fn padding(&self) -> Result<Padding> {
        match self.text("padding")?.as_deref() {
            None | Some("valid") => Ok(Padding::Valid),
            Some("same") => Ok(Padding::Same),
            Some(other) => Err(self.unsupported_option(format!("padding={other}"), "padding=valid or padding=same")),
        }
    }

    pub(super) fn channels_last(&self) -> Result<()> {
        match self.text("data_format")?.as_deref() {
            None | Some("channels_last") => Ok(()),
            Some(other) => Err(self.unsupported_option(format!("data_format={other}"), "data_format=channels_last (NHWC)")),
        }
    }

    /// `axis=None` (saved as null or as an empty list): one statistic for every value.
    pub(super) fn per_value_axis(&self) -> bool {
        match self.0.config.get("axis") {
            Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        }
    }

    /// `axis` (an int or a one-element list; Keras counts the batch axis as 0)
    /// must name the last axis of a per-sample shape of `rank` dimensions.
    pub(super) fn last_axis(&self, rank: usize) -> Result<()> {
        let v = self.get("axis");
        let axis = match v {
            None => -1,
            Some(Value::Array(a)) if a.len() == 1 => {
                a.first().and_then(Value::as_i64).ok_or_else(|| self.err("axis", "an integer", v.unwrap_or(&Value::Null)))?
            }
            Some(x) => x.as_i64().ok_or_else(|| self.err("axis", "an integer", x))?,
        };
        if axis == -1 || axis == rank as i64 {
            Ok(())
        } else {
            Err(self.unsupported_option(format!("axis={axis}"), "axis=-1 (the last, channel axis)"))
        }
    }

    pub(super) fn activation(&self, key: &str) -> Result<Activation> {
        let name = match self.get(key) {
            None => return Ok(Activation::Linear),
            Some(Value::String(s)) => s.clone(),
            // Keras 3 may serialise a built-in activation as an object whose
            // `config` is its name.
            Some(Value::Object(o)) if o.get("config").is_some_and(Value::is_string) => {
                o.get("config").and_then(Value::as_str).unwrap_or("").into()
            }
            Some(v) => short(v),
        };
        match name.as_str() {
            // Keras 2: clip(0.2x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6.
            "hard_sigmoid" => return Ok(Activation::HardSigmoid(if self.1 { 0.2 } else { 1.0 / 6.0 })),
            "gelu" if self.get("approximate").and_then(Value::as_bool) == Some(true) => return Ok(Activation::GeluTanh),
            _ => {}
        }
        Activation::parse(&name).map_err(|e| match e {
            Error::Unsupported { name, supported, .. } => {
                Error::Unsupported { what: format!("activation in {}", self.0.label()), name, supported }
            }
            other => other,
        })
    }
}

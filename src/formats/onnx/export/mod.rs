//! A composition as ONE ONNX graph (docs/EXPORT.md): every module is its
//! source network with its masks baked in, its channeled head gives one
//! concerned score (log-odds) per sample, the scores are concatenated into `scores`
//! `[N, K]` (K modules, composition order) and `argmax` `[N]` (int64) is the
//! composed answer, an index into the composition's classes, ties to the
//! first module — what `compose::compose` answers.
//!
//! The graph computes what `model::forward` + `decompose::concerned_scores`
//! compute:
//! - input: the data as stored (pixels 0–255, token ids); each module applies
//!   its model's `raw × scale + offset`;
//! - a removed unit is forced to 0 after its activation: `Where` with a
//!   constant bool mask of the unit grid;
//! - `reference` mode's clipped negative weights: a Dense kernel with those
//!   columns' negatives zeroed (per-step patterns that differ by step: both
//!   products and a `Where`);
//! - recurrent layers (ONNX LSTM/GRU/RNN, forward, zero initial state): a
//!   removed unit's gate rows of W, R and the biases and its column of R are
//!   zero — its gate pre-activations are 0 and no unit reads its state, as the
//!   engine runs it — and its output is masked; a removed gate column (the
//!   per-gate statistic) has that gate's row of W, R and the biases zero.
//!   Per-step (unrolled) masks that differ between steps are refused;
//! - head: the score is the log-odds `d = z_c − mean of the other logits`
//!   (calibrated, for modules pruned by relevance); the module's concerned
//!   probability is `1 / (1 + exp(−d))`.
//!
//! The IR is channels-last; ONNX Conv and pooling are channels-first. Each
//! value remembers its layout and a Transpose is inserted only where a
//! consumer needs the other one (masks and BatchNorm constants follow the
//! layout). Weights a module does not change are stored once per model.

use prost::Message;

use super::proto::{GraphProto, NodeProto, OperatorSetIdProto, data_type};
use crate::engine::data::InputMap;
use crate::engine::decompose::{Calibration, Head};
use crate::engine::kernels::PoolKind;
use crate::engine::model::{Activation, Cell, InputKind, Masks, Model, NodeId, Op, Padding};
use crate::error::{Error, Result};
use writer::{Graph, Layout, Value, act_name, attr_f, attr_floats, attr_i, attr_ints, attr_string, attr_strings, hwc_to_chw, value_info};

mod writer;

/// The opset the exported graph imports (ONNX 1.12, 2022; onnxruntime ≥ 1.12).
pub const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;
/// Largest exported file: protobuf messages cannot exceed 2 GiB; stay well below.
pub const MAX_EXPORT_BYTES: u64 = 1 << 30;

/// One module of the composition: module `class` of `model` with `masks`
/// and `head`; its answer is composition class `label` (an index into `class_names`).
#[derive(Debug, Clone, Copy)]
pub struct ExportModule<'a> {
    pub model: &'a Model,
    /// How the model reads the graph's input (the data as stored).
    pub input: InputMap,
    pub masks: &'a Masks,
    pub class: usize,
    pub head: Head,
    /// Modules pruned by class relevance: the margin's standardisation.
    pub calibration: Option<Calibration>,
    pub label: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Graph name.
    pub name: String,
    /// Also output `softmax` `[N, K]`: a softmax over the scores (the modules'
    /// log-odds `z_c − mean(others)`).
    pub softmax: bool,
    /// Each module's name (a `scores` column), for the metadata.
    pub module_names: Vec<String>,
    /// The graph input's per-sample shape (the data's, e.g. `[28, 28]`);
    /// the first module's model input shape when `None`. Same length.
    pub input_shape: Option<Vec<usize>>,
}

/// `ModelProto` as written: the loader's message plus what only an export
/// needs (the loader's copy leaves these out so a hostile file cannot make
/// it store them).
#[derive(Clone, PartialEq, Message)]
struct ExportModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(string, tag = "6")]
    doc_string: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

fn unsupported(name: impl Into<String>) -> Error {
    Error::Unsupported {
        what: "for ONNX export".into(),
        name: name.into(),
        supported: "2-unit channeled heads, one class per sample; Dense, Conv2D, DepthwiseConv2D, pooling, Flatten, Reshape, ZeroPadding2D, Concatenate, Add, BatchNorm, Dropout, Embedding, activations; \
                    SimpleRNN/LSTM/GRU with tanh/sigmoid/relu and rolled masks (the same units at every step)"
            .into(),
    }
}

/// Writes the composition as an ONNX model (see the module docs).
/// `class_names[label]` names the composition's classes.
pub fn export_composition(modules: &[ExportModule], class_names: &[String], opts: &ExportOptions) -> Result<Vec<u8>> {
    let first = modules.first().ok_or_else(|| Error::invalid("select at least one module to export"))?;
    let (shape, kind) = (opts.input_shape.as_ref().unwrap_or(&first.model.input.shape), first.model.input.kind);
    if shape.iter().product::<usize>() != first.model.input_len() {
        return Err(Error::shape("ONNX input", format!("{} values per sample", first.model.input_len()), format!("{shape:?}")));
    }
    for m in modules {
        if m.model.input_len() != first.model.input_len() || (m.model.input.kind == InputKind::Tokens) != (kind == InputKind::Tokens) {
            return Err(Error::invalid(format!(
                "modules of '{}' ({:?}, {:?}) and '{}' ({:?}, {:?}) read different inputs; one ONNX graph has one input",
                first.model.name, shape, kind, m.model.name, m.model.input.shape, m.model.input.kind
            )));
        }
        if m.head != Head::Two {
            // CM-RIE merges units into a model copy and votes: not written yet.
            return Err(unsupported(format!("the authors' N-output head (CM-RIE and voting) of module {} of '{}'", m.class, m.model.name)));
        }
        if m.label >= class_names.len() {
            return Err(Error::invalid(format!("module label {} is not one of the {} classes", m.label, class_names.len())));
        }
    }
    let mut g = Graph::default();
    let tokens = kind == InputKind::Tokens;
    let mut models: Vec<*const Model> = vec![];
    let mut logits_of = vec![];
    let mut diffs = vec![];
    for (i, m) in modules.iter().enumerate() {
        let mi = models.iter().position(|&p| std::ptr::eq(p, m.model)).unwrap_or_else(|| {
            models.push(m.model);
            models.len() - 1
        });
        let mut b = ModuleBuilder {
            g: &mut g,
            model: m.model,
            input: m.input,
            masks: m.masks,
            model_key: mi,
            prefix: format!("m{i}"),
            values: vec![None; m.model.nodes.len()],
            tokens,
        };
        let z = b.logits()?;
        logits_of.push(z.clone());
        diffs.push(channeled_head(&mut g, &format!("m{i}"), &z, m.model.classes(), m.class, m.calibration)?);
    }
    // The scores are the modules' log-odds `d`, exactly concerned_scores' values (ranking σ(d)
    // would tie where σ rounds to 1; see decompose::head).
    let refs: Vec<&str> = diffs.iter().map(String::as_str).collect();
    g.op_named("Concat", &refs, vec![attr_i("axis", 1)], "scores");
    let best = g.op("ArgMax", &["scores"], vec![attr_i("axis", 1), attr_i("keepdims", 0), attr_i("select_last_index", 0)], "best_module");
    let labels = g.const_i64("module_class", &[modules.len()], modules.iter().map(|m| m.label as i64).collect());
    g.op_named("Gather", &[&labels, &best], vec![attr_i("axis", 0)], "argmax");
    let k = modules.len() as i64;
    let mut outputs = vec![value_info("scores", data_type::FLOAT, &[None, Some(k)]), value_info("argmax", data_type::INT64, &[None])];
    if opts.softmax {
        g.op_named("Softmax", &["scores"], vec![attr_i("axis", 1)], "softmax");
        outputs.push(value_info("softmax", data_type::FLOAT, &[None, Some(k)]));
    }
    let mut dims = vec![None];
    dims.extend(shape.iter().map(|&d| Some(d as i64)));
    let input = value_info("input", if tokens { data_type::INT64 } else { data_type::FLOAT }, &dims);
    let graph = GraphProto {
        node: g.nodes,
        name: if opts.name.is_empty() { "composition".into() } else { opts.name.clone() },
        initializer: g.inits,
        input: vec![input],
        output: outputs,
    };
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let scales: Vec<String> = modules.iter().map(|m| format!("{}·x+{}", m.input.scale, m.input.offset)).collect();
    let model = ExportModelProto {
        ir_version: IR_VERSION,
        producer_name: "remodule".into(),
        producer_version: crate::VERSION.into(),
        doc_string: "A Remodule composition: input = data as stored; scores[:, k] = module k's concerned log-odds (its probability is sigmoid(scores)); argmax = index into remodule.classes".into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: vec![
            StringStringEntryProto { key: "remodule.classes".into(), value: json(class_names) },
            StringStringEntryProto { key: "remodule.modules".into(), value: json(&opts.module_names) },
            StringStringEntryProto { key: "remodule.input_scaling".into(), value: json(&scales) },
        ],
    };
    let len = model.encoded_len() as u64;
    if len > MAX_EXPORT_BYTES {
        return Err(Error::too_large("exported ONNX file (bytes)", len, MAX_EXPORT_BYTES));
    }
    Ok(model.encode_to_vec())
}

/// `d = z_c − mean of the other logits`, `[N, 1]`; a calibrated module's `d`
/// is standardised as `Calibration::apply` does.
fn channeled_head(g: &mut Graph, p: &str, z: &str, classes: usize, class: usize, cal: Option<Calibration>) -> Result<String> {
    if classes < 2 || class >= classes {
        return Err(Error::invalid(format!("module {class} of a {classes}-class model has no channeled head")));
    }
    let idx = g.const_i64(&format!("{p}_class"), &[1], vec![class as i64]);
    let zc = g.op("Gather", &[z, &idx], vec![attr_i("axis", 1)], &format!("{p}_zc"));
    let axes = g.const_i64("axis1", &[1], vec![1]);
    let sum = g.op("ReduceSum", &[z, &axes], vec![attr_i("keepdims", 1)], &format!("{p}_sum"));
    let rest = g.op("Sub", &[&sum, &zc], vec![], &format!("{p}_rest"));
    let n = g.const_f32(&format!("others{}", classes - 1), &[], vec![(classes - 1) as f32]);
    let others = g.op("Div", &[&rest, &n], vec![], &format!("{p}_others"));
    let Some(cal) = cal else {
        return Ok(g.op("Sub", &[&zc, &others], vec![], &format!("{p}_diff")));
    };
    let raw = g.op("Sub", &[&zc, &others], vec![], &format!("{p}_margin"));
    let mean = g.const_f32(&format!("{p}_cal_mean"), &[], vec![cal.mean]);
    let scale = g.const_f32(&format!("{p}_cal_scale"), &[], vec![cal.scale]);
    let centred = g.op("Sub", &[&raw, &mean], vec![], &format!("{p}_centred"));
    Ok(g.op("Div", &[&centred, &scale], vec![], &format!("{p}_diff")))
}

struct ModuleBuilder<'g, 'm> {
    g: &'g mut Graph,
    model: &'m Model,
    input: InputMap,
    masks: &'m Masks,
    /// Index of the model among the composition's (names its shared weights).
    model_key: usize,
    prefix: String,
    values: Vec<Option<Value>>,
    tokens: bool,
}

impl ModuleBuilder<'_, '_> {
    fn name(&self, id: NodeId, what: &str) -> String {
        format!("{}_n{id}_{what}", self.prefix)
    }

    /// A weight the module leaves unchanged: stored once per model.
    fn weight(&mut self, id: NodeId, role: &str, dims: &[usize], data: impl FnOnce() -> Vec<f32>) -> String {
        let name = format!("w{}_n{id}_{role}", self.model_key);
        if self.g.written.contains(&name) {
            return name;
        }
        self.g.const_f32(&name, dims, data())
    }

    /// Node `id`'s value in `layout` (a Transpose when it is stored the other way).
    fn get(&mut self, id: NodeId, layout: Layout) -> Value {
        let v = self.values[id].clone().expect("nodes are built in order");
        let v = if v.int { self.float(&v) } else { v };
        if v.layout == layout || self.model.nodes[id].shape.len() != 3 {
            return v;
        }
        let perm = if layout == Layout::Nchw { [0, 3, 1, 2] } else { [0, 2, 3, 1] };
        // Named after the value it reorders: a second reader shares it.
        let out = format!("{}_{}", v.name, if layout == Layout::Nchw { "nchw" } else { "nhwc" });
        if self.g.derived.insert(out.clone()) {
            self.g.op("Transpose", &[&v.name], vec![attr_ints("perm", &perm)], &out);
        }
        Value { name: out, layout, int: false }
    }

    fn float(&mut self, v: &Value) -> Value {
        let out = format!("{}_float", v.name);
        if self.g.derived.insert(out.clone()) {
            self.g.op("Cast", &[&v.name], vec![attr_i("to", data_type::FLOAT as i64)], &out);
        }
        Value { name: out, layout: v.layout, int: false }
    }

    /// The module's logits `[N, C]` (the head's pre-activations).
    fn logits(&mut self) -> Result<String> {
        let model = self.model;
        if model.out_steps() != 1 {
            return Err(unsupported(format!("per-step head of '{}' (a class per time step)", model.name)));
        }
        for (&id, m) in &self.masks.nodes {
            let units = if id < model.nodes.len() {
                model.units(id)
            } else {
                return Err(Error::invalid(format!("a mask names node {id}; model '{}' has {}", model.name, model.nodes.len())));
            };
            if m.keep.len() != units || m.clip_negative.as_ref().is_some_and(|c| c.len() != units) {
                return Err(Error::shape(format!("mask of layer '{}'", model.nodes[id].name), units, m.keep.len()));
            }
        }
        self.values[0] = Some(self.input()?);
        for id in 1..=model.head {
            let (pre, post) = self.node(id)?;
            if id == model.head {
                return Ok(pre.name);
            }
            let post = self.mask(id, post);
            self.values[id] = Some(post);
            self.g.check_size()?;
        }
        unreachable!("the head is a node")
    }

    fn input(&mut self) -> Result<Value> {
        let spec = &self.model.input;
        let mut v = Value { name: "input".into(), layout: Layout::Ir, int: self.tokens };
        let dims: Vec<i64> = std::iter::once(-1).chain(spec.shape.iter().map(|&d| d as i64)).collect();
        let shape = self.g.const_i64(&format!("{}_input_shape", self.prefix), &[dims.len()], dims);
        let reshaped = self.name(0, "reshaped");
        v.name = self.g.op("Reshape", &[&v.name, &shape], vec![], &reshaped);
        let map = self.input;
        if map.scale != 1.0 || map.offset != 0.0 {
            if v.int {
                v = self.float(&v);
            }
            if map.scale != 1.0 {
                let s = self.g.const_f32(&format!("{}_scale", self.prefix), &[], vec![map.scale]);
                v.name = self.g.op("Mul", &[&v.name, &s], vec![], &self.name(0, "scaled"));
            }
            if map.offset != 0.0 {
                let o = self.g.const_f32(&format!("{}_offset", self.prefix), &[], vec![map.offset]);
                v.name = self.g.op("Add", &[&v.name, &o], vec![], &self.name(0, "shifted"));
            }
        }
        Ok(v)
    }

    /// Forces removed units to 0 after the activation (recurrent layers mask themselves).
    fn mask(&mut self, id: NodeId, v: Value) -> Value {
        let Some(m) = self.masks.nodes.get(&id) else { return v };
        if matches!(self.model.nodes[id].op, Op::Recurrent(_)) {
            return v;
        }
        let shape = &self.model.nodes[id].shape;
        let bits: Vec<bool> = (0..m.keep.len()).map(|u| m.keep.contains(u)).collect();
        let (data, dims) =
            if v.layout == Layout::Nchw { (hwc_to_chw(&bits, shape), vec![shape[2], shape[0], shape[1]]) } else { (bits, shape.clone()) };
        let out = self.keep(id, &v.name, &dims, data);
        Value { name: out, ..v }
    }

    /// `Where(keep, x, 0)`: removed units read exactly 0 (a bool mask is a quarter of a float one).
    fn keep(&mut self, id: NodeId, x: &str, dims: &[usize], keep: Vec<bool>) -> String {
        let c = self.g.const_bool(&self.name(id, "keep"), dims, keep);
        let zero = self.g.const_f32("zero", &[], vec![0.0]);
        self.g.op("Where", &[&c, x, &zero], vec![], &self.name(id, "masked"))
    }

    fn activate(&mut self, id: NodeId, pre: Value, a: Activation) -> Value {
        let out = self.name(id, "act");
        let x = pre.name.clone();
        let (op, attrs) = match a {
            Activation::Linear => return pre,
            Activation::Softmax => {
                let pre = if pre.layout != Layout::Ir { self.get_value(id, pre, Layout::Ir) } else { pre };
                self.g.op("Softmax", &[&pre.name], vec![attr_i("axis", -1)], &out);
                return Value { name: out, ..pre };
            }
            Activation::LeakyRelu(alpha) => ("LeakyRelu", vec![attr_f("alpha", alpha)]),
            Activation::Elu(alpha) => ("Elu", vec![attr_f("alpha", alpha)]),
            Activation::HardSigmoid(alpha) => ("HardSigmoid", vec![attr_f("alpha", alpha), attr_f("beta", 0.5)]),
            Activation::Swish => {
                let s = self.g.op("Sigmoid", &[&x], vec![], &self.name(id, "sigmoid"));
                self.g.op("Mul", &[&x, &s], vec![], &out);
                return Value { name: out, ..pre };
            }
            // Opset 17 has no Gelu op: 0.5·x·(1 + erf(x/√2)), or the tanh form.
            Activation::Gelu | Activation::GeluTanh => {
                let c = |g: &mut Graph, v: f32| g.const_f32(&format!("c_{v}"), &[], vec![v]);
                let inner = if a == Activation::Gelu {
                    let k = c(self.g, std::f32::consts::FRAC_1_SQRT_2);
                    let t = self.g.op("Mul", &[&x, &k], vec![], &self.name(id, "gelu_in"));
                    self.g.op("Erf", &[&t], vec![], &self.name(id, "gelu_erf"))
                } else {
                    let (k, cube) = (c(self.g, 0.797_884_6), c(self.g, 0.044_715));
                    let x2 = self.g.op("Mul", &[&x, &x], vec![], &self.name(id, "gelu_x2"));
                    let x3 = self.g.op("Mul", &[&x2, &x], vec![], &self.name(id, "gelu_x3"));
                    let t = self.g.op("Mul", &[&x3, &cube], vec![], &self.name(id, "gelu_cx3"));
                    let t = self.g.op("Add", &[&x, &t], vec![], &self.name(id, "gelu_sum"));
                    let t = self.g.op("Mul", &[&t, &k], vec![], &self.name(id, "gelu_in"));
                    self.g.op("Tanh", &[&t], vec![], &self.name(id, "gelu_tanh"))
                };
                let (one, half) = (c(self.g, 1.0), c(self.g, 0.5));
                let t = self.g.op("Add", &[&inner, &one], vec![], &self.name(id, "gelu_1p"));
                let t = self.g.op("Mul", &[&t, &half], vec![], &self.name(id, "gelu_half"));
                self.g.op("Mul", &[&x, &t], vec![], &out);
                return Value { name: out, ..pre };
            }
            other => (act_name(other).unwrap_or("Identity"), vec![]),
        };
        self.g.op(op, &[&x], attrs, &out);
        Value { name: out, ..pre }
    }

    /// Transposes a value not yet stored in `values`.
    fn get_value(&mut self, id: NodeId, v: Value, layout: Layout) -> Value {
        let saved = self.values[id].replace(v);
        let out = self.get(id, layout);
        self.values[id] = saved;
        out
    }

    /// Node `id`: (pre-activation, output before masking).
    fn node(&mut self, id: NodeId) -> Result<(Value, Value)> {
        let model = self.model;
        let node = &model.nodes[id];
        let input = |k: usize| node.inputs[k];
        let in_shape = |k: usize| model.nodes[node.inputs[k]].shape.clone();
        let pre = match &node.op {
            Op::Input => return Err(Error::invalid("a model has one input node, first")),
            Op::Dense { kernel, bias, .. } => {
                let x = self.get(input(0), Layout::Ir);
                let (fin, fout) = kernel.dim();
                let clip = self.masks.nodes.get(&id).and_then(|m| m.clip_negative.as_ref()).filter(|c| c.count() > 0);
                let plain = |k: &ndarray::Array2<f32>| k.iter().copied().collect::<Vec<f32>>();
                let steps = node.len() / fout;
                let prod = match clip {
                    None => {
                        let w = self.weight(id, "kernel", &[fin, fout], || plain(kernel));
                        self.g.op("MatMul", &[&x.name, &w], vec![], &self.name(id, "matmul"))
                    }
                    Some(clip) => {
                        let first: Vec<bool> = (0..fout).map(|j| clip.contains(j)).collect();
                        let same = (0..steps).all(|t| (0..fout).all(|j| clip.contains(t * fout + j) == first[j]));
                        let clipped = |cols: &[bool]| {
                            kernel.indexed_iter().map(|((_, j), &w)| if cols[j] { w.max(0.0) } else { w }).collect::<Vec<f32>>()
                        };
                        if same {
                            let w = self.g.const_f32(&self.name(id, "kernel_clipped"), &[fin, fout], clipped(&first));
                            self.g.op("MatMul", &[&x.name, &w], vec![], &self.name(id, "matmul"))
                        } else {
                            // Per-step Dense whose clipped columns differ by step: both products, chosen per (step, unit).
                            let w = self.weight(id, "kernel", &[fin, fout], || plain(kernel));
                            let wp = self.g.const_f32(&self.name(id, "kernel_positive"), &[fin, fout], clipped(&vec![true; fout]));
                            let a = self.g.op("MatMul", &[&x.name, &w], vec![], &self.name(id, "matmul"));
                            let b = self.g.op("MatMul", &[&x.name, &wp], vec![], &self.name(id, "matmul_positive"));
                            let sel = self.g.const_bool(
                                &self.name(id, "clip"),
                                &node.shape,
                                (0..steps * fout).map(|u| clip.contains(u)).collect(),
                            );
                            self.g.op("Where", &[&sel, &b, &a], vec![], &self.name(id, "matmul_clipped"))
                        }
                    }
                };
                let b = self.weight(id, "bias", &[fout], || bias.to_vec());
                let out = self.g.op("Add", &[&prod, &b], vec![], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Conv2D { kernel, bias, strides, padding, .. } => {
                let x = self.get(input(0), Layout::Nchw);
                let [kh, kw, cin, cout] = *kernel.shape() else { unreachable!() };
                let w = self.weight(id, "kernel", &[cout, cin, kh, kw], || {
                    let mut v = Vec::with_capacity(kernel.len());
                    for o in 0..cout {
                        for i in 0..cin {
                            for y in 0..kh {
                                for xx in 0..kw {
                                    v.push(kernel[[y, xx, i, o]]);
                                }
                            }
                        }
                    }
                    v
                });
                let b = self.weight(id, "bias", &[cout], || bias.to_vec());
                let pads = self.pads(&in_shape(0), *padding, kh, kw, *strides)?;
                let attrs = vec![attr_ints("kernel_shape", &[kh, kw]), attr_ints("strides", strides), attr_ints("pads", &pads)];
                let out = self.g.op("Conv", &[&x.name, &w, &b], attrs, &self.name(id, "pre"));
                Value { name: out, layout: Layout::Nchw, int: false }
            }
            // ONNX Conv with group = C: weight [C·M, 1, kh, kw], output channel c·M + m as in the IR.
            Op::DepthwiseConv2D { kernel, bias, strides, padding, .. } => {
                let x = self.get(input(0), Layout::Nchw);
                let [kh, kw, cin, mult] = *kernel.shape() else { unreachable!() };
                let w = self.weight(id, "kernel", &[cin * mult, 1, kh, kw], || {
                    let mut v = Vec::with_capacity(kernel.len());
                    for o in 0..cin * mult {
                        for y in 0..kh {
                            for xx in 0..kw {
                                v.push(kernel[[y, xx, o / mult, o % mult]]);
                            }
                        }
                    }
                    v
                });
                let b = self.weight(id, "bias", &[cin * mult], || bias.to_vec());
                let pads = self.pads(&in_shape(0), *padding, kh, kw, *strides)?;
                let attrs = vec![
                    attr_ints("kernel_shape", &[kh, kw]),
                    attr_ints("strides", strides),
                    attr_ints("pads", &pads),
                    attr_i("group", cin as i64),
                ];
                let out = self.g.op("Conv", &[&x.name, &w, &b], attrs, &self.name(id, "pre"));
                Value { name: out, layout: Layout::Nchw, int: false }
            }
            Op::Pool2D { kind, size, strides, padding } => {
                let x = self.get(input(0), Layout::Nchw);
                let pads = self.pads(&in_shape(0), *padding, size[0], size[1], *strides)?;
                let mut attrs = vec![attr_ints("kernel_shape", size), attr_ints("strides", strides), attr_ints("pads", &pads)];
                let op = match kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::Avg => {
                        // The engine averages over the real taps only.
                        attrs.push(attr_i("count_include_pad", 0));
                        "AveragePool"
                    }
                };
                let out = self.g.op(op, &[&x.name], attrs, &self.name(id, "pre"));
                Value { name: out, layout: Layout::Nchw, int: false }
            }
            Op::GlobalPool(kind) => {
                let x = self.get(input(0), Layout::Ir);
                let rank = in_shape(0).len();
                let axes: Vec<usize> = (1..rank).collect();
                let op = if *kind == PoolKind::Max { "ReduceMax" } else { "ReduceMean" };
                let out = self.g.op(op, &[&x.name], vec![attr_ints("axes", &axes), attr_i("keepdims", 0)], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Flatten => {
                let x = self.get(input(0), Layout::Ir);
                let out = self.g.op("Flatten", &[&x.name], vec![attr_i("axis", 1)], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Reshape { shape } => {
                let x = self.get(input(0), Layout::Ir);
                let dims: Vec<i64> = std::iter::once(-1).chain(shape.iter().map(|&d| d as i64)).collect();
                let to = self.g.const_i64(&self.name(id, "shape"), &[dims.len()], dims);
                let out = self.g.op("Reshape", &[&x.name, &to], vec![], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            // On NHWC values: pads [N, top, left, C begins, N, bottom, right, C ends].
            Op::ZeroPad2D { pads: [t, l, b, r] } => {
                let x = self.get(input(0), Layout::Ir);
                let p = self.g.const_i64(&self.name(id, "pads"), &[8], [0, *t, *l, 0, 0, *b, *r, 0].iter().map(|&v| v as i64).collect());
                let out = self.g.op("Pad", &[&x.name, &p], vec![], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Concat => {
                let xs: Vec<String> = (0..node.inputs.len()).map(|k| self.get(input(k), Layout::Ir).name).collect();
                let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
                let out = self.g.op("Concat", &refs, vec![attr_i("axis", -1)], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Dropout | Op::Activation(_) => {
                let v = self.values[input(0)].clone().expect("built in order");
                if v.int { self.float(&v) } else { v }
            }
            // Slopes per channel broadcast over the last (channels-last) axis; per value, the node's shape.
            Op::PRelu { alpha } => {
                let x = self.get(input(0), Layout::Ir);
                let dims = if alpha.len() == node.len() { node.shape.clone() } else { vec![alpha.len()] };
                let s = self.weight(id, "alpha", &dims, || alpha.to_vec());
                let out = self.g.op("PRelu", &[&x.name, &s], vec![], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Add { .. } => {
                let first = self.values[input(0)].clone().expect("built in order");
                let layout = if first.int { Layout::Ir } else { first.layout };
                let mut acc = self.get(input(0), layout);
                for k in 1..node.inputs.len() {
                    let v = self.get(input(k), layout);
                    let out = self.g.op("Add", &[&acc.name, &v.name], vec![], &self.name(id, &format!("sum{k}")));
                    acc = Value { name: out, layout, int: false };
                }
                acc
            }
            Op::Multiply => {
                let first = self.values[input(0)].clone().expect("built in order");
                let layout = if first.int { Layout::Ir } else { first.layout };
                let (a, b) = (self.get(input(0), layout), self.get(input(1), layout));
                let out = self.g.op("Mul", &[&a.name, &b.name], vec![], &self.name(id, "pre"));
                Value { name: out, layout, int: false }
            }
            Op::BatchNorm { scale, shift } => {
                let first = self.values[input(0)].clone().expect("built in order");
                let layout = if first.int { Layout::Ir } else { first.layout };
                let x = self.get(input(0), layout);
                let c = scale.len();
                let dims = if layout == Layout::Nchw { vec![c, 1, 1] } else { vec![c] };
                let s = self.weight(id, "scale", &dims, || scale.to_vec());
                let t = self.weight(id, "shift", &dims, || shift.to_vec());
                let m = self.g.op("Mul", &[&x.name, &s], vec![], &self.name(id, "scaled"));
                let out = self.g.op("Add", &[&m, &t], vec![], &self.name(id, "pre"));
                Value { name: out, layout, int: false }
            }
            Op::Embedding { table } => {
                let v = self.values[input(0)].clone().expect("built in order");
                let ids = if v.int {
                    v.name
                } else {
                    // Token ids that went through a float scaling: the engine reads them as integers.
                    self.g.op("Cast", &[&v.name], vec![attr_i("to", data_type::INT64 as i64)], &self.name(id, "ids"))
                };
                let (vocab, d) = table.dim();
                let w = self.weight(id, "table", &[vocab, d], || table.iter().copied().collect());
                let out = self.g.op("Gather", &[&w, &ids], vec![attr_i("axis", 0)], &self.name(id, "pre"));
                Value { name: out, layout: Layout::Ir, int: false }
            }
            Op::Recurrent(_) => self.recurrent(id)?,
            other => return Err(unsupported(format!("{} layer '{}'", other.kind(), node.name))),
        };
        // The head's output is its pre-activation (the logits).
        let post = match node.op.activation() {
            Some(a) if id != model.head => self.activate(id, pre.clone(), a),
            _ => pre.clone(),
        };
        Ok((pre, post))
    }

    /// ONNX `pads` `[top, left, bottom, right]` for a window over `[H, W, C]`.
    fn pads(&self, shape: &[usize], padding: Padding, kh: usize, kw: usize, strides: [usize; 2]) -> Result<[usize; 4]> {
        if let Padding::Explicit(p) = padding {
            return Ok(p);
        }
        let [h, w, c] = shape else { return Err(Error::shape("window input", "[H, W, C]", format!("{shape:?}"))) };
        let g = padding
            .geometry(*h, *w, *c, kh, kw, strides[0], strides[1])
            .ok_or_else(|| Error::shape("window", format!("{kh}×{kw} fitting {h}×{w}"), "a window that does not fit"))?;
        let bottom = ((g.oh - 1) * g.sh + kh).saturating_sub(h + g.pad_top);
        let right = ((g.ow - 1) * g.sw + kw).saturating_sub(w + g.pad_left);
        Ok([g.pad_top, g.pad_left, bottom, right])
    }

    /// SimpleRNN / LSTM / GRU as the ONNX op, removed units' weights zeroed.
    fn recurrent(&mut self, id: NodeId) -> Result<Value> {
        let model = self.model;
        let node = &model.nodes[id];
        let Op::Recurrent(r) = &node.op else { unreachable!() };
        let (steps, u, f) = (model.steps(id), r.units, r.kernel.nrows());
        let gates = r.cell.gates();
        // Rolled: one unit set for every step.
        let removed: Vec<bool> = match self.masks.nodes.get(&id) {
            None => vec![false; u],
            Some(m) => {
                let first: Vec<bool> = (0..u).map(|n| !m.keep.contains(n)).collect();
                // A step that keeps a unit the first step removes, or the reverse.
                if (1..steps).any(|t| (0..u).any(|n| m.keep.contains(t * u + n) == first[n])) {
                    return Err(unsupported(format!(
                        "unrolled mask of layer '{}' (different units removed at different steps)",
                        node.name
                    )));
                }
                first
            }
        };
        // Per-gate masks: gate columns removed (Keras blocks, `G × U`), one set for every step.
        let gate_removed: Vec<bool> = match self.masks.nodes.get(&id).and_then(|m| m.gates.as_ref()) {
            None => vec![false; gates * u],
            Some(k) => {
                let gu = gates * u;
                if k.len() != steps * gu {
                    return Err(Error::shape(format!("gate mask of layer '{}'", node.name), steps * gu, k.len()));
                }
                let first: Vec<bool> = (0..gu).map(|c| !k.contains(c)).collect();
                if (1..steps).any(|t| (0..gu).any(|c| k.contains(t * gu + c) == first[c])) {
                    return Err(unsupported(format!(
                        "unrolled gate mask of layer '{}' (different gate columns removed at different steps)",
                        node.name
                    )));
                }
                first
            }
        };
        let act = act_name(r.activation)
            .ok_or_else(|| unsupported(format!("{:?} activation of recurrent layer '{}'", r.activation, node.name)))?;
        // A hard-sigmoid gate is ONNX's HardSigmoid with its α and β = 0.5 (activation_alpha/beta).
        let hard = match r.recurrent_activation {
            Activation::HardSigmoid(a) => Some(a),
            _ => None,
        };
        let gate = match hard {
            Some(_) => "HardSigmoid",
            None => act_name(r.recurrent_activation)
                .ok_or_else(|| unsupported(format!("{:?} recurrent activation of layer '{}'", r.recurrent_activation, node.name)))?,
        };
        // ONNX gate blocks in Keras' column blocks: LSTM i,o,f,c ← i,f,c,o; GRU z,r,h and RNN as they are.
        let order: Vec<usize> = match r.cell {
            Cell::Lstm => vec![0, 3, 1, 2],
            _ => (0..gates).collect(),
        };
        let any_removed = removed.iter().any(|&x| x);
        let suffix = if any_removed || gate_removed.contains(&true) { format!("{}_", self.prefix) } else { String::new() };
        let mk = self.model_key;
        let keyed = |role: &str| format!("{suffix}w{mk}_n{id}_{role}");
        let mut w = Vec::with_capacity(gates * u * f);
        let mut rr = Vec::with_capacity(gates * u * u);
        let mut b = Vec::with_capacity(2 * gates * u);
        for &kg in &order {
            for n in 0..u {
                let col = kg * u + n;
                let gone = removed[n] || gate_removed[col];
                w.extend((0..f).map(|i| if gone { 0.0 } else { r.kernel[[i, col]] }));
                rr.extend((0..u).map(|m| if gone || removed[m] { 0.0 } else { r.recurrent[[m, col]] }));
            }
        }
        for bias in [Some(&r.bias), r.recurrent_bias.as_ref()] {
            for &kg in &order {
                b.extend((0..u).map(|n| if removed[n] || gate_removed[kg * u + n] { 0.0 } else { bias.map_or(0.0, |bb| bb[kg * u + n]) }));
            }
        }
        let name = |s: &mut Self, role: &str, dims: &[usize], data: Vec<f32>| -> String {
            let k = keyed(role);
            if s.g.written.contains(&k) { k } else { s.g.const_f32(&k, dims, data) }
        };
        let (wn, rn, bn) =
            (name(self, "W", &[1, gates * u, f], w), name(self, "R", &[1, gates * u, u], rr), name(self, "B", &[1, 2 * gates * u], b));
        let x = self.get(node.inputs[0], Layout::Ir);
        let xt = self.g.op("Transpose", &[&x.name], vec![attr_ints("perm", &[1, 0, 2])], &self.name(id, "time_major"));
        let (op, acts) = match r.cell {
            Cell::SimpleRnn => ("RNN", vec![act]),
            Cell::Lstm => ("LSTM", vec![gate, act, act]),
            Cell::Gru { .. } => ("GRU", vec![gate, act]),
        };
        let mut attrs = vec![attr_i("hidden_size", u as i64), attr_strings("activations", &acts)];
        if let Some(alpha) = hard {
            // One (α, β) per listed activation; the others ignore theirs.
            let n = acts.len();
            let (mut a, mut bt) = (vec![0.0; n], vec![0.0; n]);
            (a[0], bt[0]) = (alpha, 0.5);
            attrs.extend([attr_floats("activation_alpha", a), attr_floats("activation_beta", bt)]);
        }
        if let Cell::Gru { reset_after } = r.cell {
            attrs.push(attr_i("linear_before_reset", reset_after as i64));
        }
        // Y keeps each state at its own step and Y_h is the last one computed (step 0's), as in the IR.
        if r.reverse {
            attrs.push(attr_string("direction", "reverse"));
        }
        let (y, yh) = (self.name(id, "Y"), self.name(id, "Y_h"));
        let mut outputs = vec![y.clone(), yh.clone()];
        if r.cell == Cell::Lstm {
            outputs.push(self.name(id, "Y_c"));
        }
        self.g.nodes.push(NodeProto {
            input: vec![xt, wn, rn, bn],
            output: outputs,
            name: self.name(id, "cell"),
            op_type: op.into(),
            attribute: attrs,
            domain: String::new(),
        });
        let (out, mask_dims) = if r.return_sequences {
            let ax = self.g.const_i64("axis1", &[1], vec![1]);
            let sq = self.g.op("Squeeze", &[&y, &ax], vec![], &self.name(id, "Y_seq"));
            (self.g.op("Transpose", &[&sq], vec![attr_ints("perm", &[1, 0, 2])], &self.name(id, "seq")), vec![steps, u])
        } else {
            let ax = self.g.const_i64("axis0", &[1], vec![0]);
            (self.g.op("Squeeze", &[&yh, &ax], vec![], &self.name(id, "last")), vec![u])
        };
        if !any_removed {
            return Ok(Value { name: out, layout: Layout::Ir, int: false });
        }
        // Consumers read 0 from a removed unit whatever its state (a sigmoid SimpleRNN's is not 0).
        let keep: Vec<bool> = (0..mask_dims.iter().product::<usize>()).map(|i| !removed[i % u]).collect();
        let masked = self.keep(id, &out, &mask_dims, keep);
        Ok(Value { name: masked, layout: Layout::Ir, int: false })
    }
}

//! Remodule's own format (`.remodule`): one safetensors file. Its tensors are
//! the weights (`nodes.<i>.<role>`, F32, Keras layouts as in the IR) and, in
//! a module set, the masks (`modules.<m>.masks.<node>.keep`,
//! `.clip_negative` and `.gates`, U64 words as [`BitSet::words`] keeps them). The header's
//! `__metadata__["remodule"]` is a JSON manifest with everything else: format
//! name and version, the model's name, class names, input spec and node list
//! (op kind and options, inputs, output shape, declared parameter count) and,
//! in a module set, the decomposition settings and each module's class, sample
//! counts and mask lengths.
//!
//! Loading rebuilds the model through [`ModelBuilder`], so a file gets every
//! check a Keras file gets. Nothing is allocated beyond what the file holds:
//! the safetensors header must fit in the file and its tensors must tile the
//! data exactly; each tensor's shape is checked against what the manifest
//! implies before it is read.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ndarray::{Array1, Array2, Array4};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::bits::BitSet;
use crate::engine::decompose::{Calibration, Decomposition, Module, Settings};
use crate::engine::kernels::PoolKind;
use crate::engine::model::{Activation, Cell, InputSpec, Masks, Model, ModelBuilder, NodeId, Op, Padding, Recurrent, UnitMask};
use crate::error::{Error, MAX_TENSOR_ELEMS, Result, checked_elems};

/// The format's name in errors.
const FORMAT: &str = "Remodule";
/// The manifest's key in `__metadata__` and its `format` value.
const KEY: &str = "remodule";
/// The newest manifest version this build writes; it reads every version up
/// to it. A file is written with the lowest version that can express it, so
/// older readers still open every file they could read before: version 2
/// adds the `RepeatVector` kind (option `times`); version 3 adds per-gate
/// recurrent masks (a mask's `gates` length and its `.gates` tensor);
/// version 4 adds class relevance (settings `strength`, a module's `calibration`);
/// version 5 adds `rescales` (the model scales its own input), `GlobalMaxPooling2D`,
/// `ZeroPadding2D` (its pads as `padding`), `Concatenate` and the activations
/// beyond linear/relu/tanh/sigmoid/softmax; version 6 adds `DepthwiseConv2D`
/// (options as Conv2D's) and `Reshape` (its `shape` is the node's); version 7
/// adds `reverse` on recurrent layers (the backward half of a Bidirectional); version 8
/// adds `Multiply` (a Bidirectional's `mul` merge). The input
/// rule: a model file leaves scale and offset to it (before version 5 a model
/// file's scale was ignored on loading, so it still is); a module set carries
/// the map it was decomposed with.
pub const VERSION: u32 = 8;
/// Largest pool window, stride or conv kernel side (as the Keras loader).
const MAX_WINDOW: usize = 1 << 16;
/// Op kinds a manifest may name (`Op::kind`).
const KINDS: &[&str] = &[
    "Input",
    "Dense",
    "Conv2D",
    "DepthwiseConv2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "ZeroPadding2D",
    "Concatenate",
    "PReLU",
    "Flatten",
    "Reshape",
    "Add",
    "BatchNormalization",
    "Activation",
    "Dropout",
    "Embedding",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "RepeatVector",
];

/// The lowest manifest version that can express `model` and its
/// decomposition `dec` (see [`VERSION`]).
fn version_for(model: &Model, dec: Option<&Decomposition>) -> u32 {
    let old_activation =
        |a: Activation| matches!(a, Activation::Linear | Activation::Relu | Activation::Tanh | Activation::Sigmoid | Activation::Softmax);
    let activations = model.nodes.iter().flat_map(|n| match &n.op {
        Op::Recurrent(r) => vec![r.activation, r.recurrent_activation],
        op => op.activation().into_iter().collect(),
    });
    // A model file that states its own scale (not the rule's) needs a reader that keeps it.
    let given = dec.is_none() && (model.input.scale.is_some() || model.input.offset.is_some());
    if model.nodes.iter().any(|n| matches!(&n.op, Op::Recurrent(r) if r.reverse)) {
        7
    } else if model.nodes.iter().any(|n| matches!(n.op, Op::DepthwiseConv2D { .. } | Op::Reshape { .. })) {
        6
    } else if given
        || model.input.rescales
        || model.nodes.iter().any(|n| matches!(n.op, Op::GlobalPool(PoolKind::Max) | Op::ZeroPad2D { .. } | Op::Concat | Op::PRelu { .. }))
        || activations.into_iter().any(|a| !old_activation(a))
    {
        5
    } else if dec.is_some_and(|d| d.settings.strength > 0.0 || d.modules.iter().any(|m| m.calibration.is_some())) {
        4
    } else if dec.is_some_and(|d| d.modules.iter().any(|m| m.masks.nodes.values().any(|k| k.gates.is_some()))) {
        3
    } else if model.nodes.iter().any(|n| matches!(n.op, Op::RepeatVector { .. })) {
        2
    } else {
        1
    }
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contents {
    Model,
    /// A model and its decomposition.
    Modules,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    contents: Contents,
    model: ModelSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modules: Option<ModuleSetSpec>,
}

#[derive(Serialize, Deserialize)]
struct ModelSpec {
    name: String,
    class_names: Vec<String>,
    input: InputSpec,
    nodes: Vec<NodeSpec>,
}

/// One node: its op kind (`Op::kind`) with that kind's options (the others
/// absent); its weights are tensors. Flat rather than a tagged enum: serde's
/// tagged enums cost much more code in the wasm bundle.
#[derive(Serialize, Deserialize, Default)]
struct NodeSpec {
    name: String,
    kind: String,
    inputs: Vec<NodeId>,
    /// Output shape per sample; must equal what the builder infers.
    shape: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_params: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activation: Option<Activation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strides: Option<[usize; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    padding: Option<Padding>,
    /// Pool window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<[usize; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    units: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recurrent_activation: Option<Activation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    return_sequences: Option<bool>,
    /// GRU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reset_after: Option<bool>,
    /// Recurrent layers running last step first only (version 7).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reverse: bool,
    /// RepeatVector only (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct ModuleSetSpec {
    #[serde(deserialize_with = "saved_settings")]
    settings: Settings,
    recorded_samples: usize,
    modules: Vec<ModuleSpec>,
}

/// A module set's settings as saved: `strength` is written only when it is
/// not 0 (so files from before it stay byte-identical), so a missing one is
/// 0, whatever today's default.
fn saved_settings<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Settings, D::Error> {
    let mut v = Value::deserialize(d)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("strength").or_insert(0.into());
    }
    serde_json::from_value(v).map_err(serde::de::Error::custom)
}

#[derive(Serialize, Deserialize)]
struct ModuleSpec {
    class: usize,
    concerned: usize,
    unconcerned: usize,
    masks: Vec<MaskSpec>,
    /// Modules pruned by class relevance only (version 4): the margin's standardisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<Calibration>,
}

#[derive(Serialize, Deserialize)]
struct MaskSpec {
    node: NodeId,
    /// Bits in the mask (`Model::units(node)`).
    units: usize,
    clip_negative: bool,
    /// Per-gate masks only (version 3): bits in the gate mask (`T × G × U`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gates: Option<usize>,
}

// ---- writing ----

/// An owned tensor for `safetensors::serialize`.
struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for Tensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

#[derive(Default)]
struct Tensors(Vec<(String, Tensor)>);

impl Tensors {
    /// `iter` yields the array's elements in logical (row-major) order, whatever its memory layout.
    fn f32s<'a>(&mut self, name: String, shape: &[usize], values: impl Iterator<Item = &'a f32>) {
        let data = values.flat_map(|v| v.to_le_bytes()).collect();
        self.0.push((name, Tensor { dtype: Dtype::F32, shape: shape.to_vec(), data }));
    }
    fn bits(&mut self, name: String, set: &BitSet) {
        let data = set.words().iter().flat_map(|w| w.to_le_bytes()).collect();
        self.0.push((name, Tensor { dtype: Dtype::U64, shape: vec![set.words().len()], data }));
    }
}

/// The model as a `.remodule` file.
pub fn save_model(model: &Model) -> Result<Vec<u8>> {
    let mut t = Tensors::default();
    let spec = model_spec(model, &mut t);
    write(Manifest { format: KEY.into(), version: version_for(model, None), contents: Contents::Model, model: spec, modules: None }, t)
}

/// A model and its decomposition (a module set) as a `.remodule` file. The
/// decomposition must fit the model as [`load_modules`] checks.
pub fn save_modules(model: &Model, dec: &Decomposition) -> Result<Vec<u8>> {
    check_decomposition(model, dec)?;
    let mut t = Tensors::default();
    let spec = model_spec(model, &mut t);
    let mut modules = Vec::with_capacity(dec.modules.len());
    for (m, module) in dec.modules.iter().enumerate() {
        let mut masks = Vec::with_capacity(module.masks.nodes.len());
        for (&node, mask) in &module.masks.nodes {
            t.bits(format!("modules.{m}.masks.{node}.keep"), &mask.keep);
            if let Some(clip) = &mask.clip_negative {
                t.bits(format!("modules.{m}.masks.{node}.clip_negative"), clip);
            }
            if let Some(gates) = &mask.gates {
                t.bits(format!("modules.{m}.masks.{node}.gates"), gates);
            }
            masks.push(MaskSpec {
                node,
                units: mask.keep.len(),
                clip_negative: mask.clip_negative.is_some(),
                gates: mask.gates.as_ref().map(BitSet::len),
            });
        }
        modules.push(ModuleSpec {
            class: module.class,
            concerned: module.concerned,
            unconcerned: module.unconcerned,
            masks,
            calibration: module.calibration,
        });
    }
    let set = ModuleSetSpec { settings: dec.settings.clone(), recorded_samples: dec.recorded_samples, modules };
    write(
        Manifest {
            format: KEY.into(),
            version: version_for(model, Some(dec)),
            contents: Contents::Modules,
            model: spec,
            modules: Some(set),
        },
        t,
    )
}

fn model_spec(model: &Model, t: &mut Tensors) -> ModelSpec {
    let mut nodes = Vec::with_capacity(model.nodes.len());
    for (i, n) in model.nodes.iter().enumerate() {
        let name = |role: &str| format!("nodes.{i}.{role}");
        let mut spec = NodeSpec {
            name: n.name.clone(),
            kind: n.op.kind().into(),
            inputs: n.inputs.clone(),
            shape: n.shape.clone(),
            source_params: n.source_params,
            activation: n.op.activation(),
            ..NodeSpec::default()
        };
        match &n.op {
            Op::Dense { kernel, bias, .. } => {
                t.f32s(name("kernel"), kernel.shape(), kernel.iter());
                t.f32s(name("bias"), bias.shape(), bias.iter());
            }
            Op::Conv2D { kernel, bias, strides, padding, .. } | Op::DepthwiseConv2D { kernel, bias, strides, padding, .. } => {
                t.f32s(name("kernel"), kernel.shape(), kernel.iter());
                t.f32s(name("bias"), bias.shape(), bias.iter());
                (spec.strides, spec.padding) = (Some(*strides), Some(*padding));
            }
            Op::Pool2D { size, strides, padding, .. } => {
                (spec.size, spec.strides, spec.padding) = (Some(*size), Some(*strides), Some(*padding))
            }
            Op::BatchNorm { scale, shift } => {
                t.f32s(name("scale"), scale.shape(), scale.iter());
                t.f32s(name("shift"), shift.shape(), shift.iter());
            }
            Op::Embedding { table } => t.f32s(name("embeddings"), table.shape(), table.iter()),
            Op::PRelu { alpha } => t.f32s(name("alpha"), alpha.shape(), alpha.iter()),
            Op::Recurrent(r) => {
                t.f32s(name("kernel"), r.kernel.shape(), r.kernel.iter());
                t.f32s(name("recurrent_kernel"), r.recurrent.shape(), r.recurrent.iter());
                t.f32s(name("bias"), r.bias.shape(), r.bias.iter());
                if let Some(rb) = &r.recurrent_bias {
                    t.f32s(name("recurrent_bias"), rb.shape(), rb.iter());
                }
                spec.units = Some(r.units);
                spec.activation = Some(r.activation);
                spec.recurrent_activation = Some(r.recurrent_activation);
                spec.return_sequences = Some(r.return_sequences);
                spec.reverse = r.reverse;
                if let Cell::Gru { reset_after } = r.cell {
                    spec.reset_after = Some(reset_after);
                }
            }
            Op::RepeatVector { times } => spec.times = Some(*times),
            Op::ZeroPad2D { pads } => spec.padding = Some(Padding::Explicit(*pads)),
            Op::Input
            | Op::Concat
            | Op::GlobalPool(_)
            | Op::Flatten
            | Op::Reshape { .. }
            | Op::Add { .. }
            | Op::Multiply
            | Op::Activation(_)
            | Op::Dropout => {}
        }
        nodes.push(spec);
    }
    ModelSpec { name: model.name.clone(), class_names: model.class_names.clone(), input: model.input.clone(), nodes }
}

fn write(manifest: Manifest, t: Tensors) -> Result<Vec<u8>> {
    let json = serde_json::to_string(&manifest).map_err(|e| Error::invalid(format!("cannot write the manifest: {e}")))?;
    let meta = HashMap::from([(KEY.to_string(), json)]);
    // Fails only past safetensors' 100 MB header limit.
    safetensors::serialize(t.0, Some(meta)).map_err(|e| Error::invalid(format!("cannot write a {FORMAT} file: {e}")))
}

// ---- reading ----

/// Does this look like a safetensors file (8-byte little-endian header length, then `{`)?
pub fn sniff(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[8] == b'{'
}

/// What a `.remodule` file holds, from its manifest (nothing else is read).
pub fn contents(bytes: &[u8]) -> Result<Contents> {
    Ok(open(bytes)?.1.contents)
}

/// Loads the model of a `.remodule` file (a model, or a module set's model).
/// The model's name is the manifest's; `name` is used when that is empty.
pub fn load_native(bytes: &[u8], name: &str) -> Result<Model> {
    let (file, manifest) = open(bytes)?;
    let mut r = Reader { file, used: HashSet::new() };
    let mut model = read_model(&manifest.model, &mut r, name)?;
    if manifest.contents == Contents::Model {
        r.all_used()?;
        // Before the input rule (version 5) the stored scale of a model file was never used.
        if manifest.version < 5 {
            (model.input.scale, model.input.offset) = (None, None);
        }
    }
    Ok(model)
}

/// Loads a module set: the model and its decomposition, checked against each
/// other (masks only on tracked nodes and as long as their units, classes in
/// range and ascending, settings valid). `name` as in [`load_native`].
pub fn load_modules(bytes: &[u8], name: &str) -> Result<(Model, Decomposition)> {
    let (file, manifest) = open(bytes)?;
    let set = match (manifest.contents, &manifest.modules) {
        (Contents::Modules, Some(set)) => set,
        (Contents::Modules, None) => return Err(Error::format(FORMAT, "the manifest of a module set has no \"modules\"")),
        (Contents::Model, _) => {
            return Err(Error::format(FORMAT, "this file holds a model, not a module set (decompose it, then save the modules)"));
        }
    };
    let mut r = Reader { file, used: HashSet::new() };
    let model = read_model(&manifest.model, &mut r, name)?;
    set.settings.validate()?;
    let mut modules = Vec::with_capacity(set.modules.len().min(model.classes()));
    for (m, spec) in set.modules.iter().enumerate() {
        let mut masks = Masks::default();
        for mask in &spec.masks {
            let node = mask.node;
            let bits = |r: &mut Reader, role: &str, len: usize| r.bits(&format!("modules.{m}.masks.{node}.{role}"), len);
            let keep = bits(&mut r, "keep", mask.units)?;
            let clip_negative = if mask.clip_negative { Some(bits(&mut r, "clip_negative", mask.units)?) } else { None };
            let gates = match mask.gates {
                Some(len) => Some(bits(&mut r, "gates", len)?),
                None => None,
            };
            if masks.nodes.insert(node, UnitMask { keep, clip_negative, gates }).is_some() {
                return Err(Error::format(FORMAT, format!("module {m} has two masks for node {node}")));
            }
        }
        let (kept_units, total_units) = masks.unit_counts();
        modules.push(Module {
            class: spec.class,
            head: set.settings.head,
            masks,
            concerned: spec.concerned,
            unconcerned: spec.unconcerned,
            kept_units,
            total_units,
            calibration: spec.calibration,
        });
    }
    r.all_used()?;
    let dec = Decomposition { settings: set.settings.clone(), modules, recorded_samples: set.recorded_samples };
    check_decomposition(&model, &dec)?;
    Ok((model, dec))
}

/// The header's manifest, version-checked before it is interpreted.
fn open(bytes: &[u8]) -> Result<(File<'_>, Manifest)> {
    let head: [u8; 8] = bytes.get(..8).and_then(|h| h.try_into().ok()).ok_or_else(|| {
        Error::format(FORMAT, format!("{} bytes is too short: the file starts with an 8-byte header length", bytes.len()))
    })?;
    let n = u64::from_le_bytes(head);
    let rest = bytes.len() as u64 - 8;
    if n > rest {
        return Err(Error::format(
            FORMAT,
            format!("the header claims {n} bytes but only {rest} follow (truncated, or not a {FORMAT} file)"),
        ));
    }
    // safetensors 0.8.0 adds the data's end offset to the header length
    // unchecked (a panic where overflow is checked): bound every end first.
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n as usize])
        .map_err(|e| Error::format(FORMAT, format!("the safetensors header is not a JSON object: {e}")))?;
    let data_len = rest - n;
    for (name, t) in header.iter().filter(|(k, _)| *k != "__metadata__") {
        match t.get("data_offsets").and_then(|o| o.get(1)).and_then(Value::as_u64) {
            Some(end) if end > data_len => {
                return Err(Error::format(
                    FORMAT,
                    format!("tensor '{name}' ends at byte {end} of {data_len} (truncated, or not a {FORMAT} file)"),
                ));
            }
            _ => {}
        }
    }
    drop(header);
    let (n, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::format(FORMAT, format!("not a valid safetensors container: {e}")))?;
    let json = meta.metadata().as_ref().and_then(|m| m.get(KEY)).ok_or_else(|| {
        Error::format(FORMAT, format!("a safetensors file without a '{KEY}' manifest holds tensors but no model structure"))
    })?;
    // The format and version first: a newer manifest may not parse as this one.
    #[derive(Deserialize)]
    struct Head {
        format: Option<Value>,
        version: Option<Value>,
    }
    let head: Head =
        serde_json::from_slice(json.as_bytes()).map_err(|e| Error::format(FORMAT, format!("the manifest is not valid JSON: {e}")))?;
    if head.format.as_ref().and_then(Value::as_str) != Some(KEY) {
        return Err(Error::format(FORMAT, format!("the manifest's \"format\" must be \"{KEY}\"")));
    }
    match head.version.as_ref().and_then(Value::as_u64) {
        Some(v) if v > VERSION as u64 => {
            return Err(Error::Version { format: FORMAT, found: v.min(u32::MAX as u64) as u32, supported: VERSION });
        }
        Some(v) if v >= 1 => {}
        _ => return Err(Error::format(FORMAT, format!("the manifest's \"version\" must be a whole number from 1 to {VERSION}"))),
    }
    let manifest: Manifest = serde_json::from_slice(json.as_bytes()).map_err(|e| Error::format(FORMAT, format!("bad manifest: {e}")))?;
    let data = bytes.get(8 + n..).unwrap_or(&[]);
    Ok((File { meta, data }, manifest))
}

struct File<'a> {
    meta: Metadata,
    data: &'a [u8],
}

struct Reader<'a> {
    file: File<'a>,
    used: HashSet<String>,
}

impl<'a> Reader<'a> {
    fn has(&self, name: &str) -> bool {
        self.file.meta.info(name).is_some()
    }

    /// Tensor `name`'s shape and bytes, after checking dtype and rank.
    fn tensor(&mut self, name: &str, dtype: Dtype, rank: usize) -> Result<(Vec<usize>, &'a [u8])> {
        let info = self.file.meta.info(name).ok_or_else(|| Error::format(FORMAT, format!("tensor '{name}' is missing")))?;
        if info.dtype != dtype {
            return Err(Error::format(FORMAT, format!("tensor '{name}' is {:?}; expected {dtype:?}", info.dtype)));
        }
        if info.shape.len() != rank {
            return Err(Error::shape(format!("tensor '{name}'"), format!("{rank} dimensions"), format!("{:?}", info.shape)));
        }
        // A zero dimension lets the others be anything without occupying bytes.
        if let Some(&d) = info.shape.iter().find(|&&d| d as u64 > MAX_TENSOR_ELEMS) {
            return Err(Error::too_large(format!("dimension of tensor '{name}'"), d as u64, MAX_TENSOR_ELEMS));
        }
        checked_elems(&format!("tensor '{name}'"), &info.shape)?;
        let (s, e) = info.data_offsets;
        let data = self.file.data.get(s..e).ok_or_else(|| Error::format(FORMAT, format!("tensor '{name}' lies outside the file")))?;
        self.used.insert(name.to_string());
        Ok((info.shape.clone(), data))
    }

    fn f32s(&mut self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, data) = self.tensor(name, Dtype::F32, rank)?;
        Ok((shape, data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
    }

    fn vector(&mut self, name: &str) -> Result<Array1<f32>> {
        Ok(Array1::from(self.f32s(name, 1)?.1))
    }

    fn matrix(&mut self, name: &str) -> Result<Array2<f32>> {
        let (s, v) = self.f32s(name, 2)?;
        Array2::from_shape_vec((s[0], s[1]), v).map_err(|e| Error::format(FORMAT, format!("tensor '{name}': {e}")))
    }

    /// A mask of `units` bits stored as `⌈units / 64⌉` words.
    fn bits(&mut self, name: &str, units: usize) -> Result<BitSet> {
        let (shape, data) = self.tensor(name, Dtype::U64, 1)?;
        if shape[0] != units.div_ceil(64) {
            return Err(Error::shape(
                format!("tensor '{name}' ({units} bits)"),
                format!("[{}] words", units.div_ceil(64)),
                format!("{shape:?}"),
            ));
        }
        let words = data.chunks_exact(8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])).collect();
        BitSet::from_words(units, words)
            .ok_or_else(|| Error::format(FORMAT, format!("tensor '{name}' has bits set past its {units} units")))
    }

    /// Every tensor in the file was read: anything else is a file this build misreads.
    fn all_used(&self) -> Result<()> {
        match self.file.meta.tensors().into_keys().find(|k| !self.used.contains(k)) {
            Some(k) => Err(Error::format(FORMAT, format!("tensor '{k}' belongs to no layer or mask in the manifest"))),
            None => Ok(()),
        }
    }
}

fn read_model(spec: &ModelSpec, r: &mut Reader, fallback_name: &str) -> Result<Model> {
    let name = if spec.name.is_empty() { fallback_name } else { &spec.name };
    let mut b = ModelBuilder::new(name, spec.input.clone())?;
    if spec.nodes.is_empty() {
        return Err(Error::format(FORMAT, "the manifest lists no nodes"));
    }
    for (i, node) in spec.nodes.iter().enumerate() {
        let ctx = || format!("node {i} ('{}')", node.name);
        let id = match (i, node.kind.as_str()) {
            (0, "Input") if node.inputs.is_empty() => 0,
            (0, _) => return Err(Error::format(FORMAT, "node 0 must be the Input, reading nothing")),
            _ => {
                let op = read_op(i, node, r)?;
                b.add(node.name.clone(), op, &node.inputs)?
            }
        };
        if b.shape(id) != node.shape.as_slice() {
            return Err(Error::shape(
                format!("{} output, as the manifest declares it", ctx()),
                format!("{:?} (from its inputs and weights)", b.shape(id)),
                format!("{:?}", node.shape),
            ));
        }
        if let Some(p) = node.source_params {
            b.declare_params(id, p);
        }
    }
    b.finish(spec.class_names.clone())
}

fn read_op(i: usize, node: &NodeSpec, r: &mut Reader) -> Result<Op> {
    let t = |role: &str| format!("nodes.{i}.{role}");
    fn need<T: Copy>(v: Option<T>, i: usize, node: &NodeSpec, field: &str) -> Result<T> {
        v.ok_or_else(|| Error::format(FORMAT, format!("node {i} ('{}', {}) has no \"{field}\"", node.name, node.kind)))
    }
    let window = |field: &str, v: Option<[usize; 2]>| -> Result<[usize; 2]> {
        let v = need(v, i, node, field)?;
        match v.iter().find(|&&d| d > MAX_WINDOW) {
            Some(&d) => Err(Error::too_large(format!("{field} of layer '{}'", node.name), d as u64, MAX_WINDOW as u64)),
            None => Ok(v),
        }
    };
    let activation = || need(node.activation, i, node, "activation");
    let padding = || need(node.padding, i, node, "padding");
    Ok(match node.kind.as_str() {
        "Input" => return Err(Error::invalid(format!("layer '{}': only the model has an Input", node.name))),
        "Dense" => Op::Dense { kernel: r.matrix(&t("kernel"))?, bias: r.vector(&t("bias"))?, activation: activation()? },
        k @ ("Conv2D" | "DepthwiseConv2D") => {
            let (s, v) = r.f32s(&t("kernel"), 4)?;
            window("kernel size", Some([s[0], s[1]]))?;
            let kernel = Array4::from_shape_vec((s[0], s[1], s[2], s[3]), v)
                .map_err(|e| Error::format(FORMAT, format!("tensor '{}': {e}", t("kernel"))))?;
            let (bias, strides, padding, activation) = (r.vector(&t("bias"))?, window("strides", node.strides)?, padding()?, activation()?);
            if k == "Conv2D" {
                Op::Conv2D { kernel, bias, strides, padding, activation }
            } else {
                Op::DepthwiseConv2D { kernel, bias, strides, padding, activation }
            }
        }
        k @ ("MaxPool2D" | "AvgPool2D") => Op::Pool2D {
            kind: if k == "MaxPool2D" { PoolKind::Max } else { PoolKind::Avg },
            size: window("size", node.size)?,
            strides: window("strides", node.strides)?,
            padding: padding()?,
        },
        "GlobalAveragePooling2D" => Op::GlobalPool(PoolKind::Avg),
        "GlobalMaxPooling2D" => Op::GlobalPool(PoolKind::Max),
        "Flatten" => Op::Flatten,
        // The builder checks the shape holds the input's values.
        "Reshape" => Op::Reshape { shape: node.shape.clone() },
        "ZeroPadding2D" => match padding()? {
            Padding::Explicit(pads) => Op::ZeroPad2D { pads },
            other => return Err(Error::format(FORMAT, format!("layer '{}': ZeroPadding2D needs explicit pads, not {other:?}", node.name))),
        },
        "Concatenate" => Op::Concat,
        "PReLU" => Op::PRelu { alpha: r.vector(&t("alpha"))? },
        "Add" => Op::Add { activation: activation()? },
        "Multiply" => Op::Multiply,
        "BatchNormalization" => Op::BatchNorm { scale: r.vector(&t("scale"))?, shift: r.vector(&t("shift"))? },
        "Activation" => Op::Activation(activation()?),
        "Dropout" => Op::Dropout,
        "Embedding" => Op::Embedding { table: r.matrix(&t("embeddings"))? },
        // The builder bounds the output (times × features) like any layer's.
        "RepeatVector" => Op::RepeatVector { times: need(node.times, i, node, "times")? },
        k @ ("SimpleRNN" | "LSTM" | "GRU") => {
            let cell = match k {
                "SimpleRNN" => Cell::SimpleRnn,
                "LSTM" => Cell::Lstm,
                _ => Cell::Gru { reset_after: need(node.reset_after, i, node, "reset_after")? },
            };
            let units = need(node.units, i, node, "units")?;
            // The builder multiplies units by the gate count.
            if units as u64 > MAX_TENSOR_ELEMS {
                return Err(Error::too_large(format!("units of layer '{}'", node.name), units as u64, MAX_TENSOR_ELEMS));
            }
            // The builder says whether a recurrent bias is wanted.
            let recurrent_bias = if r.has(&t("recurrent_bias")) { Some(r.vector(&t("recurrent_bias"))?) } else { None };
            Op::Recurrent(Box::new(Recurrent {
                cell,
                units,
                kernel: r.matrix(&t("kernel"))?,
                recurrent: r.matrix(&t("recurrent_kernel"))?,
                bias: r.vector(&t("bias"))?,
                recurrent_bias,
                activation: activation()?,
                recurrent_activation: need(node.recurrent_activation, i, node, "recurrent_activation")?,
                return_sequences: need(node.return_sequences, i, node, "return_sequences")?,
                reverse: node.reverse,
            }))
        }
        other => {
            return Err(Error::Unsupported {
                what: format!("layer kind (node {i} of a {FORMAT} file)"),
                name: other.into(),
                supported: KINDS.join(", "),
            });
        }
    })
}

/// A decomposition that fits `model`: modules of distinct classes in range,
/// ascending; masks only on tracked nodes, each as long as the node's units;
/// clipping only on a Dense layer with one value per unit (the forward pass
/// clips per output column); valid settings.
fn check_decomposition(model: &Model, dec: &Decomposition) -> Result<()> {
    dec.settings.validate()?;
    let tracked = model.tracked();
    let mut prev = None;
    for m in &dec.modules {
        if m.class >= model.classes() || prev.is_some_and(|p| m.class <= p) {
            return Err(Error::invalid(format!(
                "module classes must be distinct, ascending and below the model's {} classes; found class {} after {prev:?}",
                model.classes(),
                m.class
            )));
        }
        prev = Some(m.class);
        for (&node, mask) in &m.masks.nodes {
            if !tracked.contains(&node) {
                return Err(Error::invalid(format!(
                    "module {} masks node {node}, which decomposition does not track (tracked: {tracked:?})",
                    m.class
                )));
            }
            let units = model.units(node);
            let n = &model.nodes[node];
            if mask.keep.len() != units {
                return Err(Error::shape(format!("mask of module {} on layer '{}'", m.class, n.name), units, mask.keep.len()));
            }
            match (&mask.gates, &n.op) {
                (None, _) => {}
                (Some(g), Op::Recurrent(r)) if g.len() == model.steps(node) * r.cell.gates() * r.units => {}
                (Some(g), _) => {
                    return Err(Error::invalid(format!(
                        "module {} has a gate mask of {} bits on layer '{}' ({}), which needs a recurrent layer and steps × gates × units bits",
                        m.class,
                        g.len(),
                        n.name,
                        n.op.kind()
                    )));
                }
            }
            match (&mask.clip_negative, &n.op) {
                (None, _) => {}
                (Some(c), Op::Dense { kernel, .. }) if n.shape.len() == 1 && c.len() == kernel.ncols() => {}
                (Some(c), _) => {
                    return Err(Error::invalid(format!(
                        "module {} clips negative weights of layer '{}' ({}, {} units), which only a Dense layer over a vector can have",
                        m.class,
                        n.name,
                        n.op.kind(),
                        c.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

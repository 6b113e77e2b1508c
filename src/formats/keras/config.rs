//! The model config (`config.json` of a `.keras`, the `model_config` attribute
//! of an `.h5`) as a layer graph: which layers, of which class, reading which
//! others, in an order the IR can be built in. Layer parameters are read later
//! (see `convert`), when the input shapes are known.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// What `Unsupported` errors list as loadable.
pub const SUPPORTED_LAYERS: &str = "InputLayer, Dense, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv1D, MaxPooling2D, \
    AveragePooling2D, MaxPooling1D, AveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling2D, GlobalAveragePooling1D, \
    GlobalMaxPooling1D, Flatten, Dropout (and SpatialDropout2D, GaussianNoise, \
    GaussianDropout, AlphaDropout: identities at inference), Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, \
    Add, Concatenate, ZeroPadding2D, BatchNormalization, Rescaling, Normalization, Embedding, SimpleRNN, LSTM, GRU, Bidirectional (of SimpleRNN, LSTM or GRU; merge concat, sum, ave), RepeatVector, \
    TimeDistributed(Dense)";

/// Sequence layers the IR does not have, named as such in errors.
const SEQUENCE_LAYERS: &[&str] =
    &["RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "CuDNNLSTM", "CuDNNGRU", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells"];

const MODEL_CLASSES: &[&str] = &["Sequential", "Functional", "Model"];

pub fn bad(reason: impl Into<String>) -> Error {
    Error::format("Keras model config", reason)
}

/// The layer classes the loader maps to the IR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Input,
    Dense,
    Conv2D,
    Conv1D,
    DepthwiseConv2D,
    SeparableConv2D,
    MaxPool1D,
    AvgPool1D,
    GlobalAvgPool1D,
    GlobalMaxPool1D,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    ZeroPad,
    Concat,
    Flatten,
    Dropout,
    Activation,
    ReLU,
    LeakyRelu,
    PRelu,
    Elu,
    Softmax,
    Add,
    BatchNorm,
    Rescaling,
    Normalization,
    Embedding,
    RepeatVector,
    SimpleRnn,
    Lstm,
    Gru,
    Bidirectional,
}

impl Class {
    pub(super) fn of(class_name: &str, layer: &str) -> Result<Class> {
        use Class::*;
        Ok(match class_name {
            "InputLayer" => Input,
            "Dense" => Dense,
            "Conv2D" => Conv2D,
            "Conv1D" => Conv1D,
            "DepthwiseConv2D" => DepthwiseConv2D,
            "SeparableConv2D" => SeparableConv2D,
            "MaxPooling1D" | "MaxPool1D" => MaxPool1D,
            "AveragePooling1D" | "AvgPool1D" => AvgPool1D,
            "GlobalAveragePooling1D" | "GlobalAvgPool1D" => GlobalAvgPool1D,
            "GlobalMaxPooling1D" | "GlobalMaxPool1D" => GlobalMaxPool1D,
            "MaxPooling2D" => MaxPool,
            "AveragePooling2D" => AvgPool,
            "GlobalAveragePooling2D" | "GlobalAvgPool2D" => GlobalAvgPool,
            "GlobalMaxPooling2D" | "GlobalMaxPool2D" => GlobalMaxPool,
            "LeakyReLU" => LeakyRelu,
            "PReLU" => PRelu,
            "ELU" => Elu,
            "Rescaling" => Rescaling,
            "ZeroPadding2D" => ZeroPad,
            "Concatenate" => Concat,
            "Normalization" => Normalization,
            "Flatten" => Flatten,
            "Dropout" | "SpatialDropout2D" | "GaussianNoise" | "GaussianDropout" | "AlphaDropout" => Dropout,
            "Activation" => Activation,
            "ReLU" => ReLU,
            "Softmax" => Softmax,
            "Add" => Add,
            "BatchNormalization" => BatchNorm,
            "Embedding" => Embedding,
            "RepeatVector" => RepeatVector,
            "SimpleRNN" => SimpleRnn,
            "LSTM" => Lstm,
            "GRU" => Gru,
            "Bidirectional" => Bidirectional,
            other => {
                let what = if SEQUENCE_LAYERS.contains(&other) {
                    "sequence layer (not in the model IR)"
                } else if MODEL_CLASSES.contains(&other) {
                    "nested model"
                } else {
                    "Keras layer"
                };
                return Err(Error::Unsupported {
                    what: what.into(),
                    name: format!("{layer} ({other})"),
                    supported: SUPPORTED_LAYERS.into(),
                });
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    /// The class as the config spells it (for messages).
    pub class_name: String,
    pub class: Class,
    /// The layer's `config` object.
    pub config: Map<String, Value>,
    /// Indices (into [`Graph::layers`]) of the layers it reads, in order.
    pub inputs: Vec<usize>,
    /// Keras 3 weights group `layers/<key>/vars`: `snake_case(class)` plus
    /// `_<n>` for the n-th earlier layer of that class. `None` for an input
    /// this loader synthesised.
    pub weights_key: Option<String>,
}

impl Layer {
    /// "layer 'dense_1' (Dense)", for messages.
    pub fn label(&self) -> String {
        format!("layer '{}' ({})", self.name, self.class_name)
    }
}

#[derive(Debug, Clone)]
pub struct Graph {
    /// Written by Keras 2 (tf_keras), whose `hard_sigmoid` differs from Keras 3's.
    pub keras2: bool,
    pub layers: Vec<Layer>,
    /// A topological build order: the input layer first, the output last,
    /// every layer once.
    pub order: Vec<usize>,
}

/// Parses a Sequential or Functional model config.
pub fn parse(json: &Value) -> Result<Graph> {
    let top = json.as_object().ok_or_else(|| bad("the JSON is not an object, so not a Keras model config"))?;
    let class = top
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no 'class_name' at the top level: this JSON is not a Keras model config"))?;
    if !MODEL_CLASSES.contains(&class) {
        return Err(Error::Unsupported {
            what: "Keras model class".into(),
            name: class.into(),
            supported: "Sequential, Functional (subclassed models cannot be rebuilt from their config)".into(),
        });
    }
    let cfg = top.get("config").and_then(Value::as_object).ok_or_else(|| bad(format!("the {class} model has no 'config' object")))?;
    let list = cfg.get("layers").and_then(Value::as_array).ok_or_else(|| bad(format!("the {class} model config has no 'layers' list")))?;
    if list.is_empty() {
        return Err(bad("the model has no layers"));
    }
    let mut entries = list.iter().enumerate().map(|(i, v)| entry(v, i)).collect::<Result<Vec<_>>>()?;
    // Keras 3 weights keys, in config order (the order of `model.layers`).
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &mut entries {
        let base = snake_case(&e.class_name);
        let n = seen.entry(base.clone()).or_insert(0);
        e.weights_key = Some(if *n == 0 { base } else { format!("{base}_{n}") });
        *n += 1;
    }
    if class == "Sequential" { sequential(cfg, entries) } else { functional(cfg, list, entries) }
}

/// One entry of the `layers` list.
fn entry(v: &Value, i: usize) -> Result<Layer> {
    let obj = v.as_object().ok_or_else(|| bad(format!("layer #{i} is not an object")))?;
    let class_name = obj.get("class_name").and_then(Value::as_str).ok_or_else(|| bad(format!("layer #{i} has no 'class_name'")))?;
    let config =
        obj.get("config").and_then(Value::as_object).ok_or_else(|| bad(format!("layer #{i} ({class_name}) has no 'config' object")))?;
    let name = config
        .get("name")
        .or_else(|| obj.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("layer #{i} ({class_name}) has no name")))?;
    if class_name == "TimeDistributed" {
        return time_distributed(config, name);
    }
    let class = Class::of(class_name, name)?;
    Ok(Layer { name: name.into(), class_name: class_name.into(), class, config: config.clone(), inputs: vec![], weights_key: None })
}

/// `TimeDistributed(Dense)` is a Dense on the last axis, which is what the IR's
/// Dense does; the wrapped layer's config is the one that matters.
fn time_distributed(config: &Map<String, Value>, name: &str) -> Result<Layer> {
    let inner = config
        .get("layer")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("layer '{name}' (TimeDistributed) has no wrapped 'layer'")))?;
    let inner_class = inner.get("class_name").and_then(Value::as_str).unwrap_or("?");
    let inner_config = inner
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("layer '{name}' (TimeDistributed) wraps a layer with no 'config'")))?;
    if inner_class != "Dense" {
        return Err(Error::Unsupported {
            what: "layer wrapped in TimeDistributed".into(),
            name: format!("{name} (TimeDistributed({inner_class}))"),
            supported: "TimeDistributed(Dense)".into(),
        });
    }
    Ok(Layer {
        name: name.into(),
        class_name: "TimeDistributed".into(),
        class: Class::Dense,
        config: inner_config.clone(),
        inputs: vec![],
        weights_key: None,
    })
}

fn sequential(cfg: &Map<String, Value>, entries: Vec<Layer>) -> Result<Graph> {
    let mut layers = Vec::with_capacity(entries.len() + 1);
    if entries[0].class != Class::Input {
        // Older configs have no InputLayer: the first layer (or the model)
        // carries the input shape.
        let first = &entries[0].config;
        let shape = ["batch_shape", "batch_input_shape"]
            .iter()
            .find_map(|k| first.get(*k).filter(|v| !v.is_null()))
            .or_else(|| cfg.get("build_input_shape").filter(|v| !v.is_null()))
            .ok_or_else(|| bad("the Sequential model has no InputLayer and no input shape ('batch_input_shape' or 'build_input_shape')"))?;
        let mut config = Map::new();
        config.insert("batch_shape".into(), shape.clone());
        layers.push(Layer {
            name: "input".into(),
            class_name: "InputLayer".into(),
            class: Class::Input,
            config,
            inputs: vec![],
            weights_key: None,
        });
    }
    for mut l in entries {
        if l.class == Class::Input && !layers.is_empty() {
            return Err(bad(format!("the Sequential model has an InputLayer ('{}') that is not its first layer", l.name)));
        }
        if !layers.is_empty() {
            l.inputs = vec![layers.len() - 1];
        }
        layers.push(l);
    }
    let order = (0..layers.len()).collect();
    Ok(Graph { keras2: false, layers, order })
}

fn functional(cfg: &Map<String, Value>, list: &[Value], mut layers: Vec<Layer>) -> Result<Graph> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        if index.insert(l.name.clone(), i).is_some() {
            return Err(bad(format!("two layers are named '{}'", l.name)));
        }
    }
    let resolve = |r: &TensorRef, user: &str| -> Result<usize> {
        if r.node != 0 || r.tensor != 0 {
            return Err(Error::Unsupported {
                what: "layer connection".into(),
                name: format!("{user} reads output {} of call {} of '{}'", r.tensor, r.node, r.layer),
                supported: "layers called once, with one output (no shared or multi-output layers)".into(),
            });
        }
        index.get(&r.layer).copied().ok_or_else(|| bad(format!("{user} reads '{}', which is not a layer of the model", r.layer)))
    };

    for (i, v) in list.iter().enumerate() {
        let label = layers[i].label();
        let nodes = match v.get("inbound_nodes") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad(format!("{label}: 'inbound_nodes' is not a list"))),
        };
        if layers[i].class == Class::Input {
            continue;
        }
        let node = match nodes.as_slice() {
            [one] => one,
            [] => return Err(bad(format!("{label} has no inputs ('inbound_nodes' is empty)"))),
            more => {
                return Err(Error::Unsupported {
                    what: "shared layer".into(),
                    name: format!("{label}, called {} times", more.len()),
                    supported: "layers called once".into(),
                });
            }
        };
        let refs = node_refs(node).map_err(|m| bad(format!("{label}: {m}")))?;
        if refs.is_empty() {
            return Err(bad(format!("{label} has no inputs in its inbound node")));
        }
        let inputs = refs.iter().map(|r| resolve(r, &label)).collect::<Result<Vec<_>>>()?;
        layers[i].inputs = inputs;
    }

    let ends = |key: &str| -> Result<Vec<TensorRef>> {
        let v = cfg.get(key).ok_or_else(|| bad(format!("the Functional model config has no '{key}'")))?;
        endpoints(v).map_err(|m| bad(format!("'{key}': {m}")))
    };
    let (ins, outs) = (ends("input_layers")?, ends("output_layers")?);
    let names = |v: &[TensorRef]| v.iter().map(|r| r.layer.as_str()).collect::<Vec<_>>().join(", ");
    if ins.len() != 1 {
        return Err(Error::Unsupported {
            what: "model inputs".into(),
            name: format!("{} inputs: {}", ins.len(), names(&ins)),
            supported: "exactly one input".into(),
        });
    }
    if outs.len() != 1 {
        return Err(Error::Unsupported {
            what: "model outputs".into(),
            name: format!("{} outputs: {}", outs.len(), names(&outs)),
            supported: "exactly one output".into(),
        });
    }
    let input = resolve(&ins[0], "the model input")?;
    let output = resolve(&outs[0], "the model output")?;
    if layers[input].class != Class::Input {
        return Err(bad(format!("the model input '{}' is not an InputLayer", layers[input].name)));
    }
    let n_inputs = layers.iter().filter(|l| l.class == Class::Input).count();
    if n_inputs != 1 {
        return Err(Error::Unsupported {
            what: "model inputs".into(),
            name: format!("{n_inputs} InputLayers"),
            supported: "exactly one input".into(),
        });
    }

    // Every layer must feed the output (Keras only saves such layers).
    let mut feeds = vec![false; layers.len()];
    let mut stack = vec![output];
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut feeds[i], true) {
            stack.extend(layers[i].inputs.iter().copied());
        }
    }
    if let Some(l) = layers.iter().zip(&feeds).find(|(_, f)| !**f).map(|(l, _)| l) {
        return Err(bad(format!("{} does not lead to the model output '{}'", l.label(), layers[output].name)));
    }

    // Kahn's algorithm, taking ready layers in config order. The only layer
    // without inputs is the InputLayer, so it comes first; every other layer
    // is an ancestor of the output, so the output comes last.
    let mut indegree: Vec<usize> = layers.iter().map(|l| l.inputs.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![vec![]; layers.len()];
    for (i, l) in layers.iter().enumerate() {
        for &j in &l.inputs {
            users[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..layers.len()).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(layers.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() != layers.len() {
        let stuck = (0..layers.len()).find(|&i| indegree[i] > 0).map(|i| layers[i].name.clone()).unwrap_or_default();
        return Err(bad(format!("the layer graph has a cycle (through layer '{stuck}')")));
    }
    if order.first() != Some(&input) || order.last() != Some(&output) {
        return Err(bad("the layer graph does not run from the input to the output"));
    }
    Ok(Graph { keras2: false, layers, order })
}

/// A reference to a layer output: `[layer, node_index, tensor_index]`.
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    layer: String,
    node: i64,
    tensor: i64,
}

fn triple(v: &Value) -> std::result::Result<TensorRef, String> {
    let a = v.as_array().ok_or_else(|| format!("expected [layer, node, tensor], got {}", short(v)))?;
    let layer = a.first().and_then(Value::as_str).ok_or_else(|| format!("expected [layer, node, tensor], got {}", short(v)))?;
    let int = |k: usize| a.get(k).map_or(Some(0), Value::as_i64).ok_or_else(|| format!("expected integer indices in {}", short(v)));
    Ok(TensorRef { layer: layer.into(), node: int(1)?, tensor: int(2)? })
}

/// `input_layers` / `output_layers`: one triple, a list of triples, or (Keras 3
/// dict inputs) an object of triples.
fn endpoints(v: &Value) -> std::result::Result<Vec<TensorRef>, String> {
    match v {
        Value::Array(a) if a.first().is_some_and(Value::is_string) => Ok(vec![triple(v)?]),
        Value::Array(a) => a.iter().map(triple).collect(),
        Value::Object(o) => o.values().map(triple).collect(),
        other => Err(format!("expected a list of [layer, node, tensor], got {}", short(other))),
    }
}

/// The tensors one inbound node reads. Keras 3: `{"args": [...], "kwargs":
/// {...}}` with `__keras_tensor__` objects anywhere in `args`; Keras 2:
/// `[[layer, node, tensor, kwargs], ...]`.
fn node_refs(node: &Value) -> std::result::Result<Vec<TensorRef>, String> {
    fn walk(v: &Value, out: &mut Vec<TensorRef>) -> std::result::Result<(), String> {
        match v {
            Value::Object(o) if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") => {
                let h = o
                    .get("config")
                    .and_then(|c| c.get("keras_history"))
                    .ok_or_else(|| "a __keras_tensor__ without 'keras_history'".to_string())?;
                out.push(triple(h)?);
            }
            Value::Object(o) => o.values().try_for_each(|x| walk(x, out))?,
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, out))?,
            _ => {}
        }
        Ok(())
    }
    let mut out = vec![];
    match node {
        Value::Object(o) => walk(o.get("args").unwrap_or(&Value::Null), &mut out)?,
        Value::Array(a) => {
            for t in a {
                out.push(triple(t)?);
            }
        }
        other => return Err(format!("an inbound node should be an object or a list, got {}", short(other))),
    }
    Ok(out)
}

/// A JSON value shortened for messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

/// `keras.src.utils.naming.to_snake_case`: drop non-word characters, then
/// `(.)([A-Z][a-z]+)` → `\1_\2`, then `([a-z])([A-Z])` → `\1_\2`, lowercase.
pub fn snake_case(name: &str) -> String {
    let c: Vec<char> = name.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
    let mut a = Vec::with_capacity(c.len() + 8);
    let mut i = 0;
    while i < c.len() {
        // (.)([A-Z][a-z]+), matched left to right without overlap.
        if i + 2 < c.len() && c[i + 1].is_ascii_uppercase() && c[i + 2].is_ascii_lowercase() {
            let mut j = i + 3;
            while j < c.len() && c[j].is_ascii_lowercase() {
                j += 1;
            }
            a.push(c[i]);
            a.push('_');
            a.extend_from_slice(&c[i + 1..j]);
            i = j;
        } else {
            a.push(c[i]);
            i += 1;
        }
    }
    let mut b = String::with_capacity(a.len() + 8);
    let mut i = 0;
    while i < a.len() {
        if i + 1 < a.len() && a[i].is_ascii_lowercase() && a[i + 1].is_ascii_uppercase() {
            b.push(a[i]);
            b.push('_');
            b.push(a[i + 1]);
            i += 2;
        } else {
            b.push(a[i]);
            i += 1;
        }
    }
    b.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        for (class, key) in [
            ("Dense", "dense"),
            ("Conv2D", "conv2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("AveragePooling2D", "average_pooling2d"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("BatchNormalization", "batch_normalization"),
            ("InputLayer", "input_layer"),
            ("ReLU", "re_lu"),
            ("SimpleRNN", "simple_rnn"),
            ("LSTM", "lstm"),
            ("Flatten", "flatten"),
            ("ABcDe", "a_bc_de"),
        ] {
            assert_eq!(snake_case(class), key, "{class}");
        }
    }

    #[test]
    fn keras2_and_keras3_inbound_nodes() {
        let k2: Value = serde_json::from_str(r#"[["a", 0, 0, {}], ["b", 0, 0, {}]]"#).unwrap();
        let k3: Value = serde_json::from_str(
            r#"{"args": [[{"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}},
                          {"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 0, 0]}}]], "kwargs": {}}"#,
        )
        .unwrap();
        let names = |v: Vec<TensorRef>| v.into_iter().map(|r| r.layer).collect::<Vec<_>>();
        assert_eq!(names(node_refs(&k2).unwrap()), ["a", "b"]);
        assert_eq!(names(node_refs(&k3).unwrap()), ["a", "b"]);
        assert!(node_refs(&Value::from(3)).is_err());
        assert_eq!(endpoints(&serde_json::json!(["x", 0, 0])).unwrap().len(), 1);
        assert_eq!(endpoints(&serde_json::json!([["x", 0, 0], ["y", 0, 0]])).unwrap().len(), 2);
    }
}

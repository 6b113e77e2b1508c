//! Keras `Bidirectional(SimpleRNN | LSTM | GRU)`: its config and weights read
//! into the two directions [`crate::formats::bidirectional`] builds — the
//! wrapped layer, and its backward copy (Keras re-reverses the backward
//! sequence, so each state is output at its own step) — and their merge
//! (`concat`, `sum`, `ave`).

use std::cell::RefCell;

use serde_json::Value;

use super::config::{Class, Layer};
use super::convert::{Params, WeightSource, recurrent};
use super::h5::{H5, StoredArray};
use crate::engine::model::{ModelBuilder, NodeId};
use crate::error::{Error, Result};
use crate::formats::bidirectional::{self as shared, Direction, Merge};

const MERGES: &str = "merge_mode concat, sum, ave or mul";

/// Builds the layer of `p` on `input`; returns the merged node.
pub fn build(p: &Params, b: &mut ModelBuilder, input: NodeId, src: &dyn WeightSource) -> Result<NodeId> {
    let l = p.0;
    // Keras's default is concat; an explicit null returns the two outputs apart.
    let merge = match (l.config.get("merge_mode"), p.text("merge_mode")?) {
        (None, _) => Merge::Concat,
        (_, Some(m)) if m == "concat" => Merge::Concat,
        (_, Some(m)) if m == "sum" => Merge::Sum,
        (_, Some(m)) if m == "ave" => Merge::Ave,
        (_, Some(m)) if m == "mul" => Merge::Mul,
        (_, Some(m)) => return Err(p.unsupported_option(format!("merge_mode={m}"), MERGES)),
        (Some(_), None) => return Err(p.unsupported_option("merge_mode=None (two outputs)".into(), MERGES)),
    };
    // Keras 3 writes the backward copy's config; Keras 2 only the wrapped layer, whose two
    // copies it names `forward_<name>` and `backward_<name>` (as its weights are).
    let (forward, backward) = match l.config.get("backward_layer").filter(|v| !v.is_null()) {
        Some(_) => (inner(l, "layer", "forward_layer")?, inner(l, "backward_layer", "backward_layer")?),
        None => {
            let wrapped = inner(l, "layer", "forward_layer")?;
            let backward = Layer {
                name: format!("backward_{}", wrapped.name),
                config: with_go_backwards(&wrapped.config, true),
                ..inner(l, "layer", "backward_layer")?
            };
            (Layer { name: format!("forward_{}", wrapped.name), ..wrapped }, backward)
        }
    };
    if !Params(&backward, p.1).flag("go_backwards", false)? {
        return Err(p.unsupported_option("backward_layer with go_backwards=false".into(), "the backward layer Keras makes"));
    }
    // The backward copy is read as a forward layer and then reversed.
    let backward = Layer { config: with_go_backwards(&backward.config, false), ..backward };
    let (fw, bw) = arrays(l, &forward, &backward, src)?;
    let shape = b.shape(input).to_vec();
    let direction = |layer: &Layer, arrays: Vec<StoredArray>| -> Result<Direction> {
        let given = Given { h5: src.h5(), arrays: RefCell::new(arrays) };
        let op = recurrent(&Params(layer, p.1), &shape, &given)?;
        Ok(Direction { name: format!("{}/{}", l.name, layer.name), op, input })
    };
    let (f, k) = (direction(&forward, fw)?, direction(&backward, bw)?);
    let (_, _, merged) = shared::build(b, &l.name, f, k, Some(merge))?;
    merged.ok_or_else(|| super::config::bad(format!("{} has no merge", l.label())))
}

/// The wrapped layer at `key` of the config, as a layer of its own whose
/// Keras 3 weights sit in `<wrapper>/<group>`.
fn inner(l: &Layer, key: &str, group: &str) -> Result<Layer> {
    let v = l.config.get(key).ok_or_else(|| super::config::bad(format!("{} has no '{key}'", l.label())))?;
    let class_name = v.get("class_name").and_then(Value::as_str).unwrap_or_default().to_string();
    let config = v.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    let name = config.get("name").and_then(Value::as_str).unwrap_or(group).to_string();
    let class = Class::of(&class_name, &name)?;
    if !matches!(class, Class::SimpleRnn | Class::Lstm | Class::Gru) {
        return Err(Error::Unsupported {
            what: format!("layer wrapped by {}", l.label()),
            name: format!("{name} ({class_name})"),
            supported: "SimpleRNN, LSTM, GRU".into(),
        });
    }
    Ok(Layer { name, class_name, class, config, inputs: vec![], weights_key: l.weights_key.as_ref().map(|k| format!("{k}/{group}")) })
}

fn with_go_backwards(config: &serde_json::Map<String, Value>, on: bool) -> serde_json::Map<String, Value> {
    let mut c = config.clone();
    c.insert("go_backwards".into(), Value::Bool(on));
    c
}

/// Each direction's stored arrays: Keras 3 keeps them in a group per
/// direction; Keras 2 lists them all under the wrapper, each path naming its
/// direction's layer.
fn arrays(l: &Layer, forward: &Layer, backward: &Layer, src: &dyn WeightSource) -> Result<(Vec<StoredArray>, Vec<StoredArray>)> {
    let all = src.arrays(l)?;
    if all.is_empty() {
        return Ok((src.arrays(forward)?, src.arrays(backward)?));
    }
    // Keras 2 names the two copies `forward_<layer>` and `backward_<layer>`.
    let of = |a: &StoredArray, prefix: &str, layer: &Layer| a.path.split('/').any(|part| part == layer.name || part.starts_with(prefix));
    let (mut fw, mut bw) = (vec![], vec![]);
    for a in all {
        match (of(&a, "forward_", forward), of(&a, "backward_", backward)) {
            (true, false) => fw.push(a),
            (false, true) => bw.push(a),
            _ => {
                return Err(Error::format(
                    "Keras",
                    format!("{}: the weight '{}' names neither '{}' nor '{}'", l.label(), a.path, forward.name, backward.name),
                ));
            }
        }
    }
    Ok((fw, bw))
}

/// One direction's arrays, handed to the recurrent layer reader as its own.
struct Given<'a> {
    h5: &'a H5,
    arrays: RefCell<Vec<StoredArray>>,
}

impl WeightSource for Given<'_> {
    fn h5(&self) -> &H5 {
        self.h5
    }

    fn arrays(&self, _: &Layer) -> Result<Vec<StoredArray>> {
        Ok(self.arrays.take())
    }
}

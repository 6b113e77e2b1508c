//! Keras loaders: Keras 3 `.keras` archives and legacy `.h5` files (written
//! by Keras 3 or by Keras 2 / tf_keras).
//!
//! - `.keras`: a zip with `config.json` (the model config) and
//!   `model.weights.h5`, where layer k's arrays are `layers/<key>/vars/<i>`,
//!   `<key>` being `snake_case(class)` plus `_<n>` for the n-th earlier layer
//!   of the same class in config order (not the layer's name: the first Dense
//!   `dense_1` is at `layers/dense`, the second at `layers/dense_1`). The
//!   `vars` group's `name` attribute is the layer name, checked when present.
//! - `.h5`: root attribute `model_config` (JSON), group `model_weights/<layer>`
//!   with attribute `weight_names` (possibly split into `weight_names0`, …),
//!   arrays at `model_weights/<layer>/<weight name>`. Strings may be
//!   variable-length (Keras 3) or fixed-length (Keras 2).
//!
//! HDF5 is read with the pure-Rust `hdf5-pure` crate (also builds for wasm32).
//! Every size a file declares is checked against the file length and the
//! engine limits before anything is allocated for it.

mod bidirectional;
mod config;
mod conv;
mod convert;
mod h5;

use std::io::{Cursor, Read};

use hdf5_pure::Group;

use crate::engine::model::Model;
use crate::error::{Error, Result};
use config::Layer;
use convert::WeightSource;
use h5::{H5, StoredArray, attr_string, attr_strings};

pub use config::SUPPORTED_LAYERS;

/// Largest `config.json` accepted (configs are kilobytes; this is generous).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// Largest weights file accepted: 1 GiB, i.e. `MAX_TENSOR_ELEMS` floats.
pub const MAX_WEIGHTS_BYTES: u64 = 1 << 30;
/// DEFLATE expands at most ~1032:1; an entry inflating past that is corrupt.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Loads a Keras 3 `.keras` archive. `name` becomes the model name.
pub fn load_keras_zip(bytes: &[u8], name: &str) -> Result<Model> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Error::format("Keras (.keras)", format!("not a readable zip archive (truncated, or not a .keras file): {e}")))?;
    let config = read_entry(&mut zip, "config.json", MAX_CONFIG_BYTES, bytes.len() as u64)?;
    let json = parse_json(&config, "config.json")?;
    let mut graph = config::parse(&json)?;
    // tf_keras 2.13+ can write .keras archives too; metadata.json says which Keras.
    if let Ok(meta) = read_entry(&mut zip, "metadata.json", MAX_CONFIG_BYTES, bytes.len() as u64) {
        let version = parse_json(&meta, "metadata.json")?.get("keras_version").and_then(|v| v.as_str().map(str::to_string));
        graph.keras2 = version.is_some_and(|v| v.starts_with("2."));
    }
    let weights = read_entry(&mut zip, "model.weights.h5", MAX_WEIGHTS_BYTES, bytes.len() as u64)?;
    let h5 = H5::open(weights, "model.weights.h5")?;
    convert::build(&graph, &Keras3Weights { h5 }, name)
}

/// Loads a legacy `.h5` model (Keras 3 or Keras 2 / tf_keras). `name` becomes
/// the model name.
pub fn load_keras_h5(bytes: &[u8], name: &str) -> Result<Model> {
    let h5 = H5::open(bytes.to_vec(), "the .h5 file")?;
    let attrs = h5.attrs(&h5.root(), "/")?;
    let config = attr_string(&attrs, "model_config").map_err(|m| h5.err(m))?.ok_or_else(|| {
        if attrs.contains_key("layer_names") || attrs.contains_key("layer_names0") {
            h5.err("it holds only weights (saved with save_weights); save the whole model with model.save(\"model.keras\") or model.save(\"model.h5\")")
        } else {
            h5.err("it has no 'model_config' attribute, so it is not a saved Keras model")
        }
    })?;
    let json = parse_json(config.trim_end_matches('\0').as_bytes(), "the model_config attribute")?;
    let mut graph = config::parse(&json)?;
    let version = attr_string(&attrs, "keras_version").map_err(|m| h5.err(m))?;
    graph.keras2 = version.is_some_and(|v| v.starts_with("2."));
    let root = "model_weights";
    h5.group(root).map_err(|m| Error::format("HDF5", format!("{m}; a saved Keras model keeps its weights there")))?;
    convert::build(&graph, &LegacyWeights { h5, root }, name)
}

fn parse_json(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::format("Keras model config", format!("{what} is not valid JSON: {e}")))
}

/// Reads one archive entry, never more than `limit` bytes nor more than the
/// archive could hold (a stored entry is no larger than the archive, a
/// deflated one no larger than 1032 times it), whatever its header claims.
fn read_entry(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, entry: &str, limit: u64, archive_len: u64) -> Result<Vec<u8>> {
    let err = |r: String| Error::format("Keras (.keras)", r);
    let mut f = match zip.by_name(entry) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(err(format!("the archive has no {entry}, so it is not a Keras 3 .keras model")));
        }
        Err(e) => return Err(err(format!("{entry}: {e}"))),
    };
    let ratio = if f.compression() == zip::CompressionMethod::Stored { 1 } else { MAX_DEFLATE_RATIO };
    let cap = limit.min(archive_len.saturating_mul(ratio));
    let mut buf = Vec::with_capacity(f.size().min(cap).min(archive_len) as usize);
    (&mut f).take(cap.saturating_add(1)).read_to_end(&mut buf).map_err(|e| err(format!("{entry} cannot be read: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(Error::too_large(format!("{entry} (uncompressed) in a {archive_len}-byte archive"), buf.len() as u64, cap));
    }
    Ok(buf)
}

/// `.keras` weights: `layers/<key>/vars/0`, `…/1`, ….
struct Keras3Weights {
    h5: H5,
}

impl WeightSource for Keras3Weights {
    fn h5(&self) -> &H5 {
        &self.h5
    }

    fn arrays(&self, layer: &Layer) -> Result<Vec<StoredArray>> {
        let key = layer.weights_key.as_deref().ok_or_else(|| Error::invalid(format!("{} has no weights group", layer.label())))?;
        let path = format!("layers/{key}/vars");
        let group = self.h5.group(&path).map_err(|m| missing(layer, m))?;
        let attrs = self.h5.attrs(&group, &path)?;
        let stored = attr_string(&attrs, "name").map_err(|m| self.h5.err(format!("'{path}': {m}")))?;
        if let Some(stored) = stored.filter(|s| *s != layer.name) {
            return Err(Error::format(
                "Keras (.keras)",
                format!(
                    "the weights at '{path}' belong to layer '{stored}', but by the config's layer order they should be those of {}; \
                     config.json and model.weights.h5 do not match",
                    layer.label()
                ),
            ));
        }
        let mut names = self.h5.dataset_names(&group, &path)?;
        let mut path = path;
        if names.is_empty() {
            // Recurrent layers keep their weights in their cell, wrappers
            // (TimeDistributed) in the wrapped layer.
            for sub in ["cell", "layer"] {
                let p = format!("layers/{key}/{sub}/vars");
                if let Ok(g) = self.h5.group(&p) {
                    names = self.h5.dataset_names(&g, &p)?;
                    path = p;
                    break;
                }
            }
        }
        let mut names = names
            .into_iter()
            .map(|n| {
                n.parse::<usize>()
                    .map(|i| (i, n.clone()))
                    .map_err(|_| self.h5.err(format!("'{path}' holds an array named '{n}'; expected 0, 1, …")))
            })
            .collect::<Result<Vec<_>>>()?;
        names.sort();
        if let Some((k, (i, _))) = names.iter().enumerate().find(|(k, (i, _))| k != i) {
            return Err(self.h5.err(format!("'{path}' has no array {k} (found {i})")));
        }
        names.iter().map(|(_, n)| self.h5.array(&format!("{path}/{n}"), None)).collect()
    }
}

/// Legacy `.h5` weights: `model_weights/<layer>/<weight name>`, listed by the
/// group's `weight_names` attribute.
struct LegacyWeights {
    h5: H5,
    root: &'static str,
}

impl WeightSource for LegacyWeights {
    fn h5(&self) -> &H5 {
        &self.h5
    }

    fn arrays(&self, layer: &Layer) -> Result<Vec<StoredArray>> {
        let path = format!("{}/{}", self.root, layer.name);
        let group: Group = self.h5.group(&path).map_err(|m| missing(layer, m))?;
        let attrs = self.h5.attrs(&group, &path)?;
        let names = attr_strings(&attrs, "weight_names")
            .map_err(|m| self.h5.err(format!("'{path}': {m}")))?
            .ok_or_else(|| self.h5.err(format!("'{path}' has no 'weight_names' attribute")))?;
        names.iter().map(|w| self.h5.array(&format!("{path}/{w}"), Some(role(w)))).collect()
    }
}

/// `dense_1/kernel:0` → `kernel`.
fn role(weight_name: &str) -> String {
    let last = weight_name.rsplit('/').next().unwrap_or(weight_name);
    match last.rsplit_once(':') {
        Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) => base.to_string(),
        _ => last.to_string(),
    }
}

fn missing(layer: &Layer, why: String) -> Error {
    Error::format("Keras", format!("the weights of {} are missing: {why}", layer.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_roles() {
        assert_eq!(role("dense_1/kernel:0"), "kernel");
        assert_eq!(role("batch_normalization/moving_mean:0"), "moving_mean");
        assert_eq!(role("dense_1/bias"), "bias");
        assert_eq!(role("gamma"), "gamma");
    }
}

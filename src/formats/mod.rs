//! File formats: model loaders (Keras, ONNX, native) and data (`.npz`, IDX).
//! Every loader takes bytes (no file system: the browser has none) and
//! returns a validated `Model` or a typed error; nothing here panics on input.

pub mod bidirectional;
pub mod dataset;
pub mod idx;
pub mod keras;
pub mod native;
pub mod npz;
pub mod onnx;

use crate::engine::model::Model;
use crate::error::{Error, Result};

/// What a file is, by its magic bytes first and its extension second (as Netron does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Keras,
    KerasH5,
    Onnx,
    /// Remodule's own `.remodule` (safetensors with a manifest; a model or a module set).
    Native,
}

pub const SUPPORTED_MODEL_FORMATS: &str = "Keras 3 .keras, Keras .h5, ONNX .onnx, Remodule .remodule";

pub fn sniff(bytes: &[u8], file_name: &str) -> Result<ModelFormat> {
    let ext = file_name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        Ok(ModelFormat::KerasH5)
    } else if bytes.starts_with(b"PK\x03\x04") {
        Ok(ModelFormat::Keras)
    } else if native::sniff(bytes) || ext == "remodule" {
        // By extension too, so a damaged .remodule file gets the native loader's diagnosis.
        Ok(ModelFormat::Native)
    } else if onnx::looks_like_onnx(bytes) || ext == "onnx" {
        // A protobuf has no magic number: the first field, or the extension.
        Ok(ModelFormat::Onnx)
    } else {
        Err(Error::Unsupported {
            what: "model file".into(),
            name: format!("{file_name} (.{ext}, unrecognised contents)"),
            supported: SUPPORTED_MODEL_FORMATS.into(),
        })
    }
}

/// A file's name without folders and extensions (`models/digits_mlp.keras`
/// → `digits_mlp`): what a loaded model or data set is called.
pub fn file_stem(path: &str) -> &str {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name.split('.').next().unwrap_or(name)
}

/// Loads any supported model file. `file_name` names the model and breaks ties.
pub fn load_model(bytes: &[u8], file_name: &str) -> Result<Model> {
    let stem = file_stem(file_name);
    match sniff(bytes, file_name)? {
        ModelFormat::Keras => keras::load_keras_zip(bytes, stem),
        ModelFormat::KerasH5 => keras::load_keras_h5(bytes, stem),
        ModelFormat::Onnx => onnx::load_onnx(bytes, stem),
        ModelFormat::Native => native::load_native(bytes, stem),
    }
}

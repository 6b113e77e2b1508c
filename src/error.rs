//! One error type for the whole engine. Every fallible engine call returns
//! `Result<T>`; messages are written for the person who supplied the input
//! (they are shown verbatim on the page and by the CLI).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A tensor or layer does not have the shape the graph needs.
    #[error("shape mismatch in {context}: expected {expected}, got {got}")]
    Shape { context: String, expected: String, got: String },

    /// Weights contain NaN or ±Inf; such a model computes nothing meaningful.
    #[error("layer '{layer}': {what} contains NaN or infinite values")]
    NonFinite { layer: String, what: String },

    /// A layer, op or option this engine does not implement.
    #[error("unsupported {what} '{name}'; supported: {supported}")]
    Unsupported { what: String, name: String, supported: String },

    /// A dimension or count beyond what the engine accepts (protects memory).
    #[error("{what} is too large: {value} (limit {limit})")]
    TooLarge { what: String, value: u64, limit: u64 },

    /// A file that is not what it claims to be (truncated, wrong magic, bad JSON, ...).
    #[error("invalid {format} file: {reason}")]
    Format { format: &'static str, reason: String },

    /// A version written by a newer Remodule.
    #[error("{format} version {found} is newer than this build supports (max {supported})")]
    Version { format: &'static str, found: u32, supported: u32 },

    /// No loaded model has this id (the page or a plan named one that is not there).
    #[error("no model {0}")]
    NoModel(usize),

    /// No loaded data set has this id.
    #[error("no data set {0}")]
    NoDataset(usize),

    /// A module was asked of a model that has not been decomposed.
    #[error("model '{model}' is not decomposed yet")]
    NotDecomposed { model: String },

    /// A model's decomposition has no module for this class.
    #[error("model '{model}' has no module {class}")]
    NoModule { model: String, class: usize },

    /// A class index beyond a model's or data set's classes.
    #[error("{owner} has no class {class}")]
    NoClass { owner: String, class: usize },

    /// A request that contradicts itself or the model (empty set, mixed modes, ...).
    #[error("{0}")]
    Invalid(String),

    /// Class relevance at this strength left a module without any unit of a
    /// layer (backtracking after pruning can), so it would score every sample alike.
    #[error("at strength {strength}, the module of class '{class}' keeps no unit of layer '{layer}'; lower the strength")]
    EmptiedLayer { strength: f32, class: String, layer: String },

    /// A file could not be read or written (the CLI's file system; the reason is the OS's).
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },

    /// An error in a file the user named (a plan's model, a data set path).
    #[error("{path}: {source}")]
    InFile { path: String, source: Box<Error> },

    /// The caller's progress callback asked to stop.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(context: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::Shape { context: context.into(), expected: expected.to_string(), got: got.to_string() }
    }
    pub fn format(format: &'static str, reason: impl Into<String>) -> Self {
        Error::Format { format, reason: reason.into() }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
    /// This error, as raised by the file at `path`.
    pub fn in_file(self, path: impl Into<String>) -> Self {
        Error::InFile { path: path.into(), source: Box::new(self) }
    }
    pub fn too_large(what: impl Into<String>, value: u64, limit: u64) -> Self {
        Error::TooLarge { what: what.into(), value, limit }
    }
}

/// Upper bound on the number of f32 elements any single tensor may hold
/// (256 Mi elements = 1 GiB). Loaders check declared sizes against this and
/// against the file length before allocating.
pub const MAX_TENSOR_ELEMS: u64 = 1 << 28;

/// Multiply dimensions without overflow, failing with `TooLarge` past `MAX_TENSOR_ELEMS`.
pub fn checked_elems(what: &str, dims: &[usize]) -> Result<usize> {
    let mut n: u64 = 1;
    for &d in dims {
        n = n
            .checked_mul(d as u64)
            .filter(|&n| n <= MAX_TENSOR_ELEMS)
            .ok_or_else(|| Error::too_large(format!("{what} {dims:?}"), n.saturating_mul(d as u64), MAX_TENSOR_ELEMS))?;
    }
    Ok(n as usize)
}

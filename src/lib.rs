//! Remodule: load a trained classifier, decompose it into one module per
//! class, and recompose modules into new classifiers.
//!
//! Layers, each importing only the ones below it (ARCHITECTURE.md):
//! - [`engine`] — models, kernels, decomposition, composition on data in memory;
//! - [`formats`] — bytes ⇄ models and data sets (Keras, ONNX, `.remodule`, `.npz`, IDX);
//! - [`workbench`] — loaded data sets and models, decompositions, the score cache;
//! - [`app`] — the catalog and its loader, composition files, exercises, tables, benchmarks;
//! - `wasm` (the browser binding, wasm32 only) and `src/bin/remodule.rs` (the CLI) on top.
//!
//! [`error`] is the one error type every layer returns.

pub mod app;
pub mod engine;
pub mod error;
pub mod formats;
pub mod workbench;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};

/// Engine version shown by the page and the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! Remodule engine: load a trained classifier, decompose it into one module
//! per class, and recompose modules into new classifiers.
//!
//! Everything here is pure Rust (no wasm or DOM types); `wasm` is the thin
//! browser binding, compiled only for `wasm32`, and `src/bin/remodule.rs` is
//! the native CLI over the same engine.

pub mod bench;
pub mod bits;
pub mod compose;
pub mod data;
pub mod decompose;
pub mod formats;
pub mod error;
pub mod exercise;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod tables;
pub mod workbench;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};

/// Engine version shown by the page and the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

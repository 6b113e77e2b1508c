//! The engine (bottom layer): pure computation on models and data in memory.
//! No file formats, no I/O, no wasm or DOM types; it imports only `crate::error`.

pub mod bits;
pub mod compose;
pub mod data;
pub mod decompose;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod parallel;

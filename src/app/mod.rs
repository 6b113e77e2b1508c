//! The application layer: what the page and the CLI do with a workbench —
//! the bundled catalog and its loader, composition files, exercise checks,
//! generated tables and benchmarks. Imports the workbench, formats and engine.

pub mod bench;
pub mod catalog;
pub mod exercise;
pub mod front;
pub mod loader;
pub mod plan;
pub mod tables;

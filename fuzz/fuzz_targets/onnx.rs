#![no_main]
//! ONNX loader: `remodule::formats::onnx::load_onnx`.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = remodule::formats::onnx::load_onnx(data, "fuzz") {
        common::exercise(&m);
    }
});

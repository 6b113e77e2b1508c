#![no_main]
//! Keras 3 `.keras` loader (zip + HDF5): `remodule::formats::keras::load_keras_zip`.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = remodule::formats::keras::load_keras_zip(data, "fuzz") {
        common::exercise(&m);
    }
});

#![no_main]
//! Legacy Keras `.h5` loader (HDF5): `remodule::formats::keras::load_keras_h5`.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = remodule::formats::keras::load_keras_h5(data, "fuzz") {
        common::exercise(&m);
    }
});

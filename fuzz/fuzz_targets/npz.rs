#![no_main]
//! Data readers: `.npz` archives, single `.npy` arrays, data sets built from
//! an archive (`read_npz_dataset`), and IDX (MNIST) files.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = remodule::formats::npz::read_npy(data);
    let _ = remodule::formats::idx::read_idx(data);
    if remodule::formats::npz::read_npz(data).is_ok() {
        let _ = remodule::formats::dataset::read_npz_dataset(data, "fuzz");
    }
});

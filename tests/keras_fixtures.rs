//! The Keras loaders against the bundled models (outputs must match Keras to
//! 1e-4) and against hostile inputs (truncated, corrupted, inconsistent,
//! unsupported): every one must give a typed error, none may panic.

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

use hdf5_pure::{AttrValue, FileBuilder};
use remodule::engine::model::{InputKind, Model, forward};
use remodule::formats::{keras, npz};
use remodule::{Error, Result};
use serde_json::{Value, json};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// (file name, stem of its expected outputs, bytes) for every bundled 10-class
/// image model: the entries of models/train_report.json with `"input": "image"`
/// and ten `class_names` (the text models and the 2-class digits_1v7 are left out).
fn fixtures() -> Vec<(String, String, Vec<u8>)> {
    let report: Value = serde_json::from_slice(&std::fs::read(models().join("train_report.json")).unwrap()).unwrap();
    let mut out = vec![];
    for (file, entry) in report.as_object().unwrap() {
        let classes = entry["class_names"].as_array().map_or(0, |a| a.len());
        if file.starts_with('_') || entry["input"] != "image" || classes != 10 {
            continue;
        }
        let stem = file.split('.').next().unwrap().to_string();
        out.push((file.clone(), stem, std::fs::read(models().join(file)).unwrap()));
    }
    out.sort();
    assert!(out.len() >= 6, "expected the bundled models in {:?}", models());
    out
}

fn load(file: &str, bytes: &[u8]) -> Result<Model> {
    let stem = file.split('.').next().unwrap();
    if file.ends_with(".h5") { keras::load_keras_h5(bytes, stem) } else { keras::load_keras_zip(bytes, stem) }
}

/// Loads, turning a panic into a test failure that names the case.
fn load_no_panic(file: &str, bytes: &[u8], case: &str) -> Result<Model> {
    std::panic::catch_unwind(|| load(file, bytes)).unwrap_or_else(|_| panic!("{file}: the loader panicked on {case}"))
}

fn max_diff(model: &Model, stem: &str) -> f32 {
    let exp = npz::read_npz(&std::fs::read(models().join(format!("{stem}.expected.npz"))).unwrap()).unwrap();
    let x = exp["x"].to_f32();
    let n = exp["x"].shape[0];
    let out = forward(model, &x, n, None, false, &mut |_, _| true).unwrap();
    let want = exp["probs"].to_f32();
    assert_eq!(out.probs.len(), want.len());
    out.probs.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn bundled_models_match_keras_outputs() {
    for (file, stem, bytes) in fixtures() {
        let model = load(&file, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(model.name, stem);
        assert_eq!(model.input.shape, vec![28, 28, 1], "{file}");
        assert_eq!(model.input.kind, InputKind::Image);
        assert_eq!((model.input.scale, model.input.offset, model.input.rescales), (None, None, false), "{file}: the input rule decides");
        assert_eq!(model.class_names, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
        let d = max_diff(&model, &stem);
        assert!(d < 1e-4, "{file}: max |probs - expected| = {d}");
    }
}

#[test]
fn layer_names_and_params_come_through() {
    let bytes = std::fs::read(models().join("digits_cnn.keras")).unwrap();
    let m = keras::load_keras_zip(&bytes, "digits_cnn").unwrap();
    let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["input", "conv2d_1", "max_pooling2d_1", "conv2d_2", "max_pooling2d_2", "flatten", "dense_1", "dense_2"]);
    assert_eq!(m.params(), 14410);
    let bytes = std::fs::read(models().join("digits_mlp.h5")).unwrap();
    assert_eq!(keras::load_keras_h5(&bytes, "x").unwrap().params(), 55050);
}

// ---------------------------------------------------------------- helpers

/// The entries of a `.keras` archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut v = vec![];
            f.read_to_end(&mut v).unwrap();
            (f.name().unwrap().to_string(), v)
        })
        .collect()
}

/// A stored (uncompressed) zip of `entries`, as Keras writes.
fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    rezip_with(entries, zip::CompressionMethod::Stored)
}

fn rezip_with(entries: &[(String, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn keras_fixture(stem: &str) -> Vec<(String, Vec<u8>)> {
    unzip(&std::fs::read(models().join(format!("{stem}.keras"))).unwrap())
}

fn entry<'a>(entries: &'a mut [(String, Vec<u8>)], name: &str) -> &'a mut Vec<u8> {
    &mut entries.iter_mut().find(|(n, _)| n == name).unwrap().1
}

/// Rewrites config.json of `stem`.keras with `edit` and loads the result.
fn with_config(stem: &str, edit: impl FnOnce(&mut Value)) -> Result<Model> {
    let mut entries = keras_fixture(stem);
    let cfg = entry(&mut entries, "config.json");
    let mut v: Value = serde_json::from_slice(cfg).unwrap();
    edit(&mut v);
    *cfg = serde_json::to_vec(&v).unwrap();
    keras::load_keras_zip(&rezip(&entries), stem)
}

fn layer_mut<'a>(cfg: &'a mut Value, name: &str) -> &'a mut Value {
    cfg["config"]["layers"].as_array_mut().unwrap().iter_mut().find(|l| l["config"]["name"] == name).unwrap()
}

fn rename_layer(cfg: &mut Value, old: &str, new: &str) {
    let mut s = serde_json::to_string(cfg).unwrap();
    s = s.replace(&format!("\"{old}\""), &serde_json::to_string(new).unwrap());
    *cfg = serde_json::from_str(&s).unwrap();
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

// ---------------------------------------------------------------- hostile files

#[test]
fn truncated_files_are_errors() {
    for (file, _, bytes) in fixtures() {
        let n = bytes.len();
        let mut cuts: Vec<usize> = (0..20).map(|i| n * i / 20).collect();
        // Inside the HDF5 part (of a stored archive, or of the .h5 itself; a deflated archive
        // shows no HDF5 bytes, and the even cuts above fall inside its compressed weights).
        if let Some(h5_at) = bytes.windows(8).position(|w| w == b"\x89HDF\r\n\x1a\n") {
            cuts.extend([h5_at + 8, h5_at + 100, h5_at + 600, h5_at + 2000, (h5_at + n) / 2]);
        }
        cuts.extend([n - 100, n - 1]);
        for cut in cuts {
            let r = load_no_panic(&file, &bytes[..cut], &format!("a cut at {cut}"));
            assert!(r.is_err(), "{file} cut at {cut} of {n} loaded");
        }
    }
    // The HDF5 part truncated but re-zipped with a valid directory and CRC.
    for stem in ["digits_mlp", "digits_cnn"] {
        let entries = keras_fixture(stem);
        let h5 = entries.iter().find(|(n, _)| n == "model.weights.h5").unwrap().1.clone();
        for i in 0..20 {
            let cut = h5.len() * i / 20 + 7;
            let mut e = entries.clone();
            entry(&mut e, "model.weights.h5").truncate(cut);
            let r = load_no_panic("x.keras", &rezip(&e), &format!("weights cut at {cut}"));
            assert!(r.is_err(), "{stem}: weights cut at {cut} loaded");
        }
    }
}

#[test]
fn corrupted_archive_data_is_an_error() {
    // Every byte of a stored entry is covered by the zip CRC.
    for stem in ["digits_mlp", "digits_cnn"] {
        let bytes = std::fs::read(models().join(format!("{stem}.keras"))).unwrap();
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        let mut ranges = vec![];
        for name in ["config.json", "model.weights.h5"] {
            let f = z.by_name(name).unwrap();
            ranges.push((f.data_start().unwrap() as usize, f.compressed_size() as usize));
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for k in 0..100 {
            let (start, len) = ranges[k % 2];
            let at = start + (xorshift(&mut seed) as usize) % len;
            let mut b = bytes.clone();
            b[at] ^= 1 << (k % 8);
            let r = load_no_panic("x.keras", &b, &format!("a flipped bit at {at}"));
            assert!(r.is_err(), "{stem}: flipped byte at {at} loaded");
        }
    }
}

#[test]
fn corrupted_hdf5_never_panics() {
    // No checksum protects a raw .h5 (or a re-zipped weights file): a flip may
    // land in a weight and load fine, but must never panic or hang.
    let mut seed = 0x1234_5678_9abc_def1u64;
    let h5 = std::fs::read(models().join("digits_mlp.h5")).unwrap();
    let entries = keras_fixture("digits_cnn");
    let weights = entries.iter().find(|(n, _)| n == "model.weights.h5").unwrap().1.clone();
    let (mut errs, mut total) = (0, 0);
    for k in 0..300 {
        let base = if k % 2 == 0 { &h5 } else { &weights };
        let mut b = base.clone();
        // Bias towards metadata: the first 4 KiB hold superblock and headers.
        let span = if k % 3 == 0 { b.len() } else { 4096.min(b.len()) };
        for _ in 0..1 + k % 4 {
            let at = (xorshift(&mut seed) as usize) % span;
            b[at] = if k % 5 == 0 { 0xff } else { b[at] ^ (1 << (xorshift(&mut seed) % 8)) };
        }
        let t = std::time::Instant::now();
        let r = if k % 2 == 0 {
            load_no_panic("digits_mlp.h5", &b, &format!("mutation {k}"))
        } else {
            let mut e = entries.clone();
            *entry(&mut e, "model.weights.h5") = b;
            load_no_panic("x.keras", &rezip(&e), &format!("weights mutation {k}"))
        };
        assert!(t.elapsed().as_secs() < 10, "mutation {k} took {:?}", t.elapsed());
        total += 1;
        errs += r.is_err() as usize;
    }
    assert!(errs > 0 && errs <= total);
}

#[test]
fn wrong_magic_and_garbage_are_errors() {
    let keras_bytes = std::fs::read(models().join("digits_mlp.keras")).unwrap();
    let h5_bytes = std::fs::read(models().join("digits_mlp.h5")).unwrap();
    assert!(matches!(keras::load_keras_h5(&keras_bytes, "x"), Err(Error::Format { .. })));
    assert!(matches!(keras::load_keras_zip(&h5_bytes, "x"), Err(Error::Format { .. })));
    for junk in [&b""[..], b"PK\x03\x04", b"\x89HDF\r\n\x1a\n", b"\x89HDF\r\n\x1a\n\0\0\0\0\0\0\0\0", &[0u8; 4096][..]] {
        assert!(keras::load_keras_zip(junk, "x").is_err());
        assert!(keras::load_keras_h5(junk, "x").is_err());
    }
    // A zip that is not a Keras model.
    let other = rezip(&[("hello.txt".into(), b"hi".to_vec())]);
    let e = keras::load_keras_zip(&other, "x").unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    // config.json present but model.weights.h5 missing.
    let mut entries = keras_fixture("digits_mlp");
    entries.retain(|(n, _)| n != "model.weights.h5");
    let e = keras::load_keras_zip(&rezip(&entries), "x").unwrap_err();
    assert!(e.to_string().contains("model.weights.h5"), "{e}");
}

#[test]
fn json_that_is_not_a_model_is_an_error() {
    for text in [
        "not json",
        "[1, 2, 3]",
        "{}",
        r#"{"hello": 1}"#,
        r#"{"class_name": "Sequential"}"#,
        r#"{"class_name": "Sequential", "config": {"layers": []}}"#,
        r#"{"class_name": "Sequential", "config": {"layers": [1, 2]}}"#,
        r#"{"class_name": "Functional", "config": {"layers": [{"class_name": "Dense", "config": {}}]}}"#,
        r#"{"class_name": "MyModel", "config": {}}"#,
    ] {
        let mut entries = keras_fixture("digits_mlp");
        *entry(&mut entries, "config.json") = text.as_bytes().to_vec();
        let e = load_no_panic("x.keras", &rezip(&entries), text).unwrap_err();
        assert!(matches!(e, Error::Format { .. } | Error::Unsupported { .. }), "{text}: {e:?}");
    }
    // Deep nesting is refused by the JSON parser, not by the stack.
    let mut entries = keras_fixture("digits_mlp");
    *entry(&mut entries, "config.json") = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    assert!(load_no_panic("x.keras", &rezip(&entries), "deep JSON").is_err());
}

#[test]
fn unknown_and_sequence_layers_are_unsupported() {
    let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["class_name"] = json!("FancyLayer")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert!(msg.contains("dense_2") && msg.contains("FancyLayer"), "{msg}");
    assert!(msg.contains("Dense") && msg.contains("Conv2D") && msg.contains("BatchNormalization"), "{msg}");
    // A Bidirectional needs the recurrent layer it wraps.
    let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["class_name"] = json!("Bidirectional")).unwrap_err().to_string();
    assert!(e.contains("dense_2") && e.contains("'layer'"), "{e}");
    let e = with_config("digits_mlp", |c| {
        let l = layer_mut(c, "dense_2");
        let dense = l.clone();
        l["class_name"] = json!("Bidirectional");
        l["config"]["layer"] = dense;
        l["config"]["merge_mode"] = json!("concat");
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("wrapped by layer 'dense_2' (Bidirectional)") && e.contains("SimpleRNN, LSTM, GRU"), "{e}");
    for class in ["ConvLSTM2D", "RNN"] {
        let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["class_name"] = json!(class)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("dense_2") && msg.contains(class) && msg.contains("sequence layer") && msg.contains("LSTM"), "{msg}");
    }
    // A recurrent layer where the model has no sequence: a shape error naming the layer.
    for class in ["LSTM", "GRU", "SimpleRNN"] {
        let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["class_name"] = json!(class)).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("dense_2") && e.to_string().contains("[T, F]"), "{e}");
    }
    // So is a 1-D layer on a vector.
    for class in ["Conv1D", "MaxPooling1D", "GlobalAveragePooling1D"] {
        let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["class_name"] = json!(class)).unwrap_err();
        assert!(
            matches!(e, Error::Shape { .. }) && e.to_string().contains("dense_2") && e.to_string().contains("[steps, channels]"),
            "{e}"
        );
    }
    let e = with_config("digits_mlp", |c| {
        let l = layer_mut(c, "dense_2");
        let inner = l.clone();
        l["class_name"] = json!("TimeDistributed");
        l["config"] = json!({"name": "dense_2", "layer": {"class_name": "Conv2D", "config": inner["config"]}});
    })
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("TimeDistributed(Conv2D)"), "{e}");
    let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["config"]["activation"] = json!("mish")).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { name, .. } if name == "mish"), "{e:?}");
    assert!(e.to_string().contains("dense_2"), "{e}");
}

#[test]
fn unsupported_conv_options_are_errors() {
    let e = with_config("digits_cnn", |c| layer_mut(c, "conv2d_1")["config"]["data_format"] = json!("channels_first")).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("channels_first") && e.to_string().contains("conv2d_1"),
        "{e}"
    );
    let e = with_config("digits_cnn", |c| layer_mut(c, "conv2d_2")["config"]["dilation_rate"] = json!([2, 2])).unwrap_err();
    assert!(e.to_string().contains("dilation"), "{e}");
    let e = with_config("digits_cnn", |c| layer_mut(c, "conv2d_2")["config"]["groups"] = json!(2)).unwrap_err();
    assert!(e.to_string().contains("groups"), "{e}");
    let e = with_config("digits_cnn", |c| layer_mut(c, "conv2d_2")["config"]["padding"] = json!("causal")).unwrap_err();
    assert!(e.to_string().contains("causal"), "{e}");
    let e = with_config("digits_cnn", |c| layer_mut(c, "max_pooling2d_1")["config"]["pool_size"] = json!([1_000_000_000, 2])).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    let e = with_config("digits_cnn", |c| layer_mut(c, "conv2d_1")["config"]["kernel_size"] = json!([-3, 3])).unwrap_err();
    assert!(e.to_string().contains("kernel_size"), "{e}");
}

#[test]
fn weights_that_do_not_match_the_config_are_errors() {
    // The config says dense_2 has 32 units; the file holds a [64, 64] kernel.
    let e = with_config("digits_mlp", |c| layer_mut(c, "dense_2")["config"]["units"] = json!(32)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    assert!(msg.contains("dense_2") && msg.contains("kernel") && msg.contains("[64, 32]") && msg.contains("[64, 64]"), "{msg}");
    // use_bias=False but the file has a bias.
    let e = with_config("digits_mlp", |c| layer_mut(c, "dense_1")["config"]["use_bias"] = json!(false)).unwrap_err();
    assert!(e.to_string().contains("dense_1"), "{e}");
    // Layers swapped: the weights group names another layer.
    let e = with_config("digits_mlp", |c| rename_layer(c, "dense_3", "dense_9")).unwrap_err();
    assert!(e.to_string().contains("dense_9") && e.to_string().contains("dense_3"), "{e}");
    // A layer whose weights are not in the file at all: a fourth Dense after
    // dense_3 would live at layers/dense_3/vars.
    let e = with_config("digits_mlp", |c| {
        let mut extra = layer_mut(c, "dense_3").clone();
        rename_layer(&mut extra, "dense_3", "dense_4");
        extra["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = json!(["dense_3", 0, 0]);
        c["config"]["layers"].as_array_mut().unwrap().push(extra);
        c["config"]["output_layers"] = json!(["dense_4", 0, 0]);
    })
    .unwrap_err();
    assert!(e.to_string().contains("dense_4") && e.to_string().contains("missing"), "{e}");
}

#[test]
fn nan_weights_are_errors() {
    let mut entries = keras_fixture("digits_mlp");
    let h5 = entry(&mut entries, "model.weights.h5");
    let f = hdf5_pure::File::from_bytes(h5.clone()).unwrap();
    let first: Vec<u8> = f.dataset("layers/dense/vars/0").unwrap().read_f32().unwrap()[..4].iter().flat_map(|x| x.to_le_bytes()).collect();
    let at = h5.windows(16).position(|w| w == first.as_slice()).expect("kernel bytes in the file");
    h5[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = keras::load_keras_zip(&rezip(&entries), "x").unwrap_err();
    assert_eq!(e, Error::NonFinite { layer: "dense_1".into(), what: "kernel".into() });
}

#[test]
fn dimensions_beyond_the_file_are_errors() {
    // Patch dense_3's kernel dataspace [64, 10] to [64, 1_000_000] (256 MB of
    // data declared in a 240 KB file) and make the config agree.
    let mut entries = keras_fixture("digits_mlp");
    let h5 = entry(&mut entries, "model.weights.h5");
    let dims: Vec<u8> = [64u64, 10].iter().flat_map(|d| d.to_le_bytes()).collect();
    let at = h5.windows(16).position(|w| w == dims.as_slice()).expect("dataspace of dense_3's kernel");
    h5[at + 8..at + 16].copy_from_slice(&1_000_000u64.to_le_bytes());
    if let Some(max) = h5[at + 16..].windows(16).position(|w| w == dims.as_slice()).filter(|&p| p == 0) {
        h5[at + 16 + max + 8..at + 16 + max + 16].copy_from_slice(&1_000_000u64.to_le_bytes());
    }
    let cfg = entry(&mut entries, "config.json");
    let mut v: Value = serde_json::from_slice(cfg).unwrap();
    layer_mut(&mut v, "dense_3")["config"]["units"] = json!(1_000_000);
    *cfg = serde_json::to_vec(&v).unwrap();
    let e = load_no_panic("x.keras", &rezip(&entries), "huge dims").unwrap_err();
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("bytes"), "{e}");
    // Units beyond the engine's tensor limit.
    let e = with_config("digits_mlp", |c| layer_mut(c, "dense_3")["config"]["units"] = json!(1u64 << 40)).unwrap_err();
    assert!(matches!(e, Error::Format { .. } | Error::TooLarge { .. }), "{e}");
}

#[test]
fn zip_entries_claiming_huge_sizes_are_errors() {
    let entries = keras_fixture("digits_mlp");
    let good = rezip(&entries);
    // Patch the compressed or uncompressed size of every entry to ~4 GiB, in
    // the local headers and in the central directory. A compressed size past
    // the archive must fail; the other lies may be ignored by the reader (the
    // CRC-checked data then loads, and must be right), but never trusted for
    // an allocation.
    for (sig, fields) in [(&b"PK\x03\x04"[..], [(18usize, false), (22, false)]), (&b"PK\x01\x02"[..], [(20, true), (24, false)])] {
        for (field, must_fail) in fields {
            let mut b = good.clone();
            let mut i = 0;
            while let Some(p) = b[i..].windows(4).position(|w| w == sig) {
                let at = i + p + field;
                b[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                i = i + p + 4;
            }
            let r = load_no_panic("x.keras", &b, "huge sizes");
            assert!(r.is_err() || !must_fail, "field {field} of {sig:?}");
            if let Ok(m) = r {
                assert!(max_diff(&m, "digits_mlp") < 1e-4);
            }
        }
    }
    // A deflate bomb: config.json inflating past the config limit.
    let mut e = entries.clone();
    let mut big = b"{\"class_name\": \"Sequential\", \"x\": \"".to_vec();
    big.resize(big.len() + (keras::MAX_CONFIG_BYTES as usize) + 1024, b' ');
    big.extend(b"\"}");
    *entry(&mut e, "config.json") = big;
    let bomb = rezip_with(&e, zip::CompressionMethod::Deflated);
    assert!(bomb.len() < 2 << 20);
    let err = keras::load_keras_zip(&bomb, "x").unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

#[test]
fn multi_input_and_output_models_are_unsupported() {
    let e = with_config("digits_mlp", |c| c["config"]["output_layers"] = json!([["dense_3", 0, 0], ["dense_2", 0, 0]])).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("output"), "{e}");
    let e = with_config("digits_mlp", |c| c["config"]["input_layers"] = json!([["input", 0, 0], ["input", 0, 0]])).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("input"), "{e}");
    // A layer reading a layer that does not exist, and a cycle.
    let e = with_config("digits_mlp", |c| {
        layer_mut(c, "dense_1")["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = json!(["nope", 0, 0]);
    })
    .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = with_config("digits_mlp", |c| {
        layer_mut(c, "dense_1")["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = json!(["dense_2", 0, 0]);
    })
    .unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    // A shared layer (called twice).
    let e = with_config("digits_mlp", |c| {
        let l = layer_mut(c, "dense_2");
        let node = l["inbound_nodes"][0].clone();
        l["inbound_nodes"].as_array_mut().unwrap().push(node);
    })
    .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn html_layer_names_are_plain_data() {
    let evil = "<img src=x onerror=alert(1)>";
    let m = with_config("digits_mlp", |c| rename_layer(c, "flatten", evil)).unwrap();
    assert_eq!(m.nodes[1].name, evil);
    let e = with_config("digits_mlp", |c| {
        rename_layer(c, "flatten", evil);
        layer_mut(c, evil)["class_name"] = json!("<b>Bold</b>");
    })
    .unwrap_err();
    assert!(e.to_string().contains(evil) && e.to_string().contains("<b>Bold</b>"), "{e}");
}

// ---------------------------------------------------------------- Keras 2 style .h5

/// Weights of digits_mlp.keras by layer name: (kernel, shape), (bias, shape).
/// (values, shape) of one stored array.
type Stored = (Vec<f32>, Vec<u64>);

fn mlp_weights() -> HashMap<String, Vec<Stored>> {
    let mut entries = keras_fixture("digits_mlp");
    let f = hdf5_pure::File::from_bytes(entry(&mut entries, "model.weights.h5").clone()).unwrap();
    let mut out = HashMap::new();
    for (key, name) in [("dense", "dense_1"), ("dense_1", "dense_2"), ("dense_2", "dense_3")] {
        let arrays = (0..2)
            .map(|i| {
                let d = f.dataset(&format!("layers/{key}/vars/{i}")).unwrap();
                (d.read_f32().unwrap(), d.shape().unwrap())
            })
            .collect();
        out.insert(name.to_string(), arrays);
    }
    out
}

/// A Keras 2 / tf_keras style legacy .h5 of digits_mlp: fixed-length string
/// attributes, `:0` weight names, `weight_names` split in two for one layer,
/// bias listed before kernel, and dense_1 renamed `first`. (hdf5-pure writes
/// superblock v3 where h5py writes v0; the v0 layout is covered by the real
/// fixtures, and string attributes decode the same in both.)
fn keras2_h5(sequential: bool, first: &str) -> Vec<u8> {
    let weights = mlp_weights();
    let rename = |n: &str| if n == "dense_1" { first.to_string() } else { n.to_string() };
    let dense = |name: &str, units: usize, act: &str, inbound: &str| {
        json!({"class_name": "Dense", "config": {"name": rename(name), "trainable": true, "dtype": "float32", "units": units,
               "activation": act, "use_bias": true}, "name": rename(name), "inbound_nodes": [[[rename(inbound), 0, 0, {}]]]})
    };
    let mut layers = vec![
        json!({"class_name": "InputLayer", "config": {"batch_input_shape": [null, 28, 28, 1], "dtype": "float32", "sparse": false,
               "ragged": false, "name": "input_1"}, "name": "input_1", "inbound_nodes": []}),
        json!({"class_name": "Flatten", "config": {"name": "flatten", "trainable": true, "dtype": "float32", "data_format": "channels_last"},
               "name": "flatten", "inbound_nodes": [[["input_1", 0, 0, {}]]]}),
        dense("dense_1", 64, "relu", "flatten"),
        dense("dense_2", 64, "relu", "dense_1"),
        dense("dense_3", 10, "softmax", "dense_2"),
    ];
    let config = if sequential {
        layers.remove(0);
        layers[0]["config"]["batch_input_shape"] = json!([null, 28, 28, 1]);
        json!({"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}})
    } else {
        json!({"class_name": "Model", "config": {"name": "model", "layers": layers,
               "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_3", 0, 0]]}})
    };
    let mut b = FileBuilder::new();
    b.set_attr("keras_version", AttrValue::AsciiString("2.15.0".into()));
    b.set_attr("backend", AttrValue::AsciiString("tensorflow".into()));
    b.set_attr("model_config", AttrValue::AsciiString(config.to_string()));
    let mut mw = b.create_group("model_weights");
    let names = ["input_1", "flatten", "dense_1", "dense_2", "dense_3"].map(rename);
    mw.set_attr("layer_names0", AttrValue::AsciiStringArray(names[..3].to_vec()));
    mw.set_attr("layer_names1", AttrValue::AsciiStringArray(names[3..].to_vec()));
    for orig in ["dense_1", "dense_2", "dense_3"] {
        let name = rename(orig);
        let w = &weights[orig];
        let mut g = mw.create_group(&name);
        let wn = [format!("{name}/kernel:0"), format!("{name}/bias:0")];
        if orig == "dense_2" {
            g.set_attr("weight_names0", AttrValue::AsciiStringArray(vec![wn[0].clone()]));
            g.set_attr("weight_names1", AttrValue::AsciiStringArray(vec![wn[1].clone()]));
        } else {
            // Bias listed first: matching must go by name.
            g.set_attr("weight_names", AttrValue::AsciiStringArray(vec![wn[1].clone(), wn[0].clone()]));
        }
        let mut inner = g.create_group(&name);
        for ((data, shape), what) in w.iter().zip(["kernel:0", "bias:0"]) {
            inner.create_dataset(what).with_f32_data(data).with_shape(shape);
        }
        g.add_group(inner.finish());
        mw.add_group(g.finish());
    }
    b.add_group(mw.finish());
    b.finish().unwrap()
}

#[test]
fn keras2_style_h5_with_fixed_length_strings_loads() {
    let evil = "<img src=x onerror=alert(1)>";
    for (sequential, first) in [(false, "dense_1"), (true, "dense_1"), (false, evil)] {
        let bytes = keras2_h5(sequential, first);
        let attrs = hdf5_pure::File::from_bytes(bytes.clone()).unwrap().root().attrs().unwrap();
        assert!(
            matches!(attrs["model_config"], AttrValue::AsciiString(_) | AttrValue::AsciiStringSized { .. }),
            "{:?}",
            attrs["model_config"].type_name()
        );
        let m = keras::load_keras_h5(&bytes, "k2").unwrap_or_else(|e| panic!("sequential={sequential} {first}: {e}"));
        assert_eq!(m.nodes[2].name, first);
        let d = max_diff(&m, "digits_mlp");
        assert!(d < 1e-4, "keras2 h5 (sequential={sequential}): max diff {d}");
    }
}

#[test]
fn weights_only_h5_is_explained() {
    let mut b = FileBuilder::new();
    b.set_attr("layer_names", AttrValue::AsciiStringArray(vec!["dense".into()]));
    let e = keras::load_keras_h5(&b.finish().unwrap(), "x").unwrap_err();
    assert!(e.to_string().contains("only weights"), "{e}");
}

// ---------------------------------------------------------------- synthetic Keras 3 model

/// A Keras 3 Functional layer entry reading `inbound` (Keras 3 node form).
fn k3_layer(class: &str, name: &str, mut config: Value, inbound: &[&str]) -> Value {
    config["name"] = json!(name);
    let tensors: Vec<Value> = inbound
        .iter()
        .map(|n| json!({"class_name": "__keras_tensor__", "config": {"shape": [null], "dtype": "float32", "keras_history": [n, 0, 0]}}))
        .collect();
    let args = if tensors.len() == 1 { json!([tensors[0]]) } else { json!([tensors]) };
    let nodes = if inbound.is_empty() { json!([]) } else { json!([{"args": args, "kwargs": {}}]) };
    json!({"module": "keras.layers", "class_name": class, "config": config, "registered_name": null, "name": name, "inbound_nodes": nodes})
}

struct Rng(u64);
impl Rng {
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * ((xorshift(&mut self.0) >> 40) as f32 / (1u64 << 24) as f32)).collect()
    }
}

/// A residual CNN using every supported layer class, as a Keras 3 `.keras`
/// archive, plus its weights by layer name for the reference below.
fn synthetic_keras() -> (Vec<u8>, HashMap<&'static str, Vec<Vec<f32>>>) {
    let mut r = Rng(0xdead_beef_1234_5678);
    let mut w: HashMap<&'static str, Vec<Vec<f32>>> = HashMap::new();
    w.insert("conv_a", vec![r.vec(3 * 3 * 2 * 4, -0.5, 0.5)]); // use_bias=false
    w.insert("bn_a", vec![r.vec(4, 0.5, 1.5), r.vec(4, -0.2, 0.2), r.vec(4, -0.3, 0.3), r.vec(4, 0.5, 1.5)]);
    w.insert("conv_b", vec![r.vec(3 * 3 * 4 * 4, -0.5, 0.5), r.vec(4, -0.1, 0.1)]);
    w.insert("conv_c", vec![r.vec(2 * 2 * 4 * 5, -0.5, 0.5), r.vec(5, -0.1, 0.1)]);
    w.insert("bn_c", vec![r.vec(5, -0.3, 0.3), r.vec(5, 0.5, 1.5)]); // center=scale=false
    w.insert("logits", vec![r.vec(5 * 3, -1.0, 1.0), r.vec(3, -0.1, 0.1)]);
    let conv = |filters: usize, k: usize, s: usize, padding: &str, act: &str, bias: bool| {
        json!({"filters": filters, "kernel_size": [k, k], "strides": [s, s], "padding": padding, "data_format": "channels_last",
               "dilation_rate": [1, 1], "groups": 1, "activation": act, "use_bias": bias})
    };
    let bn = |center: bool, scale: bool| json!({"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": center, "scale": scale});
    let layers = vec![
        k3_layer("InputLayer", "in", json!({"batch_shape": [null, 8, 8, 2], "dtype": "float32"}), &[]),
        k3_layer("Conv2D", "conv_a", conv(4, 3, 1, "same", "linear", false), &["in"]),
        k3_layer("BatchNormalization", "bn_a", bn(true, true), &["conv_a"]),
        k3_layer("ReLU", "relu_a", json!({"max_value": null, "negative_slope": 0.0, "threshold": 0.0}), &["bn_a"]),
        k3_layer("Conv2D", "conv_b", conv(4, 3, 1, "same", "tanh", true), &["relu_a"]),
        k3_layer("Add", "add", json!({}), &["relu_a", "conv_b"]),
        k3_layer("Activation", "act", json!({"activation": "sigmoid"}), &["add"]),
        k3_layer(
            "AveragePooling2D",
            "avg",
            json!({"pool_size": [2, 2], "strides": null, "padding": "valid", "data_format": "channels_last"}),
            &["act"],
        ),
        k3_layer("MaxPooling2D", "max", json!({"pool_size": 3, "strides": 1, "padding": "same"}), &["avg"]),
        k3_layer("Conv2D", "conv_c", conv(5, 2, 2, "valid", "relu", true), &["max"]),
        k3_layer("BatchNormalization", "bn_c", bn(false, false), &["conv_c"]),
        k3_layer("GlobalAveragePooling2D", "gap", json!({"data_format": "channels_last", "keepdims": false}), &["bn_c"]),
        k3_layer("Dropout", "drop", json!({"rate": 0.5}), &["gap"]),
        k3_layer("Dense", "logits", json!({"units": 3, "activation": "linear", "use_bias": true}), &["drop"]),
        k3_layer("Softmax", "probs", json!({"axis": -1}), &["logits"]),
    ];
    let config = json!({"module": "keras.src.models.functional", "class_name": "Functional",
        "config": {"name": "synthetic", "trainable": true, "layers": layers, "input_layers": ["in", 0, 0], "output_layers": ["probs", 0, 0]},
        "registered_name": "Functional", "build_config": {"input_shape": null}, "compile_config": {}});
    // model.weights.h5 as Keras 3 writes it: layers/<snake_case(class)>[_n]/vars/<i>.
    let keys = [
        ("in", "input_layer"),
        ("conv_a", "conv2d"),
        ("bn_a", "batch_normalization"),
        ("relu_a", "re_lu"),
        ("conv_b", "conv2d_1"),
        ("add", "add"),
        ("act", "activation"),
        ("avg", "average_pooling2d"),
        ("max", "max_pooling2d"),
        ("conv_c", "conv2d_2"),
        ("bn_c", "batch_normalization_1"),
        ("gap", "global_average_pooling2d"),
        ("drop", "dropout"),
        ("logits", "dense"),
        ("probs", "softmax"),
    ];
    let shapes: HashMap<&str, Vec<Vec<u64>>> = HashMap::from([
        ("conv_a", vec![vec![3, 3, 2, 4]]),
        ("bn_a", vec![vec![4]; 4]),
        ("conv_b", vec![vec![3, 3, 4, 4], vec![4]]),
        ("conv_c", vec![vec![2, 2, 4, 5], vec![5]]),
        ("bn_c", vec![vec![5]; 2]),
        ("logits", vec![vec![5, 3], vec![3]]),
    ]);
    let mut b = FileBuilder::new();
    let mut top = b.create_group("layers");
    for (name, key) in keys {
        let mut g = top.create_group(key);
        let mut vars = g.create_group("vars");
        vars.set_attr("name", AttrValue::VarLenString(name.into()));
        for (i, (data, shape)) in w.get(name).into_iter().flatten().zip(shapes.get(name).into_iter().flatten()).enumerate() {
            vars.create_dataset(&i.to_string()).with_f32_data(data).with_shape(shape);
        }
        g.add_group(vars.finish());
        top.add_group(g.finish());
    }
    b.add_group(top.finish());
    let mut vars = b.create_group("vars");
    vars.set_attr("name", AttrValue::VarLenString("synthetic".into()));
    b.add_group(vars.finish());
    let entries = [
        ("metadata.json".to_string(), br#"{"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}"#.to_vec()),
        ("config.json".to_string(), serde_json::to_vec(&config).unwrap()),
        ("model.weights.h5".to_string(), b.finish().unwrap()),
    ];
    (rezip(&entries), w)
}

/// Plain f64 NHWC reference of the synthetic model (TensorFlow conventions:
/// "same" pads total = max((out-1)·s + k - in, 0), top/left = total / 2;
/// padded taps are zeros for conv, skipped for pooling).
fn synthetic_reference(x: &[f32], w: &HashMap<&'static str, Vec<Vec<f32>>>) -> Vec<f64> {
    type T = (Vec<f64>, [usize; 3]);
    fn pad(inp: usize, k: usize, s: usize, same: bool) -> (usize, usize) {
        if same {
            let out = inp.div_ceil(s);
            (out, ((out - 1) * s + k).saturating_sub(inp) / 2)
        } else {
            ((inp - k) / s + 1, 0)
        }
    }
    fn window(
        t: &T,
        k: usize,
        s: usize,
        same: bool,
        mut f: impl FnMut(usize, usize, &mut dyn Iterator<Item = (usize, usize, usize)>) -> Vec<f64>,
    ) -> T {
        let [h, wd, _] = t.1;
        let (oh, pt) = pad(h, k, s, same);
        let (ow, pl) = pad(wd, k, s, same);
        let mut out = vec![];
        let mut oc = 0;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut taps = (0..k).flat_map(|dy| (0..k).map(move |dx| (dy, dx))).filter_map(|(dy, dx)| {
                    let y = (oy * s + dy).checked_sub(pt)?;
                    let x = (ox * s + dx).checked_sub(pl)?;
                    (y < h && x < wd).then_some((dy * k + dx, y, x))
                });
                let v = f(oy, ox, &mut taps);
                oc = v.len();
                out.extend(v);
            }
        }
        (out, [oh, ow, oc])
    }
    let conv = |t: &T, k: &[f32], b: Option<&[f32]>, ks: usize, s: usize, same: bool, o: usize| {
        let c = t.1[2];
        window(t, ks, s, same, |_, _, taps| {
            let mut acc: Vec<f64> = (0..o).map(|j| b.map_or(0.0, |b| b[j] as f64)).collect();
            for (tap, y, x) in taps {
                for ci in 0..c {
                    let xv = t.0[(y * t.1[1] + x) * c + ci];
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a += xv * k[(tap * c + ci) * o + j] as f64;
                    }
                }
            }
            acc
        })
    };
    let pool = |t: &T, ks: usize, s: usize, same: bool, max: bool| {
        let c = t.1[2];
        window(t, ks, s, same, |_, _, taps| {
            let mut acc = vec![if max { f64::NEG_INFINITY } else { 0.0 }; c];
            let mut n = 0.0;
            for (_, y, x) in taps {
                n += 1.0;
                for (ci, a) in acc.iter_mut().enumerate() {
                    let v = t.0[(y * t.1[1] + x) * c + ci];
                    *a = if max { a.max(v) } else { *a + v };
                }
            }
            if !max {
                acc.iter_mut().for_each(|a| *a /= n);
            }
            acc
        })
    };
    let bn = |t: &mut T, g: Option<&[f32]>, b: Option<&[f32]>, m: &[f32], v: &[f32]| {
        let c = t.1[2];
        for (i, a) in t.0.iter_mut().enumerate() {
            let k = i % c;
            *a = (*a - m[k] as f64) / (v[k] as f64 + 0.001).sqrt() * g.map_or(1.0, |g| g[k] as f64) + b.map_or(0.0, |b| b[k] as f64);
        }
    };
    let x: T = (x.iter().map(|&v| v as f64).collect(), [8, 8, 2]);
    let mut a = conv(&x, &w["conv_a"][0], None, 3, 1, true, 4);
    let p = &w["bn_a"];
    bn(&mut a, Some(&p[0]), Some(&p[1]), &p[2], &p[3]);
    a.0.iter_mut().for_each(|v| *v = v.max(0.0));
    let mut b = conv(&a, &w["conv_b"][0], Some(&w["conv_b"][1]), 3, 1, true, 4);
    b.0.iter_mut().zip(&a.0).for_each(|(v, r)| *v = 1.0 / (1.0 + (-(v.tanh() + r)).exp()));
    let b = pool(&b, 2, 2, false, false);
    let b = pool(&b, 3, 1, true, true);
    let mut c = conv(&b, &w["conv_c"][0], Some(&w["conv_c"][1]), 2, 2, false, 5);
    c.0.iter_mut().for_each(|v| *v = v.max(0.0));
    let p = &w["bn_c"];
    bn(&mut c, None, None, &p[0], &p[1]);
    let n = (c.1[0] * c.1[1]) as f64;
    let gap: Vec<f64> = (0..5).map(|k| c.0.iter().skip(k).step_by(5).sum::<f64>() / n).collect();
    let (k, bias) = (&w["logits"][0], &w["logits"][1]);
    let logits: Vec<f64> = (0..3).map(|j| bias[j] as f64 + (0..5).map(|i| gap[i] * k[i * 3 + j] as f64).sum::<f64>()).collect();
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    e.iter().map(|v| v / e.iter().sum::<f64>()).collect()
}

#[test]
fn every_supported_layer_class_matches_a_reference() {
    let (bytes, w) = synthetic_keras();
    let m = keras::load_keras_zip(&bytes, "synthetic").unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = m.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Input",
            "Conv2D",
            "BatchNormalization",
            "Activation",
            "Conv2D",
            "Add",
            "Activation",
            "AvgPool2D",
            "MaxPool2D",
            "Conv2D",
            "BatchNormalization",
            "GlobalAveragePooling2D",
            "Dropout",
            "Dense",
            "Activation"
        ]
    );
    assert_eq!(m.nodes[5].inputs, [3, 4]);
    assert_eq!(m.class_names, ["0", "1", "2"]);
    let mut r = Rng(42);
    let n = 5;
    let x = r.vec(n * 8 * 8 * 2, 0.0, 1.0);
    let out = forward(&m, &x, n, None, false, &mut |_, _| true).unwrap();
    for s in 0..n {
        let want = synthetic_reference(&x[s * 128..(s + 1) * 128], &w);
        for (j, &p) in want.iter().enumerate() {
            let got = out.probs[s * 3 + j] as f64;
            assert!((got - p).abs() < 1e-5, "sample {s} class {j}: {got} vs {p}");
        }
    }
    // The same archive, with the layer order in config.json shuffled: the
    // graph is rebuilt from inbound nodes, but the weights are then looked up
    // by the shuffled order (as Keras would) and the name check catches it.
    let mut entries = unzip(&bytes);
    let cfg = entry(&mut entries, "config.json");
    let mut v: Value = serde_json::from_slice(cfg).unwrap();
    v["config"]["layers"].as_array_mut().unwrap().swap(1, 4);
    *cfg = serde_json::to_vec(&v).unwrap();
    let e = keras::load_keras_zip(&rezip(&entries), "x").unwrap_err();
    assert!(e.to_string().contains("conv_a") && e.to_string().contains("conv_b"), "{e}");
}

/// A longer mutation campaign over the .h5, the weights inside a .keras and
/// config.json. Run with
/// `cargo test --release --test keras_fixtures -- --ignored` (KERAS_FUZZ_ITERS
/// sets the number of mutations, default 20000).
#[test]
#[ignore]
fn fuzz_long() {
    let iters: usize = std::env::var("KERAS_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let h5 = std::fs::read(models().join("digits_mlp.h5")).unwrap();
    let (synthetic, _) = synthetic_keras();
    let sources = [keras_fixture("digits_cnn"), keras_fixture("digits_mlp"), unzip(&synthetic)];
    let mut seed = 0x0bad_cafe_f00d_1234u64;
    let mut slowest = std::time::Duration::ZERO;
    let (mut ok, mut err) = (0usize, 0usize);
    for k in 0..iters {
        let r = xorshift(&mut seed);
        let t = std::time::Instant::now();
        let res = if k % 3 == 0 {
            let mut b = h5.clone();
            mutate(&mut b, &mut seed);
            load_no_panic("digits_mlp.h5", &b, &format!("h5 mutation {k}"))
        } else {
            let mut e = sources[(r % 3) as usize].clone();
            let which = if k % 3 == 1 { "model.weights.h5" } else { "config.json" };
            mutate(entry(&mut e, which), &mut seed);
            load_no_panic("x.keras", &rezip(&e), &format!("{which} mutation {k}"))
        };
        slowest = slowest.max(t.elapsed());
        if res.is_ok() { ok += 1 } else { err += 1 }
    }
    eprintln!("{iters} mutations: {ok} loaded, {err} errors, slowest {slowest:?}");
    assert!(slowest.as_secs() < 10);
}

fn mutate(b: &mut Vec<u8>, seed: &mut u64) {
    let r = xorshift(seed);
    let n = b.len().max(1);
    match r % 5 {
        0 => b.truncate((xorshift(seed) as usize) % n),
        1 => (0..1 + r as usize % 8).for_each(|_| {
            let at = (xorshift(seed) as usize) % n.min(if r.is_multiple_of(2) { 4096 } else { n });
            if let Some(x) = b.get_mut(at) {
                *x ^= 1 << (xorshift(seed) % 8);
            }
        }),
        2 => {
            let at = (xorshift(seed) as usize) % n;
            let len = (1 + xorshift(seed) as usize % 8).min(b.len().saturating_sub(at));
            b[at..at + len].iter_mut().for_each(|x| *x = 0xff);
        }
        3 => {
            let at = (xorshift(seed) as usize) % n;
            let len = (1 + xorshift(seed) as usize % 8).min(b.len().saturating_sub(at));
            b[at..at + len].iter_mut().for_each(|x| *x = 0);
        }
        _ => {
            // Copy a random span over another (duplicates addresses, names, digits).
            let (from, to) = ((xorshift(seed) as usize) % n, (xorshift(seed) as usize) % n);
            let len = (1 + xorshift(seed) as usize % 16).min(b.len().saturating_sub(from)).min(b.len().saturating_sub(to));
            let span = b[from..from + len].to_vec();
            b[to..to + len].copy_from_slice(&span);
        }
    }
}

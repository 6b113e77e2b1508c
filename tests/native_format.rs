//! The native `.remodule` format: every bundled model and Keras fixture
//! survives save → load bit for bit, module sets keep their masks and scores,
//! and hostile files (truncated, inconsistent, from the future, huge) give
//! typed errors, never panics.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use remodule::engine::bits::BitSet;
use remodule::engine::data::Dataset;
use remodule::engine::decompose::{Calibration, Decomposition, Mode, Module, Settings, concerned_scores, decompose};
use remodule::engine::model::{Activation, InputKind, InputSpec, Masks, Model, ModelBuilder, Op, UnitMask, forward};
use remodule::formats::dataset::read_npz_dataset;
use remodule::formats::native::{self, Contents, load_modules, load_native, save_model, save_modules};
use remodule::formats::{load_model, npz};
use remodule::workbench::{Pick, Workbench};
use remodule::{Error, Result};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(root().join(p)).unwrap()
}

/// Every model file shipped: models/*.keras|h5 and tests/fixtures/keras/*.keras|h5.
fn model_files() -> Vec<PathBuf> {
    let mut files = vec![];
    for dir in ["models", "tests/fixtures/keras"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "keras" || e == "h5") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 27, "model files missing: {files:?}");
    files
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_model_round_trips_bit_for_bit() {
    for f in model_files() {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let model = load_model(&std::fs::read(&f).unwrap(), &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let saved = save_model(&model).unwrap();
        assert!(native::sniff(&saved), "{name}");
        assert_eq!(native::contents(&saved).unwrap(), Contents::Model);
        // The manifest's name wins over the file name.
        let back = load_model(&saved, "renamed.remodule").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, model, "{name}: structure or weights differ");
        // Saving again gives the same bytes, so every weight came back bit for bit (== would let -0.0 pass for 0.0).
        assert_eq!(save_model(&back).unwrap(), saved, "{name}");
        let stem = name.split('.').next().unwrap();
        let exp = npz::read_npz(&std::fs::read(f.with_file_name(format!("{stem}.expected.npz"))).unwrap()).unwrap();
        let n = exp["x"].shape[0];
        let x = exp["x"].to_f32();
        let (a, b) =
            (forward(&model, &x, n, None, false, &mut |_, _| true).unwrap(), forward(&back, &x, n, None, false, &mut |_, _| true).unwrap());
        assert_eq!((bits(&a.logits), bits(&a.probs)), (bits(&b.logits), bits(&b.probs)), "{name}: outputs differ");
    }
}

#[test]
fn the_file_name_names_a_model_only_when_the_manifest_does_not() {
    let saved = save_model(&tiny()).unwrap();
    assert_eq!(load_native(&saved, "other").unwrap().name, "tiny");
    let unnamed = with_manifest(&saved, |m| m["model"]["name"] = "".into());
    assert_eq!(load_native(&unnamed, "other").unwrap().name, "other");
    // By magic bytes, whatever the extension; a damaged file with the extension gets the native diagnosis.
    assert_eq!(load_model(&saved, "weights.bin").unwrap().name, "tiny");
    let e = load_model(b"short", "x.remodule").unwrap_err();
    assert!(matches!(e, Error::Format { format: "Remodule", .. }), "{e}");
}

// ---- hostile files ----

/// Input [4] → Dense(3, relu) "hidden" → Dense(2, softmax) "out".
fn tiny() -> Model {
    let mut b =
        ModelBuilder::new("tiny", InputSpec { scale: Some(0.5), offset: Some(0.25), ..InputSpec::new(vec![4], InputKind::Vectors) })
            .unwrap();
    let k1 = Array2::from_shape_fn((4, 3), |(i, j)| (i as f32 - j as f32) * 0.3);
    b.push("hidden", Op::Dense { kernel: k1, bias: Array1::from(vec![0.1, -0.2, 0.0]), activation: Activation::Relu }).unwrap();
    let k2 = Array2::from_shape_fn((3, 2), |(i, j)| (i + 2 * j) as f32 * 0.1 - 0.2);
    b.push("out", Op::Dense { kernel: k2, bias: Array1::zeros(2), activation: Activation::Softmax }).unwrap();
    b.finish(vec!["a".into(), "b".into()]).unwrap()
}

/// (header JSON, data bytes) of a safetensors file.
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), bytes[8 + n..].to_vec())
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    h.resize(h.len().next_multiple_of(8), b' ');
    [(h.len() as u64).to_le_bytes().to_vec(), h, data.to_vec()].concat()
}

fn with_header(bytes: &[u8], edit: impl FnOnce(&mut Value, &mut Vec<u8>)) -> Vec<u8> {
    let (mut h, mut data) = split(bytes);
    edit(&mut h, &mut data);
    join(&h, &data)
}

fn with_manifest(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    with_header(bytes, |h, _| {
        let mut m: Value = serde_json::from_str(h["__metadata__"]["remodule"].as_str().unwrap()).unwrap();
        edit(&mut m);
        h["__metadata__"]["remodule"] = m.to_string().into();
    })
}

/// Loads, turning a panic into a test failure that names the case.
fn load(bytes: &[u8], case: &str) -> Result<Model> {
    std::panic::catch_unwind(|| load_model(bytes, "case.remodule")).unwrap_or_else(|_| panic!("the loader panicked on {case}"))
}

fn load_set(bytes: &[u8], case: &str) -> Result<(Model, Decomposition)> {
    std::panic::catch_unwind(|| load_modules(bytes, "case")).unwrap_or_else(|_| panic!("load_modules panicked on {case}"))
}

fn gru_fixture() -> Vec<u8> {
    save_model(&load_model(&read("tests/fixtures/keras/gru.keras"), "gru.keras").unwrap()).unwrap()
}

#[test]
fn truncated_files_are_errors_at_every_offset() {
    for saved in [save_model(&tiny()).unwrap(), gru_fixture()] {
        for cut in 0..saved.len() {
            let e = load(&saved[..cut], &format!("a cut at {cut}")).unwrap_err();
            assert!(matches!(e, Error::Format { .. }), "cut at {cut}: {e}");
        }
    }
}

#[test]
fn a_header_longer_than_the_file_is_an_error() {
    let mut saved = save_model(&tiny()).unwrap();
    for claim in [saved.len() as u64, u64::MAX, 1 << 40] {
        saved[..8].copy_from_slice(&claim.to_le_bytes());
        let e = load(&saved, "a long header").unwrap_err();
        assert!(e.to_string().contains("header claims"), "{e}");
    }
}

#[test]
fn random_corruption_never_panics() {
    let saved = gru_fixture();
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let header = 8 + u64::from_le_bytes(saved[..8].try_into().unwrap()) as usize;
    for i in 0..3000 {
        let mut b = saved.clone();
        for _ in 0..1 + next() % 4 {
            // Mostly the manifest (where structure lives), sometimes the weights.
            let at = if next() % 4 == 0 { next() as usize % b.len() } else { 8 + next() as usize % (header - 8) };
            b[at] = next() as u8;
        }
        let _ = load(&b, &format!("mutation {i}"));
        let _ = load_set(&b, &format!("mutation {i}"));
    }
}

#[test]
fn a_manifest_from_the_future_names_both_versions() {
    let saved = save_model(&tiny()).unwrap();
    // A newer manifest may look different: the version is checked first.
    let next = native::VERSION + 1;
    let future = with_manifest(&saved, |m| {
        m["version"] = next.into();
        m["model"] = "something new".into();
    });
    let e = load(&future, "a newer version").unwrap_err();
    assert_eq!(e, Error::Version { format: "Remodule", found: next, supported: native::VERSION });
    assert!(e.to_string().contains(&format!("version {next}")) && e.to_string().contains(&format!("max {}", native::VERSION)), "{e}");
    for bad in [Value::from(0), Value::from("1"), Value::Null, Value::from(1.5)] {
        let e = load(&with_manifest(&saved, |m| m["version"] = bad.clone()), "a bad version").unwrap_err();
        assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("version"), "{bad}: {e}");
    }
}

#[test]
fn files_that_are_not_remodule_models_are_explained() {
    let saved = save_model(&tiny()).unwrap();
    let plain = with_header(&saved, |h, _| {
        h.as_object_mut().unwrap().remove("__metadata__");
    });
    assert!(load(&plain, "plain safetensors").unwrap_err().to_string().contains("no model structure"));
    let other = with_manifest(&saved, |m| m["format"] = "gguf".into());
    assert!(load(&other, "another format").unwrap_err().to_string().contains("\"format\""));
    let not_json = with_header(&saved, |h, _| h["__metadata__"]["remodule"] = "{not json".into());
    assert!(load(&not_json, "bad JSON").unwrap_err().to_string().contains("not valid JSON"));
    let e = load_set(&saved, "a model read as a module set").unwrap_err();
    assert!(e.to_string().contains("holds a model, not a module set"), "{e}");
}

#[test]
fn unknown_op_kinds_are_unsupported() {
    let saved = save_model(&tiny()).unwrap();
    let e = load(&with_manifest(&saved, |m| m["model"]["nodes"][1]["kind"] = "Transformer".into()), "an unknown op").unwrap_err();
    assert!(matches!(&e, Error::Unsupported { name, .. } if name == "Transformer"), "{e}");
    let e = load(&with_manifest(&saved, |m| m["model"]["nodes"][1]["activation"] = "mish".into()), "an unknown activation").unwrap_err();
    assert!(matches!(&e, Error::Format { .. }) && e.to_string().contains("mish"), "{e}");
    let e = load(
        &with_manifest(&saved, |m| m["model"]["nodes"][1].as_object_mut().unwrap().remove("activation").map(drop).unwrap()),
        "no activation",
    )
    .unwrap_err();
    assert!(e.to_string().contains("node 1 ('hidden', Dense) has no \"activation\""), "{e}");
    let e = load(&with_manifest(&saved, |m| m["model"]["nodes"][0]["kind"] = "Dropout".into()), "no input").unwrap_err();
    assert!(e.to_string().contains("node 0 must be the Input"), "{e}");
    let e = load(&with_manifest(&saved, |m| m["model"]["nodes"][1]["kind"] = "Input".into()), "a second input").unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[test]
fn shapes_that_disagree_with_the_manifest_are_errors() {
    let saved = save_model(&tiny()).unwrap();
    // Same bytes, transposed kernel: the builder sees 3 rows where the input has 4 features.
    let transposed = with_header(&saved, |h, _| h["nodes.1.kernel"]["shape"] = serde_json::json!([3, 4]));
    assert!(matches!(load(&transposed, "a transposed kernel").unwrap_err(), Error::Shape { .. }));
    let wrong_rank = with_header(&saved, |h, _| h["nodes.1.kernel"]["shape"] = serde_json::json!([12]));
    assert!(matches!(load(&wrong_rank, "a flat kernel").unwrap_err(), Error::Shape { .. }));
    let declared = with_manifest(&saved, |m| m["model"]["nodes"][1]["shape"] = serde_json::json!([5]));
    let e = load(&declared, "a wrong declared shape").unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("manifest"), "{e}");
    let classes = with_manifest(&saved, |m| m["model"]["class_names"] = serde_json::json!(["a", "b", "c"]));
    assert!(matches!(load(&classes, "three class names for two outputs").unwrap_err(), Error::Shape { .. }));
    let wrong_type = with_header(&saved, |h, _| h["nodes.1.bias"]["dtype"] = "I32".into());
    assert!(load(&wrong_type, "an I32 bias").unwrap_err().to_string().contains("expected F32"));

    let gru = gru_fixture();
    let node = {
        let m: Value = serde_json::from_str(split(&gru).0["__metadata__"]["remodule"].as_str().unwrap()).unwrap();
        m["model"]["nodes"].as_array().unwrap().iter().position(|n| n["kind"] == "GRU").unwrap()
    };
    let units = with_manifest(&gru, |m| {
        let u = m["model"]["nodes"][node]["units"].as_u64().unwrap();
        m["model"]["nodes"][node]["units"] = (2 * u).into();
    });
    assert!(matches!(load(&units, "doubled GRU units").unwrap_err(), Error::Shape { .. }));
    let no_reset = with_manifest(&gru, |m| {
        m["model"]["nodes"][node].as_object_mut().unwrap().remove("reset_after");
    });
    assert!(load(&no_reset, "a GRU without reset_after").unwrap_err().to_string().contains("reset_after"));
    let lstm = with_manifest(&gru, |m| m["model"]["nodes"][node]["kind"] = "LSTM".into());
    assert!(load(&lstm, "a GRU called LSTM").is_err());
}

#[test]
fn nan_weights_are_refused() {
    let saved = save_model(&tiny()).unwrap();
    let nan = with_header(&saved, |h, data| {
        let at = h["nodes.1.kernel"]["data_offsets"][0].as_u64().unwrap() as usize + 8;
        data[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert_eq!(load(&nan, "a NaN").unwrap_err(), Error::NonFinite { layer: "hidden".into(), what: "kernel".into() });
    let inf = with_header(&saved, |h, data| {
        let at = h["nodes.2.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
        data[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    });
    assert!(matches!(load(&inf, "an infinity").unwrap_err(), Error::NonFinite { .. }));
    let scale = with_manifest(&saved, |m| m["model"]["input"]["scale"] = 1e39.into());
    assert!(load(&scale, "an infinite input scale").is_err());
}

#[test]
fn missing_and_stray_tensors_are_errors() {
    let saved = save_model(&tiny()).unwrap();
    let renamed = with_header(&saved, |h, _| {
        let t = h.as_object_mut().unwrap().remove("nodes.1.bias").unwrap();
        h["stray"] = t;
    });
    let e = load(&renamed, "a missing bias").unwrap_err();
    assert!(e.to_string().contains("tensor 'nodes.1.bias' is missing"), "{e}");
    let extra = with_header(&saved, |h, data| {
        h["nodes.7.extra"] = serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [data.len(), data.len() + 4]});
        data.extend(0f32.to_le_bytes());
    });
    let e = load(&extra, "an extra tensor").unwrap_err();
    assert!(e.to_string().contains("'nodes.7.extra' belongs to no layer"), "{e}");
}

#[test]
fn a_node_reading_a_later_node_is_refused() {
    let saved = save_model(&tiny()).unwrap();
    for bad in [2u64, 3, u64::MAX] {
        let e = load(&with_manifest(&saved, |m| m["model"]["nodes"][1]["inputs"] = serde_json::json!([bad])), "a forward reference")
            .unwrap_err();
        assert!(e.to_string().contains("not defined before it") || matches!(e, Error::Format { .. }), "{bad}: {e}");
    }
    let e = load(&with_manifest(&saved, |m| m["model"]["nodes"][1]["inputs"] = serde_json::json!([1])), "a self loop").unwrap_err();
    assert!(e.to_string().contains("not defined before it"), "{e}");
}

#[test]
fn huge_declared_sizes_are_refused_before_allocating() {
    let saved = save_model(&tiny()).unwrap();
    // Shapes whose byte size overflows, or that hide a huge dimension behind a zero one.
    for shape in [serde_json::json!([1u64 << 62, 1u64 << 62]), serde_json::json!([0, 1u64 << 40])] {
        let e = load(&with_header(&saved, |h, _| h["nodes.1.kernel"]["shape"] = shape.clone()), "a huge shape").unwrap_err();
        assert!(matches!(e, Error::Format { .. } | Error::TooLarge { .. }), "{shape}: {e}");
    }
    // A zero-byte tensor with a huge declared dimension, at the end of the data.
    let hidden = with_header(&saved, |h, data| {
        let last = h.as_object().unwrap().iter().find(|(_, t)| t["data_offsets"][1] == data.len()).map(|(k, _)| k.clone()).unwrap();
        let start = h[&last]["data_offsets"][0].as_u64().unwrap() as usize;
        data.truncate(start);
        h[&last] = serde_json::json!({"dtype": "F32", "shape": [0, 1u64 << 40], "data_offsets": [start, start]});
    });
    assert!(matches!(load(&hidden, "a zero-size huge tensor").unwrap_err(), Error::TooLarge { .. } | Error::Shape { .. }));
    // Offsets whose end overflows a usize once the header length is added.
    let overflow = with_header(&saved, |h, _| {
        let meta = h["__metadata__"].clone();
        *h = serde_json::json!({"__metadata__": meta});
        let size = (1u64 << 61) - 1;
        for i in 0..8 {
            h[format!("t{i}")] = serde_json::json!({"dtype": "U8", "shape": [size], "data_offsets": [i * size, (i + 1) * size]});
        }
    });
    assert!(matches!(load(&overflow, "offsets near usize::MAX").unwrap_err(), Error::Format { .. }));
    let input = with_manifest(&saved, |m| m["model"]["input"]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40]));
    assert!(matches!(load(&input, "a huge input").unwrap_err(), Error::TooLarge { .. }));
    let gru = gru_fixture();
    let units = with_manifest(&gru, |m| {
        for n in m["model"]["nodes"].as_array_mut().unwrap() {
            if n["kind"] == "GRU" {
                n["units"] = (1u64 << 60).into();
            }
        }
    });
    assert!(matches!(load(&units, "huge units").unwrap_err(), Error::TooLarge { .. }));
    let cnn = save_model(&load_model(&read("models/digits_cnn.keras"), "digits_cnn.keras").unwrap()).unwrap();
    let pool = with_manifest(&cnn, |m| {
        for n in m["model"]["nodes"].as_array_mut().unwrap() {
            if n["kind"] == "MaxPool2D" {
                n["size"] = serde_json::json!([1u64 << 40, 1]);
            }
        }
    });
    assert!(matches!(load(&pool, "a huge pool window").unwrap_err(), Error::TooLarge { .. }));
    let zero = with_manifest(&cnn, |m| {
        for n in m["model"]["nodes"].as_array_mut().unwrap() {
            if n["kind"] == "Conv2D" {
                n["strides"] = serde_json::json!([0, 1]);
            }
        }
    });
    assert!(matches!(load(&zero, "a zero stride").unwrap_err(), Error::Shape { .. }));
}

// ---- module sets ----

fn dataset(name: &str) -> Dataset {
    read_npz_dataset(&read(format!("data/{name}.npz")), name).unwrap()
}

/// The model as the workbench runs it on `data` (the input rule, the data set's class names).
fn model_on(file: &str, data: &Dataset) -> Model {
    let mut m = load_model(&read(format!("models/{file}")), file).unwrap();
    m.class_names = data.class_names.clone();
    m
}

/// (Unrolled recurrent masks are the papers' technique: strength 0.)
fn settings(mode: Mode, unrolled: bool, samples: usize) -> Settings {
    let base = if unrolled { Settings::faithful() } else { Settings::default() };
    Settings { mode, unrolled, samples_per_class: samples, ..base }
}

#[test]
fn module_sets_round_trip_with_identical_masks_and_scores() {
    let cases = [
        ("digits_mlp.keras", "digits", settings(Mode::Paper, false, 100)),
        ("digits_mlp.keras", "digits", settings(Mode::Reference, false, 100)),
        ("digits_resnet.keras", "digits", settings(Mode::Paper, false, 30)),
        ("lang_a_gru.keras", "lang_a", settings(Mode::Paper, true, 50)),
        ("lang_tags_lstm.keras", "lang_tags", settings(Mode::Paper, false, 20)),
    ];
    for (file, data, s) in cases {
        let d = dataset(data);
        let model = model_on(file, &d);
        let dec = decompose(&model, &d, &s, &mut |_| true).unwrap();
        if s.mode == Mode::Reference {
            assert!(dec.modules.iter().any(|m| m.masks.nodes.values().any(|u| u.clip_negative.is_some())), "{file}: no clip masks to test");
        }
        let saved = save_modules(&model, &dec).unwrap();
        assert_eq!(native::contents(&saved).unwrap(), Contents::Modules);
        let (m2, d2) = load_modules(&saved, "x").unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m2, model, "{file}");
        assert_eq!(d2, dec, "{file}");
        assert_eq!(d2.digest(), dec.digest());
        assert_eq!(save_modules(&m2, &d2).unwrap(), saved, "{file}: not byte-stable");
        // A module set's model loads as a plain model too.
        assert_eq!(load_model(&saved, "x.remodule").unwrap(), model);
        let rows: Vec<usize> = (0..d.test.len().min(300)).collect();
        let x = d.inputs(&model, &d.test, &rows);
        for (a, b) in dec.modules.iter().zip(&d2.modules) {
            let sa = concerned_scores(&model, a, &x, rows.len(), &mut |_, _| true).unwrap();
            let sb = concerned_scores(&m2, b, &x, rows.len(), &mut |_, _| true).unwrap();
            assert_eq!(bits(&sa), bits(&sb), "{file}: module {} scores differ", a.class);
        }
    }
}

#[test]
fn the_workbench_imports_and_exports_module_sets() {
    for (file, data, s) in [
        ("digits_mlp.keras", "digits", settings(Mode::Reference, false, 100)),
        // Recurrent: class relevance does not apply, so the set says strength 0.
        ("lang_a_gru.keras", "lang_a", Settings { strength: 0.0, ..settings(Mode::Paper, false, 50) }),
    ] {
        let mut wb = Workbench::new();
        let ds = wb.add_dataset(&read(format!("data/{data}.npz")), data).unwrap().id;
        let id = wb.add_model(&read(format!("models/{file}")), file, ds, Default::default()).unwrap().id;
        assert!(wb.export_modules(id).unwrap_err().to_string().contains("not decomposed"));
        let dec = wb.decompose(id, &s, &mut |_| true).unwrap();
        let saved = wb.export_modules(id).unwrap();

        let mut wb2 = Workbench::new();
        let ds2 = wb2.add_dataset(&read(format!("data/{data}.npz")), data).unwrap().id;
        let imported = wb2.import_modules(&saved, "saved.remodule", ds2).unwrap();
        assert_eq!(imported.decomposition.mask_digest, dec.mask_digest, "{file}");
        assert_eq!(imported.decomposition.settings, s);
        assert_eq!(imported.model.accuracy, wb.model_info(id).accuracy);
        assert_eq!(imported.model.name, wb.model_info(id).name);
        assert_eq!(json(&imported.decomposition.modules), json(&dec.modules), "{file}: module metrics differ");
        let picks: Vec<Pick> = (0..dec.modules.len()).map(|class| Pick { model: imported.model.id, class }).collect();
        let (a, b) = (wb.compose(&picks, Some(id)).unwrap(), wb2.compose(&picks, Some(imported.model.id)).unwrap());
        assert_eq!((a.composition.top1, a.composition.confusion), (b.composition.top1, b.composition.confusion));
        assert_eq!(wb2.export_modules(imported.model.id).unwrap(), saved);
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

#[test]
fn module_sets_for_another_data_set_are_refused() {
    let digits = dataset("digits");
    let model = model_on("digits_mlp.keras", &digits);
    let dec = decompose(&model, &digits, &settings(Mode::Paper, false, 20), &mut |_| true).unwrap();
    let saved = save_modules(&model, &dec).unwrap();
    let mut wb = Workbench::new();
    let clothing = wb.add_dataset(&read("data/clothing.npz"), "clothing").unwrap().id;
    let e = wb.import_modules(&saved, "digits.remodule", clothing).unwrap_err();
    assert!(e.to_string().contains("was decomposed for classes"), "{e}");
    // A refused import leaves no model behind.
    assert_eq!(wb.add_model(&read("models/digits_mlp.keras"), "digits_mlp.keras", clothing, Default::default()).unwrap().id, 0);
    // Fewer modules than the data set has classes.
    let partial = Decomposition { modules: dec.modules[..3].to_vec(), ..dec.clone() };
    let digits_id = wb.add_dataset(&read("data/digits.npz"), "digits").unwrap().id;
    let e = wb.import_modules(&save_modules(&model, &partial).unwrap(), "p.remodule", digits_id).unwrap_err();
    assert!(e.to_string().contains("needs one for each"), "{e}");
}

/// A hand-made decomposition of `tiny`: one module per class, masking the hidden layer.
fn tiny_set() -> (Model, Decomposition) {
    let model = tiny();
    let module = |class, keep: &[usize], clip: Option<&[usize]>| {
        let mask = UnitMask {
            keep: BitSet::from_indices(3, keep.iter().copied()),
            clip_negative: clip.map(|c| BitSet::from_indices(3, c.iter().copied())),
            gates: None,
        };
        Module {
            class,
            head: Default::default(),
            masks: Masks { nodes: [(1, mask)].into() },
            concerned: 5,
            unconcerned: 5,
            kept_units: keep.len(),
            total_units: 3,
            calibration: None,
        }
    };
    let dec = Decomposition {
        settings: Settings { mode: Mode::Reference, ..Settings::faithful() },
        modules: vec![module(0, &[0, 2], Some(&[2])), module(1, &[1], None)],
        recorded_samples: 10,
    };
    (model, dec)
}

#[test]
fn hostile_module_sets_are_errors() {
    let (model, dec) = tiny_set();
    let saved = save_modules(&model, &dec).unwrap();
    assert_eq!(load_set(&saved, "the valid set").unwrap(), (model.clone(), dec.clone()));

    let edit = |f: &dyn Fn(&mut Value)| load_set(&with_manifest(&saved, |m| f(m)), "an edited set");
    let e = edit(&|m| m["modules"]["modules"][0]["class"] = 2.into()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)) && e.to_string().contains("below the model's 2 classes"), "{e}");
    let e = edit(&|m| m["modules"]["modules"][1]["class"] = 0.into()).unwrap_err();
    assert!(e.to_string().contains("distinct"), "{e}");
    let e = edit(&|m| m["modules"]["modules"][0]["masks"][0]["units"] = 4.into()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = edit(&|m| m["modules"]["modules"][0]["masks"][0]["units"] = (1u64 << 62).into()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = edit(&|m| m["modules"]["settings"]["samples_per_class"] = 0.into()).unwrap_err();
    assert!(e.to_string().contains("samples_per_class"), "{e}");
    let e = edit(&|m| m["modules"]["modules"][1]["masks"][0]["clip_negative"] = true.into()).unwrap_err();
    assert!(e.to_string().contains("modules.1.masks.1.clip_negative' is missing"), "{e}");
    let e = edit(&|m| {
        m["modules"] = Value::Null;
    })
    .unwrap_err();
    assert!(e.to_string().contains("no \"modules\""), "{e}");

    // A mask on a node decomposition does not track (the head): rename its tensors to match.
    let untracked = with_header(&with_manifest(&saved, |m| m["modules"]["modules"][1]["masks"][0]["node"] = 2.into()), |h, _| {
        let t = h.as_object_mut().unwrap().remove("modules.1.masks.1.keep").unwrap();
        h["modules.1.masks.2.keep"] = t;
    });
    let e = load_set(&untracked, "a masked head").unwrap_err();
    assert!(e.to_string().contains("does not track"), "{e}");
    // Bits past a mask's length (3 units in one word).
    let stray = with_header(&saved, |h, data| {
        let at = h["modules.0.masks.1.keep"]["data_offsets"][0].as_u64().unwrap() as usize;
        data[at] |= 0x80;
    });
    assert!(load_set(&stray, "stray bits").unwrap_err().to_string().contains("bits set past"));
    // Masks are U64 words.
    let bytes = with_header(&saved, |h, _| {
        h["modules.0.masks.1.keep"]["dtype"] = "U8".into();
        h["modules.0.masks.1.keep"]["shape"] = serde_json::json!([8]);
    });
    assert!(load_set(&bytes, "a U8 mask").unwrap_err().to_string().contains("expected U64"));

    // What would be refused on load is refused on save.
    let mut bad = dec.clone();
    bad.modules[0].masks.nodes.get_mut(&1).unwrap().keep = BitSet::new(5);
    assert!(matches!(save_modules(&model, &bad).unwrap_err(), Error::Shape { .. }));
    for cut in 0..saved.len() {
        assert!(load_set(&saved[..cut], "a truncated set").is_err());
    }
}

/// Version 2 adds RepeatVector; a file is written with the lowest version that
/// can express it, so a model without one stays readable by version-1 readers.
#[test]
fn files_carry_the_lowest_version_that_expresses_them() {
    // Version 5: a model file that states its own input scale (older readers ignored it).
    assert_eq!(manifest_version(&save_model(&tiny()).unwrap()), 5);
    let mut rule = tiny();
    (rule.input.scale, rule.input.offset) = (None, None);
    assert_eq!(manifest_version(&save_model(&rule).unwrap()), 1);
    let rev = remodule::formats::load_model(
        &std::fs::read(format!("{}/models/lang_rev_lstm.keras", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        "lang_rev_lstm.keras",
    )
    .unwrap();
    let bytes = save_model(&rev).unwrap();
    assert_eq!(manifest_version(&bytes), 2);
    let back = load(&bytes, "rev").unwrap();
    assert_eq!(back, rev);
    // A RepeatVector without its option is a clear error.
    let broken = with_manifest(&bytes, |m| {
        let nodes = m["model"]["nodes"].as_array_mut().unwrap();
        let repeat = nodes.iter_mut().find(|n| n["kind"] == "RepeatVector").unwrap();
        repeat.as_object_mut().unwrap().remove("times");
    });
    let e = load(&broken, "no times").unwrap_err();
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("times"), "{e}");
}

/// Version 3 adds per-gate masks: a per-gate module set round trips with
/// identical masks and scores and is written as version 3; the same model's
/// per-unit set stays version 1. A gate mask of the wrong length, or on a
/// layer that has no gates, is refused.
#[test]
fn per_gate_module_sets_round_trip_as_version_3() {
    let d = dataset("lang_a");
    let model = model_on("lang_a_lstm.keras", &d);
    let gated = Settings { gates: true, samples_per_class: 40, ..Settings::faithful() };
    let dec = decompose(&model, &d, &gated, &mut |_| true).unwrap();
    assert!(
        dec.modules.iter().all(|m| m.masks.nodes.values().any(|u| u.gates.as_ref().is_some_and(|g| g.count() < g.len()))),
        "no gate removed"
    );
    let saved = save_modules(&model, &dec).unwrap();
    assert_eq!(manifest_version(&saved), 3);
    let (m2, d2) = load_set(&saved, "a per-gate set").unwrap();
    assert_eq!((&m2, &d2), (&model, &dec));
    assert_eq!(save_modules(&m2, &d2).unwrap(), saved, "not byte-stable");
    let rows: Vec<usize> = (0..200).collect();
    let x = d.inputs(&model, &d.test, &rows);
    for (a, b) in dec.modules.iter().zip(&d2.modules) {
        assert_eq!(
            bits(&concerned_scores(&model, a, &x, 200, &mut |_, _| true).unwrap()),
            bits(&concerned_scores(&m2, b, &x, 200, &mut |_, _| true).unwrap())
        );
    }
    let plain = decompose(&model, &d, &Settings { gates: false, ..gated.clone() }, &mut |_| true).unwrap();
    assert_eq!(manifest_version(&save_modules(&model, &plain).unwrap()), 1);

    let node = *dec.modules[0].masks.nodes.keys().next().unwrap();
    let mut bad = dec.clone();
    bad.modules[0].masks.nodes.get_mut(&node).unwrap().gates = Some(BitSet::new(7));
    assert!(save_modules(&model, &bad).unwrap_err().to_string().contains("gate mask"));
    let e =
        load_set(&with_manifest(&saved, |m| m["modules"]["modules"][0]["masks"][0]["gates"] = 7.into()), "a short gate mask").unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let (tiny_model, mut tiny_dec) = tiny_set();
    tiny_dec.modules[0].masks.nodes.get_mut(&1).unwrap().gates = Some(BitSet::full(3));
    assert!(save_modules(&tiny_model, &tiny_dec).unwrap_err().to_string().contains("needs a recurrent layer"));
}

/// Version 4 adds class relevance: a set decomposed at a strength keeps its
/// settings and every module's calibration; the same set without them stays version 1.
#[test]
fn calibrated_module_sets_round_trip_as_version_4() {
    let (model, mut dec) = tiny_set();
    dec.settings = Settings { mode: Mode::Paper, ..Settings::faithful() };
    assert_eq!(manifest_version(&save_modules(&model, &dec).unwrap()), 1);
    dec.settings.strength = 0.3;
    dec.modules[0].calibration = Some(Calibration { mean: 0.25, scale: 1.5 });
    dec.modules[1].calibration = Some(Calibration { mean: -1.0, scale: 0.125 });
    let saved = save_modules(&model, &dec).unwrap();
    assert_eq!(manifest_version(&saved), 4);
    assert_eq!(load_set(&saved, "calibrated").unwrap(), (model, dec));
    let e = load_set(&with_manifest(&saved, |m| m["modules"]["modules"][0]["calibration"] = "x".into()), "bad").unwrap_err();
    assert!(e.to_string().to_lowercase().contains("calibration"), "{e}");
}

/// The manifest version a saved file declares.
fn manifest_version(bytes: &[u8]) -> u64 {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let m: Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["remodule"]).unwrap();
    m["version"].as_u64().unwrap()
}

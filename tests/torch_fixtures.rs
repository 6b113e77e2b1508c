//! Models written by `torch.onnx.export` itself (PyTorch 1.13's TorchScript
//! exporter, opset 17; tools/make_torch_fixtures.py): outputs must match
//! PyTorch to 1e-4, with PyTorch's accuracy on the saved samples; every file
//! that loads decomposes and composes; what the importer refuses is refused
//! naming the op or option and what is supported.

use std::path::PathBuf;

use remodule::engine::data::InputOverride;
use remodule::engine::model::{Model, forward};
use remodule::formats::{load_model, npz};
use remodule::workbench::Workbench;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn torch_accuracy(key: &str) -> f32 {
    let v: Value = serde_json::from_slice(&read("accuracy.json")).unwrap();
    v[key].as_f64().unwrap_or_else(|| panic!("no accuracy for {key}")) as f32
}

/// Every fixture that loads, and the data set its `.full` accuracy was measured on (token ids for
/// the recurrent ones; the image models take NCHW floats in [0, 1], which the input rule gives
/// from both float and u8 digits; the 1-D one the same images as [N, 28 channels, 28 steps]).
const LOADS: [(&str, &str); 11] = [
    ("mlp", "digits"),
    ("cnn", "digits"),
    ("acts_cnn", "digits"),
    ("gelu_mlp", "digits"),
    ("dw_cnn", "digits"),
    ("conv1d", "digits"),
    ("lstm", "lang"),
    ("gru", "lang"),
    ("rnn", "lang"),
    ("bilstm", "lang"),
    ("bigru", "lang"),
];

/// Largest |output − PyTorch's| on the saved samples, and the accuracy there.
fn compare(m: &Model, stem: &str) -> (f32, f32) {
    let exp = npz::read_npz(&read(&format!("{stem}.expected.npz"))).unwrap();
    let n = exp["x"].shape[0];
    // The image inputs have one channel: NCHW and NHWC are the same bytes.
    let out = forward(m, &exp["x"].to_f32(), n, None, false, &mut |_, _| true).unwrap();
    let want = exp["probs"].to_f32();
    assert_eq!(out.probs.len(), want.len(), "{stem}");
    let diff = out.probs.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let classes = want.len() / n;
    let y = exp["y"].to_f32();
    let argmax = |row: &[f32]| row.iter().enumerate().fold(0, |b, (k, &v)| if v > row[b] { k } else { b });
    let right = out.probs.chunks(classes).zip(&y).filter(|(row, label)| argmax(row) == **label as usize).count();
    (diff, right as f32 / n as f32)
}

fn data(which: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match which {
        "digits" => root.join("tests/fixtures/layers/digits_float.npz"),
        "digits_u8" => root.join("tests/fixtures/layers/digits_u8.npz"),
        _ => root.join("data/lang_a.npz"),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_file_matches_pytorch() {
    for (stem, _) in LOADS {
        let file = format!("{stem}.onnx");
        let m = load_model(&read(&file), &file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (d, acc) = compare(&m, stem);
        assert!(d < 1e-4, "{file}: max |Δ| {d}");
        assert_eq!(acc, torch_accuracy(stem), "{file}: accuracy on the saved samples");
    }
}

/// What the layers became: nothing of the exporter's shape arithmetic is left, the BatchNorm after
/// a conv is folded by the exporter and the one after a pool kept, GELU is one activation, the
/// zero pads before AvgPool2d are nothing, `h_n[-1]` and `out[:, -1]` are the last state.
#[test]
fn layers_map_to_the_ir() {
    let kinds = |stem: &str| -> Vec<&'static str> {
        let file = format!("{stem}.onnx");
        load_model(&read(&file), &file).unwrap().nodes.iter().map(|n| n.op.kind()).collect()
    };
    assert_eq!(kinds("mlp"), ["Input", "Flatten", "Dense", "Dense", "Dense"]);
    assert_eq!(kinds("cnn"), ["Input", "Conv2D", "MaxPool2D", "BatchNormalization", "Conv2D", "AvgPool2D", "Flatten", "Dense"]);
    assert_eq!(kinds("gelu_mlp"), ["Input", "AvgPool2D", "Flatten", "Dense", "Activation", "Dense"]);
    let k = kinds("acts_cnn");
    assert!(k.contains(&"PReLU") && k.iter().filter(|&&k| k == "Activation").count() == 4, "{k:?}");
    let k = kinds("dw_cnn");
    for want in ["ZeroPadding2D", "DepthwiseConv2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Concatenate"] {
        assert!(k.contains(&want), "dw_cnn: {want} in {k:?}");
    }
    assert_eq!(kinds("lstm"), ["Input", "Embedding", "LSTM", "Dense"]);
    assert_eq!(kinds("gru"), ["Input", "Embedding", "GRU", "Dense"]);
    assert_eq!(kinds("rnn"), ["Input", "Embedding", "SimpleRNN", "Dense"]);
    // Conv1d on [N, C, L]: the first one a 2-D convolution over the input read as [C, L, 1] with a
    // kernel of all C rows; from its output [1, L', F] on, everything is channels-last (height 1).
    assert_eq!(
        kinds("conv1d"),
        ["Input", "Conv2D", "MaxPool2D", "Conv2D", "AvgPool2D", "MaxPool2D", "Flatten", "GlobalAveragePooling2D", "Concatenate", "Dense"]
    );
    // `out[:, -1]` of a bidirectional LSTM: the forward layer's last state beside the backward
    // one's after one step (a layer over the input read as one step of T·F features).
    assert_eq!(kinds("bilstm"), ["Input", "Embedding", "Reshape", "LSTM", "LSTM", "Concatenate", "Dense"]);
    // `cat([h_n[-2], h_n[-1]])`: both directions' final states.
    assert_eq!(kinds("bigru"), ["Input", "Embedding", "GRU", "GRU", "Concatenate", "Dense"]);
}

/// Conv1d: decomposed with class relevance too (the Keras Conv1D's settings in
/// tests/layer_fixtures.rs), composed, exported (onnxruntime-web runs the export in
/// tests/e2e/onnx_export.test.mjs).
#[test]
fn conv1d_decomposes_with_relevance_and_exports() {
    use remodule::engine::decompose::{Settings, Technique};
    use remodule::workbench::Pick;
    let mut wb = Workbench::new();
    let d = wb.add_dataset(&data("digits"), "digits").unwrap().id;
    let info = wb.add_model(&read("conv1d.onnx"), "conv1d.onnx", d, InputOverride::default()).unwrap();
    let settings = Settings { samples_per_class: 30, technique: Technique::McBi, delta: 0.2, strength: 0.2, ..Settings::default() };
    let dec = wb.decompose(info.id, &settings, &mut |_| true).unwrap();
    let (kept, total): (usize, usize) = dec.modules.iter().fold((0, 0), |(k, t), m| (k + m.kept_units, t + m.total_units));
    assert!(total > 0 && kept < total, "modules keep {kept} of {total} units");
    let picks: Vec<Pick> = (0..10).map(|class| Pick { model: info.id, class }).collect();
    let composed = wb.compose(&picks, None).unwrap().composition.top1;
    assert!(composed >= 0.5, "composed {composed}, model {}", info.accuracy);
    assert!(wb.export_onnx(&picks, false).unwrap().len() > 1000);
}

/// Bidirectional layers as PyTorch exports them become what a Keras Bidirectional becomes: a
/// forward and a backward (`reverse`) layer, merged; the composition exports as ONNX with
/// `direction="reverse"` layers (tests/layer_fixtures.rs does the same for Keras;
/// decomposing, composing and the module set's round trip are in `every_file_decomposes_and_composes`).
#[test]
fn bidirectional_layers_are_two_directions_and_export() {
    use remodule::engine::model::Op;
    use remodule::workbench::Pick;
    for stem in ["bilstm", "bigru"] {
        let file = format!("{stem}.onnx");
        let m = load_model(&read(&file), &file).unwrap();
        let reverse: Vec<bool> = m.nodes.iter().filter_map(|n| if let Op::Recurrent(r) = &n.op { Some(r.reverse) } else { None }).collect();
        assert_eq!(reverse, [false, true], "{file}");
        let names: std::collections::HashSet<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names.len(), m.nodes.len(), "{file}: names are unique");
        let mut wb = Workbench::new();
        let d = wb.add_dataset(&data("lang"), "lang").unwrap().id;
        let info = wb.add_model(&read(&file), &file, d, InputOverride::default()).unwrap();
        wb.decompose(info.id, &remodule::engine::decompose::Settings::default(), &mut |_| true).unwrap();
        let picks: Vec<Pick> = (0..5).map(|class| Pick { model: info.id, class }).collect();
        let onnx = wb.export_onnx(&picks, false).unwrap_or_else(|e| panic!("{file}: {e}"));
        // One backward layer per module (onnxruntime-web runs the export in tests/e2e/onnx_export.test.mjs).
        let reversed = onnx.windows(7).filter(|w| w == b"reverse").count();
        assert_eq!(reversed, 5, "{file}: direction=\"reverse\" in the export");
    }
}

/// The workbench reads the data as PyTorch did (float digits as stored, u8 digits × 1/255, token
/// ids as they are): PyTorch's accuracy on the whole test split. Then every model decomposes, its
/// modules compose (MC-BI alone: as the model answers) and the module set round-trips.
#[test]
fn every_file_decomposes_and_composes() {
    use remodule::engine::decompose::{Settings, Technique};
    use remodule::workbench::Pick;
    let settings = Settings { samples_per_class: 20, technique: Technique::McBi, delta: 0.2, strength: 0.0, ..Settings::default() };
    for (stem, which) in LOADS {
        let file = format!("{stem}.onnx");
        let datasets: &[&str] = if which == "digits" { &["digits", "digits_u8"] } else { &["lang"] };
        for &d in datasets {
            let mut wb = Workbench::new();
            let data_id = wb.add_dataset(&data(d), d).unwrap().id;
            let info = wb.add_model(&read(&file), &file, data_id, InputOverride::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
            let want = torch_accuracy(&format!("{stem}.full"));
            assert!((info.accuracy - want).abs() < 1.5 / 400.0, "{file} on {d}: {} vs PyTorch {want}", info.accuracy);
            assert_eq!(info.notice, None, "{file} on {d}");
            if d == "digits_u8" {
                continue;
            }
            // The recurrent ones with the papers' technique (strength 0), which removes units at
            // any layer size, as tests/recurrent.rs decomposes the Keras language models.
            let settings = if which == "lang" { Settings::faithful() } else { settings.clone() };
            let dec = wb.decompose(info.id, &settings, &mut |_| true).unwrap_or_else(|e| panic!("{file}: {e}"));
            let (kept, total): (usize, usize) = dec.modules.iter().fold((0, 0), |(k, t), m| (k + m.kept_units, t + m.total_units));
            // GELU is never exactly 0: MC-BI alone finds every unit of its layer used.
            assert!(total > 0 && (kept < total || stem == "gelu_mlp"), "{file}: modules keep {kept} of {total} units");
            let classes = dec.modules.len();
            let picks: Vec<Pick> = (0..classes).map(|class| Pick { model: info.id, class }).collect();
            let composed = wb.compose(&picks, None).unwrap().composition.top1;
            // Recurrent modules drop tanh units that are never exactly off: within the bounds
            // tests/recurrent.rs holds the Keras language models to.
            let bound = if which == "lang" { 0.05 } else { 0.02 };
            assert!(composed >= info.accuracy - bound, "{file}: composed {composed}, model {}", info.accuracy);
            let saved = wb.export_modules(info.id).unwrap();
            let back = wb.import_modules(&saved, "set.remodule", data_id).unwrap();
            assert_eq!(back.decomposition.mask_digest, dec.mask_digest, "{file}");
        }
    }
}

/// What the importer does not map is refused naming the node, the option and what is supported
/// (the fixtures with one attribute or constant changed).
#[test]
fn refusals_name_the_op_and_what_is_supported() {
    use prost::Message;
    use remodule::formats::onnx::proto;
    let changed = |file: &str, edit: &dyn Fn(&mut proto::NodeProto)| {
        let mut m = proto::decode(&read(file)).unwrap();
        let g = m.graph.as_mut().unwrap();
        g.node.iter_mut().for_each(edit);
        load_model(&m.encode_to_vec(), file).map(|_| ()).unwrap_err().to_string()
    };
    // A dilated first Conv1d.
    let e = changed("conv1d.onnx", &|n| {
        if n.name == "/c1/Conv" {
            n.attribute.iter_mut().filter(|a| a.name == "dilations").for_each(|a| a.ints = vec![2]);
        }
    });
    assert!(e.contains("'/c1/Conv' (Conv)") && e.contains("dilations=[2]") && e.contains("supported: dilations=[1]"), "{e}");
    // `out[:, 5]` of a bidirectional LSTM: neither direction's last state nor one step of it.
    let e = changed("bilstm.onnx", &|n| {
        if n.op_type == "Constant" && n.output[0] == "/emb/Constant_output_0" {
            n.attribute[0].t.as_mut().unwrap().raw_data = 5i64.to_le_bytes().to_vec();
        }
    });
    assert!(e.contains("'/rnn/LSTM' (LSTM)") && e.contains("step 5 of 32") && e.contains("supported: Y whole"), "{e}");
}

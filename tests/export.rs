//! ONNX export of compositions (formats/onnx/export.rs): the graph is
//! well-formed (every tensor defined before use, initializers as long as their
//! dims say, the documented inputs and outputs), unchanged weights are stored
//! once, and what cannot be exported exactly is a typed error. That the graph
//! computes the engine's answers is checked in onnxruntime
//! (tests/e2e/onnx_export.test.mjs).

use std::collections::HashSet;

use remodule::Error;
use remodule::engine::bits::BitSet;
use remodule::engine::decompose::{Head, Settings};
use remodule::engine::model::{Masks, UnitMask};
use remodule::formats::onnx::export::{ExportModule, ExportOptions, OPSET, export_composition};
use remodule::formats::onnx::proto::{self, ModelProto, data_type};
use remodule::formats::{load_model, native};
use remodule::workbench::{Pick, Workbench};

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A workbench with `data` and the given models on it, decomposed with `settings`.
fn bench(data: &str, models: &[&str], settings: &Settings) -> Workbench {
    let mut wb = Workbench::new();
    let ds = wb.add_dataset(&read(&format!("data/{data}.npz")), data).unwrap().id;
    for m in models {
        let id = wb.add_model(&read(&format!("models/{m}")), m, ds, Default::default()).unwrap().id;
        wb.decompose(id, settings, &mut |_| true).unwrap();
    }
    wb
}

fn picks(model: usize, classes: impl IntoIterator<Item = usize>) -> Vec<Pick> {
    classes.into_iter().map(|class| Pick { model, class }).collect()
}

/// Checks the structure and returns the decoded model.
fn well_formed(bytes: &[u8], modules: usize, softmax: bool) -> ModelProto {
    let m = proto::decode(bytes).expect("the export decodes as an ONNX ModelProto");
    assert!(m.opset_import.iter().any(|o| o.domain.is_empty() && o.version == OPSET));
    let g = m.graph.as_ref().unwrap();
    let mut defined: HashSet<&str> = HashSet::new();
    assert_eq!(g.input.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["input"]);
    defined.insert("input");
    for t in &g.initializer {
        let size = match t.data_type {
            data_type::FLOAT => 4,
            data_type::INT64 => 8,
            data_type::BOOL => 1,
            other => panic!("initializer {} has type {other}", t.name),
        };
        let n: i64 = t.dims.iter().product();
        assert_eq!(t.raw_data.len() as i64, n * size, "initializer {} {:?}", t.name, t.dims);
        assert!(defined.insert(&t.name), "initializer {} twice", t.name);
    }
    for node in &g.node {
        for i in &node.input {
            assert!(defined.contains(i.as_str()), "node {} ({}) reads {i} before it is defined", node.name, node.op_type);
        }
        for o in &node.output {
            assert!(defined.insert(o), "{o} is written twice");
        }
    }
    let outs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outs, if softmax { vec!["scores", "argmax", "softmax"] } else { vec!["scores", "argmax"] });
    for o in &g.output {
        assert!(defined.contains(o.name.as_str()));
    }
    let scores = g.output[0].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    assert_eq!(scores.shape.as_ref().unwrap().dim[1].dim_value, Some(modules as i64));
    m
}

#[test]
fn a_dense_composition_from_two_models_is_well_formed_and_shares_unchanged_weights() {
    let mut wb = bench("digits", &["digits_mlp.keras", "digits_mlp_b.keras"], &Settings::default());
    let mut p = picks(0, 0..5);
    p.extend(picks(1, 5..10));
    let bytes = wb.export_onnx(&p, true).unwrap();
    let m = well_formed(&bytes, 10, true);
    let g = m.graph.unwrap();
    assert_eq!(g.node.iter().filter(|n| n.op_type == "Concat").count(), 1, "the scores, which the softmax reads too");
    // Paper mode changes no weight: each model's kernels are stored once, whatever the module count.
    let kernels = g.initializer.iter().filter(|t| t.name.ends_with("_kernel")).count();
    let params: usize = (0..2).map(|id| wb.model_info(id).params).sum();
    assert!(bytes.len() < 2 * 4 * params, "{} bytes for {params} parameters", bytes.len());
    assert_eq!(kernels, wb.model_info(0).layers.iter().filter(|l| l.kind == "Dense").count() * 2);
    // Deterministic: the same composition gives the same bytes.
    assert_eq!(wb.export_onnx(&p, true).unwrap(), bytes);
    // The composition's classes are in the metadata the argmax indexes (ascending class ids, as compose).
    let c = wb.compose(&p, None).unwrap();
    assert_eq!(c.class_names.len(), 10);
}

#[test]
fn clipped_columns_become_a_module_copy_of_the_kernel_and_cnn_recurrent_graphs_are_well_formed() {
    // On the bundled data TI restores nearly every clipped column, so clip a
    // kept layer's every unit by hand (masks as the reference mode writes them).
    let mlp = load_model(&read("models/digits_mlp.keras"), "digits_mlp.keras").unwrap();
    let layer = mlp.tracked()[0];
    let units = mlp.units(layer);
    let masks = Masks {
        nodes: [(
            layer,
            UnitMask {
                keep: BitSet::from_indices(units, 0..units / 2),
                clip_negative: Some(BitSet::from_indices(units, 0..units / 2)),
                gates: None,
            },
        )]
        .into(),
    };
    let names = vec!["a".to_string()];
    let bytes = export_composition(
        &[ExportModule { model: &mlp, input: as_stored(), masks: &masks, class: 3, head: Head::Two, calibration: None, label: 0 }],
        &names,
        &ExportOptions::default(),
    )
    .unwrap();
    let g = well_formed(&bytes, 1, false).graph.unwrap();
    let floats =
        |t: &proto::TensorProto| t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<f32>>();
    let clipped = g.initializer.iter().find(|t| t.name.ends_with(&format!("n{layer}_kernel_clipped"))).expect("a clipped copy");
    let remodule::engine::model::Op::Dense { kernel, .. } = &mlp.nodes[layer].op else { panic!("a Dense layer") };
    let fout = kernel.ncols();
    for (i, (&w, &orig)) in floats(clipped).iter().zip(kernel.iter()).enumerate() {
        let expected = if i % fout < units / 2 { orig.max(0.0) } else { orig };
        assert_eq!(w, expected, "weight {i}");
    }
    // Its removed units are masked after the activation.
    assert!(g.node.iter().any(|n| n.op_type == "Where" && n.input.iter().any(|i| i.ends_with(&format!("n{layer}_keep")))));

    let quick = Settings { samples_per_class: 100, ..Settings::default() };
    let wb = bench("digits", &["digits_cnn.keras"], &quick);
    let g = well_formed(&wb.export_onnx(&picks(0, 0..10), false).unwrap(), 10, false).graph.unwrap();
    let ops: HashSet<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert!(ops.contains("Conv") && ops.contains("Transpose") && ops.contains("Where"), "{ops:?}");

    let wb = bench("lang_a", &["lang_a_lstm.keras"], &quick);
    let m = well_formed(&wb.export_onnx(&picks(0, 0..5), false).unwrap(), 5, false);
    let g = m.graph.unwrap();
    assert_eq!(g.node.iter().filter(|n| n.op_type == "LSTM").count(), 5);
    let input = g.input[0].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    assert_eq!(input.elem_type, data_type::INT64, "token ids");
}

#[test]
fn what_cannot_be_exported_exactly_is_a_typed_error() {
    let wb = bench("digits", &["digits_mlp.keras"], &Settings::default());
    assert!(matches!(wb.export_onnx(&[], false), Err(Error::Invalid(_))));
    assert!(matches!(wb.export_onnx(&[Pick { model: 0, class: 10 }], false), Err(Error::NoClass { class: 10, .. })));
    assert!(matches!(wb.export_onnx(&[Pick { model: 3, class: 0 }], false), Err(Error::NoModel(3))));

    // Unrolled recurrent masks (different units per step) have no rolled ONNX op.
    let wb = bench("lang_a", &["lang_a_lstm.keras"], &Settings { unrolled: true, ..Settings::faithful() });
    let e = wb.export_onnx(&picks(0, 0..5), false).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { name, .. } if name.contains("unrolled")), "{e}");
    // So have unrolled per-gate masks (different gate columns per step); rolled ones export.
    let wb =
        bench("lang_a", &["lang_a_lstm.keras"], &Settings { unrolled: true, gates: true, samples_per_class: 100, ..Settings::faithful() });
    let e = wb.export_onnx(&picks(0, 0..5), false).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { name, .. } if name.contains("unrolled gate mask")), "{e}");

    // A class per time step: no per-sample score to compose.
    let wb = bench("lang_tags", &["lang_tags_lstm.keras"], &Settings::default());
    let e = wb.export_onnx(&picks(0, 0..5), false).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { name, .. } if name.contains("per-step")), "{e}");

    // The authors' N-output head (CM-RIE, voting) is not exported.
    let wb = bench("digits", &["digits_mlp.keras"], &Settings { head: Head::Reference, samples_per_class: 50, ..Settings::default() });
    let e = wb.export_onnx(&picks(0, 0..3), false).unwrap_err();
    assert!(matches!(&e, Error::Unsupported { name, .. } if name.contains("N-output head")), "{e}");

    // A model not decomposed yet.
    let mut wb = Workbench::new();
    let ds = wb.add_dataset(&read("data/digits.npz"), "digits").unwrap().id;
    wb.add_model(&read("models/digits_mlp.keras"), "digits_mlp.keras", ds, Default::default()).unwrap();
    assert!(matches!(wb.export_onnx(&picks(0, 0..2), false), Err(Error::NotDecomposed { .. })));
}

#[test]
fn hostile_modules_given_to_the_exporter_are_refused() {
    let mlp = load_model(&read("models/digits_mlp.keras"), "digits_mlp.keras").unwrap();
    let lstm = load_model(&read("models/lang_a_lstm.keras"), "lang_a_lstm.keras").unwrap();
    let none = Masks::default();
    let names = vec!["a".to_string(), "b".to_string()];
    let opts = ExportOptions::default();
    let module =
        |model, masks, class, label| ExportModule { model, input: as_stored(), masks, class, head: Head::Two, calibration: None, label };
    // Different inputs cannot share one graph input.
    let e = export_composition(&[module(&mlp, &none, 0, 0), module(&lstm, &none, 1, 1)], &names, &opts).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    // A label past the class names, a class past the model's.
    assert!(matches!(export_composition(&[module(&mlp, &none, 0, 2)], &names, &opts), Err(Error::Invalid(_))));
    assert!(matches!(export_composition(&[module(&mlp, &none, 10, 0)], &names, &opts), Err(Error::Invalid(_))));
    // A mask as long as another layer's, or on a node the model does not have.
    let tracked = mlp.tracked()[0];
    let short = Masks { nodes: [(tracked, UnitMask { keep: BitSet::full(3), clip_negative: None, gates: None })].into() };
    assert!(matches!(export_composition(&[module(&mlp, &short, 0, 0)], &names, &opts), Err(Error::Shape { .. })));
    let far = Masks { nodes: [(999, UnitMask { keep: BitSet::full(3), clip_negative: None, gates: None })].into() };
    assert!(matches!(export_composition(&[module(&mlp, &far, 0, 0)], &names, &opts), Err(Error::Invalid(_))));
    // An input shape that does not hold the model's input.
    let bad = ExportOptions { input_shape: Some(vec![27, 28]), ..ExportOptions::default() };
    assert!(matches!(export_composition(&[module(&mlp, &none, 0, 0)], &names, &bad), Err(Error::Shape { .. })));
}

#[test]
fn a_saved_module_set_exports_the_same_graph_as_its_source() {
    let wb = bench("digits", &["digits_cnn.keras"], &Settings::default());
    let set = wb.export_modules(0).unwrap();
    let mut back = Workbench::new();
    let ds = back.add_dataset(&read("data/digits.npz"), "digits").unwrap().id;
    let f = back.add_file(&set, "digits_cnn.remodule", ds, Default::default()).unwrap();
    assert!(f.decomposition.is_some(), "a module set comes back with its modules");
    assert_eq!(native::contents(&set).unwrap(), native::Contents::Modules);
    let p = picks(0, [0, 3, 8]);
    assert_eq!(back.export_onnx(&p, false).unwrap(), wb.export_onnx(&p, false).unwrap());
}

/// `tests/fixtures/export/digits_1v7_clipped.remodule`: the 1-vs-7 model's
/// reference-mode modules with every other kept unit of its first layer also
/// clipped (on the bundled data TI lifts nearly every clip, so the ONNX check
/// in tests/e2e/onnx_export.test.mjs would not see one otherwise). The file is
/// rebuilt here and must match; `REMODULE_WRITE_FIXTURES=1` rewrites it.
#[test]
fn the_clipped_module_set_fixture_is_current() {
    let s = Settings { mode: remodule::engine::decompose::Mode::Reference, samples_per_class: 50, ..Settings::faithful() };
    let wb = bench("digits_1v7", &["digits_1v7.keras"], &s);
    let (model, mut dec) = native::load_modules(&wb.export_modules(0).unwrap(), "digits_1v7").unwrap();
    let layer = model.tracked()[0];
    for m in &mut dec.modules {
        let mask = m.masks.nodes.get_mut(&layer).unwrap();
        let kept: Vec<usize> = mask.keep.iter().collect();
        mask.clip_negative = Some(BitSet::from_indices(mask.keep.len(), kept.into_iter().step_by(2)));
    }
    let bytes = native::save_modules(&model, &dec).unwrap();
    let path = format!("{}/tests/fixtures/export/digits_1v7_clipped.remodule", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("REMODULE_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    }
    assert!(std::fs::read(&path).unwrap() == bytes, "{path} is stale: rerun with REMODULE_WRITE_FIXTURES=1");
    // The export holds a clipped kernel copy for each module.
    let mut back = Workbench::new();
    let ds = back.add_dataset(&read("data/digits_1v7.npz"), "digits_1v7").unwrap().id;
    back.add_file(&bytes, "digits_1v7_clipped.remodule", ds, Default::default()).unwrap();
    let g = well_formed(&back.export_onnx(&picks(0, 0..2), false).unwrap(), 2, false).graph.unwrap();
    assert_eq!(g.initializer.iter().filter(|t| t.name.contains("kernel_clipped")).count(), 2);
}

/// The graph's input used as it comes.
fn as_stored() -> remodule::engine::data::InputMap {
    remodule::engine::data::InputMap { scale: 1.0, offset: 0.0, reason: remodule::engine::data::MapReason::AsStored }
}

//! Recurrent models written by Keras 3 and tf_keras (tests/fixtures/keras,
//! and the bundled language models): outputs must match the framework's.

use std::path::{Path, PathBuf};

use remodule::engine::model::{InputKind, Model, forward};
use remodule::formats::{load_model, npz};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Max |probs − expected| of `file` on `<stem>.expected.npz` beside it.
fn max_diff(file: &Path) -> (Model, f32) {
    let bytes = std::fs::read(file).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let model = load_model(&bytes, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let stem = name.split('.').next().unwrap();
    let exp = npz::read_npz(&std::fs::read(file.with_file_name(format!("{stem}.expected.npz"))).unwrap()).unwrap();
    let n = exp["x"].shape[0];
    let out = forward(&model, &exp["x"].to_f32(), n, None, false, &mut |_, _| true).unwrap();
    let want = exp["probs"].to_f32();
    assert_eq!(out.probs.len(), want.len(), "{name}");
    (model, out.probs.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
}

#[test]
fn recurrent_fixtures_match_keras() {
    let dir = root().join("tests/fixtures/keras");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "keras" || e == "h5"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "fixtures missing in {dir:?}");
    for f in files {
        let (model, d) = max_diff(&f);
        assert!(d < 1e-5, "{f:?}: max |probs - keras| = {d}");
        // The file name, not the path (a checkout may live in a folder called "seq2seq").
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(model.input.kind == InputKind::Tokens, !name.contains("vectors"), "{f:?}");
        // Per-step heads classify every step.
        assert_eq!(model.out_steps() > 1, name.contains("seq2seq"), "{f:?}");
    }
}

#[test]
fn bundled_language_models_match_keras() {
    // Every text model tools/train_models.py wrote (models/train_report.json).
    let report: serde_json::Value = serde_json::from_slice(&read("models/train_report.json")).unwrap();
    let files: Vec<&String> = report.as_object().unwrap().iter().filter(|(_, e)| e["input"] == "tokens").map(|(f, _)| f).collect();
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let (model, d) = max_diff(&root().join(format!("models/{file}")));
        assert!(d < 1e-5, "{file}: max |probs - keras| = {d}");
        assert_eq!(model.input.kind, InputKind::Tokens);
    }
}

// ---- decomposition and the language scenarios, through the workbench ----

use remodule::engine::decompose::Settings;
use remodule::workbench::{Pick, Workbench};

fn read(p: &str) -> Vec<u8> {
    std::fs::read(root().join(p)).unwrap()
}

/// lang_a (id 0) and lang_b (id 1) data sets; `models` loaded on them and decomposed.
fn languages(models: &[(&str, usize)], settings: &Settings) -> Workbench {
    let mut wb = Workbench::new();
    wb.add_dataset(&read("data/lang_a.npz"), "lang_a").unwrap();
    wb.add_dataset(&read("data/lang_b.npz"), "lang_b").unwrap();
    for (file, ds) in models {
        let id = wb.add_model(&read(&format!("models/{file}")), file, *ds, Default::default()).unwrap().id;
        wb.decompose(id, settings, &mut |_| true).unwrap();
    }
    wb
}

fn picks(model: usize, classes: impl IntoIterator<Item = usize>) -> Vec<Pick> {
    classes.into_iter().map(|class| Pick { model, class }).collect()
}

#[test]
fn language_modules_compose_close_to_their_model() {
    for file in ["lang_a_rnn.keras", "lang_a_lstm.keras", "lang_a_gru.keras"] {
        let mut wb = languages(&[], &Settings::default());
        let id = wb.add_model(&read(&format!("models/{file}")), file, 0, Default::default()).unwrap().id;
        let model = wb.model_info(id).accuracy;
        // The papers' technique (strength 0), rolled and unrolled, and class relevance at the default strength.
        for (unrolled, base) in [(false, Settings::faithful()), (true, Settings::faithful()), (false, Settings::default())] {
            let info = wb.decompose(id, &Settings { unrolled, ..base.clone() }, &mut |_| true).unwrap();
            let r = wb.compose(&picks(id, 0..5), Some(id)).unwrap();
            assert_eq!(r.composition.evaluated, 1000);
            // The paper reports −0.6 points on average; here the papers' technique keeps LSTM and GRU
            // within a point, the SimpleRNN loses 2 rolled and 3.5 unrolled; the default strength
            // keeps all three within a point (docs/FIDELITY.md).
            let bound = if base.strength > 0.0 {
                0.01
            } else if unrolled {
                0.05
            } else {
                0.03
            };
            assert!(
                (r.composition.top1 - model).abs() < bound,
                "{file} unrolled={unrolled} strength {}: composed {} vs model {model}",
                base.strength,
                r.composition.top1
            );
            // Each removes a few units per module, never most.
            for m in &info.modules {
                assert!(m.jaccard_units < 1.0 && m.jaccard_units > 0.8, "{file} {}: jaccard {}", m.class_name, m.jaccard_units);
            }
        }
    }
}

#[test]
fn a_language_only_model_b_knows_is_added_by_reuse() {
    // Module update re-runs the papers' tangling identification: their modules (strength 0).
    let mut wb = languages(&[("lang_a_lstm.keras", 0), ("lang_b_lstm.keras", 1)], &Settings::faithful());
    let names_b = wb.model_info(1).class_names;
    let dutch = names_b.iter().position(|n| n == "Dutch").unwrap();
    let mut chosen = picks(0, 0..5);
    chosen.push(Pick { model: 1, class: dutch });
    let r = wb.compose(&chosen, None).unwrap();
    // English and German are one class in both sets: 6 classes, evaluated on
    // all of set A's test samples plus set B's English, German and Dutch ones.
    assert_eq!(r.composition.classes.len(), 6, "{:?}", r.class_names);
    assert!(r.class_names.contains(&"English".to_string()) && r.class_names.contains(&"lang_b:Dutch".to_string()), "{:?}", r.class_names);
    let b = wb.dataset_info(1);
    let b_test = remodule::formats::dataset::read_npz_dataset(&read("data/lang_b.npz"), "b").unwrap().test;
    let shared = b_test.y.iter().filter(|&&y| ["English", "German", "Dutch"].contains(&b.class_names[y as usize].as_str())).count();
    assert_eq!(r.composition.evaluated, 1000 + shared);
    let nl = r.class_names.iter().position(|n| n.ends_with("Dutch")).unwrap();
    println!(
        "add Dutch: top1 {:.4}, Dutch {:.4}, per class {:?}",
        r.composition.top1, r.composition.per_class[nl], r.composition.per_class
    );
    // Set A's modules never saw Dutch and claim much of it; the reused module still wins some.
    assert!(r.composition.per_class[nl] > 0.1, "{:?}", r.composition.per_class);
    assert!(r.composition.top1 > 0.7);
    // Module update re-runs TI against the other picked classes' samples.
    let u = wb.compose_updated(&chosen, None).unwrap();
    assert_eq!((u.composition.classes.clone(), u.composition.evaluated), (r.composition.classes.clone(), r.composition.evaluated));
    println!("add Dutch, module update: top1 {:.4}, per class {:?}", u.composition.top1, u.composition.per_class);
    assert_ne!(u.composition.confusion, r.composition.confusion, "the update changes the modules");
}

#[test]
fn typed_text_is_classified_by_the_modules() {
    let wb = languages(&[("lang_a_lstm.keras", 0)], &Settings::default());
    let ids = wb.encode_text(0, "  This is a simple English sentence about the WEATHER today ").unwrap();
    assert_eq!(ids.len(), 32);
    let t = wb.try_input(&picks(0, 0..5), &ids).unwrap();
    assert_eq!(wb.model_info(0).class_names[t.answer], "English", "{:?}", t.scores);
    let t = wb.try_input(&picks(0, 0..5), &wb.encode_text(0, "der Hund und die Katze spielen im Garten").unwrap()).unwrap();
    assert_eq!(wb.model_info(0).class_names[t.answer], "German", "{:?}", t.scores);
    assert!(wb.encode_text(0, "   ").is_err());
    // Characters outside the vocabulary become the unknown id 1.
    assert!(wb.encode_text(0, "日本").unwrap().contains(&1.0));
}

#[test]
fn per_step_tagger_decomposes_and_composes_per_step() {
    let mut wb = Workbench::new();
    wb.add_dataset(&read("data/lang_tags.npz"), "tags").unwrap();
    let info = wb.add_model(&read("models/lang_tags_lstm.keras"), "lang_tags_lstm.keras", 0, Default::default()).unwrap();
    let d = wb.dataset_info(0);
    for unrolled in [true, false] {
        wb.decompose(info.id, &Settings { unrolled, ..Settings::default() }, &mut |_| true).unwrap();
        let r = wb.compose(&picks(info.id, 0..5), Some(info.id)).unwrap();
        let steps = d.sample_shape[0];
        assert_eq!(r.composition.evaluated, d.test * steps);
        println!("tagger unrolled={unrolled}: composed per-step {:.4} vs model {:.4}", r.composition.top1, info.accuracy);
        assert!((r.composition.top1 - info.accuracy).abs() < 0.05, "unrolled={unrolled}: {} vs {}", r.composition.top1, info.accuracy);
    }
    let (x, labels) = wb.test_sample(0, 0).unwrap();
    assert_eq!(labels.len(), x.len());
    let t = wb.try_input(&picks(info.id, 0..5), &x).unwrap();
    assert_eq!(t.step_answers.len(), x.len());
}

/// The bundled encoder–decoder (word reversal, `models/lang_rev_lstm.keras`):
/// 27 per-letter modules (and `<end>`), per-step items; the composition is
/// read as whole output words (docs/FIDELITY.md has the numbers). The
/// shared-encoder option is checked on the same workbench (one model load,
/// the reference run's numbers reused).
#[test]
fn encoder_decoder_modules_compose_close_to_the_model() {
    let mut wb = Workbench::new();
    wb.add_dataset(&read("data/lang_rev.npz"), "lang_rev").unwrap();
    let info = wb.add_model(&read("models/lang_rev_lstm.keras"), "lang_rev_lstm.keras", 0, Default::default()).unwrap();
    assert_eq!(info.class_names.len(), 27);
    assert!(info.layers.iter().any(|l| l.kind == "RepeatVector"), "{:?}", info.layers);
    // The engine reads the model's words as Keras did when it was trained.
    let report: serde_json::Value = serde_json::from_slice(&read("models/train_report.json")).unwrap();
    let keras_exact: f32 = report["lang_rev_lstm.keras"]["notes"].as_str().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let all = picks(info.id, 0..27);
    let mut exact = vec![];
    let mut digest = String::new();
    for max_remove in [0.05, 0.01] {
        let dec = wb.decompose(info.id, &Settings { max_remove, ..Settings::default() }, &mut |_| true).unwrap();
        let r = wb.compose(&all, Some(info.id)).unwrap();
        let s = wb.sequence_scores(&all, Some(info.id)).unwrap();
        println!(
            "encoder-decoder max_remove {max_remove}: per-step {:.4} vs model {:.4}; exact {:.4} vs {:.4}; BLEU {:.4} vs {:.4}",
            r.composition.top1,
            info.accuracy,
            s.exact_match,
            s.model_exact_match.unwrap(),
            s.bleu,
            s.model_bleu.unwrap()
        );
        assert_eq!(s.sequences, wb.dataset_info(0).test);
        assert!((s.model_exact_match.unwrap() - keras_exact).abs() < 0.003, "engine {:?} vs Keras {keras_exact}", s.model_exact_match);
        // Both recurrent layers lose some units in some module, never most.
        assert!(dec.modules.iter().all(|m| m.jaccard_units > 0.8) && dec.modules.iter().any(|m| m.jaccard_units < 1.0));
        exact.push((s.exact_match, s.model_exact_match.unwrap(), s.bleu, s.model_bleu.unwrap()));
        digest = dec.mask_digest;
    }
    // Stated tolerance, with the smaller cap (about one unit per layer and
    // module): exact match within 0.5 and BLEU within 0.25 of the model's
    // (measured: 0.295 vs 0.751, BLEU 0.659 vs 0.856 — this model needs every
    // unit; docs/ALGORITHMS.md "Recurrent layers").
    let (e, me, b, mb) = exact[1];
    assert!((e - me).abs() < 0.5 && (b - mb).abs() < 0.25 && b > 0.5, "{:?}", exact[1]);
    // The authors' 5 % cap costs more: every unit carries part of the word.
    assert!(exact[0].0 < exact[1].0, "{exact:?}");
    // A module set of the encoder–decoder survives the native format (version 2).
    let bytes = wb.export_modules(info.id).unwrap();
    let mut again = Workbench::new();
    again.add_dataset(&read("data/lang_rev.npz"), "lang_rev").unwrap();
    let imported = again.import_modules(&bytes, "rev.remodule", 0).unwrap();
    assert_eq!(imported.decomposition.mask_digest, digest);
    shared_encoder_beats_the_reference_mode(&mut wb, info.id, (exact[0].0, exact[0].2));
    // Sequence scores are for per-step tasks only.
    let mut lang = Workbench::new();
    lang.add_dataset(&read("data/lang_a.npz"), "lang_a").unwrap();
    let id = lang.add_model(&read("models/lang_a_lstm.keras"), "lang_a_lstm.keras", 0, Default::default()).unwrap().id;
    lang.decompose(id, &Settings::default(), &mut |_| true).unwrap();
    assert!(lang.sequence_scores(&picks(id, 0..5), Some(id)).is_err());
}

/// The native module sets tests/wasm.rs compares the wasm decompositions with
/// are what the native engine computes now (regenerate them with the commands there).
#[test]
fn the_saved_encoder_decoder_module_sets_are_current() {
    for (saved_file, model) in
        [("lang_rev_modules.remodule", "lang_rev_lstm.keras"), ("lang_rev_rnn_modules.remodule", "lang_rev_rnn.keras")]
    {
        let mut wb = Workbench::new();
        wb.add_dataset(&read("data/lang_rev.npz"), "lang_rev").unwrap();
        let saved = wb.import_modules(&read(&format!("tests/fixtures/{saved_file}")), saved_file, 0).unwrap();
        assert!(saved.decomposition.settings.unrolled && saved.decomposition.modules.iter().any(|m| m.jaccard_units < 1.0), "{saved_file}");
        let id = wb.add_model(&read(&format!("models/{model}")), model, 0, Default::default()).unwrap().id;
        let fresh = wb.decompose(id, &saved.decomposition.settings, &mut |_| true).unwrap();
        assert_eq!(fresh.mask_digest, saved.decomposition.mask_digest, "{saved_file}");
    }
}

/// The other two cell types in the two sequence architectures
/// (`tools/train_models.py`: lang_tags_gru/rnn, lang_rev_gru/rnn): every class
/// decomposes, something is removed, and the composition's per-step accuracy
/// stays within the stated tolerance of the model's (numbers in
/// docs/FIDELITY.md). The encoder–decoders use the smaller cap (about one
/// unit per layer and module), as the LSTM one's test does: with the authors'
/// 5 % cap every one of them loses far more (docs/ALGORITHMS.md).
/// Per-step tolerances of the encoder–decoders (measured: GRU 0.881 vs 0.961,
/// SimpleRNN 0.846 vs 0.978 — the SimpleRNN's state carries the whole word
/// with no gate to protect it, so any removed unit costs it most).
const REV_TOLERANCE_GRU: f32 = 0.1;
const REV_TOLERANCE_RNN: f32 = 0.15;

#[test]
fn gru_and_simple_rnn_decompose_in_both_sequence_architectures() {
    let report: serde_json::Value = serde_json::from_slice(&read("models/train_report.json")).unwrap();
    let rolled = Settings::default();
    let unrolled = Settings { unrolled: true, ..Settings::default() };
    let small_cap = Settings { max_remove: 0.01, ..Settings::default() };
    // (model, data set, cell, settings, largest |composed − model| per step)
    let cases = [
        ("lang_tags_gru", "lang_tags", "GRU", &rolled, 0.03),
        ("lang_tags_gru", "lang_tags", "GRU", &unrolled, 0.03),
        ("lang_tags_rnn", "lang_tags", "SimpleRNN", &rolled, 0.03),
        ("lang_tags_rnn", "lang_tags", "SimpleRNN", &unrolled, 0.07),
        ("lang_rev_gru", "lang_rev", "GRU", &small_cap, REV_TOLERANCE_GRU),
        ("lang_rev_rnn", "lang_rev", "SimpleRNN", &small_cap, REV_TOLERANCE_RNN),
    ];
    for (stem, data, cell, settings, tolerance) in cases {
        let mut wb = Workbench::new();
        let d = wb.add_dataset(&read(&format!("data/{data}.npz")), data).unwrap();
        let file = format!("{stem}.keras");
        let info = wb.add_model(&read(&format!("models/{file}")), &file, d.id, Default::default()).unwrap();
        assert!(
            info.layers.iter().filter(|l| l.kind == cell).count() >= 1
                && info.layers.iter().all(|l| !["LSTM", "GRU", "SimpleRNN"].contains(&l.kind.as_str()) || l.kind == cell),
            "{stem}: {:?}",
            info.layers
        );
        // The engine's accuracy is the one Keras measured when training.
        let keras_acc = report[&file]["test_accuracy"].as_f64().unwrap() as f32;
        assert!((info.accuracy - keras_acc).abs() < 0.0015, "{stem}: engine {} vs Keras {keras_acc}", info.accuracy);
        let dec = wb.decompose(info.id, settings, &mut |_| true).unwrap();
        let classes = info.class_names.len();
        assert_eq!(dec.modules.len(), classes, "{stem}");
        assert!(
            dec.modules.iter().all(|m| m.jaccard_units > 0.8) && dec.modules.iter().any(|m| m.jaccard_units < 1.0),
            "{stem}: nothing or too much removed"
        );
        let all = picks(info.id, 0..classes);
        let r = wb.compose(&all, Some(info.id)).unwrap();
        assert_eq!(r.composition.evaluated, d.test * d.sample_shape[0], "{stem}: every step of every test sequence");
        let q = wb.sequence_scores(&all, Some(info.id)).unwrap();
        println!(
            "{stem} {}: per-step {:.4} vs model {:.4}; whole sequence right {:.4} vs {:.4}; BLEU {:.4} vs {:.4}",
            settings.describe(true),
            r.composition.top1,
            info.accuracy,
            q.exact_match,
            q.model_exact_match.unwrap(),
            q.bleu,
            q.model_bleu.unwrap()
        );
        assert!(
            (r.composition.top1 - info.accuracy).abs() < tolerance,
            "{stem} {}: composed {} vs model {}",
            settings.describe(true),
            r.composition.top1,
            info.accuracy
        );
        if data == "lang_rev" {
            let keras_exact: f32 = report[&file]["notes"].as_str().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
            assert!(
                (q.model_exact_match.unwrap() - keras_exact).abs() < 0.003,
                "{stem}: engine {:?} vs Keras {keras_exact}",
                q.model_exact_match
            );
            // The composed words still share most of their n-grams with the right ones.
            assert!(q.bleu > 0.5 && q.exact_match > 0.1, "{stem}: BLEU {} exact {}", q.bleu, q.exact_match);
        }
    }
}

/// Keeping the shared encoder whole (alone, and with the per-gate statistic in
/// the decoder) is the encoder–decoder option we offer: on the bundled word
/// reversal model it must beat the authors' reference mode (`reference`:
/// its exact match and BLEU at the defaults) on both, and its modules must
/// still prune the decoder (encoder untouched).
fn shared_encoder_beats_the_reference_mode(wb: &mut Workbench, model: usize, (ref_exact, ref_bleu): (f32, f32)) {
    let all = picks(model, 0..27);
    let mut run = |s: Settings| {
        let dec = wb.decompose(model, &s, &mut |_| true).unwrap();
        let q = wb.sequence_scores(&all, Some(model)).unwrap();
        println!(
            "{}: exact {:.4}, BLEU {:.4} (model {:.4} / {:.4})",
            s.describe(true),
            q.exact_match,
            q.bleu,
            q.model_exact_match.unwrap(),
            q.model_bleu.unwrap()
        );
        (q.exact_match, q.bleu, dec.modules.len())
    };
    let (kept_exact, kept_bleu, _) = run(Settings { keep_encoder: true, ..Settings::default() });
    assert!(
        kept_exact > ref_exact && kept_bleu > ref_bleu,
        "shared encoder {kept_exact} / {kept_bleu} vs reference {ref_exact} / {ref_bleu}"
    );
    let (exact, bleu, modules) = run(Settings { keep_encoder: true, gates: true, ..Settings::default() });
    assert_eq!(modules, 27);
    assert!(exact > ref_exact && bleu > ref_bleu, "shared encoder + per gate {exact} / {bleu} vs reference {ref_exact} / {ref_bleu}");
    // The masks, through the module-set file: the encoder (before the
    // RepeatVector) is whole in every module; the decoder is masked per gate.
    let (model, saved) = remodule::formats::native::load_modules(&wb.export_modules(model).unwrap(), "rev.remodule").unwrap();
    let repeat = model.nodes.iter().position(|n| matches!(n.op, remodule::engine::model::Op::RepeatVector { .. })).unwrap();
    for m in &saved.modules {
        for (&node, u) in &m.masks.nodes {
            if node < repeat {
                assert!(u.keep.count() == u.keep.len() && u.gates.is_none(), "module {} encoder", m.class);
            } else {
                assert!(u.gates.is_some(), "module {} decoder", m.class);
            }
        }
    }
    assert!(saved.modules.iter().any(|m| m.masks.nodes.values().any(|u| u.gates.as_ref().is_some_and(|g| g.count() < g.len()))));
}

/// The per-gate module set tests/wasm.rs compares the wasm decomposition with
/// is what the native engine computes now (regenerate it with the command there).
#[test]
fn the_saved_per_gate_module_set_is_current() {
    let mut wb = Workbench::new();
    wb.add_dataset(&read("data/lang_a.npz"), "lang_a").unwrap();
    let saved = wb.import_modules(&read("tests/fixtures/lang_a_gates_modules.remodule"), "lang_a_gates_modules.remodule", 0).unwrap();
    assert!(saved.decomposition.settings.gates && saved.decomposition.modules.iter().all(|m| m.jaccard_units < 1.0));
    let id = wb.add_model(&read("models/lang_a_lstm.keras"), "lang_a_lstm.keras", 0, Default::default()).unwrap().id;
    let fresh = wb.decompose(id, &saved.decomposition.settings, &mut |_| true).unwrap();
    assert_eq!(fresh.mask_digest, saved.decomposition.mask_digest);
}

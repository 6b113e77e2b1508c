//! The `remodule` binary: `convert` writes a native model that `info`/`eval`
//! read like the source, `report --out` writes a module set that `report` and
//! `compose` use as saved, and bad input fails with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary from the repository root.
fn remodule(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remodule")).current_dir(env!("CARGO_MANIFEST_DIR")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = remodule(args);
    assert!(out.status.success(), "remodule {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = remodule(args);
    assert!(!out.status.success(), "remodule {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn converted_models_read_like_their_source() {
    let dir = scratch("convert");
    for (model, data) in [("digits_cnn.keras", "digits"), ("lang_a_lstm.keras", "lang_a"), ("digits_mlp.h5", "digits")] {
        let out = dir.join(model.replace(['.'], "_") + ".remodule");
        let src = format!("models/{model}");
        let data = format!("data/{data}.npz");
        let said = ok(&["convert", &src, "--out", s(&out)]);
        assert!(said.contains(s(&out)), "{said}");
        assert!(out.exists());
        assert_eq!(ok(&["info", s(&out), "--data", &data]), ok(&["info", &src, "--data", &data]), "{model}");
        assert_eq!(ok(&["eval", s(&out), "--data", &data, "--json"]), ok(&["eval", &src, "--data", &data, "--json"]), "{model}");
        // Converting a converted model changes nothing.
        let again = dir.join("again.remodule");
        ok(&["convert", s(&out), "--out", s(&again)]);
        assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out).unwrap());
    }
}

#[test]
fn report_saves_a_module_set_that_report_and_compose_reuse() {
    let dir = scratch("modules");
    let set = dir.join("gru.remodule");
    let args =
        ["report", "models/lang_a_gru.keras", "--data", "data/lang_a.npz", "--json", "--samples", "60", "--unrolled", "--strength", "0"];
    let first: Value = serde_json::from_str(&ok(&[&args[..], &["--out", s(&set)]].concat())).unwrap();
    let again: Value = serde_json::from_str(&ok(&["report", s(&set), "--data", "data/lang_a.npz", "--json"])).unwrap();
    for key in ["mask_digest", "model_accuracy", "composed_accuracy", "composed_top5", "modules", "technique"] {
        assert_eq!(first[key], again[key], "{key}");
    }
    assert!(first["technique"].as_str().unwrap().contains("unrolled"));
    // Its settings are fixed: options for a new decomposition are refused.
    let e = fails(&["report", s(&set), "--data", "data/lang_a.npz", "--samples", "10"]);
    assert!(e.contains("module set") && e.contains("do not apply"), "{e}");
    let composed: Value =
        serde_json::from_str(&ok(&["compose", s(&set), "--data", "data/lang_a.npz", "--classes", "0,1", "--json"])).unwrap();
    assert_eq!(composed["class_names"], serde_json::json!(["English", "German"]));
    // A module set is a model file for info and eval too.
    assert_eq!(
        ok(&["eval", s(&set), "--data", "data/lang_a.npz", "--json"]),
        ok(&["eval", "models/lang_a_gru.keras", "--data", "data/lang_a.npz", "--json"])
    );
}

#[test]
fn bad_files_fail_with_a_message() {
    let dir = scratch("bad");
    let e = fails(&["convert", "models/catalog.json", "--out", s(&dir.join("x.remodule"))]);
    assert!(e.contains("unsupported model file"), "{e}");
    let good = dir.join("good.remodule");
    ok(&["convert", "models/digits_mlp.keras", "--out", s(&good)]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.remodule");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&["eval", s(&cut), "--data", "data/digits.npz"]);
    assert!(e.contains("invalid Remodule file"), "{e}");
    let e = fails(&["eval", s(&good), "--data", "data/lang_a.npz"]);
    assert!(e.starts_with("error: "), "{e}");
    let e = fails(&["convert", "models/missing.keras", "--out", s(&good)]);
    assert!(e.contains("missing.keras"), "{e}");
}

#[test]
fn export_writes_onnx_from_a_composition_file_and_refuses_what_it_cannot_export() {
    let dir = scratch("export");
    let out = dir.join("c.onnx");
    let prefix = dir.join("c");
    // Modules from two models: a composition file, as `compose` reads (paths relative to it).
    let root = env!("CARGO_MANIFEST_DIR");
    let plan = dir.join("plan.json");
    let models = format!(
        r#""a": {{"model": "{root}/models/digits_mlp.keras", "data": "{root}/data/digits.npz", "settings": {{"samples_per_class": 100}}}}, "b": {{"model": "{root}/models/digits_mlp_b.keras", "data": "{root}/data/digits.npz", "settings": {{"samples_per_class": 100}}}}"#
    );
    std::fs::write(
        &plan,
        format!(r#"{{"models": {{{models}}}, "modules": [{{"model": "a", "classes": ["1"]}}, {{"model": "b", "classes": ["7"]}}]}}"#),
    )
    .unwrap();
    let log = ok(&["export", s(&plan), "--out", s(&out), "--expected", s(&prefix)]);
    assert!(log.contains("2 modules"), "{log}");
    let bytes = std::fs::read(&out).unwrap();
    let g = remodule::formats::onnx::proto::decode(&bytes).unwrap().graph.unwrap();
    assert_eq!(g.output.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["scores", "argmax"]);
    // The expected answers: one per evaluation sample, classes 0 ("1") and 1 ("7") only.
    let answers = remodule::formats::npz::read_npy(&std::fs::read(dir.join("c.answers.npy")).unwrap()).unwrap();
    assert_eq!(answers.shape, vec![1000]);
    assert!(answers.to_f32().iter().all(|&a| a == 0.0 || a == 1.0));
    let scores = remodule::formats::npz::read_npy(&std::fs::read(dir.join("c.scores.npy")).unwrap()).unwrap();
    assert_eq!(scores.shape, vec![1000, 2]);

    let mlp = ["export", "models/digits_mlp.keras", "--data", "data/digits.npz", "--samples", "50"];
    let err = fails(&[&mlp[..], &["--classes", "10", "--out", s(&out)]].concat());
    assert!(err.contains("10"), "{err}");
    // Module update has no single graph: refused by name.
    std::fs::write(&plan, format!(r#"{{"models": {{{models}}}, "modules": [{{"model": "a", "classes": ["1"]}}, {{"model": "b", "classes": ["7"]}}], "update": true}}"#)).unwrap();
    let err = fails(&["export", s(&plan), "--out", s(&out)]);
    assert!(err.contains("module update"), "{err}");
    // A composition file says everything itself.
    let err = fails(&["export", s(&plan), "--data", "data/digits.npz", "--out", s(&out)]);
    assert!(err.contains("does not apply") || err.contains("do not apply"), "{err}");
    let err = fails(&["export", "models/lang_tags_lstm.keras", "--data", "data/lang_tags.npz", "--samples", "20", "--out", s(&out)]);
    assert!(err.contains("unsupported for ONNX export") && err.contains("per-step"), "{err}");
}

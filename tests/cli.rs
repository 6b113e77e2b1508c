//! The `remodule` binary: `predict` writes the forward pass as `.npy`,
//! `info`/`eval` work on ONNX files, `--data` takes `.npz` and IDX files.

use std::path::{Path, PathBuf};
use std::process::Command;

use remodule::engine::model::forward;
use remodule::formats::dataset::read_npz_dataset;
use remodule::formats::{load_model, npz};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn onnx(stem: &str) -> PathBuf {
    root().join(format!("tests/fixtures/onnx/{stem}.onnx"))
}

fn digits() -> PathBuf {
    root().join("data/digits.npz")
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("remodule-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary; (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_remodule")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = run(args);
    assert!(success, "remodule {args:?} failed: {err}");
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_npy(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npz::read_npy(&std::fs::read(p).unwrap()).unwrap();
    assert!(matches!(a.data, npz::NpyData::F32(_)), "float32 output");
    (a.shape.clone(), a.to_f32())
}

fn accuracy(probs: &[f32], classes: usize, labels: &[u32]) -> f32 {
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    let right = probs.chunks_exact(classes).zip(labels).filter(|(r, y)| argmax(r) == **y as usize).count();
    right as f32 / labels.len() as f32
}

#[test]
fn predict_writes_the_forward_pass() {
    let dir = scratch("predict");
    let out = dir.join("probs.npy");
    for stem in ["pt_cnn", "tf_mlp"] {
        ok(&["predict", s(&onnx(stem)), "--data", s(&digits()), "--out", s(&out)]);
        let (shape, probs) = read_npy(&out);
        assert_eq!(shape, [1000, 10], "{stem}");
        // The same computation through the library: test split, pixels / 255.
        let m = load_model(&std::fs::read(onnx(stem)).unwrap(), "m.onnx").unwrap();
        let d = read_npz_dataset(&std::fs::read(digits()).unwrap(), "digits").unwrap();
        let x: Vec<f32> = d.test.x.iter().map(|v| v * (1.0 / 255.0)).collect();
        let want = forward(&m, &x, 1000, None, false, &mut |_, _| true).unwrap().probs;
        let differ = probs.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert!(probs.len() == want.len() && differ == 0, "{stem}: {differ} values differ from the library's forward pass");
        // Independently: the first 16 rows are onnxruntime's outputs on the same images.
        let exp = npz::read_npz(&std::fs::read(root().join(format!("tests/fixtures/onnx/{stem}.expected.npz"))).unwrap()).unwrap();
        let ort = exp["probs"].to_f32();
        let worst = probs[..ort.len()].iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{stem}: |predict - onnxruntime| = {worst}");
    }
    // The train split, and a plain .npy of samples.
    ok(&["predict", s(&onnx("pt_mlp")), "--data", s(&digits()), "--split", "train", "--out", s(&out)]);
    assert_eq!(read_npy(&out).0, [1000, 10]);
    let x16 = dir.join("x16.npy");
    let exp = npz::read_npz(&std::fs::read(root().join("tests/fixtures/onnx/tf_cnn.expected.npz")).unwrap()).unwrap();
    std::fs::write(&x16, npz::write_npy_f32(&exp["x"].shape, &exp["x"].to_f32()).unwrap()).unwrap();
    ok(&["predict", s(&onnx("tf_cnn")), "--data", s(&x16), "--scale", "1", "--out", s(&out)]);
    let (shape, probs) = read_npy(&out);
    assert_eq!(shape, [16, 10]);
    let worst = probs.iter().zip(exp["probs"].to_f32()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn predict_per_step_models_and_errors() {
    let dir = scratch("steps");
    let out = dir.join("tags.npy");
    ok(&["predict", s(&onnx("tf_gru_tags")), "--data", s(&root().join("data/lang_tags.npz")), "--out", s(&out)]);
    let (shape, probs) = read_npy(&out);
    assert_eq!(shape, [500, 64, 5]);
    for row in probs.chunks_exact(5).take(100) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "softmax per step");
    }
    // Samples of the wrong size, a missing model, a data file that is not data.
    let (success, _, err) = run(&["predict", s(&onnx("pt_cnn")), "--data", s(&root().join("data/lang_a.npz")), "--out", s(&out)]);
    assert!(!success && err.contains("32 values") && err.contains("784"), "{err}");
    let (success, _, err) = run(&["predict", "nope.onnx", "--data", s(&digits()), "--out", s(&out)]);
    assert!(!success && err.contains("nope.onnx"), "{err}");
    let (success, _, err) = run(&["predict", s(&onnx("pt_cnn")), "--data", s(&onnx("pt_cnn")), "--out", s(&out)]);
    assert!(!success && err.contains("npz"), "{err}");
}

#[test]
fn info_and_eval_work_on_onnx() {
    let info = ok(&["info", s(&onnx("pt_cnn")), "--data", s(&digits())]);
    for layer in ["conv1", "pool1", "conv2", "pool2", "flatten", "fc"] {
        assert!(info.contains(layer), "{info}");
    }
    assert!(info.contains("Conv2D") && info.contains("[26, 26, 4]") && info.contains("3226 parameters"), "{info}");
    let dir = scratch("eval");
    let out = dir.join("p.npy");
    for stem in ["pt_cnn", "tf_cnn", "pt_residual"] {
        let json: serde_json::Value = serde_json::from_str(&ok(&["eval", s(&onnx(stem)), "--data", s(&digits()), "--json"])).unwrap();
        let acc = json["accuracy"].as_f64().unwrap() as f32;
        ok(&["predict", s(&onnx(stem)), "--data", s(&digits()), "--out", s(&out)]);
        let d = read_npz_dataset(&std::fs::read(digits()).unwrap(), "digits").unwrap();
        assert_eq!(acc, accuracy(&read_npy(&out).1, 10, &d.test.y), "{stem}");
    }
    // The NCHW export of tf_cnn's weights computes the same function.
    let a = ok(&["eval", s(&onnx("pt_cnn")), "--data", s(&digits()), "--json"]);
    assert_eq!(a, ok(&["eval", s(&onnx("tf_cnn")), "--data", s(&digits()), "--json"]));
    // A sequence model on token data.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["eval", s(&onnx("tf_lstm")), "--data", s(&root().join("data/lang_a.npz")), "--json"])).unwrap();
    assert!(json["accuracy"].as_f64().unwrap() > 0.3, "{json}");
}

/// Writes digits' test split as MNIST-style IDX files into `dir`.
fn write_idx(dir: &Path) -> PathBuf {
    let d = read_npz_dataset(&std::fs::read(digits()).unwrap(), "digits").unwrap();
    let n = d.test.len() as u32;
    let mut images = vec![0, 0, 8, 3];
    for v in [n, 28, 28] {
        images.extend(v.to_be_bytes());
    }
    images.extend(d.test.x.iter().map(|&v| v as u8));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(n.to_be_bytes());
    labels.extend(d.test.y.iter().map(|&v| v as u8));
    let path = dir.join("t10k-images-idx3-ubyte");
    std::fs::write(&path, images).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    path
}

#[test]
fn idx_files_are_data() {
    let dir = scratch("idx");
    let images = write_idx(&dir);
    let from_npz = ok(&["eval", s(&onnx("pt_mlp")), "--data", s(&digits()), "--json"]);
    assert_eq!(ok(&["eval", s(&onnx("pt_mlp")), "--data", s(&images), "--json"]), from_npz);
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    ok(&["predict", s(&onnx("pt_cnn")), "--data", s(&images), "--out", s(&a)]);
    ok(&["predict", s(&onnx("pt_cnn")), "--data", s(&digits()), "--out", s(&b)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // predict needs no labels; eval does, and says where it looked.
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).unwrap();
    ok(&["predict", s(&onnx("pt_cnn")), "--data", s(&images), "--out", s(&a)]);
    let (success, _, err) = run(&["eval", s(&onnx("pt_cnn")), "--data", s(&images)]);
    assert!(!success && err.contains("labels-idx1-ubyte"), "{err}");
    // A truncated IDX file.
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 1]).unwrap();
    let (success, _, err) = run(&["predict", s(&onnx("pt_cnn")), "--data", s(&images), "--out", s(&a)]);
    assert!(!success && err.contains("IDX"), "{err}");
}

/// `decompose --out` saves a module set; a composition file mixes it with
/// another model's modules; the result equals the engine's own composition.
#[test]
fn decompose_then_compose_from_a_composition_file() {
    use remodule::engine::decompose::{Settings, Technique};
    use remodule::workbench::{Pick, Workbench};
    let dir = scratch("plan");
    let models = root().join("models");
    let set = dir.join("faulty.remodule");
    let out =
        ok(&["decompose", s(&models.join("digits_mlp_faulty.keras")), "--data", s(&digits()), "--technique", "mc-bi", "--out", s(&set)]);
    assert!(out.contains("10 modules") && out.contains("mc-bi"), "{out}");
    // The module set answers `report` with the options it was saved with, and refuses others.
    let (okay, _, err) = run(&["report", s(&set), "--data", s(&digits()), "--technique", "mc"]);
    assert!(!okay && err.contains("module set"), "{err}");

    let plan = dir.join("fix7.json");
    std::fs::write(
        &plan,
        serde_json::json!({
            "models": {
                "faulty": { "model": "faulty.remodule", "data": s(&digits()) },
                "b": { "model": s(&models.join("digits_mlp_b.keras")), "data": s(&digits()), "settings": { "mode": "reference" } }
            },
            "modules": [ { "model": "faulty", "classes": ["0", "1", "2", "3", "4", "5", "6", 8, "9"] }, { "model": "b", "classes": ["7"] } ],
            "base": "faulty"
        })
        .to_string(),
    )
    .unwrap();
    let got: serde_json::Value = serde_json::from_str(&ok(&["compose", s(&plan), "--json"])).unwrap();

    let mut wb = Workbench::new();
    let ds = wb.add_dataset(&std::fs::read(digits()).unwrap(), "digits").unwrap().id;
    let read = |f: &str| std::fs::read(models.join(f)).unwrap();
    let faulty = wb.add_model(&read("digits_mlp_faulty.keras"), "digits_mlp_faulty.keras", ds, Default::default()).unwrap().id;
    let b = wb.add_model(&read("digits_mlp_b.keras"), "digits_mlp_b.keras", ds, Default::default()).unwrap().id;
    wb.decompose(faulty, &Settings { technique: Technique::McBi, ..Settings::default() }, &mut |_| true).unwrap();
    wb.decompose(b, &Settings { mode: remodule::engine::decompose::Mode::Reference, ..Settings::default() }, &mut |_| true).unwrap();
    let mut picks: Vec<Pick> = (0..10).filter(|&c| c != 7).map(|class| Pick { model: faulty, class }).collect();
    picks.push(Pick { model: b, class: 7 });
    let want = wb.compose(&picks, Some(faulty)).unwrap();
    assert_eq!(got["top1"].as_f64().unwrap() as f32, want.composition.top1);
    assert_eq!(got["model_accuracy"].as_f64().unwrap() as f32, want.model_accuracy.unwrap());
    assert!(want.composition.top1 > want.model_accuracy.unwrap() + 0.03, "replacing the faulty 7 helps");

    // Mistakes in the file are named.
    for (plan, needle) in [
        (r#"{"models": {}, "modules": [{"model": "x"}]}"#, "no model named 'x'"),
        (r#"{"models": {}, "modules": [], "extra": 1}"#, "unknown field `extra`"),
        (
            r#"{"models": {"a": {"model": "faulty.remodule", "data": "DATA"}}, "modules": [{"model": "a", "classes": ["seven"]}]}"#,
            "has no class 'seven'",
        ),
        (
            r#"{"models": {"a": {"model": "faulty.remodule", "data": "DATA", "settings": {"delta": 1}}}, "modules": [{"model": "a"}]}"#,
            "settings\" does not apply",
        ),
        (r#"{"models": {"a": {"model": "missing.keras", "data": "DATA"}}, "modules": [{"model": "a"}]}"#, "missing.keras"),
        // A misspelt setting is refused, not silently left at its default.
        (
            r#"{"models": {"a": {"model": "faulty.remodule", "data": "DATA", "settings": {"samples": 10}}}, "modules": [{"model": "a"}]}"#,
            "unknown field `samples`",
        ),
    ] {
        let bad = dir.join("bad.json");
        std::fs::write(&bad, plan.replace("DATA", s(&digits()))).unwrap();
        let (okay, _, err) = run(&["compose", s(&bad)]);
        assert!(!okay && err.contains(needle), "{plan}: {err}");
    }
    let (okay, _, err) = run(&["compose", s(&plan), "--classes", "1"]);
    assert!(!okay && err.contains("do not apply"), "{err}");

    let recurrent = |file: &str, data: &str, settings: &str| {
        let (model, data) = (root().join("models").join(file), root().join("data").join(data));
        let text = format!(
            r#"{{"models": {{"a": {{"model": "{}", "data": "{}"{settings}}}}}, "modules": [{{"model": "a"}}]}}"#,
            s(&model),
            s(&data)
        );
        let file = dir.join("recurrent.json");
        std::fs::write(&file, text).unwrap();
        run(&["compose", s(&file), "--json"])
    };
    let lstm = |settings: &str| recurrent("lang_a_lstm.keras", "lang_a.npz", settings);
    // A strength the file asks for on a model it cannot prune (a per-step head) is refused like `--strength`, not run at 0.
    let (okay, _, err) = recurrent("lang_tags_lstm.keras", "lang_tags.npz", r#", "settings": {"strength": 0.3}"#);
    assert!(!okay && err.contains("model 'a'") && err.contains("\"strength\": 0.3 does not apply to 'lang_tags_lstm'"), "{err}");
    // max_remove tunes the ICSE'23 removal only: given with the sign rule it is refused, not ignored;
    let (okay, _, err) = lstm(r#", "settings": {"max_remove": 0.1, "recurrent_mode": "paper", "strength": 0}"#);
    assert!(!okay && err.contains("recurrent_mode is 'paper'"), "{err}");
    // and at a strength, where class relevance prunes the recurrent layers, it is refused too.
    let (okay, _, err) = lstm(r#", "settings": {"max_remove": 0.1}"#);
    assert!(!okay && err.contains("max_remove (--max-remove) tunes the papers' recurrent modules") && err.contains("strength 0"), "{err}");
    for fine in [
        "",
        r#", "settings": {"strength": 0}"#,
        r#", "settings": {"max_remove": 0.1, "strength": 0}"#,
        r#", "settings": {"strength": 0.3}"#,
    ] {
        let (okay, _, err) = lstm(fine);
        assert!(okay, "{fine}: {err}");
    }
}

/// `remodule … | head` ends quietly (no panic on the closed pipe). `true`
/// exits without reading, long before the model has loaded.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let bin = env!("CARGO_BIN_EXE_remodule");
    let model = root().join("models/digits_cnn.keras");
    let script = format!("'{bin}' info '{}' --data '{}' | true", s(&model), s(&digits()));
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}

/// `exercise check` grades a state given as JSON or as a share link: the
/// faulty model's own modules fail "fix the faulty 7" (exit 3), the 7 taken
/// from MLP B passes; bad states are errors (exit 1).
#[test]
fn exercise_check_grades_states_and_links() {
    use std::io::Write;
    let dir = scratch("exercise");
    let check = |ex: &str, state: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_remodule"))
            .args(["exercise", "check", ex, state, "--json", "--root", s(&root())])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let start = r#"{"models": ["digits_mlp_faulty.keras", "digits_mlp_b.keras"], "settings": {}, "current": 0}"#;
    let slots: Vec<String> = (0..10).map(|c| if c == 7 { "[0,7,0],[1,7,1]".to_string() } else { format!("[0,{c},1]") }).collect();
    let fixed = format!(
        r#"{{"models": ["digits_mlp_faulty.keras", "digits_mlp_b.keras"], "settings": {{}}, "current": 0, "slots": [{}], "exercise": "fix-faulty-7"}}"#,
        slots.join(",")
    );
    let (code, out, err) = check("fix-faulty-7", start);
    assert_eq!(code, Some(3), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((r["solved"].as_bool(), r["checks"][0]["ok"].as_bool()), (Some(false), Some(false)), "{out}");
    // As a share link: raw deflate + base64url, the page's encoding (docs/SHARE.md).
    let mut z = flate2::write::DeflateEncoder::new(vec![], flate2::Compression::default());
    z.write_all(fixed.as_bytes()).unwrap();
    let b64: String = z
        .finish()
        .unwrap()
        .chunks(3)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |a, &b| a << 8 | b as u32) << (8 * (3 - c.len()));
            let abc = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            (0..=c.len()).map(move |i| abc[(n >> (18 - 6 * i) & 63) as usize] as char)
        })
        .collect();
    let link = format!("http://127.0.0.1:8080/#v=1&s={b64}");
    let (code, out, err) = check("-", &link);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["exercise"], "fix-faulty-7");
    assert!(r["top1"].as_f64().unwrap() > 0.89, "{out}");
    // The state can be a file, too.
    let file = dir.join("state.json");
    std::fs::write(&file, &fixed).unwrap();
    assert_eq!(check("fix-faulty-7", s(&file)).0, Some(0));
    for (ex, state, needle) in [
        ("-", start, "no exercise"),
        ("no-such-exercise", start, "no built-in exercise"),
        ("fix-faulty-7", "v=2&s=AAAA", "format version"),
        ("fix-faulty-7", "v=1&s=!!!", "base64url"),
        ("fix-faulty-7", "v=1&s=AAAA", "damaged"),
        ("fix-faulty-7", r#"{"models": ["nope.keras"], "current": 0}"#, "not a bundled model"),
        ("fix-faulty-7", r#"{"models": [{"upload": "x.keras"}], "current": 0}"#, "bundled models only"),
    ] {
        let (code, _, err) = check(ex, state);
        assert_eq!(code, Some(1), "{state}: {err}");
        assert!(err.contains(needle), "{state}: {err}");
    }
}

/// `compose MODEL` without `--data`: the bundled data set the model fits (by sample size and
/// class count), when exactly one does; otherwise the message names the candidates or the need.
#[test]
fn compose_without_data_finds_the_bundled_data_set_the_model_fits() {
    let (success, out, err) = run(&["compose", "models/digits_1v7.keras", "--json"]);
    assert!(success && err.contains("data/digits_1v7.npz"), "{err}");
    let with: serde_json::Value =
        serde_json::from_str(&ok(&["compose", "models/digits_1v7.keras", "--data", "data/digits_1v7.npz", "--json"])).unwrap();
    let without: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(with["composition"]["top1"], without["composition"]["top1"]);
    let (success, _, err) = run(&["compose", "models/digits_mlp.keras"]);
    assert!(
        !success && err.contains("several bundled data sets fit") && err.contains("data/digits.npz") && err.contains("data/clothing.npz"),
        "{err}"
    );
    let (success, _, err) = run(&["compose", "tests/fixtures/keras/lstm_vectors.keras"]);
    assert!(!success && err.contains("[7, 3]") && err.contains("no bundled data set fits"), "{err}");
}

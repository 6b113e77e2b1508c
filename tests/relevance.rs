//! Class relevance through the CLI on a bundled model: `--strength` makes the
//! modules smaller and different from each other, the report says so, a module
//! set keeps its calibrated scores, and out-of-range strengths are refused.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_remodule")).args(args).current_dir(root()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn report(extra: &[&str]) -> Value {
    let mut args = vec!["report", "models/digits_mlp.keras", "--data", "data/digits.npz", "--json"];
    args.extend(extra);
    let (ok, out, err) = run(&args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn strength_shrinks_and_separates_modules_and_the_report_shows_it() {
    let faithful = report(&["--strength", "0"]);
    let pruned = report(&["--strength", "0.35"]);
    assert_eq!(f(&faithful["strength"]), 0.0);
    // The default (no flag): class-specific modules at a cost under a point (issue 19's default target).
    let default = report(&[]);
    assert_eq!(f(&default["strength"]), 0.2f32 as f64);
    assert!(f(&default["mean_module_jaccard"]) <= 0.8, "{default}");
    assert!(f(&default["composed_accuracy"]) >= f(&faithful["composed_accuracy"]) - 0.01, "{default}");
    assert_eq!(f(&pruned["strength"]), 0.35f32 as f64);
    // The K × K matrix: ones on the diagonal, symmetric, and its off-diagonal mean reported.
    let m: Vec<Vec<f64>> =
        pruned["module_jaccard"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(f).collect()).collect();
    assert_eq!(m.len(), 10);
    let off: f64 = (0..10).flat_map(|i| (0..10).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| m[i][j]).sum::<f64>() / 90.0;
    assert!((off - f(&pruned["mean_module_jaccard"])).abs() < 1e-5);
    assert!((0..10).all(|i| m[i][i] == 1.0 && (0..10).all(|j| m[i][j] == m[j][i])));
    // Smaller and less alike than the faithful modules, at a visible but bounded cost.
    assert!(f(&pruned["mean_kept_weights"]) < f(&faithful["mean_kept_weights"]) - 0.2, "{pruned}");
    assert!(f(&pruned["mean_module_jaccard"]) < 0.8 && f(&faithful["mean_module_jaccard"]) > 0.9);
    let cost = f(&faithful["composed_accuracy"]) - f(&pruned["composed_accuracy"]);
    assert!(cost < 0.05, "strength 0.35 costs {cost}");
    assert_ne!(pruned["mask_digest"], faithful["mask_digest"]);
}

#[test]
fn a_saved_module_set_keeps_its_calibrated_scores() {
    let dir = std::env::temp_dir().join(format!("remodule-relevance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let set = dir.join("mlp.remodule");
    let set = set.to_str().unwrap();
    let direct = report(&["--strength", "0.5", "--out", set]);
    let (ok, out, err) = run(&["report", set, "--data", "data/digits.npz", "--json"]);
    assert!(ok, "{err}");
    let reread: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reread["mask_digest"], direct["mask_digest"]);
    assert_eq!(reread["composed_accuracy"], direct["composed_accuracy"]);
    assert_eq!(f(&reread["strength"]), 0.5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn strengths_outside_0_1_and_the_n_output_head_are_refused() {
    for bad in ["1.5", "-0.1", "NaN"] {
        let arg = format!("--strength={bad}");
        let (ok, _, err) = run(&["report", "models/digits_mlp.keras", "--data", "data/digits.npz", &arg]);
        assert!(!ok && err.contains("strength") && err.contains("[0, 1]"), "{bad}: {err}");
    }
    let (ok, _, err) = run(&["report", "models/digits_mlp.keras", "--data", "data/digits.npz", "--strength", "0.3", "--head", "reference"]);
    assert!(!ok && err.contains("2-unit head"), "{err}");
    // Without the flag, the authors' head and per-step heads get their faithful modules.
    let (ok, out, err) = run(&["report", "models/digits_mlp.keras", "--data", "data/digits.npz", "--head", "reference", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(f(&serde_json::from_str::<Value>(&out).unwrap()["strength"]), 0.0);
    let (ok, _, err) = run(&["report", "models/lang_tags_lstm.keras", "--data", "data/lang_tags.npz", "--strength", "0.2"]);
    assert!(!ok && err.contains("does not apply to 'lang_tags_lstm'"), "{err}");
}

/// The "class-specific modules" exercise: the CLI grades a state by decomposing at its strength —
/// 0.5 keeps the composed accuracy at 92 % (solved), 0.35 is not strong enough, 0.65 costs too much.
#[test]
fn the_class_specific_exercise_is_graded_at_the_state_s_strength() {
    let grade = |strength: f32| {
        let state = format!(r#"{{"models": ["digits_mlp.keras"], "settings": {{"strength": {strength}}}, "current": 0}}"#);
        let root = root();
        let (_, out, err) = run(&["exercise", "check", "class-specific-modules", &state, "--json", "--root", root.to_str().unwrap()]);
        let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        (r["solved"].as_bool().unwrap(), r["checks"][0]["ok"].as_bool().unwrap(), r["checks"][1]["ok"].as_bool().unwrap())
    };
    assert_eq!(grade(0.5), (true, true, true));
    assert_eq!(grade(0.35), (false, false, true));
    assert_eq!(grade(0.65), (false, true, false));
}

//! Recurrent models written by Keras 3 and tf_keras (tests/fixtures/keras,
//! and the bundled language models): outputs must match the framework's.

use std::path::{Path, PathBuf};

use remodule::formats::{load_model, npz};
use remodule::model::{forward, InputKind, Model};

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
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "keras" || e == "h5")).collect();
    files.sort();
    assert!(files.len() >= 12, "fixtures missing in {dir:?}");
    for f in files {
        let (model, d) = max_diff(&f);
        assert!(d < 1e-5, "{f:?}: max |probs - keras| = {d}");
        let tokens = !f.to_string_lossy().contains("vectors");
        assert_eq!(model.input.kind == InputKind::Tokens, tokens, "{f:?}");
        // Per-step heads classify every step.
        assert_eq!(model.out_steps() > 1, f.to_string_lossy().contains("seq2seq"), "{f:?}");
    }
}

#[test]
fn bundled_language_models_match_keras() {
    for stem in ["lang_a_rnn", "lang_a_lstm", "lang_a_gru", "lang_b_lstm", "lang_tags_lstm"] {
        let (model, d) = max_diff(&root().join(format!("models/{stem}.keras")));
        assert!(d < 1e-5, "{stem}: max |probs - keras| = {d}");
        assert_eq!(model.input.kind, InputKind::Tokens);
    }
}

//! The ONNX loader against models written by real tools (tf2onnx, and
//! `onnx.helper` in PyTorch's export style; outputs must match onnxruntime to
//! 1e-4) and against hostile inputs (truncated, corrupted, inconsistent,
//! unsupported): every one must give a typed error, none may panic.

use std::path::PathBuf;

use prost::Message;
use remodule::formats::onnx::load_onnx;
use remodule::formats::{load_model, npz};
use remodule::model::{forward, InputKind, Model, Op, Padding};
use remodule::{Error, Result};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn read(stem: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{stem}.onnx"))).unwrap()
}

/// (stem, the ONNX input is channels-first) for every fixture.
const FIXTURES: [(&str, bool); 8] = [
    ("tf_mlp", false),
    ("tf_cnn", false),
    ("tf_residual", false),
    ("tf_rgb", false),
    ("pt_mlp", true),
    ("pt_cnn", true),
    ("pt_residual", true),
    ("pt_rgb", true),
];

/// NCHW → NHWC for one batch of `[n, c, h, w]`.
fn to_nhwc(x: &[f32], shape: &[usize]) -> Vec<f32> {
    let [n, c, h, w] = shape[..] else { panic!("{shape:?}") };
    let mut out = vec![0f32; x.len()];
    for s in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((s * h + y) * w + xx) * c + ch] = x[((s * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    out
}

/// Largest |probs − onnxruntime's| over the fixture's expected inputs.
fn max_diff(model: &Model, stem: &str, nchw: bool) -> f32 {
    let exp = npz::read_npz(&std::fs::read(dir().join(format!("{stem}.expected.npz"))).unwrap()).unwrap();
    let shape = &exp["x"].shape;
    let x = if nchw { to_nhwc(&exp["x"].to_f32(), shape) } else { exp["x"].to_f32() };
    let out = forward(model, &x, shape[0], None, false, &mut |_, _| true).unwrap();
    let want = exp["probs"].to_f32();
    assert_eq!(out.probs.len(), want.len(), "{stem}");
    out.probs.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

fn load_no_panic(bytes: &[u8], case: &str) -> Result<Model> {
    std::panic::catch_unwind(|| load_onnx(bytes, "x")).unwrap_or_else(|_| panic!("the ONNX loader panicked on {case}"))
}

#[test]
fn fixtures_match_onnxruntime() {
    for (stem, nchw) in FIXTURES {
        let m = load_model(&read(stem), &format!("{stem}.onnx")).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(m.name, stem);
        let d = max_diff(&m, stem, nchw);
        assert!(d < 1e-4, "{stem}: max |probs - onnxruntime| = {d}");
    }
}

#[test]
fn image_inputs_are_channels_last() {
    for (stem, _) in FIXTURES {
        let m = load_onnx(&read(stem), stem).unwrap();
        let want = if stem.ends_with("rgb") { vec![8, 8, 3] } else if stem.ends_with("mlp") && stem.starts_with("tf") { vec![28, 28, 1] } else { vec![28, 28, 1] };
        assert_eq!(m.input.shape, want, "{stem}");
        assert_eq!(m.input.kind, InputKind::Image, "{stem}");
        assert_eq!((m.input.scale, m.input.offset), (1.0, 0.0));
    }
}

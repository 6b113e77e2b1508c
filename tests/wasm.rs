//! Engine tests run as wasm in headless Chromium (`scripts/test`), so the
//! SIMD kernels are checked where they actually run.
#![cfg(target_arch = "wasm32")]

use remodule::engine::kernels::{matmul, matmul_portable, simd_active};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
#[allow(clippy::assertions_on_constants)] // a failing test names the cause; a const assert would only stop the build
fn simd_is_compiled_in() {
    assert!(cfg!(target_feature = "simd128"), "build lost +simd128 (is RUSTFLAGS set?)");
    assert!(simd_active());
}

#[wasm_bindgen_test]
fn simd_matmul_matches_portable() {
    for &(m, k, n) in &[(1, 1, 1), (4, 8, 8), (5, 13, 11), (17, 33, 24), (64, 784, 64), (3, 0, 8), (8, 1, 16)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
        let (mut c1, mut c2) = (vec![0.0; m * n], vec![0.0; m * n]);
        matmul(&a, &b, &mut c1, m, k, n);
        matmul_portable(&a, &b, &mut c2, m, k, n);
        for (x, y) in c1.iter().zip(&c2) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{m}x{k}x{n}: {x} vs {y}");
        }
    }
}

/// The SIMD kernels keep the portable kernel's order of operations (sums over
/// k in order, no FMA), so results are bit-identical on every shape: full
/// tiles, ragged rows (m mod 4) and ragged columns (n mod 8), K = 1, N = 1.
#[wasm_bindgen_test]
fn simd_matmul_is_bit_identical_on_odd_shapes() {
    for m in 1..=9 {
        for k in [1, 2, 7, 33] {
            for n in (1..=17).chain([24, 31]) {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0).collect();
                let (mut c1, mut c2) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
                matmul(&a, &b, &mut c1, m, k, n);
                matmul_portable(&a, &b, &mut c2, m, k, n);
                assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}x{k}x{n}: {c1:?} vs {c2:?}");
            }
        }
    }
}

/// The direct SIMD convolution against im2col + matmul (the portable path):
/// bit-identical, with every padding kind, strides 1–2, kernels 1–3, output
/// channels it takes (multiples of 4) and ones it hands back (5).
#[wasm_bindgen_test]
fn simd_conv_is_bit_identical_to_im2col() {
    use remodule::engine::kernels::{Conv2dGeom, conv2d, conv2d_im2col};
    for (h, w) in [(1, 1), (5, 7), (8, 6)] {
        for cin in [1, 3, 16] {
            for cout in [4, 5, 8, 12, 16, 32] {
                for k in 1..=3 {
                    for s in 1..=2 {
                        let geoms = [
                            Conv2dGeom::new([h, w, cin], [k, k], [s, s], true),
                            Conv2dGeom::new([h, w, cin], [k, k], [s, s], false),
                            Conv2dGeom::explicit(h, w, cin, k, k, s, s, [k / 2, k - 1, 0, k / 2]),
                        ];
                        for g in geoms.into_iter().flatten() {
                            let input: Vec<f32> = (0..h * w * cin).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
                            let kernel: Vec<f32> = (0..k * k * cin * cout).map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0).collect();
                            let bias: Vec<f32> = (0..cout).map(|i| i as f32 - 2.5).collect();
                            let (mut o1, mut o2) = (vec![f32::NAN; g.oh * g.ow * cout], vec![f32::NAN; g.oh * g.ow * cout]);
                            conv2d(&g, &input, &kernel, &bias, &mut o1, &mut Vec::new());
                            conv2d_im2col(&g, &input, &kernel, &bias, &mut o2, &mut Vec::new());
                            assert!(o1.iter().zip(&o2).all(|(x, y)| x.to_bits() == y.to_bits()), "{g:?} cout {cout}");
                        }
                    }
                }
            }
        }
    }
}

use remodule::engine::model::forward;
use remodule::formats::{load_model, npz::read_npz};

/// Every bundled Keras model loads in wasm and matches Keras's own outputs.
#[wasm_bindgen_test]
fn keras_fixtures_match_keras_in_wasm() {
    let cases: [(&str, &[u8], &[u8]); 6] = [
        ("digits_mlp.keras", include_bytes!("../models/digits_mlp.keras"), include_bytes!("../models/digits_mlp.expected.npz")),
        ("digits_mlp.h5", include_bytes!("../models/digits_mlp.h5"), include_bytes!("../models/digits_mlp.expected.npz")),
        ("digits_mlp_b.keras", include_bytes!("../models/digits_mlp_b.keras"), include_bytes!("../models/digits_mlp_b.expected.npz")),
        (
            "digits_mlp_faulty.keras",
            include_bytes!("../models/digits_mlp_faulty.keras"),
            include_bytes!("../models/digits_mlp_faulty.expected.npz"),
        ),
        ("digits_cnn.keras", include_bytes!("../models/digits_cnn.keras"), include_bytes!("../models/digits_cnn.expected.npz")),
        ("clothing_mlp.keras", include_bytes!("../models/clothing_mlp.keras"), include_bytes!("../models/clothing_mlp.expected.npz")),
    ];
    assert_match(&cases, 1e-4);
}

/// Each (file, model bytes, expected.npz bytes) loads and reproduces the framework's probabilities within `tol`.
fn assert_match(cases: &[(&str, &[u8], &[u8])], tol: f32) {
    for &(file, model, expected) in cases {
        let m = load_model(model, file).unwrap();
        let exp = read_npz(expected).unwrap();
        let n = exp["x"].shape[0];
        let out = forward(&m, &exp["x"].to_f32(), n, None, false, &mut |_, _| true).unwrap();
        let worst = out.probs.iter().zip(exp["probs"].to_f32()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < tol, "{file}: max |Δ| {worst}");
    }
}

/// Recurrent fixtures (every cell kind, both GRU variants, Keras 3 and Keras 2
/// files, a per-step head) and the bundled language models, in wasm.
#[wasm_bindgen_test]
fn recurrent_models_match_keras_in_wasm() {
    macro_rules! case {
        ($dir:literal, $stem:literal, $ext:literal) => {
            (
                concat!($stem, $ext),
                &include_bytes!(concat!("../", $dir, "/", $stem, $ext))[..],
                &include_bytes!(concat!("../", $dir, "/", $stem, ".expected.npz"))[..],
            )
        };
    }
    let cases: [(&str, &[u8], &[u8]); 10] = [
        case!("tests/fixtures/keras", "simple_rnn_relu", ".keras"),
        case!("tests/fixtures/keras", "gru", ".keras"),
        case!("tests/fixtures/keras", "gru_reset_before", ".keras"),
        case!("tests/fixtures/keras", "lstm_gru_stacked", ".h5"),
        case!("tests/fixtures/keras", "lstm_seq2seq", ".keras"),
        case!("tests/fixtures/keras", "keras2_stacked", ".h5"),
        case!("tests/fixtures/keras", "lstm_vectors", ".keras"),
        case!("models", "lang_a_lstm", ".keras"),
        case!("models", "lang_a_gru", ".keras"),
        case!("models", "lang_a_rnn", ".keras"),
    ];
    assert_match(&cases, 1e-5);
}

#[wasm_bindgen_test]
fn hostile_model_bytes_are_errors_in_wasm() {
    let good: &[u8] = include_bytes!("../models/digits_cnn.keras");
    for cut in [0, 3, 100, good.len() / 2, good.len() - 1] {
        assert!(load_model(&good[..cut], "digits_cnn.keras").is_err(), "truncated at {cut}");
    }
    let e = load_model(b"\x89HDF\r\n\x1a\n garbage", "x.h5").unwrap_err();
    assert!(!e.to_string().is_empty());
}

/// `include_bytes!` of an ONNX fixture and its onnxruntime outputs.
macro_rules! onnx_case {
    ($stem:literal, $nchw:expr) => {
        (
            concat!($stem, ".onnx"),
            &include_bytes!(concat!("fixtures/onnx/", $stem, ".onnx"))[..],
            &include_bytes!(concat!("fixtures/onnx/", $stem, ".expected.npz"))[..],
            $nchw,
        )
    };
}

/// Every ONNX fixture (tf2onnx and PyTorch-style exports, images and
/// sequences) loads in wasm and matches onnxruntime.
#[wasm_bindgen_test]
fn onnx_fixtures_match_onnxruntime_in_wasm() {
    let cases: [(&str, &[u8], &[u8], bool); 15] = [
        onnx_case!("tf_mlp", false),
        onnx_case!("tf_cnn", false),
        onnx_case!("tf_residual", false),
        onnx_case!("tf_rgb", false),
        onnx_case!("pt_mlp", true),
        onnx_case!("pt_cnn", true),
        onnx_case!("pt_residual", true),
        onnx_case!("pt_rgb", true),
        onnx_case!("pt_glue13", true),
        onnx_case!("pt_glue11", true),
        onnx_case!("tf_lstm", false),
        onnx_case!("tf_gru_tags", false),
        onnx_case!("pt_lstm", false),
        onnx_case!("pt_gru", false),
        onnx_case!("pt_rnn", false),
    ];
    for (file, model, expected, nchw) in cases {
        let m = load_model(model, file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let exp = read_npz(expected).unwrap();
        let shape = exp["x"].shape.clone();
        let mut x = exp["x"].to_f32();
        if nchw {
            // The engine is fed channels-last: NCHW → NHWC.
            let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
            let src = x.clone();
            for (i, v) in x.iter_mut().enumerate() {
                let (s, y, xx, ch) = (i / (h * w * c), i / (w * c) % h, i / c % w, i % c);
                *v = src[((s * c + ch) * h + y) * w + xx];
            }
            assert_eq!(n * c * h * w, src.len());
        }
        let out = forward(&m, &x, shape[0], None, false, &mut |_, _| true).unwrap();
        let worst = out.probs.iter().zip(exp["probs"].to_f32()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{file}: max |Δ| {worst}");
    }
}

#[wasm_bindgen_test]
fn hostile_onnx_bytes_are_errors_in_wasm() {
    let good: &[u8] = include_bytes!("fixtures/onnx/pt_cnn.onnx");
    for cut in [0, 2, 50, good.len() / 3, good.len() / 2, good.len() - 1] {
        assert!(load_model(&good[..cut], "pt_cnn.onnx").is_err(), "truncated at {cut}");
    }
    // A graph length prefix of 4 GiB in a 72-byte file.
    let mut b = vec![0x08, 0x08, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f];
    b.extend([0u8; 64]);
    assert!(load_model(&b, "x.onnx").is_err());
}

/// The encoder–decoder (RepeatVector, per-step items) decomposes in wasm into
/// exactly the masks the native engine saved in
/// tests/fixtures/lang_rev_modules.remodule (`remodule report
/// models/lang_rev_lstm.keras --data data/lang_rev.npz --samples 3 --unrolled
/// --out …`; tests/recurrent.rs checks it against a fresh native run). Only
/// the recorded pass and the statistic run here (scoring 27 modules would
/// outlast the test runner's 17 s poll).
#[wasm_bindgen_test]
fn encoder_decoder_masks_match_native_in_wasm() {
    use remodule::engine::decompose::decompose;
    use remodule::formats::dataset::read_npz_dataset;
    use remodule::formats::native::load_modules;
    let (_, saved) = load_modules(include_bytes!("fixtures/lang_rev_modules.remodule"), "lang_rev_modules.remodule").unwrap();
    let model = load_model(include_bytes!("../models/lang_rev_lstm.keras"), "lang_rev_lstm.keras").unwrap();
    let data = read_npz_dataset(include_bytes!("../data/lang_rev.npz"), "lang_rev").unwrap();
    let here = decompose(&model, &data, &saved.settings, &mut |_| true).unwrap();
    assert_eq!(here.digest(), saved.digest());
}

/// The same for the SimpleRNN encoder–decoder (tests/fixtures/lang_rev_rnn_modules.remodule:
/// `remodule report models/lang_rev_rnn.keras --data data/lang_rev.npz --samples 3
/// --unrolled --out …`; tests/recurrent.rs checks it against a fresh native run).
#[wasm_bindgen_test]
fn simple_rnn_encoder_decoder_masks_match_native_in_wasm() {
    use remodule::engine::decompose::decompose;
    use remodule::formats::dataset::read_npz_dataset;
    use remodule::formats::native::load_modules;
    let (_, saved) = load_modules(include_bytes!("fixtures/lang_rev_rnn_modules.remodule"), "lang_rev_rnn_modules.remodule").unwrap();
    let model = load_model(include_bytes!("../models/lang_rev_rnn.keras"), "lang_rev_rnn.keras").unwrap();
    let data = read_npz_dataset(include_bytes!("../data/lang_rev.npz"), "lang_rev").unwrap();
    let here = decompose(&model, &data, &saved.settings, &mut |_| true).unwrap();
    assert_eq!(here.digest(), saved.digest());
}

/// The per-gate statistic in wasm gives exactly the native engine's gate
/// masks (tests/fixtures/lang_a_gates_modules.remodule: `remodule report
/// models/lang_a_lstm.keras --data data/lang_a.npz --samples 100 --gates
/// --out …`; tests/recurrent.rs checks it against a fresh native run).
#[wasm_bindgen_test]
fn per_gate_masks_match_native_in_wasm() {
    use remodule::engine::decompose::decompose;
    use remodule::formats::dataset::read_npz_dataset;
    use remodule::formats::native::load_modules;
    let (_, saved) = load_modules(include_bytes!("fixtures/lang_a_gates_modules.remodule"), "lang_a_gates_modules.remodule").unwrap();
    assert!(saved.settings.gates);
    let model = load_model(include_bytes!("../models/lang_a_lstm.keras"), "lang_a_lstm.keras").unwrap();
    let data = read_npz_dataset(include_bytes!("../data/lang_a.npz"), "lang_a").unwrap();
    let here = decompose(&model, &data, &saved.settings, &mut |_| true).unwrap();
    assert_eq!(here.digest(), saved.digest());
}

/// The layer fixtures (Rescaling, Normalization, LeakyReLU, ELU, GELU, swish,
/// softplus, hard_sigmoid, GlobalMaxPooling2D; Conv1D and the 1-D pools, DepthwiseConv2D,
/// SeparableConv2D, ONNX Pad, Bidirectional) from Keras 3, tf_keras and tf2onnx, in wasm.
#[wasm_bindgen_test]
fn layer_fixtures_match_keras_in_wasm() {
    macro_rules! case {
        ($file:literal, $expected:literal) => {
            (
                $file,
                &include_bytes!(concat!("fixtures/layers/", $file))[..],
                &include_bytes!(concat!("fixtures/layers/", $expected, ".expected.npz"))[..],
            )
        };
    }
    let cases: [(&str, &[u8], &[u8]); 38] = [
        // tf2onnx's text models (float ids cast to INT32), Bidirectional mul as an IR Multiply.
        case!("bidir_lstm.k2.onnx", "bidir_lstm.k2"),
        case!("hsig_lstm.k2.onnx", "hsig_lstm.k2"),
        case!("bidir_mul.keras", "bidir_mul"),
        case!("bidir_mul.k2.h5", "bidir_mul.k2"),
        case!("bidir_mul.k2.onnx", "bidir_mul.k2"),
        case!("conv1d_cnn.keras", "conv1d_cnn"),
        case!("conv1d_cnn.k2.h5", "conv1d_cnn.k2"),
        case!("conv1d_cnn.k2.onnx", "conv1d_cnn.k2"),
        case!("dwsep_cnn.keras", "dwsep_cnn"),
        case!("dwsep_cnn.k2.h5", "dwsep_cnn.k2"),
        case!("dwsep_cnn.k2.onnx", "dwsep_cnn.k2"),
        case!("pad_pool_cnn.keras", "pad_pool_cnn"),
        case!("pad_pool_cnn.k2.h5", "pad_pool_cnn.k2"),
        case!("pad_pool_cnn.k2.onnx", "pad_pool_cnn.k2"),
        case!("prelu_cnn.keras", "prelu_cnn"),
        case!("hsig_lstm.k2.h5", "hsig_lstm.k2"),
        case!("bidir_lstm.keras", "bidir_lstm"),
        case!("bidir_lstm.k2.h5", "bidir_lstm.k2"),
        case!("bidir_seq.keras", "bidir_seq"),
        case!("bidir_seq.k2.h5", "bidir_seq.k2"),
        case!("pad_concat_cnn.keras", "pad_concat_cnn"),
        case!("pad_concat_cnn.k2.onnx", "pad_concat_cnn.k2"),
        case!("norm01_mlp.k2.onnx", "norm01_mlp.k2"),
        case!("onnx_acts_mlp.keras", "onnx_acts_mlp"),
        case!("onnx_acts_mlp.k2.onnx", "onnx_acts_mlp.k2"),
        case!("float_cnn.keras", "float_cnn"),
        case!("float_cnn.k2.onnx", "float_cnn.k2"),
        case!("rescaling_cnn.keras", "rescaling_cnn"),
        case!("rescaling_cnn.k2.h5", "rescaling_cnn.k2"),
        case!("rescaling_cnn.k2.onnx", "rescaling_cnn.k2"),
        case!("norm_mlp.keras", "norm_mlp"),
        case!("norm_mlp.k2.h5", "norm_mlp.k2"),
        case!("acts_mlp.keras", "acts_mlp"),
        case!("acts_mlp.k2.h5", "acts_mlp.k2"),
        case!("gmp_cnn.keras", "gmp_cnn"),
        case!("gmp_cnn.k2.h5", "gmp_cnn.k2"),
        case!("gmp_cnn.k2.onnx", "gmp_cnn.k2"),
        case!("float_cnn.k2.h5", "float_cnn.k2"),
    ];
    assert_match(&cases, 1e-4);
}

/// The files `torch.onnx.export` wrote (tests/torch_fixtures.rs): the shape arithmetic of
/// `view`, BatchNorm, the pools, LeakyReLU/PReLU/ELU/SiLU/Hardsigmoid, GELU through Erf, F.pad's
/// computed pads, depthwise conv, global pools, Conv1d on [N, C, L], LSTM/GRU/RNN with `out[:, -1]`
/// and `h_n[-1]`, bidirectional LSTM/GRU with `out[:, -1]` and `cat([h_n[-2], h_n[-1]])`.
#[wasm_bindgen_test]
fn torch_fixtures_match_pytorch_in_wasm() {
    macro_rules! case {
        ($stem:literal) => {
            (
                concat!($stem, ".onnx"),
                &include_bytes!(concat!("fixtures/torch/", $stem, ".onnx"))[..],
                &include_bytes!(concat!("fixtures/torch/", $stem, ".expected.npz"))[..],
            )
        };
    }
    let cases: [(&str, &[u8], &[u8]); 11] = [
        case!("mlp"),
        case!("cnn"),
        case!("acts_cnn"),
        case!("gelu_mlp"),
        case!("dw_cnn"),
        case!("conv1d"),
        case!("lstm"),
        case!("gru"),
        case!("rnn"),
        case!("bilstm"),
        case!("bigru"),
    ];
    assert_match(&cases, 1e-4);
}

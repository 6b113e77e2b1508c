//! The tiny model the page tests upload to check that small uploads travel
//! inside share links: `tests/e2e/fixtures/tiny_digits.h5` (under the 24 KB
//! embedding limit of `www/share.js`). Input 28×28×1 → 4×4 average pooling →
//! Dense(16, relu) → Dense(10, softmax), trained here by plain SGD on the
//! bundled digits, written as a legacy Keras `.h5`.
//! `REMODULE_WRITE_FIXTURES=1 cargo test --test upload_fixture` rewrites it;
//! otherwise the test checks the committed file: size, loads, accuracy.

use std::path::PathBuf;

use hdf5_pure::{AttrValue, FileBuilder};
use remodule::engine::data::Dataset;
use remodule::engine::model::forward;
use remodule::formats::dataset::read_npz_dataset;
use remodule::formats::keras;
use serde_json::json;

const HIDDEN: usize = 16;
const POOLED: usize = 49;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn digits() -> Dataset {
    read_npz_dataset(&std::fs::read(root().join("data/digits.npz")).unwrap(), "digits").unwrap()
}

/// 4×4 average pooling of raw 28×28 pixels scaled to [0, 1].
fn pooled(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; POOLED];
    for r in 0..28 {
        for c in 0..28 {
            out[(r / 4) * 7 + c / 4] += x[r * 28 + c] / 255.0 / 16.0;
        }
    }
    out
}

/// (w1 49×16, b1, w2 16×10, b2), Keras kernel layout (inputs × units).
fn train(d: &Dataset) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut w1: Vec<f32> = (0..POOLED * HIDDEN).map(|_| rand() * 0.5).collect();
    let mut b1 = vec![0.0f32; HIDDEN];
    let mut w2: Vec<f32> = (0..HIDDEN * 10).map(|_| rand() * 0.5).collect();
    let mut b2 = vec![0.0f32; 10];
    let xs: Vec<Vec<f32>> = d.train.x.chunks(784).map(pooled).collect();
    let mut order: Vec<usize> = (0..xs.len()).collect();
    for epoch in 0..20 {
        let lr = 0.1 / (1.0 + epoch as f32 * 0.2);
        for i in (1..order.len()).rev() {
            order.swap(i, ((rand() + 0.5) * (i + 1) as f32) as usize % (i + 1));
        }
        for &n in &order {
            let (x, y) = (&xs[n], d.train.y[n]);
            let h: Vec<f32> = (0..HIDDEN).map(|j| (b1[j] + (0..POOLED).map(|i| x[i] * w1[i * HIDDEN + j]).sum::<f32>()).max(0.0)).collect();
            let z: Vec<f32> = (0..10).map(|k| b2[k] + (0..HIDDEN).map(|j| h[j] * w2[j * 10 + k]).sum::<f32>()).collect();
            let m = z.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            let dz: Vec<f32> = (0..10).map(|k| e[k] / s - (k == y as usize) as u8 as f32).collect();
            for j in 0..HIDDEN {
                let dh = if h[j] > 0.0 { (0..10).map(|k| dz[k] * w2[j * 10 + k]).sum::<f32>() } else { 0.0 };
                for k in 0..10 {
                    w2[j * 10 + k] -= lr * dz[k] * h[j];
                }
                for i in 0..POOLED {
                    w1[i * HIDDEN + j] -= lr * dh * x[i];
                }
                b1[j] -= lr * dh;
            }
            for k in 0..10 {
                b2[k] -= lr * dz[k];
            }
        }
    }
    (w1, b1, w2, b2)
}

fn h5(w1: &[f32], b1: &[f32], w2: &[f32], b2: &[f32]) -> Vec<u8> {
    let layers = json!([
        {"class_name": "InputLayer", "name": "pixels", "inbound_nodes": [],
         "config": {"batch_input_shape": [null, 28, 28, 1], "dtype": "float32", "sparse": false, "ragged": false, "name": "pixels"}},
        {"class_name": "AveragePooling2D", "name": "pool", "inbound_nodes": [[["pixels", 0, 0, {}]]],
         "config": {"name": "pool", "trainable": true, "dtype": "float32", "pool_size": [4, 4], "strides": [4, 4], "padding": "valid", "data_format": "channels_last"}},
        {"class_name": "Flatten", "name": "flatten", "inbound_nodes": [[["pool", 0, 0, {}]]],
         "config": {"name": "flatten", "trainable": true, "dtype": "float32", "data_format": "channels_last"}},
        {"class_name": "Dense", "name": "hidden", "inbound_nodes": [[["flatten", 0, 0, {}]]],
         "config": {"name": "hidden", "trainable": true, "dtype": "float32", "units": HIDDEN, "activation": "relu", "use_bias": true}},
        {"class_name": "Dense", "name": "out", "inbound_nodes": [[["hidden", 0, 0, {}]]],
         "config": {"name": "out", "trainable": true, "dtype": "float32", "units": 10, "activation": "softmax", "use_bias": true}},
    ]);
    let config = json!({"class_name": "Model", "config": {"name": "tiny_digits", "layers": layers,
        "input_layers": [["pixels", 0, 0]], "output_layers": [["out", 0, 0]]}});
    let mut b = FileBuilder::new();
    b.set_attr("keras_version", AttrValue::AsciiString("2.15.0".into()));
    b.set_attr("backend", AttrValue::AsciiString("tensorflow".into()));
    b.set_attr("model_config", AttrValue::AsciiString(config.to_string()));
    let mut mw = b.create_group("model_weights");
    mw.set_attr("layer_names", AttrValue::AsciiStringArray(["pixels", "pool", "flatten", "hidden", "out"].map(String::from).to_vec()));
    for (name, kernel, bias, shape) in [("hidden", w1, b1, [POOLED as u64, HIDDEN as u64]), ("out", w2, b2, [HIDDEN as u64, 10])] {
        let mut g = mw.create_group(name);
        g.set_attr("weight_names", AttrValue::AsciiStringArray(vec![format!("{name}/kernel:0"), format!("{name}/bias:0")]));
        let mut inner = g.create_group(name);
        inner.create_dataset("kernel:0").with_f32_data(kernel).with_shape(&shape);
        inner.create_dataset("bias:0").with_f32_data(bias).with_shape(&[bias.len() as u64]);
        g.add_group(inner.finish());
        mw.add_group(g.finish());
    }
    b.add_group(mw.finish());
    b.finish().unwrap()
}

#[test]
fn tiny_upload_fixture_is_small_and_loads() {
    let path = root().join("tests/e2e/fixtures/tiny_digits.h5");
    let d = digits();
    if std::env::var_os("REMODULE_WRITE_FIXTURES").is_some() {
        let (w1, b1, w2, b2) = train(&d);
        let own = d
            .test
            .x
            .chunks(784)
            .zip(&d.test.y)
            .filter(|(x, y)| {
                let x = pooled(x);
                let h: Vec<f32> =
                    (0..HIDDEN).map(|j| (b1[j] + (0..POOLED).map(|i| x[i] * w1[i * HIDDEN + j]).sum::<f32>()).max(0.0)).collect();
                let z: Vec<f32> = (0..10).map(|k| b2[k] + (0..HIDDEN).map(|j| h[j] * w2[j * 10 + k]).sum::<f32>()).collect();
                remodule::engine::compose::argmax(&z) == **y as usize
            })
            .count();
        eprintln!("trainer's own test accuracy: {}", own as f32 / d.test.len() as f32);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, h5(&w1, &b1, &w2, &b2)).unwrap();
    }
    let bytes = std::fs::read(&path).expect("tests/e2e/fixtures/tiny_digits.h5 (REMODULE_WRITE_FIXTURES=1 makes it)");
    assert!(bytes.len() < 24 * 1024, "{} bytes: too large to travel inside a share link", bytes.len());
    // Its data (the bundled digits, u8) gets the input rule's 1/255.
    let model = keras::load_keras_h5(&bytes, "tiny_digits").unwrap();
    let rows: Vec<usize> = (0..d.test.len()).collect();
    let out = forward(&model, &d.inputs(&model, &d.test, &rows), d.test.len(), None, false, &mut |_, _| true).unwrap();
    let right = out.probs.chunks(10).zip(&d.test.y).filter(|(p, y)| remodule::engine::compose::argmax(p) == **y as usize).count();
    let acc = right as f32 / d.test.len() as f32;
    eprintln!("tiny_digits.h5: {} bytes, test accuracy {acc:.3}", bytes.len());
    assert!(acc > 0.7, "accuracy {acc}");
}

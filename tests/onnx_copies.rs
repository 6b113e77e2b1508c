//! The ONNX copies of the bundled models (models/onnx/, written by
//! tools/export_onnx_models.py for the onnxruntime-web benchmark) load in the
//! ONNX loader as the same models: on every test sample (every step of a
//! per-step model), the same argmax and probabilities within 1e-4 of the Keras
//! model's. The encoder–decoders' RepeatVector comes back from Unsqueeze + Tile.

use remodule::app::catalog::Catalog;
use remodule::engine::model::forward;
use remodule::formats::dataset::read_npz_dataset;
use remodule::formats::load_model;

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b })
}

#[test]
fn onnx_copies_match_the_bundled_models() {
    let cat = Catalog::parse(&read("models/catalog.json")).unwrap();
    let mut checked = 0;
    for m in &cat.models {
        let stem = m.file.rsplit_once('.').map_or(m.file.as_str(), |(s, _)| s);
        let keras = load_model(&read(&format!("models/{}", m.file)), &m.file).unwrap();
        let onnx =
            load_model(&read(&format!("models/onnx/{stem}.onnx")), &format!("{stem}.onnx")).unwrap_or_else(|e| panic!("{stem}.onnx: {e}"));
        assert_eq!((onnx.input_len(), onnx.classes(), onnx.out_steps()), (keras.input_len(), keras.classes(), keras.out_steps()), "{stem}");
        let data = read_npz_dataset(&read(&format!("data/{}", cat.datasets[&m.dataset].file)), &m.dataset).unwrap();
        let rows: Vec<usize> = (0..data.test.len()).collect();
        let run = |model| {
            let x = data.inputs(model, &data.test, &rows);
            forward(model, &x, rows.len(), None, false, &mut |_, _| true).unwrap().probs
        };
        let (want, got) = (run(&keras), run(&onnx));
        assert_eq!(want.len(), got.len(), "{stem}");
        let c = keras.classes();
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{stem}: max |Δprob| {worst}");
        for (i, (a, b)) in want.chunks(c).zip(got.chunks(c)).enumerate() {
            assert_eq!(argmax(a), argmax(b), "{stem}: sample row {i}");
        }
        checked += 1;
    }
    assert_eq!(checked, cat.models.len());
}

/// The CLI's ResNet-20 (tools/train_resnet20.py; not in the catalog): the Keras file and its
/// tf2onnx copy both give Keras's own probabilities on its 16 saved test images (32×32×3,
/// stride-2 "same" convolutions, projection shortcuts).
#[test]
fn resnet20_and_its_onnx_copy_match_keras() {
    use remodule::formats::npz::read_npz;
    let exp = read_npz(&read("models/resnet20.expected.npz")).unwrap();
    let (x, want) = (exp["x"].to_f32(), exp["probs"].to_f32());
    for file in ["models/resnet20.keras", "models/onnx/resnet20.onnx"] {
        let model = load_model(&read(file), file).unwrap();
        assert_eq!((model.input_len(), model.classes()), (32 * 32 * 3, 10), "{file}");
        let got = forward(&model, &x, 16, None, false, &mut |_, _| true).unwrap().probs;
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(got.len() == want.len() && worst < 1e-4, "{file}: max |Δprob| {worst}");
    }
}

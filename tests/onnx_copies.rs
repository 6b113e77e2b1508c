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

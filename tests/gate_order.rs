//! Keras vs ONNX gate order: a recurrent model loaded from its Keras file and
//! from its ONNX twin (same weights; tools/make_onnx_fixtures.py --pairs)
//! computes the same states, so it decomposes into the same masks — for
//! SimpleRNN, LSTM (ONNX i, o, f, c ↔ Keras i, f, c, o) and GRU.

use remodule::engine::data::{Dataset, Split};
use remodule::engine::decompose::{Decomposition, Mode, Settings, decompose};
use remodule::engine::model::{Model, Op, forward};
use remodule::formats::dataset::read_npz_dataset;
use remodule::formats::{load_model, npz};

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn load(p: &str) -> Model {
    load_model(&read(p), p.rsplit('/').next().unwrap()).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Token sequences (seeded), labelled by their tokens (per step, or the last
/// one) modulo the class count, so every class has samples.
fn data(model: &Model, n: usize, vocab: u64) -> Dataset {
    let len = model.input_len();
    let mut s = 0x2545F4914F6CDD1Du64;
    let x: Vec<f32> = (0..n * len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab) as f32
        })
        .collect();
    let (c, steps) = (model.classes() as u32, model.out_steps());
    let y: Vec<u32> = x.chunks_exact(len).flat_map(|s| s[len - steps..].iter().map(move |&t| t as u32 % c)).collect();
    let split = Split { x, y, steps };
    Dataset {
        name: "pair".into(),
        sample_shape: model.input.shape.clone(),
        class_names: model.class_names.clone(),
        vocab: None,
        train: split.clone(),
        test: split,
        stored: remodule::engine::data::Stored::Integer,
    }
}

/// Each module's masks of the recurrent layers, in model order (node ids may differ between formats).
fn recurrent_masks(model: &Model, dec: &Decomposition) -> Vec<Vec<Vec<u64>>> {
    let rec: Vec<usize> = (0..model.nodes.len()).filter(|&i| matches!(model.nodes[i].op, Op::Recurrent(_))).collect();
    dec.modules.iter().map(|m| rec.iter().map(|n| m.masks.nodes[n].keep.words().to_vec()).collect()).collect()
}

#[test]
fn keras_and_onnx_twins_decompose_into_the_same_masks() {
    for (keras, onnx, kind) in [
        ("tests/fixtures/keras/simple_rnn.keras", "tests/fixtures/onnx/pair_simple_rnn.onnx", "SimpleRNN"),
        ("tests/fixtures/keras/keras2_seq2seq.h5", "tests/fixtures/onnx/pair_lstm_tags.onnx", "LSTM"),
        ("tests/fixtures/onnx/pair_gru.h5", "tests/fixtures/onnx/pair_gru.onnx", "GRU"),
    ] {
        let (k, o) = (load(keras), load(onnx));
        assert!(k.nodes.iter().any(|n| n.op.kind() == kind) && o.nodes.iter().any(|n| n.op.kind() == kind), "{keras}: no {kind}");
        // The ONNX file's onnxruntime outputs are the Keras model's too.
        let exp = npz::read_npz(&read(&onnx.replace(".onnx", ".expected.npz"))).unwrap();
        let n = exp["x"].shape[0];
        let keras_probs = forward(&k, &exp["x"].to_f32(), n, None, false, &mut |_, _| true).unwrap().probs;
        let d = keras_probs.iter().zip(exp["probs"].to_f32()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d < 1e-5, "{keras} vs onnxruntime on {onnx}: {d}");
        let vocab =
            k.nodes.iter().find_map(|n| if let Op::Embedding { table } = &n.op { Some(table.nrows() as u64) } else { None }).unwrap();
        let data = data(&k, 300, vocab);
        for settings in [
            Settings { samples_per_class: 100, ..Settings::faithful() },
            Settings { samples_per_class: 100, unrolled: true, ..Settings::faithful() },
            Settings { samples_per_class: 100, recurrent_mode: Mode::Paper, ..Settings::faithful() },
            // Class relevance (the default strength) measures each unit's removal: the same ranking on both.
            Settings { samples_per_class: 100, ..Settings::default() },
        ] {
            let (dk, dox) =
                (decompose(&k, &data, &settings, &mut |_| true).unwrap(), decompose(&o, &data, &settings, &mut |_| true).unwrap());
            let (mk, mo) = (recurrent_masks(&k, &dk), recurrent_masks(&o, &dox));
            assert_eq!(mk, mo, "{kind}: {}", settings.describe(true));
            // Not vacuous: the authors' statistic removes units in some module.
            if settings.recurrent_mode == Mode::Reference && settings.strength == 0.0 {
                assert!(dk.modules.iter().any(|m| m.kept_units < m.total_units), "{kind}: nothing removed");
            }
        }
    }
}

/// The bundled encoder–decoders and their ONNX copies (models/onnx/, where
/// tf2onnx wrote the RepeatVector as Unsqueeze + Tile): the same masks on the
/// real word-reversal data, for every cell type.
#[test]
fn encoder_decoder_onnx_copies_decompose_into_the_same_masks() {
    let data = read_npz_dataset(&read("data/lang_rev.npz"), "lang_rev").unwrap();
    for stem in ["lang_rev_lstm", "lang_rev_gru", "lang_rev_rnn"] {
        let (k, o) = (load(&format!("models/{stem}.keras")), load(&format!("models/onnx/{stem}.onnx")));
        assert!(o.nodes.iter().any(|n| n.op.kind() == "RepeatVector"), "{stem}");
        let settings = Settings { samples_per_class: 20, ..Settings::default() };
        let (dk, dox) = (decompose(&k, &data, &settings, &mut |_| true).unwrap(), decompose(&o, &data, &settings, &mut |_| true).unwrap());
        assert!(dk.modules.iter().any(|m| m.kept_units < m.total_units), "{stem}: nothing removed");
        assert_eq!(recurrent_masks(&k, &dk), recurrent_masks(&o, &dox), "{stem}");
    }
}

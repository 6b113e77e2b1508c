//! Results do not depend on the number of threads (engine::parallel): the
//! recorded pass, the masks, every score row and the composed answers are
//! the same, bit for bit, on 1, 2 and 3 threads — on a CNN and on an LSTM.

use remodule::engine::data::InputOverride;
use remodule::engine::decompose::{Relevance, Settings, decomposition_rows};
use remodule::engine::model::{ForwardOutput, Record, forward_with};
use remodule::engine::parallel::with_threads;
use remodule::workbench::{Pick, Workbench};

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn workbench(files: &[(&str, &str)]) -> Workbench {
    let mut wb = Workbench::new();
    for (i, (model, data)) in files.iter().enumerate() {
        let d = wb.add_dataset(&read(&format!("data/{data}.npz")), data).unwrap().id;
        assert_eq!(wb.add_model(&read(&format!("models/{model}")), model, d, InputOverride::default()).unwrap().id, i);
    }
    wb
}

/// Floats by their bits (so −0 ≠ +0 and NaN = NaN, unlike `==`).
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn same_output(a: &ForwardOutput, b: &ForwardOutput, what: &str) {
    assert_eq!(bits(&a.logits), bits(&b.logits), "{what}: logits");
    assert_eq!(bits(&a.probs), bits(&b.probs), "{what}: probabilities");
    let (ra, rb) = (a.recording.as_ref().unwrap(), b.recording.as_ref().unwrap());
    assert_eq!(ra.bits, rb.bits, "{what}: activity bits");
    for (x, y) in [(&ra.states, &rb.states), (&ra.gates, &rb.gates)] {
        assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{what}");
        x.values().zip(y.values()).for_each(|(x, y)| assert_eq!(bits(x), bits(y), "{what}: states / gates"));
    }
    // f64 sums compared exactly: they must add the same values in the same order.
    assert_eq!(ra.moments, rb.moments, "{what}: per-class sums");
}

/// The recorded pass over five spans of 512 samples (two waves on 2 threads),
/// with per-class sums (CNN) and gate records (LSTM).
#[test]
fn the_recorded_pass_is_the_same_on_any_number_of_threads() {
    let wb = workbench(&[("digits_cnn.keras", "digits"), ("lang_a_lstm.keras", "lang_a")]);
    for (id, what, per_class) in [(0, Record::Units, 250), (1, Record::Gates, 500)] {
        let (model, data) = wb.model(id).unwrap();
        let rows = decomposition_rows(data, per_class);
        let x = data.inputs(model, &data.train, &rows);
        let groups: Vec<u32> = rows.iter().map(|&r| data.train.y[r]).collect();
        let run = |t: usize| {
            with_threads(t, || forward_with(model, &x, rows.len(), None, what, Some(&groups), &mut |_, _| true).unwrap()).unwrap()
        };
        let one = run(1);
        assert!(one.recording.as_ref().unwrap().bits.iter().any(|b| b.rows() > 0));
        assert_eq!(one.recording.as_ref().unwrap().moments.is_empty(), id == 1, "sums for the CNN's units only");
        for t in [2, 3] {
            same_output(&one, &run(t), &format!("{} on {t} threads", model.name));
        }
    }
}

/// What a decomposition gives the page and the CLI: digest, module figures, score rows, answers.
fn decompose_and_score(files: &[(&str, &str)], settings: &Settings, threads: usize) -> (String, String, Vec<Vec<u32>>, Vec<u32>) {
    with_threads(threads, || {
        let mut wb = workbench(files);
        let info = wb.decompose(0, settings, &mut |_| true).unwrap();
        let picks: Vec<Pick> = (0..info.modules.len()).map(|class| Pick { model: 0, class }).collect();
        let scores = wb.composition_scores(&picks).unwrap();
        (info.mask_digest.clone(), serde_json::to_string(&info).unwrap(), scores.rows.iter().map(|r| bits(r)).collect(), scores.answers)
    })
    .unwrap()
}

#[test]
fn masks_and_scores_are_the_same_on_one_and_two_threads() {
    let small = Settings { samples_per_class: 200, ..Settings::default() };
    let cases = [
        (("digits_cnn.keras", "digits"), small.clone()),
        // Class relevance: the per-class sums and each module's calibration pass.
        (("digits_cnn.keras", "digits"), Settings { strength: 0.35, ..small.clone() }),
        // Learned relevance: every class's training in parallel.
        (("digits_mlp.keras", "digits"), Settings { strength: 0.35, relevance: Relevance::Learned, ..small.clone() }),
        // Recurrent relevance: each unit's removal measured in parallel.
        (("lang_a_lstm.keras", "lang_a"), small.clone()),
        // The per-gate statistic (strength 0): gate records and the shared column cache.
        (("lang_a_lstm.keras", "lang_a"), Settings { gates: true, unrolled: true, strength: 0.0, ..small.clone() }),
    ];
    for (file, s) in cases {
        let one = decompose_and_score(&[file], &s, 1);
        let two = decompose_and_score(&[file], &s, 2);
        assert_eq!(one.0, two.0, "{} {s:?}: mask digest", file.0);
        assert_eq!(one.1, two.1, "{} {s:?}: module figures", file.0);
        assert_eq!(one.2, two.2, "{} {s:?}: score rows", file.0);
        assert_eq!(one.3, two.3, "{} {s:?}: composed answers", file.0);
    }
}

/// Module update re-records each pick (in parallel) on another data set's samples.
#[test]
fn module_update_is_the_same_on_one_and_two_threads() {
    let run = |t: usize| {
        with_threads(t, || {
            let mut wb = workbench(&[("digits_mlp.keras", "digits"), ("clothing_mlp.keras", "clothing")]);
            let s = Settings { samples_per_class: 200, ..Settings::faithful() };
            wb.decompose(0, &s, &mut |_| true).unwrap();
            wb.decompose(1, &s, &mut |_| true).unwrap();
            let picks = [Pick { model: 0, class: 1 }, Pick { model: 0, class: 7 }, Pick { model: 1, class: 5 }];
            let r = wb.compose_updated(&picks, None).unwrap();
            serde_json::to_string(&r).unwrap()
        })
        .unwrap()
    };
    assert_eq!(run(1), run(2));
}

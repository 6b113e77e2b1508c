//! Decomposition on hand-computed and random small models.

use ndarray::{Array1, Array2, arr1, arr2};
use proptest::prelude::*;

use super::*;
use crate::engine::data::Split;
use crate::engine::model::{Activation, InputKind, InputSpec, ModelBuilder, forward};

pub(super) fn dataset(x: Vec<f32>, y: Vec<u32>, features: usize, classes: usize) -> Dataset {
    let split = Split { x, y, steps: 1 };
    Dataset {
        name: "t".into(),
        sample_shape: vec![features],
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        vocab: None,
        train: split.clone(),
        test: split,
        stored: crate::engine::data::Stored::Float,
    }
}

pub(super) fn mlp(w1: Array2<f32>, b1: Array1<f32>, w2: Array2<f32>, b2: Array1<f32>) -> Model {
    let spec = InputSpec::new(vec![w1.nrows()], InputKind::Vectors);
    let mut b = ModelBuilder::new("m", spec).unwrap();
    b.push("h", Op::Dense { kernel: w1, bias: b1, activation: Activation::Relu }).unwrap();
    let c = w2.ncols();
    b.push("out", Op::Dense { kernel: w2, bias: b2, activation: Activation::Softmax }).unwrap();
    b.finish((0..c).map(|i| i.to_string()).collect()).unwrap()
}

/// Hidden units: u0 = x0, u1 = x1, u2 = x0 + x1 - 1.5 (only when both are on).
/// Class 0 samples light x0, class 1 samples light x1.
pub(super) fn two_class() -> (Model, Dataset) {
    let m = mlp(
        arr2(&[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]),
        arr1(&[0.0, 0.0, -1.5]),
        arr2(&[[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]]),
        arr1(&[0.0, 0.0]),
    );
    let x = vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
    (m, dataset(x, vec![0, 0, 1, 1], 2, 2))
}

#[test]
fn paper_masks_by_hand() {
    let (m, d) = two_class();
    let s = Settings { mode: Mode::Paper, technique: Technique::Mc, samples_per_class: 2, ..Settings::faithful() };
    let dec = decompose(&m, &d, &s, &mut |_| true).unwrap();
    assert_eq!(dec.recorded_samples, 4);
    // Class 0 module: concerned {0,1} light u0; one tangling sample of class 1 lights u1; u2 never.
    let keep0: Vec<usize> = dec.modules[0].masks.nodes[&1].keep.iter().collect();
    assert_eq!(keep0, vec![0, 1]);
    assert_eq!((dec.modules[0].concerned, dec.modules[0].unconcerned), (2, 2));
    assert_eq!(dec.modules[0].jaccard_units(), 2.0 / 3.0);
}

#[test]
fn reference_masks_intersect_clip_and_restore() {
    let (m, d) = two_class();
    // With a tiny tangling ratio, each module sees 1 unconcerned sample.
    let s = Settings {
        mode: Mode::Reference,
        technique: Technique::Mc,
        samples_per_class: 2,
        tangling_ratio: 0.5,
        confidence: 0.5,
        ..Settings::faithful()
    };
    let dec = decompose(&m, &d, &s, &mut |_| true).unwrap();
    let m0 = &dec.modules[0].masks.nodes[&1];
    // u0: active for every concerned sample -> kept and clipped; u1: restored by TI (not clipped).
    assert_eq!(m0.keep.iter().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(m0.clip_negative.as_ref().unwrap().iter().collect::<Vec<_>>(), vec![0]);
}

#[test]
fn channeled_head_scores_by_hand() {
    let (m, d) = two_class();
    let dec = decompose(&m, &d, &Settings { samples_per_class: 2, ..Settings::faithful() }, &mut |_| true).unwrap();
    // Sample (1, 0): logits (1, -1); module 0: score = the log-odds 1 - (-1) = 2, p = σ(2).
    let s = concerned_scores(&m, &dec.modules[0], &[1.0, 0.0], 1, &mut |_, _| true).unwrap();
    assert!((s[0] - 2.0).abs() < 1e-6, "{s:?}");
    assert!((Head::Two.probability(s[0]) - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
    assert!(Head::Two.says_yes(s[0]));
}

#[test]
fn bad_settings_and_missing_classes_are_errors() {
    let (m, d) = two_class();
    assert!(decompose(&m, &d, &Settings { samples_per_class: 0, ..Settings::faithful() }, &mut |_| true).is_err());
    assert!(decompose(&m, &d, &Settings { tangling_ratio: f32::NAN, ..Settings::faithful() }, &mut |_| true).is_err());
    let mut d1 = d.clone();
    d1.train.y = vec![0, 0, 0, 0];
    let e = decompose(&m, &d1, &Settings::faithful(), &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("no training samples of class '1'"), "{e}");
    assert_eq!(decompose(&m, &d, &Settings::faithful(), &mut |_| false).unwrap_err(), Error::Cancelled);
}

#[test]
fn the_icse23_removal_s_settings_are_refused_with_the_sign_rule() {
    for s in [Settings { max_remove: 0.1, ..Settings::default() }, Settings { gates: true, ..Settings::default() }] {
        assert!(s.validate().is_ok());
        let e = Settings { recurrent_mode: Mode::Paper, ..s }.validate().unwrap_err().to_string();
        assert!(e.contains("recurrent_mode is 'paper'"), "{e}");
    }
    // The default's own max_remove passes with the sign rule.
    assert!(Settings { recurrent_mode: Mode::Paper, ..Settings::default() }.validate().is_ok());
}

fn random_case() -> impl Strategy<Value = (Model, Dataset)> {
    (2usize..5, 2usize..7, 2usize..4, 4usize..30, any::<u32>()).prop_map(|(f, h, c, n, seed)| {
        let mut s = seed as u64 | 1;
        let mut r = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        };
        let m = mlp(
            Array2::from_shape_fn((f, h), |_| r()),
            Array1::from_shape_fn(h, |_| r()),
            Array2::from_shape_fn((h, c), |_| r()),
            Array1::from_shape_fn(c, |_| r()),
        );
        let x = (0..n * f).map(|_| r()).collect();
        let y = (0..n).map(|i| (i % c) as u32).collect();
        (m, dataset(x, y, f, c))
    })
}

proptest! {
    /// Paper mode keeps exactly the units some sample of the module's set activated.
    #[test]
    fn paper_module_keeps_only_units_its_samples_activated((m, d) in random_case(), e in 1usize..6) {
        let s = Settings { mode: Mode::Paper, samples_per_class: e, ..Settings::faithful() };
        let dec = decompose(&m, &d, &s, &mut |_| true).unwrap();
        let out = forward(&m, &d.train.x, d.train.len(), None, true, &mut |_, _| true).unwrap();
        let bits = &out.recording.unwrap().bits[0];
        let classes = d.class_names.len();
        for module in &dec.modules {
            let keep = &module.masks.nodes[&1].keep;
            // The decomposition samples are the first `e` of each class; all of them are in the set
            // of some module (as concerned or unconcerned); a kept unit must be active for at
            // least one of the recorded samples.
            for u in keep.iter() {
                let recorded = (0..d.train.len()).filter(|&i| (d.train.y[..=i].iter().filter(|&&y| y == d.train.y[i]).count()) <= e);
                prop_assert!(recorded.clone().any(|i| bits.get(u, i)), "unit {u} kept but never active");
            }
            prop_assert!(module.class < classes);
        }
    }

    /// With every unit kept (union over all samples), each module's score ranks
    /// like the model's own logit margin, so composing all modules reproduces the model.
    #[test]
    fn composing_full_modules_reproduces_the_model((m, d) in random_case()) {
        let n = d.train.len();
        let out = forward(&m, &d.train.x, n, None, false, &mut |_, _| true).unwrap();
        let c = m.classes();
        let full = Masks::default();
        let rows: Vec<Vec<f32>> = (0..c).map(|k| {
            let module = Module { class: k, head: Head::Two, masks: full.clone(), concerned: 1, unconcerned: 1, kept_units: 0, total_units: 0, calibration: None };
            concerned_scores(&m, &module, &d.train.x, n, &mut |_, _| true).unwrap()
        }).collect();
        for s in 0..n {
            let z = &out.logits[s * c..(s + 1) * c];
            let model_answer = crate::engine::compose::argmax(z);
            let module_answer = crate::engine::compose::argmax(&rows.iter().map(|r| r[s]).collect::<Vec<_>>());
            // z_c - mean(others) = (C z_c - Σz)/(C-1): monotone in z_c, so the argmax agrees.
            prop_assert_eq!(model_answer, module_answer);
        }
    }
}

#[test]
fn robust_mean_drops_outliers() {
    // median 2.5, MAD 1 → 100 is dropped.
    assert_eq!(robust_mean(vec![1.0, 2.0, 3.0, 100.0]), 2.0);
    // MAD 0: plain mean.
    assert_eq!(robust_mean(vec![1.0, 1.0, 1.0, 5.0]), 2.0);
    assert_eq!(robust_mean(vec![]), 0.0);
}

#[test]
fn removal_caps_and_keeps_near_worst() {
    let mut d = vec![0.0f32; 20];
    d[1] = -0.5;
    d[3] = -0.46;
    d[2] = -0.2;
    d[4] = 0.3;
    // Cap ⌊0.05 · 20⌋ = 1 removes unit 1; unit 3 is within 10 % of the worst.
    assert_eq!(removal(&d, 0.0, 0.05, true), vec![1, 3]);
    assert_eq!(removal(&d, 0.0, 0.05, false), vec![1]);
    assert_eq!(removal(&d, 0.0, 0.5, false), vec![1, 3, 2]);
    // ReLU rates: only d ≤ −0.5 qualifies.
    assert_eq!(removal(&d, -0.5, 1.0, false), vec![1]);
    assert!(removal(&[0.1, 0.2], 0.0, 1.0, true).is_empty());
}

/// SimpleRNN (tanh) over 3 steps: unit 0 follows feature 0 (class 0's
/// input), unit 1 feature 1 (class 1's), unit 2 nothing.
fn tiny_rnn() -> (Model, Dataset) {
    use crate::engine::model::{Cell, Recurrent};
    let spec = InputSpec::new(vec![3, 2], InputKind::Vectors);
    let mut b = ModelBuilder::new("rnn", spec).unwrap();
    let r = Recurrent {
        cell: Cell::SimpleRnn,
        units: 3,
        kernel: arr2(&[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]),
        recurrent: Array2::zeros((3, 3)),
        bias: Array1::zeros(3),
        recurrent_bias: None,
        activation: Activation::Tanh,
        recurrent_activation: Activation::Sigmoid,
        return_sequences: false,
        reverse: false,
    };
    b.push("rnn", Op::Recurrent(Box::new(r))).unwrap();
    b.push(
        "out",
        Op::Dense { kernel: arr2(&[[1.0, -1.0], [-1.0, 1.0], [0.5, 0.5]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Softmax },
    )
    .unwrap();
    let m = b.finish(vec!["a".into(), "b".into()]).unwrap();
    let (c0, c1) = ([1.0, 0.0].repeat(3), [0.0, 1.0].repeat(3));
    let x = [c0.clone(), c1.clone(), c0, c1].concat();
    (m, dataset(x, vec![0, 1, 0, 1], 6, 2))
}

#[test]
fn recurrent_reference_removes_the_unit_of_the_other_class() {
    let (m, d) = tiny_rnn();
    for unrolled in [false, true] {
        let s = Settings { samples_per_class: 2, unrolled, ..Settings::faithful() };
        let dec = decompose(&m, &d, &s, &mut |_| true).unwrap();
        for (c, other) in [(0, 1), (1, 0)] {
            let keep = &dec.modules[c].masks.nodes[&1].keep;
            assert_eq!(keep.len(), 9);
            let removed: Vec<usize> = (0..9).filter(|&i| !keep.contains(i)).collect();
            assert_eq!(removed, vec![other, 3 + other, 6 + other], "class {c}, unrolled {unrolled}");
        }
        // The module still answers its own class: p_c > 0.5 on its samples.
        let x = d.inputs(&m, &d.train, &[0, 1]);
        let p0 = concerned_scores(&m, &dec.modules[0], &x, 2, &mut |_, _| true).unwrap();
        assert!(p0[0] > 0.5 && p0[1] <= 0.5, "{p0:?}");
        // Unit 1 gone at every step: 2 units × (2 inputs + 2 recurrent) of the
        // RNN's 6 + 9 weights, plus the head's 2 channeled columns over 2 live inputs of its 6.
        assert_eq!(kept_weights(&m, &dec.modules[0]), (8.0 + 4.0) / (15.0 + 6.0));
    }
}

/// Class relevance measures each recurrent unit's removal: unit 2 reads no
/// input (its state stays 0), so removing it changes no margin and it is the
/// one a module gives up; the papers' settings are refused at a strength.
#[test]
fn recurrent_relevance_removes_the_unit_whose_removal_changes_nothing() {
    let (m, d) = tiny_rnn();
    let x = d.inputs(&m, &d.train, &[0, 1, 2, 3]);
    let logits = forward(&m, &x, 4, None, false, &mut |_, _| true).unwrap().logits;
    let damage = UnitDamage::measure(&m, &[], &x, 4, &[0, 1, 0, 1], &logits).unwrap();
    for c in 0..2 {
        let d = &damage.0[&1][c];
        assert!(d[2] == 0.0 && d[0] > 0.1 && d[1] > 0.1, "class {c}: {d:?}");
    }
    // 4s / (19 − 15s) of 3 units is one unit from s = 19/27 on.
    for (strength, removed) in [(0.7, vec![]), (0.75, vec![2, 5, 8])] {
        let dec = decompose(&m, &d, &Settings { samples_per_class: 2, strength, ..Settings::default() }, &mut |_| true).unwrap();
        for module in &dec.modules {
            let keep = &module.masks.nodes[&1].keep;
            assert_eq!((0..9).filter(|&i| !keep.contains(i)).collect::<Vec<_>>(), removed, "strength {strength}");
        }
    }
    let e = decompose(&m, &d, &Settings { samples_per_class: 2, unrolled: true, ..Settings::default() }, &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("unrolled (--unrolled) tunes the papers' recurrent modules"), "{e}");
}

#[test]
fn recurrent_paper_mode_keeps_units_active_for_any_sample() {
    let (m, d) = tiny_rnn();
    let s = Settings { samples_per_class: 2, recurrent_mode: Mode::Paper, ..Settings::faithful() };
    let dec = decompose(&m, &d, &s, &mut |_| true).unwrap();
    let keep = &dec.modules[0].masks.nodes[&1].keep;
    // Units 0 and 1 are positive for some sample at every step; unit 2 never.
    assert_eq!(keep.iter().collect::<Vec<_>>(), vec![0, 1, 3, 4, 6, 7]);
}

/// A 2-step LSTM / GRU over 2 features with 2 units; class 0 lights
/// feature 0, class 1 feature 1. Gate block patterns, per unit n: "own"
/// reads +2 from feature n and −2 from the other (open for its class only),
/// "candidate" +2 from feature n (|h̃| high for its class only), "open" has
/// no input weight and bias +3 (open for everyone). LSTM i, f, c̃, o = own,
/// open, candidate, own; GRU z, r, h̃ = own, open, candidate.
fn tiny_gated(cell: crate::engine::model::Cell) -> (Model, Dataset, Vec<bool>) {
    use crate::engine::model::{Cell, Recurrent};
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Own,
        Open,
        Candidate,
    }
    let blocks = match cell {
        Cell::Lstm => vec![P::Own, P::Open, P::Candidate, P::Own],
        _ => vec![P::Own, P::Open, P::Candidate],
    };
    let gu = 2 * blocks.len();
    let mut kernel = Array2::zeros((2, gu));
    let mut bias = Array1::zeros(gu);
    for (g, &p) in blocks.iter().enumerate() {
        for n in 0..2 {
            match p {
                P::Own => (kernel[[n, g * 2 + n]], kernel[[1 - n, g * 2 + n]]) = (2.0, -2.0),
                P::Candidate => kernel[[n, g * 2 + n]] = 2.0,
                P::Open => bias[g * 2 + n] = 3.0,
            }
        }
    }
    let r = Recurrent {
        cell,
        units: 2,
        kernel,
        recurrent: Array2::zeros((2, gu)),
        bias,
        recurrent_bias: matches!(cell, Cell::Gru { reset_after: true }).then(|| Array1::zeros(gu)),
        activation: Activation::Tanh,
        recurrent_activation: Activation::Sigmoid,
        return_sequences: false,
        reverse: false,
    };
    let spec = InputSpec::new(vec![2, 2], InputKind::Vectors);
    let mut b = ModelBuilder::new("gated", spec).unwrap();
    b.push("rnn", Op::Recurrent(Box::new(r))).unwrap();
    b.push("out", Op::Dense { kernel: arr2(&[[1.0, -1.0], [-1.0, 1.0]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Softmax })
        .unwrap();
    let m = b.finish(vec!["a".into(), "b".into()]).unwrap();
    let (c0, c1) = ([1.0, 0.0].repeat(2), [0.0, 1.0].repeat(2));
    let x = [c0.clone(), c1.clone(), c0, c1].concat();
    let prunable = blocks.iter().map(|&p| p != P::Open).collect();
    (m, dataset(x, vec![0, 1, 0, 1], 4, 2), prunable)
}

#[test]
fn per_gate_statistic_removes_the_other_class_gate_columns_by_hand() {
    use crate::engine::model::Cell;
    for cell in [Cell::Lstm, Cell::Gru { reset_after: true }, Cell::Gru { reset_after: false }] {
        let (m, d, prunable) = tiny_gated(cell);
        let g = prunable.len();
        for unrolled in [false, true] {
            // A cap of one column per 2-unit gate block.
            let s = Settings { samples_per_class: 2, max_remove: 0.5, gates: true, unrolled, ..Settings::faithful() };
            let dec = decompose(&m, &d, &s, &mut |_| true).unwrap();
            for (c, other) in [(0usize, 1usize), (1, 0)] {
                let mask = &dec.modules[c].masks.nodes[&1];
                assert_eq!(mask.keep.count(), 4, "{cell:?}: per-gate removal keeps every unit");
                let gates = mask.gates.as_ref().expect("a gate mask");
                assert_eq!(gates.len(), 2 * g * 2);
                // Sigmoid "own" gates: active rate 0 vs 1; the candidate: |h̃| 0 vs tanh 2; "open" gates tie (d = 0) and stay.
                let want: Vec<usize> = (0..2).flat_map(|t| (0..g).filter(|&b| prunable[b]).map(move |b| (t * g + b) * 2 + other)).collect();
                let removed: Vec<usize> = (0..gates.len()).filter(|&i| !gates.contains(i)).collect();
                assert_eq!(removed, want, "{cell:?} class {c}, unrolled {unrolled}");
                let removed_per_step = prunable.iter().filter(|&&p| p).count();
                assert_eq!(dec.modules[c].kept_units, 2 * (2 * g - removed_per_step));
                // Kept columns × (2 live inputs + 2 units) of W and U (2 × 2G each), plus the head's 2 channeled columns over 2 inputs of its 4.
                let want_kept = ((2 * g - removed_per_step) * 4 + 4) as f32 / (2 * 2 * 2 * g + 4) as f32;
                assert_eq!(kept_weights(&m, &dec.modules[c]), want_kept, "{cell:?}");
            }
            // The module still answers its own class.
            let x = d.inputs(&m, &d.train, &[0, 1]);
            let p0 = concerned_scores(&m, &dec.modules[0], &x, 2, &mut |_, _| true).unwrap();
            assert!(Head::Two.says_yes(p0[0]) && !Head::Two.says_yes(p0[1]), "{cell:?}: {p0:?}");
        }
    }
}

#[test]
fn per_gate_statistic_falls_back_to_units_for_a_simple_rnn() {
    let (m, d) = tiny_rnn();
    let s = Settings { samples_per_class: 2, ..Settings::faithful() };
    let by_unit = decompose(&m, &d, &s, &mut |_| true).unwrap();
    let by_gate = decompose(&m, &d, &Settings { gates: true, ..s }, &mut |_| true).unwrap();
    assert!(by_gate.modules.iter().all(|m| m.masks.nodes[&1].gates.is_none()));
    assert_eq!(by_gate.digest(), by_unit.digest());
}

// ---- Backtracking (MC-BLN / MC-BI) and the reference head ----

fn vectors(n: usize) -> InputSpec {
    InputSpec::new(vec![n], InputKind::Vectors)
}

fn image(h: usize, w: usize) -> InputSpec {
    InputSpec::new(vec![h, w, 1], InputKind::Vectors)
}

fn dense(kernel: Array2<f32>, bias: f32, activation: Activation) -> Op {
    let n = kernel.ncols();
    Op::Dense { kernel, bias: Array1::from_elem(n, bias), activation }
}

/// A 3-class head whose input unit 0 pushes against class 0 and for the
/// others (w_c = −1, w_uc = +1); the other inputs are weak.
fn head_against_class_0(inputs: usize) -> Op {
    let mut k = Array2::from_elem((inputs, 3), 0.1);
    k.row_mut(0).assign(&arr1(&[-1.0, 1.0, 1.0]));
    dense(k, 0.0, Activation::Softmax)
}

/// Positive inputs: every ReLU unit of the models below is active for every sample.
fn positive_data(features: usize) -> Dataset {
    let x = (0..6 * features).map(|i| 0.5 + (i % 7) as f32 / 10.0).collect();
    dataset(x, vec![0, 1, 2, 0, 1, 2], features, 3)
}

fn keep_of(dec: &Decomposition, class: usize, node: NodeId) -> Vec<usize> {
    dec.modules[class].masks.nodes[&node].keep.iter().collect()
}

fn with(technique: Technique) -> Settings {
    Settings { technique, samples_per_class: 2, ..Settings::faithful() }
}

#[test]
fn mc_bln_delta_rule_through_dense_layers_by_hand() {
    // x(2) → h1(2) → h2(3) → head(3). h2 unit 0 feeds the head against class 0;
    // h1 unit 0's only strong edge (0.9) goes to h2 unit 0.
    let mut b = ModelBuilder::new("m", vectors(2)).unwrap();
    b.push("h1", dense(Array2::from_elem((2, 2), 0.3), 0.1, Activation::Relu)).unwrap();
    b.push("h2", dense(arr2(&[[0.9, 0.1, 0.1], [0.1, 0.9, 0.9]]), 0.1, Activation::Relu)).unwrap();
    b.push("out", head_against_class_0(3)).unwrap();
    let m = b.finish(vec!["a".into(), "b".into(), "c".into()]).unwrap();
    let d = positive_data(2);
    let mc = decompose(&m, &d, &with(Technique::Mc), &mut |_| true).unwrap();
    assert_eq!((keep_of(&mc, 0, 1), keep_of(&mc, 0, 2)), (vec![0, 1], vec![0, 1, 2]));
    let bln = decompose(&m, &d, &with(Technique::McBln), &mut |_| true).unwrap();
    assert_eq!((keep_of(&bln, 0, 1), keep_of(&bln, 0, 2)), (vec![1], vec![1, 2]));
    // Class 1's module: unit 0 pushes *for* it (w_c = +1): nothing removed.
    assert_eq!((keep_of(&bln, 1, 1), keep_of(&bln, 1, 2)), (vec![0, 1], vec![0, 1, 2]));
    // A δ above every weight removes nothing.
    let loose = Settings { delta: 2.0, ..with(Technique::McBln) };
    assert_eq!(decompose(&m, &d, &loose, &mut |_| true).unwrap().modules, mc.modules);
    assert!(decompose(&m, &d, &Settings { delta: 0.0, ..with(Technique::McBln) }, &mut |_| true).is_err());
}

/// x(4×4×1) → conv 1×1 (ReLU) → `mid` → Flatten → head(3) against class 0 at flat unit 0.
fn conv_model(mid: Op) -> Model {
    let mut b = ModelBuilder::new("c", image(4, 4)).unwrap();
    b.push(
        "conv_a",
        Op::Conv2D {
            kernel: ndarray::Array4::from_elem((1, 1, 1, 1), 1.0),
            bias: arr1(&[0.1]),
            strides: [1, 1],
            padding: crate::engine::model::Padding::Valid,
            activation: Activation::Relu,
        },
    )
    .unwrap();
    b.push("mid", mid).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    b.push("out", head_against_class_0(4)).unwrap();
    b.finish(vec!["a".into(), "b".into(), "c".into()]).unwrap()
}

#[test]
fn mc_bln_maps_a_removed_flatten_unit_to_its_pool_window() {
    let m = conv_model(Op::Pool2D {
        kind: crate::engine::kernels::PoolKind::Max,
        size: [2, 2],
        strides: [2, 2],
        padding: crate::engine::model::Padding::Valid,
    });
    let d = positive_data(16);
    let bln = decompose(&m, &d, &with(Technique::McBln), &mut |_| true).unwrap();
    // Pooled unit 0 is the window rows 0–1 × cols 0–1 = conv positions 0, 1, 4, 5.
    let removed: Vec<usize> = (0..16).filter(|u| !keep_of(&bln, 0, 1).contains(u)).collect();
    assert_eq!(removed, vec![0, 1, 4, 5]);
    assert_eq!(keep_of(&bln, 1, 1).len(), 16);
}

#[test]
fn mc_bi_backtracks_through_a_convolution_and_never_changes_scores() {
    // conv_b: 2×2, stride 2 (ReLU): its output 0 reads conv_a positions 0, 1, 4, 5 only.
    let conv_b = Op::Conv2D {
        kernel: ndarray::Array4::from_elem((2, 2, 1, 1), 0.25),
        bias: arr1(&[0.1]),
        strides: [2, 2],
        padding: crate::engine::model::Padding::Valid,
        activation: Activation::Relu,
    };
    let m = conv_model(conv_b);
    let d = positive_data(16);
    let bln = decompose(&m, &d, &with(Technique::McBln), &mut |_| true).unwrap();
    let bi = decompose(&m, &d, &with(Technique::McBi), &mut |_| true).unwrap();
    // The δ rule removes conv_b's position 0 (flat unit 0) in both; only MC-BI goes on to conv_a.
    assert_eq!((keep_of(&bln, 0, 2), keep_of(&bi, 0, 2)), (vec![1, 2, 3], vec![1, 2, 3]));
    assert_eq!(keep_of(&bln, 0, 1).len(), 16);
    assert_eq!(keep_of(&bi, 0, 1), vec![2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    let x = d.inputs(&m, &d.test, &(0..6).collect::<Vec<_>>());
    let score = |dec: &Decomposition| concerned_scores(&m, &dec.modules[0], &x, 6, &mut |_, _| true).unwrap();
    assert_eq!(score(&bln), score(&bi));
    assert!(bi.modules[0].jaccard_units() < bln.modules[0].jaccard_units());
}

proptest! {
    /// Dead-unit elimination (MC-BI beyond MC-BLN) only removes units that
    /// cannot reach the output: the scores stay bit-identical.
    #[test]
    fn mc_bi_scores_equal_mc_bln_on_random_cnns(seed in any::<u32>(), e in 1usize..3) {
        let mut s = seed as u64 | 1;
        let mut r = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s % 2001) as f32 / 1000.0 - 1.0 };
        let mut b = ModelBuilder::new("c", image(6, 6)).unwrap();
        let conv = |r: &mut dyn FnMut() -> f32, k: usize, cin: usize, cout: usize, stride: usize| Op::Conv2D {
            kernel: ndarray::Array4::from_shape_fn((k, k, cin, cout), |_| r()), bias: Array1::from_shape_fn(cout, |_| r() - 0.5),
            strides: [stride, stride], padding: crate::engine::model::Padding::Valid, activation: Activation::Relu };
        b.push("c1", conv(&mut r, 2, 1, 2, 1)).unwrap();
        b.push("c2", conv(&mut r, 2, 2, 2, 2)).unwrap();
        b.push("flat", Op::Flatten).unwrap();
        b.push("h", Op::Dense { kernel: Array2::from_shape_fn((b.shape(b.last()).iter().product(), 4), |_| r()), bias: Array1::from_shape_fn(4, |_| r()), activation: Activation::Relu }).unwrap();
        b.push("out", Op::Dense { kernel: Array2::from_shape_fn((4, 3), |_| 2.0 * r()), bias: Array1::zeros(3), activation: Activation::Softmax }).unwrap();
        let m = b.finish(vec!["a".into(), "b".into(), "c".into()]).unwrap();
        let x: Vec<f32> = (0..9 * 36).map(|_| r().abs()).collect();
        let d = dataset(x, (0..9).map(|i| i % 3).collect(), 36, 3);
        let settings = |technique| Settings { technique, samples_per_class: e, delta: 0.3, ..Settings::faithful() };
        let bln = decompose(&m, &d, &settings(Technique::McBln), &mut |_| true).unwrap();
        let bi = decompose(&m, &d, &settings(Technique::McBi), &mut |_| true).unwrap();
        for (a, b2) in bln.modules.iter().zip(&bi.modules) {
            for (node, mask) in &b2.masks.nodes {
                prop_assert!(mask.keep.iter().all(|u| a.masks.nodes[node].keep.contains(u)));
            }
            let sa = concerned_scores(&m, a, &d.train.x, 9, &mut |_, _| true).unwrap();
            let sb = concerned_scores(&m, b2, &d.train.x, 9, &mut |_, _| true).unwrap();
            prop_assert_eq!(sa, sb);
        }
    }
}

#[test]
fn reference_head_votes_and_merges_irrelevant_units_by_hand() {
    // x(2) → h(3, ReLU, identity-like) → head(3). For class 0, h units 1 and 2
    // have |w_c| < 0.05: CM-RIE merges them into one unit (mean column, summed row).
    let mut b = ModelBuilder::new("m", vectors(2)).unwrap();
    b.push(
        "h",
        Op::Dense { kernel: arr2(&[[1.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), bias: arr1(&[0.0, 0.0, -1.0]), activation: Activation::Relu },
    )
    .unwrap();
    b.push(
        "out",
        Op::Dense {
            kernel: arr2(&[[2.0, 0.0, 0.0], [0.01, 1.0, 0.0], [0.02, 0.0, 1.0]]),
            bias: arr1(&[0.0, 0.0, 0.0]),
            activation: Activation::Softmax,
        },
    )
    .unwrap();
    let m = b.finish(vec!["a".into(), "b".into(), "c".into()]).unwrap();
    let module = |head| Module {
        class: 0,
        head,
        masks: Masks::default(),
        concerned: 1,
        unconcerned: 1,
        kept_units: 0,
        total_units: 0,
        calibration: None,
    };
    let x = [1.0, 1.0];
    // h = (1, 2, 1). Merged unit: relu(mean pre-activation of units 1, 2) = relu((2 + 1) / 2) = 1.5,
    // its row = (0.03, 1, 1). Logits: z = (2·1 + 0.03·1.5, 1.5, 1.5) → z_c = 2.045, z_uc = 1.5.
    let (zc, zuc) = (2.045f32, 1.5f32);
    let pc = zc.exp() / (zc.exp() + zuc.exp() + 1.0);
    let got = concerned_scores(&m, &module(Head::Reference), &x, 1, &mut |_, _| true).unwrap()[0];
    assert!((got - (1.0 + pc)).abs() < 1e-5, "{got} vs voting 1 + {pc}");
    // Without the merge (2-unit head): z = (2.04, 2, 1), z_uc = 1.5.
    let two = concerned_scores(&m, &module(Head::Two), &x, 1, &mut |_, _| true).unwrap()[0];
    assert!((two - (2.04 - 1.5)).abs() < 1e-6, "{two}");
    // A module that does not vote scores its plain p_c (< 1): class 2 at x = 0 has all logits 0.
    let m2 = Module { class: 2, ..module(Head::Reference) };
    let p = concerned_scores(&m, &m2, &[0.0, 0.0], 1, &mut |_, _| true).unwrap()[0];
    assert!((p - 1.0 / 3.0).abs() < 1e-6, "{p}");
}

#[test]
fn residual_block_with_same_padding_masks_by_hand() {
    // x(3×3×1) → conv 2×2 "same" (ones, bias −2.5, ReLU) → add = ReLU(conv + x) → Flatten → head(2).
    // TF "same" with k = 2 pads one row/column at the bottom/right.
    let mut b = ModelBuilder::new("res", image(3, 3)).unwrap();
    let conv = b
        .push(
            "conv",
            Op::Conv2D {
                kernel: ndarray::Array4::ones((2, 2, 1, 1)),
                bias: arr1(&[-2.5]),
                strides: [1, 1],
                padding: crate::engine::model::Padding::Same,
                activation: Activation::Relu,
            },
        )
        .unwrap();
    b.add("add", Op::Add { activation: Activation::Relu }, &[conv, 0]).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    let mut head = Array2::from_elem((9, 2), 0.1);
    head.row_mut(0).assign(&arr1(&[-1.0, 1.0])); // against class 0, for class 1
    b.push("out", dense(head, 0.0, Activation::Softmax)).unwrap();
    let m = b.finish(vec!["tl".into(), "br".into()]).unwrap();
    // Class 0: ones in the top-left 2×2 block; class 1: bottom-right.
    let tl = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let br = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let d = dataset([tl, br].concat(), vec![0, 1], 9, 2);
    let s = |technique| Settings { technique, samples_per_class: 1, ..Settings::faithful() };
    // CI + TI (union): the conv fires only where its window holds 4 ones — (0,0) for tl, (1,1) for br;
    // the Add wherever the conv or x is positive.
    let mc = decompose(&m, &d, &s(Technique::Mc), &mut |_| true).unwrap();
    for c in 0..2 {
        assert_eq!(keep_of(&mc, c, conv), vec![0, 4]);
        assert_eq!(keep_of(&mc, c, conv + 1), vec![0, 1, 3, 4, 5, 7, 8]);
    }
    // MC-BLN: flat unit 0 goes for class 0's module → the Add's position 0 → the conv's
    // position 0 then feeds nothing kept and goes too. Class 1's module keeps everything.
    let bln = decompose(&m, &d, &s(Technique::McBln), &mut |_| true).unwrap();
    assert_eq!((keep_of(&bln, 0, conv), keep_of(&bln, 0, conv + 1)), (vec![4], vec![1, 3, 4, 5, 7, 8]));
    assert_eq!((keep_of(&bln, 1, conv), keep_of(&bln, 1, conv + 1)), (vec![0, 4], vec![0, 1, 3, 4, 5, 7, 8]));
}

proptest! {
    /// The unconcerned statistic from a sorted column equals the direct one
    /// over "every item but the concerned" (ties, zeros, outliers, MAD 0).
    #[test]
    fn complement_statistics_match_the_direct_ones(
        values in proptest::collection::vec(prop_oneof![Just(0.0f32), Just(0.5), Just(-0.5), -3.0f32..3.0, -1e4f32..1e4], 1..300),
        picks in proptest::collection::vec(any::<bool>(), 300),
    ) {
        use super::columns::Column;
        let concerned: Vec<usize> = (0..values.len()).filter(|&i| picks[i]).collect();
        let rest: Vec<f32> = (0..values.len()).filter(|&i| !picks[i]).map(|i| values[i]).collect();
        let want = robust_mean(rest.iter().map(|x| x.abs()).collect());
        let got = Column::magnitudes(values.iter().copied()).complement_robust_mean(&concerned);
        prop_assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "got {got}, want {want}");
        let active = |x: f32| x > 0.0;
        let want_rate = rest.iter().filter(|&&x| active(x)).count() as f32 / rest.len().max(1) as f32;
        let concerned_active = concerned.iter().filter(|&&i| active(values[i])).count();
        prop_assert_eq!(Column::rate(values.iter().copied(), active).complement_rate(concerned.len(), concerned_active), want_rate);
    }
}

#[test]
fn calibrating_every_module_costs_about_one_recorded_pass() {
    // K modules × K classes × per-class samples ≈ the recorded samples (at least 10 per class).
    let labels = |classes: usize, each: usize| (0..classes * each).map(|i| i % classes).collect::<Vec<_>>();
    let per_class = |rows: &[usize], l: &[usize], c: usize| rows.iter().filter(|&&i| l[i] == c).count();
    let l = labels(10, 100);
    let rows = calibration_rows(&l, 10);
    assert_eq!(rows.len(), 100);
    assert!((0..10).all(|c| per_class(&rows, &l, c) == 10));
    let l = labels(2, 100);
    assert_eq!(calibration_rows(&l, 2).len(), 100);
    let l = labels(10, 20);
    assert!((0..10).all(|c| per_class(&calibration_rows(&l, 10), &l, c) == 10));
}

/// A tiny residual block (shared by the relevance and kept-weights tests):
/// c1 (1×1, 2 → 2, linear) → BatchNorm(shift) → r1 (ReLU) → c2 (1×1, ReLU); sum = r1 + c2 →
/// r2 (ReLU) → global average → head (2 × 2). Kernels: 4 + 4 + 4 weights.
pub(super) fn tiny_residual(shift: [f32; 2]) -> (Model, [NodeId; 4]) {
    use crate::engine::kernels::PoolKind;
    use crate::engine::model::Padding;
    use ndarray::Array4;
    let conv = |activation| Op::Conv2D {
        kernel: Array4::ones((1, 1, 2, 2)),
        bias: Array1::zeros(2),
        strides: [1, 1],
        padding: Padding::Valid,
        activation,
    };
    let mut b = ModelBuilder::new("m", InputSpec::new(vec![3, 3, 2], InputKind::Image)).unwrap();
    let c1 = b.push("c1", conv(Activation::Linear)).unwrap();
    b.push("bn", Op::BatchNorm { scale: Array1::ones(2), shift: arr1(&shift) }).unwrap();
    let r1 = b.push("r1", Op::Activation(Activation::Relu)).unwrap();
    let c2 = b.push("c2", conv(Activation::Relu)).unwrap();
    b.add("sum", Op::Add { activation: Activation::Linear }, &[r1, c2]).unwrap();
    let r2 = b.push("r2", Op::Activation(Activation::Relu)).unwrap();
    b.push("gap", Op::GlobalPool(PoolKind::Avg)).unwrap();
    b.push("out", Op::Dense { kernel: Array2::ones((2, 2)), bias: Array1::zeros(2), activation: Activation::Softmax }).unwrap();
    (b.finish(vec!["a".into(), "b".into()]).unwrap(), [c1, r1, c2, r2])
}

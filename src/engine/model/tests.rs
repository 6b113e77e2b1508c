//! Hand-computed forward passes and activity records.

use ndarray::{Array4, arr1, arr2};

use super::*;
use crate::engine::kernels::PoolKind;

fn spec(shape: &[usize]) -> InputSpec {
    InputSpec::new(shape.to_vec(), InputKind::Vectors)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

fn no_progress() -> impl FnMut(usize, usize) -> bool {
    |_, _| true
}

/// 2 → 2 (relu) → 2 (softmax), weights chosen so activity is easy to read.
pub(crate) fn tiny_mlp() -> Model {
    let mut b = ModelBuilder::new("tiny", spec(&[2])).unwrap();
    b.push("h", Op::Dense { kernel: arr2(&[[1.0, -1.0], [1.0, 2.0]]), bias: arr1(&[0.0, -0.5]), activation: Activation::Relu }).unwrap();
    b.push("out", Op::Dense { kernel: arr2(&[[1.0, 0.0], [0.0, 1.0]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Softmax }).unwrap();
    b.finish(names(2)).unwrap()
}

#[test]
fn dense_forward_and_record_by_hand() {
    let m = tiny_mlp();
    // x1 = (1, 0): h = relu(1, -1.5) = (1, 0); x2 = (0, 1): h = relu(1, 1.5) = (1, 1.5)
    let out = forward(&m, &[1.0, 0.0, 0.0, 1.0], 2, None, true, &mut no_progress()).unwrap();
    assert_eq!(out.logits, vec![1.0, 0.0, 1.0, 1.5]);
    let e = (1.0f32).exp();
    assert!((out.probs[0] - e / (e + 1.0)).abs() < 1e-6);
    let rec = out.recording.unwrap();
    assert_eq!(rec.nodes, vec![1]);
    let bits = &rec.bits[0];
    assert!(bits.get(0, 0) && bits.get(0, 1)); // unit 0 active for both
    assert!(!bits.get(1, 0) && bits.get(1, 1)); // unit 1 only for x2
}

/// A 70-unit layer (a full mask word and a partial one) keeping every third unit: exactly the
/// removed units read 0, in every sample's row.
#[test]
fn a_mask_zeroes_exactly_its_removed_units_across_words() {
    let n = 70;
    let mut b = ModelBuilder::new("m", spec(&[n])).unwrap();
    b.push("h", Op::Dense { kernel: ndarray::Array2::eye(n), bias: ndarray::Array1::ones(n), activation: Activation::Relu }).unwrap();
    b.push("out", Op::Dense { kernel: ndarray::Array2::ones((n, 2)), bias: ndarray::Array1::zeros(2), activation: Activation::Linear })
        .unwrap();
    let m = b.finish(names(2)).unwrap();
    let mut masks = Masks::default();
    masks
        .nodes
        .insert(1, UnitMask { keep: crate::engine::bits::BitSet::from_indices(n, (0..n).step_by(3)), clip_negative: None, gates: None });
    // Unit u outputs x_u + 1; the head sums the kept ones.
    let x: Vec<f32> = (0..2 * n).map(|i| (i % n) as f32).collect();
    let out = forward(&m, &x, 2, Some(&masks), false, &mut no_progress()).unwrap();
    let kept: f32 = (0..n).step_by(3).map(|u| u as f32 + 1.0).sum();
    assert_eq!(out.logits, vec![kept; 4]);
}

#[test]
fn masks_zero_units_and_clip_negative_weights() {
    let m = tiny_mlp();
    let mut masks = Masks::default();
    masks.nodes.insert(1, UnitMask { keep: crate::engine::bits::BitSet::from_indices(2, [1]), clip_negative: None, gates: None });
    let out = forward(&m, &[0.0, 1.0], 1, Some(&masks), false, &mut no_progress()).unwrap();
    assert_eq!(out.logits, vec![0.0, 1.5]);
    // Clip unit 1's negative weight (-1 from x0): x = (1, 1) -> max(W,0) col 1 = (0, 2): 2 - 0.5 = 1.5
    masks.nodes.insert(
        1,
        UnitMask {
            keep: crate::engine::bits::BitSet::full(2),
            clip_negative: Some(crate::engine::bits::BitSet::from_indices(2, [1])),
            gates: None,
        },
    );
    let out = forward(&m, &[1.0, 1.0], 1, Some(&masks), false, &mut no_progress()).unwrap();
    assert_eq!(out.logits, vec![2.0, 1.5]);
}

#[test]
fn conv_pool_add_record_by_hand() {
    // 3×3×1 input, 2×2 conv (one filter of ones, same padding) -> 3×3×1,
    // residual Add with the input, 2×2 max pool (valid) -> 1×1, flatten, head.
    let mut b = ModelBuilder::new("c", InputSpec::new(vec![3, 3, 1], InputKind::Image)).unwrap();
    let x = b.last();
    let conv = b
        .push(
            "conv",
            Op::Conv2D {
                kernel: Array4::ones((2, 2, 1, 1)),
                bias: arr1(&[-2.5]),
                strides: [1, 1],
                padding: Padding::Same,
                activation: Activation::Relu,
            },
        )
        .unwrap();
    assert_eq!(b.shape(conv), &[3, 3, 1]);
    b.add("add", Op::Add { activation: Activation::Relu }, &[conv, x]).unwrap();
    b.push("pool", Op::Pool2D { kind: PoolKind::Max, size: [2, 2], strides: [2, 2], padding: Padding::Valid }).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    b.push("out", Op::Dense { kernel: arr2(&[[1.0, -1.0]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Softmax }).unwrap();
    let m = b.finish(names(2)).unwrap();
    assert_eq!(m.tracked(), vec![1, 2]);
    // Input: 1 at (0,0), (0,1), (1,0); zeros elsewhere. Same padding with a
    // 2×2 kernel pads bottom/right, so conv(y,x) sums x[y..y+2, x..x+2].
    let input = [1., 1., 0., 1., 0., 0., 0., 0., 0.];
    let out = forward(&m, &input, 1, None, true, &mut no_progress()).unwrap();
    let rec = out.recording.unwrap();
    // conv sums: (0,0)=3 -> 0.5 active; every other position ≤ 2 -> inactive.
    let conv_bits: Vec<bool> = (0..9).map(|u| rec.bits[0].get(u, 0)).collect();
    assert_eq!(conv_bits, [true, false, false, false, false, false, false, false, false]);
    // add = conv + x: (0,0)=1.5, (0,1)=1, (1,0)=1 active.
    let add_bits: Vec<bool> = (0..9).map(|u| rec.bits[1].get(u, 0)).collect();
    assert_eq!(add_bits, [true, true, false, true, false, false, false, false, false]);
    // pool over the top-left 2×2 of add -> 1.5; logits (1.5, -1.5).
    assert_eq!(out.logits, vec![1.5, -1.5]);
}

#[test]
fn construction_rejects_bad_models() {
    let mut b = ModelBuilder::new("bad", spec(&[3])).unwrap();
    let e = b.push("d", Op::Dense { kernel: arr2(&[[1.0], [2.0]]), bias: arr1(&[0.0]), activation: Activation::Relu }).unwrap_err();
    assert!(matches!(e, crate::Error::Shape { .. }), "{e}");
    let e =
        b.push("d", Op::Dense { kernel: arr2(&[[1.0], [f32::NAN], [0.0]]), bias: arr1(&[0.0]), activation: Activation::Relu }).unwrap_err();
    assert_eq!(e.to_string(), "layer 'd': kernel contains NaN or infinite values");
    let e = b.add("d", Op::Flatten, &[7]).unwrap_err();
    assert!(e.to_string().contains("acyclic"), "{e}");
    let e = b
        .push(
            "c",
            Op::Conv2D {
                kernel: Array4::ones((3, 3, 1, 1)),
                bias: arr1(&[0.0]),
                strides: [1, 1],
                padding: Padding::Valid,
                activation: Activation::Relu,
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("image input"), "{e}");
    assert!(ModelBuilder::new("huge", spec(&[1 << 20, 1 << 20])).is_err());
    assert!(Activation::parse("mish").unwrap_err().to_string().contains("supported: linear, relu"));
    // A model whose output is not a class vector.
    let mut b = ModelBuilder::new("x", spec(&[2])).unwrap();
    b.push(
        "h",
        Op::Dense { kernel: arr2(&[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), bias: arr1(&[0.0, 0.0, 0.0]), activation: Activation::Relu },
    )
    .unwrap();
    assert!(b.finish(names(2)).is_err());
}

#[test]
fn forward_rejects_wrong_input_size_and_cancels() {
    let m = tiny_mlp();
    assert!(matches!(forward(&m, &[1.0; 3], 2, None, false, &mut no_progress()), Err(crate::Error::Shape { .. })));
    let r = forward(&m, &[1.0; 4], 2, None, false, &mut |_, _| false);
    assert_eq!(r.unwrap_err(), crate::Error::Cancelled);
}

// ---- recurrent layers: against a naive f64 reading of Keras's formulas ----

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Deterministic weights in [-0.8, 0.8].
fn weights(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    Array2::from_shape_fn((rows, cols), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.6
    })
}

fn recurrent(cell: Cell, f: usize, u: usize, return_sequences: bool) -> Recurrent {
    let gu = cell.gates() * u;
    Recurrent {
        cell,
        units: u,
        kernel: weights(f, gu, 1),
        recurrent: weights(u, gu, 2),
        bias: weights(1, gu, 3).row(0).to_owned(),
        recurrent_bias: matches!(cell, Cell::Gru { reset_after: true }).then(|| weights(1, gu, 4).row(0).to_owned()),
        activation: Activation::Tanh,
        recurrent_activation: Activation::Sigmoid,
        return_sequences,
        reverse: false,
    }
}

/// The layer's states at every step for one sequence `x` (`T × F`), with
/// `removed(t, n)` pruning unit n's weights at step t as ALGORITHMS.md §6 says.
fn naive_states(r: &Recurrent, x: &[f32], steps: usize, removed: &dyn Fn(usize, usize) -> bool) -> Vec<Vec<f64>> {
    let (f, u) = (r.kernel.nrows(), r.units);
    let w = |i: usize, j: usize, t: usize| if removed(t, j % u) { 0.0 } else { r.kernel[[i, j]] as f64 };
    let uu = |i: usize, j: usize, t: usize| if removed(t, j % u) || removed(t, i) { 0.0 } else { r.recurrent[[i, j]] as f64 };
    let b = |j: usize, t: usize| if removed(t, j % u) { 0.0 } else { r.bias[j] as f64 };
    let rb = |j: usize, t: usize| if removed(t, j % u) { 0.0 } else { r.recurrent_bias.as_ref().map_or(0.0, |v| v[j] as f64) };
    let (mut h, mut c) = (vec![0f64; u], vec![0f64; u]);
    let mut out = vec![];
    for t in 0..steps {
        let xt = &x[t * f..(t + 1) * f];
        let xw = |j: usize| (0..f).map(|i| xt[i] as f64 * w(i, j, t)).sum::<f64>() + b(j, t);
        let hu = |hv: &[f64], j: usize| (0..u).map(|i| hv[i] * uu(i, j, t)).sum::<f64>();
        let mut nh = vec![0f64; u];
        for n in 0..u {
            nh[n] = match r.cell {
                Cell::SimpleRnn => (xw(n) + hu(&h, n)).tanh(),
                Cell::Lstm => {
                    let i = sig(xw(n) + hu(&h, n));
                    let fg = sig(xw(u + n) + hu(&h, u + n));
                    let g = (xw(2 * u + n) + hu(&h, 2 * u + n)).tanh();
                    let o = sig(xw(3 * u + n) + hu(&h, 3 * u + n));
                    c[n] = fg * c[n] + i * g;
                    o * c[n].tanh()
                }
                Cell::Gru { reset_after } => {
                    let z = sig(xw(n) + hu(&h, n) + rb(n, t));
                    let rr = |k: usize| sig(xw(u + k) + hu(&h, u + k) + rb(u + k, t));
                    let cand = if reset_after {
                        (xw(2 * u + n) + rr(n) * (hu(&h, 2 * u + n) + rb(2 * u + n, t))).tanh()
                    } else {
                        let rh: Vec<f64> = (0..u).map(|k| rr(k) * h[k]).collect();
                        (xw(2 * u + n) + hu(&rh, 2 * u + n)).tanh()
                    };
                    z * h[n] + (1.0 - z) * cand
                }
            };
        }
        h = nh;
        // What the next layer sees at step t: its input row for a removed unit is zero.
        out.push((0..u).map(|n| if removed(t, n) { 0.0 } else { h[n] }).collect());
    }
    out
}

const CELLS: [Cell; 4] = [Cell::SimpleRnn, Cell::Lstm, Cell::Gru { reset_after: true }, Cell::Gru { reset_after: false }];

fn seq_model(r: Recurrent, steps: usize, f: usize) -> Model {
    let mut b = ModelBuilder::new("seq", spec(&[steps, f])).unwrap();
    b.push("rnn", Op::Recurrent(Box::new(r))).unwrap();
    let width = *b.shape(b.last()).last().unwrap();
    b.push("out", Op::Dense { kernel: weights(width, 3, 9), bias: arr1(&[0.1, 0.0, -0.1]), activation: Activation::Softmax }).unwrap();
    b.finish(names(3)).unwrap()
}

#[test]
fn recurrent_cells_match_keras_formulas_and_record_every_step() {
    let (steps, f, u, n) = (5, 3, 4, 3);
    let x: Vec<f32> = weights(n * steps, f, 7).iter().copied().collect();
    for cell in CELLS {
        let m = seq_model(recurrent(cell, f, u, false), steps, f);
        assert_eq!(m.units(1), steps * u);
        let out = forward(&m, &x, n, None, true, &mut no_progress()).unwrap();
        let rec = out.recording.unwrap();
        assert_eq!(rec.nodes, vec![1]);
        let states = &rec.states[&1];
        for s in 0..n {
            let want = naive_states(m_rec(&m), &x[s * steps * f..][..steps * f], steps, &|_, _| false);
            for t in 0..steps {
                for k in 0..u {
                    let got = states[(s * steps + t) * u + k];
                    assert!((got as f64 - want[t][k]).abs() < 1e-5, "{cell:?} sample {s} step {t} unit {k}: {got} vs {}", want[t][k]);
                    assert_eq!(rec.bits[0].get(t * u + k, s), got > 0.0);
                }
            }
        }
    }
}

/// A reversed layer on a sequence is the forward layer on the time-reversed
/// sequence, each state written back at its own step; its last state is step 0's.
#[test]
fn a_reversed_layer_reads_the_sequence_backwards_and_keeps_states_at_their_steps() {
    let (steps, f, u, n) = (5, 3, 4, 2);
    let x: Vec<f32> = weights(n * steps, f, 9).iter().copied().collect();
    let flipped: Vec<f32> = (0..n)
        .flat_map(|s| (0..steps).rev().flat_map(move |t| (0..f).map(move |k| (s, t, k))))
        .map(|(s, t, k)| x[(s * steps + t) * f + k])
        .collect();
    for cell in CELLS {
        for sequences in [true, false] {
            let backward = seq_model(Recurrent { reverse: true, ..recurrent(cell, f, u, sequences) }, steps, f);
            let forward_on_flipped = seq_model(recurrent(cell, f, u, sequences), steps, f);
            let got = forward(&backward, &x, n, None, false, &mut no_progress()).unwrap().logits;
            let want = forward(&forward_on_flipped, &flipped, n, None, false, &mut no_progress()).unwrap().logits;
            let want: Vec<f32> = if sequences {
                (0..n)
                    .flat_map(|s| (0..steps).rev().flat_map(move |t| (0..3).map(move |k| (s * steps + t) * 3 + k)))
                    .map(|i| want[i])
                    .collect()
            } else {
                want
            };
            assert_eq!(got, want, "{cell:?}, return_sequences {sequences}");
            assert_ne!(got, forward(&forward_on_flipped, &x, n, None, false, &mut no_progress()).unwrap().logits, "{cell:?}");
        }
    }
}

fn m_rec(m: &Model) -> &Recurrent {
    match &m.nodes[1].op {
        Op::Recurrent(r) => r,
        _ => unreachable!(),
    }
}

#[test]
fn recurrent_masks_prune_like_zeroed_weights_per_step() {
    let (steps, f, u, n) = (4, 2, 5, 2);
    let x: Vec<f32> = weights(n * steps, f, 11).iter().copied().collect();
    // Unit 1 removed at every step (rolled), unit 3 only at steps 1 and 2 (unrolled).
    let removed = |t: usize, k: usize| k == 1 || (k == 3 && (1..3).contains(&t));
    for cell in CELLS {
        let r = recurrent(cell, f, u, true);
        let keep = crate::engine::bits::BitSet::from_indices(steps * u, (0..steps * u).filter(|&i| !removed(i / u, i % u)));
        let mut masks = Masks::default();
        masks.nodes.insert(1, UnitMask { keep, clip_negative: None, gates: None });
        let mut probe = ModelBuilder::new("probe", spec(&[steps, f])).unwrap();
        probe.push("rnn", Op::Recurrent(Box::new(r.clone()))).unwrap();
        probe.push("flat", Op::Flatten).unwrap();
        probe
            .push("id", Op::Dense { kernel: Array2::eye(steps * u), bias: Array1::zeros(steps * u), activation: Activation::Linear })
            .unwrap();
        let probe = probe.finish(names(steps * u)).unwrap();
        let out = forward(&probe, &x, n, Some(&masks), false, &mut no_progress()).unwrap();
        for s in 0..n {
            let want = naive_states(&r, &x[s * steps * f..][..steps * f], steps, &removed);
            for (t, want) in want.iter().enumerate() {
                for (k, want) in want.iter().enumerate() {
                    let got = out.logits[s * steps * u + t * u + k];
                    assert!((got as f64 - want).abs() < 1e-5, "{cell:?} s{s} t{t} u{k}: {got} vs {want}");
                }
            }
            // Rolled removal silences the unit's state itself (zero pre-activations from a zero start).
            assert!((0..steps).all(|t| out.logits[s * steps * u + t * u + 1] == 0.0));
        }
    }
}

#[test]
fn embedding_looks_up_rows_and_refuses_bad_ids() {
    let mut b = ModelBuilder::new("emb", InputSpec::new(vec![3], InputKind::Tokens)).unwrap();
    b.push("emb", Op::Embedding { table: arr2(&[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]) }).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    b.push("id", Op::Dense { kernel: Array2::eye(6), bias: Array1::zeros(6), activation: Activation::Linear }).unwrap();
    let m = b.finish(names(6)).unwrap();
    let out = forward(&m, &[2.0, 0.0, 1.0], 1, None, false, &mut no_progress()).unwrap();
    assert_eq!(out.logits, vec![4.0, 5.0, 0.0, 1.0, 2.0, 3.0]);
    for bad in [3.0, -1.0, 0.5, f32::NAN] {
        let e = forward(&m, &[0.0, bad, 1.0], 1, None, false, &mut no_progress()).unwrap_err();
        assert!(e.to_string().contains("token id"), "{e}");
    }
}

#[test]
fn recurrent_constructor_checks_shapes_and_values() {
    let mut r = recurrent(Cell::Lstm, 3, 4, false);
    let mk = |r: Recurrent| ModelBuilder::new("x", spec(&[5, 3])).unwrap().push("rnn", Op::Recurrent(Box::new(r)));
    assert!(mk(r.clone()).is_ok());
    r.kernel = weights(3, 15, 1);
    assert!(matches!(mk(r.clone()), Err(crate::Error::Shape { .. })));
    let mut g = recurrent(Cell::Gru { reset_after: true }, 3, 4, false);
    g.recurrent_bias = None;
    assert!(mk(g).is_err());
    let mut n = recurrent(Cell::SimpleRnn, 3, 4, false);
    n.recurrent[[0, 0]] = f32::NAN;
    assert!(matches!(mk(n), Err(crate::Error::NonFinite { .. })));
    let mut s = recurrent(Cell::SimpleRnn, 3, 4, false);
    s.activation = Activation::Softmax;
    assert!(matches!(mk(s), Err(crate::Error::Unsupported { .. })));
    // A vector input is not a sequence.
    let e = ModelBuilder::new("x", spec(&[3])).unwrap().push("rnn", Op::Recurrent(Box::new(recurrent(Cell::Lstm, 3, 4, false))));
    assert!(matches!(e, Err(crate::Error::Shape { .. })));
}

#[test]
fn clipping_a_per_step_dense_uses_each_step_mask() {
    // Dense(2 → 2) over 3 steps; clip unit 1 at step 2 only (flat unit 2·2 + 1 = 5).
    let mut b = ModelBuilder::new("td", spec(&[3, 2])).unwrap();
    b.push("h", Op::Dense { kernel: arr2(&[[1.0, -1.0], [1.0, 1.0]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Relu }).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    b.push("out", Op::Dense { kernel: Array2::eye(6), bias: Array1::zeros(6), activation: Activation::Linear }).unwrap();
    let m = b.finish(names(6)).unwrap();
    let mut masks = Masks::default();
    masks.nodes.insert(
        1,
        UnitMask {
            keep: crate::engine::bits::BitSet::full(6),
            clip_negative: Some(crate::engine::bits::BitSet::from_indices(6, [5])),
            gates: None,
        },
    );
    let x = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
    let out = forward(&m, &x, 1, Some(&masks), false, &mut no_progress()).unwrap();
    // Unit 1 = relu(-x0 + x1) = 1 unclipped; clipped at step 2: relu(0·x0 + x1) = 2.
    assert_eq!(out.logits, vec![3.0, 1.0, 3.0, 1.0, 3.0, 2.0]);
}

/// Encoder SimpleRNN(1) → RepeatVector(3) → decoder SimpleRNN(1, every step)
/// → Dense(2, softmax) per step, by hand: e = tanh(x₂ + ½·tanh(x₁)), then
/// d₁ = tanh(e), dₜ = tanh(e − dₜ₋₁), p(class 0) = σ(2dₜ).
#[test]
fn repeat_vector_encoder_decoder_by_hand() {
    let cell = |recurrent: f32, return_sequences: bool| {
        Op::Recurrent(Box::new(Recurrent {
            cell: Cell::SimpleRnn,
            units: 1,
            kernel: arr2(&[[1.0]]),
            recurrent: arr2(&[[recurrent]]),
            bias: arr1(&[0.0]),
            recurrent_bias: None,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            return_sequences,
            reverse: false,
        }))
    };
    let mut b = ModelBuilder::new("enc-dec", spec(&[2, 1])).unwrap();
    b.push("encoder", cell(0.5, false)).unwrap();
    assert!(b.push("bad", Op::RepeatVector { times: 0 }).is_err());
    b.push("repeat", Op::RepeatVector { times: 3 }).unwrap();
    assert_eq!(b.shape(b.last()), &[3, 1]);
    assert!(b.push("bad", Op::RepeatVector { times: 2 }).is_err(), "a sequence is not a vector");
    b.push("decoder", cell(-1.0, true)).unwrap();
    b.push("out", Op::Dense { kernel: arr2(&[[1.0, -1.0]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Softmax }).unwrap();
    let m = b.finish(names(2)).unwrap();
    assert_eq!((m.out_steps(), m.steps(1), m.steps(3)), (3, 2, 3));

    let x = [1.0f32, 2.0, -0.5, 0.25];
    let out = forward(&m, &x, 2, None, true, &mut no_progress()).unwrap();
    for s in 0..2 {
        let (x1, x2) = (x[2 * s] as f64, x[2 * s + 1] as f64);
        let e = (x2 + 0.5 * x1.tanh()).tanh();
        let mut d = 0.0f64;
        for t in 0..3 {
            d = (e - d).tanh();
            let p0 = sig(2.0 * d);
            let got = &out.probs[(s * 3 + t) * 2..][..2];
            assert!((got[0] as f64 - p0).abs() < 1e-6 && (got[1] as f64 - (1.0 - p0)).abs() < 1e-6, "sample {s} step {t}: {got:?} vs {p0}");
        }
    }
    // Both recurrent layers are tracked, per step; the RepeatVector is not.
    let rec = out.recording.unwrap();
    assert_eq!(rec.nodes, vec![1, 3]);
    assert_eq!((rec.bits[0].rows(), rec.bits[1].rows()), (2, 3));
    // Removing the encoder's unit at its last step: the decoder reads 0, so every step is 50/50.
    let mut masks = Masks::default();
    masks.nodes.insert(1, UnitMask { keep: crate::engine::bits::BitSet::from_indices(2, [0]), clip_negative: None, gates: None });
    let cut = forward(&m, &x, 2, Some(&masks), false, &mut no_progress()).unwrap();
    assert!(cut.probs.iter().all(|p| (p - 0.5).abs() < 1e-6), "{:?}", cut.probs);
}

/// `r` with gate column `col` (Keras blocks) of `W`, `U`, `b` and a GRU's
/// recurrent bias zeroed — the explicit pruning a gate mask stands for.
fn zero_gate_columns(r: &Recurrent, cols: &[usize]) -> Recurrent {
    let mut z = r.clone();
    for &c in cols {
        z.kernel.column_mut(c).fill(0.0);
        z.recurrent.column_mut(c).fill(0.0);
        z.bias[c] = 0.0;
        if let Some(rb) = z.recurrent_bias.as_mut() {
            rb[c] = 0.0;
        }
    }
    z
}

proptest::proptest! {
    /// A rolled gate mask computes exactly what the explicitly pruned weights
    /// compute, for every cell (both GRU variants), at every step.
    #[test]
    fn gate_masks_equal_explicitly_zeroed_gate_weights(cell in proptest::sample::select(CELLS.to_vec()), seed in 0u64..1000, removed in proptest::collection::vec(proptest::bool::weighted(0.3), 16)) {
        let (steps, f, u, n) = (3, 2, 4, 3);
        let x: Vec<f32> = weights(n * steps, f, seed + 20).iter().copied().collect();
        let mut r = recurrent(cell, f, u, true);
        r.kernel = weights(f, cell.gates() * u, seed + 1);
        let gu = cell.gates() * u;
        let cols: Vec<usize> = (0..gu).filter(|&c| removed[c]).collect();
        let keep = crate::engine::bits::BitSet::from_indices(steps * gu, (0..steps * gu).filter(|&i| !removed[i % gu]));
        let mut masks = Masks::default();
        masks.nodes.insert(1, UnitMask { keep: crate::engine::bits::BitSet::full(steps * u), clip_negative: None, gates: Some(keep) });
        let masked = forward(&seq_model(r.clone(), steps, f), &x, n, Some(&masks), false, &mut no_progress()).unwrap();
        let pruned = forward(&seq_model(zero_gate_columns(&r, &cols), steps, f), &x, n, None, false, &mut no_progress()).unwrap();
        for (a, b) in masked.logits.iter().zip(&pruned.logits) {
            proptest::prop_assert!((a - b).abs() < 1e-5, "{cell:?} removed {cols:?}: {a} vs {b}");
        }
    }
}

/// The gate record holds each gate's activation: they rebuild the states
/// (LSTM `c = f·c + i·g`, `h = o·tanh(c)`; GRU `h = z·h + (1 − z)·h̃`;
/// SimpleRNN's one block is its state).
#[test]
fn recorded_gates_rebuild_the_states() {
    let (steps, f, u, n) = (4, 3, 3, 2);
    let x: Vec<f32> = weights(n * steps, f, 5).iter().copied().collect();
    for cell in CELLS {
        let m = seq_model(recurrent(cell, f, u, true), steps, f);
        let out = forward_with(&m, &x, n, None, Record::Gates, None, &mut no_progress()).unwrap();
        let rec = out.recording.unwrap();
        let (h, g) = (&rec.states[&1], &rec.gates[&1]);
        let gu = cell.gates() * u;
        assert_eq!(g.len(), n * steps * gu);
        for s in 0..n {
            let mut c = vec![0f32; u];
            for t in 0..steps {
                let gt = &g[(s * steps + t) * gu..][..gu];
                let prev = |k: usize| if t == 0 { 0.0 } else { h[(s * steps + t - 1) * u + k] };
                for k in 0..u {
                    let want = match cell {
                        Cell::SimpleRnn => gt[k],
                        Cell::Lstm => {
                            c[k] = gt[u + k] * c[k] + gt[k] * gt[2 * u + k];
                            gt[3 * u + k] * c[k].tanh()
                        }
                        Cell::Gru { .. } => gt[k] * prev(k) + (1.0 - gt[k]) * gt[2 * u + k],
                    };
                    let got = h[(s * steps + t) * u + k];
                    assert!((got - want).abs() < 1e-5, "{cell:?} s{s} t{t} u{k}: {got} vs {want}");
                }
            }
        }
        // Without asking, no gates are kept.
        assert!(forward(&m, &x, n, None, true, &mut no_progress()).unwrap().recording.unwrap().gates.is_empty());
    }
}

/// ZeroPad2D and Concat by hand: values, shapes, and where each output unit comes from.
#[test]
fn zero_padding_and_concatenation_by_hand() {
    // [2, 2, 1] → pads [top 1, left 0, bottom 0, right 1] → [3, 3, 1].
    let mut b = ModelBuilder::new("pad", InputSpec::new(vec![2, 2, 1], InputKind::Image)).unwrap();
    let p = b.push("pad", Op::ZeroPad2D { pads: [1, 0, 0, 1] }).unwrap();
    // Two 1×1 convs (ReLU) of 1 and 2 channels, side by side: [3, 3, 3].
    let conv = |k: &[f32], c: usize| Op::Conv2D {
        kernel: Array4::from_shape_vec((1, 1, 1, c), k.to_vec()).unwrap(),
        bias: ndarray::Array1::zeros(c),
        strides: [1, 1],
        padding: Padding::Valid,
        activation: Activation::Relu,
    };
    let a = b.add("a", conv(&[1.0], 1), &[p]).unwrap();
    let c = b.add("b", conv(&[2.0, -1.0], 2), &[p]).unwrap();
    let cat = b.add("cat", Op::Concat, &[a, c]).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    b.push("head", Op::Dense { kernel: ndarray::Array2::ones((27, 2)), bias: arr1(&[0.0, 0.0]), activation: Activation::Linear }).unwrap();
    let m = b.finish(names(2)).unwrap();
    assert_eq!((m.nodes[p].shape.clone(), m.nodes[cat].shape.clone()), (vec![3, 3, 1], vec![3, 3, 3]));
    let x = [1.0, 2.0, 3.0, 4.0];
    let out = forward(&m, &x, 1, None, false, &mut no_progress()).unwrap();
    // Padded: row 0 zeros; rows 1–2 = [1 2 0], [3 4 0]. Channels: a = v, b = (2v, relu(−v) = 0).
    let padded = [0., 0., 0., 1., 2., 0., 3., 4., 0.];
    let want: f32 = padded.iter().map(|v| v + 2.0 * v).sum();
    assert_eq!(out.logits, vec![want, want]);
    assert_eq!((m.route(p, 0), m.route(p, 3), m.route(p, 5), m.route(p, 7)), (None, Some((0, 0)), None, Some((0, 3))));
    // Position 4 (row 1, col 1) of the concatenation: a's unit 4, then b's units 8 and 9.
    assert_eq!((m.route(cat, 12), m.route(cat, 13), m.route(cat, 14)), (Some((0, 4)), Some((1, 8)), Some((1, 9))));
    // Inputs that differ in more than the last axis are refused.
    let mut b = ModelBuilder::new("bad", InputSpec::new(vec![4], InputKind::Vectors)).unwrap();
    let d1 =
        b.push("d1", Op::Dense { kernel: ndarray::Array2::ones((4, 2)), bias: arr1(&[0.0, 0.0]), activation: Activation::Relu }).unwrap();
    let r = b.push("rep", Op::RepeatVector { times: 2 }).unwrap();
    assert!(b.add("cat", Op::Concat, &[d1, r]).is_err());
    assert!(b.add("cat1", Op::Concat, &[d1]).is_err());
}

/// PReLU by hand: a slope per channel, or one per value; its units are tracked like ReLU's.
#[test]
fn prelu_by_hand() {
    let mut b = ModelBuilder::new("prelu", spec(&[2, 2])).unwrap();
    let per_channel = b.push("pc", Op::PRelu { alpha: arr1(&[0.5, 0.25]) }).unwrap();
    let per_value = b.push("pv", Op::PRelu { alpha: arr1(&[1.0, 2.0, 3.0, 4.0]) }).unwrap();
    b.push("flat", Op::Flatten).unwrap();
    b.push("head", Op::Dense { kernel: ndarray::Array2::eye(4), bias: arr1(&[0.0; 4]), activation: Activation::Linear }).unwrap();
    let m = b.finish(names(4)).unwrap();
    let out = forward(&m, &[-2.0, -4.0, 3.0, -1.0], 1, None, true, &mut no_progress()).unwrap();
    // pc: (-1, -1, 3, -0.25); pv: (-1·1, -1·2, 3, -0.25·4).
    assert_eq!(out.logits, vec![-1.0, -2.0, 3.0, -1.0]);
    assert_eq!(m.tracked(), vec![per_channel, per_value]);
    let bad = ModelBuilder::new("bad", spec(&[2, 2])).unwrap().push("p", Op::PRelu { alpha: arr1(&[1.0, 2.0, 3.0]) });
    assert!(bad.is_err());
}

//! Hand-computed forward passes and activity records.

use ndarray::{arr1, arr2, Array4};

use super::*;
use crate::kernels::PoolKind;

fn spec(shape: &[usize]) -> InputSpec {
    InputSpec { shape: shape.to_vec(), kind: InputKind::Vectors, scale: 1.0, offset: 0.0 }
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

#[test]
fn masks_zero_units_and_clip_negative_weights() {
    let m = tiny_mlp();
    let mut masks = Masks::default();
    masks.nodes.insert(1, UnitMask { keep: crate::bits::BitSet::from_indices(2, [1]), clip_negative: None });
    let out = forward(&m, &[0.0, 1.0], 1, Some(&masks), false, &mut no_progress()).unwrap();
    assert_eq!(out.logits, vec![0.0, 1.5]);
    // Clip unit 1's negative weight (-1 from x0): x = (1, 1) -> max(W,0) col 1 = (0, 2): 2 - 0.5 = 1.5
    masks.nodes.insert(1, UnitMask { keep: crate::bits::BitSet::full(2), clip_negative: Some(crate::bits::BitSet::from_indices(2, [1])) });
    let out = forward(&m, &[1.0, 1.0], 1, Some(&masks), false, &mut no_progress()).unwrap();
    assert_eq!(out.logits, vec![2.0, 1.5]);
}

#[test]
fn conv_pool_add_record_by_hand() {
    // 3×3×1 input, 2×2 conv (one filter of ones, same padding) -> 3×3×1,
    // residual Add with the input, 2×2 max pool (valid) -> 1×1, flatten, head.
    let mut b = ModelBuilder::new("c", InputSpec { shape: vec![3, 3, 1], kind: InputKind::Image, scale: 1.0, offset: 0.0 }).unwrap();
    let x = b.last();
    let conv = b
        .push("conv", Op::Conv2D { kernel: Array4::ones((2, 2, 1, 1)), bias: arr1(&[-2.5]), strides: [1, 1], padding: Padding::Same, activation: Activation::Relu })
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
    let e = b.push("d", Op::Dense { kernel: arr2(&[[1.0], [f32::NAN], [0.0]]), bias: arr1(&[0.0]), activation: Activation::Relu }).unwrap_err();
    assert_eq!(e.to_string(), "layer 'd': kernel contains NaN or infinite values");
    let e = b.add("d", Op::Flatten, &[7]).unwrap_err();
    assert!(e.to_string().contains("acyclic"), "{e}");
    let e = b.push("c", Op::Conv2D { kernel: Array4::ones((3, 3, 1, 1)), bias: arr1(&[0.0]), strides: [1, 1], padding: Padding::Valid, activation: Activation::Relu }).unwrap_err();
    assert!(e.to_string().contains("image input"), "{e}");
    assert!(ModelBuilder::new("huge", spec(&[1 << 20, 1 << 20])).is_err());
    assert!(Activation::parse("gelu").unwrap_err().to_string().contains("supported: linear, relu"));
    // A model whose output is not a class vector.
    let mut b = ModelBuilder::new("x", spec(&[2])).unwrap();
    b.push("h", Op::Dense { kernel: arr2(&[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), bias: arr1(&[0.0, 0.0, 0.0]), activation: Activation::Relu }).unwrap();
    assert!(b.finish(names(2)).is_err());
}

#[test]
fn forward_rejects_wrong_input_size_and_cancels() {
    let m = tiny_mlp();
    assert!(matches!(forward(&m, &[1.0; 3], 2, None, false, &mut no_progress()), Err(crate::Error::Shape { .. })));
    let r = forward(&m, &[1.0; 4], 2, None, false, &mut |_, _| false);
    assert_eq!(r.unwrap_err(), crate::Error::Cancelled);
}

//! The native format's round trips and refusals.

use super::*;

fn small(shape: &[usize], seed: &mut f32) -> ndarray::ArrayD<f32> {
    ndarray::ArrayD::from_shape_fn(shape, |_| {
        *seed = (*seed * 7.31 + 0.17).fract();
        *seed - 0.5
    })
}

/// Two small models that hold every op kind between them.
fn every_kind() -> Vec<Model> {
    let s = &mut 0.3;
    let m2 = |r: usize, c: usize, s: &mut f32| small(&[r, c], s).into_dimensionality().unwrap();
    let v = |n: usize, s: &mut f32| small(&[n], s).into_dimensionality().unwrap();
    let image = InputSpec { scale: Some(1.0 / 255.0), ..InputSpec::new(vec![6, 6, 2], crate::engine::model::InputKind::Image) };
    let mut b = ModelBuilder::new("image", image).unwrap();
    let conv = Op::Conv2D {
        kernel: small(&[3, 3, 2, 4], s).into_dimensionality().unwrap(),
        bias: v(4, s),
        strides: [1, 1],
        padding: Padding::Same,
        activation: Activation::Linear,
    };
    let c = b.push("conv", conv).unwrap();
    b.push("bn", Op::BatchNorm { scale: v(4, s), shift: v(4, s) }).unwrap();
    let a = b.push("relu", Op::Activation(Activation::Relu)).unwrap();
    b.add("add", Op::Add { activation: Activation::Relu }, &[c, a]).unwrap();
    b.push("max", Op::Pool2D { kind: PoolKind::Max, size: [2, 2], strides: [2, 2], padding: Padding::Valid }).unwrap();
    b.push("avg", Op::Pool2D { kind: PoolKind::Avg, size: [2, 2], strides: [1, 1], padding: Padding::Same }).unwrap();
    let pooled = b.last();
    b.push("gap", Op::GlobalPool(PoolKind::Avg)).unwrap();
    b.add("gmp", Op::GlobalPool(PoolKind::Max), &[pooled]).unwrap();
    let zp = b.add("zp", Op::ZeroPad2D { pads: [1, 0, 2, 3] }, &[pooled]).unwrap();
    b.add("cat", Op::Concat, &[zp, zp]).unwrap();
    b.add("prelu", Op::PRelu { alpha: v(4, s) }, &[pooled]).unwrap();
    let dw = Op::DepthwiseConv2D {
        kernel: small(&[2, 2, 4, 2], s).into_dimensionality().unwrap(),
        bias: v(8, s),
        strides: [1, 2],
        padding: Padding::Valid,
        activation: Activation::Relu,
    };
    b.add("depthwise", dw, &[pooled]).unwrap();
    let as_rows = b.add("rows", Op::Reshape { shape: vec![1, 36] }, &[pooled]).unwrap();
    b.add("flat", Op::Flatten, &[as_rows]).unwrap();
    for (k, a) in [Activation::LeakyRelu(0.1), Activation::Elu(0.7), Activation::Gelu, Activation::GeluTanh, Activation::Swish]
        .into_iter()
        .chain([Activation::Softplus, Activation::HardSigmoid(0.2)])
        .enumerate()
    {
        b.push(format!("act{k}"), Op::Activation(a)).unwrap();
    }
    b.push("drop", Op::Dropout).unwrap();
    b.push("head", Op::Dense { kernel: m2(36, 3, s), bias: v(3, s), activation: Activation::Softmax }).unwrap();
    let image = b.finish(vec!["a".into(), "b".into(), "c".into()]).unwrap();

    let tokens = InputSpec::new(vec![5], crate::engine::model::InputKind::Tokens);
    let mut b = ModelBuilder::new("tokens", tokens).unwrap();
    b.push("emb", Op::Embedding { table: m2(7, 3, s) }).unwrap();
    let rec = |cell: Cell, f: usize, u: usize, seq: bool, s: &mut f32| {
        let g = cell.gates() * u;
        Op::Recurrent(Box::new(Recurrent {
            cell,
            units: u,
            kernel: m2(f, g, s),
            recurrent: m2(u, g, s),
            bias: v(g, s),
            recurrent_bias: matches!(cell, Cell::Gru { reset_after: true }).then(|| v(g, s)),
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: seq,
            // One layer runs backwards (a Bidirectional's second half; version 7).
            reverse: matches!(cell, Cell::Gru { reset_after: true }),
        }))
    };
    b.push("rnn", rec(Cell::SimpleRnn, 3, 4, true, s)).unwrap();
    b.push("lstm", rec(Cell::Lstm, 4, 3, true, s)).unwrap();
    b.push("gru", rec(Cell::Gru { reset_after: false }, 3, 2, true, s)).unwrap();
    b.push("gru2", rec(Cell::Gru { reset_after: true }, 2, 3, false, s)).unwrap();
    // An encoder–decoder tail: the last state repeated for a per-step decoder.
    b.push("repeat", Op::RepeatVector { times: 4 }).unwrap();
    b.push("decoder", rec(Cell::Lstm, 3, 2, true, s)).unwrap();
    b.push("head", Op::Dense { kernel: m2(2, 2, s), bias: v(2, s), activation: Activation::Linear }).unwrap();
    b.declare_params(1, 99);
    vec![image, b.finish(vec!["x".into(), "y".into()]).unwrap()]
}

#[test]
fn every_op_kind_round_trips() {
    let mut kinds = vec![];
    for m in every_kind() {
        let back = load_native(&save_model(&m).unwrap(), "").unwrap();
        assert_eq!(back, m);
        kinds.extend(m.nodes.iter().map(|n| n.op.kind()));
    }
    kinds.sort();
    kinds.dedup();
    let mut all = KINDS.to_vec();
    all.sort();
    assert_eq!(kinds, all);
}

/// Settings and the input scale are f32s in JSON: they must come back bit for bit.
#[test]
fn f32_survives_json() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..200_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let x = f32::from_bits(seed as u32);
        if x.is_finite() {
            let back: f32 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x:e}");
        }
    }
    for x in [1.0 / 255.0, 0.05f32, 0.9, f32::MIN_POSITIVE, f32::MAX, -0.0] {
        let back: f32 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
        assert_eq!(back.to_bits(), x.to_bits(), "{x:e}");
    }
}

//! Which layers a forward pass runs inside the convolution before them: an
//! inference BatchNorm, then an Add, then a ReLU (the residual block's
//! conv → BN → Add → ReLU), as the convolution's [`ConvEpilogue`]. Each of
//! those layers was a pass over the batch's activations, reading and writing
//! memory the convolution had just written (with the copy an Activation node
//! makes, an eighth of the residual nets' time). The epilogue does each
//! layer's operations in the layer's order, so the results are the same bits.
//!
//! [`ConvEpilogue`]: crate::engine::kernels::ConvEpilogue

use super::forward::Masks;
use super::{Activation, Model, NodeId, Op};

/// A convolution and the layers after it that run in its output write; the
/// chain runs in the place of its last node, whose output it writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Chain {
    pub conv: NodeId,
    /// The BatchNorm node whose affine follows.
    pub affine: Option<NodeId>,
    /// The other input of the Add that follows.
    pub residual: Option<NodeId>,
    /// The last node's ReLU is applied in the write.
    pub relu: bool,
}

/// Per node: the chain that ends at it, and whether a later node's chain
/// computes it (its own turn is skipped and its output never written).
#[derive(Debug, Default)]
pub(super) struct Fusion {
    pub chains: Vec<Option<Chain>>,
    pub absorbed: Vec<bool>,
}

impl Fusion {
    /// Whether node `id`'s activation (a ReLU) is applied by its chain.
    pub fn relu_done(&self, id: NodeId) -> bool {
        self.chains[id].is_some_and(|c| c.relu)
    }
}

/// The chains of `model` under `masks`. A node inside a chain (not its last)
/// must have one reader, no mask, no activity record, and not be the head or
/// the last node; no node of a chain is the head (its logits are the head's
/// pre-activations).
pub(super) fn plan(model: &Model, masks: Option<&Masks>) -> Fusion {
    let n = model.nodes.len();
    let mut readers = vec![vec![]; n];
    for (id, node) in model.nodes.iter().enumerate() {
        node.inputs.iter().for_each(|&i| readers[i].push(id));
    }
    let tracked = model.tracked();
    let inner = |id: NodeId| {
        readers[id].len() == 1
            && id != model.head
            && id + 1 != n
            && !tracked.contains(&id)
            && !masks.is_some_and(|m| m.nodes.contains_key(&id))
    };
    let mut f = Fusion { chains: vec![None; n], absorbed: vec![false; n] };
    // In order, so the first convolution into an Add takes it (a projection shortcut's, say).
    for conv in 0..n {
        let Op::Conv2D { bias, activation, .. } = &model.nodes[conv].op else { continue };
        if conv == model.head || (*activation != Activation::Linear && *activation != Activation::Relu) {
            continue;
        }
        let (len, cout) = (model.nodes[conv].len(), bias.len());
        let mut chain = Chain { conv, affine: None, residual: None, relu: *activation == Activation::Relu };
        // The chain's nodes so far; the last one is where it runs.
        let mut members = vec![conv];
        let mut last = conv;
        // The next node, when `last` can be absorbed and its one reader is not the head.
        // A node belongs to one chain at most (two branches of a block meet in one Add).
        let next = |last: NodeId, f: &Fusion| {
            let r = readers[last].first().copied()?;
            (inner(last) && r != model.head && !f.absorbed[r] && f.chains[r].is_none()).then_some(r)
        };
        if !chain.relu {
            if let Some(bn) = next(last, &f)
                && matches!(&model.nodes[bn].op, Op::BatchNorm { scale, .. } if scale.len() == cout)
            {
                chain.affine = Some(bn);
                last = bn;
                members.push(bn);
            }
            if let Some(add) = next(last, &f)
                && let Op::Add { activation } = model.nodes[add].op
                && let [a, b] = model.nodes[add].inputs[..]
                && a != b
                && matches!(activation, Activation::Linear | Activation::Relu)
            {
                let other = if a == last { b } else { a };
                if model.nodes[other].len() == len {
                    chain.residual = Some(other);
                    chain.relu = activation == Activation::Relu;
                    last = add;
                    members.push(add);
                }
            }
            if !chain.relu
                && let Some(act) = next(last, &f)
                && model.nodes[act].op == Op::Activation(Activation::Relu)
            {
                chain.relu = true;
                last = act;
                members.push(act);
            }
        }
        if last == conv && !chain.relu {
            continue;
        }
        members.pop();
        members.into_iter().for_each(|id| f.absorbed[id] = true);
        f.chains[last] = Some(chain);
    }
    f
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array4};

    use super::*;
    use crate::engine::bits::BitSet;
    use crate::engine::kernels::{PoolKind, values};
    use crate::engine::model::{InputKind, InputSpec, ModelBuilder, Padding, UnitMask, forward};

    /// A residual block: conv → BN → ReLU → conv → BN → Add(projection) → ReLU → pool → head.
    fn block(c: usize) -> Model {
        let conv = |k: usize, cin: usize, seed: u64| Op::Conv2D {
            kernel: Array4::from_shape_vec((k, k, cin, c), values(seed, k * k * cin * c)).unwrap(),
            bias: Array1::from(values(seed + 1, c)),
            strides: [1, 1],
            padding: Padding::Same,
            activation: Activation::Linear,
        };
        let bn = |seed: u64| Op::BatchNorm { scale: Array1::from(values(seed, c)), shift: Array1::from(values(seed + 1, c)) };
        let mut b = ModelBuilder::new("block", InputSpec::new(vec![5, 7, 3], InputKind::Image)).unwrap();
        let x = b.last();
        b.push("conv1", conv(3, 3, 1)).unwrap();
        b.push("bn1", bn(3)).unwrap();
        b.push("relu1", Op::Activation(Activation::Relu)).unwrap();
        b.push("conv2", conv(3, c, 5)).unwrap();
        let bn2 = b.push("bn2", bn(7)).unwrap();
        let proj = b.add("proj", conv(1, 3, 9), &[x]).unwrap();
        b.add("add", Op::Add { activation: Activation::Linear }, &[bn2, proj]).unwrap();
        b.push("relu", Op::Activation(Activation::Relu)).unwrap();
        b.push("gap", Op::GlobalPool(PoolKind::Avg)).unwrap();
        let head = Op::Dense {
            kernel: Array2::from_shape_vec((c, 2), values(11, 2 * c)).unwrap(),
            bias: Array1::zeros(2),
            activation: Activation::Softmax,
        };
        b.push("head", head).unwrap();
        b.finish(vec!["a".into(), "b".into()]).unwrap()
    }

    #[test]
    fn residual_block_plan() {
        let f = plan(&block(8), None);
        assert_eq!(f.chains[3], Some(Chain { conv: 1, affine: Some(2), residual: None, relu: true }));
        assert_eq!(f.chains[8], Some(Chain { conv: 4, affine: Some(5), residual: Some(6), relu: true }));
        let absorbed: Vec<_> = (0..f.absorbed.len()).filter(|&i| f.absorbed[i]).collect();
        assert_eq!(absorbed, [1, 2, 4, 5, 7]);
        assert!(f.chains.iter().enumerate().all(|(i, c)| c.is_none() || i == 3 || i == 8));
    }

    /// Fused and unfused (every chain node masked, keeping every unit) give the same bits:
    /// 8 and 16 channels take the x86 kernel's fused store, 5 the portable path.
    #[test]
    fn fused_equals_unfused() {
        for c in [5, 8, 16] {
            let m = block(c);
            let keep_all = |id: NodeId| UnitMask { keep: BitSet::full(m.nodes[id].len()), clip_negative: None, gates: None };
            let masks = Masks { nodes: [1, 2, 4, 5, 6, 7].into_iter().map(|id| (id, keep_all(id))).collect() };
            assert!(plan(&m, Some(&masks)).chains.iter().all(Option::is_none));
            let n = 3;
            let x = values(c as u64, n * m.input_len());
            let fused = forward(&m, &x, n, None, true, &mut |_, _| true).unwrap();
            let plain = forward(&m, &x, n, Some(&masks), true, &mut |_, _| true).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused.logits), bits(&plain.logits), "{c} channels");
            assert_eq!(fused.recording, plain.recording, "{c} channels");
        }
    }
}

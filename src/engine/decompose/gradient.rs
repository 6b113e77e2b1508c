//! The gradient of a module's channeled margin `z_c − z_uc` with respect to
//! every tracked unit's output, to first order and "mean-field": back-propagated
//! once per class from the head, with each ReLU's derivative replaced by its
//! unit's activity frequency over the recorded samples, a max-pool window's
//! gradient shared among its positions by their mean outputs, and everything
//! else linear. No sample is run: it needs only the recording (bits and
//! [`Moments`]) — the class relevance of [`super::relevance`] weighs each
//! unit's class gap by it.

use std::collections::BTreeMap;

use crate::engine::kernels::PoolKind;
use crate::engine::model::{Activation, Model, Moments, NodeId, Op, Recording};

/// `∂(z_c − z_uc) / ∂(output)` for every tracked node the head's gradient
/// reaches (through Dense, Conv2D, DepthwiseConv2D, pooling, Flatten, Reshape, Add, BatchNorm,
/// activations and Dropout; it stops at embeddings, recurrent layers and RepeatVector).
pub fn margin_gradients(model: &Model, rec: &Recording, class: usize) -> BTreeMap<NodeId, Vec<f32>> {
    let c = model.classes();
    let mut grads: Vec<Option<Vec<f32>>> = vec![None; model.nodes.len()];
    let freq = |id: NodeId| -> Option<Vec<f32>> {
        let k = rec.nodes.iter().position(|&t| t == id)?;
        let bits = &rec.bits[k];
        let n = bits.cols().max(1) as f32;
        Some((0..bits.rows()).map(|u| bits.row(u).iter().map(|w| w.count_ones()).sum::<u32>() as f32 / n).collect())
    };
    for id in (1..=model.head).rev() {
        let node = &model.nodes[id];
        // The gradient at this node's pre-activation output.
        let pre: Vec<f32> = if id == model.head {
            // The head's logits: d(z_c − mean of the others)/dz.
            if node.len() != c {
                return BTreeMap::new();
            }
            (0..c).map(|k| if k == class { 1.0 } else { -1.0 / (c - 1).max(1) as f32 }).collect()
        } else {
            let Some(out) = grads[id].take() else { continue };
            grads[id] = Some(out.clone());
            // ReLU-like: the mean slope is (share of samples on) + (share off) × the off slope.
            match (&node.op, node.op.activation().and_then(Activation::off_slope), freq(id)) {
                (Op::PRelu { alpha }, _, Some(f)) => {
                    out.iter().zip(&f).enumerate().map(|(u, (g, f))| g * (f + (1.0 - f) * alpha[u % alpha.len()])).collect()
                }
                (_, Some(off), Some(f)) => out.iter().zip(&f).map(|(g, f)| g * (f + (1.0 - f) * off)).collect(),
                _ => out,
            }
        };
        let into = |grads: &mut Vec<Option<Vec<f32>>>, src: NodeId, add: &dyn Fn(&mut [f32])| {
            let g = grads[src].get_or_insert_with(|| vec![0.0; model.nodes[src].len()]);
            add(g);
        };
        match &node.op {
            Op::Dense { kernel, .. } => {
                let (fin, fout) = kernel.dim();
                let src = node.inputs[0];
                into(&mut grads, src, &|g| {
                    // Rows: one per step for a time-distributed Dense.
                    for (gi, go) in g.chunks_exact_mut(fin).zip(pre.chunks_exact(fout)) {
                        for (i, x) in gi.iter_mut().enumerate() {
                            *x += (0..fout).map(|j| kernel[[i, j]] * go[j]).sum::<f32>();
                        }
                    }
                });
            }
            Op::Conv2D { kernel, strides, padding, .. } => {
                let src = node.inputs[0];
                let &[h, w, cin] = model.nodes[src].shape.as_slice() else { continue };
                let [kh, kw, _, cout] = *kernel.shape() else { continue };
                let Some(geo) = padding.geometry(h, w, cin, kh, kw, strides[0], strides[1]) else { continue };
                into(&mut grads, src, &|g| {
                    for (oy, ox) in (0..geo.oh).flat_map(|y| (0..geo.ow).map(move |x| (y, x))) {
                        let go = &pre[(oy * geo.ow + ox) * cout..][..cout];
                        for (ky, kx) in (0..kh).flat_map(|a| (0..kw).map(move |b| (a, b))) {
                            let Some((iy, ix)) = geo.tap(oy, ox, ky, kx) else { continue };
                            let gi = &mut g[(iy * w + ix) * cin..][..cin];
                            for (ci, x) in gi.iter_mut().enumerate() {
                                *x += (0..cout).map(|co| kernel[[ky, kx, ci, co]] * go[co]).sum::<f32>();
                            }
                        }
                    }
                });
            }
            Op::DepthwiseConv2D { kernel, strides, padding, .. } => {
                let src = node.inputs[0];
                let &[h, w, cin] = model.nodes[src].shape.as_slice() else { continue };
                let [kh, kw, _, mult] = *kernel.shape() else { continue };
                let Some(geo) = padding.geometry(h, w, cin, kh, kw, strides[0], strides[1]) else { continue };
                into(&mut grads, src, &|g| {
                    for (p, (oy, ox)) in (0..geo.oh).flat_map(|y| (0..geo.ow).map(move |x| (y, x))).enumerate() {
                        for (ky, kx) in (0..kh).flat_map(|a| (0..kw).map(move |b| (a, b))) {
                            let Some((iy, ix)) = geo.tap(oy, ox, ky, kx) else { continue };
                            for ci in 0..cin {
                                g[(iy * w + ix) * cin + ci] +=
                                    (0..mult).map(|m| kernel[[ky, kx, ci, m]] * pre[p * cin * mult + ci * mult + m]).sum::<f32>();
                            }
                        }
                    }
                });
            }
            Op::Pool2D { kind, size, strides, padding } => {
                let src = node.inputs[0];
                let &[h, w, ch] = model.nodes[src].shape.as_slice() else { continue };
                let Some(geo) = padding.geometry(h, w, ch, size[0], size[1], strides[0], strides[1]) else { continue };
                let mean = rec.moments.get(&src).map(mean_outputs);
                into(&mut grads, src, &|g| {
                    for (oy, ox) in (0..geo.oh).flat_map(|y| (0..geo.ow).map(move |x| (y, x))) {
                        let window: Vec<usize> = (0..size[0])
                            .flat_map(|a| (0..size[1]).map(move |b| (a, b)))
                            .filter_map(|(a, b)| {
                                let (iy, ix) =
                                    ((oy * geo.sh + a) as isize - geo.pad_top as isize, (ox * geo.sw + b) as isize - geo.pad_left as isize);
                                (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w).then(|| iy as usize * w + ix as usize)
                            })
                            .collect();
                        for c in 0..ch {
                            let go = pre[(oy * geo.ow + ox) * ch + c];
                            // Max: the position that is the maximum, in expectation by mean output; average: equal shares.
                            let weight = |p: usize| match (kind, &mean) {
                                (PoolKind::Max, Some(m)) => m[p * ch + c],
                                _ => 1.0,
                            };
                            let total: f32 = window.iter().map(|&p| weight(p)).sum();
                            for &p in &window {
                                let share = if total > 0.0 { weight(p) / total } else { 1.0 / window.len() as f32 };
                                g[p * ch + c] += go * share;
                            }
                        }
                    }
                });
            }
            // Max: spread like the mean (a mean-field guess at which position wins).
            Op::GlobalPool(_) => {
                let src = node.inputs[0];
                let positions = model.nodes[src].len() / pre.len().max(1);
                into(&mut grads, src, &|g| {
                    for (p, x) in g.iter_mut().enumerate() {
                        *x += pre[p % pre.len()] / positions as f32;
                    }
                });
            }
            Op::BatchNorm { scale, .. } => {
                let src = node.inputs[0];
                into(&mut grads, src, &|g| {
                    for (i, x) in g.iter_mut().enumerate() {
                        *x += pre[i] * scale[i % scale.len()];
                    }
                });
            }
            Op::Flatten | Op::Reshape { .. } | Op::Dropout | Op::Activation(_) | Op::PRelu { .. } => {
                into(&mut grads, node.inputs[0], &|g| g.iter_mut().zip(&pre).for_each(|(x, p)| *x += p));
            }
            Op::ZeroPad2D { .. } | Op::Concat => {
                for (u, &p) in pre.iter().enumerate() {
                    if let Some((k, v)) = model.route(id, u) {
                        into(&mut grads, node.inputs[k], &|g| g[v] += p);
                    }
                }
            }
            Op::Add { .. } => {
                for &src in &node.inputs {
                    into(&mut grads, src, &|g| g.iter_mut().zip(&pre).for_each(|(x, p)| *x += p));
                }
            }
            // A product's derivative needs each factor's value, which the pass does not keep
            // for untracked nodes: the gradient stops here (layers below rank by their gap).
            Op::Input | Op::Embedding { .. } | Op::RepeatVector { .. } | Op::Recurrent(_) | Op::Multiply => {}
        }
    }
    rec.nodes.iter().filter_map(|&t| grads[t].take().map(|g| (t, g))).collect()
}

/// Every unit's mean output over all recorded samples.
fn mean_outputs(m: &Moments) -> Vec<f32> {
    let n = m.count.iter().sum::<usize>().max(1) as f64;
    (0..m.units).map(|u| ((0..m.count.len()).map(|g| m.sum[g * m.units + u]).sum::<f64>() / n) as f32).collect()
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array4, arr1, arr2};

    use super::*;
    use crate::engine::model::{InputKind, InputSpec, ModelBuilder, Padding, forward};

    /// 3×3 input → conv 2×2 of ones (ReLU) → 2×2 → conv 2×2 with weights 1, 2, 3, 4 (ReLU) → 1×1
    /// → Flatten → head [[1, −1]]. On an all-ones sample every unit is active, so the
    /// mean-field gradient is the exact one.
    #[test]
    fn the_margin_gradient_goes_back_through_convolutions_by_hand() {
        let spec = InputSpec::new(vec![3, 3, 1], InputKind::Image);
        let mut b = ModelBuilder::new("m", spec).unwrap();
        let conv = |w: [f32; 4]| Op::Conv2D {
            kernel: Array4::from_shape_vec((2, 2, 1, 1), w.to_vec()).unwrap(),
            bias: Array1::zeros(1),
            strides: [1, 1],
            padding: Padding::Valid,
            activation: Activation::Relu,
        };
        b.push("c1", conv([1.0; 4])).unwrap();
        b.push("c2", conv([1.0, 2.0, 3.0, 4.0])).unwrap();
        b.push("flat", Op::Flatten).unwrap();
        b.push("out", Op::Dense { kernel: arr2(&[[1.0, -1.0]]), bias: arr1(&[0.0, 0.0]), activation: Activation::Softmax }).unwrap();
        let m = b.finish(vec!["a".into(), "b".into()]).unwrap();
        let rec = forward(&m, &[1.0; 9], 1, None, true, &mut |_, _| true).unwrap().recording.unwrap();
        let g = margin_gradients(&m, &rec, 0);
        // d(z_0 − z_1)/d(c2) = 1 − (−1) = 2; back through c2's kernel: 2 × (1, 2, 3, 4).
        assert_eq!(g[&2], vec![2.0]);
        assert_eq!(g[&1], vec![2.0, 4.0, 6.0, 8.0]);
        // For class 1 every sign flips.
        assert_eq!(margin_gradients(&m, &rec, 1)[&1], vec![-2.0, -4.0, -6.0, -8.0]);
    }
}

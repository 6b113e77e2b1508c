//! Recurrent layers with Keras semantics: SimpleRNN, LSTM (gates i, f, c, o)
//! and GRU (gates z, r, h; both `reset_after` variants, computed exactly as
//! Keras does). Other frameworks' gate orders are converted at load time.
//!
//! Module masks (ALGORITHMS.md §6): removing hidden unit `n` at step `t`
//! means what the authors' weight pruning means for that step's weight set —
//! the unit's columns of `W`, `U` and the biases are zero for every gate (its
//! gate pre-activations are 0), its row of `U` is zero (the other units do
//! not see its previous state), and the next layer's input row is zero (the
//! consumer sees 0 at step `t`). Masks are applied on the fly; no weights are
//! copied. A rolled module removes the same units at every step; an
//! unrolled one may remove different units per step.
//!
//! Gate masks (the per-gate statistic): removing gate column `(g, n)` at
//! step `t` means zeroing column `g·U + n` of `W`, `U`, `b` (and a GRU's
//! recurrent bias) for that step — the gate's pre-activation is 0 (a sigmoid
//! gate reads 0.5, a tanh candidate 0); the unit itself stays and the other
//! units still see its state.

use ndarray::{Array1, Array2};

use super::Activation;
use crate::engine::bits::BitSet;
use crate::engine::kernels::matmul;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    SimpleRnn,
    Lstm,
    /// `reset_after = true` (Keras 3 default, CuDNN-compatible): the reset
    /// gate multiplies `h·U_h + b_rh`; `false`: it multiplies `h` before `U_h`.
    Gru {
        reset_after: bool,
    },
}

impl Cell {
    /// Gate blocks in the kernels' columns.
    pub fn gates(self) -> usize {
        match self {
            Cell::SimpleRnn => 1,
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Cell::SimpleRnn => "SimpleRNN",
            Cell::Lstm => "LSTM",
            Cell::Gru { .. } => "GRU",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    pub cell: Cell,
    pub units: usize,
    /// Input kernel `(F, G·U)`, gate blocks side by side in Keras order.
    pub kernel: Array2<f32>,
    /// Recurrent kernel `(U, G·U)`.
    pub recurrent: Array2<f32>,
    /// `(G·U)`, added to the input part.
    pub bias: Array1<f32>,
    /// GRU with `reset_after = true` only: `(G·U)`, added to `h·U`.
    pub recurrent_bias: Option<Array1<f32>>,
    /// The candidate / output nonlinearity (tanh by default).
    pub activation: Activation,
    /// The gates' nonlinearity (sigmoid by default); unused by SimpleRNN.
    pub recurrent_activation: Activation,
    pub return_sequences: bool,
    /// Runs the steps last to first (the backward half of a Keras
    /// `Bidirectional`, ONNX `direction="reverse"`). The state after reading
    /// step `t` is still output at `t`, so the last state is step 0's.
    pub reverse: bool,
}

/// Reusable buffers for [`Recurrent::run`].
#[derive(Debug, Default)]
pub struct Scratch {
    /// The inputs of one step, `b × F`.
    xt: Vec<f32>,
    pre: Vec<f32>,
    /// The input part of every step when the input is the same at every step.
    pre0: Vec<f32>,
    rec: Vec<f32>,
    h: Vec<f32>,
    hm: Vec<f32>,
    /// LSTM cell state; GRU candidate.
    c: Vec<f32>,
    uh: Vec<f32>,
    tmp: Vec<f32>,
}

impl Recurrent {
    pub fn params(&self) -> usize {
        self.kernel.len() + self.recurrent.len() + self.bias.len() + self.recurrent_bias.as_ref().map_or(0, |b| b.len())
    }

    /// The step whose state is the layer's last one (its output without `return_sequences`).
    pub fn last_step(&self, steps: usize) -> usize {
        if self.reverse { 0 } else { steps.saturating_sub(1) }
    }

    /// Runs `b` sequences `x` (`b × T × F`), writing every step's hidden state
    /// to `seq` (`b × T × U`). `keep` (`T × U`, step-major) is a module's mask;
    /// `seq` then holds what consumers see (removed units read 0). `gate_keep`
    /// (`T × G × U`) keeps gate columns. `gates_out` (`b × T × G·U`), when
    /// given, receives every gate's activation (SimpleRNN: its state).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        x: &[f32],
        b: usize,
        steps: usize,
        keep: Option<&BitSet>,
        gate_keep: Option<&BitSet>,
        seq: &mut [f32],
        mut gates_out: Option<&mut [f32]>,
        s: &mut Scratch,
    ) {
        let (f, u) = (self.kernel.nrows(), self.units);
        let gu = self.cell.gates() * u;
        let (kernel, recurrent) = (self.kernel.as_standard_layout(), self.recurrent.as_standard_layout());
        let (kernel, recurrent) = (kernel.as_slice().unwrap_or_default(), recurrent.as_slice().unwrap_or_default());
        let bias = self.bias.as_slice().unwrap_or_default();

        // The input parts step by step: pre = x_t·W + b, `b × G·U`. (All steps in
        // one matmul made a `b·T × G·U` buffer, 2 MB for 128 samples of an LSTM,
        // read back from memory step by step; this keeps every step in cache.)
        resize(&mut s.pre, b * gu);
        resize(&mut s.xt, b * f);

        resize(&mut s.rec, b * gu);
        resize(&mut s.h, b * u);
        resize(&mut s.hm, b * u);
        resize(&mut s.c, b * u);
        resize(&mut s.tmp, b * u);
        let reset_before = matches!(self.cell, Cell::Gru { reset_after: false });
        if reset_before {
            // `U_h`, the candidate block of the recurrent kernel, contiguous.
            s.uh.clear();
            s.uh.extend(recurrent.chunks_exact(gu).flat_map(|row| &row[2 * u..]));
        }
        let (act, gate) = (self.activation, self.recurrent_activation);
        let removed = |t: usize, n: usize| keep.is_some_and(|k| !k.contains(t * u + n));
        let gates = self.cell.gates();
        let gate_removed = |t: usize, g: usize, n: usize| gate_keep.is_some_and(|k| !k.contains((t * gates + g) * u + n));

        // Gate math runs over whole blocks (slices) so it vectorises.
        // A decoder behind a RepeatVector sees the same input at every step:
        // its input part is computed once (the same bits as step by step).
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
        let constant = steps > 1 && (0..b).all(|i| (1..steps).all(|t| same(&x[i * steps * f..][..f], &x[(i * steps + t) * f..][..f])));
        let order: Box<dyn Iterator<Item = usize>> = if self.reverse { Box::new((0..steps).rev()) } else { Box::new(0..steps) };
        for (k, t) in order.enumerate() {
            if k > 0 && constant {
                s.pre.copy_from_slice(&s.pre0);
            } else {
                for i in 0..b {
                    s.xt[i * f..][..f].copy_from_slice(&x[(i * steps + t) * f..][..f]);
                }
                matmul(&s.xt, kernel, &mut s.pre, b, f, gu);
                s.pre.chunks_exact_mut(gu).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, bb)| *v += bb));
                if constant {
                    s.pre0.clone_from(&s.pre);
                }
            }
            // The previous state as the recurrent kernel sees it (rows of removed units are zero).
            s.hm.copy_from_slice(&s.h);
            if keep.is_some() {
                for row in s.hm.chunks_exact_mut(u) {
                    row.iter_mut().enumerate().filter(|(n, _)| removed(t, *n)).for_each(|(_, v)| *v = 0.0);
                }
            }
            matmul(&s.hm, recurrent, &mut s.rec, b, u, gu);
            if let Some(rb) = &self.recurrent_bias {
                s.rec.chunks_exact_mut(gu).for_each(|row| row.iter_mut().zip(rb).for_each(|(v, bb)| *v += bb));
            }
            for i in 0..b {
                let pre = &mut s.pre[i * gu..][..gu];
                let rec = &mut s.rec[i * gu..][..gu];
                if keep.is_some() || gate_keep.is_some() {
                    for n in 0..u {
                        let unit = removed(t, n);
                        for g in (0..gates).filter(|&g| unit || gate_removed(t, g, n)) {
                            pre[g * u + n] = 0.0;
                            rec[g * u + n] = 0.0;
                        }
                    }
                }
                // GRU keeps the candidate's input and recurrent parts apart (the reset gate sits between).
                let summed = if matches!(self.cell, Cell::Gru { .. }) { 2 * u } else { gu };
                rec[..summed].iter_mut().zip(&pre[..summed]).for_each(|(r, p)| *r += p);
                let h = &mut s.h[i * u..][..u];
                match self.cell {
                    Cell::SimpleRnn => {
                        act.apply_elementwise(rec);
                        h.copy_from_slice(rec);
                    }
                    Cell::Lstm => {
                        gate.apply_elementwise(&mut rec[..2 * u]);
                        act.apply_elementwise(&mut rec[2 * u..3 * u]);
                        gate.apply_elementwise(&mut rec[3 * u..]);
                        if let Some(g) = gates_out.as_deref_mut() {
                            g[(i * steps + t) * gu..][..gu].copy_from_slice(rec);
                        }
                        let (ig, rest) = rec.split_at(u);
                        let (fg, rest) = rest.split_at(u);
                        let (cand, og) = rest.split_at(u);
                        let c = &mut s.c[i * u..][..u];
                        let tc = &mut s.tmp[i * u..][..u];
                        for n in 0..u {
                            c[n] = fg[n] * c[n] + ig[n] * cand[n];
                        }
                        tc.copy_from_slice(c);
                        act.apply_elementwise(tc);
                        for n in 0..u {
                            h[n] = og[n] * tc[n];
                        }
                    }
                    Cell::Gru { .. } => gate.apply_elementwise(&mut rec[..2 * u]),
                }
                if let (Some(g), Cell::SimpleRnn) = (gates_out.as_deref_mut(), self.cell) {
                    g[(i * steps + t) * gu..][..gu].copy_from_slice(&s.h[i * u..][..u]);
                }
            }
            if let Cell::Gru { reset_after } = self.cell {
                if !reset_after {
                    // (r ⊙ h)·U_h for the whole batch, into tmp; removed units read 0 below.
                    for i in 0..b {
                        let r = &s.rec[i * gu + u..][..u];
                        s.c[i * u..][..u].iter_mut().zip(r).zip(&s.hm[i * u..][..u]).for_each(|((o, r), h)| *o = r * h);
                    }
                    matmul(&s.c, &s.uh, &mut s.tmp, b, u, u);
                }
                for i in 0..b {
                    let pre = &s.pre[i * gu..][..gu];
                    let rec = &s.rec[i * gu..][..gu];
                    let cand = &mut s.c[i * u..][..u];
                    let inner = &s.tmp[i * u..][..u];
                    for n in 0..u {
                        // reset_after: r ⊙ (h·U_h + b_h); before: (r ⊙ h)·U_h. Removed units: 0 (zeroed columns).
                        let part = if reset_after {
                            rec[u + n] * rec[2 * u + n]
                        } else if removed(t, n) || gate_removed(t, 2, n) {
                            0.0
                        } else {
                            inner[n]
                        };
                        cand[n] = pre[2 * u + n] + part;
                    }
                    act.apply_elementwise(cand);
                    if let Some(g) = gates_out.as_deref_mut() {
                        let g = &mut g[(i * steps + t) * gu..][..gu];
                        g[..2 * u].copy_from_slice(&rec[..2 * u]);
                        g[2 * u..].copy_from_slice(cand);
                    }
                    let h = &mut s.h[i * u..][..u];
                    let z = &rec[..u];
                    for n in 0..u {
                        h[n] = z[n] * h[n] + (1.0 - z[n]) * cand[n];
                    }
                }
            }
            for i in 0..b {
                let out = &mut seq[(i * steps + t) * u..][..u];
                out.copy_from_slice(&s.h[i * u..][..u]);
                if keep.is_some() {
                    out.iter_mut().enumerate().filter(|(n, _)| removed(t, *n)).for_each(|(_, v)| *v = 0.0);
                }
            }
        }
    }
}

fn resize(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

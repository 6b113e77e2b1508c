//! Benchmark figures (printed, never asserted). The clock is passed in so the
//! same code runs natively (`std::time`) and in wasm (`performance.now()`).

use crate::compose::compose;
use crate::data::Dataset;
use crate::decompose::{decompose, decomposition_rows, Settings};
use crate::error::Result;
use crate::model::{forward, Model, Op};

/// Multiply-adds ×2 per sample for Dense, Conv2D and recurrent layers (input
/// and recurrent kernels at every step).
pub fn flops_per_sample(model: &Model) -> f64 {
    model
        .nodes
        .iter()
        .map(|n| match &n.op {
            Op::Dense { kernel, .. } => 2.0 * kernel.len() as f64 * (n.len() / kernel.ncols()) as f64,
            Op::Conv2D { kernel, .. } => 2.0 * (kernel.len() / kernel.shape()[3]) as f64 * n.len() as f64,
            Op::Recurrent(r) => 2.0 * (r.kernel.len() + r.recurrent.len()) as f64 * model.nodes[n.inputs[0]].shape[0] as f64,
            _ => 0.0,
        })
        .sum()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelBench {
    pub model: String,
    pub samples_per_s: f64,
    pub gflops: f64,
    /// Decompose all classes ÷ one recorded forward pass over the same samples.
    pub decompose_ratio: f64,
    pub decompose_s: f64,
}

/// Runs `f` until at least `min_s` seconds have passed (≥ 1 run); seconds per run.
fn time(clock: &dyn Fn() -> f64, min_s: f64, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up (and V8 tier-up in wasm)
    let (t0, mut runs) = (clock(), 0u32);
    while runs == 0 || clock() - t0 < min_s {
        f()?;
        runs += 1;
    }
    Ok((clock() - t0) / runs as f64)
}

pub fn bench_model(model: &Model, data: &Dataset, clock: &dyn Fn() -> f64) -> Result<ModelBench> {
    let rows: Vec<usize> = (0..data.test.len()).collect();
    let x = data.inputs(model, &data.test, &rows);
    let n = rows.len();
    let fwd = time(clock, 0.5, &mut || forward(model, &x, n, None, false, &mut |_, _| true).map(drop))?;
    let settings = Settings::default();
    let dec_s = time(clock, 0.5, &mut || decompose(model, data, &settings, &mut |_| true).map(drop))?;
    // One recorded pass over exactly the decomposition samples.
    let d = decompose(model, data, &settings, &mut |_| true)?;
    let train_rows = decomposition_rows(data, settings.samples_per_class);
    debug_assert_eq!(train_rows.len(), d.recorded_samples);
    let xt = data.inputs(model, &data.train, &train_rows);
    let rec_s = time(clock, 0.5, &mut || forward(model, &xt, train_rows.len(), None, true, &mut |_, _| true).map(drop))?;
    Ok(ModelBench {
        model: model.name.clone(),
        samples_per_s: n as f64 / fwd,
        gflops: flops_per_sample(model) * n as f64 / fwd / 1e9,
        decompose_ratio: dec_s / rec_s,
        decompose_s: dec_s,
    })
}

/// Seconds to recompose `modules` cached rows over `samples` (one toggle = one compose).
pub fn bench_recompose(modules: usize, samples: usize, clock: &dyn Fn() -> f64) -> Result<f64> {
    let mut s = 0x9e3779b97f4a7c15u64;
    let mut r = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let rows: Vec<Vec<f32>> = (0..modules).map(|_| (0..samples).map(|_| r()).collect()).collect();
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let classes: Vec<u32> = (0..modules as u32).collect();
    let labels: Vec<u32> = (0..samples).map(|i| (i % modules) as u32).collect();
    time(clock, 0.3, &mut || compose(&refs, &classes, &labels).map(drop))
}

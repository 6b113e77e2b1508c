//! Benchmark figures (printed, never asserted). The clock is passed in so the
//! same code runs natively (`std::time`) and in wasm (`performance.now()`).

use ndarray::{Array1, Array2};

use crate::engine::compose::compose;
use crate::engine::data::{Dataset, Split, Stored};
use crate::engine::decompose::{Mode, Settings, applied_strength, decompose, decomposition_rows};
use crate::engine::model::{Activation, InputKind, InputSpec, Model, ModelBuilder, Op, forward};
use crate::engine::{kernels, parallel};
use crate::error::Result;

/// (modules, samples) of the recomposition benchmark, natively and in wasm.
pub const RECOMPOSE_SIZES: [(usize, usize); 6] = [(10, 1_000), (10, 10_000), (10, 100_000), (100, 1_000), (100, 10_000), (100, 100_000)];

/// Multiply-adds ×2 per sample for Dense, Conv2D and recurrent layers (input
/// and recurrent kernels at every step).
pub fn flops_per_sample(model: &Model) -> f64 {
    model
        .nodes
        .iter()
        .map(|n| match &n.op {
            Op::Dense { kernel, .. } => 2.0 * kernel.len() as f64 * (n.len() / kernel.ncols()) as f64,
            Op::Conv2D { kernel, .. } => 2.0 * (kernel.len() / kernel.shape()[3]) as f64 * n.len() as f64,
            Op::DepthwiseConv2D { kernel, .. } => 2.0 * (kernel.shape()[0] * kernel.shape()[1]) as f64 * n.len() as f64,
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
    /// One row per technique (see [`techniques`]).
    pub decompose: Vec<DecomposeBench>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DecomposeBench {
    /// As `Settings::describe` names it.
    pub technique: String,
    /// Decompose all classes ÷ one recorded forward pass over the same samples.
    pub ratio: f64,
    pub decompose_s: f64,
    pub pass_s: f64,
    /// With more than one thread: decompose all classes on one thread, timed
    /// in turns with `decompose_s` in the same run, so that the speed-up does
    /// not depend on what else the machine ran between two runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_thread_s: Option<f64>,
    /// One thread's best turn ÷ every thread's best turn (with `one_thread_s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<f64>,
}

/// The techniques benchmarked on a model: paper and reference for dense and
/// convolutional models; recurrent models with the default (class relevance,
/// which measures each recurrent unit's removal, on a many-to-one model) and
/// the papers' modules (the ICSE'23 removal, strength 0).
pub fn techniques(model: &Model) -> Vec<Settings> {
    if model.is_recurrent() {
        return vec![Settings::default(), Settings::faithful()];
    }
    [Mode::Paper, Mode::Reference].into_iter().map(|mode| Settings { mode, ..Settings::default() }).collect()
}

/// Seconds per run of `f`, timed for at least `min_s` (see [`time_each`]).
fn time(clock: &dyn Fn() -> f64, min_s: f64, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    Ok(time_each(clock, min_s, &mut [f])?[0])
}

/// Seconds per run of each of `fs`, timed in turns (so they share whatever
/// load the machine has) for at least `min_s` in all and at least three
/// turns. Each turn runs one function as a batch sized to last about 20 ms;
/// the result is total time ÷ total runs, which stays unbiased with a
/// millisecond clock (wasm uses `Date.now()`), where a minimum over short
/// batches would not.
fn time_each(clock: &dyn Fn() -> f64, min_s: f64, fs: &mut [&mut dyn FnMut() -> Result<()>]) -> Result<Vec<f64>> {
    Ok(time_turns(clock, min_s, fs)?.0)
}

/// [`time_each`], and each function's best turn (seconds per run): what a
/// ratio between thread counts reads, since a turn another process slowed
/// slows two threads more than one.
fn time_turns(clock: &dyn Fn() -> f64, min_s: f64, fs: &mut [&mut dyn FnMut() -> Result<()>]) -> Result<(Vec<f64>, Vec<f64>)> {
    let batch = |f: &mut dyn FnMut() -> Result<()>, k: u64| -> Result<f64> {
        let t = clock();
        for _ in 0..k {
            f()?;
        }
        Ok(clock() - t)
    };
    let mut ks = vec![];
    for f in fs.iter_mut() {
        f()?; // warm-up (and V8 tier-up in wasm)
        let mut k = 1;
        while batch(*f, k)? < 0.02 && k < 1 << 20 {
            k *= 2;
        }
        ks.push(k);
    }
    let (mut total, mut runs, mut best) = (vec![0.0; fs.len()], vec![0u64; fs.len()], vec![f64::INFINITY; fs.len()]);
    let (t0, mut turns) = (clock(), 0);
    while turns < 3 || clock() - t0 < min_s {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = batch(*f, ks[i])?;
            total[i] += t;
            runs[i] += ks[i];
            best[i] = best[i].min(t / ks[i] as f64);
        }
        turns += 1;
    }
    Ok((total.iter().zip(&runs).map(|(t, &n)| t / n as f64).collect(), best))
}

/// `decompose = false` times inference only (the quick mode of scripts/bench).
pub fn bench_model(model: &Model, data: &Dataset, clock: &dyn Fn() -> f64, decompose: bool) -> Result<ModelBench> {
    let rows: Vec<usize> = (0..data.test.len()).collect();
    let x = data.inputs(model, &data.test, &rows);
    let n = rows.len();
    let fwd = time(clock, 0.5, &mut || forward(model, &x, n, None, false, &mut |_, _| true).map(drop))?;
    let mut techniques = if decompose { techniques(model) } else { vec![] };
    // A strength the model cannot take (a per-step head) leaves two of them the same.
    let steps = data.train.steps;
    techniques.dedup_by_key(|s| Settings { strength: applied_strength(model, s, steps), ..s.clone() });
    let decompose = techniques.iter().map(|s| bench_decompose(model, data, s, 0.5, clock)).collect::<Result<_>>()?;
    Ok(ModelBench {
        model: model.name.clone(),
        samples_per_s: n as f64 / fwd,
        gflops: flops_per_sample(model) * n as f64 / fwd / 1e9,
        decompose,
    })
}

/// Decompose all classes, and one recorded forward pass over exactly the
/// decomposition samples, timed in turns for at least `2 × min_s` — with
/// more than one thread, decomposing on one thread too ([`DecomposeBench::one_thread_s`]).
pub fn bench_decompose(model: &Model, data: &Dataset, settings: &Settings, min_s: f64, clock: &dyn Fn() -> f64) -> Result<DecomposeBench> {
    let rows = decomposition_rows(data, settings.samples_per_class);
    let x = data.inputs(model, &data.train, &rows);
    let run = || decompose(model, data, settings, &mut |_| true).map(drop);
    let mut fs: Vec<Box<dyn FnMut() -> Result<()> + '_>> =
        vec![Box::new(run), Box::new(|| forward(model, &x, rows.len(), None, true, &mut |_, _| true).map(drop))];
    if parallel::threads() > 1 {
        fs.push(Box::new(|| parallel::with_threads(1, run)?));
    }
    let (t, best) =
        time_turns(clock, 2.0 * min_s, &mut fs.iter_mut().map(|f| &mut **f as &mut dyn FnMut() -> Result<()>).collect::<Vec<_>>())?;
    let (decompose_s, pass_s) = (t[0], t[1]);
    // Named by what ran: the strength a model cannot take is 0 (decompose::applied_strength).
    let applied = Settings { strength: applied_strength(model, settings, data.train.steps), ..settings.clone() };
    Ok(DecomposeBench {
        technique: applied.describe(model.is_recurrent()),
        ratio: decompose_s / pass_s,
        decompose_s,
        pass_s,
        one_thread_s: t.get(2).copied(),
        speedup: best.get(2).map(|one| one / best[0]),
    })
}

/// Deterministic uniform [0, 1) numbers (xorshift64).
fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Inputs of the synthetic dense models.
const SYNTH_FEATURES: usize = 64;

/// A random dense classifier `64 → width → width → classes` (ReLU, softmax)
/// and `samples` random training samples, labelled in turn so every class
/// has `samples / classes` (the decomposition uses all of them).
pub fn synthetic_dense(classes: usize, width: usize, samples: usize, seed: u64) -> Result<(Model, Dataset)> {
    let mut r = uniform(seed);
    let mut dense = |i: usize, o: usize, activation| {
        let k = (6.0 / (i + o) as f32).sqrt(); // Glorot-uniform range
        Op::Dense {
            kernel: Array2::from_shape_fn((i, o), |_| (2.0 * r() - 1.0) * k),
            bias: Array1::from_shape_fn(o, |_| 0.1 * (r() - 0.5)),
            activation,
        }
    };
    let spec = InputSpec::new(vec![SYNTH_FEATURES], InputKind::Vectors);
    let mut b = ModelBuilder::new(format!("dense_{classes}c_{width}w"), spec)?;
    b.push("dense_1", dense(SYNTH_FEATURES, width, Activation::Relu))?;
    b.push("dense_2", dense(width, width, Activation::Relu))?;
    b.push("dense_3", dense(width, classes, Activation::Softmax))?;
    let class_names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();
    let model = b.finish(class_names.clone())?;
    let mut r = uniform(seed ^ 0x5eed);
    let split = |n: usize, r: &mut dyn FnMut() -> f32| Split {
        x: (0..n * SYNTH_FEATURES).map(|_| r()).collect(),
        y: (0..n).map(|i| (i % classes) as u32).collect(),
        steps: 1,
    };
    let train = split(samples, &mut r);
    let test = split(classes, &mut r);
    Ok((
        model,
        Dataset {
            name: "synthetic".into(),
            sample_shape: vec![SYNTH_FEATURES],
            class_names,
            vocab: None,
            train,
            test,
            stored: Stored::Float,
        },
    ))
}

/// One point of a decomposition scaling curve on a synthetic dense model
/// (paper technique, every training sample used).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScalePoint {
    pub classes: usize,
    pub samples: usize,
    pub width: usize,
    pub decompose_s: f64,
    pub pass_s: f64,
    pub ratio: f64,
}

pub fn bench_scaling(classes: usize, samples: usize, width: usize, clock: &dyn Fn() -> f64) -> Result<ScalePoint> {
    let (model, data) = synthetic_dense(classes, width, samples, 0x9e3779b97f4a7c15 ^ (classes * 31 + width) as u64)?;
    let settings = Settings { samples_per_class: samples / classes, ..Settings::default() };
    let d = bench_decompose(&model, &data, &settings, 0.3, clock)?;
    Ok(ScalePoint { classes, samples, width, decompose_s: d.decompose_s, pass_s: d.pass_s, ratio: d.ratio })
}

/// Least-squares slope of log y over log x: y ∝ x^slope.
pub fn loglog_slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (lx, ly): (Vec<f64>, Vec<f64>) = points.iter().map(|&(x, y)| (x.ln(), y.ln())).unzip();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}

/// Seconds to recompose `modules` cached rows over `samples` (one toggle = one compose).
pub fn bench_recompose(modules: usize, samples: usize, clock: &dyn Fn() -> f64) -> Result<f64> {
    let mut r = uniform(0x9e3779b97f4a7c15);
    let rows: Vec<Vec<f32>> = (0..modules).map(|_| (0..samples).map(|_| r()).collect()).collect();
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let classes: Vec<u32> = (0..modules as u32).collect();
    let labels: Vec<u32> = (0..samples).map(|i| (i % modules) as u32).collect();
    time(clock, 0.3, &mut || compose(&refs, &classes, &labels).map(drop))
}

/// One decomposition cost curve: `by` (classes, samples or width) varies
/// from the base (10 classes, 5000 samples, width 128), with fitted log-log
/// exponents.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleCurve {
    pub by: &'static str,
    pub points: Vec<ScalePoint>,
    pub decompose_exponent: f64,
    pub pass_exponent: f64,
    pub ratio_exponent: f64,
}

/// The three scaling curves of `remodule bench --scaling`.
pub fn scaling_curves(clock: &dyn Fn() -> f64) -> Result<Vec<ScaleCurve>> {
    let sweeps: [(&'static str, Vec<[usize; 3]>); 3] = [
        ("classes", [10, 20, 50, 100].iter().map(|&c| [c, 5_000, 128]).collect()),
        ("samples", [1_000, 2_000, 5_000, 10_000, 20_000].iter().map(|&n| [10, n, 128]).collect()),
        ("width", [32, 64, 128, 256, 512].iter().map(|&w| [10, 5_000, w]).collect()),
    ];
    let mut curves = vec![];
    for (by, at) in sweeps {
        let points = at.iter().map(|&[c, n, w]| bench_scaling(c, n, w, clock)).collect::<Result<Vec<_>>>()?;
        let x = |p: &ScalePoint| {
            (match by {
                "classes" => p.classes,
                "samples" => p.samples,
                _ => p.width,
            }) as f64
        };
        let fit = |f: &dyn Fn(&ScalePoint) -> f64| loglog_slope(&points.iter().map(|p| (x(p), f(p))).collect::<Vec<_>>());
        let (decompose_exponent, pass_exponent, ratio_exponent) = (fit(&|p| p.decompose_s), fit(&|p| p.pass_s), fit(&|p| p.ratio));
        curves.push(ScaleCurve { by, points, decompose_exponent, pass_exponent, ratio_exponent });
    }
    Ok(curves)
}

/// One point of the recomposition benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecomposePoint {
    pub modules: usize,
    pub samples: usize,
    pub ms: f64,
}

/// Everything `remodule bench` prints (`--json`: this, serialised; `scripts/bench` reads it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Which kernels ran (`kernels::kernel_set`).
    pub kernels: &'static str,
    /// Threads of the parallel maps (`parallel::threads`).
    pub threads: usize,
    pub rows: Vec<ModelBench>,
    pub recompose: Vec<RecomposePoint>,
    pub scaling: Vec<ScaleCurve>,
}

impl BenchReport {
    /// Per-model rows (with `full`, their decomposition figures and the
    /// recomposition grid), and with `scaling` the cost curves.
    pub fn run(models: &[(&Model, &Dataset)], full: bool, scaling: bool, clock: &dyn Fn() -> f64) -> Result<Self> {
        let rows = models.iter().map(|(m, d)| bench_model(m, d, clock, full)).collect::<Result<Vec<_>>>()?;
        let recompose = if full {
            RECOMPOSE_SIZES
                .into_iter()
                .map(|(modules, samples)| Ok(RecomposePoint { modules, samples, ms: bench_recompose(modules, samples, clock)? * 1e3 }))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![]
        };
        let scaling = if scaling { scaling_curves(clock)? } else { vec![] };
        Ok(BenchReport { kernels: kernels::kernel_set(), threads: parallel::threads(), rows, recompose, scaling })
    }

    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut w = String::new();
        let _ = writeln!(w, "kernels: {}; threads: {}\n", self.kernels, self.threads);
        let _ = writeln!(w, "| model | samples/s | GFLOP/s | technique | decompose all (s) | decompose ÷ one recorded pass |");
        let _ = writeln!(w, "|---|---:|---:|---|---:|---:|");
        for b in &self.rows {
            if b.decompose.is_empty() {
                let _ = writeln!(w, "| {} | {:.0} | {:.2} | – | – | – |", b.model, b.samples_per_s, b.gflops);
            }
            for d in &b.decompose {
                let _ = writeln!(
                    w,
                    "| {} | {:.0} | {:.2} | {} | {:.3} | {:.2} |",
                    b.model, b.samples_per_s, b.gflops, d.technique, d.decompose_s, d.ratio
                );
            }
        }
        let _ = writeln!(w, "\n| modules × samples | recompose (ms) |\n|---|---:|");
        for r in &self.recompose {
            let _ = writeln!(w, "| {} × {} | {:.3} |", r.modules, r.samples, r.ms);
        }
        for c in &self.scaling {
            let _ = writeln!(w, "\n| {} | decompose (s) | one recorded pass (s) | ratio |\n|---:|---:|---:|---:|", c.by);
            for p in &c.points {
                let x = match c.by {
                    "classes" => p.classes,
                    "samples" => p.samples,
                    _ => p.width,
                };
                let _ = writeln!(w, "| {x} | {:.4} | {:.4} | {:.2} |", p.decompose_s, p.pass_s, p.ratio);
            }
            let _ = writeln!(w, "fitted exponent: decompose {:.2}, pass {:.2}", c.decompose_exponent, c.pass_exponent);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglog_slope_recovers_a_power_law() {
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 5.0, 10.0].iter().map(|&x: &f64| (x, 3.0 * x.powf(1.5))).collect();
        assert!((loglog_slope(&pts) - 1.5).abs() < 1e-9);
    }

    #[test]
    fn one_thread_time_comes_with_more_threads_only() {
        let (m, d) = synthetic_dense(4, 8, 64, 3).unwrap();
        let s = Settings { samples_per_class: 16, ..Settings::default() };
        let start = std::time::Instant::now();
        let clock = move || start.elapsed().as_secs_f64();
        let on = |n| parallel::with_threads(n, || bench_decompose(&m, &d, &s, 0.0, &clock)).unwrap().unwrap();
        assert_eq!(on(1).one_thread_s, None);
        let two = on(2);
        assert!(two.one_thread_s.is_some_and(|t| t > 0.0) && two.speedup.is_some_and(|x| x > 0.0));
        assert_eq!(on(1).speedup, None);
    }

    #[test]
    fn synthetic_model_decomposes_on_every_sample() {
        let (m, d) = synthetic_dense(12, 16, 240, 7).unwrap();
        assert_eq!((m.classes(), m.input_len(), d.train.len()), (12, SYNTH_FEATURES, 240));
        let s = Settings { samples_per_class: 20, ..Settings::default() };
        assert_eq!(decompose(&m, &d, &s, &mut |_| true).unwrap().recorded_samples, 240);
    }
}

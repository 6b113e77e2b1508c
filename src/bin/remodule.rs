//! `remodule`: the engine from the command line (same code as the page).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use remodule::engine::data::Dataset;
use remodule::engine::decompose::{Head, Mode, Settings, Technique};
use remodule::engine::model::{InputKind, forward};
use remodule::formats::dataset::{read_idx_dataset, read_npz_dataset};
use remodule::formats::{idx, load_model, native, npz};
use remodule::workbench::{DecompositionInfo, Pick, Workbench};

/// (classes, samples, width) of one synthetic scaling point.
type ScalePoint3 = (usize, usize, usize);

#[derive(Parser)]
#[command(name = "remodule", version, about = "Decompose a trained classifier into per-class modules and recompose them")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct ModelData {
    /// Model file (.keras, .h5, .onnx, .remodule; a .remodule module set brings its modules)
    model: PathBuf,
    /// Data set: .npz with x_train, y_train, x_test, y_test; or an IDX images
    /// file (MNIST's …-images-idx3-ubyte) with its …-labels-idx1-ubyte next to it
    #[arg(long)]
    data: PathBuf,
}

/// What to compose: a composition file (which modules of which models), or
/// one model's modules. `compose` and `export` take the same.
#[derive(clap::Args)]
struct Composition {
    /// A composition file (.json, docs/COMPOSE.md), or a model file / module set
    target: PathBuf,
    /// The model's data set (not with a composition file)
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    opts: DecomposeOpts,
    /// Classes whose modules to compose [default: all] (not with a composition file)
    #[arg(long, value_delimiter = ',')]
    classes: Vec<usize>,
}

impl Composition {
    fn build(&self) -> Result<remodule::app::plan::Built, String> {
        let target = &self.target;
        if target.extension().is_some_and(|e| e == "json") {
            if self.data.is_some() || !self.classes.is_empty() || self.opts.any_given() {
                return Err("a composition file says everything itself: --data, --classes and decomposition options do not apply".into());
            }
            let plan = remodule::app::plan::Plan::parse(&read(target)?).map_err(|e| format!("{}: {e}", target.display()))?;
            let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
            let reader = |p: &str| std::fs::read(dir.join(p)).map_err(|e| remodule::Error::invalid(format!("{p}: {e}")));
            return remodule::app::plan::build(&plan, &reader, &mut |m| eprintln!("{m}")).map_err(|e| e.to_string());
        }
        let data = self.data.clone().ok_or("give --data with a model file (or a composition file .json)")?;
        let (mut wb, id, saved) = load(&ModelData { model: target.clone(), data })?;
        self.opts.decompose(&mut wb, id, saved)?;
        let classes: Vec<usize> =
            if self.classes.is_empty() { (0..wb.model_info(id).class_names.len()).collect() } else { self.classes.clone() };
        let picks = classes.into_iter().map(|class| Pick { model: id, class }).collect();
        Ok(remodule::app::plan::Built { wb, picks, base: Some(id), mode: remodule::app::plan::Mode::Plain })
    }
}

/// Options are `Option`s so that giving one for a saved module set (whose
/// settings are fixed) is an error rather than silently ignored.
#[derive(clap::Args)]
struct DecomposeOpts {
    /// Dense/conv layers: which reading of the papers: paper (union of activity; default) or reference (the authors' code)
    #[arg(long, value_parser = ["paper", "reference"])]
    mode: Option<String>,
    /// Backtracking after channeling: mc (none), mc-bln (through the dense layers to the last convolution), mc-bi (on to the input) [default: mc-bln]
    #[arg(long, value_parser = ["mc", "mc-bln", "mc-bi"])]
    technique: Option<String>,
    /// MC-BLN/MC-BI: strong-edge threshold δ [default: 0.5]
    #[arg(long)]
    delta: Option<f32>,
    /// Module output: two (the channeled 2-unit head) or reference (the authors' N-output head with CM-RIE and voting) [default: two]
    #[arg(long, value_parser = ["two", "reference"])]
    head: Option<String>,
    /// Recurrent layers: reference (robust-mean statistic, capped removal; default) or paper (sign rule)
    #[arg(long, value_parser = ["paper", "reference"])]
    recurrent_mode: Option<String>,
    /// Recurrent layers: prune each time step separately (unrolled) instead of one set for all steps
    #[arg(long)]
    unrolled: bool,
    /// Recurrent reference mode: largest share of a layer's units a module removes [default: 0.05]
    #[arg(long)]
    max_remove: Option<f32>,
    /// Recurrent reference mode: the statistic per gate column (removal capped per gate block) instead of per unit
    #[arg(long)]
    gates: bool,
    /// Per-step heads (encoder–decoder): keep recurrent layers that do not reach the head step by step (the encoder) whole in every module
    #[arg(long)]
    keep_encoder: bool,
    /// Concerned samples per module [default: 1000]
    #[arg(long)]
    samples: Option<usize>,
    /// Unconcerned : concerned samples [default: 1]
    #[arg(long)]
    tangling_ratio: Option<f32>,
}

impl DecomposeOpts {
    fn settings(&self) -> Settings {
        let d = Settings::default();
        let mode = |m: &Option<String>, default| match m.as_deref() {
            Some("reference") => Mode::Reference,
            Some(_) => Mode::Paper,
            None => default,
        };
        Settings {
            mode: mode(&self.mode, d.mode),
            technique: match self.technique.as_deref() {
                Some("mc-bln") => Technique::McBln,
                Some("mc-bi") => Technique::McBi,
                Some(_) => Technique::Mc,
                None => d.technique,
            },
            delta: self.delta.unwrap_or(d.delta),
            head: match self.head.as_deref() {
                Some("reference") => Head::Reference,
                Some(_) => Head::Two,
                None => d.head,
            },
            recurrent_mode: mode(&self.recurrent_mode, d.recurrent_mode),
            unrolled: self.unrolled,
            max_remove: self.max_remove.unwrap_or(d.max_remove),
            gates: self.gates,
            keep_encoder: self.keep_encoder,
            samples_per_class: self.samples.unwrap_or(d.samples_per_class),
            tangling_ratio: self.tangling_ratio.unwrap_or(d.tangling_ratio),
            ..d
        }
    }

    fn any_given(&self) -> bool {
        self.mode.is_some()
            || self.technique.is_some()
            || self.delta.is_some()
            || self.head.is_some()
            || self.recurrent_mode.is_some()
            || self.unrolled
            || self.max_remove.is_some()
            || self.gates
            || self.keep_encoder
            || self.samples.is_some()
            || self.tangling_ratio.is_some()
    }

    /// The loaded module set's decomposition, or a new one with these options.
    fn decompose(&self, wb: &mut Workbench, id: usize, saved: Option<DecompositionInfo>) -> Result<DecompositionInfo, String> {
        match saved {
            Some(_) if self.any_given() => Err("the model file is a module set: its modules are used as saved, so decomposition options do not apply (decompose the source model to change them)".into()),
            Some(dec) => Ok(dec),
            None => wb.decompose(id, &self.settings(), &mut |_| true).map_err(|e| e.to_string()),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Architecture, shapes, parameters and classes of a model (and its accuracy with --data)
    Info {
        #[command(flatten)]
        md: ModelData,
    },
    /// Write the model's output probabilities for every sample of a data set to a .npy (float32)
    Predict {
        /// Model file (.keras, .h5, .onnx)
        model: PathBuf,
        /// Samples: a data set .npz (x_train / x_test), an IDX images file, or a .npy array [N, …]
        #[arg(long)]
        data: PathBuf,
        /// Which split of a .npz to use
        #[arg(long, default_value = "test", value_parser = ["test", "train"])]
        split: String,
        /// Model input = stored value × scale (default: 1/255 for image models, 1 otherwise)
        #[arg(long)]
        scale: Option<f32>,
        /// Output file: N × classes (N × steps × classes for per-step models) float32
        #[arg(long)]
        out: PathBuf,
    },
    /// Test accuracy of the model on the data set
    Eval {
        #[command(flatten)]
        md: ModelData,
        #[arg(long)]
        json: bool,
    },
    /// Decompose and compose all modules; print model vs composed accuracy and per-module metrics
    Report {
        #[command(flatten)]
        md: ModelData,
        #[command(flatten)]
        opts: DecomposeOpts,
        #[arg(long)]
        json: bool,
        /// Also save the model with its modules (a module set, .remodule) here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Save a model in Remodule's own format (.remodule: safetensors with a manifest)
    Convert {
        /// Model file (.keras, .h5, .remodule)
        model: PathBuf,
        /// Where to write the .remodule file
        #[arg(long)]
        out: PathBuf,
    },
    /// Print benchmark figures: forward throughput, decompose-all ÷ one recorded pass, recompose time
    Bench {
        /// Model files, each `MODEL` (read with --data) or `MODEL=DATA`
        models: Vec<String>,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        /// Also the decomposition cost curves on synthetic dense models (classes, samples, width)
        #[arg(long)]
        scaling: bool,
        /// Inference throughput only (no decomposition, recomposition or curves)
        #[arg(long)]
        inference_only: bool,
    },
    /// Regenerate the fidelity / reuse / replacement tables for every bundled model (docs/FIDELITY.md)
    Table {
        /// Repository root (holds models/catalog.json, models/, data/)
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Where to write the Markdown (stdout when omitted)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Regenerate the model cards of every bundled model (models/CARDS.md)
    Cards {
        /// Repository root (holds models/catalog.json, models/, data/)
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Where to write the Markdown (stdout when omitted)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Classroom exercises: `exercise check EXERCISE STATE` grades a playground state (docs/EXERCISES.md)
    Exercise {
        #[command(subcommand)]
        cmd: ExerciseCmd,
    },
    /// Decompose a model and save its modules (a module set, .remodule) for `compose`, `report`, `eval` and the page
    Decompose {
        #[command(flatten)]
        md: ModelData,
        #[command(flatten)]
        opts: DecomposeOpts,
        /// Where to write the module set
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a composition as one ONNX graph: scores [N, K], argmax [N] (docs/EXPORT.md):
    /// `export PLAN.json --out x.onnx`, or `export MODEL --data FILE [--classes 0,1,7]`
    Export {
        #[command(flatten)]
        what: Composition,
        /// Also output `softmax` over the modules' logit differences
        #[arg(long)]
        softmax: bool,
        /// Where to write the .onnx file
        #[arg(long)]
        out: PathBuf,
        /// Also write what the graph must compute on the evaluation samples (float32 .npy):
        /// PREFIX.samples.npy (as stored), PREFIX.scores.npy [N, K], PREFIX.answers.npy [N]
        #[arg(long)]
        expected: Option<String>,
    },
    /// Compose modules: `compose PLAN.json` (models, settings, which module answers which class;
    /// see docs/COMPOSE.md), or `compose MODEL --data FILE --classes 0,1,7` (one model's modules)
    Compose {
        #[command(flatten)]
        what: Composition,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ExerciseCmd {
    /// Rebuild a playground state's composition and check an exercise's goal. Exit code 0 when
    /// solved, 3 when not (and 1 on errors); `--json` prints every check.
    Check {
        /// A built-in exercise id (www/exercises/builtin.json), an exercise .json file, or `-` for
        /// the exercise the state's link carries
        exercise: String,
        /// The state: a share link, its fragment (`v=1&s=…`), or a file holding either or the state's JSON
        state: String,
        /// Repository root (models/catalog.json, models/, data/, www/exercises/builtin.json)
        #[arg(long, default_value = ".")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// An IDX images file's labels file, by the MNIST naming convention.
fn idx_labels(images: &Path) -> Result<PathBuf, String> {
    idx::labels_name(&images.to_string_lossy()).map(PathBuf::from).filter(|p| p.is_file()).ok_or_else(|| {
        format!("{}: an IDX images file needs its labels file next to it (…-images-idx3-ubyte → …-labels-idx1-ubyte)", images.display())
    })
}

/// A labelled data set: `.npz`, or IDX images plus the labels file next to them.
fn dataset(path: &Path) -> Result<Dataset, String> {
    let bytes = read(path)?;
    let d = if idx::looks_like_idx(&bytes) || bytes.starts_with(&[0x1f, 0x8b]) {
        read_idx_dataset(&bytes, &read(&idx_labels(path)?)?, &stem(path))
    } else {
        read_npz_dataset(&bytes, &stem(path))
    };
    d.map_err(|e| format!("{}: {e}", path.display()))
}

/// Samples to predict: (raw values, count).
fn samples(path: &Path, split: &str) -> Result<(Vec<f32>, usize), String> {
    let bytes = read(path)?;
    let at = |e: remodule::Error| format!("{}: {e}", path.display());
    if idx::looks_like_idx(&bytes) || bytes.starts_with(&[0x1f, 0x8b]) {
        let a = idx::read_idx(&bytes).map_err(at)?;
        return Ok((a.data.iter().map(|&v| v as f32).collect(), a.shape[0]));
    }
    if bytes.starts_with(b"\x93NUMPY") {
        let a = npz::read_npy(&bytes).map_err(at)?;
        let n = *a.shape.first().ok_or_else(|| format!("{}: a scalar, not an array of samples", path.display()))?;
        return Ok((a.to_f32(), n));
    }
    let d = read_npz_dataset(&bytes, &stem(path)).map_err(at)?;
    let s = if split == "train" { d.train } else { d.test };
    let n = s.len();
    Ok((s.x, n))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A workbench with the data set and the model; for a module set, also its
/// decomposition as saved.
fn load(md: &ModelData) -> Result<(Workbench, usize, Option<DecompositionInfo>), String> {
    let mut wb = Workbench::new();
    let ds = wb.add_data(dataset(&md.data)?);
    let (id, dec) = add_file(&mut wb, &md.model, ds.id)?;
    Ok((wb, id, dec))
}

/// Adds a model file or a module set on data set `ds`.
fn add_file(wb: &mut Workbench, path: &Path, ds: usize) -> Result<(usize, Option<DecompositionInfo>), String> {
    let file = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let f = wb.add_file(&read(path)?, &file, ds).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((f.model.id, f.decomposition))
}

fn run(cli: Cli) -> Result<(), String> {
    let cards = matches!(cli.cmd, Cmd::Cards { .. });
    match cli.cmd {
        Cmd::Info { md } => {
            let (wb, id, _) = load(&md)?;
            let m = wb.model_info(id);
            println!("{}: {} parameters, {} classes, test accuracy {:.4}", m.name, m.params, m.class_names.len(), m.accuracy);
            for l in &m.layers {
                println!("  {:<24} {:<24} {:>14} {:>9}", l.name, l.kind, format!("{:?}", l.shape), l.params);
            }
        }
        Cmd::Predict { model, data, split, scale, out } => {
            let file = model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let m = load_model(&read(&model)?, &file).map_err(|e| format!("{}: {e}", model.display()))?;
            let (raw, n) = samples(&data, &split)?;
            let len = m.input_len();
            if raw.len() != n * len {
                return Err(format!(
                    "{}: {n} samples of {} values each; model '{}' takes {len} ({:?})",
                    data.display(),
                    raw.len() / n.max(1),
                    m.name,
                    m.input.shape
                ));
            }
            let scale = scale.unwrap_or(if m.input.kind == InputKind::Image { 1.0 / 255.0 } else { 1.0 });
            let x: Vec<f32> = raw.iter().map(|v| v * scale).collect();
            let probs = forward(&m, &x, n, None, false, &mut |_, _| true).map_err(|e| e.to_string())?.probs;
            let (c, steps) = (m.classes(), m.out_steps());
            let shape = if steps > 1 { vec![n, steps, c] } else { vec![n, c] };
            let bytes = npz::write_npy_f32(&shape, &probs).map_err(|e| e.to_string())?;
            std::fs::write(&out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("{}: wrote {shape:?} float32 probabilities to {}", m.name, out.display());
        }
        Cmd::Eval { md, json } => {
            let (wb, id, _) = load(&md)?;
            let acc = wb.model_info(id).accuracy;
            if json {
                println!("{}", serde_json::json!({ "accuracy": acc }));
            } else {
                println!("accuracy {acc:.4}");
            }
        }
        Cmd::Report { md, opts, json, out } => {
            let (mut wb, id, saved) = load(&md)?;
            let t = Instant::now();
            let dec = opts.decompose(&mut wb, id, saved)?;
            let picks: Vec<Pick> = dec.modules.iter().map(|m| Pick { model: id, class: m.class }).collect();
            let c = wb.compose(&picks, Some(id)).map_err(|e| e.to_string())?;
            let seconds = t.elapsed().as_secs_f64();
            if let Some(path) = &out {
                write(path, &wb.export_modules(id).map_err(|e| e.to_string())?)?;
            }
            let model_acc = wb.model_info(id).accuracy;
            if json {
                let modules: Vec<_> = dec
                    .modules
                    .iter()
                    .map(|m| serde_json::json!({"class": m.class_name, "accuracy": m.accuracy, "jaccard": m.jaccard_units, "jaccard_ref": m.jaccard_ref, "kept_weights": m.kept_weights}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"model_accuracy": model_acc, "composed_accuracy": c.composition.top1, "composed_top5": c.composition.top5,
                        "technique": dec.settings.describe(wb.model_info(id).recurrent), "modules": modules, "mask_digest": dec.mask_digest, "seconds": seconds})
                );
            } else {
                let technique = dec.settings.describe(wb.model_info(id).recurrent);
                println!(
                    "model accuracy {model_acc:.4}  composed {:.4}  top-5 {:?}  ({seconds:.2} s, {technique})",
                    c.composition.top1, c.composition.top5
                );
                for m in &dec.modules {
                    println!(
                        "  {:<12} acc {:.4}  jaccard {:.3} (ref {:.3})  kept weights {:.3}",
                        m.class_name, m.accuracy, m.jaccard_units, m.jaccard_ref, m.kept_weights
                    );
                }
            }
        }
        Cmd::Bench { models, data, json, scaling, inference_only } => {
            use remodule::app::bench::{RECOMPOSE_SIZES, bench_recompose, bench_scaling, loglog_slope};
            let t0 = Instant::now();
            let clock = move || t0.elapsed().as_secs_f64();
            let mut rows = vec![];
            for spec in &models {
                let (model, data) = match spec.split_once('=') {
                    Some((m, d)) => (PathBuf::from(m), PathBuf::from(d)),
                    None => (PathBuf::from(spec), data.clone().ok_or_else(|| format!("{spec}: give --data or write MODEL=DATA"))?),
                };
                let (wb, id, _) = load(&ModelData { model, data })?;
                rows.push(wb.bench(id, &clock, !inference_only).map_err(|e| e.to_string())?);
            }
            let mut recompose = vec![];
            for (m, s) in RECOMPOSE_SIZES.into_iter().filter(|_| !inference_only) {
                let t = bench_recompose(m, s, &clock).map_err(|e| e.to_string())?;
                recompose.push(serde_json::json!({"modules": m, "samples": s, "ms": t * 1e3}));
            }
            // Each curve varies one of (classes, samples, width) from the base (10, 5000, 128).
            let mut curves = vec![];
            if scaling {
                let sweeps: [(&str, Vec<ScalePoint3>); 3] = [
                    ("classes", [10, 20, 50, 100].iter().map(|&c| (c, 5_000, 128)).collect()),
                    ("samples", [1_000, 2_000, 5_000, 10_000, 20_000].iter().map(|&n| (10, n, 128)).collect()),
                    ("width", [32, 64, 128, 256, 512].iter().map(|&w| (10, 5_000, w)).collect()),
                ];
                for (by, points) in sweeps {
                    let pts = points
                        .iter()
                        .map(|&(c, n, w)| bench_scaling(c, n, w, &clock))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())?;
                    let x = |p: &remodule::app::bench::ScalePoint| {
                        (match by {
                            "classes" => p.classes,
                            "samples" => p.samples,
                            _ => p.width,
                        }) as f64
                    };
                    let fit = |f: &dyn Fn(&remodule::app::bench::ScalePoint) -> f64| {
                        loglog_slope(&pts.iter().map(|p| (x(p), f(p))).collect::<Vec<_>>())
                    };
                    curves.push(serde_json::json!({"by": by, "points": pts, "decompose_exponent": fit(&|p| p.decompose_s), "pass_exponent": fit(&|p| p.pass_s), "ratio_exponent": fit(&|p| p.ratio)}));
                }
            }
            if json {
                println!("{}", serde_json::json!({"rows": rows, "recompose": recompose, "scaling": curves}));
                return Ok(());
            }
            println!("| model | samples/s | GFLOP/s | technique | decompose all (s) | decompose ÷ one recorded pass |");
            println!("|---|---:|---:|---|---:|---:|");
            for b in &rows {
                if b.decompose.is_empty() {
                    println!("| {} | {:.0} | {:.2} | – | – | – |", b.model, b.samples_per_s, b.gflops);
                }
                for d in &b.decompose {
                    println!(
                        "| {} | {:.0} | {:.2} | {} | {:.3} | {:.2} |",
                        b.model, b.samples_per_s, b.gflops, d.technique, d.decompose_s, d.ratio
                    );
                }
            }
            println!("\n| modules × samples | recompose (ms) |\n|---|---:|");
            for r in &recompose {
                println!("| {} × {} | {:.3} |", r["modules"], r["samples"], r["ms"].as_f64().unwrap_or(f64::NAN));
            }
            for c in &curves {
                println!("\n| {} | decompose (s) | one recorded pass (s) | ratio |\n|---:|---:|---:|---:|", c["by"].as_str().unwrap_or(""));
                for p in c["points"].as_array().into_iter().flatten() {
                    println!(
                        "| {} | {:.4} | {:.4} | {:.2} |",
                        p[c["by"].as_str().unwrap_or("")],
                        p["decompose_s"].as_f64().unwrap_or(f64::NAN),
                        p["pass_s"].as_f64().unwrap_or(f64::NAN),
                        p["ratio"].as_f64().unwrap_or(f64::NAN)
                    );
                }
                println!(
                    "fitted exponent: decompose {:.2}, pass {:.2}",
                    c["decompose_exponent"].as_f64().unwrap_or(f64::NAN),
                    c["pass_exponent"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
        Cmd::Convert { model, out } => {
            let file = model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let m = load_model(&read(&model)?, &file).map_err(|e| e.to_string())?;
            let bytes = native::save_model(&m).map_err(|e| e.to_string())?;
            write(&out, &bytes)?;
            println!(
                "{}: {} layers, {} parameters, {} classes -> {} ({} bytes)",
                m.name,
                m.nodes.len(),
                m.params(),
                m.classes(),
                out.display(),
                bytes.len()
            );
        }
        Cmd::Table { root, out } | Cmd::Cards { root, out } => {
            let t0 = Instant::now();
            let catalog = remodule::app::catalog::Catalog::parse(&read(&root.join("models/catalog.json"))?).map_err(|e| e.to_string())?;
            let reader = |p: &str| std::fs::read(root.join(p)).map_err(|e| remodule::Error::invalid(format!("{p}: {e}")));
            let md = if cards {
                remodule::app::tables::model_cards_markdown(&catalog, &reader)
            } else {
                remodule::app::tables::fidelity_markdown(&catalog, &reader, &move || t0.elapsed().as_secs_f64())
            }
            .map_err(|e| e.to_string())?;
            match out {
                Some(p) => std::fs::write(&p, md).map_err(|e| format!("{}: {e}", p.display()))?,
                None => print!("{md}"),
            }
        }
        Cmd::Exercise { cmd: ExerciseCmd::Check { exercise, state, root, json } } => {
            use remodule::app::exercise;
            let text = if Path::new(&state).is_file() { String::from_utf8_lossy(&read(Path::new(&state))?).into_owned() } else { state };
            let st = exercise::parse_state(&text).map_err(|e| e.to_string())?;
            let spec = match exercise.as_str() {
                "-" => None,
                e if e.ends_with(".json") => Some(String::from_utf8_lossy(&read(Path::new(e))?).into_owned()),
                id => Some(id.to_string()),
            };
            let ex = exercise::find_exercise(spec.as_deref(), &st, &read(&root.join("www/exercises/builtin.json"))?)
                .map_err(|e| e.to_string())?;
            let cat = remodule::app::catalog::Catalog::parse(&read(&root.join("models/catalog.json"))?).map_err(|e| e.to_string())?;
            let reader = |p: &str| std::fs::read(root.join(p)).map_err(|e| remodule::Error::invalid(format!("{p}: {e}")));
            let r = exercise::check(&ex, &st, &cat, &reader).map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                println!("{}: {}", r.exercise, if r.solved { "solved" } else { "not solved" });
                for c in &r.checks {
                    println!("  {} {}", if c.ok { "✓" } else { "✗" }, serde_json::to_string(&c.check).unwrap_or_default());
                }
            }
            if !r.solved {
                std::process::exit(3); // grading scripts tell "not solved" from an error (1)
            }
        }
        Cmd::Decompose { md, opts, out } => {
            let (mut wb, id, saved) = load(&md)?;
            if saved.is_some() {
                return Err(format!("{}: already a module set", md.model.display()));
            }
            let t = Instant::now();
            let dec = opts.decompose(&mut wb, id, None)?;
            let bytes = wb.export_modules(id).map_err(|e| e.to_string())?;
            write(&out, &bytes)?;
            let info = wb.model_info(id);
            println!(
                "{}: {} modules ({}) in {:.2} s -> {} ({} bytes)",
                info.name,
                dec.modules.len(),
                dec.settings.describe(info.recurrent),
                t.elapsed().as_secs_f64(),
                out.display(),
                bytes.len()
            );
        }
        Cmd::Export { what, softmax, out, expected } => {
            let mut built = what.build()?;
            if built.mode != remodule::app::plan::Mode::Plain {
                return Err("export writes the modules as decomposed: a composition with module update or verification is not exported (remove \"update\" / \"verify\")".into());
            }
            let c = built.compose().map_err(|e| e.to_string())?;
            let (wb, picks) = (&mut built.wb, &built.picks);
            let bytes = wb.export_onnx(picks, softmax).map_err(|e| e.to_string())?;
            write(&out, &bytes)?;
            println!(
                "{} modules -> {} ({} bytes); composed accuracy {:.4} over {} samples of classes {:?}",
                picks.len(),
                out.display(),
                bytes.len(),
                c.composition.top1,
                c.composition.evaluated,
                c.class_names
            );
            if let Some(prefix) = expected {
                let s = wb.composition_scores(picks).map_err(|e| e.to_string())?;
                let n = s.answers.len();
                let npy = |shape: &[usize], v: &[f32]| npz::write_npy_f32(shape, v).map_err(|e| e.to_string());
                let shape: Vec<usize> = std::iter::once(n).chain(s.sample_shape.iter().copied()).collect();
                write(Path::new(&format!("{prefix}.samples.npy")), &npy(&shape, &s.samples)?)?;
                let scores: Vec<f32> = (0..n).flat_map(|i| s.rows.iter().map(move |r| r[i])).collect();
                write(Path::new(&format!("{prefix}.scores.npy")), &npy(&[n, picks.len()], &scores)?)?;
                let answers: Vec<f32> = s.answers.iter().map(|&a| a as f32).collect();
                write(Path::new(&format!("{prefix}.answers.npy")), &npy(&[n], &answers)?)?;
            }
        }
        Cmd::Compose { what, json } => {
            let c = what.build()?.compose().map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&c).map_err(|e| e.to_string())?);
            } else {
                let base = c.model_accuracy.map(|a| format!(" (base model on these classes {a:.4})")).unwrap_or_default();
                println!(
                    "composed accuracy {:.4}{base} over {} samples of classes {:?}",
                    c.composition.top1, c.composition.evaluated, c.class_names
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Output piped into `head` must end quietly, as other Unix tools do, not
    // panic on the closed stdout (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

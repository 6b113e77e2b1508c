//! `remodule`: the engine from the command line (same code as the page).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use remodule::app::bench::BenchReport;
use remodule::app::loader::Loader;
use remodule::app::plan::{Built, Plan};
use remodule::engine::data::{InputOverride, input_map};
use remodule::engine::decompose::{Head, Mode, Relevance, Settings, Technique};
use remodule::engine::model::forward;
use remodule::formats::dataset::read_samples;
use remodule::formats::{file_stem, load_model, native, npz};
use remodule::workbench::{ComposeMode, DecompositionInfo, LayerInfo, Pick, Workbench, layer_infos, mean_off_diagonal};
use remodule::{Error, Result};

#[derive(Parser)]
#[command(name = "remodule", version, about = "Decompose a trained classifier into per-class modules and recompose them")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// x86-64: fused multiply-add kernels (about 10 % faster on the bundled models; results
    /// differ from the page's in the last bits, so masks and digests may too)
    #[arg(long, global = true)]
    fma: bool,
    /// Threads for recorded passes, decomposition, scoring and tables (results are the same
    /// for any number) [default: RAYON_NUM_THREADS, else every core]
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

#[derive(clap::Args)]
struct ModelData {
    /// Model file (.keras, .h5, .onnx, .remodule; a .remodule module set brings its modules)
    model: PathBuf,
    /// Data set: .npz with x_train, y_train, x_test, y_test; or an IDX images
    /// file (MNIST's …-images-idx3-ubyte) with its …-labels-idx1-ubyte next to it
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    input: InputFlags,
}

/// The input rule's override (docs/DATA.md "Input scaling"): by default
/// integer image data is scaled by 1/255 (unless the model starts with its own
/// Rescaling), and float data, token ids and vectors are fed as stored.
#[derive(clap::Args, Clone, Copy, Default)]
struct InputFlags {
    /// Model input = stored value × SCALE + OFFSET, instead of the input rule's scale
    #[arg(long, allow_hyphen_values = true)]
    scale: Option<f32>,
    /// Added after --scale (e.g. -1 with --scale 0.00784 maps 0–255 to [-1, 1]) [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    offset: Option<f32>,
}

impl InputFlags {
    fn given(self) -> InputOverride {
        InputOverride { scale: self.scale, offset: self.offset }
    }
}

/// What to compose: a composition file (which modules of which models), or
/// one model's modules. `compose` and `export` take the same.
#[derive(clap::Args)]
struct Composition {
    /// A composition file (.json, docs/COMPOSE.md), or a model file / module set
    target: PathBuf,
    /// The model's data set (not with a composition file) [default: the bundled data set of
    /// ./models/catalog.json the model fits, when exactly one does]
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    input: InputFlags,
    #[command(flatten)]
    opts: DecomposeOpts,
    /// Classes whose modules to compose [default: all] (not with a composition file)
    #[arg(long, value_delimiter = ',')]
    classes: Vec<usize>,
}

impl Composition {
    fn build(&self) -> Result<Built> {
        let target = &self.target;
        if target.extension().is_some_and(|e| e == "json") {
            if self.data.is_some() || !self.classes.is_empty() || self.opts.any_given() || self.input.given().is_given() {
                return Err(Error::invalid(
                    "a composition file says everything itself: --data, --classes, --scale/--offset and decomposition options do not apply (a plan's model takes \"scale\" and \"offset\")",
                ));
            }
            let plan = Plan::parse(&read(target)?).map_err(|e| e.in_file(target.display().to_string()))?;
            let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
            let reader = |p: &str| read(&dir.join(p));
            return remodule::app::plan::build(&plan, &reader, &mut |m| eprintln!("{m}"));
        }
        let data = match &self.data {
            Some(d) => d.clone(),
            None => bundled_fit(target)?,
        };
        let (mut wb, id, saved) = load(&ModelData { model: target.clone(), data, input: self.input })?;
        self.opts.decompose(&mut wb, id, saved)?;
        let classes: Vec<usize> =
            if self.classes.is_empty() { (0..wb.model_info(id).class_names.len()).collect() } else { self.classes.clone() };
        let picks = classes.into_iter().map(|class| Pick { model: id, class }).collect();
        Ok(Built { wb, picks, base: Some(id), mode: ComposeMode::Plain })
    }
}

/// Options are `Option`s so that giving one for a saved module set (whose
/// settings are fixed) is an error rather than silently ignored.
#[derive(clap::Args)]
struct DecomposeOpts {
    /// Dense/conv layers: which reading of the papers: paper (union of activity; default) or reference (the authors' code)
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Backtracking after channeling: mc (none), mc-bln (through the dense layers to the last convolution), mc-bi (on to the input) [default: mc-bln]
    #[arg(long, value_enum)]
    technique: Option<Technique>,
    /// MC-BLN/MC-BI: strong-edge threshold δ [default: 0.5]
    #[arg(long)]
    delta: Option<f32>,
    /// Module output: two (the channeled 2-unit head) or reference (the authors' N-output head with CM-RIE and voting) [default: two]
    #[arg(long, value_enum)]
    head: Option<Head>,
    /// Recurrent layers: reference (robust-mean statistic, capped removal; default) or paper (sign rule)
    #[arg(long, value_enum)]
    recurrent_mode: Option<Mode>,
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
    /// Class relevance: each dense/conv layer of a module drops up to this share of its units that serve the class least, in [0, 1] (0 = the papers' modules; models without such layers, per-step heads and --head reference get 0) [default: 0.2]
    #[arg(long)]
    strength: Option<f32>,
    /// Class relevance: how a module's units are ranked for --strength: statistic (recorded statistics; default) or learned (gates trained per module, weights frozen; slower)
    #[arg(long, value_enum)]
    relevance: Option<Relevance>,
}

impl DecomposeOpts {
    fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            mode: self.mode.unwrap_or(d.mode),
            technique: self.technique.unwrap_or(d.technique),
            delta: self.delta.unwrap_or(d.delta),
            head: self.head.unwrap_or(d.head),
            recurrent_mode: self.recurrent_mode.unwrap_or(d.recurrent_mode),
            unrolled: self.unrolled,
            max_remove: self.max_remove.unwrap_or(d.max_remove),
            gates: self.gates,
            keep_encoder: self.keep_encoder,
            samples_per_class: self.samples.unwrap_or(d.samples_per_class),
            tangling_ratio: self.tangling_ratio.unwrap_or(d.tangling_ratio),
            strength: self.strength.unwrap_or(d.strength),
            relevance: self.relevance.unwrap_or(d.relevance),
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
            || self.strength.is_some()
            || self.relevance.is_some()
    }

    /// The loaded module set's decomposition, or a new one with these options.
    fn decompose(&self, wb: &mut Workbench, id: usize, saved: Option<DecompositionInfo>) -> Result<DecompositionInfo> {
        match saved {
            Some(_) if self.any_given() => Err(Error::invalid(
                "the model file is a module set: its modules are used as saved, so decomposition options do not apply (decompose the source model to change them)",
            )),
            Some(dec) => Ok(dec),
            None => {
                let dec = wb.decompose(id, &self.settings(), &mut |_| true)?;
                remodule::app::loader::refuse_unapplied_strength("--strength", self.strength, &dec.settings, &wb.model_info(id).name)?;
                remodule::app::loader::refuse_unapplied_relevance("--relevance", self.relevance, &dec.settings, &wb.model_info(id).name)?;
                Ok(dec)
            }
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Architecture, shapes, parameters and classes of a model (and its accuracy with --data)
    Info {
        /// Model file (.keras, .h5, .onnx, .remodule)
        model: PathBuf,
        /// A data set to evaluate it on (as for `eval`)
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        input: InputFlags,
    },
    /// Write the model's output probabilities for every sample of a data set to a .npy (float32)
    Predict {
        /// Model file (.keras, .h5, .onnx)
        model: PathBuf,
        /// Samples: a data set .npz (x_train / x_test), an IDX images file, or a .npy array [N, …]
        #[arg(long)]
        data: PathBuf,
        /// Which split of a .npz to use
        #[arg(long, value_enum, default_value_t = Split::Test)]
        split: Split,
        #[command(flatten)]
        input: InputFlags,
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
        #[command(flatten)]
        input: InputFlags,
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

/// Which split of a data set `.npz` `predict` reads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Split {
    Test,
    Train,
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

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io { path: path.display().to_string(), reason: e.to_string() })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Io { path: path.display().to_string(), reason: format!("cannot write: {e}") })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A workbench with the data set and the model (through the one loader);
/// for a module set, also its decomposition as saved.
/// Says the model's input warning (accuracy at chance) on stderr.
fn load(md: &ModelData) -> Result<(Workbench, usize, Option<DecompositionInfo>)> {
    let reader = |p: &str| read(Path::new(p));
    let mut loader = Loader::new(&reader);
    let ds = loader.dataset(&path_str(&md.data), None)?;
    let f = loader.file(&path_str(&md.model), ds, md.input.given())?;
    if let Some(n) = &f.model.notice {
        eprintln!("warning: {n}");
    }
    Ok((loader.wb, f.model.id, f.decomposition))
}

/// The one bundled data set (of ./models/catalog.json) that the model in `model` fits; several
/// or none is an error naming them / what the model needs.
fn bundled_fit(model: &Path) -> Result<PathBuf> {
    let give = "give --data with a model file (or a composition file .json)";
    let cat = catalog(Path::new(".")).map_err(|_| Error::invalid(give))?;
    let fit = cat.fit_file(&read(model)?, &path_str(model))?;
    let file = |k: &String| format!("data/{}", cat.datasets[k].file);
    match fit.fits.as_slice() {
        [one] => {
            eprintln!("data: {} (the bundled data set {} fits)", file(one), model.display());
            Ok(PathBuf::from(file(one)))
        }
        [] => Err(Error::invalid(fit.message.unwrap_or_else(|| give.into()))),
        several => Err(Error::invalid(format!(
            "{}: several bundled data sets fit; name one with --data: {}",
            model.display(),
            several.iter().map(file).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The bundled catalog of the repository at `root`.
fn catalog(root: &Path) -> Result<remodule::app::catalog::Catalog> {
    remodule::app::catalog::Catalog::parse(&read(&root.join("models/catalog.json"))?)
}

fn run(cli: Cli) -> Result<()> {
    remodule::engine::kernels::set_fma(cli.fma);
    // 0: rayon's default, which reads RAYON_NUM_THREADS.
    remodule::engine::parallel::set_threads(cli.threads.map_or(0, usize::from))?;
    let cards = matches!(cli.cmd, Cmd::Cards { .. });
    match cli.cmd {
        Cmd::Info { model, data: Some(data), input } => {
            let (wb, id, _) = load(&ModelData { model, data, input })?;
            let m = wb.model_info(id);
            println!("{}: {} parameters, {} classes, test accuracy {:.4}", m.name, m.params, m.class_names.len(), m.accuracy);
            println!("input: {}", m.input);
            print_layers(&m.layers);
            println!("kernels: {}; threads: {}", remodule::engine::kernels::kernel_set(), remodule::engine::parallel::threads());
        }
        Cmd::Info { model, data: None, input } => {
            if input.given().is_given() {
                return Err(Error::invalid("--scale / --offset apply to data: give --data too"));
            }
            let file = model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let m = load_model(&read(&model)?, &file).map_err(|e| e.in_file(model.display().to_string()))?;
            let kind = format!("{:?}", m.input.kind).to_lowercase();
            println!("{}: {} parameters, {} classes (accuracy: give --data)", m.name, m.params(), m.classes());
            let rescales = if m.input.rescales { "; the model rescales its own input" } else { "" };
            println!("input: {kind} {:?} per sample{rescales}", m.input.shape);
            print_layers(&layer_infos(&m));
            println!("kernels: {}; threads: {}", remodule::engine::kernels::kernel_set(), remodule::engine::parallel::threads());
        }
        Cmd::Predict { model, data, split, input, out } => {
            let file = model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let m = load_model(&read(&model)?, &file).map_err(|e| e.in_file(model.display().to_string()))?;
            let split = if split == Split::Train { "train" } else { "test" };
            let s = read_samples(&read(&data)?, file_stem(&path_str(&data)), split).map_err(|e| e.in_file(path_str(&data)))?;
            let (len, n) = (m.input_len(), s.n);
            if s.x.len() != n * len {
                return Err(Error::invalid(format!(
                    "{}: {n} samples of {} values each; model '{}' takes {len} ({:?})",
                    data.display(),
                    s.x.len() / n.max(1),
                    m.name,
                    m.input.shape
                )));
            }
            let mut spec = m.input.clone();
            input.given().apply_to(&mut spec);
            let map = input_map(&spec, s.stored);
            eprintln!("input: {}", map.describe());
            let x: Vec<f32> = s.x.iter().map(|&v| map.apply(v)).collect();
            let probs = forward(&m, &x, n, None, false, &mut |_, _| true)?.probs;
            let (c, steps) = (m.classes(), m.out_steps());
            let shape = if steps > 1 { vec![n, steps, c] } else { vec![n, c] };
            let bytes = npz::write_npy_f32(&shape, &probs)?;
            write(&out, &bytes)?;
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
            let c = wb.compose(&picks, Some(id))?;
            let seconds = t.elapsed().as_secs_f64();
            if let Some(path) = &out {
                write(path, &wb.export_modules(id)?)?;
            }
            let model_acc = wb.model_info(id).accuracy;
            let jaccard = wb.module_jaccard(id)?;
            let mean_jaccard = mean_off_diagonal(&jaccard);
            let mean_kept = dec.modules.iter().map(|m| m.kept_weights).sum::<f32>() / dec.modules.len().max(1) as f32;
            if json {
                let modules: Vec<_> = dec
                    .modules
                    .iter()
                    .map(|m| serde_json::json!({"class": m.class_name, "accuracy": m.accuracy, "jaccard": m.jaccard_units, "jaccard_ref": m.jaccard_ref, "kept_weights": m.kept_weights}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"model_accuracy": model_acc, "composed_accuracy": c.composition.top1, "composed_top5": c.composition.top5,
                        "technique": dec.settings.describe(wb.model_info(id).recurrent), "strength": dec.settings.strength, "modules": modules,
                        "mean_kept_weights": mean_kept, "module_jaccard": jaccard, "mean_module_jaccard": mean_jaccard,
                        "mask_digest": dec.mask_digest, "seconds": seconds})
                );
            } else {
                let technique = dec.settings.describe(wb.model_info(id).recurrent);
                println!(
                    "model accuracy {model_acc:.4}  composed {:.4}  top-5 {:?}  ({seconds:.2} s, {technique})",
                    c.composition.top1, c.composition.top5
                );
                println!("mean kept weights {mean_kept:.3}  mean module↔module Jaccard {mean_jaccard:.3}");
                for m in &dec.modules {
                    println!(
                        "  {:<12} acc {:.4}  jaccard {:.3} (ref {:.3})  kept weights {:.3}",
                        m.class_name, m.accuracy, m.jaccard_units, m.jaccard_ref, m.kept_weights
                    );
                }
            }
        }
        Cmd::Bench { models, data, input, json, scaling, inference_only } => {
            let t0 = Instant::now();
            let clock = move || t0.elapsed().as_secs_f64();
            let mut loaded = vec![];
            for spec in &models {
                let (model, data) = match spec.split_once('=') {
                    Some((m, d)) => (PathBuf::from(m), PathBuf::from(d)),
                    None => (
                        PathBuf::from(spec),
                        data.clone().ok_or_else(|| Error::invalid(format!("{spec}: give --data or write MODEL=DATA")))?,
                    ),
                };
                let (wb, id, _) = load(&ModelData { model, data, input })?;
                loaded.push((wb, id));
            }
            let pairs = loaded.iter().map(|(wb, id)| wb.model(*id)).collect::<Result<Vec<_>>>()?;
            let report = BenchReport::run(&pairs, !inference_only, scaling, &clock)?;
            if json {
                println!("{}", serde_json::to_string(&report).map_err(|e| Error::invalid(e.to_string()))?);
            } else {
                print!("{}", report.markdown());
            }
        }
        Cmd::Convert { model, out } => {
            let file = model.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let m = load_model(&read(&model)?, &file)?;
            let bytes = native::save_model(&m)?;
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
            let (catalog, reader) = (catalog(&root)?, |p: &str| read(&root.join(p)));
            let (md, svg) = if cards {
                (remodule::app::tables::model_cards_markdown(&catalog, &reader)?, None)
            } else {
                let (md, svg) = remodule::app::tables::fidelity_markdown(&catalog, &reader, &move || t0.elapsed().as_secs_f64())?;
                (md, Some(svg))
            };
            match out {
                Some(p) => {
                    write(&p, md.as_bytes())?;
                    // The plot the document shows, beside it.
                    if let Some(svg) = svg {
                        write(&p.with_file_name("front.svg"), svg.as_bytes())?;
                    }
                }
                None => print!("{md}"),
            }
        }
        Cmd::Exercise { cmd: ExerciseCmd::Check { exercise, state, root, json } } => {
            use remodule::app::exercise;
            let text = if Path::new(&state).is_file() { String::from_utf8_lossy(&read(Path::new(&state))?).into_owned() } else { state };
            let st = exercise::parse_state(&text)?;
            let spec = match exercise.as_str() {
                "-" => None,
                e if e.ends_with(".json") => Some(String::from_utf8_lossy(&read(Path::new(e))?).into_owned()),
                id => Some(id.to_string()),
            };
            let ex = exercise::find_exercise(spec.as_deref(), &st, &read(&root.join("www/exercises/builtin.json"))?)?;
            let (cat, reader) = (catalog(&root)?, |p: &str| read(&root.join(p)));
            let r = exercise::check(&ex, &st, &cat, &reader)?;
            if json {
                println!("{}", serde_json::to_string(&r).map_err(|e| Error::invalid(e.to_string()))?);
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
                return Err(Error::invalid(format!("{}: already a module set", md.model.display())));
            }
            let t = Instant::now();
            let dec = opts.decompose(&mut wb, id, None)?;
            let bytes = wb.export_modules(id)?;
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
            if built.mode != ComposeMode::Plain {
                return Err(Error::invalid(
                    "export writes the modules as decomposed: a composition with module update or verification is not exported (remove \"update\" / \"verify\")",
                ));
            }
            let c = built.compose()?;
            let (wb, picks) = (&mut built.wb, &built.picks);
            let bytes = wb.export_onnx(picks, softmax)?;
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
                let s = wb.composition_scores(picks)?;
                let n = s.answers.len();
                let npy = |shape: &[usize], v: &[f32]| npz::write_npy_f32(shape, v);
                let shape: Vec<usize> = std::iter::once(n).chain(s.sample_shape.iter().copied()).collect();
                write(Path::new(&format!("{prefix}.samples.npy")), &npy(&shape, &s.samples)?)?;
                let scores: Vec<f32> = (0..n).flat_map(|i| s.rows.iter().map(move |r| r[i])).collect();
                write(Path::new(&format!("{prefix}.scores.npy")), &npy(&[n, picks.len()], &scores)?)?;
                let answers: Vec<f32> = s.answers.iter().map(|&a| a as f32).collect();
                write(Path::new(&format!("{prefix}.answers.npy")), &npy(&[n], &answers)?)?;
            }
        }
        Cmd::Compose { what, json } => {
            let c = what.build()?.compose()?;
            if json {
                println!("{}", serde_json::to_string(&c).map_err(|e| Error::invalid(e.to_string()))?);
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

fn print_layers(layers: &[LayerInfo]) {
    for l in layers {
        println!("  {:<24} {:<24} {:>14} {:>9}", l.name, l.kind, format!("{:?}", l.shape), l.params);
    }
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

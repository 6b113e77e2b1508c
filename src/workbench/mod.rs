//! The engine API the page (through `wasm.rs`) and the CLI call: loaded data
//! sets and models, their decompositions, and the score cache that makes
//! recomposition an argmax over cached rows.
//!
//! Classes get global ids (`ClassId`) so modules of models trained on
//! different data sets (digits and clothing) compose into one classifier.
//! Two data sets with the same sample shape share a class when they give it
//! the same name (English in language set A and in set B), so a module from
//! one can stand in for, or add to, the other's.

use serde::Serialize;

use crate::engine::compose::{ClassId, Composition, binary_accuracy, compose};
use crate::engine::data::Dataset;
use std::collections::HashMap;

use crate::engine::bits::BitSet;
use crate::engine::decompose::{
    ColumnCache, Decomposition, Module, Settings, concerned_scores, decompose, jaccard_ref, kept_weights, module_masks,
};
use crate::engine::model::{InputKind, Model, Op, forward};
use crate::error::{Error, Result};
use crate::formats::dataset::{read_idx_dataset, read_npz_dataset};
use crate::formats::{load_model, native};

pub type DatasetId = usize;
pub type ModelId = usize;

#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    pub id: DatasetId,
    pub name: String,
    pub sample_shape: Vec<usize>,
    pub class_names: Vec<String>,
    /// Text data sets: the string of each token id.
    pub vocab: Option<Vec<String>>,
    pub train: usize,
    pub test: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub kind: String,
    pub shape: Vec<usize>,
    pub params: usize,
    pub activation: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: ModelId,
    pub name: String,
    pub dataset: DatasetId,
    pub params: usize,
    pub layers: Vec<LayerInfo>,
    pub class_names: Vec<String>,
    /// Test accuracy on its data set, computed by this engine.
    pub accuracy: f32,
    /// What the input is (image, tokens, vectors): the page picks its "try it" panel by it.
    pub input_kind: InputKind,
    /// Has recurrent layers (their decomposition settings apply).
    pub recurrent: bool,
}

/// One tracked layer of a module, for the active-unit picture.
#[derive(Debug, Clone, Serialize)]
pub struct UnitsView {
    pub layer: String,
    pub kind: String,
    /// The units' grid; `kept` is its flattening (row-major).
    pub grid: Vec<usize>,
    pub kept: Vec<u8>,
    /// A recurrent layer's per-gate mask: the grid's columns are gate columns.
    pub gates: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    pub model: ModelId,
    pub class: usize,
    pub class_id: ClassId,
    pub class_name: String,
    pub concerned: usize,
    pub unconcerned: usize,
    pub kept_units: usize,
    pub total_units: usize,
    pub jaccard_units: f32,
    /// The authors' weight-value Jaccard (see [`jaccard_ref`]).
    pub jaccard_ref: f32,
    pub kept_weights: f32,
    /// Balanced accuracy as a binary classifier on its data set's test split.
    pub accuracy: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecompositionInfo {
    pub model: ModelId,
    pub settings: Settings,
    pub recorded_samples: usize,
    pub modules: Vec<ModuleInfo>,
    /// Digest of all masks (see `Decomposition::digest`).
    pub mask_digest: String,
}

/// A module set added by [`Workbench::import_modules`].
#[derive(Debug, Clone, Serialize)]
pub struct ImportedModules {
    pub model: ModelInfo,
    pub decomposition: DecompositionInfo,
}

/// What [`Workbench::add_file`] added: a model, and its decomposition for a module set.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedFile {
    pub model: ModelInfo,
    pub decomposition: Option<DecompositionInfo>,
}

/// Every picked module's concerned probability for one input, and the
/// composed answer (index into `picks`).
#[derive(Debug, Clone, Serialize)]
pub struct TryResult {
    /// Each picked module's concerned probability (per-step models: at the last step).
    pub scores: Vec<f32>,
    /// Index into the picks of the winning module (per-step: at the last step).
    pub answer: usize,
    /// Per-step models only: the winning pick at every step.
    pub step_answers: Vec<usize>,
}

/// See [`Workbench::composition_scores`].
#[derive(Debug, Clone)]
pub struct CompositionScores {
    /// `N × sample_len`, as stored in the data sets.
    pub samples: Vec<f32>,
    pub sample_shape: Vec<usize>,
    /// `rows[pick][sample]`: the pick's concerned probability.
    pub rows: Vec<Vec<f32>>,
    /// Per sample: the composed answer, an index into the composition's classes.
    pub answers: Vec<u32>,
}

/// Which module to use for a class: module `class` of model `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
pub struct Pick {
    pub model: ModelId,
    pub class: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComposeResult {
    #[serde(flatten)]
    pub composition: Composition,
    pub class_names: Vec<String>,
    /// The base model restricted to the composition's classes of its own data
    /// set (argmax over those outputs, on those classes' test samples): the
    /// fair baseline for the composed accuracy (ALGORITHMS.md §7).
    pub model_accuracy: Option<f32>,
}

/// Whole-sequence scores of an encoder–decoder task (see
/// [`Workbench::sequence_scores`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceScores {
    pub sequences: usize,
    /// Composed modules: share of sequences whose every step is right.
    pub exact_match: f32,
    /// Composed modules: corpus BLEU-4 over output tokens, up to `<end>`.
    pub bleu: f32,
    /// The same for the base model, when one is given.
    pub model_exact_match: Option<f32>,
    pub model_bleu: Option<f32>,
}

struct ModelEntry {
    model: Model,
    dataset: DatasetId,
    accuracy: f32,
    /// Model outputs on its data set's test split (`samples × classes`).
    test_probs: Vec<f32>,
    decomposition: Option<Decomposition>,
    /// `scores[module][dataset]`: the module's concerned probability on that
    /// data set's test split, computed once (lazily for other data sets).
    scores: Vec<Vec<Option<Vec<f32>>>>,
    infos: Vec<ModuleInfo>,
}

#[derive(Default)]
pub struct Workbench {
    datasets: Vec<Dataset>,
    /// `class_ids[d][c]`: the global id of data set d's class c.
    class_ids: Vec<Vec<ClassId>>,
    /// Per global id: (sample shape, name) and the data sets that have it.
    classes: Vec<(Vec<usize>, String, Vec<DatasetId>)>,
    models: Vec<ModelEntry>,
    /// Module-update rows per pick list (see [`Self::compose_updated`]).
    updated: HashMap<Vec<Pick>, Vec<Vec<f32>>>,
}

impl Workbench {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_dataset(&mut self, bytes: &[u8], name: &str) -> Result<DatasetInfo> {
        let d = read_npz_dataset(bytes, name)?;
        Ok(self.add_data(d))
    }

    /// Adds an IDX images file with its labels file (see [`read_idx_dataset`]).
    pub fn add_idx_dataset(&mut self, images: &[u8], labels: &[u8], name: &str) -> Result<DatasetInfo> {
        let d = read_idx_dataset(images, labels, name)?;
        Ok(self.add_data(d))
    }

    /// Adds a data set already read (e.g. from IDX files by the CLI).
    pub fn add_data(&mut self, d: Dataset) -> DatasetInfo {
        let id = self.datasets.len();
        let ids = d
            .class_names
            .iter()
            .map(|n| {
                let known = self.classes.iter().position(|(shape, name, _)| *shape == d.sample_shape && name == n);
                let c = known.unwrap_or_else(|| {
                    self.classes.push((d.sample_shape.clone(), n.clone(), vec![]));
                    self.classes.len() - 1
                });
                self.classes[c].2.push(id);
                c as ClassId
            })
            .collect();
        self.class_ids.push(ids);
        self.datasets.push(d);
        self.dataset_info(self.datasets.len() - 1)
    }

    pub fn dataset_info(&self, id: DatasetId) -> DatasetInfo {
        let d = &self.datasets[id];
        DatasetInfo {
            id,
            name: d.name.clone(),
            sample_shape: d.sample_shape.clone(),
            class_names: d.class_names.clone(),
            vocab: d.vocab.clone(),
            train: d.train.len(),
            test: d.test.len(),
        }
    }

    /// Loads a model file and evaluates it on `dataset`'s test split. u8-range
    /// image data is scaled to [0, 1] (the bundled models' convention) unless
    /// `input_scale` says otherwise.
    pub fn add_model(&mut self, bytes: &[u8], file_name: &str, dataset: DatasetId, input_scale: Option<f32>) -> Result<ModelInfo> {
        let d = self.datasets.get(dataset).ok_or_else(|| Error::invalid(format!("no data set {dataset}")))?;
        let mut model = load_model(bytes, file_name)?;
        d.check_fits(&model)?;
        // Token ids and vector sequences are used as stored.
        let default_scale = if model.input.kind == InputKind::Image { 1.0 / 255.0 } else { 1.0 };
        model.input.scale = input_scale.unwrap_or(default_scale);
        model.class_names = class_names_on(&model, d);
        let id = self.push_model(model, dataset)?;
        Ok(self.model_info(id))
    }

    /// A model file or a saved module set (`.remodule` holding modules,
    /// added by [`Self::import_modules`], its decomposition as saved): what an
    /// upload or the CLI's model argument may be.
    pub fn add_file(&mut self, bytes: &[u8], file_name: &str, dataset: DatasetId) -> Result<LoadedFile> {
        if native::sniff(bytes) && native::contents(bytes).ok() == Some(native::Contents::Modules) {
            let set = self.import_modules(bytes, file_name, dataset)?;
            return Ok(LoadedFile { model: set.model, decomposition: Some(set.decomposition) });
        }
        Ok(LoadedFile { model: self.add_model(bytes, file_name, dataset, None)?, decomposition: None })
    }

    /// Evaluates a model that fits data set `dataset` on its test split and adds it.
    fn push_model(&mut self, model: Model, dataset: DatasetId) -> Result<ModelId> {
        let d = &self.datasets[dataset];
        let out = forward(&model, &test_inputs(&model, d), d.test.len(), None, false, &mut |_, _| true)?;
        let c = model.classes();
        let correct = out.probs.chunks_exact(c).zip(&d.test.y).filter(|(p, y)| argmax(p) == **y as usize).count();
        let accuracy = correct as f32 / d.test.y.len().max(1) as f32;
        self.models.push(ModelEntry {
            model,
            dataset,
            accuracy,
            test_probs: out.probs,
            decomposition: None,
            scores: vec![],
            infos: vec![],
        });
        Ok(self.models.len() - 1)
    }

    /// Adds a saved module set (`.remodule`, see `formats::native`) on data
    /// set `dataset`: its model with its decomposition as saved, not
    /// re-decomposed; the score cache is filled as [`Self::decompose`] does.
    /// The model keeps the input scaling it was decomposed with. The set must
    /// have one module per class of the data set, and the data set's class
    /// names (a set saved by the workbench has them).
    pub fn import_modules(&mut self, bytes: &[u8], file_name: &str, dataset: DatasetId) -> Result<ImportedModules> {
        let d = self.datasets.get(dataset).ok_or_else(|| Error::invalid(format!("no data set {dataset}")))?;
        let stem = file_name.rsplit('/').next().unwrap_or(file_name);
        let (model, dec) = native::load_modules(bytes, stem.split('.').next().unwrap_or(stem))?;
        d.check_fits(&model)?;
        // Modules of another data set would score meaningless rows.
        let names = class_names_on(&model, d);
        if model.class_names != names {
            return Err(Error::invalid(format!(
                "module set '{}' was decomposed for classes {:?}; data set '{}' has {:?}",
                model.name, model.class_names, d.name, d.class_names
            )));
        }
        if dec.modules.len() != d.class_names.len() || dec.modules.iter().enumerate().any(|(i, m)| m.class != i) {
            let classes: Vec<usize> = dec.modules.iter().map(|m| m.class).collect();
            return Err(Error::invalid(format!(
                "module set '{}' has modules for classes {classes:?}; data set '{}' needs one for each of its {} classes",
                model.name,
                d.name,
                d.class_names.len()
            )));
        }
        let id = self.push_model(model, dataset)?;
        match self.install(id, dec, &mut |_| true) {
            Ok(decomposition) => Ok(ImportedModules { model: self.model_info(id), decomposition }),
            Err(e) => {
                self.models.pop();
                Err(e)
            }
        }
    }

    /// Model `id` and its decomposition as a module set (`.remodule`).
    pub fn export_modules(&self, id: ModelId) -> Result<Vec<u8>> {
        let e = self.entry(id)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
        native::save_modules(&e.model, dec)
    }

    /// The composition `picks` as one ONNX graph (`formats::onnx::export`):
    /// input = samples as stored, outputs `scores` (a column per pick, in
    /// order), `argmax` (an index into [`ComposeResult::class_names`]) and,
    /// with `softmax`, `softmax`.
    pub fn export_onnx(&self, picks: &[Pick], softmax: bool) -> Result<Vec<u8>> {
        use crate::formats::onnx::export::{ExportModule, ExportOptions, export_composition};
        if picks.is_empty() {
            return Err(Error::invalid("select at least one module to export"));
        }
        let datasets = self.pick_datasets(picks)?;
        let row_class = self.pick_classes(picks)?;
        let mut classes = row_class.clone();
        classes.sort_unstable();
        classes.dedup();
        let mut modules = Vec::with_capacity(picks.len());
        let mut names = Vec::with_capacity(picks.len());
        for (p, c) in picks.iter().zip(&row_class) {
            let e = self.entry(p.model)?;
            let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
            let m =
                dec.modules.get(p.class).ok_or_else(|| Error::invalid(format!("model '{}' has no module {}", e.model.name, p.class)))?;
            modules.push(ExportModule {
                model: &e.model,
                masks: &m.masks,
                class: m.class,
                head: m.head,
                label: classes.binary_search(c).unwrap_or(0),
            });
            names.push(format!("{} ({})", self.class_name(*c, &datasets), e.model.name));
        }
        let class_names: Vec<String> = classes.iter().map(|&c| self.class_name(c, &datasets)).collect();
        let input_shape = Some(self.datasets[datasets[0]].sample_shape.clone());
        export_composition(
            &modules,
            &class_names,
            &ExportOptions { name: "remodule_composition".into(), softmax, module_names: names, input_shape },
        )
    }

    /// What an exported composition should answer on its evaluation samples:
    /// the samples as stored (the data sets [`Self::compose`] evaluates on,
    /// in order), each pick's score row and the composed answers (indices
    /// into the composition's classes, ties to the first pick).
    pub fn composition_scores(&mut self, picks: &[Pick]) -> Result<CompositionScores> {
        if picks.is_empty() {
            return Err(Error::invalid("select at least one module to compose"));
        }
        let (datasets, rows) = self.composition_rows(picks)?;
        let row_class = self.pick_classes(picks)?;
        let mut classes = row_class.clone();
        classes.sort_unstable();
        classes.dedup();
        let n = rows.first().map_or(0, Vec::len);
        let answers = (0..n)
            .map(|s| {
                let best = argmax(&rows.iter().map(|r| r[s]).collect::<Vec<f32>>());
                classes.binary_search(&row_class[best]).unwrap_or(0) as u32
            })
            .collect();
        let samples = datasets.iter().flat_map(|&d| self.datasets[d].test.x.iter().copied()).collect();
        let sample_shape = self.datasets[datasets[0]].sample_shape.clone();
        Ok(CompositionScores { samples, sample_shape, rows, answers })
    }

    fn pick_classes(&self, picks: &[Pick]) -> Result<Vec<ClassId>> {
        picks.iter().map(|p| self.class_id(p.model, p.class)).collect()
    }

    /// What module `class` of model `id` keeps, per tracked layer (the page's
    /// active-unit picture): its unit grid (`[F]` dense, `[H, W, C]` conv
    /// positions, `[T, U]` recurrent steps) and one 0/1 per unit.
    pub fn module_units(&self, id: ModelId, class: usize) -> Result<Vec<UnitsView>> {
        let e = self.entry(id)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
        let m = dec.modules.get(class).ok_or_else(|| Error::invalid(format!("model '{}' has no module {class}", e.model.name)))?;
        Ok(m.masks
            .nodes
            .iter()
            .map(|(&node, mask)| {
                let n = &e.model.nodes[node];
                // Per-gate masks show their gate columns (`[T, G·U]`, Keras gate blocks side by side).
                let grid = match (&n.op, &mask.gates) {
                    (Op::Recurrent(r), Some(_)) => vec![e.model.steps(node), r.cell.gates() * r.units],
                    (Op::Recurrent(r), None) => vec![e.model.steps(node), r.units],
                    _ => n.shape.clone(),
                };
                let bits = mask.gates.as_ref().unwrap_or(&mask.keep);
                UnitsView {
                    layer: n.name.clone(),
                    kind: n.op.kind().into(),
                    grid,
                    kept: (0..bits.len()).map(|u| bits.contains(u) as u8).collect(),
                    gates: mask.gates.is_some(),
                }
            })
            .collect())
    }

    /// Jaccard index between every two modules of model `id`, over their kept
    /// tracked units (|A ∩ B| ÷ |A ∪ B|): how much of the network they share.
    pub fn module_jaccard(&self, id: ModelId) -> Result<Vec<Vec<f32>>> {
        let e = self.entry(id)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
        // Per-gate masks compare gate columns.
        let sets: Vec<Vec<&BitSet>> =
            dec.modules.iter().map(|m| m.masks.nodes.values().map(|u| u.gates.as_ref().unwrap_or(&u.keep)).collect()).collect();
        let pair = |a: &[&BitSet], b: &[&BitSet]| {
            let (mut both, mut any) = (0usize, 0usize);
            for (x, y) in a.iter().zip(b) {
                for (wx, wy) in x.words().iter().zip(y.words()) {
                    both += (wx & wy).count_ones() as usize;
                    any += (wx | wy).count_ones() as usize;
                }
            }
            if any == 0 { 1.0 } else { both as f32 / any as f32 }
        };
        Ok(sets.iter().map(|a| sets.iter().map(|b| pair(a, b)).collect()).collect())
    }

    pub fn model_info(&self, id: ModelId) -> ModelInfo {
        let e = &self.models[id];
        let layers = e
            .model
            .nodes
            .iter()
            .map(|n| LayerInfo {
                name: n.name.clone(),
                kind: n.op.kind().into(),
                shape: n.shape.clone(),
                params: n.params(),
                activation: n.op.activation().filter(|_| !matches!(n.op, Op::Activation(_))).map(|a| format!("{a:?}").to_lowercase()),
            })
            .collect();
        ModelInfo {
            id,
            name: e.model.name.clone(),
            dataset: e.dataset,
            params: e.model.params(),
            layers,
            class_names: e.model.class_names.clone(),
            accuracy: e.accuracy,
            input_kind: e.model.input.kind,
            recurrent: e.model.is_recurrent(),
        }
    }

    fn entry(&self, id: ModelId) -> Result<&ModelEntry> {
        self.models.get(id).ok_or_else(|| Error::invalid(format!("no model {id}")))
    }

    /// Decomposes model `id` into one module per class of its data set and
    /// fills the score cache for its data set. `progress(fraction)` may cancel.
    pub fn decompose(&mut self, id: ModelId, settings: &Settings, progress: &mut dyn FnMut(f32) -> bool) -> Result<DecompositionInfo> {
        let e = self.entry(id)?;
        let dec = decompose(&e.model, &self.datasets[e.dataset], settings, &mut |f| progress(0.5 * f))?;
        self.install(id, dec, &mut |f| progress(0.5 + 0.5 * f))
    }

    /// Makes `dec` model `id`'s decomposition: scores every module on its data
    /// set's test split (the score cache) and computes the module metrics.
    fn install(&mut self, id: ModelId, dec: Decomposition, progress: &mut dyn FnMut(f32) -> bool) -> Result<DecompositionInfo> {
        let e = self.entry(id)?;
        let d = &self.datasets[e.dataset];
        let mut scores = Vec::with_capacity(dec.modules.len());
        let mut infos = Vec::with_capacity(dec.modules.len());
        let x = test_inputs(&e.model, d);
        let labels = self.global_labels(e.dataset);
        let total = dec.modules.len();
        for (i, m) in dec.modules.iter().enumerate() {
            let row = concerned_scores(&e.model, m, &x, d.test.len(), &mut |_, _| true)?;
            let class_id = self.class_ids[e.dataset][m.class];
            infos.push(ModuleInfo {
                model: id,
                class: m.class,
                class_id,
                class_name: d.class_names[m.class].clone(),
                concerned: m.concerned,
                unconcerned: m.unconcerned,
                kept_units: m.kept_units,
                total_units: m.total_units,
                jaccard_units: m.jaccard_units(),
                jaccard_ref: jaccard_ref(&e.model, m),
                kept_weights: kept_weights(&e.model, m),
                accuracy: binary_accuracy(&row, class_id, &labels),
            });
            let mut per_dataset = vec![None; self.datasets.len()];
            per_dataset[e.dataset] = Some(row);
            scores.push(per_dataset);
            if !progress((i + 1) as f32 / total as f32) {
                return Err(Error::Cancelled);
            }
        }
        let info = DecompositionInfo {
            model: id,
            settings: dec.settings.clone(),
            recorded_samples: dec.recorded_samples,
            modules: infos.clone(),
            mask_digest: dec.digest(),
        };
        self.updated.retain(|picks, _| picks.iter().all(|p| p.model != id));
        let e = &mut self.models[id];
        e.decomposition = Some(dec);
        e.scores = scores;
        e.infos = infos;
        Ok(info)
    }

    /// Raw values and label(s) of test sample `index` of data set `d` (for
    /// the page's sample strip): one label, or one per step.
    pub fn test_sample(&self, d: DatasetId, index: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        let data = self.datasets.get(d).ok_or_else(|| Error::invalid(format!("no data set {d}")))?;
        if index >= data.test.len() {
            return Err(Error::invalid(format!("data set '{}' has {} test samples, not {}", data.name, data.test.len(), index + 1)));
        }
        let len = data.sample_len();
        let steps = data.test.steps;
        Ok((data.test.x[index * len..(index + 1) * len].to_vec(), data.test.y[index * steps..(index + 1) * steps].to_vec()))
    }

    /// Scores one raw input (same range as the data, e.g. pixels 0–255) with
    /// every picked module and composes them: the "try it" panel.
    pub fn try_input(&self, picks: &[Pick], raw: &[f32]) -> Result<TryResult> {
        if picks.is_empty() {
            return Err(Error::invalid("select at least one module to compose"));
        }
        let mut rows = Vec::with_capacity(picks.len());
        for p in picks {
            let e = self.entry(p.model)?;
            let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
            let m =
                dec.modules.get(p.class).ok_or_else(|| Error::invalid(format!("model '{}' has no module {}", e.model.name, p.class)))?;
            if raw.len() != e.model.input_len() {
                return Err(Error::shape(format!("input for model '{}'", e.model.name), e.model.input_len(), raw.len()));
            }
            if raw.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid("the input contains NaN or infinite values"));
            }
            let x: Vec<f32> = raw.iter().map(|v| v * e.model.input.scale + e.model.input.offset).collect();
            rows.push(concerned_scores(&e.model, m, &x, 1, &mut |_, _| true)?);
        }
        let steps = rows.iter().map(Vec::len).min().unwrap_or(1);
        let at = |t: usize| rows.iter().map(|r| r[t]).collect::<Vec<f32>>();
        let step_answers = if steps > 1 { (0..steps).map(|t| argmax(&at(t))).collect() } else { vec![] };
        let scores = at(steps - 1);
        Ok(TryResult { answer: argmax(&scores), scores, step_answers })
    }

    /// Token ids (raw input for [`Self::try_input`]) for typed text, with
    /// data set `dataset`'s vocabulary.
    pub fn encode_text(&self, dataset: DatasetId, text: &str) -> Result<Vec<f32>> {
        self.datasets.get(dataset).ok_or_else(|| Error::invalid(format!("no data set {dataset}")))?.encode_text(text)
    }

    /// The global class id of class `class` of model `model`'s data set.
    /// The global id of data set `d`'s class `class`.
    pub fn dataset_class_id(&self, d: DatasetId, class: usize) -> Result<ClassId> {
        self.class_ids
            .get(d)
            .and_then(|ids| ids.get(class))
            .copied()
            .ok_or_else(|| Error::invalid(format!("data set {d} has no class {class}")))
    }

    pub fn class_id(&self, model: ModelId, class: usize) -> Result<ClassId> {
        let ids = &self.class_ids[self.entry(model)?.dataset];
        ids.get(class).copied().ok_or_else(|| Error::invalid(format!("model {model} has no class {class}")))
    }

    fn global_labels(&self, d: DatasetId) -> Vec<ClassId> {
        self.datasets[d].test.y.iter().map(|&y| self.class_ids[d][y as usize]).collect()
    }

    /// Makes sure module `p`'s scores on data set `d` are cached.
    fn ensure_scores(&mut self, p: Pick, d: DatasetId) -> Result<()> {
        let e = self.entry(p.model)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
        let m = dec.modules.get(p.class).ok_or_else(|| Error::invalid(format!("model '{}' has no module {}", e.model.name, p.class)))?;
        if e.scores[p.class].get(d).is_some_and(Option::is_some) {
            return Ok(());
        }
        let data = &self.datasets[d];
        data.check_fits_input(&e.model).map_err(|_| {
            Error::invalid(format!(
                "module '{}' of model '{}' cannot read data set '{}' (input shapes differ)",
                e.infos[p.class].class_name, e.model.name, data.name
            ))
        })?;
        let row = concerned_scores(&e.model, m, &test_inputs(&e.model, data), data.test.len(), &mut |_, _| true)?;
        let slot = &mut self.models[p.model].scores[p.class];
        slot.resize(self.datasets.len(), None);
        slot[d] = Some(row);
        Ok(())
    }

    /// Composes the picked modules and evaluates them on the test splits of
    /// every data set their classes come from. Cached rows make this an
    /// argmax; a module new to a data set is scored once first. `base` names
    /// the model to compare with (see `ComposeResult::model_accuracy`).
    pub fn compose(&mut self, picks: &[Pick], base: Option<ModelId>) -> Result<ComposeResult> {
        let (datasets, rows) = self.composition_rows(picks)?;
        self.compose_rows(picks, &rows, &datasets, base)
    }

    /// The data sets a composition is evaluated on and each pick's cached score row over them.
    fn composition_rows(&mut self, picks: &[Pick]) -> Result<(Vec<DatasetId>, Vec<Vec<f32>>)> {
        let datasets = self.pick_datasets(picks)?;
        for p in picks {
            for &d in &datasets {
                self.ensure_scores(*p, d)?;
            }
        }
        let rows: Vec<Vec<f32>> = picks
            .iter()
            .map(|p| datasets.iter().flat_map(|&d| self.models[p.model].scores[p.class][d].as_deref().unwrap().iter().copied()).collect())
            .collect();
        Ok((datasets, rows))
    }

    /// As [`Self::compose`], after **module update** (ICSE'22 §3.5, for
    /// reuse across data sets): each picked module's TI is re-run with
    /// samples of the other picked classes — from their own data sets — as
    /// its unconcerned inputs, and its row recomputed. One recorded pass per
    /// picked module over its concerned samples plus the others'; the rows
    /// are cached per pick list, so toggling back is instant.
    pub fn compose_updated(&mut self, picks: &[Pick], base: Option<ModelId>) -> Result<ComposeResult> {
        let datasets = self.pick_datasets(picks)?;
        let key = picks.to_vec();
        if !self.updated.contains_key(&key) {
            let rows = picks.iter().map(|p| self.updated_row(*p, picks, &datasets)).collect::<Result<Vec<_>>>()?;
            self.updated.insert(key.clone(), rows);
        }
        let rows = self.updated[&key].clone();
        self.compose_rows(picks, &rows, &datasets, base)
    }

    /// As [`Self::compose`], with **verification** (seed 002, Fig. 1 option
    /// 4): a sample the composition answers with one of the `watched` classes
    /// is answered again by `verifier`'s modules (for the composition's
    /// classes it has; the others cannot win then).
    pub fn compose_verified(
        &mut self,
        picks: &[Pick],
        watched: &[ClassId],
        verifier: ModelId,
        base: Option<ModelId>,
    ) -> Result<ComposeResult> {
        let datasets = self.pick_datasets(picks)?;
        let vd = self.entry(verifier)?.dataset;
        let checks: Vec<Option<Pick>> = picks
            .iter()
            .map(|p| {
                let id = self.class_ids[self.models[p.model].dataset][p.class];
                self.class_ids[vd].iter().position(|&c| c == id).map(|class| Pick { model: verifier, class })
            })
            .collect();
        for p in picks.iter().chain(checks.iter().flatten()) {
            for &d in &datasets {
                self.ensure_scores(*p, d)?;
            }
        }
        let row = |p: &Pick| -> Vec<f32> {
            datasets.iter().flat_map(|&d| self.models[p.model].scores[p.class][d].as_deref().unwrap().iter().copied()).collect()
        };
        let mut rows: Vec<Vec<f32>> = picks.iter().map(row).collect();
        let second: Vec<Option<Vec<f32>>> = checks.iter().map(|c| c.as_ref().map(row)).collect();
        let row_class: Vec<ClassId> = picks.iter().map(|p| self.class_ids[self.models[p.model].dataset][p.class]).collect();
        let n = rows.first().map_or(0, Vec::len);
        for s in 0..n {
            let best = (0..rows.len()).fold(0, |b, m| if rows[m][s] > rows[b][s] { m } else { b });
            if watched.contains(&row_class[best]) {
                for (r, v) in rows.iter_mut().zip(&second) {
                    r[s] = v.as_ref().map_or(-1.0, |v| v[s]);
                }
            }
        }
        self.compose_rows(picks, &rows, &datasets, base)
    }

    /// The data sets a composition is evaluated on: those the picks' classes
    /// come from, ascending — except one whose classes another of them has
    /// too (the 1-vs-7 subset beside the digits): its samples would be
    /// counted twice.
    fn pick_datasets(&self, picks: &[Pick]) -> Result<Vec<DatasetId>> {
        let mut datasets: Vec<DatasetId> = picks.iter().map(|p| self.entry(p.model).map(|e| e.dataset)).collect::<Result<_>>()?;
        datasets.sort_unstable();
        datasets.dedup();
        let covers = |big: DatasetId, small: DatasetId| self.class_ids[small].iter().all(|c| self.class_ids[big].contains(c));
        let keep: Vec<DatasetId> =
            datasets.iter().copied().filter(|&d| !datasets.iter().any(|&o| o != d && covers(o, d) && (!covers(d, o) || o < d))).collect();
        Ok(keep)
    }

    /// Pick `p`'s module re-decomposed against the other picks' classes, scored on `datasets`.
    fn updated_row(&self, p: Pick, picks: &[Pick], datasets: &[DatasetId]) -> Result<Vec<f32>> {
        let e = self.entry(p.model)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::invalid(format!("model '{}' is not decomposed yet", e.model.name)))?;
        let s = &dec.settings;
        let own = &self.datasets[e.dataset];
        if own.train.steps > 1 {
            return Err(Error::invalid("module update works on per-sample tasks, not per-step ones"));
        }
        let first = |d: &Dataset, class: usize, k: usize| -> Vec<usize> {
            (0..d.train.len()).filter(|&r| d.train.y[r] as usize == class).take(k).collect()
        };
        let own_id = self.class_ids[e.dataset][p.class];
        let concerned = first(own, p.class, s.samples_per_class);
        let mut others: Vec<(DatasetId, usize)> = vec![];
        for q in picks {
            let qd = self.entry(q.model)?.dataset;
            let id = self.class_ids[qd][q.class];
            if id != own_id && !others.iter().any(|&(d, c)| self.class_ids[d][c] == id) {
                others.push((qd, q.class));
            }
        }
        let per_class = ((concerned.len() as f32 * s.tangling_ratio / others.len().max(1) as f32).floor() as usize).max(1);
        let mut x = own.inputs(&e.model, &own.train, &concerned);
        let mut n_other = 0;
        for &(d, c) in &others {
            let data = &self.datasets[d];
            data.check_fits_input(&e.model)?;
            let rows = first(data, c, per_class);
            n_other += rows.len();
            x.extend(data.inputs(&e.model, &data.train, &rows));
        }
        let n = concerned.len() + n_other;
        let out = forward(&e.model, &x, n, None, true, &mut |_, _| true)?;
        let rec = out.recording.expect("recording was requested");
        let c_set = BitSet::from_indices(n, 0..concerned.len());
        let u_set = BitSet::from_indices(n, concerned.len()..n);
        let masks = module_masks(&e.model, &rec, p.class, &c_set, &u_set, s, &ColumnCache::default());
        let module =
            Module { class: p.class, head: s.head, masks, concerned: concerned.len(), unconcerned: n_other, kept_units: 0, total_units: 0 };
        let mut row = vec![];
        for &d in datasets {
            let data = &self.datasets[d];
            row.extend(concerned_scores(&e.model, &module, &test_inputs(&e.model, data), data.test.len(), &mut |_, _| true)?);
        }
        Ok(row)
    }

    fn compose_rows(&self, picks: &[Pick], rows: &[Vec<f32>], datasets: &[DatasetId], base: Option<ModelId>) -> Result<ComposeResult> {
        let labels: Vec<ClassId> = datasets.iter().flat_map(|&d| self.global_labels(d)).collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let row_class: Vec<ClassId> = picks.iter().map(|p| self.class_ids[self.models[p.model].dataset][p.class]).collect();
        let composition = compose(&refs, &row_class, &labels)?;
        let class_names = composition.classes.iter().map(|&c| self.class_name(c, datasets)).collect();
        let model_accuracy = base.map(|b| self.restricted_accuracy(b, &composition.classes)).transpose()?.flatten();
        Ok(ComposeResult { composition, class_names, model_accuracy })
    }

    /// Accuracy of model `id` when it may only answer `classes` (global ids),
    /// on its test samples of those classes; `None` if none are its own.
    fn restricted_accuracy(&self, id: ModelId, classes: &[ClassId]) -> Result<Option<f32>> {
        let e = self.entry(id)?;
        let ids = &self.class_ids[e.dataset];
        let own: Vec<usize> = (0..ids.len().min(e.model.classes())).filter(|&c| classes.contains(&ids[c])).collect();
        if own.is_empty() {
            return Ok(None);
        }
        let c = e.model.classes();
        let (mut n, mut correct) = (0usize, 0usize);
        for (p, &y) in e.test_probs.chunks_exact(c).zip(&self.datasets[e.dataset].test.y) {
            if own.contains(&(y as usize)) {
                n += 1;
                let best = own.iter().copied().fold(own[0], |b, k| if p[k] > p[b] { k } else { b });
                correct += (best == y as usize) as usize;
            }
        }
        Ok(Some(correct as f32 / n.max(1) as f32))
    }

    /// A class's name; prefixed with its data set when the composition spans
    /// several (`datasets`) and the class belongs to only one of them.
    fn class_name(&self, c: ClassId, datasets: &[DatasetId]) -> String {
        let (_, name, sets) = &self.classes[c as usize];
        let among: Vec<&DatasetId> = sets.iter().filter(|d| datasets.contains(d)).collect();
        match among.as_slice() {
            [d] if datasets.len() > 1 => format!("{}:{}", self.datasets[**d].name, name),
            _ => name.clone(),
        }
    }
}

impl Workbench {
    /// Encoder–decoder tasks (per-step labels on one data set): the composed
    /// picks' per-step answers (argmax over modules, as [`Self::compose`])
    /// read as one output per test sequence, cut at the first step answered
    /// with the class named `<end>`, against the references cut the same
    /// way: exact match and corpus BLEU-4 ([`crate::engine::metrics`]); also for
    /// model `base`'s own argmax answers.
    pub fn sequence_scores(&mut self, picks: &[Pick], base: Option<ModelId>) -> Result<SequenceScores> {
        let datasets = self.pick_datasets(picks)?;
        let [d] = datasets[..] else { return Err(Error::invalid("sequence scores need modules of one data set")) };
        if picks.iter().any(|p| self.models[p.model].dataset != d) {
            return Err(Error::invalid("sequence scores need modules of one data set"));
        }
        let data = &self.datasets[d];
        let steps = data.test.steps;
        if steps < 2 {
            return Err(Error::invalid(format!("data set '{}' has one label per sample, not an output sequence", data.name)));
        }
        for p in picks {
            self.ensure_scores(*p, d)?;
        }
        let data = &self.datasets[d];
        let end = data.class_names.iter().position(|n| n == "<end>").map(|c| c as u32);
        let rows: Vec<&[f32]> = picks.iter().map(|p| self.models[p.model].scores[p.class][d].as_deref().unwrap()).collect();
        let composed: Vec<u32> = (0..data.test.y.len())
            .map(|i| picks[(0..rows.len()).fold(0, |b, m| if rows[m][i] > rows[b][i] { m } else { b })].class as u32)
            .collect();
        let split = |v: &[u32]| -> Vec<Vec<u32>> { v.chunks_exact(steps).map(|s| crate::engine::metrics::until_end(s, end)).collect() };
        let refs = split(&data.test.y);
        let cand = split(&composed);
        let model = match base {
            Some(b) => {
                let e = self.entry(b)?;
                if e.dataset != d {
                    return Err(Error::invalid(format!("model '{}' is not a model of data set '{}'", e.model.name, data.name)));
                }
                Some(split(&e.test_probs.chunks_exact(e.model.classes()).map(|p| argmax(p) as u32).collect::<Vec<_>>()))
            }
            None => None,
        };
        use crate::engine::metrics::{bleu, exact_match};
        Ok(SequenceScores {
            sequences: refs.len(),
            exact_match: exact_match(&cand, &refs),
            bleu: bleu(&cand, &refs),
            model_exact_match: model.as_ref().map(|m| exact_match(m, &refs)),
            model_bleu: model.as_ref().map(|m| bleu(m, &refs)),
        })
    }

    /// Benchmark figures for model `id` on its data set (see `bench`).
    pub fn bench(&self, id: ModelId, clock: &dyn Fn() -> f64, decompose: bool) -> Result<crate::app::bench::ModelBench> {
        let e = self.entry(id)?;
        crate::app::bench::bench_model(&e.model, &self.datasets[e.dataset], clock, decompose)
    }
}

/// The model's class names on data set `d`: the data set's, then `c` for
/// outputs beyond them.
fn class_names_on(model: &Model, d: &Dataset) -> Vec<String> {
    (0..model.classes()).map(|c| d.class_names.get(c).cloned().unwrap_or_else(|| c.to_string())).collect()
}

/// Model input for a data set's whole test split.
fn test_inputs(model: &Model, d: &Dataset) -> Vec<f32> {
    let rows: Vec<usize> = (0..d.test.len()).collect();
    d.inputs(model, &d.test, &rows)
}

pub fn argmax(v: &[f32]) -> usize {
    (1..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

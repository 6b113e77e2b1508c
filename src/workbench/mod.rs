//! The workbench: the API the page (through `wasm.rs`) and the CLI call —
//! loaded data sets and models, their decompositions, and the score cache
//! that makes recomposition an argmax over cached rows.
//!
//! Classes get global ids (`ClassId`) so modules of models trained on
//! different data sets (digits and clothing) compose into one classifier.
//! Two data sets with the same sample shape share a class when they give it
//! the same name (English in language set A and in set B), so a module from
//! one can stand in for, or add to, the other's.
//!
//! Rooms: this file is the registry (ids, loading, lookups — each rule once);
//! `cache.rs` decomposes and keeps every module's score rows; `composition.rs`
//! composes rows (plain, module update, verification), scores sequences,
//! answers "try it" and exports; `views.rs` is what the page and CLI display.

mod cache;
mod composition;
mod views;

use std::collections::HashMap;

use serde::Serialize;

pub use composition::{ComposeMode, ComposeResult, CompositionScores, SequenceScores, TryResult};
pub use views::{
    DatasetInfo, DecompositionInfo, ImportedModules, LayerInfo, LoadedFile, ModelInfo, ModuleInfo, UnitsView, layer_infos,
    mean_off_diagonal,
};

use crate::engine::compose::{ClassId, argmax};
use crate::engine::data::{Dataset, InputOverride};
use crate::engine::decompose::{Decomposition, Module, Recorded, Settings};
use crate::engine::model::{Model, ModelBuilder, forward};
use crate::error::{Error, Result};
use crate::formats::dataset::{read_idx_dataset, read_npz_dataset};
use crate::formats::{file_stem, load_model, native};

pub type DatasetId = usize;

pub type ModelId = usize;

/// Which module to use for a class: module `class` of model `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
pub struct Pick {
    pub model: ModelId,
    pub class: usize,
}

struct ModelEntry {
    model: Model,
    dataset: DatasetId,
    accuracy: f32,
    /// Model outputs on its data set's test split (`samples × classes`).
    test_probs: Vec<f32>,
    decomposition: Option<Decomposition>,
    /// The last decomposition's recorded pass: another strength starts from it.
    recorded: Option<Recorded>,
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

    /// Loads a model file and evaluates it on `dataset`'s test split; its
    /// input goes through the input rule (`engine::data::input_map`), with
    /// `input`'s parts overriding it.
    pub fn add_model(&mut self, bytes: &[u8], file_name: &str, dataset: DatasetId, input: InputOverride) -> Result<ModelInfo> {
        let d = self.data(dataset)?;
        let mut model = load_model(bytes, file_name)?;
        d.check_fits(&model)?;
        input.apply_to(&mut model.input);
        // The builder's check of the map (finite, non-zero scale) on the given values.
        ModelBuilder::check_input(&model.input)?;
        model.class_names = class_names_on(&model, d);
        let id = self.push_model(model, dataset)?;
        Ok(self.model_info(id))
    }

    /// A model file or a saved module set (`.remodule` holding modules,
    /// added by [`Self::import_modules`], its decomposition as saved): what an
    /// upload or the CLI's model argument may be.
    /// A module set keeps the map it was decomposed with, so `input` must be empty for one.
    pub fn add_file(&mut self, bytes: &[u8], file_name: &str, dataset: DatasetId, input: InputOverride) -> Result<LoadedFile> {
        if native::sniff(bytes) && native::contents(bytes).ok() == Some(native::Contents::Modules) {
            if input.is_given() {
                return Err(Error::invalid(
                    "a module set keeps the input scaling it was decomposed with: --scale / --offset do not apply (give them when decomposing its source model)",
                ));
            }
            let set = self.import_modules(bytes, file_name, dataset)?;
            return Ok(LoadedFile { model: set.model, decomposition: Some(set.decomposition) });
        }
        Ok(LoadedFile { model: self.add_model(bytes, file_name, dataset, input)?, decomposition: None })
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
            recorded: None,
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
        let d = self.data(dataset)?;
        let (model, dec) = native::load_modules(bytes, file_stem(file_name))?;
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
    /// The set carries the input map it was decomposed with (its data set's).
    pub fn export_modules(&self, id: ModelId) -> Result<Vec<u8>> {
        let (e, dec) = self.decomposition(id)?;
        let map = self.datasets[e.dataset].input_map(&e.model);
        let mut model = e.model.clone();
        (model.input.scale, model.input.offset) = (Some(map.scale), Some(map.offset));
        native::save_modules(&model, dec)
    }

    fn entry(&self, id: ModelId) -> Result<&ModelEntry> {
        self.models.get(id).ok_or(Error::NoModel(id))
    }

    /// THE module lookup: model `p.model`'s entry and its module for class `p.class`.
    fn module(&self, p: Pick) -> Result<(&ModelEntry, &Module)> {
        let e = self.entry(p.model)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::NotDecomposed { model: e.model.name.clone() })?;
        let m = dec.modules.get(p.class).ok_or_else(|| Error::NoModule { model: e.model.name.clone(), class: p.class })?;
        Ok((e, m))
    }

    /// Model `id`'s decomposition.
    /// The settings model `id` was last decomposed with.
    pub fn settings_of(&self, id: ModelId) -> Result<Settings> {
        Ok(self.decomposition(id)?.1.settings.clone())
    }

    fn decomposition(&self, id: ModelId) -> Result<(&ModelEntry, &Decomposition)> {
        let e = self.entry(id)?;
        let dec = e.decomposition.as_ref().ok_or_else(|| Error::NotDecomposed { model: e.model.name.clone() })?;
        Ok((e, dec))
    }

    fn data(&self, id: DatasetId) -> Result<&Dataset> {
        self.datasets.get(id).ok_or(Error::NoDataset(id))
    }

    /// Model `id` as loaded (e.g. for benchmarks) and the data set it was loaded on.
    pub fn model(&self, id: ModelId) -> Result<(&Model, &Dataset)> {
        let e = self.entry(id)?;
        Ok((&e.model, &self.datasets[e.dataset]))
    }

    /// Raw values and label(s) of test sample `index` of data set `d` (for
    /// the page's sample strip): one label, or one per step.
    pub fn test_sample(&self, d: DatasetId, index: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        let data = self.data(d)?;
        if index >= data.test.len() {
            return Err(Error::invalid(format!("data set '{}' has {} test samples, not {}", data.name, data.test.len(), index + 1)));
        }
        let len = data.sample_len();
        let steps = data.test.steps;
        // As pixels 0–255 (what `try_input` takes), whatever range the file stores.
        let to_pixels = 255.0 / data.pixel_max();
        let x = data.test.x[index * len..(index + 1) * len].iter().map(|&v| if to_pixels == 1.0 { v } else { v * to_pixels }).collect();
        Ok((x, data.test.y[index * steps..(index + 1) * steps].to_vec()))
    }

    /// Token ids (raw input for [`Self::try_input`]) for typed text, with
    /// data set `dataset`'s vocabulary.
    pub fn encode_text(&self, dataset: DatasetId, text: &str) -> Result<Vec<f32>> {
        self.data(dataset)?.encode_text(text)
    }

    /// The global class id of class `class` of model `model`'s data set.
    /// The global id of data set `d`'s class `class`.
    pub fn dataset_class_id(&self, d: DatasetId, class: usize) -> Result<ClassId> {
        self.class_ids
            .get(d)
            .and_then(|ids| ids.get(class))
            .copied()
            .ok_or_else(|| Error::NoClass { owner: format!("data set {d}"), class })
    }

    pub fn class_id(&self, model: ModelId, class: usize) -> Result<ClassId> {
        let ids = &self.class_ids[self.entry(model)?.dataset];
        ids.get(class).copied().ok_or_else(|| Error::NoClass { owner: format!("model {model}"), class })
    }

    fn global_labels(&self, d: DatasetId) -> Vec<ClassId> {
        self.datasets[d].test.y.iter().map(|&y| self.class_ids[d][y as usize]).collect()
    }

    fn pick_classes(&self, picks: &[Pick]) -> Result<Vec<ClassId>> {
        picks.iter().map(|p| self.class_id(p.model, p.class)).collect()
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

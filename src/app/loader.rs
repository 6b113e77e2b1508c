//! THE loader: reads files into one workbench — each data set once (by
//! path), each model file or module set on its data set, decomposed when
//! asked. Composition files, the exercise checker, the tables, the catalog
//! and the CLI all load through it, so a file is read and named one way.

use std::collections::BTreeMap;

use crate::engine::data::InputOverride;
use crate::engine::decompose::{Relevance, Settings};
use crate::error::{Error, Result};
use crate::formats::dataset::read_dataset_file;
use crate::workbench::{DatasetId, LoadedFile, ModelId, Workbench};

/// Reads a file by the path a user or a plan gave (the CLI: the file system;
/// tests and the exercise checker: the repository).
pub type Read<'r> = &'r dyn Fn(&str) -> Result<Vec<u8>>;

pub struct Loader<'r> {
    pub wb: Workbench,
    read: Read<'r>,
    datasets: BTreeMap<String, DatasetId>,
}

impl<'r> Loader<'r> {
    pub fn new(read: Read<'r>) -> Self {
        Loader { wb: Workbench::new(), read, datasets: BTreeMap::new() }
    }

    /// The data set at `path` (`.npz`, or IDX images with their labels file
    /// next to them), added on first use under `name` (default: the file's stem).
    pub fn dataset(&mut self, path: &str, name: Option<&str>) -> Result<DatasetId> {
        if let Some(&d) = self.datasets.get(path) {
            return Ok(d);
        }
        let d = self.wb.add_data(read_dataset_file(path, name, self.read)?).id;
        self.datasets.insert(path.to_string(), d);
        Ok(d)
    }

    /// The model file or module set at `path` on data set `ds`, as loaded
    /// (a module set comes with its decomposition; a model has none yet).
    pub fn file(&mut self, path: &str, ds: DatasetId, input: InputOverride) -> Result<LoadedFile> {
        let bytes = (self.read)(path)?;
        self.wb.add_file(&bytes, path, ds, input).map_err(|e| e.in_file(path))
    }

    /// The model file at `path` on data set `ds`, decomposed with `settings`
    /// (defaults when `None`); a saved module set is used as saved, so it
    /// refuses settings.
    pub fn model(&mut self, path: &str, ds: DatasetId, settings: Option<&Settings>, input: InputOverride) -> Result<ModelId> {
        let f = self.file(path, ds, input)?;
        match (f.decomposition, settings) {
            (Some(_), Some(_)) => {
                Err(Error::invalid(format!("{path} is a module set: its modules are used as saved, so \"settings\" does not apply")))
            }
            (Some(_), None) => Ok(f.model.id),
            (None, s) => {
                self.wb.decompose(f.model.id, &s.cloned().unwrap_or_default(), &mut |_| true)?;
                Ok(f.model.id)
            }
        }
    }
}

/// A strength the user asked for (`what`: how they wrote it) that `model`'s
/// decomposition could not apply (`applied`: its settings as run) is an
/// error; the default strength quietly gives the faithful modules there.
/// `relevance: learned` asked by flag where no strength applies (a model class relevance does
/// not prune, or strength 0): there are no units for it to rank.
pub fn refuse_unapplied_relevance(what: &str, asked: Option<Relevance>, applied: &Settings, model: &str) -> Result<()> {
    match asked {
        Some(Relevance::Learned) if applied.strength == 0.0 => Err(Error::invalid(format!(
            "{what} learned ranks the units a class-relevance strength removes, but no strength applies to '{model}' here (strength 0, or a model class relevance does not prune): leave it out"
        ))),
        _ => Ok(()),
    }
}

pub fn refuse_unapplied_strength(what: &str, asked: Option<f32>, applied: &Settings, model: &str) -> Result<()> {
    match asked {
        Some(s) if s > 0.0 && applied.strength == 0.0 => Err(Error::invalid(format!(
            "{what} {s} does not apply to '{model}': class relevance prunes dense and convolutional layers of models with one answer per sample and the 2-unit head (use a strength of 0, or leave it out)"
        ))),
        _ => Ok(()),
    }
}

//! A composition described in a small JSON file (`remodule compose PLAN.json`):
//! which models to load (each with its data set and decomposition settings),
//! which module of which model answers each class, and optionally module
//! update or verification (ALGORITHMS.md §7). Example:
//!
//! ```json
//! {
//!   "models": {
//!     "faulty": { "model": "models/digits_mlp_faulty.keras", "data": "data/digits.npz" },
//!     "b": { "model": "models/digits_mlp_b.keras", "data": "data/digits.npz",
//!            "settings": { "technique": "mc-bi" } }
//!   },
//!   "modules": [ { "model": "faulty", "classes": ["0", "1", "2", "3", "4", "5", "6", "8", "9"] },
//!                { "model": "b", "classes": ["7"] } ],
//!   "base": "faulty"
//! }
//! ```
//! Paths are relative to the plan file. Classes are named as the data set
//! names them (or given as indices).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::engine::compose::ClassId;
use crate::engine::decompose::Settings;
use crate::error::{Error, Result};
use crate::workbench::{ComposeResult, DatasetId, ModelId, Pick, Workbench};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Short name → model.
    pub models: BTreeMap<String, PlanModel>,
    /// Which modules answer which classes, in voting order.
    pub modules: Vec<PlanModules>,
    /// The model whose own accuracy (restricted to the composed classes) is the baseline.
    #[serde(default)]
    pub base: Option<String>,
    /// Re-run tangling identification against the other picked classes (module update).
    #[serde(default)]
    pub update: bool,
    /// Seed 002's option 4: answers of these classes are checked by another model's modules.
    #[serde(default)]
    pub verify: Option<PlanVerify>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanModel {
    /// A model file (.keras, .h5, .onnx, .remodule) or a saved module set.
    pub model: String,
    /// Its data set (.npz).
    pub data: String,
    /// Decomposition settings; omitted fields take their defaults. Not allowed for module sets.
    #[serde(default)]
    pub settings: Option<Settings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanModules {
    pub model: String,
    /// Class names (or indices as numbers); omitted = every class of the model.
    #[serde(default)]
    pub classes: Option<Vec<ClassRef>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ClassRef {
    Index(usize),
    Name(String),
}

impl std::fmt::Display for ClassRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClassRef::Index(i) => write!(f, "#{i}"),
            ClassRef::Name(n) => write!(f, "'{n}'"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanVerify {
    pub classes: Vec<ClassRef>,
    pub by: String,
}

impl Plan {
    pub fn parse(bytes: &[u8]) -> Result<Plan> {
        serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("composition file: {e}")))
    }
}

/// Reads files into one workbench: each data set once (by path), each model
/// file or module set decomposed with its settings. The composition file, the
/// exercise checker and the CLI load through it.
pub struct Loader<'r> {
    pub wb: Workbench,
    read: &'r dyn Fn(&str) -> Result<Vec<u8>>,
    datasets: BTreeMap<String, DatasetId>,
}

impl<'r> Loader<'r> {
    pub fn new(read: &'r dyn Fn(&str) -> Result<Vec<u8>>) -> Self {
        Loader { wb: Workbench::new(), read, datasets: BTreeMap::new() }
    }

    /// The data set at `path` (.npz), added on first use under `name`.
    pub fn dataset(&mut self, path: &str, name: &str) -> Result<DatasetId> {
        if let Some(&d) = self.datasets.get(path) {
            return Ok(d);
        }
        let d = self.wb.add_dataset(&(self.read)(path)?, name).map_err(|e| in_file(path, e))?.id;
        self.datasets.insert(path.to_string(), d);
        Ok(d)
    }

    /// The model file at `path` on data set `ds`, decomposed with `settings`
    /// (defaults when `None`); a saved module set is used as saved, so it
    /// refuses settings.
    pub fn model(&mut self, path: &str, ds: DatasetId, settings: Option<&Settings>) -> Result<ModelId> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let f = self.wb.add_file(&(self.read)(path)?, name, ds).map_err(|e| in_file(path, e))?;
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

/// What a composition file asks for, loaded and decomposed.
pub struct Built {
    pub wb: Workbench,
    /// The modules in voting order.
    pub picks: Vec<Pick>,
    pub base: Option<ModelId>,
    pub mode: Mode,
}

/// How the picks are composed.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Plain,
    /// Module update (`"update": true`).
    Update,
    /// Answers of `watched` are checked by the modules of model `by`.
    Verify {
        watched: Vec<ClassId>,
        by: ModelId,
    },
}

impl Built {
    pub fn compose(&mut self) -> Result<ComposeResult> {
        match &self.mode {
            Mode::Plain => self.wb.compose(&self.picks, self.base),
            Mode::Update => self.wb.compose_updated(&self.picks, self.base),
            Mode::Verify { watched, by } => self.wb.compose_verified(&self.picks, watched, *by, self.base),
        }
    }
}

/// Loads and decomposes what `plan` describes; `read(path)` reads a file named
/// in the plan. `progress(message)` reports each step.
pub fn build(plan: &Plan, read: &dyn Fn(&str) -> Result<Vec<u8>>, progress: &mut dyn FnMut(&str)) -> Result<Built> {
    if plan.modules.is_empty() {
        return Err(Error::invalid("composition file: \"modules\" is empty"));
    }
    let mut loader = Loader::new(read);
    let mut ids: BTreeMap<&str, ModelId> = BTreeMap::new();
    for (key, m) in &plan.models {
        let ds = loader.dataset(&m.data, &file_stem(&m.data))?;
        progress(&format!("loading {key} ({})", m.model));
        let id = loader.model(&m.model, ds, m.settings.as_ref()).map_err(|e| Error::invalid(format!("model '{key}': {e}")))?;
        ids.insert(key, id);
    }
    let wb = loader.wb;
    let model = |key: &str| {
        ids.get(key).copied().ok_or_else(|| Error::invalid(format!("composition file: no model named '{key}' under \"models\"")))
    };
    let class = |id: ModelId, c: &ClassRef| -> Result<usize> {
        let names = wb.model_info(id).class_names;
        match c {
            ClassRef::Index(i) if *i < names.len() => Some(*i),
            ClassRef::Name(n) => names.iter().position(|x| x == n),
            _ => None,
        }
        .map_or_else(
            || {
                Err(Error::invalid(format!(
                    "composition file: model '{}' has no class {c} (its classes: {})",
                    wb.model_info(id).name,
                    names.join(", ")
                )))
            },
            Ok,
        )
    };
    let mut picks = vec![];
    for group in &plan.modules {
        let id = model(&group.model)?;
        match &group.classes {
            None => picks.extend((0..wb.model_info(id).class_names.len()).map(|class| Pick { model: id, class })),
            Some(cs) => {
                for c in cs {
                    picks.push(Pick { model: id, class: class(id, c)? });
                }
            }
        }
    }
    let base = plan.base.as_deref().map(model).transpose()?;
    let mode = match (&plan.verify, plan.update) {
        (Some(_), true) => return Err(Error::invalid("composition file: choose either \"update\" or \"verify\", not both")),
        (Some(v), false) => {
            let by = model(&v.by)?;
            // Watched classes are named as in the composition's models.
            let watched = v
                .classes
                .iter()
                .map(|c| {
                    let p = picks
                        .iter()
                        .find(|p| class(p.model, c).is_ok_and(|k| k == p.class))
                        .ok_or_else(|| Error::invalid(format!("composition file: watched class {c} is not in the composition")))?;
                    wb.class_id(p.model, p.class)
                })
                .collect::<Result<Vec<_>>>()?;
            Mode::Verify { watched, by }
        }
        (None, true) => Mode::Update,
        (None, false) => Mode::Plain,
    };
    Ok(Built { wb, picks, base, mode })
}

/// Loads, decomposes and composes what `plan` describes (see [`build`]).
pub fn run(plan: &Plan, read: &dyn Fn(&str) -> Result<Vec<u8>>, progress: &mut dyn FnMut(&str)) -> Result<ComposeResult> {
    let mut built = build(plan, read, progress)?;
    progress("composing");
    built.compose()
}

fn file_stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split('.').next().unwrap_or(name).to_string()
}

fn in_file(path: &str, e: Error) -> Error {
    Error::invalid(format!("{path}: {e}"))
}

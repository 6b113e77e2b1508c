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

use super::loader::{Loader, refuse_unapplied_strength};
use crate::engine::data::InputOverride;
use crate::engine::decompose::Settings;
use crate::error::{Error, Result};
use crate::workbench::{ComposeMode, ComposeResult, ModelId, Pick, Workbench};

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
    /// The `"strength"` the settings name, if they do: one the model cannot apply is refused.
    #[serde(skip)]
    pub asked_strength: Option<f32>,
    /// Model input = stored × scale + offset, overriding the input rule (like `--scale`/`--offset`).
    #[serde(default)]
    pub scale: Option<f32>,
    #[serde(default)]
    pub offset: Option<f32>,
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
        let mut plan: Plan = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("composition file: {e}")))?;
        // Settings fill in their defaults, so whether the file names a strength is read from its text.
        let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("composition file: {e}")))?;
        for (key, m) in plan.models.iter_mut() {
            m.asked_strength = raw["models"][key]["settings"]["strength"].as_f64().map(|s| s as f32);
        }
        Ok(plan)
    }
}

/// What a composition file asks for, loaded and decomposed.
pub struct Built {
    pub wb: Workbench,
    /// The modules in voting order.
    pub picks: Vec<Pick>,
    pub base: Option<ModelId>,
    pub mode: ComposeMode,
}

impl Built {
    pub fn compose(&mut self) -> Result<ComposeResult> {
        self.wb.compose_in(&self.picks, self.base, &self.mode)
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
        let ds = loader.dataset(&m.data, None)?;
        progress(&format!("loading {key} ({})", m.model));
        let id = loader
            .model(&m.model, ds, m.settings.as_ref(), InputOverride { scale: m.scale, offset: m.offset })
            .and_then(|id| {
                let applied = loader.wb.settings_of(id)?;
                refuse_unapplied_strength("\"strength\":", m.asked_strength, &applied, &loader.wb.model_info(id).name)?;
                Ok(id)
            })
            .map_err(|e| Error::invalid(format!("model '{key}': {e}")))?;
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
    // Watched classes are named as in the composition's models.
    let verify = match &plan.verify {
        Some(v) => {
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
            Some((watched, model(&v.by)?))
        }
        None => None,
    };
    let mode = ComposeMode::new(plan.update, verify).map_err(|e| Error::invalid(format!("composition file: {e}")))?;
    Ok(Built { wb, picks, base, mode })
}

/// Loads, decomposes and composes what `plan` describes (see [`build`]).
pub fn run(plan: &Plan, read: &dyn Fn(&str) -> Result<Vec<u8>>, progress: &mut dyn FnMut(&str)) -> Result<ComposeResult> {
    let mut built = build(plan, read, progress)?;
    progress("composing");
    built.compose()
}

//! `remodule exercise check`: the page's exercise checker (`www/exercises.js`,
//! docs/EXERCISES.md) for grading scripts. It reads a playground state as the
//! share link carries it (docs/SHARE.md: the link itself, its fragment, or the
//! state's JSON), rebuilds that composition with the engine (same models,
//! settings, modules, module update, verification) and evaluates the goal.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::app::catalog::Catalog;
use crate::app::loader::Loader;
use crate::engine::compose::ClassId;
use crate::engine::decompose::Settings;
use crate::error::{Error, Result};
use crate::workbench::{ComposeResult, ModelId, Pick};

/// The link format this reads (`VERSION` in www/share.js).
pub const LINK_VERSION: u32 = 1;
/// Largest inflated state, as the page (`LIMITS.inflated`).
const MAX_STATE: u64 = 128 * 1024;

#[derive(Debug, Clone, Deserialize)]
pub struct Exercise {
    #[serde(default)]
    pub id: Option<String>,
    pub title: String,
    pub goal: Vec<Check>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Check {
    Accuracy {
        min: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<String>>,
    },
    ClassAccuracy {
        class: String,
        min: f32,
    },
    ModulesFrom {
        model: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<usize>,
    },
    NoModule {
        class: String,
    },
    ModuleFrom {
        class: String,
        model: String,
    },
    ModuleUpdate {
        #[serde(default = "yes")]
        on: bool,
    },
    Verified {
        class: String,
        by: String,
    },
    /// The decomposition's class-specific strength within [min, max].
    Strength {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f32>,
    },
}

fn yes() -> bool {
    true
}

/// A share link's state (the fields the checker needs).
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    pub models: Vec<serde_json::Value>,
    #[serde(default)]
    pub settings: Settings,
    pub current: usize,
    /// `[model index, class, on]`; absent = the current model's own modules, all in.
    #[serde(default)]
    pub slots: Option<Vec<(usize, usize, u8)>>,
    #[serde(default)]
    pub update: Option<u8>,
    #[serde(default)]
    pub verify: Option<StateVerify>,
    #[serde(default)]
    pub exercise: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StateVerify {
    pub class: usize,
    pub by: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    #[serde(flatten)]
    pub check: Check,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub exercise: String,
    pub solved: bool,
    pub checks: Vec<CheckResult>,
    pub top1: Option<f32>,
}

/// A state from a link (`https://…#v=1&s=…`), its fragment (`v=1&s=…`) or
/// the state's JSON.
pub fn parse_state(text: &str) -> Result<State> {
    let text = text.trim();
    let json = if text.starts_with('{') {
        text.as_bytes().to_vec()
    } else {
        let frag = text.rsplit_once('#').map_or(text, |(_, f)| f);
        let part = |key: &str| frag.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
        let (Some(v), Some(s)) = (part("v"), part("s")) else {
            return Err(Error::invalid("the state is neither JSON nor a share link (no \"v=\" and \"s=\" parts)"));
        };
        if v != LINK_VERSION.to_string() {
            return Err(Error::invalid(format!("the link has format version {v:.10}; this checker reads version {LINK_VERSION}")));
        }
        let packed = base64url(s)?;
        let mut out = vec![];
        flate2::read::DeflateDecoder::new(&packed[..])
            .take(MAX_STATE + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::invalid(format!("the link is damaged: {e}")))?;
        if out.len() as u64 > MAX_STATE {
            return Err(Error::invalid("the link's state is too large"));
        }
        out
    };
    serde_json::from_slice(&json).map_err(|e| Error::invalid(format!("the state: {e}")))
}

fn base64url(s: &str) -> Result<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s.trim_end_matches('=').as_bytes() {
        acc = (acc << 6) | val(c).ok_or_else(|| Error::invalid("the link is damaged: its state is not base64url"))?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// The exercise: `spec` is a built-in id (from `builtin`, www/exercises/builtin.json)
/// or an exercise's JSON; `None` = the one the state carries.
pub fn find_exercise(spec: Option<&str>, state: &State, builtin: &[u8]) -> Result<Exercise> {
    let all: Vec<Exercise> = serde_json::from_slice(builtin).map_err(|e| Error::invalid(format!("built-in exercises: {e}")))?;
    let by_id = |id: &str| {
        all.iter().find(|e| e.id.as_deref() == Some(id)).cloned().ok_or_else(|| Error::invalid(format!("no built-in exercise '{id}'")))
    };
    match (spec, &state.exercise) {
        (Some(s), _) if s.trim_start().starts_with('{') => {
            serde_json::from_str(s).map_err(|e| Error::invalid(format!("the exercise: {e}")))
        }
        (Some(id), _) => by_id(id),
        (None, Some(serde_json::Value::String(id))) => by_id(id),
        (None, Some(ex)) => serde_json::from_value(ex.clone()).map_err(|e| Error::invalid(format!("the link's exercise: {e}"))),
        (None, None) => Err(Error::invalid("the state has no exercise: name one")),
    }
}

/// Rebuilds the state's composition and evaluates the exercise's goal.
pub fn check(ex: &Exercise, st: &State, cat: &Catalog, read: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<Report> {
    let files: Vec<&str> = st
        .models
        .iter()
        .map(|m| m.as_str().ok_or_else(|| Error::invalid("the state has an uploaded model; the checker reads bundled models only")))
        .collect::<Result<_>>()?;
    if st.current >= files.len() {
        return Err(Error::invalid("the state's current model is out of range"));
    }
    let mut loader = Loader::new(read);
    let mut ids: Vec<ModelId> = vec![];
    let mut datasets: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &files {
        let entry = cat.models.iter().find(|m| m.file == *f).ok_or_else(|| Error::invalid(format!("'{f}' is not a bundled model")))?;
        let file =
            &cat.datasets.get(&entry.dataset).ok_or_else(|| Error::invalid(format!("catalog: no data set '{}'", entry.dataset)))?.file;
        let ds = loader.dataset(&format!("data/{file}"), Some(&entry.dataset))?;
        datasets.insert(&entry.dataset, ds);
        ids.push(loader.model(&format!("models/{f}"), ds, Some(&st.settings), Default::default())?);
    }
    let mut wb = loader.wb;
    let slots: Vec<(usize, usize, bool)> = match &st.slots {
        Some(s) => s.iter().map(|&(m, c, on)| (m, c, on != 0)).collect(),
        None => (0..wb.model_info(ids[st.current]).class_names.len()).map(|c| (st.current, c, true)).collect(),
    };
    let mut picks = vec![];
    let mut on: Vec<(ClassId, &str)> = vec![];
    for &(m, c, lit) in &slots {
        let model = *ids.get(m).ok_or_else(|| Error::invalid("a slot names a model out of range"))?;
        let id = wb.class_id(model, c)?;
        if lit {
            picks.push(Pick { model, class: c });
            on.push((id, files[m]));
        }
    }
    let spans = on
        .iter()
        .map(|&(_, f)| cat.models.iter().find(|m| m.file == f).map(|m| m.dataset.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let update = spans && st.update.unwrap_or(0) != 0;
    let base = Some(ids[st.current]);
    let result: Option<ComposeResult> = match (picks.is_empty(), &st.verify) {
        (true, _) => None,
        (false, Some(v)) => {
            let by = *ids.get(v.by).ok_or_else(|| Error::invalid("verify names a model out of range"))?;
            Some(wb.compose_verified(&picks, &[wb.class_id(ids[st.current], v.class)?], by, base)?)
        }
        (false, None) if update => Some(wb.compose_updated(&picks, base)?),
        (false, None) => Some(wb.compose(&picks, base)?),
    };
    let class = |q: &str| -> Result<ClassId> {
        let (ds, name) = q.split_once(':').ok_or_else(|| Error::invalid(format!("class '{q}' is not \"<data set>:<class>\"")))?;
        let d = *datasets.get(ds).ok_or_else(|| Error::invalid(format!("class '{q}': data set '{ds}' is not loaded by this state")))?;
        let c = wb
            .dataset_info(d)
            .class_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Error::invalid(format!("class '{q}' does not exist")))?;
        wb.dataset_class_id(d, c)
    };
    let composed: std::collections::BTreeSet<ClassId> = on.iter().map(|&(c, _)| c).collect();
    let per_class =
        |c: ClassId| result.as_ref().and_then(|r| r.composition.classes.iter().position(|&x| x == c).map(|k| r.composition.per_class[k]));
    let mut checks = vec![];
    for c in &ex.goal {
        let ok = match c {
            Check::Accuracy { min, classes } => {
                let exact = match classes {
                    None => true,
                    Some(cs) => cs.iter().map(|q| class(q)).collect::<Result<std::collections::BTreeSet<_>>>()? == composed,
                };
                exact && result.as_ref().is_some_and(|r| r.composition.top1 + 1e-6 >= *min)
            }
            Check::ClassAccuracy { class: q, min } => {
                let id = class(q)?;
                composed.contains(&id) && per_class(id).is_some_and(|a| a + 1e-6 >= *min)
            }
            Check::ModulesFrom { model, min, max } => {
                let n = on.iter().filter(|&&(_, f)| f == model).count();
                min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
            }
            Check::NoModule { class: q } => !composed.contains(&class(q)?),
            Check::ModuleFrom { class: q, model } => {
                let id = class(q)?;
                on.iter().any(|&(c, f)| c == id && f == model)
            }
            Check::ModuleUpdate { on } => update == *on,
            Check::Strength { min, max } => {
                let s = st.settings.strength;
                min.is_none_or(|m| s + 1e-6 >= m) && max.is_none_or(|m| s <= m + 1e-6)
            }
            Check::Verified { class: q, by } => match &st.verify {
                Some(v) => class(q)? == wb.class_id(ids[st.current], v.class)? && files.get(v.by) == Some(&by.as_str()),
                None => false,
            },
        };
        checks.push(CheckResult { check: c.clone(), ok });
    }
    Ok(Report {
        exercise: ex.id.clone().unwrap_or_else(|| ex.title.clone()),
        solved: checks.iter().all(|c| c.ok),
        checks,
        top1: result.map(|r| r.composition.top1),
    })
}

//! What the page and the CLI show of the workbench: plain serialisable
//! records of data sets, models, modules and decompositions.

use serde::Serialize;

use super::{DatasetId, ModelId, Pick, Workbench};
use crate::engine::bits::BitSet;
use crate::engine::compose::ClassId;
use crate::engine::decompose::Settings;
use crate::engine::model::{InputKind, Model, Op};
use crate::error::Result;

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
    /// How it reads its data set's values (`engine::data::input_map`), said for people.
    pub input: String,
    /// A warning for the page and the CLI: accuracy at chance, with the likely cause.
    pub notice: Option<String>,
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

impl Workbench {
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

    pub fn model_info(&self, id: ModelId) -> ModelInfo {
        let e = &self.models[id];
        let layers = layer_infos(&e.model);
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
            input: self.datasets[e.dataset].input_map(&e.model).describe(),
            notice: self.datasets[e.dataset].input_notice(&e.model, e.accuracy),
        }
    }

    /// What module `class` of model `id` keeps, per tracked layer (the page's
    /// active-unit picture): its unit grid (`[F]` dense, `[H, W, C]` conv
    /// positions, `[T, U]` recurrent steps) and one 0/1 per unit.
    pub fn module_units(&self, id: ModelId, class: usize) -> Result<Vec<UnitsView>> {
        let (e, m) = self.module(Pick { model: id, class })?;
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
        let (_, dec) = self.decomposition(id)?;
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
}

/// The mean of a square matrix's off-diagonal entries (module↔module Jaccard
/// between different modules); 1 for fewer than two modules.
pub fn mean_off_diagonal(m: &[Vec<f32>]) -> f32 {
    let k = m.len();
    if k < 2 {
        return 1.0;
    }
    let total: f32 = m.iter().enumerate().flat_map(|(i, row)| row.iter().enumerate().filter(move |&(j, _)| j != i).map(|(_, &v)| v)).sum();
    total / (k * (k - 1)) as f32
}

/// Each layer of `model` as the page and `remodule info` list it.
pub fn layer_infos(model: &Model) -> Vec<LayerInfo> {
    model
        .nodes
        .iter()
        .map(|n| LayerInfo {
            name: n.name.clone(),
            kind: n.op.kind().into(),
            shape: n.shape.clone(),
            params: n.params(),
            activation: n.op.activation().filter(|_| !matches!(n.op, Op::Activation(_))).map(|a| format!("{a:?}").to_lowercase()),
        })
        .collect()
}

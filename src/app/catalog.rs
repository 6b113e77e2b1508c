//! `models/catalog.json` — the bundled data sets and models the page offers —
//! and loading all of it into one workbench.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::loader::{Loader, Read};
use crate::engine::model::Model;
use crate::error::{Error, Result};
use crate::workbench::{ModelId, Workbench};

#[derive(Debug, Deserialize)]
pub struct CatalogDataset {
    pub file: String,
    pub title: String,
    /// Per-sample shape as stored, and the class names (what a model must fit).
    #[serde(default)]
    pub shape: Vec<usize>,
    #[serde(default)]
    pub classes: Vec<String>,
}

/// Where a model can be evaluated: the catalog data sets it fits.
#[derive(Debug, Serialize)]
pub struct Fit {
    pub input_shape: Vec<usize>,
    pub classes: usize,
    /// Keys of the data sets whose samples have the model's input size and
    /// whose class count is the model's output count, by key.
    pub fits: Vec<String>,
    /// When none fits: what the model needs and what there is.
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CatalogModel {
    pub file: String,
    pub title: String,
    pub dataset: String,
}

/// `models/catalog.json`: the bundled models and data sets the page offers.
#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub datasets: BTreeMap<String, CatalogDataset>,
    pub models: Vec<CatalogModel>,
}

impl Catalog {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::format("catalog", e.to_string()))
    }

    /// [`Self::fitting`] of the model in a file's bytes.
    pub fn fit_file(&self, bytes: &[u8], file: &str) -> Result<Fit> {
        let model = crate::formats::load_model(bytes, file).map_err(|e| e.in_file(file))?;
        Ok(self.fitting(&model, file))
    }

    /// THE fit rule for a model without a data set (an upload, a CLI model
    /// given without `--data`): same values per sample, same number of classes.
    pub fn fitting(&self, model: &Model, file: &str) -> Fit {
        let fits: Vec<String> = self
            .datasets
            .iter()
            .filter(|(_, d)| d.shape.iter().product::<usize>() == model.input_len() && d.classes.len() == model.classes())
            .map(|(k, _)| k.clone())
            .collect();
        let message = fits.is_empty().then(|| {
            let have: Vec<String> =
                self.datasets.iter().map(|(k, d)| format!("{k} ({:?}, {} classes)", d.shape, d.classes.len())).collect();
            format!(
                "{file}: the model takes samples of shape {:?} and answers {} classes; no bundled data set fits \
                 ({}). Evaluate it on your own data (a .npz with x_train, y_train, x_test, y_test).",
                model.input.shape,
                model.classes(),
                have.join(", ")
            )
        });
        Fit { input_shape: model.input.shape.clone(), classes: model.classes(), fits, message }
    }
}

/// Loads every catalog data set and model into a fresh workbench (through
/// [`Loader`]; nothing decomposed); returns it with the model ids in catalog order.
pub fn load_all(cat: &Catalog, read: Read) -> Result<(Workbench, Vec<ModelId>)> {
    let mut loader = Loader::new(read);
    let mut ds_ids = BTreeMap::new();
    for (key, d) in &cat.datasets {
        ds_ids.insert(key.clone(), loader.dataset(&format!("data/{}", d.file), Some(key))?);
    }
    let mut ids = vec![];
    for m in &cat.models {
        let ds = *ds_ids
            .get(&m.dataset)
            .ok_or_else(|| Error::invalid(format!("catalog: model {} names unknown data set {}", m.file, m.dataset)))?;
        ids.push(loader.file(&format!("models/{}", m.file), ds, Default::default())?.model.id);
    }
    Ok((loader.wb, ids))
}

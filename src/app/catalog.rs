//! `models/catalog.json` — the bundled data sets and models the page offers —
//! and loading all of it into one workbench.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::loader::{Loader, Read};
use crate::error::{Error, Result};
use crate::workbench::{ModelId, Workbench};

#[derive(Debug, Deserialize)]
pub struct CatalogDataset {
    pub file: String,
    pub title: String,
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

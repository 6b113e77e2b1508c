//! Decomposition and the score cache: every module's concerned probability
//! over each data set's test split, computed once (lazily for data sets other
//! than its own), so that composing is an argmax over cached rows.

use super::{DatasetId, DecompositionInfo, ModelId, ModuleInfo, Pick, Workbench, test_inputs};
use crate::engine::bits::BitSet;
use crate::engine::compose::binary_accuracy;
use crate::engine::data::Dataset;
use crate::engine::decompose::{
    ColumnCache, Decomposition, Module, Settings, concerned_scores, decompose_recorded, first_of_class, jaccard_ref, kept_weights,
    module_masks, record, unconcerned_quota,
};
use crate::engine::model::forward;
use crate::engine::parallel;
use crate::error::{Error, Result};

impl Workbench {
    /// Decomposes model `id` into one module per class of its data set and
    /// fills the score cache for its data set. `progress(fraction)` may cancel.
    /// A new strength with otherwise the same settings starts from the last
    /// decomposition's recorded pass: only masks, calibration and scores are redone.
    pub fn decompose(&mut self, id: ModelId, settings: &Settings, progress: &mut dyn FnMut(f32) -> bool) -> Result<DecompositionInfo> {
        let e = self.entry(id)?;
        let data = &self.datasets[e.dataset];
        let reuse = e.recorded.as_ref().is_some_and(|r| r.serves(settings));
        let fresh = if reuse { None } else { Some(record(&e.model, data, settings, &mut |f| progress(0.4 * f))?) };
        let recorded = fresh.as_ref().or(e.recorded.as_ref()).expect("recorded above or reused");
        let dec = decompose_recorded(&e.model, data, recorded, settings, &mut |f| progress(0.4 + 0.1 * f))?;
        if let Some(r) = fresh {
            self.models[id].recorded = Some(r);
        }
        self.install(id, dec, &mut |f| progress(0.5 + 0.5 * f))
    }

    /// Makes `dec` model `id`'s decomposition: scores every module on its data
    /// set's test split (the score cache) and computes the module metrics.
    pub(super) fn install(&mut self, id: ModelId, dec: Decomposition, progress: &mut dyn FnMut(f32) -> bool) -> Result<DecompositionInfo> {
        let e = self.entry(id)?;
        let d = &self.datasets[e.dataset];
        let x = test_inputs(&e.model, d);
        let labels = self.global_labels(e.dataset);
        let total = dec.modules.len();
        // Modules score in parallel (each over parallel batches), taken in module order.
        let scored = parallel::map_then(
            total,
            |i| {
                let m = &dec.modules[i];
                let row = concerned_scores(&e.model, m, &x, d.test.len(), &mut |_, _| true)?;
                let class_id = self.class_ids[e.dataset][m.class];
                let info = ModuleInfo {
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
                    accuracy: binary_accuracy(&row, class_id, &labels, |s| m.head.says_yes(s)),
                };
                Ok((info, row))
            },
            |i| if progress((i + 1) as f32 / total as f32) { Ok(()) } else { Err(Error::Cancelled) },
        )?;
        let mut scores = Vec::with_capacity(total);
        let mut infos = Vec::with_capacity(total);
        for (info, row) in scored {
            infos.push(info);
            let mut per_dataset = vec![None; self.datasets.len()];
            per_dataset[e.dataset] = Some(row);
            scores.push(per_dataset);
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

    /// Module `p`'s score row on data set `d`'s test split (not cached).
    fn score_row(&self, p: Pick, d: DatasetId) -> Result<Vec<f32>> {
        let (e, m) = self.module(p)?;
        let data = &self.datasets[d];
        data.check_fits_input(&e.model).map_err(|_| {
            Error::invalid(format!(
                "module '{}' of model '{}' cannot read data set '{}' (input shapes differ)",
                e.infos[p.class].class_name, e.model.name, data.name
            ))
        })?;
        concerned_scores(&e.model, m, &test_inputs(&e.model, data), data.test.len(), &mut |_, _| true)
    }

    /// The data sets a composition is evaluated on and each pick's cached score row over them.
    pub(super) fn composition_rows(&mut self, picks: &[Pick]) -> Result<(Vec<DatasetId>, Vec<Vec<f32>>)> {
        let datasets = self.pick_datasets(picks)?;
        let rows = self.rows_on(picks, &datasets)?;
        Ok((datasets, rows))
    }

    /// Each pick's score row over the test splits of `datasets`, in order (scored first where not cached).
    pub(super) fn rows_on(&mut self, picks: &[Pick], datasets: &[DatasetId]) -> Result<Vec<Vec<f32>>> {
        let mut missing = vec![];
        for p in picks {
            self.module(*p)?;
            for &d in datasets {
                let cached = self.models[p.model].scores[p.class].get(d).is_some_and(Option::is_some);
                if !cached && !missing.contains(&(*p, d)) {
                    missing.push((*p, d));
                }
            }
        }
        // Scored in parallel, cached in order.
        let rows = parallel::map(missing.len(), |i| self.score_row(missing[i].0, missing[i].1));
        for ((p, d), row) in missing.into_iter().zip(rows) {
            let slot = &mut self.models[p.model].scores[p.class];
            slot.resize(self.datasets.len(), None);
            slot[d] = Some(row?);
        }
        Ok(picks
            .iter()
            .map(|p| {
                datasets
                    .iter()
                    .flat_map(|&d| self.models[p.model].scores[p.class][d].as_deref().expect("scored just above").iter().copied())
                    .collect()
            })
            .collect())
    }

    /// Pick `p`'s module re-decomposed against the other picks' classes, scored on `datasets`.
    pub(super) fn updated_row(&self, p: Pick, picks: &[Pick], datasets: &[DatasetId]) -> Result<Vec<f32>> {
        let (e, dec) = self.decomposition(p.model)?;
        let s = &dec.settings;
        let own = &self.datasets[e.dataset];
        if own.train.steps > 1 {
            return Err(Error::invalid("module update works on per-sample tasks, not per-step ones"));
        }
        if s.strength > 0.0 {
            // Its modules are pruned by class relevance and calibrated against their own classes.
            return Err(Error::invalid(format!(
                "module update is not available for modules decomposed at strength {} (use strength 0)",
                s.strength
            )));
        }
        let first = |d: &Dataset, class: usize, k: usize| first_of_class(d.train.y.iter().map(|&y| y as usize), class, k);
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
        let per_class = unconcerned_quota(concerned.len(), s.tangling_ratio, others.len());
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
        let masks = module_masks(&e.model, &rec, p.class, &c_set, &u_set, s, &ColumnCache::default(), None);
        let module = Module {
            class: p.class,
            head: s.head,
            masks,
            concerned: concerned.len(),
            unconcerned: n_other,
            kept_units: 0,
            total_units: 0,
            calibration: None,
        };
        let mut row = vec![];
        for &d in datasets {
            let data = &self.datasets[d];
            row.extend(concerned_scores(&e.model, &module, &test_inputs(&e.model, data), data.test.len(), &mut |_, _| true)?);
        }
        Ok(row)
    }
}

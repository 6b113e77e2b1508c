//! Composition over cached rows: plain, after module update, or with
//! verification; whole-sequence scores; "try it" on one input; the
//! composition as an ONNX graph. Every answer comes from
//! `engine::compose::winners` (one voting rule).

use serde::Serialize;

use super::{DatasetId, ModelId, Pick, Workbench};
use crate::engine::compose::{ClassId, Composition, argmax, classes_of, compose, winners};
use crate::engine::decompose::concerned_scores;
use crate::engine::parallel;
use crate::error::{Error, Result};

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

/// How a composition's rows are formed before the vote — chosen once, from
/// the page's or a plan's two options, by [`ComposeMode::new`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ComposeMode {
    /// The cached rows as decomposed.
    #[default]
    Plain,
    /// Module update first (see [`Workbench::compose_updated`]).
    Update,
    /// Answers of the `watched` classes are checked again by model `by`'s
    /// modules (see [`Workbench::compose_verified`]).
    Verify { watched: Vec<ClassId>, by: ModelId },
}

impl ComposeMode {
    /// The one check of the two options: module update and verification
    /// each change the rows, so they cannot both apply.
    pub fn new(update: bool, verify: Option<(Vec<ClassId>, ModelId)>) -> Result<Self> {
        match (verify, update) {
            (Some(_), true) => Err(Error::invalid("choose either module update or verification, not both")),
            (Some((watched, by)), false) => Ok(ComposeMode::Verify { watched, by }),
            (None, true) => Ok(ComposeMode::Update),
            (None, false) => Ok(ComposeMode::Plain),
        }
    }
}

impl Workbench {
    /// Composes the picked modules and evaluates them on the test splits of
    /// every data set their classes come from. Cached rows make this an
    /// argmax; a module new to a data set is scored once first. `base` names
    /// the model to compare with (see `ComposeResult::model_accuracy`).
    pub fn compose(&mut self, picks: &[Pick], base: Option<ModelId>) -> Result<ComposeResult> {
        let (datasets, rows) = self.composition_rows(picks)?;
        self.compose_rows(picks, &rows, &datasets, base)
    }

    /// [`Self::compose`] in the given mode.
    pub fn compose_in(&mut self, picks: &[Pick], base: Option<ModelId>, mode: &ComposeMode) -> Result<ComposeResult> {
        match mode {
            ComposeMode::Plain => self.compose(picks, base),
            ComposeMode::Update => self.compose_updated(picks, base),
            ComposeMode::Verify { watched, by } => self.compose_verified(picks, watched, *by, base),
        }
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
            // Each pick re-records and scores on its own: in parallel, in pick order.
            let rows =
                parallel::map(picks.len(), |i| self.updated_row(picks[i], picks, &datasets)).into_iter().collect::<Result<Vec<_>>>()?;
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
        let row_class = self.pick_classes(picks)?;
        let vd = self.entry(verifier)?.dataset;
        let checks: Vec<Option<Pick>> = row_class
            .iter()
            .map(|id| self.class_ids[vd].iter().position(|c| c == id).map(|class| Pick { model: verifier, class }))
            .collect();
        let (datasets, mut rows) = self.composition_rows(picks)?;
        let verifiers: Vec<Pick> = checks.iter().flatten().copied().collect();
        let second = self.rows_on(&verifiers, &datasets)?;
        let mut second = second.into_iter();
        let second: Vec<Option<Vec<f32>>> = checks.iter().map(|c| c.and_then(|_| second.next())).collect();
        let first = winners(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for (s, &best) in first.iter().enumerate() {
            if watched.contains(&row_class[best as usize]) {
                for (r, v) in rows.iter_mut().zip(&second) {
                    r[s] = v.as_ref().map_or(-1.0, |v| v[s]);
                }
            }
        }
        self.compose_rows(picks, &rows, &datasets, base)
    }

    fn compose_rows(&self, picks: &[Pick], rows: &[Vec<f32>], datasets: &[DatasetId], base: Option<ModelId>) -> Result<ComposeResult> {
        let labels: Vec<ClassId> = datasets.iter().flat_map(|&d| self.global_labels(d)).collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let composition = compose(&refs, &self.pick_classes(picks)?, &labels)?;
        let class_names = composition.classes.iter().map(|&c| self.class_name(c, datasets)).collect();
        let model_accuracy = base.map(|b| self.restricted_accuracy(b, &composition.classes)).transpose()?.flatten();
        Ok(ComposeResult { composition, class_names, model_accuracy })
    }

    /// The composition's classes (ascending, as [`classes_of`]) and each
    /// pick's index among them: the labels of the confusion matrix, of
    /// [`CompositionScores::answers`] and of an exported graph's `argmax`.
    fn composition_labels(&self, picks: &[Pick]) -> Result<(Vec<ClassId>, Vec<usize>)> {
        let row_class = self.pick_classes(picks)?;
        let classes = classes_of(&row_class);
        let labels = row_class.iter().map(|c| classes.binary_search(c).unwrap_or(0)).collect();
        Ok((classes, labels))
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
                let restricted: Vec<f32> = own.iter().map(|&k| p[k]).collect();
                correct += (own[argmax(&restricted)] == y as usize) as usize;
            }
        }
        Ok(Some(correct as f32 / n.max(1) as f32))
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
        let (_, labels) = self.composition_labels(picks)?;
        let answers = winners(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>()).iter().map(|&m| labels[m as usize] as u32).collect();
        let samples = datasets.iter().flat_map(|&d| self.datasets[d].test.x.iter().copied()).collect();
        let sample_shape = self.datasets[datasets[0]].sample_shape.clone();
        Ok(CompositionScores { samples, sample_shape, rows, answers })
    }

    /// Encoder–decoder tasks (per-step labels on one data set): the composed
    /// picks' per-step answers (argmax over modules, as [`Self::compose`])
    /// read as one output per test sequence, cut at the first step answered
    /// with the class named `<end>`, against the references cut the same
    /// way: exact match and corpus BLEU-4 ([`crate::engine::metrics`]); also for
    /// model `base`'s own argmax answers.
    pub fn sequence_scores(&mut self, picks: &[Pick], base: Option<ModelId>) -> Result<SequenceScores> {
        use crate::engine::metrics::{bleu, exact_match, until_end};
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
        let (_, rows) = self.composition_rows(picks)?;
        let data = &self.datasets[d];
        let end = data.class_names.iter().position(|n| n == "<end>").map(|c| c as u32);
        let composed: Vec<u32> =
            winners(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>()).iter().map(|&m| picks[m as usize].class as u32).collect();
        let split = |v: &[u32]| -> Vec<Vec<u32>> { v.chunks_exact(steps).map(|s| until_end(s, end)).collect() };
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
        Ok(SequenceScores {
            sequences: refs.len(),
            exact_match: exact_match(&cand, &refs),
            bleu: bleu(&cand, &refs),
            model_exact_match: model.as_ref().map(|m| exact_match(m, &refs)),
            model_bleu: model.as_ref().map(|m| bleu(m, &refs)),
        })
    }

    /// Scores one input with every picked module and composes them: the "try
    /// it" panel. Images are pixels 0–255 (as [`Self::test_sample`] gives
    /// them), brought to each model's data range; token ids as they are.
    pub fn try_input(&self, picks: &[Pick], raw: &[f32]) -> Result<TryResult> {
        if picks.is_empty() {
            return Err(Error::invalid("select at least one module to compose"));
        }
        let mut rows = Vec::with_capacity(picks.len());
        let mut heads = Vec::with_capacity(picks.len());
        for p in picks {
            let (e, m) = self.module(*p)?;
            heads.push(m.head);
            if raw.len() != e.model.input_len() {
                return Err(Error::shape(format!("input for model '{}'", e.model.name), e.model.input_len(), raw.len()));
            }
            if raw.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid("the input contains NaN or infinite values"));
            }
            let d = &self.datasets[e.dataset];
            let (map, from_pixels) = (d.input_map(&e.model), d.pixel_max() / 255.0);
            let x: Vec<f32> = raw.iter().map(|&v| map.apply(if from_pixels == 1.0 { v } else { v * from_pixels })).collect();
            rows.push(concerned_scores(&e.model, m, &x, 1, &mut |_, _| true)?);
        }
        // One row per pick over the input's steps (1 for per-sample models).
        let steps = rows.iter().map(Vec::len).min().unwrap_or(1);
        let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..steps]).collect();
        let answers: Vec<usize> = winners(&refs).into_iter().map(|m| m as usize).collect();
        let step_answers = if steps > 1 { answers.clone() } else { vec![] };
        // The page shows each module's p_c.
        let scores = rows.iter().zip(&heads).map(|(r, h)| h.probability(r[steps - 1])).collect();
        Ok(TryResult { answer: answers[steps - 1], scores, step_answers })
    }

    /// The composition `picks` as one ONNX graph (`formats::onnx::export`):
    /// input = samples as stored, outputs `scores` (a column per pick, in
    /// order), `argmax` (an index into [`ComposeResult::class_names`]: the
    /// labels [`Self::compose`] uses, from the same function) and, with
    /// `softmax`, `softmax`.
    pub fn export_onnx(&self, picks: &[Pick], softmax: bool) -> Result<Vec<u8>> {
        use crate::formats::onnx::export::{ExportModule, ExportOptions, export_composition};
        if picks.is_empty() {
            return Err(Error::invalid("select at least one module to export"));
        }
        let datasets = self.pick_datasets(picks)?;
        let row_class = self.pick_classes(picks)?;
        let (classes, labels) = self.composition_labels(picks)?;
        let mut modules = Vec::with_capacity(picks.len());
        let mut names = Vec::with_capacity(picks.len());
        for ((p, c), &label) in picks.iter().zip(&row_class).zip(&labels) {
            let (e, m) = self.module(*p)?;
            modules.push(ExportModule {
                model: &e.model,
                input: self.datasets[datasets[0]].input_map(&e.model),
                masks: &m.masks,
                class: m.class,
                head: m.head,
                calibration: m.calibration,
                label,
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
}

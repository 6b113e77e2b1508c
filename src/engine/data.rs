//! Labelled data sets in memory: raw values (u8 pixels or token ids kept as
//! f32) plus labels. A model's `InputSpec` maps raw values to model input.

use crate::engine::model::Model;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// `len × sample_len` raw values, row-major.
    pub x: Vec<f32>,
    /// `len × steps` labels: one per sample, or one per time step for
    /// many-to-many tasks. An evaluation *item* is one label.
    pub y: Vec<u32>,
    /// Labels per sample (1, or the sequence length).
    pub steps: usize,
}

impl Split {
    /// Samples (sequences).
    pub fn len(&self) -> usize {
        self.y.len() / self.steps.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// Per-sample shape as stored (e.g. `[28, 28]`); models may add a channel axis.
    pub sample_shape: Vec<usize>,
    pub class_names: Vec<String>,
    /// Text data sets: the string of each token id (id 0 padding, id 1
    /// unknown), from the `.npz` key `vocab` (UTF-8 JSON bytes).
    pub vocab: Option<Vec<String>>,
    pub train: Split,
    pub test: Split,
}

impl Dataset {
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Token ids for `text` as the data set's windows were made: lowercase,
    /// whitespace collapsed, unknown characters as id 1, repeated (space
    /// separated) or cut to the sequence length — the training windows are
    /// cut from running text, so repetition is closer to them than padding.
    pub fn encode_text(&self, text: &str) -> Result<Vec<f32>> {
        let vocab =
            self.vocab.as_ref().ok_or_else(|| Error::invalid(format!("data set '{}' is not text (it has no vocabulary)", self.name)))?;
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err(Error::invalid("type some text first"));
        }
        let clean = words.join(" ").to_lowercase();
        let len = self.sample_len();
        let ids: Vec<f32> = clean
            .chars()
            .map(|ch| {
                let mut buf = [0u8; 4];
                vocab.iter().skip(2).position(|v| v == ch.encode_utf8(&mut buf)).map_or(1.0, |i| (i + 2) as f32)
            })
            .collect();
        let space = vocab.iter().position(|v| v == " ").map_or(1.0, |i| i as f32);
        Ok(ids.iter().copied().chain(std::iter::once(space)).cycle().take(len.max(1)).collect())
    }

    /// Checks that `model` can read this data set's samples.
    pub fn check_fits(&self, model: &Model) -> Result<()> {
        self.check_fits_input(model)?;
        self.check_fits_labels(model)
    }

    /// Only the input shape (a model scoring another data set's samples).
    pub fn check_fits_input(&self, model: &Model) -> Result<()> {
        if self.sample_len() != model.input_len() {
            return Err(Error::shape(
                format!("data set '{}' for model '{}'", self.name, model.name),
                format!("samples of shape {:?}", model.input.shape),
                format!("{:?}", self.sample_shape),
            ));
        }
        Ok(())
    }

    fn check_fits_labels(&self, model: &Model) -> Result<()> {
        if self.train.steps != model.out_steps() {
            return Err(Error::shape(
                format!("labels per sample of data set '{}' for model '{}'", self.name, model.name),
                format!("{} (the model's outputs per sample)", model.out_steps()),
                self.train.steps,
            ));
        }
        if self.class_names.len() > model.classes() {
            return Err(Error::shape(
                format!("classes of data set '{}' for model '{}'", self.name, model.name),
                model.classes(),
                self.class_names.len(),
            ));
        }
        Ok(())
    }

    /// Model input for the given rows of a split: `raw × scale + offset`.
    pub fn inputs(&self, model: &Model, split: &Split, rows: &[usize]) -> Vec<f32> {
        let len = self.sample_len();
        let (s, o) = (model.input.scale, model.input.offset);
        let mut out = Vec::with_capacity(rows.len() * len);
        for &r in rows {
            out.extend(split.x[r * len..(r + 1) * len].iter().map(|v| v * s + o));
        }
        out
    }
}

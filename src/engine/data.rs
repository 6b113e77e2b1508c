//! Labelled data sets in memory: raw values (u8 pixels or token ids kept as
//! f32) plus labels, and THE input rule ([`input_map`]): how stored values
//! become model input.

use serde::Serialize;

use crate::engine::model::{InputKind, InputSpec, Model};
use crate::error::{Error, Result};

/// How a data set's sample values were stored in its file: the input rule
/// treats integer images as 0–255 pixels and floats as already prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    Integer,
    Float,
}

/// Why the input map is what it is (said in notices and the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MapReason {
    /// `--scale` / `--offset` (or the page's, or a plan's) were given.
    Given,
    /// Integer image data: pixels 0–255 to [0, 1].
    Pixels,
    /// Integer image data, but the model starts with its own `Rescaling` /
    /// `Normalization`: fed raw.
    ModelRescales,
    /// Float data, token ids, vectors: fed as stored.
    AsStored,
}

/// Model input = stored value × `scale` + `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InputMap {
    pub scale: f32,
    pub offset: f32,
    pub reason: MapReason,
}

impl InputMap {
    pub fn apply(&self, v: f32) -> f32 {
        v * self.scale + self.offset
    }

    /// How the page and the CLI say it: "stored × 1/255 (integer image data)".
    pub fn describe(&self) -> String {
        let scale = if (self.scale - 1.0 / 255.0).abs() < 1e-9 { "1/255".to_string() } else { format!("{}", self.scale) };
        let mut s = if self.scale == 1.0 { "stored values".to_string() } else { format!("stored values × {scale}") };
        if self.offset != 0.0 {
            s += &format!(" {} {}", if self.offset < 0.0 { '−' } else { '+' }, self.offset.abs());
        }
        let why = match self.reason {
            MapReason::Given => "as given",
            MapReason::Pixels => "integer image data: pixels 0–255 to [0, 1]",
            MapReason::ModelRescales => "the model rescales its own input",
            MapReason::AsStored => "float data, token ids and vectors are used as stored",
        };
        format!("{s} ({why})")
    }
}

/// A scale and/or offset the user gave (CLI `--scale`/`--offset`, a plan,
/// the page), overriding the rule's part they name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputOverride {
    #[serde(default)]
    pub scale: Option<f32>,
    #[serde(default)]
    pub offset: Option<f32>,
}

impl InputOverride {
    pub fn is_given(&self) -> bool {
        self.scale.is_some() || self.offset.is_some()
    }

    /// Sets the given parts on `input` (the others stay as they were).
    pub fn apply_to(&self, input: &mut InputSpec) {
        input.scale = self.scale.or(input.scale);
        input.offset = self.offset.or(input.offset);
    }
}

/// THE input rule, one for the CLI, the page and plans: an explicit scale or
/// offset wins (each for its own part); otherwise integer image data is
/// scaled by 1/255 unless the model scales raw pixels itself (`rescales`:
/// see `Model::scales_raw_pixels`; then it is fed raw), and everything else —
/// float data, token ids, vectors — is fed as stored.
pub fn input_map(input: &InputSpec, stored: Stored) -> InputMap {
    let pixels = input.kind == InputKind::Image && stored == Stored::Integer && !input.rescales;
    let given = input.scale.is_some() || input.offset.is_some();
    let reason = match (given, pixels) {
        (true, _) => MapReason::Given,
        (false, true) => MapReason::Pixels,
        _ if input.kind == InputKind::Image && stored == Stored::Integer => MapReason::ModelRescales,
        _ => MapReason::AsStored,
    };
    let rule = if pixels { 1.0 / 255.0 } else { 1.0 };
    InputMap { scale: input.scale.unwrap_or(rule), offset: input.offset.unwrap_or(0.0), reason }
}

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
    /// How the file stored the sample values (see [`input_map`]).
    pub stored: Stored,
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

    /// The stored value of a full pixel, for showing samples and for the
    /// drawing pad (which speaks 0–255): 255 for integer data, 1 for float
    /// images in [0, 1] (by the test split: what the page shows), else 255.
    pub fn pixel_max(&self) -> f32 {
        let hi = self.test.x.iter().fold(0f32, |m, &v| m.max(v));
        if self.stored == Stored::Float && self.vocab.is_none() && hi <= 1.0 { 1.0 } else { 255.0 }
    }

    /// How `model` reads this data set's values ([`input_map`]).
    pub fn input_map(&self, model: &Model) -> InputMap {
        input_map(&model.input, self.stored)
    }

    /// Model input for the given rows of a split, through [`Self::input_map`].
    pub fn inputs(&self, model: &Model, split: &Split, rows: &[usize]) -> Vec<f32> {
        let len = self.sample_len();
        let map = self.input_map(model);
        let mut out = Vec::with_capacity(rows.len() * len);
        for &r in rows {
            out.extend(split.x[r * len..(r + 1) * len].iter().map(|&v| map.apply(v)));
        }
        out
    }

    /// A warning about `model`'s input on this data set, given its test
    /// `accuracy`: at chance level (the usual cause is input prepared
    /// differently from training), or float images stored as 0–255 and fed
    /// as stored (the most common slip: `astype('float32')` without `/ 255`).
    /// It names the map used, what the values look like and the flags.
    pub fn input_notice(&self, model: &Model, accuracy: f32) -> Option<String> {
        let map = self.input_map(model);
        let (lo, hi) = self.test.x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let (mlo, mhi) = (map.apply(lo), map.apply(hi));
        if let Some(chance) = self.chance(accuracy) {
            let hint = if model.input.kind != InputKind::Image {
                "if the model was trained on differently prepared values, set the input scale and offset (--scale, --offset)".to_string()
            } else if mhi > 2.0 {
                "if the model was trained on values in [0, 1], set the input scale to 0.00392156 (1/255; --scale)".to_string()
            } else if map.reason == MapReason::Pixels {
                "if the model was trained on raw 0–255 values, set the input scale to 1 (--scale 1); for other preparations set scale and offset".into()
            } else {
                "if the model was trained on other values (e.g. 0–255, or standardised), set the input scale and offset (--scale, --offset)"
                    .into()
            };
            return Some(format!(
                "model '{}' scores {:.1} % on '{}', no better than chance ({:.1} % by always answering the most frequent class). \
                 Its input was {}, values in [{mlo}, {mhi}]; {hint}",
                model.name,
                accuracy * 100.0,
                self.name,
                chance * 100.0,
                map.describe(),
            ));
        }
        if model.input.kind == InputKind::Image && self.stored == Stored::Float && map.reason == MapReason::AsStored && hi > 2.0 {
            return Some(format!(
                "data set '{}' stores float images with values up to {hi}, fed to model '{}' as stored ({:.1} % accuracy); \
                 if the model was trained on values in [0, 1], set the input scale to 0.00392156 (1/255; --scale)",
                self.name,
                model.name,
                accuracy * 100.0
            ));
        }
        None
    }

    /// The most frequent class's share of the test labels when `accuracy`
    /// is no better than it (within three standard errors), else `None`.
    fn chance(&self, accuracy: f32) -> Option<f32> {
        let n = self.test.y.len();
        let classes = self.class_names.len();
        if n < 20 || classes < 2 {
            return None;
        }
        let mut counts = vec![0usize; classes];
        self.test.y.iter().for_each(|&y| counts[(y as usize).min(classes - 1)] += 1);
        let chance = *counts.iter().max().unwrap_or(&0) as f32 / n as f32;
        // "At chance": within three standard errors of always answering the largest class.
        let margin = 3.0 * (chance * (1.0 - chance) / n as f32).sqrt();
        (accuracy <= chance + margin.max(0.02)).then_some(chance)
    }
}

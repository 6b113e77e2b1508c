//! Labelled data sets in memory: raw values (u8 pixels or token ids kept as
//! f32) plus labels. A model's `InputSpec` maps raw values to model input.

use crate::error::{Error, Result};
use crate::formats::npz::read_npz;
use crate::model::Model;

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

    /// Reads the `keras.datasets` `.npz` convention (`x_train`, `y_train`,
    /// `x_test`, `y_test`; optional `class_names` as UTF-8 JSON bytes).
    pub fn from_npz(bytes: &[u8], name: &str) -> Result<Self> {
        let arrays = read_npz(bytes)?;
        let get = |k: &str| arrays.get(k).ok_or_else(|| Error::format("npz", format!("missing array '{k}' (expected x_train, y_train, x_test, y_test)")));
        let split = |xk: &str, yk: &str| -> Result<(Vec<usize>, Split)> {
            let (x, y) = (get(xk)?, get(yk)?);
            let n = *x.shape.first().ok_or_else(|| Error::format("npz", format!("'{xk}' is a scalar")))?;
            if y.shape.first() != Some(&n) || y.shape.len() > 2 {
                return Err(Error::shape(format!("'{yk}'"), format!("{n} labels, or {n} rows of per-step labels (one per row of '{xk}')"), format!("{:?}", y.shape)));
            }
            let steps = y.shape.get(1).copied().unwrap_or(1);
            if steps == 0 {
                return Err(Error::shape(format!("'{yk}'"), "at least one label per sample", format!("{:?}", y.shape)));
            }
            Ok((x.shape[1..].to_vec(), Split { x: x.to_f32(), y: y.to_labels()?, steps }))
        };
        let (shape, train) = split("x_train", "y_train")?;
        let (test_shape, test) = split("x_test", "y_test")?;
        if shape != test_shape {
            return Err(Error::shape("x_test samples", format!("{shape:?} like x_train"), format!("{test_shape:?}")));
        }
        if train.steps != test.steps {
            return Err(Error::shape("y_test labels per sample", train.steps, test.steps));
        }
        let classes = train.y.iter().chain(&test.y).max().map_or(0, |m| *m as usize + 1);
        let strings = |key: &str| -> Result<Option<Vec<String>>> {
            let Some(a) = arrays.get(key) else { return Ok(None) };
            let bytes: Vec<u8> = a.to_f32().iter().map(|&b| b as u8).collect();
            serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::format("npz", format!("{key} is not a JSON list of strings: {e}")))
        };
        let class_names = match strings("class_names")? {
            Some(names) if names.len() < classes => return Err(Error::shape("class_names", format!("at least {classes} names"), names.len())),
            Some(names) => names,
            None => (0..classes).map(|c| c.to_string()).collect(),
        };
        let vocab = strings("vocab")?;
        if let Some(v) = &vocab {
            let top = train.x.iter().chain(&test.x).fold(0f32, |m, &x| m.max(x));
            if v.len() < 2 || top >= v.len() as f32 {
                return Err(Error::shape("vocab", format!("at least {} entries (the largest token id is {top})", (top as usize + 1).max(2)), v.len()));
            }
        }
        Ok(Dataset { name: name.into(), sample_shape: shape, class_names, vocab, train, test })
    }

    /// An IDX images file (`N × …` unsigned bytes, e.g. MNIST's
    /// `t10k-images-idx3-ubyte`) and its labels file (`N` bytes). The one set
    /// of samples serves as both the train and the test split; class names
    /// are the label numbers.
    pub fn from_idx(images: &[u8], labels: &[u8], name: &str) -> Result<Self> {
        use crate::formats::idx::read_idx;
        let x = read_idx(images).map_err(|e| Error::invalid(format!("images: {e}")))?;
        let y = read_idx(labels).map_err(|e| Error::invalid(format!("labels: {e}")))?;
        let n = x.shape[0];
        if x.shape.len() < 2 {
            return Err(Error::shape("IDX images", "[samples, …] with at least 2 axes", format!("{:?}", x.shape)));
        }
        if y.shape != [n] {
            return Err(Error::shape("IDX labels", format!("[{n}] (one per image)"), format!("{:?}", y.shape)));
        }
        let classes = y.data.iter().max().map_or(0, |&m| m as usize + 1);
        let split = Split { x: x.data.iter().map(|&v| v as f32).collect(), y: y.data.iter().map(|&v| v as u32).collect(), steps: 1 };
        Ok(Dataset {
            name: name.into(),
            sample_shape: x.shape[1..].to_vec(),
            class_names: (0..classes).map(|c| c.to_string()).collect(),
            vocab: None,
            train: split.clone(),
            test: split,
        })
    }

    /// Token ids for `text` as the data set's windows were made: lowercase,
    /// whitespace collapsed, unknown characters as id 1, repeated (space
    /// separated) or cut to the sequence length — the training windows are
    /// cut from running text, so repetition is closer to them than padding.
    pub fn encode_text(&self, text: &str) -> Result<Vec<f32>> {
        let vocab = self.vocab.as_ref().ok_or_else(|| Error::invalid(format!("data set '{}' is not text (it has no vocabulary)", self.name)))?;
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
            return Err(Error::shape(format!("classes of data set '{}' for model '{}'", self.name, model.name), model.classes(), self.class_names.len()));
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

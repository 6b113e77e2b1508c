//! Data sets from files: the `keras.datasets` `.npz` layout and IDX image +
//! label files (MNIST's), read into the engine's in-memory [`Dataset`].

use super::file_stem;
use super::idx::{labels_name, looks_like_idx, read_idx};
use super::npz::{NpyArray, NpyData, read_npy, read_npz};
use crate::engine::data::{Dataset, Split, Stored};
use crate::error::{Error, Result};

/// Reads the `keras.datasets` `.npz` convention (`x_train`, `y_train`,
/// `x_test`, `y_test`; optional `class_names` as a string array or UTF-8
/// JSON bytes). Labels are class ids (one per sample, or one per time step:
/// `N × T` with T the samples' first axis), or one-hot rows `N × C`.
pub fn read_npz_dataset(bytes: &[u8], name: &str) -> Result<Dataset> {
    let arrays = read_npz(bytes)?;
    let get = |k: &str| {
        arrays.get(k).ok_or_else(|| Error::format("npz", format!("missing array '{k}' (expected x_train, y_train, x_test, y_test)")))
    };
    let split = |xk: &str, yk: &str| -> Result<(Vec<usize>, Split)> {
        let (x, y) = (get(xk)?, get(yk)?);
        let n = *x.shape.first().ok_or_else(|| Error::format("npz", format!("'{xk}' is a scalar")))?;
        if y.shape.first() != Some(&n) || y.shape.len() > 2 {
            return Err(Error::shape(
                format!("'{yk}'"),
                format!("{n} labels, or {n} rows of per-step labels (one per row of '{xk}')"),
                format!("{:?}", y.shape),
            ));
        }
        if matches!(x.data, NpyData::Str(_)) {
            return Err(Error::format("npz", format!("'{xk}' holds strings; samples must be numbers")));
        }
        let labels = y.to_labels().map_err(|e| Error::format("npz", format!("'{yk}': {e}")))?;
        let (labels, steps) = match one_hot(y, &labels, x.shape.get(1).copied()) {
            Some(ids) => (ids, 1),
            None => (labels, y.shape.get(1).copied().unwrap_or(1)),
        };
        if steps == 0 {
            return Err(Error::shape(format!("'{yk}'"), "at least one label per sample", format!("{:?}", y.shape)));
        }
        let values = x.to_f32();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::format("npz", format!("'{xk}' holds {} at flat index {i}; samples must be finite", values[i])));
        }
        Ok((x.shape[1..].to_vec(), Split { x: values, y: labels, steps }))
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
        if let NpyData::Str(v) = &a.data {
            return Ok(Some(v.clone()));
        }
        let bytes: Vec<u8> = a.to_f32().iter().map(|&b| b as u8).collect();
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::format("npz", format!("{key} is neither a string array (np.array(names)) nor UTF-8 JSON bytes of a list: {e}"))
        })
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
            return Err(Error::shape(
                "vocab",
                format!("at least {} entries (the largest token id is {top})", (top as usize + 1).max(2)),
                v.len(),
            ));
        }
    }
    let stored = if get("x_train")?.is_float() || get("x_test")?.is_float() { Stored::Float } else { Stored::Integer };
    Ok(Dataset { name: name.into(), sample_shape: shape, class_names, vocab, train, test, stored })
}

/// One-hot label rows `N × C` (what `to_categorical` writes) as class ids.
/// A 2-D integer array as long as the samples' first axis is per-step labels
/// instead; a float one must be one-hot (one 1 per row, the rest 0).
fn one_hot(y: &NpyArray, labels: &[u32], seq_len: Option<usize>) -> Option<Vec<u32>> {
    let &[_, c] = y.shape.as_slice() else { return None };
    if c < 2 || (!y.is_float() && seq_len == Some(c)) {
        return None;
    }
    let rows: Option<Vec<u32>> =
        labels
            .chunks_exact(c)
            .map(|r| {
                if r.iter().all(|&v| v <= 1) && r.iter().sum::<u32>() == 1 {
                    r.iter().position(|&v| v == 1).map(|p| p as u32)
                } else {
                    None
                }
            })
            .collect();
    rows.filter(|r| !r.is_empty())
}

/// An IDX images file (`N × …` unsigned bytes, e.g. MNIST's
/// `t10k-images-idx3-ubyte`) and its labels file (`N` bytes). The one set
/// of samples serves as both the train and the test split; class names
/// are the label numbers.
pub fn read_idx_dataset(images: &[u8], labels: &[u8], name: &str) -> Result<Dataset> {
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
        stored: Stored::Integer,
    })
}

/// The data set in the file at `path`: a `.npz`, or an IDX images file whose
/// labels file (MNIST's naming: `…-images-idx3-ubyte` → `…-labels-idx1-ubyte`)
/// `read` finds next to it. Named after the file unless `name` is given.
pub fn read_dataset_file(path: &str, name: Option<&str>, read: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<Dataset> {
    let bytes = read(path)?;
    let name = name.unwrap_or(file_stem(path));
    let d = if is_idx(&bytes) {
        const NEEDS: &str = "an IDX images file needs its labels file next to it (…-images-idx3-ubyte → …-labels-idx1-ubyte)";
        let labels = labels_name(path).ok_or_else(|| Error::invalid(NEEDS))?;
        let label_bytes = read(&labels).map_err(|e| Error::invalid(format!("{NEEDS}: {e}")))?;
        read_idx_dataset(&bytes, &label_bytes, name)
    } else {
        read_npz_dataset(&bytes, name)
    };
    d.map_err(|e| e.in_file(path))
}

/// IDX by its magic, or a gzip file (most likely a downloaded `.gz` IDX; the IDX reader says to decompress it).
fn is_idx(bytes: &[u8]) -> bool {
    looks_like_idx(bytes) || bytes.starts_with(&[0x1f, 0x8b])
}

/// Samples without labels, as stored: an IDX images file, a `.npy` array
/// `[N, …]`, or split `split` (`train`/`test`) of a data set `.npz`.
pub struct Samples {
    pub x: Vec<f32>,
    pub n: usize,
    pub stored: Stored,
}

pub fn read_samples(bytes: &[u8], name: &str, split: &str) -> Result<Samples> {
    if is_idx(bytes) {
        let a = read_idx(bytes)?;
        return Ok(Samples { x: a.data.iter().map(|&v| v as f32).collect(), n: a.shape[0], stored: Stored::Integer });
    }
    if bytes.starts_with(b"\x93NUMPY") {
        let a = read_npy(bytes)?;
        let n = *a.shape.first().ok_or_else(|| Error::invalid("a scalar, not an array of samples"))?;
        if matches!(a.data, NpyData::Str(_)) {
            return Err(Error::invalid("an array of strings, not of samples"));
        }
        let stored = if a.is_float() { Stored::Float } else { Stored::Integer };
        return Ok(Samples { x: a.to_f32(), n, stored });
    }
    let d = read_npz_dataset(bytes, name)?;
    let s = if split == "train" { d.train } else { d.test };
    Ok(Samples { n: s.len(), x: s.x, stored: d.stored })
}

//! The little of HDF5 the Keras loaders need, over the pure-Rust `hdf5-pure`
//! crate: open from bytes, look up groups, read string attributes (fixed- and
//! variable-length, possibly split into `name0`, `name1`, … as Keras 2 does)
//! and read float datasets after checking their shape against the config and
//! their declared size against the file length.

use std::collections::HashMap;

use hdf5_pure::{AttrValue, Dataset, File, Group};

use crate::error::{Error, Result, checked_elems};

/// DEFLATE cannot expand data by more than ~1032:1, so a compressed dataset
/// declaring more than this many bytes per file byte is lying.
const MAX_DEFLATE_RATIO: u64 = 1032;

pub struct H5 {
    file: File,
    len: u64,
    /// Which file this is, for messages ("model.weights.h5", "the .h5 file").
    pub label: &'static str,
}

/// One stored weight array, not read yet.
pub struct StoredArray {
    /// Where it is in the file, for messages.
    pub path: String,
    /// What the file calls it (`kernel`, `bias`, `gamma`, …) when it says.
    pub role: Option<String>,
    dataset: Dataset,
}

impl H5 {
    pub fn open(bytes: Vec<u8>, label: &'static str) -> Result<Self> {
        if !bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
            return Err(Error::format("HDF5", format!("{label} does not start with the HDF5 signature (\\x89HDF)")));
        }
        let len = bytes.len() as u64;
        let file = File::from_bytes(bytes).map_err(|e| Error::format("HDF5", format!("{label} cannot be read: {e}")))?;
        // Like libhdf5: a file shorter than the end-of-file address its
        // superblock records has lost its tail.
        let sb = file.superblock();
        let eof = sb.base_address.get().saturating_add(sb.eof_address);
        if eof > len {
            return Err(Error::format(
                "HDF5",
                format!("{label} is truncated: its superblock says it is {eof} bytes long, but it has {len}"),
            ));
        }
        Ok(H5 { file, len, label })
    }

    pub fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::format("HDF5", format!("{}: {reason}", self.label))
    }

    pub fn root(&self) -> Group {
        self.file.root()
    }

    /// The group at `path`, or a message saying it is missing (or unreadable).
    pub fn group(&self, path: &str) -> std::result::Result<Group, String> {
        self.file.group(path).map_err(|e| format!("no readable group '{path}' in {} ({e})", self.label))
    }

    pub fn attrs(&self, group: &Group, path: &str) -> Result<HashMap<String, AttrValue>> {
        group.attrs().map_err(|e| self.err(format!("attributes of '{path}' cannot be read: {e}")))
    }

    /// The dataset at `path` as a [`StoredArray`].
    pub fn array(&self, path: &str, role: Option<String>) -> Result<StoredArray> {
        let dataset = self.file.dataset(path).map_err(|e| self.err(format!("weight array '{path}' is missing or unreadable ({e})")))?;
        Ok(StoredArray { path: path.to_string(), role, dataset })
    }

    /// The datasets directly in `group` (at `path`), by name.
    pub fn dataset_names(&self, group: &Group, path: &str) -> Result<Vec<String>> {
        group.datasets().map_err(|e| self.err(format!("the members of '{path}' cannot be listed: {e}")))
    }

    /// Reads `a` as f32 after checking it has exactly shape `want`. `ctx` names
    /// the weight for messages, e.g. "layer 'dense_2' kernel".
    pub fn read(&self, a: &StoredArray, want: &[usize], ctx: &str) -> Result<Vec<f32>> {
        let shape = a.dataset.shape().map_err(|e| self.err(format!("'{}' has an unreadable shape: {e}", a.path)))?;
        let same = shape.len() == want.len() && shape.iter().zip(want).all(|(&s, &w)| s == w as u64);
        if !same {
            return Err(Error::shape(
                ctx,
                format!("{want:?} (from the model config)"),
                format!("{shape:?} (in {} at '{}')", self.label, a.path),
            ));
        }
        let n = checked_elems(ctx, want)?;
        // The declared extent must fit in the file: HDF5 returns fill values for
        // unwritten storage, so a tiny file could otherwise ask for gigabytes.
        let elem = a.dataset.element_size().map_err(|e| self.err(format!("'{}' has an unreadable datatype: {e}", a.path)))?;
        let bytes = (n as u64).saturating_mul(elem);
        let limit = if a.dataset.filters().is_empty() { self.len } else { self.len.saturating_mul(MAX_DEFLATE_RATIO) };
        if bytes > limit {
            return Err(self.err(format!("'{}' declares {bytes} bytes of data but the file has only {} bytes", a.path, self.len)));
        }
        let v = a.dataset.read_f32().map_err(|e| self.err(format!("'{}' cannot be read as numbers: {e}", a.path)))?;
        if v.len() != n {
            return Err(self.err(format!("'{}' holds {} values, its shape {want:?} needs {n}", a.path, v.len())));
        }
        Ok(v)
    }
}

/// A list-of-strings attribute: fixed- or variable-length, scalar or array.
/// Keras 2 splits long lists into `name0`, `name1`, … (each under the 64 KiB
/// object-header limit); those are joined. An empty numeric array (what h5py
/// writes for an empty Python list) reads as an empty list. `Ok(None)` when
/// the attribute is absent; an error when it is present but not strings.
pub fn attr_strings(attrs: &HashMap<String, AttrValue>, name: &str) -> std::result::Result<Option<Vec<String>>, String> {
    fn one(v: &AttrValue, name: &str) -> std::result::Result<Vec<String>, String> {
        if let Some(s) = v.as_strings() {
            return Ok(s.to_vec());
        }
        let empty = match v {
            AttrValue::F32Array(a) => a.is_empty(),
            AttrValue::F64Array(a) => a.is_empty(),
            AttrValue::I8Array(a) => a.is_empty(),
            AttrValue::I16Array(a) => a.is_empty(),
            AttrValue::I32Array(a) => a.is_empty(),
            AttrValue::I64Array(a) => a.is_empty(),
            AttrValue::U8Array(a) => a.is_empty(),
            AttrValue::U16Array(a) => a.is_empty(),
            AttrValue::U32Array(a) => a.is_empty(),
            AttrValue::U64Array(a) => a.is_empty(),
            _ => false,
        };
        if empty { Ok(vec![]) } else { Err(format!("attribute '{name}' should hold strings but holds {}", v.type_name())) }
    }
    if let Some(v) = attrs.get(name) {
        return one(v, name).map(Some);
    }
    let mut out = Vec::new();
    let mut found = false;
    // Terminates: each round consumes a distinct attribute of a finite map.
    for k in 0..attrs.len() {
        let key = format!("{name}{k}");
        let Some(v) = attrs.get(&key) else { break };
        found = true;
        out.extend(one(v, &key)?);
    }
    Ok(found.then_some(out))
}

/// A single-string attribute (e.g. `model_config`, a `vars` group's `name`).
pub fn attr_string(attrs: &HashMap<String, AttrValue>, name: &str) -> std::result::Result<Option<String>, String> {
    match attrs.get(name) {
        None => Ok(None),
        Some(v) => match v.as_strings() {
            Some([s]) => Ok(Some(s.clone())),
            _ => Err(format!("attribute '{name}' should be a string but holds {}", v.type_name())),
        },
    }
}

//! NumPy `.npy` arrays and `.npz` archives (zip of `.npy`, stored or deflated),
//! the `keras.datasets` convention for data: `x_train`, `y_train`, `x_test`,
//! `y_test`. Only little-endian numeric arrays in C order are read; object
//! (pickled) arrays are refused.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use crate::error::{Error, Result, checked_elems};

#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            NpyData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// Integer labels (class ids); fails on negative or fractional values.
    pub fn to_labels(&self) -> Result<Vec<u32>> {
        let bad = || Error::format("npy", "labels must be non-negative integers");
        let as_u32 = |x: f64| if x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 { Ok(x as u32) } else { Err(bad()) };
        match &self.data {
            NpyData::U8(v) => Ok(v.iter().map(|&x| x as u32).collect()),
            NpyData::I32(v) => v.iter().map(|&x| as_u32(x as f64)).collect(),
            NpyData::I64(v) => v.iter().map(|&x| as_u32(x as f64)).collect(),
            NpyData::F32(v) => v.iter().map(|&x| as_u32(x as f64)).collect(),
            NpyData::F64(v) => v.iter().map(|&x| as_u32(x)).collect(),
        }
    }
}

/// Parses one `.npy` file.
pub fn read_npy(bytes: &[u8]) -> Result<NpyArray> {
    let err = |r: &str| Error::format("npy", r.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("missing the \\x93NUMPY magic"));
    }
    let (hlen, hstart): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return Err(err(&format!("unsupported version {v}"))),
    };
    let header = bytes.get(hstart..hstart.saturating_add(hlen)).ok_or_else(|| err("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
    let field = |key: &str| -> Result<&str> {
        let at = header.find(&format!("'{key}'")).ok_or_else(|| err(&format!("header has no '{key}'")))?;
        Ok(header[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|d| d.split('\'').next()).ok_or_else(|| err("bad descr"))?;
    if field("fortran_order")?.starts_with("True") {
        return Err(err("Fortran-ordered arrays are not supported; save with C order"));
    }
    let shape_txt = field("shape")?;
    let shape_txt = shape_txt.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| err("bad shape"))?;
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err("bad shape")))
        .collect::<Result<Vec<_>>>()?;
    let n = checked_elems("npy array", &shape)?;
    let body = &bytes[hstart + hlen..];
    let take = |size: usize| -> Result<&[u8]> {
        body.get(..n.checked_mul(size).ok_or_else(|| err("size overflow"))?)
            .ok_or_else(|| err(&format!("truncated: shape {shape:?} needs {} bytes, {} present", n * size, body.len())))
    };
    let data = match descr {
        "|u1" | "<u1" | "|b1" => NpyData::U8(take(1)?.to_vec()),
        "<i4" => NpyData::I32(take(4)?.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()),
        "<i8" => NpyData::I64(take(8)?.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
        "<f4" => NpyData::F32(take(4)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
        "<f8" => NpyData::F64(take(8)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
        other => {
            return Err(Error::Unsupported {
                what: "npy dtype".into(),
                name: other.into(),
                supported: "u1, i4, i8, f4, f8 (little-endian)".into(),
            });
        }
    };
    Ok(NpyArray { shape, data })
}

/// Writes a little-endian float32 `.npy` (format version 1.0, C order) of
/// `shape`; `data` must hold exactly `shape`'s product of values.
pub fn write_npy_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::shape("npy data", format!("{n} values for shape {shape:?}"), data.len()));
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let hlen = u16::try_from(header.len()).map_err(|_| Error::too_large("npy header", header.len() as u64, u16::MAX as u64))?;
    let mut out = Vec::with_capacity(10 + header.len() + 4 * n);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    Ok(out)
}

/// Largest total uncompressed size accepted from one archive (zip-bomb guard).
pub const MAX_NPZ_BYTES: u64 = 512 << 20;

/// Parses an `.npz` archive into its arrays, keyed by name without `.npy`.
pub fn read_npz(bytes: &[u8]) -> Result<BTreeMap<String, NpyArray>> {
    let err = |r: String| Error::format("npz", r);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| err(e.to_string()))?;
        let name = f.name().map_err(|e| err(e.to_string()))?.trim_end_matches(".npy").to_string();
        // The declared size may lie; read at most the remaining budget + 1.
        let budget = MAX_NPZ_BYTES - total;
        let mut buf = Vec::with_capacity(f.size().min(budget).min(64 << 20) as usize);
        (&mut f).take(budget + 1).read_to_end(&mut buf).map_err(|e| err(format!("{name}: {e}")))?;
        total += buf.len() as u64;
        if total > MAX_NPZ_BYTES {
            return Err(Error::too_large("npz uncompressed size", total, MAX_NPZ_BYTES));
        }
        let arr = read_npy(&buf).map_err(|e| err(format!("{name}: {e}")))?;
        out.insert(name, arr);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend((h.len() as u16).to_le_bytes());
        v.extend(h.as_bytes());
        v.extend(body);
        v
    }

    #[test]
    fn reads_npy_and_rejects_truncation() {
        let a = read_npy(&npy("<f4", "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
        assert_eq!((a.shape.clone(), a.to_f32()), (vec![2], vec![1.0, 2.0]));
        let e = read_npy(&npy("<f4", "(3,)", &[0, 0, 128, 63])).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(read_npy(&npy("|O", "(1,)", &[0; 8])).unwrap_err().to_string().contains("dtype"));
        assert!(read_npy(&npy("<f4", "(4294967296, 4294967296)", &[])).is_err());
        assert!(read_npy(b"not a numpy file").is_err());
    }

    #[test]
    fn written_npy_reads_back() {
        for shape in [vec![3], vec![2, 3], vec![2, 1, 2], vec![0, 4]] {
            let data: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = write_npy_f32(&shape, &data).unwrap();
            assert_eq!((bytes.len() - data.len() * 4) % 64, 0, "header padded to 64 bytes");
            let a = read_npy(&bytes).unwrap();
            assert_eq!((a.shape, a.data), (shape, NpyData::F32(data)));
        }
        assert!(write_npy_f32(&[2, 2], &[1.0]).is_err());
    }

    #[test]
    fn reads_the_bundled_digits() {
        let arrays = read_npz(include_bytes!("../../data/digits.npz")).unwrap();
        assert_eq!(arrays["x_train"].shape, vec![6000, 28, 28]);
        assert_eq!(arrays["y_test"].shape, vec![1000]);
        let y = arrays["y_test"].to_labels().unwrap();
        assert_eq!((0..10).map(|c| y.iter().filter(|&&v| v == c).count()).collect::<Vec<_>>(), vec![100; 10]);
    }
}

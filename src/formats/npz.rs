//! NumPy `.npy` arrays and `.npz` archives (zip of `.npy`, stored or deflated),
//! the `keras.datasets` convention for data: `x_train`, `y_train`, `x_test`,
//! `y_test`. Little-endian numeric arrays and fixed-width strings (`<U…`,
//! `|S…`) in C order are read; object (pickled) arrays are refused.

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
    /// Any other integer width (i1, i2, u2, u4, u8), widened.
    Int(Vec<i64>),
    /// float16, widened.
    F16(Vec<f32>),
    /// `<U…` (UTF-32) or `|S…` (bytes) strings, trailing NULs removed.
    Str(Vec<String>),
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
    /// The values as f32 (strings have none: an empty vector).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            NpyData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) | NpyData::Int(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::F32(v) | NpyData::F16(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::Str(_) => vec![],
        }
    }

    pub fn is_float(&self) -> bool {
        matches!(self.data, NpyData::F32(_) | NpyData::F64(_) | NpyData::F16(_))
    }

    /// The dtype as NumPy names it, for messages.
    pub fn dtype(&self) -> &'static str {
        match self.data {
            NpyData::U8(_) => "uint8",
            NpyData::I32(_) => "int32",
            NpyData::I64(_) => "int64",
            NpyData::Int(_) => "integer",
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::F16(_) => "float16",
            NpyData::Str(_) => "string",
        }
    }
    /// Integer labels (class ids); fails on negative or fractional values.
    pub fn to_labels(&self) -> Result<Vec<u32>> {
        let bad = || Error::format("npy", "labels must be non-negative integers");
        let as_u32 = |x: f64| if x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 { Ok(x as u32) } else { Err(bad()) };
        match &self.data {
            NpyData::U8(v) => Ok(v.iter().map(|&x| x as u32).collect()),
            NpyData::I32(v) => v.iter().map(|&x| as_u32(x as f64)).collect(),
            NpyData::I64(v) | NpyData::Int(v) => v.iter().map(|&x| as_u32(x as f64)).collect(),
            NpyData::F32(v) | NpyData::F16(v) => v.iter().map(|&x| as_u32(x as f64)).collect(),
            NpyData::F64(v) => v.iter().map(|&x| as_u32(x)).collect(),
            NpyData::Str(_) => {
                Err(Error::format("npy", "labels must be integers, not strings (store class ids, and the names as class_names)"))
            }
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
    let data = decode(descr, &take)?;
    Ok(NpyArray { shape, data })
}

/// The elements of a `descr` dtype.
fn decode<'a>(descr: &str, take: &dyn Fn(usize) -> Result<&'a [u8]>) -> Result<NpyData> {
    fn le<const W: usize, T>(b: &[u8], f: fn([u8; W]) -> T) -> Vec<T> {
        b.chunks_exact(W).map(|c| f(c.try_into().unwrap())).collect()
    }
    let width = |d: &str| d[2..].parse::<usize>().ok().filter(|&w| w > 0 && w <= 1 << 16);
    Ok(match descr {
        "|u1" | "<u1" | "|b1" => NpyData::U8(take(1)?.to_vec()),
        "<i4" => NpyData::I32(le(take(4)?, i32::from_le_bytes)),
        "<i8" => NpyData::I64(le(take(8)?, i64::from_le_bytes)),
        "<f4" => NpyData::F32(le(take(4)?, f32::from_le_bytes)),
        "<f8" => NpyData::F64(le(take(8)?, f64::from_le_bytes)),
        "<f2" => NpyData::F16(le(take(2)?, |b| f16_to_f32(u16::from_le_bytes(b)))),
        "|i1" | "<i1" => NpyData::Int(take(1)?.iter().map(|&b| b as i8 as i64).collect()),
        "<i2" => NpyData::Int(le(take(2)?, |b| i16::from_le_bytes(b) as i64)),
        "<u2" => NpyData::Int(le(take(2)?, |b| u16::from_le_bytes(b) as i64)),
        "<u4" => NpyData::Int(le(take(4)?, |b| u32::from_le_bytes(b) as i64)),
        "<u8" => NpyData::Int(le(take(8)?, |b| u64::from_le_bytes(b).min(i64::MAX as u64) as i64)),
        d if d.starts_with("<U") && width(d).is_some() => {
            let w = width(d).unwrap_or(1);
            let chars = |c: &[u8]| -> String {
                c.chunks_exact(4)
                    .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                    .take_while(|&u| u != 0)
                    .filter_map(char::from_u32)
                    .collect()
            };
            NpyData::Str(take(4 * w)?.chunks_exact(4 * w).map(chars).collect())
        }
        d if d.starts_with("|S") && width(d).is_some() => {
            let w = width(d).unwrap_or(1);
            let text = |c: &[u8]| String::from_utf8_lossy(&c[..c.iter().position(|&b| b == 0).unwrap_or(c.len())]).into_owned();
            NpyData::Str(take(w)?.chunks_exact(w).map(text).collect())
        }
        "|O" => {
            return Err(Error::format(
                "npy",
                "object arrays (pickled Python objects) are not read; save strings as a fixed-width array, \
                 e.g. np.array(names, dtype=str), and numbers with a numeric dtype",
            ));
        }
        other => {
            return Err(Error::Unsupported {
                what: "npy dtype".into(),
                name: other.into(),
                supported: "u1, i1, i2, i4, i8, u2, u4, u8, f2, f4, f8 (little-endian), <U… and |S… strings".into(),
            });
        }
    })
}

/// IEEE half to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        // Subnormal: frac × 2^-24.
        0 => {
            let v = frac as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
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
        assert!(read_npy(&npy("<f4", "(4294967296, 4294967296)", &[])).is_err());
        assert!(read_npy(b"not a numpy file").is_err());
    }

    #[test]
    fn reads_strings_half_floats_and_narrow_ints_and_refuses_pickles() {
        let utf32 = |t: &str, w: usize| -> Vec<u8> {
            let mut v: Vec<u8> = t.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
            v.resize(4 * w, 0);
            v
        };
        let body: Vec<u8> = [utf32("cat", 4), utf32("dög", 4)].concat();
        assert_eq!(read_npy(&npy("<U4", "(2,)", &body)).unwrap().data, NpyData::Str(vec!["cat".into(), "dög".into()]));
        assert_eq!(read_npy(&npy("|S3", "(2,)", b"ab\0xyz")).unwrap().data, NpyData::Str(vec!["ab".into(), "xyz".into()]));
        // 1.0, -2.0, 0.5, a subnormal (2^-24) in float16.
        let h: Vec<u8> = [0x3c00u16, 0xc000, 0x3800, 0x0001].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(read_npy(&npy("<f2", "(4,)", &h)).unwrap().to_f32(), vec![1.0, -2.0, 0.5, 2f32.powi(-24)]);
        assert_eq!(read_npy(&npy("<i2", "(2,)", &[0xff, 0xff, 7, 0])).unwrap().to_f32(), vec![-1.0, 7.0]);
        assert_eq!(read_npy(&npy("<u2", "(1,)", &[0xff, 0xff])).unwrap().to_labels().unwrap(), vec![65535]);
        let e = read_npy(&npy("|O", "(1,)", &[0; 8])).unwrap_err().to_string();
        assert!(e.contains("pickled") && e.contains("dtype=str"), "{e}");
        let e = read_npy(&npy("<c8", "(1,)", &[0; 8])).unwrap_err().to_string();
        assert!(e.contains("<c8") && e.contains("f2, f4"), "{e}");
        assert!(read_npy(&npy("<U4", "(2,)", &[0; 8])).unwrap_err().to_string().contains("truncated"));
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
        assert_eq!(arrays["x_train"].shape, vec![1000, 28, 28]);
        assert_eq!(arrays["y_test"].shape, vec![1000]);
        let y = arrays["y_test"].to_labels().unwrap();
        assert_eq!((0..10).map(|c| y.iter().filter(|&&v| v == c).count()).collect::<Vec<_>>(), vec![100; 10]);
    }
}

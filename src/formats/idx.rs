//! IDX files, the MNIST distribution format (`train-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`, …): magic `00 00 <type> <rank>`, then `rank`
//! big-endian u32 dimensions, then the values in C order, big-endian. Only
//! unsigned-byte data (type 0x08) is read — what MNIST-style images and
//! labels use. Gzipped files are recognised and refused with a hint.

use crate::error::{Error, Result, checked_elems};

#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Is `bytes` an (uncompressed) IDX file?
pub fn looks_like_idx(bytes: &[u8]) -> bool {
    matches!(bytes, [0, 0, 0x08..=0x0e, 1..=4, ..])
}

pub fn read_idx(bytes: &[u8]) -> Result<Idx> {
    let err = |r: String| Error::format("IDX", r);
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(err("the file is gzip-compressed; decompress it first (gunzip)".into()));
    }
    let [0, 0, kind, rank, ..] = *bytes else {
        return Err(err("missing the 00 00 <type> <rank> magic".into()));
    };
    if kind != 0x08 {
        return Err(Error::Unsupported {
            what: "IDX data type".into(),
            name: format!("0x{kind:02x}"),
            supported: "0x08 (unsigned bytes)".into(),
        });
    }
    if !(1..=4).contains(&rank) {
        return Err(err(format!("rank {rank} (expected 1 to 4)")));
    }
    let head = 4 + 4 * rank as usize;
    let dims = bytes.get(4..head).ok_or_else(|| err(format!("truncated: the header needs {head} bytes, {} present", bytes.len())))?;
    let shape: Vec<usize> = dims.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let n = checked_elems("IDX array", &shape)?;
    let body = &bytes[head..];
    if body.len() != n {
        return Err(err(format!("shape {shape:?} needs {n} bytes of data, {} present", body.len())));
    }
    Ok(Idx { shape, data: body.to_vec() })
}

/// The labels file that goes with an images file by the MNIST naming
/// convention: `…-images-idx3-ubyte` → `…-labels-idx1-ubyte` (also with `.`
/// for the last `-`). `None` if the name does not follow it.
pub fn labels_name(images: &str) -> Option<String> {
    ["images-idx3", "images.idx3"]
        .iter()
        .find_map(|pat| images.rfind(pat).map(|at| format!("{}labels{}idx1{}", &images[..at], &pat[6..7], &images[at + pat.len()..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(shape: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, shape.len() as u8];
        shape.iter().for_each(|d| v.extend(d.to_be_bytes()));
        v.extend(data);
        v
    }

    #[test]
    fn reads_and_checks() {
        let a = read_idx(&idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])).unwrap();
        assert_eq!(a.shape, [2, 2, 3]);
        assert_eq!(a.data[11], 12);
        assert!(looks_like_idx(&idx(&[1], &[0])));
        assert!(read_idx(&idx(&[2, 2], &[1, 2, 3])).unwrap_err().to_string().contains("needs 4 bytes"));
        assert!(read_idx(&idx(&[2, 2], &[1, 2, 3, 4, 5])).is_err());
        assert!(read_idx(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[])).is_err());
        assert!(read_idx(&[0, 0, 8, 3, 0]).unwrap_err().to_string().contains("truncated"));
        assert!(read_idx(&[0x1f, 0x8b, 8, 0]).unwrap_err().to_string().contains("gunzip"));
        assert!(matches!(read_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), Err(Error::Unsupported { .. })));
        let whole = idx(&[2, 2], &[1, 2, 3, 4]);
        for cut in 0..whole.len() {
            assert!(read_idx(&whole[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn mnist_label_names() {
        assert_eq!(labels_name("data/t10k-images-idx3-ubyte").as_deref(), Some("data/t10k-labels-idx1-ubyte"));
        assert_eq!(labels_name("train-images.idx3-ubyte").as_deref(), Some("train-labels.idx1-ubyte"));
        assert_eq!(labels_name("pictures.bin"), None);
    }
}

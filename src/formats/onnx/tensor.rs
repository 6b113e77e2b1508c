//! Constant tensors: initializers, `Constant` nodes and what constant folding
//! makes of them. Floating types become f32, integer types i64.

use super::proto::{TensorProto, data_type as dt};
use crate::error::{Error, Result, checked_elems};

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

impl Const {
    pub fn new(dims: Vec<usize>, data: Data) -> Self {
        Const { dims, data }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// Values as f32 (integers converted).
    pub fn f32s(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// Integer values (shapes, axes, indices); `None` for float data.
    pub fn i64s(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::F32(_) => None,
        }
    }

    /// Picks elements by flat index (used by transpose, gather, concat).
    pub fn select(&self, dims: Vec<usize>, idx: impl Iterator<Item = usize>) -> Const {
        let data = match &self.data {
            Data::F32(v) => Data::F32(idx.map(|i| v[i]).collect()),
            Data::I64(v) => Data::I64(idx.map(|i| v[i]).collect()),
        };
        Const { dims, data }
    }

    /// Reads a `TensorProto`, checking the declared size against the stored
    /// bytes before converting anything. `what` names it in errors.
    pub fn from_proto(t: &TensorProto, what: &str) -> Result<Const> {
        if t.data_location == 1 {
            return Err(Error::Unsupported {
                what: "ONNX tensor storage".into(),
                name: format!("external data file for {what}"),
                supported: "weights stored inside the .onnx file (export without external data, e.g. onnx.save(model, path, save_as_external_data=False))".into(),
            });
        }
        let dims = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| Error::format("ONNX", format!("{what} has a negative dimension in {:?}", t.dims))))
            .collect::<Result<Vec<_>>>()?;
        let n = checked_elems(what, &dims)?;
        let size = match t.data_type {
            dt::FLOAT => 4,
            dt::DOUBLE | dt::INT64 => 8,
            dt::INT32 => 4,
            dt::INT8 | dt::UINT8 | dt::BOOL => 1,
            other => {
                return Err(Error::Unsupported {
                    what: "ONNX tensor type".into(),
                    name: format!("{} ({other}) of {what}", dt::name(other)),
                    supported: "FLOAT, DOUBLE, INT64, INT32, INT8, UINT8, BOOL".into(),
                });
            }
        };
        let bad_len =
            |found: usize, field: &str| Error::format("ONNX", format!("{what}: dims {dims:?} need {n} values, {field} holds {found}"));
        if !t.raw_data.is_empty() {
            if t.raw_data.len() as u64 != n as u64 * size {
                return Err(bad_len(t.raw_data.len() / size as usize, "raw_data"));
            }
            let raw = &t.raw_data;
            let data = match t.data_type {
                dt::FLOAT => Data::F32(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
                dt::DOUBLE => Data::F32(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()),
                dt::INT64 => Data::I64(raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()),
                dt::INT32 => Data::I64(raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()),
                dt::INT8 => Data::I64(raw.iter().map(|&b| b as i8 as i64).collect()),
                _ => Data::I64(raw.iter().map(|&b| b as i64).collect()),
            };
            return Ok(Const { dims, data });
        }
        let (found, field, data) = match t.data_type {
            dt::FLOAT => (t.float_data.len(), "float_data", Data::F32(t.float_data.clone())),
            dt::DOUBLE => (t.double_data.len(), "double_data", Data::F32(t.double_data.iter().map(|&x| x as f32).collect())),
            dt::INT64 => (t.int64_data.len(), "int64_data", Data::I64(t.int64_data.clone())),
            _ => (t.int32_data.len(), "int32_data", Data::I64(t.int32_data.iter().map(|&x| x as i64).collect())),
        };
        if found != n {
            return Err(bad_len(found, field));
        }
        Ok(Const { dims, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_against_the_data() {
        let mut t = TensorProto { dims: vec![2, 2], data_type: dt::FLOAT, float_data: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() };
        assert_eq!(Const::from_proto(&t, "w").unwrap().f32s(), vec![1.0, 2.0, 3.0, 4.0]);
        t.dims = vec![2, 3];
        assert!(Const::from_proto(&t, "w").unwrap_err().to_string().contains("6 values"));
        t.dims = vec![1 << 40, 1 << 40];
        assert!(matches!(Const::from_proto(&t, "w"), Err(Error::TooLarge { .. })));
        t.dims = vec![-1];
        assert!(Const::from_proto(&t, "w").is_err());
        let raw: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = TensorProto { dims: vec![2], data_type: dt::FLOAT, raw_data: raw.clone(), ..Default::default() };
        assert_eq!(Const::from_proto(&t, "w").unwrap().f32s(), vec![1.5, -2.0]);
        let t = TensorProto { dims: vec![3], data_type: dt::FLOAT, raw_data: raw, ..Default::default() };
        assert!(Const::from_proto(&t, "w").is_err());
        let t = TensorProto {
            dims: vec![2],
            data_type: dt::INT64,
            raw_data: [7i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        };
        assert_eq!(Const::from_proto(&t, "s").unwrap().i64s(), Some(&[7i64, -1][..]));
        let t = TensorProto { dims: vec![1], data_type: 10, raw_data: vec![0, 0], ..Default::default() };
        assert!(Const::from_proto(&t, "h").unwrap_err().to_string().contains("FLOAT16"));
        let t = TensorProto { dims: vec![1], data_type: dt::FLOAT, data_location: 1, ..Default::default() };
        assert!(matches!(Const::from_proto(&t, "e"), Err(Error::Unsupported { .. })));
    }
}

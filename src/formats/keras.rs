//! Keras loaders (being written).
use crate::error::{Error, Result};
use crate::model::Model;

pub fn load_keras_zip(_bytes: &[u8], _name: &str) -> Result<Model> {
    Err(Error::invalid("Keras loader not implemented yet"))
}
pub fn load_keras_h5(_bytes: &[u8], _name: &str) -> Result<Model> {
    Err(Error::invalid("Keras loader not implemented yet"))
}

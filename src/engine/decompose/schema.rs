//! The decomposition settings' schema, `www/settings.json`: the one list of
//! the settings' names, types, defaults and bounds, which the page reads too
//! (the page is a static site, so the file lives in `www/`). The engine takes
//! its bounds from it ([`Settings::validate`](super::Settings::validate));
//! `tests/settings_schema.rs` checks names, defaults and enum values against
//! [`Settings`](super::Settings).

use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{Error, Result};

/// The file, as built into the engine.
pub const SCHEMA_JSON: &str = include_str!("../../../www/settings.json");

const FORMAT: &str = "settings schema (www/settings.json)";

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Schema {
    pub settings: Vec<SettingSpec>,
}

/// One setting. The page's fields (`label`, `help`, `labels`, `step`) are not read here.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SettingSpec {
    /// The serde name of the `Settings` field.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub default: Value,
    /// `enum`: the accepted values.
    #[serde(default)]
    pub values: Vec<String>,
    pub min: Option<f64>,
    pub min_inclusive: Option<bool>,
    pub max: Option<f64>,
    pub max_inclusive: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Enum,
    Boolean,
    Integer,
    Number,
}

/// A lower or upper bound of a numeric setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

impl SettingSpec {
    pub fn min(&self) -> Option<Bound> {
        Some(Bound { value: self.min?, inclusive: self.min_inclusive? })
    }

    pub fn max(&self) -> Option<Bound> {
        Some(Bound { value: self.max?, inclusive: self.max_inclusive? })
    }

    /// The range in interval notation, e.g. `(0, 10]`.
    pub fn range(&self) -> String {
        let lo = self.min().map_or("(-inf".to_string(), |b| format!("{}{}", if b.inclusive { '[' } else { '(' }, b.value));
        let hi = self.max().map_or("inf)".to_string(), |b| format!("{}{}", b.value, if b.inclusive { ']' } else { ')' }));
        format!("{lo}, {hi}")
    }

    /// Checks a value of this setting as `Settings` serialises it (the type
    /// is serde's to check; this checks the bounds).
    pub fn check(&self, v: &Value) -> Result<()> {
        if !matches!(self.kind, Kind::Integer | Kind::Number) {
            return Ok(());
        }
        // serde_json writes NaN and ±Inf as null.
        let x = v.as_f64().ok_or_else(|| Error::invalid(format!("{} must be a finite number in {}, not {v}", self.name, self.range())))?;
        let above = |b: Bound| if b.inclusive { x >= b.value } else { x > b.value };
        let below = |b: Bound| if b.inclusive { x <= b.value } else { x < b.value };
        if self.min().is_some_and(|b| !above(b)) || self.max().is_some_and(|b| !below(b)) {
            return Err(Error::invalid(format!("{} must be in {}, not {x}", self.name, self.range())));
        }
        Ok(())
    }

    /// What is wrong with the entry itself, if anything.
    fn problem(&self) -> Option<String> {
        let numeric = matches!(self.kind, Kind::Integer | Kind::Number);
        if self.kind == Kind::Enum && self.values.is_empty() {
            return Some("an enum needs its values".into());
        }
        if !numeric && (self.min.is_some() || self.max.is_some()) {
            return Some("only integer and number settings have bounds".into());
        }
        if self.min.is_some() != self.min_inclusive.is_some() || self.max.is_some() != self.max_inclusive.is_some() {
            return Some("a bound needs its `_inclusive` flag (and a flag its bound)".into());
        }
        let default_fits = match self.kind {
            Kind::Enum => self.default.as_str().is_some_and(|d| self.values.iter().any(|v| v == d)),
            Kind::Boolean => self.default.is_boolean(),
            Kind::Integer => self.default.is_u64() || self.default.is_i64(),
            Kind::Number => self.default.is_number(),
        };
        if !default_fits || (numeric && self.check(&self.default).is_err()) {
            return Some(format!("the default {} is not a valid value", self.default));
        }
        None
    }
}

/// The schema, parsed and checked once.
pub fn schema() -> Result<&'static Schema> {
    static SCHEMA: OnceLock<Result<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| parse(SCHEMA_JSON)).as_ref().map_err(Clone::clone)
}

/// Parses and checks a schema (the built-in one is [`schema`]).
pub fn parse(json: &str) -> Result<Schema> {
    let schema: Schema = serde_json::from_str(json).map_err(|e| Error::format(FORMAT, e.to_string()))?;
    for (k, spec) in schema.settings.iter().enumerate() {
        if schema.settings[..k].iter().any(|s| s.name == spec.name) {
            return Err(Error::format(FORMAT, format!("setting '{}' is listed twice", spec.name)));
        }
        if let Some(why) = spec.problem() {
            return Err(Error::format(FORMAT, format!("setting '{}': {why}", spec.name)));
        }
    }
    Ok(schema)
}

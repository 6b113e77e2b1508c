//! `www/settings.json` — the decomposition settings' one schema, read by the
//! page (defaults, form, link validation) and by `Settings::validate` — agrees
//! with Rust's `Settings`: the same serde names, the same defaults, the same
//! enum values, and `validate()` draws the line exactly at each bound.

use std::collections::BTreeSet;

use remodule::engine::decompose::Settings;
use remodule::engine::decompose::schema;
use serde_json::{Map, Value, json};

fn file() -> Value {
    let path = format!("{}/www/settings.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn entries() -> Vec<Map<String, Value>> {
    file()["settings"].as_array().expect("settings: a list").iter().map(|e| e.as_object().expect("an entry is an object").clone()).collect()
}

fn name(e: &Map<String, Value>) -> &str {
    e["name"].as_str().expect("name: a string")
}

/// Settings with one field given (the rest default), as the page or a link sends them.
fn with(name: &str, v: Value) -> Result<Settings, serde_json::Error> {
    serde_json::from_value(json!({ name: v }))
}

/// Whether Rust takes `v` for `name`: it deserialises and validates.
fn accepted(name: &str, v: Value) -> bool {
    with(name, v).is_ok_and(|s| s.validate().is_ok())
}

/// The names serde lists in "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`").
fn expected_names(err: serde_json::Error) -> BTreeSet<String> {
    let msg = err.to_string();
    let tail = msg.split_once("expected").unwrap_or_else(|| panic!("no list in: {msg}")).1;
    tail.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// `Settings::default()` as JSON, through text (so an f32 reads as written: 0.05, not 0.0500000007).
/// Fields left out of JSON at their zero value (`gates`, `keep_encoder` when false, `strength`
/// when 0) are filled in as the zero of their schema type; an enum left out at its default
/// (`relevance`) as the one schema value that reads back as `Settings::default()`.
fn rust_defaults() -> Map<String, Value> {
    let mut m: Map<String, Value> = serde_json::from_str(&serde_json::to_string(&Settings::default()).unwrap()).unwrap();
    for e in entries() {
        let zero = match e["type"].as_str() {
            Some("boolean") => json!(false),
            Some("number") => json!(0.0),
            Some("enum") => {
                let values = e["values"].as_array().unwrap();
                match values.iter().find(|v| with(name(&e), (*v).clone()).is_ok_and(|s| s == Settings::default())) {
                    Some(v) => v.clone(),
                    None => continue,
                }
            }
            _ => continue,
        };
        m.entry(name(&e).to_string()).or_insert(zero);
    }
    m
}

#[test]
fn the_file_parses_as_the_engine_reads_it() {
    let s = schema::schema().unwrap();
    assert_eq!(s.settings.len(), entries().len());
    assert_eq!(schema::SCHEMA_JSON, std::fs::read_to_string(format!("{}/www/settings.json", env!("CARGO_MANIFEST_DIR"))).unwrap());
    Settings::default().validate().unwrap();
}

#[test]
fn every_serde_field_is_in_the_schema_and_vice_versa() {
    let rust = expected_names(with("not_a_setting", json!(1)).unwrap_err());
    let schema: BTreeSet<String> = entries().iter().map(|e| name(e).to_string()).collect();
    assert_eq!(schema.len(), entries().len(), "a name is listed twice");
    let only_rust: Vec<_> = rust.difference(&schema).collect();
    let only_schema: Vec<_> = schema.difference(&rust).collect();
    assert!(
        only_rust.is_empty() && only_schema.is_empty(),
        "Settings fields missing from www/settings.json: {only_rust:?}; entries Rust does not know: {only_schema:?}"
    );
}

#[test]
fn each_default_equals_settings_default() {
    let rust = rust_defaults();
    for e in entries() {
        let n = name(&e);
        let want = &e["default"];
        let got = rust.get(n).cloned().unwrap_or_else(|| panic!("'{n}' is not a field of Settings"));
        let same = match (want.as_f64(), got.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => *want == got,
        };
        assert!(same, "default of '{n}': www/settings.json says {want}, Settings::default() has {got}");
        assert_eq!(with(n, want.clone()).unwrap(), Settings::default(), "'{n}' set to the schema's default is not Settings::default()");
    }
}

#[test]
fn types_and_enum_values_are_what_serde_accepts() {
    let rust = rust_defaults();
    for e in entries() {
        let n = name(&e);
        match e["type"].as_str().unwrap() {
            "enum" => {
                let values: BTreeSet<String> = e["values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
                for v in &values {
                    assert!(with(n, json!(v)).is_ok(), "'{n}': Rust refuses the schema's value '{v}'");
                }
                let serde_names = expected_names(with(n, json!("not-a-value")).unwrap_err());
                assert_eq!(values, serde_names, "'{n}': the schema's values vs the serde names Rust accepts");
                assert!(with(n, json!(true)).is_err());
            }
            "boolean" => {
                assert!(with(n, json!(true)).is_ok() && with(n, json!(false)).is_ok(), "'{n}' is not a boolean in Rust");
                assert!(with(n, json!("true")).is_err() && with(n, json!(1)).is_err());
            }
            "integer" => {
                assert!(rust[n].is_u64() || rust[n].is_i64(), "'{n}' is not an integer in Rust ({})", rust[n]);
                assert!(with(n, json!(1.5)).is_err(), "'{n}': Rust takes 1.5 for an integer");
            }
            "number" => {
                assert!(rust[n].is_f64(), "'{n}' is not a floating-point number in Rust ({})", rust[n]);
                assert!(with(n, json!("0.5")).is_err());
            }
            t => panic!("'{n}': unknown type {t}"),
        }
    }
}

#[test]
fn validate_draws_the_line_at_each_bound() {
    let mut checked = 0;
    for e in entries() {
        let n = name(&e);
        let kind = e["type"].as_str().unwrap();
        if kind != "integer" && kind != "number" {
            assert!(!e.contains_key("min") && !e.contains_key("max"), "'{n}' ({kind}) has bounds");
            continue;
        }
        // "Just outside": the next integer, or a step well above f32's precision.
        let eps = if kind == "integer" { 1.0 } else { 1e-3 };
        for (side, dir) in [("min", -1.0), ("max", 1.0)] {
            let b = e.get(side).and_then(Value::as_f64).unwrap_or_else(|| panic!("'{n}' has no {side}"));
            let inclusive =
                e.get(&format!("{side}_inclusive")).and_then(Value::as_bool).unwrap_or_else(|| panic!("'{n}' has no {side}_inclusive"));
            // An integer setting as an integer (serde refuses 1.0 for a usize).
            let num = |x: f64| if kind == "integer" { json!(x as i64) } else { json!(x) };
            let (at, outside, inside) = (num(b), num(b + dir * eps), num(b - dir * eps));
            if inclusive {
                assert!(accepted(n, at.clone()), "'{n}': validate() refuses its inclusive {side} {at}");
                assert!(!accepted(n, outside.clone()), "'{n}': validate() takes {outside}, just outside its {side} {at}");
            } else {
                assert!(!accepted(n, at.clone()), "'{n}': validate() takes its exclusive {side} {at}");
                assert!(accepted(n, inside.clone()), "'{n}': validate() refuses {inside}, just inside its exclusive {side} {at}");
            }
            checked += 1;
        }
        // The message names the setting (the page shows it as is).
        let far = json!(e["max"].as_f64().unwrap() as i64 + 1);
        let err = with(n, far).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains(n), "'{n}': {err}");
    }
    assert!(checked >= 10, "only {checked} bounds checked");
}

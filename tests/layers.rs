//! The house rules ARCHITECTURE.md states, checked on the source itself:
//! each layer imports only the layers below it, and no room grows past 800 lines.

use std::path::{Path, PathBuf};

/// Layers from the bottom; `error` is the foundation every layer may use.
const LAYERS: [&str; 5] = ["error", "engine", "formats", "workbench", "app"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer a file under `src/` belongs to (`None`: the top, wasm.rs and the CLI).
fn layer_of(file: &Path) -> Option<usize> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
    LAYERS.iter().position(|l| *l == first)
}

/// Every `crate::<layer>` a file names, with its line.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut refs = vec![];
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            refs.push((i + 1, name));
            rest = &rest[at + 7..];
        }
    }
    refs
}

#[test]
fn no_layer_imports_a_layer_above_it() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let mut wrong = vec![];
    for f in &files {
        let Some(own) = layer_of(f) else { continue };
        let text = std::fs::read_to_string(f).unwrap();
        for (line, name) in crate_refs(&text) {
            match LAYERS.iter().position(|l| *l == name) {
                Some(to) if to > own => wrong.push(format!("{}:{line} ({} imports {name})", f.display(), LAYERS[own])),
                Some(_) => {}
                None if name == "wasm" => wrong.push(format!("{}:{line} imports the wasm binding", f.display())),
                None => {} // crate::Result, crate::VERSION: the crate root's re-exports
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run up the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The rule above must be able to fail: an engine file naming the workbench is caught.
    let refs = crate_refs("use crate::workbench::Workbench; let x = crate::engine::bits::BitSet::new(3);");
    assert_eq!(refs.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), ["workbench", "engine"]);
    assert_eq!(layer_of(&src().join("engine/bits.rs")), Some(1));
    assert_eq!(layer_of(&src().join("wasm.rs")), None);
}

#[test]
fn no_room_in_src_is_over_800_lines() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > 800)
        .map(|(f, n)| format!("{} ({n} lines)", f.display()))
        .collect();
    assert!(long.is_empty(), "split these rooms: {}", long.join(", "));
}

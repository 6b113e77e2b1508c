//! The accuracy–size front of class relevance (docs/FIDELITY.md): for every
//! bundled model without recurrent layers, composed
//! accuracy, mean kept weights and mean module↔module Jaccard at several
//! strengths, beside the faithful `paper` and `reference` points.

use std::fmt::Write;

use super::catalog::Catalog;
use crate::engine::decompose::{Mode, Settings};
use crate::error::Result;
use crate::workbench::{Pick, Workbench, mean_off_diagonal};

/// The strengths the front is measured at.
pub const STRENGTHS: [f32; 6] = [0.1, 0.2, 0.35, 0.5, 0.65, 0.8];

/// One measured point of a model's front.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrontPoint {
    pub technique: String,
    /// As written (0.35, not the f32's 0.3499999940…).
    pub strength: f64,
    pub composed: f32,
    pub kept_weights: f32,
    pub jaccard: f32,
}

/// The front of model `id` around `base`: `base` at strength 0 (the faithful
/// point) and at each of [`STRENGTHS`], all from one recorded pass; the model is
/// left decomposed with `base` as given.
pub fn front(wb: &mut Workbench, id: usize, base: &Settings) -> Result<Vec<FrontPoint>> {
    let strengths = std::iter::once(0.0).chain(STRENGTHS);
    let mut points = vec![];
    for strength in strengths {
        points.push(point(wb, id, &Settings { strength, ..base.clone() })?);
    }
    wb.decompose(id, base, &mut |_| true)?;
    Ok(points)
}

/// Decomposes model `id` with `s` and measures the composition of all its modules.
fn point(wb: &mut Workbench, id: usize, s: &Settings) -> Result<FrontPoint> {
    let dec = wb.decompose(id, s, &mut |_| true)?;
    let picks: Vec<Pick> = dec.modules.iter().map(|m| Pick { model: id, class: m.class }).collect();
    let composed = wb.compose(&picks, Some(id))?.composition.top1;
    let kept_weights = dec.modules.iter().map(|m| m.kept_weights).sum::<f32>() / dec.modules.len().max(1) as f32;
    let jaccard = mean_off_diagonal(&wb.module_jaccard(id)?);
    let technique = if s.strength > 0.0 { "relevance".into() } else { format!("{:?}", s.mode).to_lowercase() };
    let strength = s.strength.to_string().parse().unwrap_or(s.strength as f64);
    Ok(FrontPoint { technique, strength, composed, kept_weights, jaccard })
}

/// The front's section of docs/FIDELITY.md.
pub fn front_markdown(w: &mut String, cat: &Catalog, wb: &mut Workbench, ids: &[usize]) -> Result<()> {
    writeln!(w, "\n## Class-specific modules: the accuracy–size front (class relevance)\n").unwrap();
    writeln!(
        w,
        "Remodule's technique, not the papers' (ALGORITHMS.md §7): after CI/TI each dense/conv layer of a module drops the `⌊strength · n⌋` units (conv: channels) that serve its class least, and each pruned module's margin is calibrated to the model's. `paper` and `reference` are the faithful points (strength 0). Jaccard here is module↔module (kept units of two modules, the page's matrix), averaged over the pairs of different modules.\n"
    )
    .unwrap();
    writeln!(w, "| model | technique | strength | composed top-1 | Δ | mean kept weights | mean module↔module Jaccard |\n|---|---|---:|---:|---:|---:|---:|").unwrap();
    for (m, &id) in cat.models.iter().zip(ids) {
        let info = wb.model_info(id);
        // Relevance prunes dense and conv layers (recurrent layers keep the ICSE'23 removal).
        if info.recurrent {
            continue;
        }
        let acc = info.accuracy;
        let mut points = front(wb, id, &Settings::default())?;
        // The authors' reading refuses some models (no concerned sample above its confidence).
        match point(wb, id, &Settings { mode: Mode::Reference, ..Settings::faithful() }) {
            Ok(p) => points.insert(1, p),
            Err(e) => writeln!(w, "| {} | reference | 0 | not decomposable: {e} ||||", m.title).unwrap(),
        }
        for p in points {
            writeln!(
                w,
                "| {} | {} | {} | {:.4} | {:+.4} | {:.3} | {:.3} |",
                m.title,
                p.technique,
                p.strength,
                p.composed,
                p.composed - acc,
                p.kept_weights,
                p.jaccard
            )
            .unwrap();
        }
    }
    Ok(())
}

//! The accuracy–size front of class relevance (docs/FIDELITY.md): for every
//! bundled model the strength applies to (one answer per sample), composed
//! accuracy, mean kept weights and mean module↔module Jaccard at several
//! strengths, beside the faithful `paper` and `reference` points.

use std::fmt::Write;

use super::catalog::Catalog;
use crate::engine::decompose::{DEFAULT_STRENGTH, Mode, Settings};
use crate::error::{Error, Result};
use crate::workbench::{Pick, Workbench, mean_off_diagonal};

/// The strengths the front is measured at.
pub const STRENGTHS: [f32; 7] = [0.1, 0.2, 0.3, 0.35, 0.5, 0.65, 0.8];

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
/// left decomposed with `base` as given. The front ends at the first strength
/// that leaves some module without a layer ([`Error::EmptiedLayer`]).
pub fn front(wb: &mut Workbench, id: usize, base: &Settings) -> Result<Vec<FrontPoint>> {
    let strengths = std::iter::once(0.0).chain(STRENGTHS);
    let mut points = vec![];
    for strength in strengths {
        match point(wb, id, &Settings { strength, ..base.clone() }) {
            Ok(p) => points.push(p),
            Err(Error::EmptiedLayer { .. }) => break,
            Err(e) => return Err(e),
        }
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
    let faithful = if wb.model_info(id).recurrent { s.recurrent_mode } else { s.mode };
    let technique = if s.strength > 0.0 { "relevance".into() } else { format!("{faithful:?}").to_lowercase() };
    let strength = s.strength.to_string().parse().unwrap_or(s.strength as f64);
    Ok(FrontPoint { technique, strength, composed, kept_weights, jaccard })
}

/// The front's section of docs/FIDELITY.md; returns the plot of it (`front_svg`).
pub fn front_markdown(w: &mut String, cat: &Catalog, wb: &mut Workbench, ids: &[usize]) -> Result<String> {
    writeln!(w, "\n## Class-specific modules: the accuracy–size front (class relevance)\n").unwrap();
    writeln!(
        w,
        "Remodule's technique, not the papers' (ALGORITHMS.md §7): after CI/TI each conv layer of a module drops a share `min(1, 1.25 · strength)` of its units (channel × position) that serve its class least, each dense layer a share of its units that shrinks with the layer's weights, each recurrent layer a share `4s / (19 − 15s)` (5 % at 0.2, the ICSE'23 cap) of the units whose removal changes the class's margin least, and each pruned module's margin is calibrated to the model's. `paper` and `reference` are the faithful points (strength 0; for the recurrent models `reference` is the ICSE'23 removal). Jaccard here is module↔module (kept units of two modules, the page's matrix), averaged over the pairs of different modules. The plot shows the dense and convolutional models.\n"
    )
    .unwrap();
    writeln!(w, "![Composed accuracy change against mean kept weights, one line per model, one dot per strength; the default strength ringed](front.svg)\n").unwrap();
    let mut table = String::new();
    writeln!(table, "| model | technique | strength | composed top-1 | Δ | mean kept weights | mean module↔module Jaccard |\n|---|---|---:|---:|---:|---:|---:|").unwrap();
    let (mut lines, mut recurrent) = (vec![], vec![]);
    for (m, &id) in cat.models.iter().zip(ids) {
        let info = wb.model_info(id);
        // Per-step heads and the N-output head keep the papers' modules: no front.
        if wb.decompose(id, &Settings::default(), &mut |_| true)?.settings.strength == 0.0 {
            continue;
        }
        let acc = info.accuracy;
        let mut points = front(wb, id, &Settings::default())?;
        if info.recurrent {
            // Its strength-0 point is the ICSE'23 removal (`reference`), the recurrent default before.
            recurrent.push((m.title.clone(), acc, points.clone()));
        } else {
            // The authors' reading refuses some models (no concerned sample above its confidence).
            match point(wb, id, &Settings { mode: Mode::Reference, ..Settings::faithful() }) {
                Ok(p) => points.insert(1, p),
                Err(e) => writeln!(table, "| {} | reference | 0 | not decomposable: {e} ||||", m.title).unwrap(),
            }
            lines.push((m.title.clone(), acc, points.iter().filter(|p| p.technique != "reference").cloned().collect::<Vec<_>>()));
        }
        for p in points {
            writeln!(
                table,
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
    targets_markdown(w, &lines);
    recurrent_targets(w, &recurrent);
    w.push_str(&table);
    Ok(front_svg(&lines))
}

/// Issue 19's targets, read off the measured points: the default target (at
/// most a point of composed accuracy, module↔module Jaccard ≤ 0.80) per
/// strength, and the front target (≤ 60 % kept weights and Jaccard ≤ 0.80
/// within 2 points) per model — the numbers the default strength was chosen by.
fn targets_markdown(w: &mut String, lines: &[(String, f32, Vec<FrontPoint>)]) {
    let default_ok = |p: &FrontPoint, acc: f32| p.composed >= acc - 0.01 - 1e-6 && p.jaccard <= 0.80;
    writeln!(w, "**The default strength, chosen from these fronts.** Default target: composed top-1 at most a point below the model, mean module↔module Jaccard ≤ 0.80.\n").unwrap();
    writeln!(w, "| strength | models meeting the default target | models missing it |\n|---:|---:|---|").unwrap();
    for s in STRENGTHS {
        let (mut ok, mut missed) = (0, vec![]);
        for (title, acc, points) in lines {
            match points.iter().find(|p| (p.strength as f32 - s).abs() < 1e-6) {
                Some(p) if default_ok(p, *acc) => ok += 1,
                Some(p) => missed.push(format!("{title} ({:+.1}, {:.2})", 100.0 * (p.composed - acc), p.jaccard)),
                None => missed.push(format!("{title} (a module loses a layer)")),
            }
        }
        let mark = if (s - DEFAULT_STRENGTH).abs() < 1e-6 { " (default)" } else { "" };
        writeln!(w, "| {s}{mark} | {ok} of {} | {} |", lines.len(), missed.join("; ")).unwrap();
    }
    writeln!(w, "\nFront target: some strength keeps ≤ 60 % of the weights with Jaccard ≤ 0.80 within 2 points.\n").unwrap();
    writeln!(w, "| model | front target | best point (strength: Δ points, kept weights, Jaccard) |\n|---|---|---|").unwrap();
    for (title, acc, points) in lines {
        let small = |p: &&FrontPoint| p.kept_weights <= 0.60 && p.jaccard <= 0.80;
        let best = points.iter().filter(small).max_by(|a, b| a.composed.total_cmp(&b.composed));
        let verdict = match best {
            Some(p) if p.composed >= acc - 0.02 - 1e-6 => "met",
            Some(_) => "missed",
            None => "missed (no point that small)",
        };
        let point = best.map_or("—".into(), |p| {
            format!("{}: {:+.1}, {:.0} %, {:.2}", p.strength, 100.0 * (p.composed - acc), 100.0 * p.kept_weights, p.jaccard)
        });
        writeln!(w, "| {title} | {verdict} | {point} |").unwrap();
    }
    writeln!(w).unwrap();
}

/// The recurrent target: at the default strength, composed top-1 at most a
/// point below the model, beside the ICSE'23 removal (strength 0).
fn recurrent_targets(w: &mut String, lines: &[(String, f32, Vec<FrontPoint>)]) {
    if lines.is_empty() {
        return;
    }
    writeln!(w, "**Recurrent models (one answer per sample).** Default target: composed top-1 at most a point below the model.\n").unwrap();
    writeln!(w, "| model | ICSE'23 removal (strength 0): Δ points, Jaccard | default {DEFAULT_STRENGTH}: Δ points, Jaccard | target |\n|---|---|---|---|").unwrap();
    for (title, acc, points) in lines {
        let at = |s: f32| points.iter().find(|p| (p.strength as f32 - s).abs() < 1e-6);
        let cell = |p: Option<&FrontPoint>| p.map_or("—".into(), |p| format!("{:+.1}, {:.2}", 100.0 * (p.composed - acc), p.jaccard));
        let met = at(DEFAULT_STRENGTH).is_some_and(|p| p.composed >= acc - 0.01 - 1e-6);
        writeln!(w, "| {title} | {} | {} | {} |", cell(at(0.0)), cell(at(DEFAULT_STRENGTH)), if met { "met" } else { "missed" }).unwrap();
    }
    writeln!(w).unwrap();
}

/// The fronts as one SVG plot: x = mean kept weights, y = composed top-1
/// change in points (clipped at −10), a line per model through its strengths,
/// the default strength ringed.
fn front_svg(lines: &[(String, f32, Vec<FrontPoint>)]) -> String {
    const COLOURS: [&str; 10] =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    let (w, h, left, right, top, bottom) = (760.0, 420.0, 56.0, 250.0, 16.0, 44.0);
    let (lo, hi) = (-10.0f32, 2.0f32);
    let x = |k: f32| left + k * (w - left - right);
    let y = |d: f32| top + (hi - d.clamp(lo, hi)) / (hi - lo) * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    );
    for d in [2.0, 0.0, -2.0, -4.0, -6.0, -8.0, -10.0] {
        let dash = if d == 0.0 { "" } else { " stroke-dasharray=\"2 3\"" };
        let _ = writeln!(s, "<line x1=\"{}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#bbb\"{dash}/>", x(0.0), y(d), x(1.0), y(d));
        let _ = writeln!(s, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{d:+}</text>", x(0.0) - 6.0, y(d) + 4.0);
    }
    for k in [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] {
        let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0} %</text>", x(k), h - bottom + 16.0, k * 100.0);
    }
    let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">mean kept weights</text>", x(0.5), h - 6.0);
    let _ = writeln!(
        s,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">composed top-1 change (points; ≤ −10 drawn at −10)</text>",
        y(-4.0)
    );
    for (i, (title, acc, points)) in lines.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<&FrontPoint> = points.iter().collect();
        pts.sort_by(|a, b| a.strength.total_cmp(&b.strength));
        let path: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", x(p.kept_weights), y(100.0 * (p.composed - acc)))).collect();
        let _ = writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\"/>", path.join(" "));
        for p in &pts {
            let (cx, cy) = (x(p.kept_weights), y(100.0 * (p.composed - acc)));
            let _ = writeln!(
                s,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"{c}\"><title>{title}, strength {}</title></circle>",
                p.strength
            );
            if (p.strength as f32 - DEFAULT_STRENGTH).abs() < 1e-6 {
                let _ = writeln!(s, "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\"/>");
            }
        }
        let ly = top + 10.0 + 18.0 * i as f32;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"3\"/>",
            w - right + 16.0,
            w - right + 36.0
        );
        let _ =
            writeln!(s, "<text x=\"{}\" y=\"{}\">{}</text>", w - right + 42.0, ly + 4.0, title.replace('&', "&amp;").replace('<', "&lt;"));
    }
    s.push_str("</svg>\n");
    s
}

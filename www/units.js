// "Inside a module": which units a module keeps, layer by layer, and how much
// every two modules share (Jaccard). Pixels only; names become text nodes.
import { el } from './view.js';

const KEPT = [37, 99, 235];
const GONE = [226, 230, 236];
const mix = (f) => KEPT.map((k, i) => Math.round(GONE[i] + (k - GONE[i]) * f));
/** Black or white, whichever reads better on rgb `c` (WCAG contrast: at least 4.58 for any colour). */
function textOn(c) {
  const lin = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  const lum = 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? '#fff' : '#000';
}

/** One layer's units as a small image: dense units in rows of 32, conv
 *  positions as an H×W map of the share of channels kept, recurrent units as
 *  steps (rows) × units (columns). */
function layerCanvas({ grid, kept }, span = 220) {
  let rows, cols, value;
  if (grid.length === 3) {
    const [h, w, c] = grid;
    [rows, cols] = [h, w];
    value = (r, q) => { let s = 0; for (let k = 0; k < c; k++) s += kept[(r * w + q) * c + k]; return s / c; };
  } else if (grid.length === 2) {
    [rows, cols] = grid;
    value = (r, q) => kept[r * cols + q];
  } else {
    cols = Math.min(32, kept.length);
    rows = Math.ceil(kept.length / cols);
    value = (r, q) => (r * cols + q < kept.length ? kept[r * cols + q] : null);
  }
  const cell = Math.max(2, Math.min(10, Math.floor(span / Math.max(cols, rows))));
  const canvas = Object.assign(document.createElement('canvas'), { width: cols * cell, height: rows * cell });
  const ctx = canvas.getContext('2d');
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < cols; q++) {
      const v = value(r, q);
      if (v === null) continue;
      ctx.fillStyle = `rgb(${mix(v).join(',')})`;
      ctx.fillRect(q * cell, r * cell, cell - (cell > 3 ? 1 : 0), cell - (cell > 3 ? 1 : 0));
    }
  }
  return canvas;
}

const keptCount = (v) => v.kept.reduce((a, b) => a + b, 0);
const unitsWord = (v) => (v.grid.length === 3 ? 'positions (share of channels)' : v.gates ? 'steps × gate columns' : v.grid.length === 2 && v.kind !== 'Dense' ? 'steps × units' : 'units');

/**
 * Lights a module's kept units on the layer diagram (`list`, from
 * view.renderLayers): a small picture and a count on each tracked layer's row.
 * `views` null clears the highlight.
 */
export function highlightLayers(list, views, moduleName) {
  for (const old of list.querySelectorAll('.lit')) old.remove();
  const byLayer = new Map((views ?? []).map((v) => [v.layer, v]));
  for (const li of list.children) {
    const v = byLayer.get(li.dataset.layer);
    li.classList.toggle('tracked', Boolean(v));
    if (!v) continue;
    const kept = keptCount(v);
    li.append(el('span', { class: 'lit', title: `Module ${moduleName}: kept ${kept} of ${v.kept.length} ${unitsWord(v)} of ${v.layer}` },
      layerCanvas(v, 180), el('span', { class: 'lit-count' }, `${kept}/${v.kept.length}`)));
  }
  list.dataset.module = views ? moduleName : '';
}

export function renderUnits(box, views) {
  box.replaceChildren(...views.map((v) => {
    const kept = keptCount(v);
    const what = unitsWord(v);
    return el('figure', { class: 'units-layer', 'data-layer': v.layer },
      layerCanvas(v),
      el('figcaption', {}, el('strong', {}, v.layer), ` ${v.kind} · ${v.grid.join('×')} ${what} · kept ${kept} of ${v.kept.length}`));
  }));
}

/** Module × module Jaccard as a shaded table (shade from the smallest value to 1). */
export function renderJaccard(box, names, j) {
  const low = Math.min(...j.flat());
  const shade = (x) => (low < 1 ? (x - low) / (1 - low) : 1);
  const head = el('tr', {}, el('th', {}, ''), ...names.map((n) => el('th', { scope: 'col', title: n }, n)));
  const rows = j.map((row, a) => el('tr', {}, el('th', { scope: 'row', title: names[a] }, names[a]), ...row.map((x, b) => {
    const td = el('td', { title: `${names[a]} ∩ ${names[b]}: ${x.toFixed(3)}` }, x.toFixed(2));
    const bg = mix(0.15 + 0.85 * shade(x));
    td.style.background = `rgb(${bg.join(',')})`;
    td.style.color = textOn(bg);
    return td;
  })));
  box.replaceChildren(el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)));
}

// The accuracy–size front of the current model (docs/ALGORITHMS.md, class relevance): composed
// accuracy against mean kept weights, one dot per measured strength, the faithful point (strength
// 0) drawn apart, the current setting ringed. The engine measures it ('front', from one recorded
// pass); this file only draws.
const NS = 'http://www.w3.org/2000/svg';
const W = 320;
const H = 180;
const PAD = { left: 52, right: 22, top: 10, bottom: 32 }; // left: room for "100.0%"

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

/**
 * Draws `points` ([{strength, composed, kept_weights, jaccard}]) into `host`; `current` is the
 * strength now set. The y axis spans the points' accuracies (a front costs points, not tens).
 */
export function renderFront(host, points, current) {
  const lo = Math.max(0, Math.floor(20 * Math.min(...points.map((p) => p.composed))) / 20);
  const hi = Math.min(1, Math.ceil(20 * Math.max(...points.map((p) => p.composed))) / 20 + 0.0001);
  const x = (v) => PAD.left + v * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo || 1)) * (H - PAD.top - PAD.bottom);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'front-chart' });
  chart.append(svg('title', {}, 'Composed accuracy against the share of weights the modules keep, per strength'));
  // Axes, with ticks at 0, 50 and 100 % kept weights and at the accuracy range's ends.
  chart.append(svg('line', { x1: x(0), y1: y(lo), x2: x(1), y2: y(lo), class: 'axis' }));
  chart.append(svg('line', { x1: x(0), y1: y(lo), x2: x(0), y2: y(hi), class: 'axis' }));
  for (const t of [0, 0.5, 1]) chart.append(svg('text', { x: x(t), y: H - PAD.bottom + 14, 'text-anchor': 'middle', class: 'tick' }, pct(t).replace('.0', '')));
  for (const t of [lo, hi]) chart.append(svg('text', { x: PAD.left - 4, y: y(t) + 4, 'text-anchor': 'end', class: 'tick' }, pct(Math.min(t, 1))));
  chart.append(svg('text', { x: (x(0) + x(1)) / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis-label' }, 'mean kept weights'));
  const sorted = [...points].sort((a, b) => a.kept_weights - b.kept_weights);
  chart.append(svg('polyline', { points: sorted.map((p) => `${x(p.kept_weights)},${y(p.composed)}`).join(' '), class: 'front-line' }));
  for (const p of points) {
    const faithful = p.strength === 0;
    const dot = svg('circle', {
      cx: x(p.kept_weights), cy: y(p.composed), r: faithful ? 5 : 3.5,
      class: `dot${faithful ? ' faithful' : ''}${Math.abs(p.strength - current) < 1e-6 ? ' current' : ''}`,
      'data-strength': p.strength,
    });
    dot.append(svg('title', {}, `strength ${p.strength}${faithful ? " (the papers' modules)" : ''}: composed ${pct(p.composed)}, kept weights ${pct(p.kept_weights)}, module↔module Jaccard ${p.jaccard.toFixed(2)}`));
    chart.append(dot);
  }
  host.replaceChildren(chart);
}

// Small DOM helpers. Untrusted strings (layer and class names from files) only
// ever become text nodes, never HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, v);
  e.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return e;
}

export const pct = (x) => `${(100 * x).toFixed(1)}%`;
export const signedPct = (x) => `${x >= 0 ? '+' : '−'}${(100 * Math.abs(x)).toFixed(1)}`;

export function renderLayers(list, layers) {
  list.replaceChildren(...layers.map((l) => el('li', { 'data-layer': l.name },
    el('span', { class: 'name' }, `${l.kind}${l.activation && l.activation !== 'linear' ? ` (${l.activation})` : ''}`),
    el('span', { class: 'shape' }, l.shape.join('×')),
    el('span', { class: 'params' }, l.params ? l.params.toLocaleString('en') : ''))));
}

/**
 * What to show for class names: with several data sets loaded the engine names
 * classes "lang_b:Dutch"; the page shows "Dutch" (the full name goes in the
 * tooltip) unless two of `names` would then read alike.
 */
export function displayNames(names) {
  const short = names.map((n) => n.slice(n.indexOf(':') + 1));
  return short.map((s, i) => (short.indexOf(s) === short.lastIndexOf(s) ? s : names[i]));
}

/** "Try it" result: the composed answer and one bar per module score (`r` null clears). */
export function renderTry(answerEl, bars, r) {
  const shown = r ? displayNames(r.names) : [];
  answerEl.textContent = r ? shown[r.answer] : '–';
  answerEl.title = r ? r.names[r.answer] : '';
  bars.replaceChildren(...(r?.scores ?? []).map((p, i) => {
    const bar = el('span');
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    return el('li', { class: i === r.answer ? 'win' : '' }, el('span', { class: 'name', title: r.names[i] }, shown[i]),
      el('span', { class: 'bar' }, bar), el('span', {}, p.toFixed(3)));
  }));
}

/** Confusion matrix as a table; cell shade = share of the row. */
export function renderMatrix({ confusion, class_names: names, per_class: perClass }) {
  const shown = displayNames(names);
  const head = el('tr', {}, el('th', {}, ''), ...names.map((n, i) => el('th', { class: 'cls', title: n, scope: 'col' }, shown[i])),
    el('th', { scope: 'col', class: 'acc' }, 'accuracy'));
  const rows = confusion.map((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return el('tr', { 'data-class': names[t] }, el('th', { class: 'cls', title: names[t], scope: 'row' }, shown[t]),
      ...row.map((v, p) => {
        const share = v / total;
        const hue = p === t ? '140 55%' : '4 70%';
        const cell = el('td', { title: `${names[t]} → ${names[p]}: ${v}` }, v || '');
        cell.style.background = v ? `hsl(${hue} ${Math.round(97 - 45 * share)}%)` : '';
        return cell;
      }),
      accuracyCell(perClass[t]));
  });
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows));
}

function accuracyCell(acc) {
  const fill = el('span');
  fill.style.width = `${(100 * acc).toFixed(1)}%`;
  return el('td', { class: 'acc' }, el('span', { class: 'accbar' }, fill), pct(acc));
}

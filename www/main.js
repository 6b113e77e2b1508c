// UI thread: state, rendering and user input. The engine runs in worker.js.
import { Engine } from './engine.js';
import { el, pct, signedPct, renderLayers, renderMatrix } from './view.js';
import { TryIt } from './tryit.js';
import { TypeIt } from './typeit.js';
import * as store from './store.js';

const $ = (id) => document.getElementById(id);

export function showError(err) {
  $('error-text').textContent = String(err?.message ?? err);
  $('error-banner').hidden = false;
}
$('error-close').addEventListener('click', () => { $('error-banner').hidden = true; });
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

const engine = new Engine();
engine.onFatal = showError;

const state = {
  catalog: null,
  datasets: new Map(),   // data set key -> DatasetInfo
  models: new Map(),     // model key (file name) -> {info, modules, title}
  current: null,         // key of the model whose classes are being composed
  slots: [],             // per class: {class, source (model key), on}
};

async function fetchBytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`could not load ${path}: HTTP ${r.status}`);
  return r.arrayBuffer();
}

function progress(label) {
  $('progress-wrap').hidden = false;
  $('progress-text').textContent = label;
  $('progress').value = 0;
  return (f) => { $('progress').value = f; };
}
function progressDone() { $('progress-wrap').hidden = true; }

async function ensureDataset(key) {
  if (state.datasets.has(key)) return state.datasets.get(key);
  const spec = state.catalog.datasets[key];
  const bytes = await fetchBytes(`bundled/${spec.file}`);
  const info = await engine.call('addDataset', { bytes, name: key }, null, [bytes]);
  state.datasets.set(key, info);
  return info;
}

/** Loads (and decomposes) a model; `bytes` for uploads, else from the bundle. */
async function ensureModel(key, { title, dataset, bytes } = {}) {
  if (state.models.has(key)) return state.models.get(key);
  const entry = state.catalog.models.find((m) => m.file === key);
  const ds = await ensureDataset(dataset ?? entry.dataset);
  bytes ??= await fetchBytes(`bundled/${key}`);
  const info = await engine.call('addModel', { bytes, fileName: key, dataset: ds.id }, null, [bytes]);
  const onProgress = progress(`Decomposing ${title ?? entry?.title ?? key}…`);
  try {
    const dec = await engine.call('decompose', { model: info.id }, onProgress);
    const m = { key, info, modules: dec.modules, digest: dec.mask_digest, title: title ?? entry?.title ?? key, dataset: ds };
    state.models.set(key, m);
    return m;
  } finally {
    progressDone();
  }
}

function picks() {
  return state.slots.filter((s) => s.on).map((s) => ({ model: state.models.get(s.source).info.id, class: s.class }));
}

/** Recomposes the selected modules; `beforeRender` runs in the same task as the new numbers. */
async function recompose(beforeRender = () => {}) {
  const chosen = picks();
  if (chosen.length === 0) {
    beforeRender();
    renderScores(null);
    return;
  }
  performance.mark('compose-start');
  const result = await engine.call('compose', { picks: chosen, base: state.models.get(state.current).info.id });
  performance.mark('compose-reply');
  beforeRender();
  renderScores(result);
  performance.mark('compose-end');
  tryIt?.update();
  if (!$('type-panel').hidden) typeIt?.update();
  persist();
  const ms = performance.measure('compose', 'compose-start', 'compose-end').duration;
  const renderMs = performance.measure('compose-render', 'compose-reply', 'compose-end').duration;
  document.body.dataset.lastComposeMs = ms.toFixed(2);
  document.body.dataset.lastRenderMs = renderMs.toFixed(2);
}

function renderScores(result) {
  const base = state.models.get(state.current).info;
  const baseline = result?.model_accuracy ?? base.accuracy;
  $('model-acc').textContent = pct(baseline);
  $('model-acc-label').textContent = result && result.classes.length < base.class_names.length
    ? `Model · same ${result.classes.length} classes` : 'Model accuracy';
  const app = $('app');
  if (!result) {
    for (const id of ['composed-acc', 'delta', 'composed-top5']) $(id).textContent = '–';
    $('matrix').replaceChildren(el('p', { class: 'muted' }, 'No modules selected.'));
    app.dataset.composed = 'none';
    return;
  }
  $('composed-acc').textContent = pct(result.top1);
  const d = result.top1 - baseline;
  $('delta').textContent = signedPct(d);
  $('delta').className = `big ${d > 0.0005 ? 'up' : d < -0.0005 ? 'down' : ''}`;
  $('composed-top5').textContent = result.top5 == null ? '–' : pct(result.top5);
  $('matrix').replaceChildren(renderMatrix(result));
  app.dataset.composed = String(result.top1);
}

function moduleCard(slot) {
  const source = state.models.get(slot.source);
  const mod = source.modules[slot.class];
  const toggle = el('button', { type: 'button', class: 'toggle', 'aria-pressed': String(slot.on),
    title: slot.on ? 'Remove this module from the composition' : 'Put this module back' }, slot.on ? 'in' : 'out');
  toggle.addEventListener('click', () => {
    slot.on = !slot.on;
    // The card and the numbers change in the same task, so one frame shows
    // both; the card is updated in place (rebuilding the grid costs a relayout).
    recompose(() => {
      card.classList.toggle('off', !slot.on);
      toggle.setAttribute('aria-pressed', String(slot.on));
      toggle.textContent = slot.on ? 'in' : 'out';
      toggle.title = slot.on ? 'Remove this module from the composition' : 'Put this module back';
    }).catch(showError);
  });
  const sameData = [...state.catalog.models.filter((m) => m.dataset === source.dataset.name).map((m) => [m.file, m.short ?? m.title]),
    ...[...state.models.values()].filter((m) => m.upload && m.dataset.name === source.dataset.name).map((m) => [m.key, m.title])];
  const replaced = slot.source !== state.current;
  const picker = el('select', { 'aria-label': `Source model for class ${mod.class_name}`, class: 'source' },
    ...sameData.map(([k, t]) => el('option', { value: k, selected: k === slot.source ? '' : null }, t)));
  picker.addEventListener('change', async () => {
    try {
      await ensureModel(picker.value);
      slot.source = picker.value;
    } catch (e) { showError(e); }
    renderModules();
    recompose().catch(showError);
  });
  const card = el('article', { class: `module${slot.on ? '' : ' off'}${replaced ? ' replaced' : ''}`, 'data-class': mod.class_name },
    el('header', {}, el('span', { class: 'cls', title: mod.class_name }, mod.class_name), toggle),
    el('dl', {},
      el('dt', { title: 'Module accuracy as a binary classifier (balanced)' }, 'accuracy'), el('dd', {}, pct(mod.accuracy)),
      el('dt', { title: "Share of the model's kernel weights the module keeps" }, 'weights'), el('dd', {}, pct(mod.kept_weights)),
      el('dt', { title: "Jaccard index of the module's units against the model's" }, 'Jaccard'), el('dd', {}, mod.jaccard_units.toFixed(2))),
    el('label', { class: 'from' }, replaced ? 'replaced from' : 'from', picker));
  return card;
}

function renderModules() {
  $('modules').replaceChildren(...state.slots.map(moduleCard));
}

function renderModel() {
  const m = state.models.get(state.current);
  const ds = m.dataset;
  $('model-info').replaceChildren(
    el('strong', {}, m.title), ' · ', `${m.info.params.toLocaleString('en')} parameters · ${m.info.class_names.length} classes · `,
    `data: ${state.catalog.datasets[ds.name]?.title ?? ds.name} (${ds.train} train / ${ds.test} test)`);
  renderLayers($('layers'), m.info.layers);
  $('app').dataset.maskDigest = m.digest;
  $('model-picker').value = m.key;
}

let tryIt;
let typeIt;

/** Saves what the user built: the current model, the composition, uploaded files. */
function persist() {
  const uploads = [...state.models.values()].filter((m) => m.upload)
    .map((m) => ({ key: m.key, title: m.title, dataset: m.dataset.name, bytes: m.bytes }));
  store.save('state', { version: 1, current: state.current, slots: state.slots, uploads })
    .catch((e) => console.warn('could not save the playground state', e));
}

/** Restores a saved state; false when there is none (or it no longer applies). */
async function restore() {
  const saved = await store.load('state').catch(() => null);
  if (saved?.version !== 1 || !saved.current) return false;
  for (const u of saved.uploads ?? []) {
    await addUpload(u.key, u.title, u.dataset, u.bytes);
  }
  const known = (k) => state.models.has(k) || state.catalog.models.some((m) => m.file === k);
  if (!known(saved.current) || !saved.slots.every((s) => known(s.source))) return false;
  for (const k of new Set(saved.slots.map((s) => s.source))) await ensureModel(k);
  await select(saved.current, { slots: saved.slots });
  return true;
}

/**
 * Module scores for one input (raw values, or typed text the engine encodes
 * with the current data set's vocabulary), with the picks' class names.
 */
async function scoreInput(input) {
  const on = state.slots.filter((s) => s.on);
  if (on.length === 0) return null;
  const ds = state.models.get(state.current).dataset;
  const pixels = typeof input === 'string' ? await engine.call('encodeText', { dataset: ds.id, text: input }) : input;
  const r = await engine.call('tryInput', { picks: picks(), pixels });
  const chars = ds.vocab ? pixels.map((id) => ds.vocab[id] ?? '?') : null;
  return { ...r, chars, names: on.map((s) => state.models.get(s.source).modules[s.class].class_name) };
}

const decode = (ds, ids) => ids.map((id) => (id > 1 ? ds.vocab[id] : '·')).join('');

async function loadSamples(ds, panel) {
  const list = [];
  for (let i = 0; i < Math.min(12, ds.test); i++) {
    const { pixels, label } = await engine.call('testSample', { dataset: ds.id, index: i });
    list.push({ pixels, ids: pixels, label, name: ds.class_names[label], text: ds.vocab ? decode(ds, pixels) : null });
  }
  panel.setSamples(list);
}

async function select(key, { slots } = {}) {
  const m = await ensureModel(key);
  state.current = key;
  state.slots = slots?.length === m.modules.length ? slots.map((s) => ({ ...s }))
    : m.modules.map((mod) => ({ class: mod.class, source: key, on: true }));
  renderModel();
  renderModules();
  const image = m.dataset.sample_shape.join('×') === '28×28';
  const text = Boolean(m.dataset.vocab);
  $('try-panel').hidden = !image;
  $('type-panel').hidden = !text;
  const panel = image ? tryIt : text ? typeIt : null;
  if (panel && panel.dataset !== m.dataset.name) {
    panel.dataset = m.dataset.name;
    await loadSamples(m.dataset, panel);
  }
  await recompose();
  if (text) typeIt.update();
}

/** Loads uploaded model bytes under `key` and lists it in the picker. */
async function addUpload(key, title, dataset, bytes) {
  state.models.delete(key);
  // The worker takes a transferred copy; keep the original for persistence.
  const m = await ensureModel(key, { title, dataset, bytes: bytes.slice(0) });
  Object.assign(m, { upload: true, bytes });
  const picker = $('model-picker');
  if (![...picker.options].some((o) => o.value === key)) picker.append(el('option', { value: key }, title));
}

async function upload(file) {
  const bytes = await file.arrayBuffer();
  const dataset = state.models.get(state.current)?.dataset.name ?? 'digits';
  const key = `upload:${file.name}`;
  await addUpload(key, `${file.name} (uploaded)`, dataset, bytes);
  await select(key);
}

async function boot() {
  const info = await engine.call('info');
  const status = $('engine-status');
  status.textContent = `Engine ${info.version} ready · SIMD ${info.simd ? 'on' : 'off'}`;
  status.dataset.ready = 'true';

  state.catalog = await (await fetch('bundled/catalog.json')).json();
  const picker = $('model-picker');
  picker.replaceChildren(...state.catalog.models.map((m) => el('option', { value: m.file }, m.title)));
  picker.disabled = false;
  picker.addEventListener('change', () => select(picker.value).catch(showError));
  // Drag and drop a model file anywhere on the page.
  document.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dropping'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) document.body.classList.remove('dropping'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dropping');
    const f = e.dataTransfer?.files?.[0];
    if (f) upload(f).catch(showError);
  });
  $('upload').addEventListener('change', (e) => {
    const f = e.target.files?.[0];
    e.target.value = '';
    if (f) upload(f).catch(showError);
  });
  tryIt = new TryIt({ pad: $('pad'), clear: $('clear'), samples: $('samples'), answer: $('answer'), bars: $('try-scores') },
    scoreInput, showError);
  typeIt = new TypeIt({ box: $('type-box'), samples: $('type-samples'), answer: $('type-answer'), bars: $('type-scores'), tags: $('type-tags') },
    scoreInput, showError);
  const first = state.catalog.models.find((m) => m.default) ?? state.catalog.models[0];
  const t0 = performance.now();
  let restored = false;
  try {
    restored = await restore();
  } catch (e) {
    showError(`Could not restore your last session (${e.message}); starting fresh.`);
  }
  if (!restored) await select(first.file);
  document.body.dataset.restored = String(restored);
  document.body.dataset.firstViewMs = (performance.now() - t0).toFixed(0);
}

boot().catch(showError);

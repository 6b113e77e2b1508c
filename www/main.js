// UI thread: state, rendering and user input. The engine runs in worker.js.
import { CancelledError, Engine } from './engine.js';
import { wireCancel } from './cancel.js';
import { dataTitle, dataUploader, inputOverride, isDataKey, reloadOnData } from './dataupload.js';
import { el, pct, signedPct, renderLayers, renderMatrix } from './view.js';
import { TryIt } from './tryit.js';
import { TypeIt } from './typeit.js';
import { highlightLayers, renderJaccard, renderUnits } from './units.js';
import * as store from './store.js';
import { renderFront } from './front.js';
import { DEFAULTS, buildSettingsForm, nonDefault, readSettingsForm, settingsProblem, showSettingsForm } from './settings.js';
import { LIMITS, ShareLinkError, decodeFragment, encodeState, isShareFragment, sha256Hex, stateToJson, validateState } from './share.js';
import { HIDEABLE, evaluate, exerciseFromState, exerciseId, validateExercise } from './exercises.js';
import { startOffline } from './offline.js';

const $ = (id) => document.getElementById(id);

export function showError(err) {
  if (err instanceof CancelledError) return; // the cancel note says so
  $('error-text').textContent = String(err?.message ?? err);
  $('error-banner').hidden = false;
}
$('error-close').addEventListener('click', () => { $('error-banner').hidden = true; });
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

const engine = new Engine();
engine.onFatal = showError;

const state = {
  catalog: null,
  builtins: [],          // built-in exercises (www/exercises/builtin.json)
  datasets: new Map(),   // data set key -> DatasetInfo
  models: new Map(),     // model key (file name, or upload:<name>) -> {info, modules, title, dataset, upload?}; load order
  current: null,         // key of the model whose classes are being composed
  slots: [],             // {class, source (model key), on}: the current model's classes, then modules added from other data sets
  settings: {},          // decomposition settings; {} = the engine's defaults
  exercise: null,        // the open exercise (validated), or null
  custom: null,          // the last exercise a link brought (listed after the built-ins)
  linkHide: [],          // controls a link hid with <control>_hide=true
  verify: null,          // {class (index in the current data set), by (model key)}: answers of that class are checked by that model's modules
  solved: new Set(),     // ids of solved exercises (kept in IndexedDB)
};

async function fetchBytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`could not load ${path}: HTTP ${r.status}`);
  return r.arrayBuffer();
}

function progress(label, { cancellable = true } = {}) {
  $('progress-wrap').hidden = false;
  $('cancel-btn').hidden = !cancellable;
  if (cancellable) $('cancel-note').hidden = true;
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
  // Links and exercises name classes by the catalog; it must agree with the data.
  if (JSON.stringify(info.class_names) !== JSON.stringify(spec.classes)) {
    throw new Error(`catalog.json lists other classes for data set ${key} than ${spec.file} holds`);
  }
  state.datasets.set(key, info);
  return info;
}

/** Loads (and decomposes) a model; `bytes` for uploads, else from the bundle. */
async function ensureModel(key, { title, dataset, bytes, input } = {}) {
  if (state.models.has(key)) return state.models.get(key);
  const entry = state.catalog.models.find((m) => m.file === key);
  if (!entry && !bytes) throw new Error(`no model ${key} is loaded`);
  // The model downloads while the data set does (a slow link waits once, not twice).
  const fetched = bytes ? null : fetchBytes(`bundled/${key}`);
  fetched?.catch(() => {}); // awaited below; a failure is reported there
  const ds = await ensureDataset(dataset ?? entry.dataset);
  bytes ??= await fetched;
  // A saved module set comes back with its modules (as decomposed then); a model is decomposed here.
  const { model: info, decomposition } = await engine.call('addFile', { bytes, fileName: key, dataset: ds.id, input }, null, [bytes]);
  const onProgress = progress(`Decomposing ${title ?? entry?.title ?? key}…`);
  try {
    const settings = Object.keys(state.settings).length ? state.settings : null;
    const dec = decomposition ?? await engine.call('decompose', { model: info.id, settings }, onProgress);
    // The strength the engine applied: 0 where class relevance cannot apply (decompose::applied_strength);
    // a saved module set is used as saved.
    const m = { key, info, modules: dec.modules, digest: dec.mask_digest, strength: decomposition ? null : dec.settings.strength ?? 0, title: title ?? entry?.title ?? key, dataset: ds };
    state.models.set(key, m);
    return m;
  } finally {
    progressDone();
  }
}

const datasetOfSlot = (s) => state.models.get(s.source).dataset.name;
/** "digits:7": how links and exercises name a class. */
const qualified = (s) => `${datasetOfSlot(s)}:${state.models.get(s.source).dataset.class_names[s.class]}`;
const isExtra = (s) => datasetOfSlot(s) !== state.models.get(state.current).dataset.name;

function picks() {
  return state.slots.filter((s) => s.on).map((s) => ({ model: state.models.get(s.source).info.id, class: s.class }));
}

let lastResult = null;

/** Recomposes the selected modules; `beforeRender` runs in the same task as the new numbers. */
async function recompose(beforeRender = () => {}) {
  const chosen = picks();
  if (chosen.length === 0) {
    beforeRender();
    lastResult = null;
    renderScores(null);
    afterCompose();
    return;
  }
  performance.mark('compose-start');
  const spans = new Set(state.slots.filter((s) => s.on).map((s) => state.models.get(s.source).dataset.name)).size > 1;
  $('update-row').hidden = !spans;
  const cur = state.models.get(state.current);
  const v = state.verify;
  const verify = v ? { watched: [cur.modules[v.class].class_id], verifier: state.models.get(v.by).info.id } : null;
  // Module update re-runs the papers' tangling identification: modules pruned by class relevance
  // (strength > 0) are calibrated against their own classes and have no update (the engine refuses it).
  const pruned = state.slots.filter((s) => s.on).some((s) => (state.models.get(s.source).strength ?? 0) > 0);
  $('update-note').hidden = !spans || !pruned;
  // The engine does one or the other (docs/COMPOSE.md): verification wins while it is on.
  $('update-box').disabled = Boolean(verify) || pruned;
  const update = spans && $('update-box').checked && !verify && !pruned;
  document.body.dataset.update = String(update);
  document.body.dataset.verify = v ? `${v.class} ${v.by}` : '';
  const result = await engine.call('compose', { picks: chosen, base: cur.info.id, update, verify });
  performance.mark('compose-reply');
  beforeRender();
  lastResult = result;
  renderScores(result);
  performance.mark('compose-end');
  afterCompose();
  const ms = performance.measure('compose', 'compose-start', 'compose-end').duration;
  const renderMs = performance.measure('compose-render', 'compose-reply', 'compose-end').duration;
  document.body.dataset.lastComposeMs = ms.toFixed(2);
  document.body.dataset.lastRenderMs = renderMs.toFixed(2);
}

let composes = 0;
function afterCompose() {
  renderFrontIfKnown();
  document.body.dataset.composes = String(++composes); // lets tests wait for "recomposed"
  if (!$('share-box').hidden && $('share-box').dataset.ready) {
    delete $('share-box').dataset.ready;
    $('share-note').textContent = 'The playground has changed since this link was made: press "Copy link" again for the current state.';
  }
  tryIt?.update();
  if (!$('type-panel').hidden) typeIt?.update();
  renderExercise();
  renderTeacherGoal();
  persist();
}

/** Until the new composition is in (samples may still be loading): no numbers of the previous model. */
function showPendingScores(m) {
  $('model-acc').textContent = pct(m.info.accuracy);
  for (const id of ['composed-acc', 'delta', 'composed-top5']) $(id).textContent = '…';
}

// ---- the accuracy–size front ------------------------------------------------

/** Fronts measured, by model and settings (strength aside: the front spans it). */
const fronts = new Map();
const frontKey = (m) => `${m.key} ${JSON.stringify({ ...state.settings, strength: undefined })}`;

async function measureFront() {
  const m = state.models.get(state.current);
  $('front-btn').disabled = true;
  $('front-note').textContent = 'Measuring…';
  try {
    fronts.set(frontKey(m), await engine.call('front', { model: m.info.id }));
  } finally {
    $('front-btn').disabled = false;
  }
  renderFrontIfKnown();
}

/** Redraws the current model's front with the current strength ringed, or says it is not measured. */
function renderFrontIfKnown() {
  const m = state.models.get(state.current);
  const points = m && fronts.get(frontKey(m));
  const strength = state.settings.strength ?? DEFAULTS.strength;
  if (!points) {
    $('front').replaceChildren();
    $('front-note').textContent = '';
    return;
  }
  renderFront($('front'), points, strength);
  const here = points.find((p) => Math.abs(p.strength - strength) < 1e-6);
  $('front-note').textContent = here ? `ringed: strength ${strength}` : `strength ${strength} is between the measured ones`;
}

function renderScores(result) {
  const base = state.models.get(state.current).info;
  const baseline = result?.model_accuracy ?? base.accuracy;
  $('model-acc').textContent = pct(baseline);
  // The baseline is the model restricted to its own classes in the composition;
  // classes added from another data set are ones the model cannot answer at all.
  const own = state.slots.filter((s) => s.on && !isExtra(s)).length;
  const added = result && state.slots.some((s) => s.on && isExtra(s));
  const label = $('model-acc-label');
  label.textContent = added ? `Model · its own ${own} classes` : result && own < base.class_names.length ? `Model · same ${own} classes` : 'Model accuracy';
  label.title = added ? 'The model knows none of the added classes: its accuracy is over its own classes, the composition’s over all of them.' : '';
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

/** Models (catalog and uploaded) trained on data set `ds`: [[key, label]]. */
function modelsOf(ds) {
  return [...state.catalog.models.filter((m) => m.dataset === ds).map((m) => [m.file, m.short ?? m.title]),
    ...[...state.models.values()].filter((m) => (m.upload || m.onData) && m.dataset.name === ds).map((m) => [m.key, m.title])];
}

function moduleCard(slot) {
  const source = state.models.get(slot.source);
  const mod = source.modules[slot.class];
  const extra = isExtra(slot);
  const name = extra ? qualified(slot) : mod.class_name; // "clothing:Bag" for a module from another data set
  const toggle = el('button', { type: 'button', class: 'toggle', 'aria-pressed': String(slot.on),
    'aria-label': `Module ${name} in the composition`,
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
  const replaced = !extra && slot.source !== state.current;
  const picker = el('select', { 'aria-label': `Source model for class ${name}`, class: 'source' },
    ...modelsOf(source.dataset.name).map(([k, t]) => el('option', { value: k, selected: k === slot.source ? '' : null }, t)));
  picker.addEventListener('change', async () => {
    try {
      await ensureModel(picker.value);
      slot.source = picker.value;
    } catch (e) { showError(e); }
    renderModules();
    recompose().catch(showError);
  });
  // The current model's own module: its name selects it (kept units lit on the layer diagram).
  const own = slot.source === state.current;
  const label = own
    ? el('button', { type: 'button', class: 'cls pick', title: `Show which units module ${name} keeps on the layer diagram` }, mod.class_name)
    : el('span', { class: 'cls', title: name }, mod.class_name);
  if (own) label.addEventListener('click', () => selectModule(slot.class));
  const head = el('header', {}, label, toggle);
  if (extra) {
    const drop = el('button', { type: 'button', class: 'drop', 'aria-label': `Take the ${name} module off the board`, title: 'Take this module off the board' }, '×');
    drop.addEventListener('click', () => {
      state.slots.splice(state.slots.indexOf(slot), 1);
      renderModules();
      recompose().catch(showError);
      $('add-btn').focus();
    });
    head.append(drop);
  }
  const selected = own && $('units-class').value === String(slot.class);
  const card = el('article', { class: `module${slot.on ? '' : ' off'}${replaced ? ' replaced' : ''}${extra ? ' extra' : ''}${selected ? ' selected' : ''}`,
    'data-class': name, 'data-units-class': own ? String(slot.class) : null },
    head,
    el('dl', {},
      el('dt', { title: 'Module accuracy as a binary classifier (balanced)' }, 'accuracy'), el('dd', {}, pct(mod.accuracy)),
      el('dt', { title: "Share of the model's kernel weights the module keeps" }, 'weights'), el('dd', {}, pct(mod.kept_weights)),
      el('dt', { title: "Jaccard index of the module's units against the model's" }, 'Jaccard'), el('dd', {}, mod.jaccard_units.toFixed(2))),
    el('label', { class: 'from' }, extra ? `added from ${source.dataset.name}` : replaced ? 'replaced from' : 'from', picker));
  return card;
}

function renderModules() {
  $('modules').replaceChildren(...state.slots.map(moduleCard));
  renderAddModule();
  renderVerify();
}

// ---- verification (seed 002, option 4) ------------------------------------

/** The "Check answers of class … again with the modules of …" row: the current data set's classes, its other models. */
function renderVerify() {
  const m = state.models.get(state.current);
  const others = modelsOf(m.dataset.name).filter(([k]) => k !== state.current);
  const v = state.verify;
  if (v && (!others.some(([k]) => k === v.by) || v.class >= m.dataset.class_names.length)) state.verify = null;
  $('verify-row').hidden = others.length === 0;
  const cls = $('verify-class');
  const by = $('verify-model');
  const keep = { cls: cls.value, by: by.value };
  cls.replaceChildren(...m.dataset.class_names.map((n, c) => el('option', { value: String(c) }, n)));
  by.replaceChildren(...others.map(([k, t]) => el('option', { value: k }, t)));
  if (state.verify) {
    cls.value = String(state.verify.class);
    by.value = state.verify.by;
  } else {
    if ([...cls.options].some((o) => o.value === keep.cls)) cls.value = keep.cls;
    if (others.some(([k]) => k === keep.by)) by.value = keep.by;
  }
  $('verify-box').checked = Boolean(state.verify);
}

/** Reads the verify row, loads (decomposes) the verifying model if needed, recomposes. */
async function changeVerify() {
  const next = $('verify-box').checked && $('verify-model').value
    ? { class: Number($('verify-class').value), by: $('verify-model').value } : null;
  try {
    if (next) await ensureModel(next.by);
  } catch (e) {
    renderVerify(); // back to what is composed
    throw e;
  }
  state.verify = next;
  await recompose();
}

// ---- modules from another data set (inter-dataset reuse) -----------------

/** Models on another data set whose inputs have the current model's shape. */
function otherDatasetModels() {
  const cur = state.models.get(state.current).dataset;
  const shape = cur.sample_shape.join('×');
  const shapeOf = (ds) => (state.datasets.get(ds)?.sample_shape ?? state.catalog.datasets[ds]?.shape ?? []).join('×');
  return [...state.catalog.models.map((m) => ({ key: m.file, ds: m.dataset, label: m.title })),
    ...[...state.models.values()].filter((m) => m.upload).map((m) => ({ key: m.key, ds: m.dataset.name, label: m.title }))]
    .filter((m) => m.ds !== cur.name && shapeOf(m.ds) === shape);
}

function renderAddModule() {
  const models = otherDatasetModels();
  $('add-module').hidden = models.length === 0;
  const sel = $('add-model');
  const keep = sel.value;
  sel.replaceChildren(...models.map((m) => el('option', { value: m.key, 'data-dataset': m.ds }, m.label)));
  if (models.some((m) => m.key === keep)) sel.value = keep;
  renderAddClasses();
}

function renderAddClasses() {
  const opt = $('add-model').selectedOptions[0];
  const ds = opt?.dataset.dataset;
  const taken = new Set(state.slots.filter((s) => datasetOfSlot(s) === ds).map((s) => s.class));
  const classes = ds ? state.catalog.datasets[ds].classes.map((n, c) => [c, n]).filter(([c]) => !taken.has(c)) : [];
  $('add-class').replaceChildren(...classes.map(([c, n]) => el('option', { value: String(c) }, n)));
  $('add-btn').disabled = classes.length === 0;
}

async function addModule() {
  const key = $('add-model').value;
  const cls = Number($('add-class').value);
  if (!key || !Number.isInteger(cls)) return;
  await ensureModel(key);
  state.slots.push({ class: cls, source: key, on: true });
  renderModules();
  await recompose();
}

function renderModel() {
  const m = state.models.get(state.current);
  const ds = m.dataset;
  $('model-info').replaceChildren(
    el('strong', {}, m.title), ' · ', `${m.info.params.toLocaleString('en')} parameters · ${m.info.class_names.length} classes · `,
    `data: ${state.catalog.datasets[ds.name]?.title ?? (isDataKey(ds.name) ? dataTitle(ds.name) : ds.name)} (${ds.train} train / ${ds.test} test)`);
  $('model-input').textContent = `Input: ${m.info.input}`;
  $('model-notice').textContent = m.info.notice ? `⚠ ${m.info.notice}` : '';
  $('model-notice').hidden = !m.info.notice;
  renderLayers($('layers'), m.info.layers);
  // A strength the model cannot take is said, not silently dropped.
  const unapplied = (state.settings.strength ?? DEFAULTS.strength) > 0 && m.strength === 0;
  $('strength-note').textContent = unapplied
    ? "The class-specific strength does not apply to this model (no dense, convolutional or recurrent layer with units of its own, per-step answers, or the authors' N-output head): its modules are the papers'."
    : '';
  $('strength-note').hidden = !unapplied;
  $('app').dataset.maskDigest = m.digest;
  $('model-picker').value = m.key;
}

let tryIt;
let typeIt;

// ---- the state as data: share links and persistence ----------------------

/** The playground state in share.js's form (uploads carry their bytes). */
function snapshot() {
  // Uploaded data sets stay in this tab: not in links, not in the saved state.
  if (state.models.get(state.current)?.onData) return null;
  const models = [...state.models.values()].filter((m) => !m.onData).map((m) => (m.upload
    ? { key: m.key, dataset: m.dataset.name, upload: { name: m.name, sha256: m.sha256, bytes: new Uint8Array(m.bytes) } }
    : { key: m.key, dataset: m.dataset.name }));
  return {
    models, settings: state.settings, current: state.current,
    slots: state.slots.map((s) => ({ ...s })),
    try: $('try-panel').hidden ? null : tryIt?.linkState() ?? null,
    text: $('type-panel').hidden ? null : typeIt?.linkState() ?? null,
    update: $('update-box').checked,
    verify: state.verify ? { ...state.verify } : null,
    exercise: state.exercise, hide: state.linkHide,
  };
}

let persistTimer = 0;
/** Saves what the user built (uploaded files as bytes, the rest as a link's JSON). */
function persist() {
  clearTimeout(persistTimer);
  persistTimer = setTimeout(() => {
    const st = snapshot();
    if (!st) return; // keeps the last state that can be restored
    const files = {};
    for (const m of st.models) {
      if (m.upload) { files[m.upload.name] = m.upload.bytes.buffer; m.upload = { ...m.upload, bytes: null }; }
    }
    const custom = state.custom && state.custom !== state.exercise ? stateToJson({ ...st, exercise: state.custom }).exercise : null;
    store.save('state', { version: 2, json: stateToJson(st), hide: st.hide, files, custom })
      .catch((e) => console.warn('could not save the playground state', e));
  }, 50);
}

/** Restores the saved state; false when there is none (or it no longer applies). */
async function restore() {
  const saved = await store.load('state').catch(() => null);
  if (saved?.version !== 2) return false;
  let st;
  try {
    st = validateState(saved.json, { catalog: state.catalog, exercises: state.builtins });
  } catch (e) {
    if (e instanceof ShareLinkError) return false;
    throw e;
  }
  st.hide = Array.isArray(saved.hide) ? saved.hide.filter((h) => HIDEABLE.includes(h)) : [];
  if (saved.custom) {
    try {
      state.custom = validateExercise(saved.custom, { catalog: state.catalog, uploads: st.models.filter((m) => m.upload).map((m) => m.key) });
    } catch { /* an exercise this page can no longer read */ }
  }
  const files = new Map(Object.entries(saved.files ?? {}).map(([k, v]) => [k, new Uint8Array(v)]));
  await applyState(st, files);
  return true;
}

/** Loads a validated state (from a link or the store); `files`: upload name -> bytes. */
async function applyState(st, files = new Map()) {
  if (JSON.stringify(st.settings) !== JSON.stringify(state.settings)) {
    state.settings = st.settings;
    state.models.clear(); // decomposed with other settings
    showSettings();
  }
  for (const m of st.models) {
    if (m.upload) {
      const bytes = m.upload.bytes ?? files.get(m.upload.name);
      if (!bytes) throw new Error(`the file ${m.upload.name} is missing`);
      if (await sha256Hex(bytes) !== m.upload.sha256) throw new Error(`${m.upload.name} does not match the SHA-256 the link expects`);
      await addUpload(m.upload.name, m.dataset, bytes.slice().buffer);
    } else {
      await ensureModel(m.key);
    }
  }
  state.linkHide = st.hide ?? [];
  state.exercise = st.exercise;
  if (st.exercise && !st.exercise.id) state.custom = st.exercise;
  $('update-box').checked = Boolean(st.update);
  state.verify = st.verify ?? null;
  await select(st.current, { slots: st.slots });
  if (st.try && !$('try-panel').hidden) tryIt.restore(st.try);
  if (st.text && !$('type-panel').hidden) typeIt.restore(st.text);
}

/** Makes a link of `st`, shows it in the share box and copies it. */
async function shareState(st, label) {
  const frag = await encodeState(st);
  const url = `${location.origin}${location.pathname}#${frag}`;
  $('share-label').textContent = label;
  $('share-url').value = url;
  const notes = [`${url.length.toLocaleString('en')} characters.`];
  for (const m of st.models.filter((x) => x.upload)) {
    notes.push(m.upload.bytes && m.upload.bytes.length <= LIMITS.embed
      ? `Your upload ${m.upload.name} (${(m.upload.bytes.length / 1024).toFixed(1)} KB) is inside the link.`
      : `Your upload ${m.upload.name} is not inside the link (over ${LIMITS.embed / 1024} KB): whoever opens it is asked for the file, checked by its SHA-256.`);
  }
  $('share-box').hidden = false;
  $('share-url').focus();
  $('share-url').select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch { /* no clipboard permission: the link is selected in the box */ }
  $('share-note').textContent = `${copied ? 'Copied to the clipboard. ' : 'Press Ctrl+C (⌘C) to copy. '}${notes.join(' ')}`;
  $('share-box').dataset.ready = 'true';
}

// ---- opening a link --------------------------------------------------------

/** Reads the link in the fragment (if any) and opens it; false when there is none. */
async function openLink() {
  const hash = location.hash;
  if (!isShareFragment(hash)) return false;
  // The link has been read: a reload restores the user's work, not the link.
  history.replaceState(null, '', location.pathname + location.search);
  let st;
  try {
    st = await decodeFragment(hash, { catalog: state.catalog, exercises: state.builtins });
  } catch (e) {
    const why = e instanceof ShareLinkError ? e.message : `unexpected error: ${e.message}`;
    showError(`This link could not be opened — ${why}. Showing the default playground.`);
    document.body.dataset.link = 'refused';
    return false;
  }
  const missing = st.models.filter((m) => m.upload && !m.upload.bytes);
  if (missing.length) {
    await selectDefault();
    askForFiles(st, missing);
    return true;
  }
  try {
    await applyState(st);
    document.body.dataset.link = 'opened';
    return true;
  } catch (e) {
    showError(`This link could not be opened — ${e.message}. Showing the default playground.`);
    document.body.dataset.link = 'refused';
    state.exercise = null;
    state.linkHide = [];
    return false;
  }
}

/** Asks for uploaded files a link names by SHA-256; opens the link when all match. */
function askForFiles(st, missing) {
  const files = new Map();
  const list = $('link-files-list');
  list.replaceChildren(...missing.map((m) => {
    const input = el('input', { type: 'file', accept: '.keras,.h5,.hdf5,.onnx,.remodule', 'aria-label': `Choose ${m.upload.name}` });
    const status = el('span', { class: 'muted' }, 'not chosen yet');
    input.addEventListener('change', async () => {
      const f = input.files?.[0];
      input.value = '';
      if (!f) return;
      const bytes = new Uint8Array(await f.arrayBuffer());
      const hash = await sha256Hex(bytes);
      if (hash !== m.upload.sha256) {
        showError(`${f.name} is not the file the link was made with: its SHA-256 is ${hash.slice(0, 12)}…, the link expects ${m.upload.sha256.slice(0, 12)}….`);
        status.textContent = 'does not match — choose another file';
        return;
      }
      files.set(m.upload.name, bytes);
      status.textContent = 'matches ✓';
      if (missing.every((x) => files.has(x.upload.name))) {
        $('link-files').hidden = true;
        try {
          await applyState(st, files);
          document.body.dataset.link = 'opened';
        } catch (e) { showError(e); }
      }
    });
    return el('li', {}, el('label', {}, el('strong', {}, m.upload.name), ` (SHA-256 ${m.upload.sha256.slice(0, 12)}…) `, input), ' ', status);
  }));
  $('link-files-h').textContent = missing.length === 1 ? 'This link uses a model that was uploaded' : `This link uses ${missing.length} models that were uploaded`;
  $('link-files').hidden = false;
  document.body.dataset.link = 'waiting-for-files';
}

// ---- exercises -------------------------------------------------------------

/**
 * A slot's class as goals name it. A module from another data set for a class
 * the current data set has too (same name, same input shape: English in
 * language sets A and B) is that class, as it is in the engine.
 */
function goalClass(s) {
  const cur = state.models.get(state.current).dataset;
  const ds = state.models.get(s.source).dataset;
  const name = ds.class_names[s.class];
  return isExtra(s) && cur.class_names.includes(name) && cur.sample_shape.join('×') === ds.sample_shape.join('×') ? `${cur.name}:${name}` : qualified(s);
}

/** What the checker sees: slots by goal class, the composition's per-class accuracy, the module-update switch. */
function exerciseSnapshot() {
  const slots = state.slots.map((s) => ({ cls: goalClass(s), model: s.source, on: s.on }));
  let result = null;
  if (lastResult) {
    const perClass = {};
    for (const s of state.slots.filter((x) => x.on)) {
      const id = state.models.get(s.source).modules[s.class].class_id;
      const k = lastResult.classes.indexOf(id);
      if (k >= 0) perClass[goalClass(s)] = lastResult.per_class[k];
    }
    result = { top1: lastResult.top1, perClass };
  }
  const v = state.verify && lastResult ? state.verify : null;
  const cur = state.models.get(state.current).dataset;
  const verify = v ? { class: `${cur.name}:${cur.class_names[v.class]}`, by: v.by } : null;
  return { slots, result, update: document.body.dataset.update === 'true', verify, strength: state.settings.strength ?? DEFAULTS.strength };
}

function applyHide() {
  const hide = new Set([...state.linkHide, ...(state.exercise?.hide ?? [])]);
  for (const e of document.querySelectorAll('[data-control]')) e.classList.toggle('ctl-hidden', hide.has(e.dataset.control));
  document.body.dataset.hide = [...hide].join(' ');
}

function renderExerciseList() {
  const items = [...state.builtins];
  if (state.custom) items.push(state.custom);
  $('ex-list').replaceChildren(...items.map((ex) => {
    const id = exerciseId(ex);
    const open = state.exercise && exerciseId(state.exercise) === id;
    const b = el('button', { type: 'button', class: 'ex-item', 'aria-pressed': String(!!open), 'data-exercise': id,
      title: state.solved.has(id) ? 'Solved' : 'Not solved yet' },
    el('span', { class: 'tick', 'aria-hidden': 'true' }, state.solved.has(id) ? '✓' : '○'), ex.id ? ex.title : `From the link: ${ex.title}`);
    b.addEventListener('click', () => startExercise(ex).catch(showError));
    return el('span', { role: 'listitem' }, b);
  }));
}

async function startExercise(ex) {
  const before = state.exercise;
  try {
    state.exercise = ex;
    state.verify = null; // students start from the model's own modules, nothing checked
    for (const k of ex.models) await ensureModel(k);
    await select(ex.models[0]);
  } catch (e) {
    state.exercise = before;
    renderExercise();
    throw e;
  }
  $('ex-title').focus();
}

function renderExercise() {
  const ex = state.exercise;
  const panel = $('exercise-panel');
  $('ex-open').hidden = !ex;
  applyHide();
  if (!ex) {
    panel.classList.remove('solved');
    delete panel.dataset.solved;
    delete panel.dataset.exercise;
    renderExerciseList();
    return;
  }
  const r = evaluate(ex, exerciseSnapshot(), { catalog: state.catalog });
  const id = exerciseId(ex);
  panel.dataset.exercise = id;
  panel.dataset.solved = String(r.solved);
  panel.classList.toggle('solved', r.solved);
  $('ex-title').textContent = ex.title;
  $('ex-title').tabIndex = -1;
  $('ex-story').textContent = ex.story;
  $('ex-hints').hidden = ex.hints.length === 0;
  $('ex-hint-list').replaceChildren(...ex.hints.map((h) => el('li', {}, h)));
  $('ex-goal').replaceChildren(...r.checks.map((c) => el('li', { class: c.ok ? 'ok' : 'todo', 'data-check': c.check.check },
    el('span', { class: 'mark', 'aria-hidden': 'true' }, c.ok ? '✓' : '✗'),
    el('span', { class: 'visually-hidden' }, c.ok ? 'Done: ' : 'Not yet: '),
    c.text, ' ', el('span', { class: 'now' }, `(${c.now})`))));
  $('ex-status').textContent = r.solved ? 'Solved ✓' : `${r.checks.filter((c) => c.ok).length} of ${r.checks.length} done`;
  if (r.solved && !state.solved.has(id)) {
    state.solved.add(id);
    store.save('solved', [...state.solved]).catch((e) => console.warn('could not save progress', e));
  }
  renderExerciseList();
}

// ---- teacher mode ----------------------------------------------------------

function teacherExercise() {
  const hints = $('t-hints').value.split('\n').map((h) => h.trim()).filter(Boolean).slice(0, 10);
  const hide = [...document.querySelectorAll('#t-hide input:checked')].map((i) => i.value);
  const raw = exerciseFromState(exerciseSnapshot(), { start: state.current, title: $('t-title').value.trim(), story: $('t-story').value.trim(), hints, hide });
  const uploads = [...state.models.values()].filter((m) => m.upload).map((m) => m.key);
  return validateExercise(raw, { catalog: state.catalog, uploads });
}

function renderTeacherGoal() {
  if (!$('teacher').open) return;
  try {
    const ex = teacherExercise();
    const r = evaluate(ex, exerciseSnapshot(), { catalog: state.catalog });
    const items = r.checks.map((c) => el('li', { class: 'ok' }, el('span', { class: 'mark', 'aria-hidden': 'true' }, '✓'), c.text));
    // Students start from the current model's own modules, all in: if that is
    // the state now, they would solve the exercise without a click.
    if (!state.verify && state.slots.every((s) => s.on && s.source === state.current)) {
      items.push(el('li', { class: 'todo' }, el('span', { class: 'mark', 'aria-hidden': 'true' }, '!'),
        'This is the starting state: replace, switch out or add modules first, or students solve it without a click.'));
    }
    $('t-goal').replaceChildren(...items);
    $('t-make').disabled = false;
  } catch (e) {
    $('t-goal').replaceChildren(el('li', { class: 'todo' }, `Cannot make an exercise of this state: ${e.message}`));
    $('t-make').disabled = true;
  }
}

async function makeExerciseLink() {
  const ex = teacherExercise();
  const st = snapshot();
  const models = ex.models.map((k) => st.models.find((m) => m.key === k));
  await shareState({ models, settings: state.settings, current: ex.models[0], slots: null, try: null, exercise: ex, hide: [] },
    'Exercise link for your students');
}

// ---- model selection, uploads ----------------------------------------------

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
  return { ...r, chars, names: on.map((s) => (isExtra(s) ? qualified(s) : state.models.get(s.source).modules[s.class].class_name)) };
}

const decode = (ds, ids) => ids.map((id) => (id > 1 ? ds.vocab[id] : '·')).join('');

async function loadSamples(ds, panel) {
  const list = [];
  for (let i = 0; i < Math.min(LIMITS.samples, ds.test); i++) {
    const { pixels, label } = await engine.call('testSample', { dataset: ds.id, index: i });
    list.push({ pixels, ids: pixels, label, name: ds.class_names[label], text: ds.vocab ? decode(ds, pixels) : null });
  }
  panel.setSamples(list);
}

/** Shows model `key`; `slots` (validated) or its own modules, all in. */
async function select(key, { slots } = {}) {
  const m = await ensureModel(key);
  if (slots) {
    for (const s of slots) {
      const src = state.models.get(s.source);
      if (!src || s.class >= src.modules.length) throw new Error(`model ${s.source} has no module ${s.class}`);
    }
    if (slots.filter((s) => state.models.get(s.source).dataset.name === m.dataset.name).length !== m.modules.length) {
      throw new Error(`the composition does not cover the ${m.modules.length} classes of ${m.title}`);
    }
  }
  state.current = key;
  state.slots = slots
    ? [...slots.filter((s) => !isExtra(s)).sort((a, b) => a.class - b.class), ...slots.filter(isExtra)].map((s) => ({ ...s }))
    : m.modules.map((mod) => ({ class: mod.class, source: key, on: true }));
  renderModel();
  renderModules();
  showPendingScores(m);
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
  await showInside(m);
}

/** The "inside a module" panel for model `m` (its own modules). */
async function showInside(m) {
  const pick = $('units-class');
  const names = m.modules.map((mod) => mod.class_name);
  if (pick.dataset.model !== `${m.key} ${m.digest}`) {
    pick.replaceChildren(...names.map((n, i) => el('option', { value: String(i) }, n)));
    pick.dataset.model = `${m.key} ${m.digest}`;
    renderJaccard($('jaccard'), names, await engine.call('moduleJaccard', { model: m.info.id }));
  }
  const cls = Number(pick.value);
  const views = await engine.call('moduleUnits', { model: m.info.id, class: cls });
  renderUnits($('units'), views);
  // The same units lit on the layer diagram, and the module's card marked.
  highlightLayers($('layers'), views, names[cls]);
  $('lit-note').textContent = `Lit: the units module ${names[cls]} keeps (blue). Click a module's name on its card to light another.`;
  for (const c of document.querySelectorAll('.module')) c.classList.toggle('selected', c.dataset.unitsClass === String(cls));
}

/** Shows module `cls` of the current model inside the module and on the layer diagram. */
function selectModule(cls) {
  $('units-class').value = String(cls);
  showInside(state.models.get(state.current)).catch(showError);
}

async function selectDefault() {
  const first = state.catalog.models.find((m) => m.default) ?? state.catalog.models[0];
  state.exercise = null;
  state.linkHide = [];
  await select(first.file);
}

/** Loads uploaded model bytes as `upload:<name>` and lists it in the picker. */
async function addUpload(name, dataset, bytes) {
  const key = `upload:${name}`;
  const title = `${name} (uploaded)`;
  const sha256 = await sha256Hex(new Uint8Array(bytes));
  const old = state.models.get(key);
  if (old?.sha256 === sha256) return old;
  state.models.delete(key);
  let m;
  try {
    // The worker takes a transferred copy; keep the original for persistence and links.
    m = await ensureModel(key, { title, dataset, bytes: bytes.slice(0) });
  } catch (e) {
    if (old) state.models.set(key, old);
    throw e;
  }
  Object.assign(m, { upload: true, name, bytes, sha256 });
  listModel(key, title);
  return m;
}

/** Lists a model that is not bundled (an upload, a model on uploaded data) in the picker. */
function listModel(key, title) {
  const picker = $('model-picker');
  if (![...picker.options].some((o) => o.value === key)) picker.append(el('option', { value: key }, title));
}

/** Saves bytes from the engine as a file. */
function download(bytes, name, type = 'application/octet-stream') {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const fileStem = (m) => (m.name ?? m.key).replace(/\.[^.]*$/, '');

/** The composition as ONNX (docs/EXPORT.md). */
async function exportOnnx() {
  const chosen = picks();
  if (chosen.length === 0) throw new Error('Select at least one module to export.');
  const bytes = await engine.call('exportOnnx', { picks: chosen, softmax: true });
  download(bytes, `${fileStem(state.models.get(state.current))}-composition.onnx`);
}

/** Each model of the composition with its modules, one .remodule file per model. */
async function exportModuleSets() {
  const keys = [...new Set(state.slots.filter((s) => s.on).map((s) => s.source))];
  if (keys.length === 0) throw new Error('Select at least one module to export.');
  for (const k of keys) {
    const m = state.models.get(k);
    download(await engine.call('exportModules', { model: m.info.id }), `${fileStem(m)}.remodule`);
  }
}

/**
 * An uploaded model goes on a bundled data set it fits (the engine's rule: same values per
 * sample, same class count): the current one if it fits, the only one, or the one the user
 * picks; none fitting is refused with what the model needs.
 */
async function upload(file) {
  const bytes = await file.arrayBuffer();
  const fit = await engine.call('fitUpload', { bytes: bytes.slice(0), fileName: file.name, catalog: state.catalog });
  if (!fit.fits.length) throw new Error(fit.message);
  const current = state.models.get(state.current)?.dataset.name;
  const dataset = fit.fits.includes(current) ? current : fit.fits.length === 1 ? fit.fits[0] : await chooseDataset(file.name, fit.fits);
  if (!dataset) return; // the user cancelled
  await addUpload(file.name, dataset, bytes);
  await select(`upload:${file.name}`);
}

/** Asks which of the data sets `keys` the uploaded model `name` is for; null when cancelled. */
function chooseDataset(name, keys) {
  const dialog = $('fit-dialog');
  $('fit-text').textContent = `${name} fits ${keys.length} bundled data sets. Which one is it for?`;
  $('fit-choice').replaceChildren(...keys.map((k) => el('option', { value: k }, state.catalog.datasets[k]?.title ?? k)));
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok' ? $('fit-choice').value : null), { once: true });
    dialog.showModal();
  });
}

/** The form shows state.settings, which holds only the differences from the defaults (settings.js). */
function showSettings() {
  showSettingsForm($('settings-form'), state.settings);
}

/** Re-decomposes every loaded model with new settings, keeping the composition. */
async function applySettings(next) {
  const uploads = [...state.models.values()].filter((m) => m.upload);
  const onData = [...state.models.values()].filter((m) => m.onData);
  const { current, slots } = state;
  const before = { settings: state.settings, models: state.models };
  state.settings = next;
  state.models = new Map();
  try {
    for (const u of uploads) await addUpload(u.name, u.dataset.name, u.bytes);
    for (const m of onData) await reloadOnData(m, ensureModel);
    for (const k of new Set([current, ...slots.map((s) => s.source), ...(state.verify ? [state.verify.by] : [])])) await ensureModel(k);
  } catch (e) {
    // Cancelled (or failed): the models decomposed with the old settings stay. A refused setting
    // stays in the form as typed, so that the fix the message names is one change away.
    Object.assign(state, before);
    if (e instanceof CancelledError) showSettings();
    throw e;
  }
  await select(current, { slots });
  showSettings();
}

function readSettings() {
  const next = nonDefault(readSettingsForm($('settings-form')));
  // Checked before anything is torn down.
  const problem = settingsProblem(next);
  if (problem) throw new Error(`Decomposition ${problem.replace(/^settings\./, 'setting ')}`);
  return next;
}

function wireControls() {
  const uploadData = dataUploader({
    engine, state, ensureModel, select,
    modelBytes: (m) => (m.upload ? m.bytes.slice(0) : fetchBytes(`bundled/${m.key}`)),
    listModel,
    input: () => inputOverride($('data-scale').value, $('data-offset').value),
  });
  wireCancel({
    engine, button: $('cancel-btn'), note: $('cancel-note'), progress, done: progressDone, onError: showError,
    live: (id) => [...state.models.values()].some((m) => m.info.id === id),
    restored: async () => {
      if (!state.current) return selectDefault();
      renderModel();
      renderModules();
      await recompose();
      await showInside(state.models.get(state.current));
    },
  });
  $('units-class').addEventListener('change', () => showInside(state.models.get(state.current)).catch(showError));
  buildSettingsForm($('settings-form'), $('s-actions'), $('strength-row'));
  showSettings();
  // The strength slider applies as it is released (a new strength reuses the recorded pass).
  $('s-strength').addEventListener('change', () => { try { applySettings(readSettings()).catch(showError); } catch (err) { showError(err); } });
  $('front-btn').addEventListener('click', () => measureFront().catch(showError));
  $('settings-form').addEventListener('submit', (e) => {
    e.preventDefault();
    try { applySettings(readSettings()).catch(showError); } catch (err) { showError(err); }
  });
  $('s-reset').addEventListener('click', () => applySettings({}).catch(showError));
  $('update-box').addEventListener('change', () => recompose().catch(showError));
  for (const id of ['verify-box', 'verify-class', 'verify-model']) $(id).addEventListener('change', () => changeVerify().catch(showError));
  $('type-box').addEventListener('input', () => persist());
  $('type-samples').addEventListener('click', () => persist());
  const picker = $('model-picker');
  picker.replaceChildren(...state.catalog.models.map((m) => el('option', { value: m.file }, m.title)));
  picker.disabled = false;
  picker.addEventListener('change', () => select(picker.value).catch(showError));
  const hidden = (c) => document.body.dataset.hide?.split(' ').includes(c);
  // Drag and drop a model file anywhere on the page.
  document.addEventListener('dragover', (e) => { e.preventDefault(); if (!hidden('upload')) document.body.classList.add('dropping'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) document.body.classList.remove('dropping'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dropping');
    const files = [...(e.dataTransfer?.files ?? [])];
    if (files.length === 0 || hidden('upload')) return;
    // A .npz, or two files (IDX images and labels), is data; anything else a model.
    (files.length > 1 || /\.npz$/i.test(files[0].name) ? uploadData(files) : upload(files[0])).catch(showError);
  });
  $('upload').addEventListener('change', (e) => {
    const f = e.target.files?.[0];
    e.target.value = '';
    if (f) upload(f).catch(showError);
  });
  $('data-upload').addEventListener('change', (e) => {
    const files = [...(e.target.files ?? [])];
    e.target.value = '';
    if (files.length) uploadData(files).catch(showError);
  });
  $('add-model').addEventListener('change', renderAddClasses);
  $('add-btn').addEventListener('click', () => addModule().catch(showError));
  $('export-onnx').addEventListener('click', () => exportOnnx().catch(showError));
  $('export-set').addEventListener('click', () => exportModuleSets().catch(showError));
  $('share-btn').addEventListener('click', () => {
    const st = snapshot();
    if (!st) return showError('A link cannot carry a data set you uploaded: pick a model on a bundled data set to share a link.');
    shareState(st, 'Link to this playground').catch(showError);
  });
  $('share-copy').addEventListener('click', () => {
    $('share-url').select();
    navigator.clipboard.writeText($('share-url').value).then(() => { $('share-note').textContent = 'Copied to the clipboard.'; },
      () => { $('share-note').textContent = 'Press Ctrl+C (⌘C) to copy.'; });
  });
  $('share-close').addEventListener('click', () => { $('share-box').hidden = true; $('share-btn').focus(); });
  $('link-files-cancel').addEventListener('click', () => { $('link-files').hidden = true; document.body.dataset.link = 'cancelled'; });
  $('ex-close').addEventListener('click', () => { state.exercise = null; renderExercise(); persist(); });
  $('ex-restart').addEventListener('click', () => startExercise(state.exercise).catch(showError));
  const controlNames = { picker: 'model picker', upload: 'upload', layers: 'layer list', addmodule: 'modules from other data sets', tryit: 'try it', matrix: 'confusion matrix', teacher: 'teacher mode' };
  $('t-hide').replaceChildren(...HIDEABLE.map((h) => el('label', {}, el('input', { type: 'checkbox', value: h }), ` ${controlNames[h] ?? h}`)));
  $('teacher').addEventListener('toggle', renderTeacherGoal);
  for (const id of ['t-title', 't-story', 't-hints']) $(id).addEventListener('input', renderTeacherGoal);
  $('t-make').addEventListener('click', () => makeExerciseLink().catch(showError));
  // A link pasted into this tab: open it as a fresh page would.
  window.addEventListener('hashchange', () => { if (isShareFragment(location.hash)) location.reload(); });
}

async function boot() {
  // The catalog, the default model and its data download while the engine starts (the worker
  // queues calls until it is ready).
  engine.call('info').then((info) => {
    const status = $('engine-status');
    status.textContent = `Engine ${info.version} ready · SIMD ${info.simd ? 'on' : 'off'}`;
    status.dataset.ready = 'true';
  }, showError);

  state.catalog = await (await fetch('bundled/catalog.json')).json();
  const builtins = await (await fetch('exercises/builtin.json')).json();
  state.builtins = builtins.map((ex, k) => validateExercise(ex, { catalog: state.catalog }, { builtin: true, path: `builtin.json[${k}]` }));
  state.solved = new Set(await store.load('solved').catch(() => []) ?? []);
  wireControls();
  tryIt = new TryIt({ pad: $('pad'), clear: $('clear'), samples: $('samples'), answer: $('answer'), bars: $('try-scores') },
    scoreInput, showError);
  typeIt = new TypeIt({ box: $('type-box'), samples: $('type-samples'), answer: $('type-answer'), bars: $('type-scores'), tags: $('type-tags') },
    scoreInput, showError);
  renderExerciseList();
  const t0 = performance.now();
  let restored = false;
  let linked = false;
  try {
    linked = await openLink();
  } catch (e) { showError(e); }
  if (!linked) {
    try {
      // A refused link shows the default state, not the last session.
      if (document.body.dataset.link !== 'refused') restored = await restore();
    } catch (e) {
      showError(`Could not restore your last session (${e.message}); starting fresh.`);
    }
    if (!restored) await selectDefault();
  }
  $('share-btn').disabled = false;
  document.body.dataset.restored = String(restored);
  document.body.dataset.firstViewMs = (performance.now() - t0).toFixed(0);
  startOffline().catch((e) => console.warn('offline copy', e));
}

boot().catch(showError);

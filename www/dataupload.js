// "Evaluate on your own data": a .npz data set (keras.datasets layout:
// x_train, y_train, x_test, y_test, optional class_names), or an IDX images
// file with its labels file (MNIST's layout; the samples are both splits),
// uploaded in the page.
// The current model is loaded again on it, decomposed with the user's training
// samples and evaluated on their test samples; the engine refuses data whose
// samples do not fit the model's input, and any file it cannot read.

/** Larger files are refused before they reach the engine (the bundled ones are ≤ 3 MB). */
export const MAX_DATA_BYTES = 64 * 1024 * 1024;

/** Key of an uploaded data set, and of a model evaluated on it. */
export const dataKey = (fileName) => `data:${fileName}`;
export const modelOnDataKey = (modelKey, fileName) => `${modelKey} @ ${dataKey(fileName)}`;
export const isDataKey = (k) => typeof k === 'string' && k.startsWith('data:');
/** How the page names an uploaded data set. */
export const dataTitle = (key) => `${key.slice('data:'.length)} (your data)`;

const USAGE = 'choose a .npz data set (x_train, y_train, x_test, y_test), or an IDX images file together with its labels file';

/** The engine call that adds the chosen files as a data set: {name, op, args(key), transfer}. */
async function dataCall(files) {
  for (const f of files) {
    if (f.size > MAX_DATA_BYTES) throw new Error(`${f.name} is ${(f.size / 2 ** 20).toFixed(0)} MB; the page takes data sets up to ${MAX_DATA_BYTES / 2 ** 20} MB`);
  }
  if (files.length === 1 && /\.npz$/i.test(files[0].name)) {
    const bytes = await files[0].arrayBuffer();
    return { name: files[0].name, op: 'addDataset', args: (key) => ({ bytes, name: key }), transfer: [bytes] };
  }
  if (files.length === 2) {
    // IDX magic: 00 00 <type> <rank>; labels have rank 1, images more.
    const heads = await Promise.all(files.map(async (f) => new Uint8Array(await f.slice(0, 4).arrayBuffer())));
    const idx = heads.every((h) => h.length === 4 && h[0] === 0 && h[1] === 0);
    const li = heads.findIndex((h) => h[3] === 1);
    if (idx && li >= 0 && heads[1 - li][3] >= 2) {
      const [images, labels] = await Promise.all([files[1 - li].arrayBuffer(), files[li].arrayBuffer()]);
      return { name: files[1 - li].name, op: 'addIdxDataset', args: (key) => ({ images, labels, name: key }), transfer: [images, labels] };
    }
  }
  const names = files.map((f) => f.name).join(', ');
  throw new Error(`${names}: ${files.length === 1 && !/\.npz$/i.test(names) ? 'a data set must be a .npz file, or IDX images with their labels file' : USAGE}`);
}

/**
 * The input map the user typed beside "Evaluate on your data": `{scale, offset}` with
 * blanks left out (the engine's input rule decides those), or undefined for none.
 * A value that is not a finite number (or a zero scale) is refused, naming the field.
 */
export function inputOverride(scaleText, offsetText) {
  const out = {};
  for (const [name, text] of [['scale', scaleText], ['offset', offsetText]]) {
    const t = String(text ?? '').trim();
    if (!t) continue;
    const v = Number(t);
    if (!Number.isFinite(v) || (name === 'scale' && v === 0)) {
      throw new Error(`input ${name} must be a ${name === 'scale' ? 'non-zero ' : ''}number, not "${t}"`);
    }
    out[name] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * `deps`: {engine, state, ensureModel(key, {title, dataset, bytes, input}),
 * modelBytes(m) → ArrayBuffer of model m's file, select(key), listModel(key, title),
 * input() → the typed input map (see inputOverride)}.
 * Returns `upload(files)`: one .npz, or two IDX files (images and labels).
 */
export function dataUploader({ engine, state, ensureModel, modelBytes, select, listModel, input: readInput }) {
  return async function uploadData(files) {
    const input = readInput?.();
    const call = await dataCall(files);
    const base = state.models.get(state.current);
    const source = base.onData?.model ?? base.key; // a model already on uploaded data: its own file
    const src = state.models.get(source) ?? base;
    const key = dataKey(call.name);
    const modelKey = modelOnDataKey(source, call.name);
    // A file uploaded again under the same name replaces the earlier one.
    state.datasets.delete(key);
    for (const [k, m] of state.models) if (m.onData?.data === key) state.models.delete(k);
    const info = await engine.call(call.op, call.args(key), null, call.transfer);
    state.datasets.set(key, info);
    let m;
    try {
      const title = `${src.title} on ${call.name}`;
      const fileBytes = await modelBytes(src);
      m = await ensureModel(modelKey, { title, dataset: key, bytes: fileBytes.slice(0), input });
      Object.assign(m, { onData: { model: source, data: key, input }, fileBytes });
      listModel(modelKey, title);
    } catch (e) {
      state.datasets.delete(key);
      throw e;
    }
    await select(modelKey);
    return m;
  };
}

/** Loads (and decomposes) model-on-data `m` again, e.g. with new settings. */
export async function reloadOnData(m, ensureModel) {
  const again = await ensureModel(m.key, { title: m.title, dataset: m.dataset.name, bytes: m.fileBytes.slice(0), input: m.onData.input });
  return Object.assign(again, { onData: m.onData, fileBytes: m.fileBytes });
}

// "Evaluate on your own data": a .npz data set (keras.datasets layout:
// x_train, y_train, x_test, y_test, optional class_names) uploaded in the page.
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

/**
 * `deps`: {engine, state, ensureModel(key, {title, dataset, bytes}),
 * modelBytes(m) → ArrayBuffer of model m's file, select(key), listModel(key, title)}.
 * Returns `upload(file)`.
 */
export function dataUploader({ engine, state, ensureModel, modelBytes, select, listModel }) {
  return async function uploadData(file) {
    if (!/\.npz$/i.test(file.name)) throw new Error(`${file.name}: a data set must be a .npz file (x_train, y_train, x_test, y_test)`);
    if (file.size > MAX_DATA_BYTES) throw new Error(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MB; the page takes data sets up to ${MAX_DATA_BYTES / 2 ** 20} MB`);
    const base = state.models.get(state.current);
    const source = base.onData?.model ?? base.key; // a model already on uploaded data: its own file
    const src = state.models.get(source) ?? base;
    const key = dataKey(file.name);
    const modelKey = modelOnDataKey(source, file.name);
    const bytes = await file.arrayBuffer();
    // A file uploaded again under the same name replaces the earlier one.
    state.datasets.delete(key);
    for (const [k, m] of state.models) if (m.onData?.data === key) state.models.delete(k);
    const info = await engine.call('addDataset', { bytes, name: key }, null, [bytes]);
    state.datasets.set(key, info);
    let m;
    try {
      const title = `${src.title} on ${file.name}`;
      const fileBytes = await modelBytes(src);
      m = await ensureModel(modelKey, { title, dataset: key, bytes: fileBytes.slice(0) });
      Object.assign(m, { onData: { model: source, data: key }, fileBytes });
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
  const again = await ensureModel(m.key, { title: m.title, dataset: m.dataset.name, bytes: m.fileBytes.slice(0) });
  return Object.assign(again, { onData: m.onData, fileBytes: m.fileBytes });
}

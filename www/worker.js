// The only thread that runs the engine. Messages in: {id, op, args};
// out: {id, ok: true, result} | {id, ok: false, error} | {id, progress: fraction}.
import init, * as engine from './pkg/remodule.js';

let session;
const ready = init().then(() => { session = new engine.Session(); return engine.engineInfo(); });

const ops = {
  info: () => ready,
  addDataset: ({ bytes, name }) => session.addDataset(new Uint8Array(bytes), name),
  addIdxDataset: ({ images, labels, name }) => session.addIdxDataset(new Uint8Array(images), new Uint8Array(labels), name),
  addModel: ({ bytes, fileName, dataset }) => session.addModel(new Uint8Array(bytes), fileName, dataset),
  fitUpload: ({ bytes, fileName, catalog }) => session.fitUpload(new Uint8Array(bytes), fileName, catalog),
  addFile: ({ bytes, fileName, dataset, input }) => session.addFile(new Uint8Array(bytes), fileName, dataset, input),
  exportOnnx: ({ picks, softmax }) => session.exportOnnx(picks, softmax ?? false),
  exportModules: ({ model }) => session.exportModules(model),
  decompose: ({ model, settings }, progress) => session.decompose(model, settings ?? null, progress),
  compose: ({ picks, base, update, verify }) => session.compose(picks, base, update ?? false, verify ?? null),
  testSample: ({ dataset, index }) => session.testSample(dataset, index),
  tryInput: ({ picks, pixels }) => session.tryInput(picks, new Float32Array(pixels)),
  encodeText: ({ dataset, text }) => session.encodeText(dataset, text),
  moduleUnits: ({ model, class: c }) => session.moduleUnits(model, c),
  moduleJaccard: ({ model }) => session.moduleJaccard(model),
  front: ({ model }) => session.front(model),
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    await ready;
    const fn = ops[op];
    if (!fn) throw new Error(`unknown operation ${op}`);
    const result = await fn(args ?? {}, (fraction) => self.postMessage({ id, progress: fraction }));
    self.postMessage({ id, ok: true, result });
  } catch (e) {
    self.postMessage({ id, ok: false, error: String(e?.message ?? e) });
  }
};

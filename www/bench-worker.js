// Runs the engine benchmark for one build (`?pkg=pkg` or `?pkg=pkg-scalar`).
const pkg = new URL(self.location).searchParams.get('pkg') ?? 'pkg';
const { default: init, Session, engineInfo } = await import(`./${pkg}/remodule.js`);
await init();

// The raw test split of a data set (for onnxruntime-web, on the same samples);
// a per-step data set has one label per output step.
function testSet(s, ds) {
  const n = ds.test, first = s.testSample(ds.id, 0), steps = first.labels.length;
  const x = new Float32Array(n * first.pixels.length), labels = new Int32Array(n * steps);
  for (let i = 0; i < n; i++) {
    const sample = s.testSample(ds.id, i);
    x.set(sample.pixels, i * sample.pixels.length);
    labels.set(sample.labels, i * steps);
  }
  return { n, x, labels, shape: ds.sample_shape, tokens: ds.vocab != null };
}

self.onmessage = async ({ data: { models, recompose, withInputs } }) => {
  try {
    const s = new Session();
    const datasets = new Map();
    const rows = [], inputs = {};
    for (const [file, dataset] of models) {
      if (!datasets.has(dataset)) {
        const ds = s.addDataset(new Uint8Array(await (await fetch(`bundled/${dataset}`)).arrayBuffer()), dataset);
        datasets.set(dataset, ds.id);
        if (withInputs) inputs[dataset] = testSet(s, ds);
      }
      const m = s.addModel(new Uint8Array(await (await fetch(`bundled/${file}`)).arrayBuffer()), file, datasets.get(dataset));
      rows.push({ ...s.bench(m.id), accuracy: m.accuracy });
    }
    const rec = recompose.map(([m, n]) => ({ modules: m, samples: n, ms: 1000 * Session.benchRecompose(m, n) }));
    self.postMessage({ ok: true, info: engineInfo(), rows, recompose: rec, inputs });
  } catch (e) {
    self.postMessage({ ok: false, error: String(e?.message ?? e) });
  }
};
self.postMessage({ ready: true });

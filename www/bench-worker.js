// Runs the engine benchmark for one build (`?pkg=pkg` or `?pkg=pkg-scalar`).
const pkg = new URL(self.location).searchParams.get('pkg') ?? 'pkg';
const { default: init, Session, engineInfo } = await import(`./${pkg}/remodule.js`);
await init();

self.onmessage = async ({ data: { models } }) => {
  try {
    const s = new Session();
    const datasets = new Map();
    const rows = [];
    for (const [file, dataset] of models) {
      if (!datasets.has(dataset)) datasets.set(dataset, s.addDataset(new Uint8Array(await (await fetch(`bundled/${dataset}`)).arrayBuffer()), dataset).id);
      const m = s.addModel(new Uint8Array(await (await fetch(`bundled/${file}`)).arrayBuffer()), file, datasets.get(dataset));
      rows.push(s.bench(m.id));
    }
    const recompose = [[10, 1000], [10, 10000], [100, 10000]].map(([m, n]) => ({ modules: m, samples: n, ms: 1000 * Session.benchRecompose(m, n) }));
    self.postMessage({ ok: true, info: engineInfo(), rows, recompose });
  } catch (e) {
    self.postMessage({ ok: false, error: String(e?.message ?? e) });
  }
};
self.postMessage({ ready: true });

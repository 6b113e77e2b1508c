// Benchmark page: runs both wasm builds and onnxruntime-web one after the
// other and exposes the results as JSON in #out (scripts/bench reads them
// with headless Chromium).
// The same list as scripts/bench: [model, data set] in www/bundled/; the ONNX
// copies are in www/bundled/onnx/ (models/onnx/, copied by scripts/bench).
// Quick mode (`bench.html?quick&models=cnn,lstm`, for kernel work): inference
// only, SIMD build and ORT-web only, models whose file name contains one of the words.
const params = new URLSearchParams(location.search);
const quick = params.has('quick');
const only = params.get('models')?.split(',');
const models = [['digits_mlp.keras', 'digits.npz'], ['digits_mlp_b.keras', 'digits.npz'], ['digits_cnn.keras', 'digits.npz'],
  ['digits_resnet.keras', 'digits.npz'], ['lang_a_lstm.keras', 'lang_a.npz'], ['lang_a_gru.keras', 'lang_a.npz'],
  ['lang_rev_lstm.keras', 'lang_rev.npz']]
  .filter(([file]) => !only || only.some((w) => file.includes(w)));
// (modules, samples): bench::RECOMPOSE_SIZES.
const recompose = quick ? [] : [[10, 1000], [10, 10000], [10, 100000], [100, 1000], [100, 10000], [100, 100000]];

function run(script, message) {
  return new Promise((resolve, reject) => {
    const w = new Worker(script, { type: 'module' });
    w.onmessage = ({ data }) => {
      if (data.ready) return w.postMessage(message);
      w.terminate();
      data.ok ? resolve(data) : reject(new Error(data.error));
    };
    w.onerror = (e) => reject(new Error(e.message));
  });
}

const out = document.getElementById('out');
// Best samples/s per model over `turns` rounds (the quick mode alternates the
// runtimes, so on a busy machine both see similar load).
const best = (a, b) => (a ? { ...b, rows: b.rows.map((r, i) => (a.rows[i].samples_per_s > r.samples_per_s ? a.rows[i] : r)) } : b);
try {
  const results = {};
  const onnx = models.map(([file, dataset]) => ({ file: file.replace(/\.keras$/, '.onnx'), dataset }));
  for (let turn = 0; turn < (quick ? Number(params.get('turns') ?? 3) : 1); turn++) {
    for (const pkg of quick ? ['pkg'] : ['pkg', 'pkg-scalar']) {
      const r = await run(`./bench-worker.js?pkg=${pkg}`, { models, recompose, withInputs: pkg === 'pkg', inferenceOnly: quick });
      results[pkg] = best(results[pkg], r);
      if (pkg === 'pkg') results.inputs = r.inputs;
    }
    results.ort = best(results.ort, await run('./bench-ort-worker.js', { models: onnx, inputs: results.inputs }));
  }
  delete results.inputs;
  delete results.pkg.inputs;
  out.textContent = JSON.stringify(results, null, 1);
  out.dataset.done = 'true';
} catch (e) {
  out.textContent = `failed: ${e.message}`;
  out.dataset.done = 'error';
}

// Benchmark page: runs both wasm builds and onnxruntime-web one after the
// other and exposes the results as JSON in #out (scripts/bench reads them
// with headless Chromium).
// The same list as scripts/bench: [model, data set] in www/bundled/; the ONNX
// copies are in www/bundled/onnx/ (models/onnx/, copied by scripts/bench).
const models = [['digits_mlp.keras', 'digits.npz'], ['digits_mlp_b.keras', 'digits.npz'], ['digits_cnn.keras', 'digits.npz'],
  ['digits_resnet.keras', 'digits.npz'], ['lang_a_lstm.keras', 'lang_a.npz'], ['lang_a_gru.keras', 'lang_a.npz'],
  ['lang_rev_lstm.keras', 'lang_rev.npz']];
// (modules, samples): bench::RECOMPOSE_SIZES.
const recompose = [[10, 1000], [10, 10000], [10, 100000], [100, 1000], [100, 10000], [100, 100000]];

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
try {
  const results = {};
  for (const pkg of ['pkg', 'pkg-scalar']) {
    results[pkg] = await run(`./bench-worker.js?pkg=${pkg}`, { models, recompose, withInputs: pkg === 'pkg' });
  }
  const onnx = models.map(([file, dataset]) => ({ file: file.replace(/\.keras$/, '.onnx'), dataset }));
  results.ort = await run('./bench-ort-worker.js', { models: onnx, inputs: results.pkg.inputs });
  delete results.pkg.inputs;
  out.textContent = JSON.stringify(results, null, 1);
  out.dataset.done = 'true';
} catch (e) {
  out.textContent = `failed: ${e.message}`;
  out.dataset.done = 'error';
}

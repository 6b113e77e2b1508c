// Benchmark page: runs both wasm builds one after the other and exposes the
// results as JSON in #out (scripts/bench reads them with headless Chromium).
// The same list as scripts/bench: [model, data set] in www/bundled/.
const models = [['digits_mlp.keras', 'digits.npz'], ['digits_mlp_b.keras', 'digits.npz'], ['digits_cnn.keras', 'digits.npz'],
  ['digits_resnet.keras', 'digits.npz'], ['lang_a_lstm.keras', 'lang_a.npz'], ['lang_a_gru.keras', 'lang_a.npz']];

function run(pkg) {
  return new Promise((resolve, reject) => {
    const w = new Worker(`./bench-worker.js?pkg=${pkg}`, { type: 'module' });
    w.onmessage = ({ data }) => {
      if (data.ready) return w.postMessage({ models });
      w.terminate();
      data.ok ? resolve(data) : reject(new Error(data.error));
    };
    w.onerror = (e) => reject(new Error(e.message));
  });
}

const out = document.getElementById('out');
try {
  const results = {};
  for (const pkg of ['pkg', 'pkg-scalar']) results[pkg] = await run(pkg);
  out.textContent = JSON.stringify(results, null, 1);
  out.dataset.done = 'true';
} catch (e) {
  out.textContent = `failed: ${e.message}`;
  out.dataset.done = 'error';
}

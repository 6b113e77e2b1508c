// onnxruntime-web on the ONNX copies of the bundled models (models/onnx/),
// for scripts/bench: wasm backend, one thread, SIMD build. scripts/bench
// copies the package's files into ort/ (git-ignored).
import * as ort from './ort/ort.wasm.min.mjs';

ort.env.wasm.wasmPaths = new URL('./ort/', self.location).href;
ort.env.wasm.numThreads = 1;
ort.env.wasm.simd = true;
ort.env.wasm.proxy = false;

// As bench::time: one warm-up run, then the best of at least three batches
// (each ≥ 20 ms) timed for at least `minS` in all.
async function time(f, minS = 0.5) {
  await f();
  const batch = async (k) => {
    const t = performance.now();
    for (let i = 0; i < k; i++) await f();
    return (performance.now() - t) / 1000 / k;
  };
  let k = 1, best = await batch(k);
  while (best * k < 0.02) best = await batch(k *= 2);
  const t0 = performance.now();
  for (let batches = 1; batches < 3 || performance.now() - t0 < minS * 1000; batches++) best = Math.min(best, await batch(k));
  return best;
}

self.onmessage = async ({ data: { models, inputs } }) => {
  try {
    const rows = [];
    for (const { file, dataset } of models) {
      const input = inputs[dataset];
      const session = await ort.InferenceSession.create(new Uint8Array(await (await fetch(`bundled/onnx/${file}`)).arrayBuffer()),
        { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      // The bundled models' input convention: images as NHWC in [0, 1], text as int32 token ids.
      const tensor = input.tokens
        ? new ort.Tensor('int32', Int32Array.from(input.x), [input.n, ...input.shape])
        : new ort.Tensor('float32', input.x.map((v) => v / 255), [input.n, ...input.shape, 1]);
      const feeds = { [session.inputNames[0]]: tensor };
      const run = () => session.run(feeds);
      const out = (await run())[session.outputNames[0]].data;
      // One row of class probabilities per label: per sample, or per output step.
      const items = input.labels.length, c = out.length / items;
      let correct = 0;
      for (let i = 0; i < items; i++) {
        let best = 0;
        for (let k = 1; k < c; k++) if (out[i * c + k] > out[i * c + best]) best = k;
        correct += best === input.labels[i];
      }
      const s = await time(run);
      rows.push({ file, samples_per_s: input.n / s, accuracy: correct / items });
      await session.release();
    }
    self.postMessage({ ok: true, version: ort.env.versions?.web ?? '', rows });
  } catch (e) {
    self.postMessage({ ok: false, error: String(e?.message ?? e) });
  }
};
self.postMessage({ ready: true });

// Runs www/bench.html in headless Chromium and prints native vs wasm tables
// with ratios. Used by scripts/bench; not a test.
import { readFileSync } from 'node:fs';
import { start } from './harness.mjs';

const native = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const env = await start();
try {
  const page = await env.newPage();
  await page.goto(`${env.url}bench.html`);
  await page.locator('#out[data-done]').waitFor({ timeout: 600000 });
  const text = await page.locator('#out').textContent();
  if (!text.startsWith('{')) throw new Error(text);
  const { pkg: simd, 'pkg-scalar': scalar } = JSON.parse(text);
  if (!simd.info.simd || scalar.info.simd) throw new Error('the builds do not differ in SIMD as expected');
  const f = (x, d = 0) => x.toFixed(d);
  console.log('\n### Forward pass over 1,000 test images (samples/s, single thread)\n');
  console.log('| model | native | wasm SIMD | wasm scalar | wasm-SIMD ÷ native | SIMD ÷ scalar |');
  console.log('|---|---:|---:|---:|---:|---:|');
  native.rows.forEach((n, i) => {
    const s = simd.rows[i], c = scalar.rows[i];
    console.log(`| ${n.model} | ${f(n.samples_per_s)} | ${f(s.samples_per_s)} | ${f(c.samples_per_s)} | ${f(s.samples_per_s / n.samples_per_s, 2)} | ${f(s.samples_per_s / c.samples_per_s, 2)} |`);
  });
  console.log('\n### Decompose all classes ÷ one recorded forward pass (goal ≤ 1.2)\n');
  console.log('| model | native | wasm SIMD | wasm scalar |\n|---|---:|---:|---:|');
  native.rows.forEach((n, i) => console.log(`| ${n.model} | ${f(n.decompose_ratio, 2)} | ${f(simd.rows[i].decompose_ratio, 2)} | ${f(scalar.rows[i].decompose_ratio, 2)} |`));
  console.log('\n### Recompose after a toggle (ms; goal < 1 at 10 × 10k)\n');
  console.log('| modules × samples | native | wasm SIMD | wasm scalar |\n|---|---:|---:|---:|');
  simd.recompose.forEach((r, i) => {
    const n = native.recompose.find((x) => x.modules === r.modules && x.samples === r.samples);
    console.log(`| ${r.modules} × ${r.samples} | ${f(n.ms, 3)} | ${f(r.ms, 3)} | ${f(scalar.recompose[i].ms, 3)} |`);
  });
} finally {
  await env.close();
}

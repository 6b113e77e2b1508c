// Runs www/bench.html (Remodule wasm SIMD and scalar, onnxruntime-web) and the
// page timings in headless Chromium, then prints every table with ratios and
// writes them, with the machine description, to the Markdown file given.
// Used by scripts/bench: `node bench-run.mjs NATIVE.json OUT.md`; not a test.
// `node bench-run.mjs --quick [MODEL_WORD,...]` (BENCH_QUICK=1 scripts/bench):
// only the inference table for wasm SIMD vs ORT-web, printed, no file written.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, start } from './harness.mjs';
import { composedChange as composedAfter, open, toggle } from './page.mjs';
import { firstVisit, firstVisitSection } from './bench-firstvisit.mjs';

const [nativeFile, outFile] = process.argv.slice(2);
if (nativeFile === '--quick') {
  const env = await start();
  try {
    const bench = await env.newPage();
    await bench.goto(`${env.url}bench.html?quick${outFile ? `&models=${outFile}` : ''}`);
    await bench.locator('#out[data-done]').waitFor({ timeout: 1200000 });
    const text = await bench.locator('#out').textContent();
    if (!text.startsWith('{')) throw new Error(text);
    const { pkg: simd, ort } = JSON.parse(text);
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log('| model | wasm SIMD | ORT-web | Remodule-wasm ÷ ORT-web | accuracy Remodule / ORT |\n|---|---:|---:|---:|---|');
    simd.rows.forEach((s, i) => {
      const o = ort.rows[i];
      console.log(`| ${s.model} | ${s.samples_per_s.toFixed(0)} | ${o.samples_per_s.toFixed(0)} | ${(s.samples_per_s / o.samples_per_s).toFixed(2)} | ${(100 * s.accuracy).toFixed(1)}% / ${(100 * o.accuracy).toFixed(1)}% |`);
    });
  } finally {
    await env.close();
  }
  process.exit(0);
}
const native = JSON.parse(readFileSync(nativeFile, 'utf8'));
// The first visit on a slow link first (its own server and browser; the other runs have not warmed anything).
const visit = await firstVisit();
const loadBefore = loadavg()[0];
const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cell = (name) => (/lstm/.test(name) ? 'LSTM' : /gru/.test(name) ? 'GRU' : 'RNN');
const kind = (name) => (/resnet/.test(name) ? 'residual CNN' : /cnn/.test(name) ? 'CNN'
  : /lang_rev/.test(name) ? `${cell(name)} encoder–decoder` : /lstm|gru|rnn/.test(name) ? cell(name) : 'dense MLP');

const env = await start();
let simd, scalar, ort, page;
try {
  const bench = await env.newPage();
  await bench.goto(`${env.url}bench.html`);
  await bench.locator('#out[data-done]').waitFor({ timeout: 1200000 });
  const text = await bench.locator('#out').textContent();
  if (!text.startsWith('{')) throw new Error(text);
  ({ pkg: simd, 'pkg-scalar': scalar, ort } = JSON.parse(text));
  if (!simd.info.simd || scalar.info.simd) throw new Error('the builds do not differ in SIMD as expected');

  // The page: first decomposed view of the default model in a fresh profile,
  // then click → recomposed and rendered (the page's performance marks).
  const p = await env.newPage();
  await open(p, env.url);
  const firstViewMs = Number(await p.evaluate(() => document.body.dataset.firstViewMs));
  const clicks = [];
  for (const cls of ['3', '5', '8', '3', '5', '8', '1', '1']) {
    await toggle(p, cls);
    clicks.push(await p.evaluate(() => [Number(document.body.dataset.lastComposeMs), Number(document.body.dataset.lastRenderMs)]));
  }
  // Slider → every view updated: a new strength re-derives masks, calibration and scores from the
  // recorded pass (one warm-up move per model, then the median of three).
  const slider = {};
  for (const [name, file] of [['MLP', 'digits_mlp.keras'], ['CNN', 'digits_cnn.keras']]) {
    await composedAfter(p, () => p.locator('#model-picker').selectOption(file));
    const times = [];
    for (const s of [0.2, 0.35, 0.5, 0.35]) {
      const t0 = Date.now();
      await composedAfter(p, async () => {
        await p.locator('#s-strength').fill(String(s));
      });
      times.push(Date.now() - t0);
    }
    slider[name] = times.slice(1);
    await composedAfter(p, async () => {
      await p.locator('#s-strength').fill('0');
    });
  }
  page = { firstViewMs, clicks, slider, chromium: env.browser.version() };
  if (env.errors.length) throw new Error(`page errors: ${env.errors.join('; ')}`);
} finally {
  await env.close();
}

const wasm = readFileSync(join(ROOT, 'www', 'pkg', 'remodule_bg.wasm'));
const glue = readFileSync(join(ROOT, 'www', 'pkg', 'remodule.js'));
const sh = (cmd, ...args) => { try { return execFileSync(cmd, args, { encoding: 'utf8' }).trim(); } catch { return '?'; } };
const cpuModel = sh('lscpu').split('\n').find((l) => l.startsWith('Model name:'))?.split(':')[1].trim() ?? cpus()[0]?.model;
const loadAfter = loadavg()[0];
const lines = [];
const out = (s = '') => { lines.push(s); console.log(s); };

out('# Benchmarks');
out();
out('Generated by `scripts/bench` (do not edit by hand). Single thread everywhere; figures are printed, never asserted.');
out();
out(`- date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`);
out(`- CPU: ${cpuModel}, ${cpus().length} cores (\`lscpu\`); ${sh('uname', '-m')}`);
out(`- ${sh('rustc', '--version')}; Chromium ${page.chromium} (headless); Node ${process.version}; onnxruntime-web ${ort.version || '?'}`);
out(`- engine ${simd.info.version ?? ''}; wasm builds: \`pkg/\` with simd128 (kernels report SIMD ${simd.info.simd ? 'on' : 'off'}), \`pkg-scalar/\` without (${scalar.info.simd ? 'on' : 'off'})`);
const busy = Math.max(loadBefore, loadAfter) > 0.5 * cpus().length;
out(`- caveat: 1-minute load average ${f(loadBefore, 2)} at the start of the browser run, ${f(loadAfter, 2)} at the end, on ${cpus().length} cores — ${busy
  ? 'the machine was busy with other work, so absolute numbers are noisy and runs at different moments (native, each wasm build, ORT-web) saw different loads; read ratios as approximate'
  : 'the machine was close to idle'}.${process.env.BENCH_NOTE ? ` ${process.env.BENCH_NOTE}` : ''}`);

out();
out('## Inference over each model\'s test set (samples/s)');
out();
out('Remodule native, Remodule wasm (SIMD and scalar builds) and onnxruntime-web (wasm backend, `numThreads = 1`, SIMD build) on the');
out('ONNX copy of the same model (`models/onnx/`, `tools/export_onnx_models.py`), all in the same Chromium; one call over the whole test set.');
out('"accuracy" is each runtime\'s top-1 on that set, per output step for the encoder–decoder (equal means the same model ran).');
out();
out('| model | kind | native | wasm SIMD | wasm scalar | ORT-web | Remodule-wasm ÷ ORT-web | wasm-SIMD ÷ native | SIMD ÷ scalar | accuracy Remodule / ORT |');
out('|---|---|---:|---:|---:|---:|---:|---:|---:|---|');
native.rows.forEach((n, i) => {
  const s = simd.rows[i], c = scalar.rows[i], o = ort.rows[i];
  out(`| ${n.model} | ${kind(n.model)} | ${f(n.samples_per_s)} | ${f(s.samples_per_s)} | ${f(c.samples_per_s)} | ${f(o.samples_per_s)} | ${f(s.samples_per_s / o.samples_per_s, 2)} | ${f(s.samples_per_s / n.samples_per_s, 2)} | ${f(s.samples_per_s / c.samples_per_s, 2)} | ${f(100 * s.accuracy, 1)}% / ${f(100 * o.accuracy, 1)}% |`);
});

out();
out('## Decompose all classes ÷ one recorded forward pass over the same samples (goal ≤ 1.2)');
out();
out('| model | technique | native (s) | native | wasm SIMD | wasm scalar |');
out('|---|---|---:|---:|---:|---:|');
native.rows.forEach((n, i) => n.decompose.forEach((d, t) => {
  out(`| ${n.model} | ${d.technique} | ${f(d.decompose_s, 3)} | ${f(d.ratio, 2)} | ${f(simd.rows[i].decompose[t].ratio, 2)} | ${f(scalar.rows[i].decompose[t].ratio, 2)} |`);
}));

out();
out('## Decomposition cost curves (native, synthetic dense models)');
out();
out('Random dense models 64 → width → width → classes (built with `ModelBuilder`), random samples, paper technique, every');
out('sample used; base point 10 classes, 5,000 samples, width 128; each table varies one. The exponent is the least-squares');
out('slope of log(time) over log(x).');
for (const c of native.scaling) {
  out();
  out(`| ${c.by} | decompose all (s) | one recorded pass (s) | ratio |`);
  out('|---:|---:|---:|---:|');
  for (const p of c.points) out(`| ${p[c.by]} | ${f(p.decompose_s, 4)} | ${f(p.pass_s, 4)} | ${f(p.ratio, 2)} |`);
  out();
  out(`Fitted exponent over ${c.by}: decompose **${f(c.decompose_exponent, 2)}**, recorded pass ${f(c.pass_exponent, 2)}, ratio ${f(c.ratio_exponent, 2)}.`);
}

out();
out('## Recompose after one toggle (ms; goal < 1 at 10 × 10k)');
out();
out('Synthetic cached score rows through the engine\'s `compose` (the function every toggle runs).');
out();
out('| modules × samples | native | wasm SIMD | wasm scalar | wasm-SIMD ÷ native |');
out('|---|---:|---:|---:|---:|');
simd.recompose.forEach((r, i) => {
  const n = native.recompose.find((x) => x.modules === r.modules && x.samples === r.samples);
  out(`| ${r.modules} × ${r.samples} | ${f(n?.ms, 3)} | ${f(r.ms, 3)} | ${f(scalar.recompose[i].ms, 3)} | ${f(n?.ms / r.ms, 2)} |`);
});

const composeMs = page.clicks.map((c) => c[0]), renderMs = page.clicks.map((c) => c[1]);
out();
out('## Page');
out();
out('| what | value |');
out('|---|---:|');
out(`| wasm bundle (\`www/pkg/remodule_bg.wasm\`) raw / gzip -9 | ${f(wasm.length / 1024)} KiB / ${f(gzipSync(wasm, { level: 9 }).length / 1024)} KiB |`);
out(`| with the JS glue (\`remodule.js\`) raw / gzip -9 | ${f((wasm.length + glue.length) / 1024)} KiB / ${f((gzipSync(wasm, { level: 9 }).length + gzipSync(glue, { level: 9 }).length) / 1024)} KiB |`);
out(`| time to first decomposed view, default model, fresh profile | ${f(page.firstViewMs)} ms |`);
out(`| click → recomposed and rendered, median of ${composeMs.length} toggles (min–max) | ${f(median(composeMs), 1)} ms (${f(Math.min(...composeMs), 1)}–${f(Math.max(...composeMs), 1)}) |`);
out(`| of which rendering, median | ${f(median(renderMs), 1)} ms |`);
for (const [name, t] of Object.entries(page.slider)) {
  out(`| strength slider released → modules re-derived, rescored and every view updated, digits ${name}, median of ${t.length} | ${f(median(t))} ms |`);
}

for (const line of firstVisitSection(visit)) out(line);

const goal = (ok, text) => out(`- ${ok ? 'met' : '**missed**'}: ${text}`);
out();
out('## Goals (issue 10)');
out();
const vsOrt = native.rows.map((n, i) => [n.model, simd.rows[i].samples_per_s / ort.rows[i].samples_per_s]);
goal(vsOrt.every(([, r]) => r >= 1), `Remodule-wasm ≥ ORT-web on every model (${vsOrt.map(([m, r]) => `${m} ${f(r, 2)}`).join(', ')})`);
const vsNative = native.rows.map((n, i) => [n.model, simd.rows[i].samples_per_s / n.samples_per_s]);
goal(vsNative.every(([, r]) => r >= 0.6), `wasm-SIMD ≥ 0.6 × native (${vsNative.map(([m, r]) => `${m} ${f(r, 2)}`).join(', ')})`);
const ratios = native.rows.flatMap((n) => n.decompose.map((d) => [`${n.model} ${d.technique.split(' ')[0]}`, d.ratio]));
goal(ratios.every(([, r]) => r <= 1.2), `decompose ÷ pass ≤ 1.2, native (${ratios.map(([m, r]) => `${m} ${f(r, 2)}`).join(', ')})`);
const r10 = native.recompose.find((x) => x.modules === 10 && x.samples === 10000).ms;
const w10 = simd.recompose.find((x) => x.modules === 10 && x.samples === 10000).ms;
goal(r10 < 1 && w10 < 1, `recompose < 1 ms at 10 × 10k (native ${f(r10, 3)} ms, wasm SIMD ${f(w10, 3)} ms)`);

if (outFile) writeFileSync(outFile, `${lines.join('\n')}\n`);

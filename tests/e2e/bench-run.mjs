// Runs www/bench.html (Remodule wasm SIMD and scalar, onnxruntime-web) and the
// page timings in headless Chromium, then prints every table with ratios and
// writes them, with the machine description, to the Markdown file given.
// Used by scripts/bench: `node bench-run.mjs NATIVE.json OUT.md`; not a test.
// `node bench-run.mjs --quick [MODEL_WORD,...]` (BENCH_QUICK=1 scripts/bench):
// only the inference table for wasm SIMD vs ORT-web, printed, no file written.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const [nativeFile, outFile, nativeAllFile, roundsDir] = process.argv.slice(2);
const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const cell = (name) => (/lstm/.test(name) ? 'LSTM' : /gru/.test(name) ? 'GRU' : 'RNN');
const kind = (name) => (/resnet/.test(name) ? 'residual CNN' : /cnn/.test(name) ? 'CNN'
  : /lang_rev/.test(name) ? `${cell(name)} encoder–decoder` : /lstm|gru|rnn/.test(name) ? cell(name) : 'dense MLP');

// Remodule native and onnxruntime native from scripts/bench's rounds (DIR/remodule-1-R.json, remodule-all-R.json,
// ort-1-R.json, ort-all-R.json, peak-1.json, peak-all.json): each runtime's best round per model, the ratios and
// GFLOP/s against the machine's peak. Returns the Markdown lines and the ratios for the goals.
function nativeVsOrt(dir) {
  const files = readdirSync(dir);
  const best = (prefix) => {
    const m = new Map();
    let meta = {};
    for (const file of files.filter((x) => x.startsWith(`${prefix}-`) && /-\d+\.json$/.test(x))) {
      const j = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      meta = j;
      for (const r of j.rows) if (!m.has(r.model) || r.samples_per_s > m.get(r.model).samples_per_s) m.set(r.model, r);
    }
    return [m, meta, files.filter((x) => x.startsWith(`${prefix}-`)).length];
  };
  const [r1, meta1, rounds] = best('remodule-1'), [rAll, metaAll] = best('remodule-all');
  const [o1, ort1] = best('ort-1'), [oAll, ortAll] = best('ort-all');
  const peak = (t) => JSON.parse(readFileSync(join(dir, `peak-${t}.json`), 'utf8'));
  const [p1, pAll] = [peak(1), peak('all')];
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = Number(info.match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1]);
  const flags = info.match(/^flags\s*:(.*)$/m)?.[1].split(' ') ?? [];
  const lanes = flags.includes('avx2') && flags.includes('fma') ? 8 : 4;
  // Per core: 2 FMA units × float32 lanes × 2 flops per FMA × clock (AVX2 + FMA, what the x86 kernels use).
  const corePeak = 2 * lanes * 2 * mhz / 1e3;
  const cores = cpus().length;
  const lines = [];
  const peakRef = Math.max(corePeak, p1.gflops);
  const out = (x = '') => lines.push(x);
  out(`Remodule native (\`remodule --threads 1 bench --inference-only\`, and on every core) and onnxruntime ${ort1.onnxruntime} native (Python, CPU`);
  out('provider, `intra_op_num_threads` = 1 and = every core; `tools/ort_bench.py`) on the same ONNX copies and the same test');
  out(`samples, timed the same way; ${rounds} rounds taking turns (Remodule 1, Remodule all, ORT 1, ORT all), best round each.`);
  out('GFLOP/s = multiply-adds × 2 per sample (`flops_per_sample`, the same count for both) × samples/s.');
  out(`Peak, on paper: ${f(corePeak, 1)} GFLOP/s per core = 2 FMA units × ${lanes} float32 lanes × 2 flops × ${f(mhz)} MHz (\`/proc/cpuinfo\`), ${f(corePeak * cores, 1)} on ${cores} cores;`);
  out(`measured: float32 GEMM (${p1.blas}, OpenBLAS) ${f(p1.gflops, 1)} GFLOP/s on 1 thread, ${f(pAll.gflops, 1)} on ${pAll.threads}. The "% of peak" column reads against`);
  out(`the larger of the 1-core figures (${f(peakRef, 1)}): a virtual machine's \`cpu MHz\` can be its base clock, below the one it runs at.`);
  out();
  out(`| model | kind | Remodule, 1 thread | ORT, 1 thread | Remodule ÷ ORT, 1 thread | Remodule, ${metaAll.threads} threads | ORT, ${ortAll.threads} threads | Remodule ÷ ORT, ${metaAll.threads} threads | GFLOP/s Remodule / ORT, 1 thread | % of 1-core peak, Remodule / ORT | ORT accuracy |`);
  out('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const ratios = [];
  for (const [model, a] of r1) {
    const o = o1.get(model), aa = rAll.get(model), oa = oAll.get(model);
    const perSample = a.gflops / a.samples_per_s; // GFLOP per sample
    const [g1, go] = [a.gflops, perSample * o?.samples_per_s];
    ratios.push([model, a.samples_per_s / o?.samples_per_s]);
    out(`| ${model} | ${kind(model)} | ${f(a.samples_per_s)} | ${f(o?.samples_per_s)} | ${f(a.samples_per_s / o?.samples_per_s, 2)} | ${f(aa?.samples_per_s)} | ${f(oa?.samples_per_s)} | ${f(aa?.samples_per_s / oa?.samples_per_s, 2)} | ${f(g1, 1)} / ${f(go, 1)} | ${f(100 * g1 / peakRef)}% / ${f(100 * go / peakRef)}% | ${f(100 * o?.accuracy, 1)}% |`);
  }
  return { lines, ratios, kernels: meta1.kernels };
}

if (nativeFile === '--native') {
  const { lines, kernels } = nativeVsOrt(outFile);
  console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; kernels: ${kernels}\n`);
  console.log(lines.join('\n'));
  process.exit(0);
}
// The browser harness (Playwright) only past the native-only mode, which runs without npm packages.
const { ROOT, start } = await import('./harness.mjs');
const { composedChange: composedAfter, open, toggle } = await import('./page.mjs');
const { firstVisit, firstVisitSection } = await import('./bench-firstvisit.mjs');
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
const nativeAll = nativeAllFile ? JSON.parse(readFileSync(nativeAllFile, 'utf8')) : null;
const vsOrtNative = roundsDir ? nativeVsOrt(roundsDir) : null;
// The first visit on a slow link first (its own server and browser; the other runs have not warmed anything).
const visit = await firstVisit();
const loadBefore = loadavg()[0];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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
out('Generated by `scripts/bench` (do not edit by hand). One thread unless a column says otherwise; figures are printed, never asserted.');
out();
out(`- date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`);
out(`- CPU: ${cpuModel}, ${cpus().length} cores (\`lscpu\`); ${sh('uname', '-m')}`);
out(`- ${sh('rustc', '--version')}; Chromium ${page.chromium} (headless); Node ${process.version}; onnxruntime-web ${ort.version || '?'}`);
out(`- engine ${simd.info.version ?? ''}; wasm builds: \`pkg/\` with simd128 (kernels report SIMD ${simd.info.simd ? 'on' : 'off'}), \`pkg-scalar/\` without (${scalar.info.simd ? 'on' : 'off'})`);
const busy = Math.max(loadBefore, loadAfter) > 0.5 * cpus().length;
out(`- caveat: 1-minute load average ${f(loadBefore, 2)} at the start of the browser run, ${f(loadAfter, 2)} at the end, on ${cpus().length} cores — ${busy
  ? 'the machine was busy with other work, so absolute numbers are noisy and runs at different moments (native, each wasm build, ORT-web) saw different loads; read ratios as approximate'
  : 'the machine was close to idle'}.${process.env.BENCH_NOTE ? ` ${process.env.BENCH_NOTE}` : ''}`);

out(`- native kernels: ${native.kernels}; native threads: 1${nativeAll ? ` and ${nativeAll.threads} (every core)` : ''}`);
if (vsOrtNative) {
  out();
  out('## Native inference: Remodule vs onnxruntime (samples/s)');
  out();
  vsOrtNative.lines.forEach((l) => out(l));
}

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
const tAll = nativeAll?.threads ?? '?';
out(`Native on 1 thread and on every core (${tAll}: \`remodule bench\`; the recorded pass runs its batches in parallel, the classes' masks too; results identical). The two times of a row, and so the speed-up, come from one run of the every-core benchmark, which times decomposing on 1 thread in turns with decomposing on every core (times: the mean turn; speed-up: best turn ÷ best turn, since a turn another process slows slows two threads more than one); the ratio columns from the 1-thread run.`);
out();
out(`| model | technique | native, 1 thread (s) | native, ${tAll} threads (s) | speed-up | native | wasm SIMD | wasm scalar |`);
out('|---|---|---:|---:|---:|---:|---:|---:|');
native.rows.forEach((n, i) => n.decompose.forEach((d, t) => {
  const a = nativeAll?.rows[i]?.decompose[t];
  const one = a?.one_thread_s ?? d.decompose_s;
  out(`| ${n.model} | ${d.technique} | ${f(one, 3)} | ${f(a?.decompose_s, 3)} | ${f(a?.speedup ?? one / a?.decompose_s, 2)} | ${f(d.ratio, 2)} | ${f(simd.rows[i].decompose[t].ratio, 2)} | ${f(scalar.rows[i].decompose[t].ratio, 2)} |`);
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
out('## Goals (issues 10 and 21)');
out();
const vsOrt = native.rows.map((n, i) => [n.model, simd.rows[i].samples_per_s / ort.rows[i].samples_per_s]);
goal(vsOrt.every(([, r]) => r >= 1), `Remodule-wasm ≥ ORT-web on every model (${vsOrt.map(([m, r]) => `${m} ${f(r, 2)}`).join(', ')})`);
const vsNative = native.rows.map((n, i) => [n.model, simd.rows[i].samples_per_s / n.samples_per_s]);
goal(vsNative.every(([, r]) => r >= 0.6), `wasm-SIMD ≥ 0.6 × native (${vsNative.map(([m, r]) => `${m} ${f(r, 2)}`).join(', ')})`);
const ratios = native.rows.flatMap((n) => n.decompose.map((d) => [`${n.model} ${d.technique.split(' ')[0]}`, d.ratio]));
goal(ratios.every(([, r]) => r <= 1.2), `decompose ÷ pass ≤ 1.2, native (${ratios.map(([m, r]) => `${m} ${f(r, 2)}`).join(', ')})`);
if (vsOrtNative) {
  const r = vsOrtNative.ratios;
  goal(r.every(([, x]) => x >= 0.8), `Remodule native ≥ 0.8 × onnxruntime native, 1 thread (goal 1.0; ${r.map(([m, x]) => `${m} ${f(x, 2)}`).join(', ')})`);
}
if (nativeAll) {
  const cnn = native.rows.flatMap((n, i) => (/cnn|resnet/.test(n.model) ? n.decompose.map((d, t) => {
    const a = nativeAll.rows[i].decompose[t];
    return [`${n.model} ${d.technique.split(' ')[0]} (${/reference/.test(d.technique) ? 'reference' : 'paper'})`, a.speedup ?? (a.one_thread_s ?? d.decompose_s) / a.decompose_s];
  }) : []));
  goal(cnn.every(([, x]) => x >= 1.7), `decomposition on ${nativeAll.threads} cores ≥ 1.7 × 1 core for the CNNs (${cnn.map(([m, x]) => `${m} ${f(x, 2)}`).join(', ')})`);
}
const r10 = native.recompose.find((x) => x.modules === 10 && x.samples === 10000).ms;
const w10 = simd.recompose.find((x) => x.modules === 10 && x.samples === 10000).ms;
goal(r10 < 1 && w10 < 1, `recompose < 1 ms at 10 × 10k (native ${f(r10, 3)} ms, wasm SIMD ${f(w10, 3)} ms)`);

if (outFile) writeFileSync(outFile, `${lines.join('\n')}\n`);

// First visit on a slow school link, for scripts/bench (measured and printed, never asserted).
// A static server over a site directory that serves as a static host does — gzip for text, the
// engine (wasm) and JSON; zip-based files (.npz, .keras) and images as stored — and emulates the
// link for everything the browser fetches, the page's worker included: each response waits one
// round trip, and all response bytes share one pipe of the given rate. Bytes are what the server
// sends (headers and bodies). `node bench-firstvisit.mjs [SITE_DIR]` prints one table.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { ROOT } from './harness.mjs';

export const LINK = { mbit: 1.6, rttMs: 150 };

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.webmanifest': 'application/manifest+json', '.svg': 'image/svg+xml', '.wasm': 'application/wasm', '.png': 'image/png',
};
const GZIP = new Set(['.html', '.js', '.mjs', '.css', '.json', '.webmanifest', '.svg', '.wasm']);

/** Serves `dir` over the emulated link; `log` gets {t (epoch ms), path, bytes} per response. */
export function serve(dir, link) {
  const log = [];
  const bytesPerMs = (link.mbit * 1e6) / 8 / 1000;
  let pipeFree = 0; // when the shared pipe has sent everything queued so far (epoch ms)
  const gz = new Map();
  const server = createServer((req, res) => {
    const t = Date.now();
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^[/]+/, '') || 'index.html';
    const file = join(dir, path);
    let body;
    let headers;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      const ext = extname(file);
      const etag = `"${st.size}-${st.mtimeMs}"`;
      headers = { 'Content-Type': TYPES[ext] ?? 'application/octet-stream', 'Cache-Control': 'no-cache', ETag: etag };
      if (req.headers['if-none-match'] === etag) {
        res.statusCode = 304;
        body = Buffer.alloc(0);
      } else if (GZIP.has(ext) && /gzip/.test(req.headers['accept-encoding'] ?? '')) {
        if (!gz.has(file)) gz.set(file, gzipSync(readFileSync(file), { level: 9 }));
        body = gz.get(file);
        headers['Content-Encoding'] = 'gzip';
      } else {
        body = readFileSync(file);
      }
    } catch {
      body = Buffer.from('not found');
      headers = { 'Content-Type': 'text/plain' };
      res.statusCode = 404;
    }
    headers['Content-Length'] = body.length;
    const size = body.length + 200; // + the status line and headers, about
    log.push({ t, path, bytes: size });
    // One round trip before the first byte, then the bytes through the shared pipe.
    const start = Math.max(t + link.rttMs, pipeFree);
    pipeFree = start + size / bytesPerMs;
    setTimeout(() => { res.writeHead(res.statusCode, headers); res.end(body); }, pipeFree - t);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, log, url: `http://127.0.0.1:${server.address().port}/` })));
}

/** Time from navigation to the first decomposed view (a composition shown, the link button live), and when that was (epoch ms). */
const firstView = (page) => page.waitForFunction(() => {
  const done = document.getElementById('app')?.dataset.composed && document.getElementById('share-btn')?.disabled === false;
  return done && { ms: performance.now(), at: performance.timeOrigin + performance.now() };
}, null, { timeout: 300000, polling: 50 }).then((h) => h.jsonValue());

/**
 * Cold (fresh profile) and warm (the same profile again, once its offline copy is saved) first
 * visits of `dir`: {cold: {ms, bytes, files}, warm: {...} | null, link}.
 */
export async function firstVisit(dir = join(ROOT, 'www'), link = LINK) {
  const { server, log, url } = await serve(dir, link);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run'] });
  const tally = (from, to) => {
    const rows = log.filter((r) => r.t >= from && r.t <= to);
    return { bytes: rows.reduce((a, r) => a + r.bytes, 0), files: rows.length, largest: [...rows].sort((a, b) => b.bytes - a.bytes).slice(0, 3) };
  };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    if (process.env.BENCH_DEBUG) page.on('console', (m) => console.log('page:', m.text()));
    const t0 = Date.now();
    await page.goto(url);
    const cold = await firstView(page);
    const coldRow = { ms: cold.ms, ...tally(t0, cold.at) };
    // Warm: the offline copy saved, then a new visit (a reload) in the same profile.
    // Without a service worker (the page before it), a warm visit is the HTTP cache's (revalidated: 304s).
    const offline = existsSync(join(dir, 'sw.js'));
    let warmRow = null;
    const saved = !offline || await page.locator('body[data-offline="ready"]').waitFor({ timeout: Number(process.env.BENCH_SW_TIMEOUT ?? 600000) }).then(() => true, () => false);
    if (process.env.BENCH_DEBUG) console.log('offline state:', await page.evaluate(() => document.body.dataset.offline));
    if (saved) {
      const t1 = Date.now();
      await page.reload();
      const warm = await firstView(page);
      // Everything the warm visit asked of the server, also after its first view (the update check).
      await page.waitForTimeout(1000);
      warmRow = { ms: warm.ms, ...tally(t1, Date.now()) };
    }
    return { cold: coldRow, warm: warmRow, link, offline };
  } finally {
    await browser.close();
    server.close();
  }
}

/** Markdown rows for a firstVisit() result. */
export function firstVisitRows(r, label = '') {
  const kb = (b) => `${(b / 1024).toFixed(0)} KiB`;
  const rows = [`| cold${label}: fresh profile, nothing cached | ${(r.cold.ms / 1000).toFixed(1)} s | ${kb(r.cold.bytes)} in ${r.cold.files} files (largest: ${r.cold.largest.map((x) => `${x.path} ${kb(x.bytes)}`).join(', ')}) |`];
  rows.push(r.warm
    ? `| warm${label}: the same profile again (${r.offline ? 'offline copy' : 'HTTP cache, revalidated'}) | ${(r.warm.ms / 1000).toFixed(2)} s | ${kb(r.warm.bytes)} in ${r.warm.files} files${r.warm.files ? ` (${r.warm.largest.map((x) => x.path).join(', ')})` : ''} |`
    : `| warm${label} | – | no offline copy was saved |`);
  return rows;
}

/** The BENCHMARKS.md section for a firstVisit() result: the table and issue 18's goals. */
export function firstVisitSection(r) {
  const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;
  const goal = (ok, text) => `- ${ok ? 'met' : '**missed**'}: ${text}`;
  return ['', `## First visit over a school link (${r.link.mbit} Mbit/s, ${r.link.rttMs} ms RTT)`, '',
    'The default model until its first decomposed view (composition shown, link button live), from navigation start. The bench\'s static',
    'server gzips text, JSON and the wasm as a static host does (`.npz`/`.keras` are zip files, sent as stored) and emulates the link for',
    'every request, the engine worker\'s included: one round trip before each response, all bytes through one shared pipe.',
    'Cold: a fresh profile. Warm: the same profile again once the service worker has saved the offline copy.', '',
    '| visit | time to first decomposed view | transferred before it |', '|---|---:|---|', ...firstVisitRows(r), '',
    'Goals (issue 18):', '',
    goal(r.cold.bytes <= 1.5 * 1024 * 1024, `≤ 1.5 MB transferred before the first decomposed view (${kib(r.cold.bytes)})`),
    goal(r.cold.ms <= 10000, `≤ 10 s cold on the throttled link (${(r.cold.ms / 1000).toFixed(1)} s)`),
    goal(r.warm && r.warm.ms <= 1000, `≤ 1 s warm (${r.warm ? `${(r.warm.ms / 1000).toFixed(2)} s` : 'no offline copy'})`)];
}

// `node bench-firstvisit.mjs [SITE_DIR] [--write BENCHMARKS.md]`: prints the section; --write puts it
// into that file in place of the one there (scripts/bench writes the whole file).
if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const w = args.indexOf('--write');
  const file = w >= 0 ? args.splice(w, 2)[1] : null;
  const lines = firstVisitSection(await firstVisit(args[0] ?? join(ROOT, 'www')));
  console.log(lines.join('\n'));
  if (file) {
    const text = readFileSync(file, 'utf8');
    const at = text.indexOf('\n## First visit over a school link');
    const end = at < 0 ? -1 : text.indexOf('\n## ', at + 1);
    const section = lines.slice(1).join('\n');
    writeFileSync(file, at < 0 ? `${text.trimEnd()}\n\n${section}\n` : `${text.slice(0, at + 1)}${section}\n${end < 0 ? '' : text.slice(end)}`);
  }
}

// Shared set-up for the page tests: a static server over www/ (Python's
// http.server, as a user would run it) and Debian's Chromium via playwright-core.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OUT = join(ROOT, 'test-output', 'e2e');
/** The CLI the page is compared with: the test build `cargo test` leaves (scripts/test), or REMODULE_BIN. */
export const BIN = process.env.REMODULE_BIN ?? join(ROOT, 'target', 'debug', 'remodule');
mkdirSync(OUT, { recursive: true });

const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

async function waitForServer(url, ms = 15000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try { if ((await fetch(url)).ok) return; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} did not start`);
}

/** Starts server (over `dir`, default www/) + browser; returns {url, browser, newPage, close}. */
export async function start({ dir = join(ROOT, 'www') } = {}) {
  const port = await freePort();
  const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir],
    { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/`;
  await waitForServer(url);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const errors = [];
  function watch(page) {
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    return page;
  }
  /** A page in a fresh profile; `newPage.in(context)` opens another tab of the same profile. */
  async function newPage(viewport = { width: 1280, height: 800 }) {
    const context = await browser.newContext({ viewport });
    return watch(await context.newPage());
  }
  newPage.in = async (context) => watch(await context.newPage());
  async function close() {
    await browser.close();
    server.kill();
  }
  return { url, browser, newPage, close, errors };
}

export function shot(page, name) {
  return page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

/** The native CLI's JSON answer (the page's numbers are checked against it). */
export function cli(...args) {
  return JSON.parse(execFileSync(BIN, args, { cwd: ROOT, encoding: 'utf8' }));
}

/** A fraction as the page prints it. */
/**
 * Writes a composition file (docs/COMPOSE.md) as OUT/NAME.json and returns its path.
 * `models`: {key: [model, data, settings?]} with repository paths; `modules`: [[key, [classes]], …].
 */
export function compositionFile(name, models, modules) {
  const plan = {
    models: Object.fromEntries(Object.entries(models).map(([k, [model, data, settings]]) =>
      [k, { model: join(ROOT, model), data: join(ROOT, data), ...(settings ? { settings } : {}) }])),
    modules: modules.map(([model, classes]) => ({ model, classes })),
  };
  const path = join(OUT, `${name}.json`);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path, JSON.stringify(plan));
  return path;
}

// The page gets the engine's f32 numbers as they are (0.9675 arrives as 0.96749997…); the CLI's
// JSON prints them shortest ("0.9675"). Rounded to 32 bits first, both show the same text.
export const pctText = (x) => `${(100 * Math.fround(x)).toFixed(1)}%`;

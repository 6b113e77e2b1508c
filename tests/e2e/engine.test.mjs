import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, start, shot } from './harness.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

test('the worker reports the engine ready with its version and SIMD on', async () => {
  const page = await env.newPage();
  await page.goto(env.url);
  const status = page.locator('#engine-status[data-ready]');
  await status.waitFor({ timeout: 30000 });
  const text = await status.textContent();
  assert.match(text, /^Engine \d+\.\d+\.\d+ ready · SIMD on$/);
  await shot(page, 'engine-ready');
});

test('wasm bundle size (printed)', () => {
  const wasm = readFileSync(join(ROOT, 'www', 'pkg', 'remodule_bg.wasm'));
  assert.ok(wasm.length > 0);
  console.log(`# wasm bundle: ${(wasm.length / 1024).toFixed(0)} KiB raw, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB gzipped`);
});

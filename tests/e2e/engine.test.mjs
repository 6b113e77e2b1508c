import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { start, shot } from './harness.mjs';

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

// "Inside a module": the kept-unit pictures and the Jaccard table agree with
// the module statistics the CLI reports.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, start, shot } from './harness.mjs';
import { open } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });


/** Kept and total units over the pictured layers, from their captions. */
async function keptShare(page) {
  const caps = await page.locator('#units figcaption').allTextContents();
  const [k, t] = caps.map((c) => c.match(/kept (\d+) of (\d+)/).slice(1).map(Number)).reduce(([a, b], [x, y]) => [a + x, b + y], [0, 0]);
  return k / t;
}

test('each module\'s kept units are pictured per layer, and modules are compared by Jaccard', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#units figure').first().waitFor();
  const report = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--json');
  assert.equal(await page.locator('#units figure').count(), 2); // the MLP's two hidden Dense layers
  assert.ok(Math.abs(await keptShare(page) - report.modules[0].jaccard) < 1e-6);
  await page.locator('#units-class').selectOption({ label: '7' });
  await page.waitForFunction((j) => {
    const caps = [...document.querySelectorAll('#units figcaption')].map((c) => c.textContent.match(/kept (\d+) of (\d+)/).slice(1).map(Number));
    const [k, t] = caps.reduce(([a, b], [x, y]) => [a + x, b + y], [0, 0]);
    return Math.abs(k / t - j) < 1e-6;
  }, report.modules[7].jaccard);
  assert.equal(await page.locator('#jaccard tbody tr').count(), 10);
  const diagonal = await page.evaluate(() => [...document.querySelectorAll('#jaccard tbody tr')].map((r, i) => r.querySelectorAll('td')[i].textContent));
  assert.deepEqual(diagonal, Array(10).fill('1.00'));
  // An LSTM's units are pictured per time step.
  await page.locator('#model-picker').selectOption('lang_a_lstm.keras');
  await page.waitForFunction(() => document.querySelector('#units figcaption')?.textContent.includes('32×32 steps × units'));
  await page.locator('#units-panel').scrollIntoViewIfNeeded();
  await shot(page, 'units-lstm');
  assert.deepEqual(env.errors, []);
});

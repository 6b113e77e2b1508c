// Cancelling a decomposition: the worker is restarted, the page keeps what it
// showed before, and the restored engine answers exactly as the CLI does.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, pctText, start, shot } from './harness.mjs';
import { open, pageState, toggle } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

/** Waits until a decomposition whose label contains `what` is under way, and cancels it. */
async function cancelWhile(page, what) {
  await page.waitForFunction((w) => !document.getElementById('progress-wrap').hidden
    && document.getElementById('progress-text').textContent.includes(w), what, { timeout: 60000 });
  assert.equal(await page.locator('#cancel-btn').isVisible(), true);
  await page.locator('#cancel-btn').click();
  await page.locator('body[data-cancel="done"]').waitFor({ timeout: 90000 });
}

test('cancel a slow decomposition: the previous composition stays and the page keeps working', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await toggle(page, '3');
  const kept = await pageState(page);
  const digest = await page.locator('#app').getAttribute('data-mask-digest');

  // The residual CNN is the slowest bundled model to decompose.
  await page.locator('#model-picker').selectOption('digits_resnet.keras');
  await cancelWhile(page, 'residual');
  assert.match(await page.locator('#cancel-note').textContent(), /cancelled/i);
  assert.equal(await page.locator('#progress-wrap').isVisible(), false);
  assert.equal(await page.locator('#error-banner').isVisible(), false);
  await shot(page, 'cancel-restored');
  // Everything the user saw is back: model, cards, numbers, matrix; same masks.
  assert.deepEqual(await pageState(page), kept);
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), digest);

  // The restarted engine composes as the CLI does.
  await toggle(page, '5');
  const expected = cli('compose', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--classes', '0,1,2,4,6,7,8,9', '--json');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(expected.top1));

  // New work after the restart: settings that make the small CNN slow, cancelled
  // too; the settings and models decomposed with the old ones stay.
  await page.locator('#settings summary').click();
  await page.locator('#model-picker').selectOption('digits_cnn.keras');
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('small CNN'), null, { timeout: 60000 });
  const cnn = await pageState(page);
  await page.locator('#s-samples_per_class').fill('100000');
  await page.locator('#s-tangling_ratio').fill('10');
  await page.locator('#s-apply').click();
  await cancelWhile(page, 'CNN');
  assert.equal(await page.locator('#s-samples_per_class').inputValue(), '1000');
  assert.deepEqual(await pageState(page), cnn);
  const report = cli('report', 'models/digits_cnn.keras', '--data', 'data/digits.npz', '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  await toggle(page, '0');
  assert.notEqual(await page.locator('#composed-acc').textContent(), cnn.composed);
  assert.deepEqual(env.errors, []);
});

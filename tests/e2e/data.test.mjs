// "Evaluate on your data": a .npz written by numpy (tests/e2e/fixtures,
// tools/make_data_fixture.py) is decomposed and evaluated in the page exactly
// as the CLI does with the same file; data that does not fit, or is not a data
// set at all, gets a readable error and the page keeps working.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cli, pctText, start, shot } from './harness.mjs';
import { composedChange, open, toggle } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

const FIXTURE = join(ROOT, 'tests', 'e2e', 'fixtures', 'digits_small.npz');

async function expectError(page, upload, pattern) {
  // Close a banner left by the previous case (a click on the hidden button would wait its 30 s timeout).
  if (await page.locator('#error-close').isVisible()) await page.locator('#error-close').click();
  await page.evaluate(() => { document.getElementById('error-banner').hidden = true; });
  await upload();
  await page.locator('#error-banner:not([hidden])').waitFor({ timeout: 30000 });
  assert.match(await page.locator('#error-text').textContent(), pattern);
}

test('an uploaded .npz: the model is decomposed and evaluated on it as the CLI does; bad data is refused', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  // Until the new composition is in, the scores still show the bundled data set's (a race seen once in CI).
  await composedChange(page, () => page.locator('#data-upload').setInputFiles(FIXTURE));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('on digits_small.npz'), null, { timeout: 60000 });
  const report = cli('report', 'models/digits_mlp.keras', '--data', FIXTURE, '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  assert.match(await page.locator('#model-info').textContent(), /digits_small\.npz \(your data\) \(400 train \/ 300 test\)/);
  // The confusion matrix counts the file's 300 test images.
  const cells = await page.locator('#matrix tbody td:not(.acc)').allTextContents();
  assert.equal(cells.reduce((a, t) => a + Number(t || 0), 0), 300);
  await toggle(page, '3');
  const three = cli('compose', 'models/digits_mlp.keras', '--data', FIXTURE, '--classes', '0,1,2,4,5,6,7,8,9', '--json');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(three.top1));
  await shot(page, 'data-upload');

  // A data set of another input shape, a file that is no .npz inside, a cut-off one.
  const composed = await page.locator('#composed-acc').textContent();
  await expectError(page, () => page.locator('#data-upload').setInputFiles(join(ROOT, 'data', 'lang_a.npz')), /shape/i);
  await expectError(page, () => page.locator('#data-upload').setInputFiles({ name: '<b>evil</b>.npz', mimeType: 'application/octet-stream', buffer: Buffer.from('PK\x03\x04 not a zip at all') }), /zip|npz|archive|invalid/i);
  assert.equal(await page.locator('#error-text b').count(), 0);
  const cut = readFileSync(FIXTURE).subarray(0, 5000);
  await expectError(page, () => page.locator('#data-upload').setInputFiles({ name: 'cut.npz', mimeType: 'application/octet-stream', buffer: cut }), /zip|npz|archive|invalid|truncated|end/i);
  await expectError(page, () => page.locator('#data-upload').setInputFiles({ name: 'data.csv', mimeType: 'text/csv', buffer: Buffer.from('1,2,3') }), /must be a \.npz/);
  // Links cannot carry the uploaded data; the page says so.
  await expectError(page, () => page.locator('#share-btn').click(), /cannot carry a data set you uploaded/);
  await shot(page, 'data-upload-refused');
  // Still the same view, and it still works.
  assert.equal(await page.locator('#composed-acc').textContent(), composed);
  assert.match(await page.locator('#model-info strong').textContent(), /on digits_small\.npz/);
  await toggle(page, '3');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  // Back to the bundled data set.
  await page.locator('#model-picker').selectOption('digits_cnn.keras');
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('small CNN'), null, { timeout: 60000 });
  assert.match(await page.locator('#model-info').textContent(), /1000 test/);
});

test('float data is fed as stored, the input scale beside the upload overrides the rule, and a chance-level result is flagged', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  // Floats in [0, 1] as a NumPy user saves them (tools/make_layer_fixtures.py): no scale to give.
  const FLOAT = join(ROOT, 'tests', 'fixtures', 'layers', 'digits_float.npz');
  await composedChange(page, () => page.locator('#data-upload').setInputFiles(FLOAT));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('on digits_float.npz'), null, { timeout: 60000 });
  const asStored = cli('report', 'models/digits_mlp.keras', '--data', FLOAT, '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), asStored.mask_digest);
  assert.equal(await page.locator('#model-acc').textContent(), pctText(asStored.model_accuracy));
  assert.match(await page.locator('#model-input').textContent(), /as stored/);
  assert.equal(await page.locator('#model-notice').isHidden(), true);
  // A scale typed beside the upload wins, as --scale does; at chance the page says why.
  await page.locator('#data-scale').fill('0.001');
  await composedChange(page, () => page.locator('#data-upload').setInputFiles(FLOAT));
  await page.locator('#model-notice:not([hidden])').waitFor({ timeout: 60000 });
  const given = cli('report', 'models/digits_mlp.keras', '--data', FLOAT, '--scale', '0.001', '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), given.mask_digest);
  assert.equal(await page.locator('#model-acc').textContent(), pctText(given.model_accuracy));
  assert.match(await page.locator('#model-notice').textContent(), /chance.*× 0\.001 \(as given\)/);
  await shot(page, 'data-upload-chance');
  // Not a number: refused, naming the field; the view stays.
  await page.locator('#data-scale').fill('0');
  await expectError(page, () => page.locator('#data-upload').setInputFiles(FLOAT), /input scale must be a non-zero number/);
  assert.equal(await page.locator('#model-acc').textContent(), pctText(given.model_accuracy));
});

test('an IDX images file with its labels file, chosen together, is a data set too', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  const images = join(ROOT, 'tests', 'e2e', 'fixtures', 'digits_small-images-idx3-ubyte');
  const labels = join(ROOT, 'tests', 'e2e', 'fixtures', 'digits_small-labels-idx1-ubyte');
  // One file alone is not a data set; labels that do not match the images are refused by the engine.
  await expectError(page, () => page.locator('#data-upload').setInputFiles(images), /IDX images with their labels/);
  const short = readFileSync(labels).subarray(0, 60);
  await expectError(page, () => page.locator('#data-upload').setInputFiles([{ name: 'digits_small-images-idx3-ubyte', mimeType: 'application/octet-stream', buffer: readFileSync(images) }, { name: 'short-labels-idx1-ubyte', mimeType: 'application/octet-stream', buffer: short }]), /IDX|labels|bytes/i);
  // The order the files are chosen in does not matter.
  await page.locator('#data-upload').setInputFiles([labels, images]);
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('on digits_small-images-idx3-ubyte'), null, { timeout: 60000 });
  const report = cli('report', 'models/digits_mlp.keras', '--data', images, '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  assert.match(await page.locator('#model-info').textContent(), /\(100 train \/ 100 test\)/);
  // Cancelling a decomposition restarts the engine: the uploaded data comes back with it.
  await page.locator('#model-picker').selectOption('digits_resnet.keras');
  await page.waitForFunction(() => !document.getElementById('progress-wrap').hidden && document.getElementById('progress-text').textContent.includes('residual'), null, { timeout: 60000 });
  await page.locator('#cancel-btn').click();
  await page.locator('body[data-cancel="done"]').waitFor({ timeout: 90000 });
  assert.match(await page.locator('#model-info strong').textContent(), /on digits_small-images-idx3-ubyte/);
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  await toggle(page, '0');
  const no0 = cli('compose', 'models/digits_mlp.keras', '--data', images, '--classes', '1,2,3,4,5,6,7,8,9', '--json');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(no0.top1));
  assert.deepEqual(env.errors, []);
});

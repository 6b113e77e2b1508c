// The page's core loop, end to end in Chromium, checked against the CLI.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cli, pctText, start, shot } from './harness.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });


async function openDefault(page) {
  await page.goto(env.url);
  await page.locator('#app[data-composed]').waitFor({ timeout: 60000 });
}

/** Picks a bundled model and waits until it is shown decomposed and composed. */
async function selectModel(page, file, titlePart) {
  await page.locator('#model-picker').selectOption(file);
  await page.waitForFunction((t) => document.querySelector('#model-info strong')?.textContent.includes(t), titlePart);
  await page.locator('#app[data-composed]').waitFor();
}

test('first visit shows the default model decomposed, with composed accuracy from the engine', async () => {
  const page = await env.newPage();
  await openDefault(page);
  const report = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--json');
  assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  assert.equal(await page.locator('.module').count(), 10);
  // The masks computed in wasm are bit-identical to the native CLI's.
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  assert.equal(await page.locator('#matrix tbody tr').count(), 10);
  console.log(`# time to first decomposed view: ${await page.evaluate(() => document.body.dataset.firstViewMs)} ms`);
  await shot(page, 'first-visit');
  assert.deepEqual(env.errors, []);
});

test('removing modules gives the composed accuracy the CLI computes for that set', async () => {
  const page = await env.newPage();
  await openDefault(page);
  const before = await page.locator('#app').getAttribute('data-composed');
  for (const cls of ['3', '5', '8']) {
    await page.locator(`.module[data-class="${cls}"] .toggle`).click();
  }
  await page.waitForFunction((b) => document.getElementById('app').dataset.composed !== b, before);
  await page.waitForFunction(() => document.querySelectorAll('#matrix tbody tr').length === 7);
  const expected = cli('compose', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--classes', '0,1,2,4,6,7,9', '--json');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(expected.top1));
  assert.equal(await page.locator('#model-acc').textContent(), pctText(expected.model_accuracy));
  assert.equal(await page.locator('#model-acc-label').textContent(), 'Model · same 7 classes');
  assert.equal(await page.locator('.module.off').count(), 3);
  console.log(`# click-to-update: ${await page.evaluate(() => document.body.dataset.lastComposeMs)} ms (of which rendering ${await page.evaluate(() => document.body.dataset.lastRenderMs)} ms)`);
  await shot(page, 'three-removed');
});

test("replacing the faulty model's 7-module raises the 7 row of the confusion matrix", async () => {
  const page = await env.newPage();
  await openDefault(page);
  await selectModel(page, 'digits_mlp_faulty.keras', 'faulty');
  const sevenCorrect = () => page.locator('#matrix tbody tr[data-class="7"] td').nth(7).textContent().then((t) => Number(t || 0));
  const before = await sevenCorrect();
  await page.locator('.module[data-class="7"] select.source').selectOption('digits_mlp.keras');
  await page.waitForFunction(() => document.querySelector('.module[data-class="7"] select.source').value === 'digits_mlp.keras');
  await page.waitForFunction((b) => Number(document.querySelector('#matrix tbody tr[data-class="7"] td:nth-of-type(8)').textContent || 0) !== b, before);
  const after = await sevenCorrect();
  assert.ok(after > before + 20, `7s recognised: ${before} before, ${after} after the replacement`);
  await shot(page, 'faulty-7-replaced');
});

test('a hostile upload shows an error and the page keeps working', async () => {
  const page = await env.newPage();
  await openDefault(page);
  const composed = await page.locator('#composed-acc').textContent();
  await page.locator('#upload').setInputFiles({ name: '<img src=x onerror=alert(1)>.keras', mimeType: 'application/octet-stream', buffer: Buffer.from('PK\x03\x04 this is not a real archive') });
  await page.locator('#error-banner:not([hidden])').waitFor();
  const msg = await page.locator('#error-text').textContent();
  assert.match(msg, /invalid|zip|archive/i);
  assert.equal(await page.locator('#error-text img').count(), 0);
  assert.equal(await page.locator('#composed-acc').textContent(), composed);
  await page.locator('.module[data-class="0"] .toggle').click();
  await page.waitForFunction((c) => document.getElementById('composed-acc').textContent !== c, composed);
  await shot(page, 'hostile-upload');
});

test('the CNN decomposes in the page into the same masks and accuracy as natively', async () => {
  const page = await env.newPage();
  await openDefault(page);
  await selectModel(page, 'digits_cnn.keras', 'CNN');
  const report = cli('report', 'models/digits_cnn.keras', '--data', 'data/digits.npz', '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  await shot(page, 'cnn');
});

test('try it: test images and a drawn digit are scored live by every module', async () => {
  const page = await env.newPage();
  await openDefault(page);
  const strip = page.locator('#samples button');
  await strip.first().waitFor();
  const n = await strip.count();
  assert.equal(n, 12);
  let right = 0;
  for (let i = 0; i < n; i++) {
    const label = await strip.nth(i).getAttribute('data-label');
    await strip.nth(i).click();
    await page.waitForFunction((k) => document.querySelectorAll('#samples button')[k].getAttribute('aria-pressed') === 'true'
      && document.querySelectorAll('#try-scores li').length === 10, i);
    await page.waitForTimeout(50);
    const answer = await page.locator('#answer').textContent();
    // The answer is the module with the highest score shown.
    const win = await page.locator('#try-scores li.win .name').textContent();
    assert.equal(answer, win);
    right += answer === label;
  }
  // The composition is ~92% accurate; wrong scaling or layout would give chance (~10%).
  assert.ok(right >= 9, `${right}/${n} test images answered correctly`);
  // Draw a vertical stroke: a "1".
  await page.locator('#clear').click();
  await page.locator('#pad').scrollIntoViewIfNeeded();
  const box = await page.locator('#pad').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
  await page.mouse.down();
  for (let k = 1; k <= 10; k++) await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * (0.15 + 0.07 * k));
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelectorAll('#try-scores li').length === 10);
  await page.waitForTimeout(100);
  assert.equal(await page.locator('#answer').textContent(), '1');
  await shot(page, 'try-it');
});

test('uploading .keras and .h5 models works, and a reload restores the exact state', async () => {
  const page = await env.newPage();
  await openDefault(page);
  for (const file of ['digits_mlp.h5', 'digits_mlp_b.keras']) {
    await page.locator('#upload').setInputFiles(join(ROOT, 'models', file));
    await page.waitForFunction((f) => document.querySelector('#model-info strong')?.textContent.includes(f), file);
    await page.locator('#app[data-composed]').waitFor();
    const report = cli('report', `models/${file}`, '--data', 'data/digits.npz', '--json');
    assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
    assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  }
  // Build a state: faulty model, 7 replaced from the uploaded B model, 3 removed.
  await selectModel(page, 'digits_mlp_faulty.keras', 'faulty');
  await page.locator('.module[data-class="7"] select.source').selectOption('upload:digits_mlp_b.keras');
  await page.waitForFunction(() => document.querySelector('.module[data-class="7"]').classList.contains('replaced'));
  const beforeToggle = await page.locator('#app').getAttribute('data-composed');
  await page.locator('.module[data-class="3"] .toggle').click();
  await page.waitForFunction((b) => document.getElementById('app').dataset.composed !== b, beforeToggle);
  const composed = await page.locator('#composed-acc').textContent();
  await page.waitForTimeout(300); // let the IndexedDB write finish

  await page.reload();
  await page.locator('body[data-restored="true"]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('#composed-acc').textContent(), composed);
  assert.equal(await page.locator('#model-picker').inputValue(), 'digits_mlp_faulty.keras');
  assert.equal(await page.locator('.module[data-class="7"] select.source').inputValue(), 'upload:digits_mlp_b.keras');
  assert.equal(await page.locator('.module.off').count(), 1);
  assert.equal(await page.locator('.module.off').getAttribute('data-class'), '3');
  assert.ok(await page.locator('#model-picker option[value="upload:digits_mlp.h5"]').count() === 1);
  await shot(page, 'restored');
});

test('dropping a model file on the page loads it', async () => {
  const page = await env.newPage();
  await openDefault(page);
  const bytes = [...readFileSync(join(ROOT, 'models', 'digits_cnn.keras'))];
  const dt = await page.evaluateHandle((b) => {
    const d = new DataTransfer();
    d.items.add(new File([new Uint8Array(b)], 'dropped_cnn.keras'));
    return d;
  }, bytes);
  await page.dispatchEvent('main', 'drop', { dataTransfer: dt });
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('dropped_cnn.keras'));
  await page.locator('#app[data-composed]').waitFor();
  const report = cli('report', 'models/digits_cnn.keras', '--data', 'data/digits.npz', '--json');
  assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
});

test('ONNX models (PyTorch-style NCHW and tf2onnx) upload and decompose as they do natively', async () => {
  const page = await env.newPage();
  await openDefault(page);
  for (const file of ['pt_cnn.onnx', 'tf_mlp.onnx']) {
    await page.locator('#upload').setInputFiles(join(ROOT, 'tests', 'fixtures', 'onnx', file));
    await page.waitForFunction((f) => document.querySelector('#model-info strong')?.textContent.includes(f), file);
    const report = cli('report', `tests/fixtures/onnx/${file}`, '--data', 'data/digits.npz', '--json');
    await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, report.mask_digest);
    assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
    assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  }
  await shot(page, 'onnx-upload');
  assert.deepEqual(env.errors, []);
});

test('an uploaded model finds the bundled data set it fits: the current one, the one the user picks, or a clear refusal', async () => {
  const page = await env.newPage();
  await openDefault(page);
  // On a language model, a 28×28 ten-class model fits digits and clothing: the page asks which.
  await page.locator('#model-picker').selectOption('lang_a_lstm.keras');
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('LSTM'), null, { timeout: 60000 });
  await page.locator('#upload').setInputFiles(join(ROOT, 'models', 'digits_mlp_b.keras'));
  await page.locator('#fit-dialog[open]').waitFor();
  const choices = await page.locator('#fit-choice option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(choices.sort(), ['clothing', 'digits']);
  await shot(page, 'upload-fit-chooser');
  await page.locator('#fit-choice').selectOption('digits');
  await page.locator('#fit-ok').click();
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('digits_mlp_b.keras'), null, { timeout: 60000 });
  const report = cli('report', 'models/digits_mlp_b.keras', '--data', 'data/digits.npz', '--json');
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, report.mask_digest);
  assert.equal(await page.locator('#model-acc').textContent(), pctText(report.model_accuracy));
  // The current data set fits: no question asked.
  await page.locator('#upload').setInputFiles(join(ROOT, 'models', 'digits_mlp.h5'));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('digits_mlp.h5'), null, { timeout: 60000 });
  assert.equal(await page.locator('#fit-dialog[open]').count(), 0);
  // A model no bundled data set fits is refused with what it needs, and the view stays.
  await page.locator('#upload').setInputFiles(join(ROOT, 'tests', 'fixtures', 'keras', 'lstm_vectors.keras'));
  await page.locator('#error-banner:not([hidden])').waitFor({ timeout: 30000 });
  assert.match(await page.locator('#error-text').textContent(), /lstm_vectors\.keras: the model takes samples of shape .* no bundled data set fits .*Evaluate it on your own data/);
  assert.match(await page.locator('#model-info strong').textContent(), /digits_mlp\.h5/);
});

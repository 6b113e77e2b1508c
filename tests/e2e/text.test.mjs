// Character models in the page: decomposed in wasm like the CLI does it,
// typed text scored live, per-character tags for the tagger.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, pctText, start, shot } from './harness.mjs';
import { addModule, composedChange } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });


async function open(page, file, titlePart) {
  await page.goto(env.url);
  await page.locator('#app[data-composed]').waitFor({ timeout: 60000 });
  await page.locator('#model-picker').selectOption(file);
  await page.waitForFunction((t) => document.querySelector('#model-info strong')?.textContent.includes(t), titlePart);
  await page.locator('#type-panel:not([hidden])').waitFor();
}

test('an LSTM language model decomposes in wasm exactly as the CLI does, and typed text is answered', async () => {
  const page = await env.newPage();
  await open(page, 'lang_a_lstm.keras', 'Languages A · LSTM');
  const report = cli('report', 'models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--json');
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, report.mask_digest);
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  assert.equal(await page.locator('.module').count(), 5);
  assert.equal(await page.locator('#try-panel').isHidden(), true);
  // Test snippets are shown as text; clicking one scores it.
  assert.equal(await page.locator('#type-samples button').count(), 12);
  await page.locator('#type-box').fill('der Hund und die Katze spielen im Garten');
  await page.waitForFunction(() => document.getElementById('type-answer').textContent === 'German');
  await page.locator('#type-box').fill('this is a simple sentence about the weather today');
  await page.waitForFunction(() => document.getElementById('type-answer').textContent === 'English');
  assert.equal(await page.locator('#type-scores li').count(), 5);
  // Taking the English module out: the answer can no longer be English.
  await page.locator('.module[data-class="English"] .toggle').click();
  await page.waitForFunction(() => document.querySelectorAll('#type-scores li').length === 4);
  assert.notEqual(await page.locator('#type-answer').textContent(), 'English');
  await shot(page, 'text-lstm');
  assert.deepEqual(env.errors, []);
});

test('the per-character tagger colours every character by the winning module', async () => {
  const page = await env.newPage();
  await open(page, 'lang_tags_lstm.keras', 'LSTM tagger');
  const report = cli('report', 'models/lang_tags_lstm.keras', '--data', 'data/lang_tags.npz', '--json');
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, report.mask_digest);
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  await page.locator('#type-samples button').first().click();
  await page.waitForFunction(() => document.querySelectorAll('#type-tags .tag').length === 64);
  assert.equal(await page.locator('#type-tags').isHidden(), false);
  await shot(page, 'text-tagger');
  assert.deepEqual(env.errors, []);
});

test('the SimpleRNN tagger and encoder–decoder decompose in wasm exactly as the CLI does', async () => {
  const page = await env.newPage();
  for (const [file, title, data, modules] of [['lang_tags_rnn.keras', 'SimpleRNN tagger', 'lang_tags', 5],
    ['lang_rev_rnn.keras', 'SimpleRNN encoder–decoder', 'lang_rev', 27]]) {
    await open(page, file, title);
    const report = cli('report', `models/${file}`, '--data', `data/${data}.npz`, '--json');
    await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, report.mask_digest, { timeout: 300000 });
    assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy), file);
    assert.equal(await page.locator('.module').count(), modules, file);
  }
  await shot(page, 'text-rev-rnn');
  assert.deepEqual(env.errors, []);
});

test('a language only set B knows joins set A modules, with and without module update', async () => {
  const page = await env.newPage();
  await open(page, 'lang_a_lstm.keras', 'Languages A · LSTM');
  assert.equal(await page.locator('#update-row').isHidden(), true);
  await addModule(page, 'lang_b_lstm.keras', 'Dutch');
  // English and German are shared classes: 6 rows, Dutch among them.
  await page.waitForFunction(() => document.querySelectorAll('#matrix tbody tr').length === 6);
  assert.equal(await page.locator('#update-row').isHidden(), false);
  // The model's figure is over the classes it knows; Dutch is not one of them.
  assert.equal(await page.locator('#model-acc-label').textContent(), 'Model · its own 5 classes');
  // Module update works on the papers' modules: strength 0.
  assert.equal(await page.locator('#update-box').isDisabled(), true);
  await composedChange(page, () => page.locator('#s-strength').fill('0'));
  const plain = await page.locator('#app').getAttribute('data-composed');
  await composedChange(page, () => page.locator('#update-box').check());
  assert.equal(await page.evaluate(() => document.body.dataset.update), 'true');
  const updated = await page.locator('#app').getAttribute('data-composed');
  assert.notEqual(updated, plain);
  await page.locator('#type-box').fill('het is een mooie dag en wij gaan naar het strand');
  await page.waitForFunction(() => document.querySelectorAll('#type-scores li').length === 6);
  await shot(page, 'text-add-language');
  assert.deepEqual(env.errors, []);
});

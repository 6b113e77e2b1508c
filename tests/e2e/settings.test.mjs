// The decomposition settings fold: the page re-decomposes in wasm with the
// chosen technique and gets the CLI's masks; bad values are refused in place.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cli, pctText, start, shot } from './harness.mjs';
import { copyLink, open } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

const digest = (page) => page.locator('#app').getAttribute('data-mask-digest');
const schema = JSON.parse(readFileSync(new URL('../../www/settings.json', import.meta.url), 'utf8')).settings;

test('the form is built from www/settings.json: one labelled control per entry with a label, at its default', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  // The form's elements include the strength slider above the module cards (its `form` attribute).
  const shown = await page.locator('#settings-form').evaluate((f) => [...f.elements].filter((c) => c.name)
    .map((c) => ({ name: c.name, value: c.value, label: document.querySelector(`label[for="${c.id}"]`)?.textContent, min: c.min ?? '', max: c.max ?? '' })));
  const want = schema.filter((s) => s.label).map((s) => ({
    name: s.name, value: String(s.default), label: s.label, min: s.min === undefined ? '' : String(s.min), max: s.max === undefined ? '' : String(s.max),
  }));
  const byName = (a, b) => a.name.localeCompare(b.name);
  assert.deepEqual(shown.sort(byName), want.sort(byName));
});

test('reference technique and unrolled RNN modules match the CLI, and survive a share link', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#settings summary').click();
  await page.locator('#s-mode').selectOption('reference');
  await page.locator('#s-apply').click();
  const ref = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--mode', 'reference', '--json');
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, ref.mask_digest, { timeout: 60000 });
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(ref.composed_accuracy));

  await page.locator('#model-picker').selectOption('lang_a_lstm.keras');
  await page.locator('#type-panel:not([hidden])').waitFor();
  await page.locator('#s-unrolled').selectOption('true');
  await page.locator('#s-max_remove').fill('0.25');
  // At a strength, class relevance prunes the LSTM itself: the papers' recurrent settings are refused by name.
  await page.locator('#s-apply').click();
  await page.locator('#error-banner:not([hidden])').waitFor({ timeout: 30000 });
  assert.match(await page.locator('#error-text').textContent(), /max_remove.*strength 0/);
  await page.locator('#error-close').click();
  assert.equal(await page.locator('#s-unrolled').inputValue(), 'true');
  // At strength 0 they apply: the form kept them.
  await page.locator('#s-strength').fill('0');
  const un = cli('report', 'models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--mode', 'reference', '--unrolled', '--max-remove', '0.25', '--strength', '0', '--json');
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, un.mask_digest, { timeout: 60000 });
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(un.composed_accuracy));
  await shot(page, 'settings-unrolled');
  // The link carries the settings: a fresh page decomposes the same way.
  const link = await copyLink(page);
  const other = await env.newPage();
  await other.goto(link);
  await other.waitForFunction((d) => document.getElementById('app')?.dataset.maskDigest === d, un.mask_digest, { timeout: 90000 });
  assert.equal(await other.locator('#s-unrolled').inputValue(), 'true');
  assert.deepEqual(env.errors, []);
});

test('the per-gate statistic decomposes in wasm into the CLI\'s masks, and survives a share link', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#model-picker').selectOption('lang_a_lstm.keras');
  await page.locator('#type-panel:not([hidden])').waitFor();
  await page.locator('#settings summary').click();
  await page.locator('#s-gates').selectOption('true');
  // The per-gate statistic is the papers' (strength 0).
  await page.locator('#s-strength').fill('0');
  const gated = cli('report', 'models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--gates', '--strength', '0', '--json');
  const plain = cli('report', 'models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--strength', '0', '--json');
  assert.notEqual(gated.mask_digest, plain.mask_digest);
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, gated.mask_digest, { timeout: 60000 });
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(gated.composed_accuracy));
  const link = await copyLink(page);
  const other = await env.newPage();
  await other.goto(link);
  await other.waitForFunction((d) => document.getElementById('app')?.dataset.maskDigest === d, gated.mask_digest, { timeout: 90000 });
  assert.equal(await other.locator('#s-gates').inputValue(), 'true');
  assert.deepEqual(env.errors, []);
});

test('an out-of-range setting is refused with a message and the page keeps working', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  const before = await digest(page);
  await page.locator('#settings summary').click();
  await page.locator('#s-samples_per_class').fill('0');
  await page.locator('#s-apply').click();
  await page.locator('#error-banner:not([hidden])').waitFor();
  assert.match(await page.locator('#error-text').textContent(), /samples_per_class/);
  assert.equal(await digest(page), before);
  await page.locator('.module[data-class="3"] .toggle').click();
  await page.waitForFunction(() => document.querySelectorAll('.module.off').length === 1);
});

test('backtracking technique, δ and the authors\' head match the CLI', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#settings summary').click();
  await page.locator('#s-technique').selectOption('mc-bi');
  await page.locator('#s-delta').fill('0.1');
  await page.locator('#s-head').selectOption('reference');
  await page.locator('#s-apply').click();
  const want = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--technique', 'mc-bi', '--delta', '0.1', '--head', 'reference', '--json');
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, want.mask_digest, { timeout: 60000 });
  await page.waitForFunction((t) => document.getElementById('composed-acc').textContent === t, pctText(want.composed_accuracy), { timeout: 30000 });
  // δ = 0.1 removes units, so the masks differ from the defaults'.
  const defaults = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--json');
  assert.notEqual(want.mask_digest, defaults.mask_digest);
  await shot(page, 'settings-backtracking');
  assert.deepEqual(env.errors, []);
});

test('learned relevance decomposes in wasm into the CLI\'s masks (digits MLP, strength 0.35)', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#settings summary').click();
  await page.locator('#s-relevance').selectOption('learned');
  await page.locator('#s-strength').fill('0.35');
  await page.locator('#s-apply').click();
  const learned = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--strength', '0.35', '--relevance', 'learned', '--json');
  const statistic = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--strength', '0.35', '--json');
  // The two rankings keep as many units but not the same ones, so the digests tell them apart.
  assert.notEqual(learned.mask_digest, statistic.mask_digest);
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, learned.mask_digest, { timeout: 90000 });
  // The digest arrives with the masks; the composed accuracy once the modules are scored.
  await page.waitForFunction(() => !document.getElementById('composed-acc').textContent.includes('…'), null, { timeout: 60000 });
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(learned.composed_accuracy));
  await shot(page, 'settings-learned');
  assert.deepEqual(env.errors, []);
});

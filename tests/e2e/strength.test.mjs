// The strength slider (class relevance): moving it re-derives the modules in wasm from the
// recorded pass, the cards and the module↔module Jaccard matrix change, the accuracy shown is
// the CLI's at the same strength, a share link carries it, and the front chart rings it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, pctText, shot, start } from './harness.mjs';
import { composedChange, copyLink, open } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

/** Mean kept weights over the module cards, and the mean of the Jaccard matrix off its diagonal. */
async function figures(page) {
  return page.evaluate(() => {
    const weights = [...document.querySelectorAll('.module')].map((m) => {
      const dt = [...m.querySelectorAll('dt')].find((d) => d.textContent === 'weights');
      return parseFloat(dt.nextElementSibling.textContent) / 100;
    });
    const rows = [...document.querySelectorAll('#jaccard tbody tr')].map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.title.split(': ')[1])));
    const off = rows.flatMap((r, i) => r.filter((_, j) => j !== i));
    return { weights: weights.reduce((a, b) => a + b, 0) / weights.length, jaccard: off.reduce((a, b) => a + b, 0) / off.length, k: rows.length };
  });
}

async function setStrength(page, s) {
  await composedChange(page, async () => {
    // fill() fires 'input' and 'change', as letting go of the slider does.
    await page.locator('#s-strength').fill(String(s));
  });
  await page.waitForFunction((d) => document.querySelector('#jaccard td') && document.getElementById('app').dataset.maskDigest === d,
    cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--strength', String(s), '--json').mask_digest, { timeout: 60000 });
}

test('the slider shrinks and separates the modules, as the CLI does at the same strength', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  const faithful = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--strength', '0', '--json');
  const byDefault = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--json');
  await page.waitForFunction(() => document.querySelectorAll('#jaccard td').length === 100);
  // The page opens at the default strength, as the CLI without flags.
  assert.equal(await page.locator('#s-strength-out').textContent(), '0.2 (default)');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), byDefault.mask_digest);
  const fd = await figures(page);
  assert.ok(Math.abs(fd.weights - byDefault.mean_kept_weights) < 0.001 && Math.abs(fd.jaccard - byDefault.mean_module_jaccard) < 0.001, JSON.stringify(fd));
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(byDefault.composed_accuracy));
  await setStrength(page, 0);
  const f0 = await figures(page);
  assert.equal(await page.locator('#s-strength-out').textContent(), "0 (the papers' modules)");

  await setStrength(page, 0.35);
  const report = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--strength', '0.35', '--json');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  assert.equal(await page.locator('#s-strength-out').textContent(), '0.35');
  const f1 = await figures(page);
  assert.equal(f1.k, 10);
  // The cards and the matrix show what the CLI measured, and both fell well below the faithful modules'.
  assert.ok(Math.abs(f1.weights - report.mean_kept_weights) < 0.001, `${f1.weights} vs ${report.mean_kept_weights}`);
  assert.ok(Math.abs(f1.jaccard - report.mean_module_jaccard) < 0.001, `${f1.jaccard} vs ${report.mean_module_jaccard}`);
  assert.ok(f1.weights < f0.weights - 0.2 && f1.jaccard < f0.jaccard - 0.2, JSON.stringify({ f0, f1 }));
  assert.ok(Math.abs(f0.jaccard - faithful.mean_module_jaccard) < 0.001);

  // The front: one dot per measured strength, the faithful one apart, the current one ringed;
  // measuring it leaves the composition as it was.
  await page.locator('#front-btn').click();
  await page.waitForFunction(() => document.querySelectorAll('#front circle').length >= 5, null, { timeout: 60000 });
  assert.equal(await page.locator('#front circle.faithful').count(), 1);
  assert.equal(await page.locator('#front circle.current').getAttribute('data-strength'), '0.35');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  await shot(page, 'strength-front');

  // A link opens at the same strength; back to 0 gives the papers' modules again.
  const link = await copyLink(page);
  const other = await env.newPage();
  await other.goto(link);
  await other.waitForFunction((d) => document.getElementById('app')?.dataset.maskDigest === d, report.mask_digest, { timeout: 90000 });
  assert.equal(await other.locator('#s-strength').inputValue(), '0.35');
  await setStrength(page, 0);
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(faithful.composed_accuracy));
  assert.deepEqual(env.errors, []);
});

test('a model the strength cannot apply to says so, and its modules are the CLI\'s faithful ones', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  assert.equal(await page.locator('#strength-note').isVisible(), false);
  // A per-step tagger: the papers' modules.
  await composedChange(page, () => page.locator('#model-picker').selectOption('lang_tags_lstm.keras'));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('LSTM'), null, { timeout: 60000 });
  assert.match(await page.locator('#strength-note').textContent(), /does not apply to this model/);
  assert.equal(await page.locator('#strength-note').isVisible(), true);
  const faithful = cli('report', 'models/lang_tags_lstm.keras', '--data', 'data/lang_tags.npz', '--json');
  assert.equal(faithful.strength, 0);
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), faithful.mask_digest);
  // A many-to-one LSTM takes the strength: its units' removal measured in the page as natively.
  await composedChange(page, () => page.locator('#model-picker').selectOption('lang_a_lstm.keras'));
  const relevance = cli('report', 'models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--json');
  assert.ok(Math.abs(relevance.strength - 0.2) < 1e-6, relevance.strength);
  await page.waitForFunction((d) => document.getElementById('app').dataset.maskDigest === d, relevance.mask_digest, { timeout: 60000 });
  assert.equal(await page.locator('#strength-note').isVisible(), false);
  await page.waitForFunction(() => !document.getElementById('composed-acc').textContent.includes('…'));
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(relevance.composed_accuracy));
  // Back on the MLP, no note either.
  await composedChange(page, () => page.locator('#model-picker').selectOption('digits_mlp.keras'));
  assert.equal(await page.locator('#strength-note').isVisible(), false);
  assert.deepEqual(env.errors, []);
});

// The composition panel's "Check answers of class … again with the modules of …" row
// (seed 002, option 4): the page's numbers are the CLI's for the same
// composition file, and the setting survives a share link and a reload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, pctText, start } from './harness.mjs';
import { composedChange, copyLink, open } from './page.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

/** The confusion matrix as the page shows it (cell tooltips hold the counts). */
const matrix = (page) => page.locator('#matrix tbody tr').evaluateAll((rows) => rows.map((r) =>
  [...r.querySelectorAll('td:not(.acc)')].map((td) => Number(td.title.slice(td.title.lastIndexOf(':') + 1)))));

const verifyState = (page) => page.evaluate(() => ({
  on: document.getElementById('verify-box').checked,
  cls: document.getElementById('verify-class').value,
  by: document.getElementById('verify-model').value,
  composed: document.getElementById('composed-acc').textContent,
}));

test('verification in the page composes as `remodule compose` with "verify" does; links and reloads keep it', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await composedChange(page, () => page.locator('#model-picker').selectOption('digits_mlp_faulty.keras'));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('faulty'));
  await composedChange(page, () => page.locator('#verify-model').selectOption('digits_mlp_b.keras'));
  await composedChange(page, () => page.locator('#verify-class').selectOption('1'));
  await composedChange(page, () => page.locator('#verify-box').check());

  const dir = mkdtempSync(join(tmpdir(), 'remodule-verify-'));
  const plan = join(dir, 'verify.json');
  const data = join(ROOT, 'data', 'digits.npz');
  writeFileSync(plan, JSON.stringify({
    models: { faulty: { model: join(ROOT, 'models', 'digits_mlp_faulty.keras'), data }, b: { model: join(ROOT, 'models', 'digits_mlp_b.keras'), data } },
    modules: [{ model: 'faulty' }], base: 'faulty', verify: { classes: ['1'], by: 'b' },
  }));
  const expected = cli('compose', plan, '--json');
  const plain = cli('compose', 'models/digits_mlp_faulty.keras', '--data', 'data/digits.npz', '--classes', '0,1,2,3,4,5,6,7,8,9', '--json');
  assert.notEqual(expected.top1, plain.top1, 'verification changes the composition');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(expected.top1));
  assert.equal(await page.locator('#model-acc').textContent(), pctText(expected.model_accuracy));
  assert.deepEqual(await matrix(page), expected.confusion);
  const shown = await verifyState(page);
  assert.deepEqual(shown, { on: true, cls: '1', by: 'digits_mlp_b.keras', composed: pctText(expected.top1) });

  // A link opens with the same check on a fresh page.
  const link = await copyLink(page);
  const other = await env.newPage();
  await open(other, link);
  await other.locator('body[data-link="opened"]').waitFor();
  assert.deepEqual(await verifyState(other), shown);
  assert.deepEqual(await matrix(other), expected.confusion);

  // Other decomposition settings re-decompose the verifying model too (it is not on a card), and the check stays on.
  await other.locator('#settings summary').click();
  await other.locator('#s-samples_per_class').fill('200');
  await composedChange(other, () => other.locator('#s-apply').click());
  const settings = { samples_per_class: 200 };
  writeFileSync(plan, JSON.stringify({
    models: { faulty: { model: join(ROOT, 'models', 'digits_mlp_faulty.keras'), data, settings }, b: { model: join(ROOT, 'models', 'digits_mlp_b.keras'), data, settings } },
    modules: [{ model: 'faulty' }], base: 'faulty', verify: { classes: ['1'], by: 'b' },
  }));
  const reference = cli('compose', plan, '--json');
  assert.deepEqual(await verifyState(other), { ...shown, composed: pctText(reference.top1) });
  assert.deepEqual(await matrix(other), reference.confusion);

  // A reload restores it from IndexedDB; switching it off gives the plain composition.
  await page.waitForTimeout(300);
  await page.reload();
  await page.locator('body[data-restored="true"]').waitFor({ timeout: 90000 });
  assert.deepEqual(await verifyState(page), shown);

  // Teacher mode turns the check into a goal; the student starts with it off.
  await page.locator('#teacher summary').click();
  const goal = await page.locator('#t-goal li').allTextContents();
  assert.deepEqual(goal.map((g) => g.replace(/^✓/, '')), [
    // The engine computes in f32 (0.9 arrives as 0.89999998); the goal rounds down with the
    // checker's own 1e-6 tolerance, so a 90.0% composition sets a 90% goal, not 89%.
    `Composed accuracy ≥ ${Math.floor(Math.fround(expected.top1) * 100 + 1e-4)}.0% with exactly the classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9`,
    'Answers of class 1 are checked again by the modules of Digits · dense MLP, variant B']);
  await page.locator('#t-make').click();
  await page.locator('#share-box[data-ready]').waitFor();
  const student = await env.newPage();
  await open(student, await page.locator('#share-url').inputValue());
  await student.locator('body[data-link="opened"]').waitFor();
  assert.equal(await student.locator('#verify-box').isChecked(), false);
  assert.equal(await student.locator('#exercise-panel').getAttribute('data-solved'), 'false');
  await composedChange(student, () => student.locator('#verify-model').selectOption('digits_mlp_b.keras'));
  await composedChange(student, () => student.locator('#verify-class').selectOption('1'));
  await composedChange(student, () => student.locator('#verify-box').check());
  assert.equal(await student.locator('#exercise-panel').getAttribute('data-solved'), 'true');

  await composedChange(page, () => page.locator('#verify-box').uncheck());
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(plain.top1));
  assert.deepEqual(await matrix(page), plain.confusion);
  assert.deepEqual(env.errors, []);
});

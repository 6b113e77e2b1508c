// Share links end to end: a link made in one page reopens identically in a
// fresh browser context (composition, numbers, try-it input, exercise); it
// wins over the state saved in IndexedDB; uploads travel inside the link or
// are asked for and checked by SHA-256; damaged links give a clear error and
// a working default page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { ROOT, start, shot } from './harness.mjs';
import { addModule, composedChange, copyLink, open, pageState, setSource, toggle, tryItSettled } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const fragmentOf = (link) => link.slice(link.indexOf('#'));

test('a link restores models, composition (with a module from another data set), the chosen test image and the exercise', async () => {
  const page = await env.newPage();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.url.replace(/\/$/, '') });
  await open(page, env.url);
  await composedChange(page, () => page.locator('.ex-item[data-exercise="fix-faulty-7"]').click());
  await setSource(page, '7', 'digits_mlp_b.keras');
  await toggle(page, '3');
  await addModule(page, 'clothing_mlp.keras', 'Bag');
  await page.locator('#samples button').nth(4).click();
  await tryItSettled(page);
  const sent = await pageState(page);
  assert.equal(sent.solved, 'false'); // 3 is off: "exactly the classes 0–9" fails
  assert.equal(sent.sample, 4);
  assert.deepEqual(sent.cards.at(-1), ['clothing:Bag', 'in', 'clothing_mlp.keras']);
  const link = await copyLink(page);
  assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/#v=1&s=[A-Za-z0-9_-]+$/);
  assert.ok(link.length < 400, `${link.length} characters`);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link);
  assert.match(await page.locator('#share-note').textContent(), /^Copied to the clipboard\./);
  await shot(page, 'share-sender');
  // The box says when the state moves on from the link it shows.
  await toggle(page, '0');
  assert.match(await page.locator('#share-note').textContent(), /changed since this link was made/);

  const fresh = await env.newPage();
  await open(fresh, link);
  await fresh.locator('body[data-link="opened"]').waitFor();
  await tryItSettled(fresh);
  const got = await pageState(fresh);
  assert.deepEqual(got, sent);
  // The link has been read: the address bar no longer carries it.
  assert.equal(await fresh.evaluate(() => location.hash), '');
  assert.equal(await fresh.locator('#error-banner').isHidden(), true);
  await shot(fresh, 'share-restored');
  assert.deepEqual(env.errors, []);
});

test('a drawing travels as its 28×28 pixels and scores the same', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await toggle(page, '9');
  await page.locator('#pad').scrollIntoViewIfNeeded();
  const box = await page.locator('#pad').boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.25);
  await page.mouse.down();
  for (let k = 1; k <= 10; k++) await page.mouse.move(box.x + box.width * (0.3 + 0.04 * k), box.y + box.height * (0.25 + 0.05 * k));
  await page.mouse.up();
  await tryItSettled(page);
  const sent = await pageState(page);
  assert.equal(sent.sample, -1);
  const link = await copyLink(page);
  const fresh = await env.newPage();
  await open(fresh, link);
  await fresh.locator('body[data-link="opened"]').waitFor();
  await tryItSettled(fresh);
  const got = await pageState(fresh);
  assert.equal(got.scores, sent.scores);
  assert.deepEqual(got, sent);
});

test('a link wins over the state saved in the browser, and a link pasted into an open tab is opened', async () => {
  const other = await env.newPage();
  await open(other, env.url);
  await other.locator('#model-picker').selectOption('digits_mlp_b.keras');
  await other.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('variant B'));
  await toggle(other, '0');
  const wanted = await pageState(other);
  const link = await copyLink(other);

  const page = await env.newPage();
  await open(page, env.url);
  await toggle(page, '5');
  await toggle(page, '6');
  await page.waitForTimeout(300);
  await page.reload();
  await page.locator('body[data-restored="true"]').waitFor({ timeout: 90000 });
  assert.equal(await page.locator('.module.off').count(), 2);
  // Same tab, new fragment: the page reloads itself and opens the link.
  await page.goto(link);
  await page.locator('body[data-link="opened"]').waitFor({ timeout: 90000 });
  await page.locator('#app[data-composed]').waitFor();
  const got = await pageState(page);
  assert.deepEqual(got.cards, wanted.cards);
  assert.equal(got.composed, wanted.composed);
  assert.equal(got.model, 'digits_mlp_b.keras');
  // …and from then on the link's state is what a reload restores.
  await page.waitForTimeout(300);
  await page.reload();
  await page.locator('body[data-restored="true"]').waitFor({ timeout: 90000 });
  assert.deepEqual((await pageState(page)).cards, wanted.cards);
});

test('a small upload travels inside the link', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#upload').setInputFiles(join(ROOT, 'tests', 'e2e', 'fixtures', 'tiny_digits.h5'));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('tiny_digits.h5'));
  await page.locator('#app[data-composed]').waitFor();
  await toggle(page, '4');
  const sent = await pageState(page);
  const link = await copyLink(page);
  assert.match(await page.locator('#share-note').textContent(), /Your upload tiny_digits\.h5 \(6\.0 KB\) is inside the link\./);
  const fresh = await env.newPage();
  await open(fresh, link);
  await fresh.locator('body[data-link="opened"]').waitFor();
  const got = await pageState(fresh);
  assert.equal(got.model, 'upload:tiny_digits.h5');
  assert.deepEqual(got.cards, sent.cards);
  assert.equal(got.composed, sent.composed);
  assert.equal(got.matrix, sent.matrix);
});

test('a large upload is asked for and checked by SHA-256 before the link opens', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#upload').setInputFiles(join(ROOT, 'models', 'digits_mlp_b.keras'));
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('digits_mlp_b.keras'));
  await page.locator('#app[data-composed]').waitFor();
  await toggle(page, '2');
  const sent = await pageState(page);
  const link = await copyLink(page);
  assert.match(await page.locator('#share-note').textContent(), /digits_mlp_b\.keras is not inside the link .*asked for the file, checked by its SHA-256/);

  const fresh = await env.newPage();
  await open(fresh, link);
  await fresh.locator('body[data-link="waiting-for-files"]').waitFor();
  assert.equal(await fresh.locator('#link-files').isVisible(), true);
  assert.match(await fresh.locator('#link-files-list').textContent(), /digits_mlp_b\.keras \(SHA-256 [0-9a-f]{12}…\)/);
  // Meanwhile the default playground works.
  assert.equal(await fresh.locator('#model-picker').inputValue(), 'digits_mlp.keras');
  await shot(fresh, 'share-asks-for-file');
  const input = fresh.locator('#link-files-list input[type=file]');
  await input.setInputFiles(join(ROOT, 'models', 'digits_mlp.keras'));
  await fresh.locator('#error-banner:not([hidden])').waitFor();
  assert.match(await fresh.locator('#error-text').textContent(), /digits_mlp\.keras is not the file the link was made with/);
  await input.setInputFiles(join(ROOT, 'models', 'digits_mlp_b.keras'));
  await fresh.locator('body[data-link="opened"]').waitFor({ timeout: 90000 });
  await fresh.waitForFunction((c) => document.getElementById('composed-acc').textContent === c, sent.composed);
  const got = await pageState(fresh);
  assert.equal(got.model, 'upload:digits_mlp_b.keras');
  assert.deepEqual(got.cards, sent.cards);
  assert.equal(await fresh.locator('#link-files').isHidden(), true);
});

test('damaged, hostile and foreign links give a clear error and a working default page', async () => {
  const good = await env.newPage();
  await open(good, env.url);
  await toggle(good, '1');
  const frag = fragmentOf(await copyLink(good)).slice(1);
  const s = frag.slice(frag.indexOf('s=') + 2);
  const flip = (str, i) => str.slice(0, i) + (str[i] === 'A' ? 'B' : 'A') + str.slice(i + 1);
  const pack = (obj) => `v=1&s=${b64url(deflateRawSync(Buffer.from(JSON.stringify(obj))))}`;
  const cases = [
    ['a flipped character', `v=1&s=${flip(s, Math.floor(s.length / 2))}`, /could not be opened — the link is (damaged|invalid)/],
    ['a truncated link', `v=1&s=${s.slice(0, Math.floor(s.length / 2))}`, /could not be opened — the link is damaged/],
    ['another version', frag.replace('v=1', 'v=7'), /format version "7"; this page reads version 1/],
    ['a deflate bomb', `v=1&s=${b64url(deflateRawSync(Buffer.alloc(45 * 1024 * 1024), { level: 9 }))}`, /inflates to more than 128 KB/],
    ['a class the data set lacks', pack({ models: ['digits_mlp.keras'], current: 0, slots: Array.from({ length: 10 }, (_, c) => [0, c === 9 ? 12 : c, 1]) }), /slots\[9\] class must be a whole number from 0 to 9/],
    ['a model not in the catalog', pack({ models: ['../../secret.keras'], current: 0 }), /names a model that is not bundled/],
    ['an oversized link', `v=1&s=${'A'.repeat(70000)}`, /the link is too long/],
  ];
  for (const [what, f, re] of cases) {
    const page = await env.newPage();
    await open(page, `${env.url}#${f}`);
    await page.locator('#error-banner:not([hidden])').waitFor();
    const msg = await page.locator('#error-text').textContent();
    assert.match(msg, /^This link could not be opened — /, what);
    assert.match(msg, re, `${what}: ${msg}`);
    assert.match(msg, /Showing the default playground\.$/, what);
    assert.equal(await page.locator('#model-picker').inputValue(), 'digits_mlp.keras', what);
    assert.equal(await page.locator('#composed-acc').textContent(), '96.6%', what); // the default decomposition's figure (docs/FIDELITY.md: 0.9660)
    assert.equal(await page.evaluate(() => location.hash), '', what);
    await toggle(page, '0'); // the page works
    assert.equal(await page.locator('.module.off').count(), 1, what);
    if (what === 'a flipped character') await shot(page, 'share-tampered');
    await page.context().close();
  }
});

test('<control>_hide=true in a link hides that control', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  const link = await copyLink(page);
  const fresh = await env.newPage();
  await open(fresh, `${link}&matrix_hide=true&upload_hide=true&nonsense_hide=true`);
  await fresh.locator('body[data-link="opened"]').waitFor();
  assert.equal(await fresh.locator('#matrix-panel').isVisible(), false);
  assert.equal(await fresh.locator('label.upload').isVisible(), false);
  assert.equal(await fresh.locator('#try-panel').isVisible(), true);
  // Re-sharing keeps what the link hid.
  assert.match(await copyLink(fresh), /&matrix_hide=true&upload_hide=true$/);
});

test('typed text and the module-update switch travel in the link and come back exactly', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#model-picker').selectOption('lang_a_lstm.keras');
  await page.locator('#type-panel:not([hidden])').waitFor({ timeout: 60000 });
  await addModule(page, 'lang_b_lstm.keras', 'Dutch');
  // Module update works on the papers' modules (strength 0); the strength travels in the link too.
  await composedChange(page, () => page.locator('#s-strength').fill('0'));
  await composedChange(page, () => page.locator('#update-box').check());
  const typed = 'Alle mensen worden  vrij en gelijk geboren\nin waardigheid';
  await page.locator('#type-box').fill(typed);
  await page.waitForFunction(() => document.getElementById('type-answer').textContent !== '–'
    && document.querySelectorAll('#type-scores li').length === document.querySelectorAll('.module:not(.off)').length);
  await page.waitForTimeout(200);
  const seen = async (p) => ({ ...(await pageState(p)), typed: await p.locator('#type-box').inputValue(),
    update: await p.locator('#update-box').isChecked(), answer: await p.locator('#type-answer').textContent(),
    scores: (await p.locator('#type-scores li').allTextContents()).join('|') });
  const before = await seen(page);
  assert.equal(before.update, true);
  const link = await copyLink(page);

  const other = await env.newPage();
  await open(other, link);
  await other.locator('body[data-link="opened"]').waitFor();
  await other.waitForFunction((n) => document.querySelectorAll('#type-scores li').length === n, before.scores.split('|').length);
  await other.waitForTimeout(200);
  assert.deepEqual(await seen(other), before);
  assert.equal(await other.locator('body').getAttribute('data-update'), 'true');
  await shot(other, 'share-text-update');

  // A test snippet is linked as the snippet (its token ids), not as retyped text.
  await other.locator('#type-samples button').nth(3).click();
  await other.waitForFunction(() => document.querySelector('#type-samples button[aria-pressed="true"]'));
  const link2 = await copyLink(other);
  const third = await env.newPage();
  await open(third, link2);
  await third.locator('body[data-link="opened"]').waitFor();
  await third.waitForFunction(() => document.querySelectorAll('#type-samples button')[3]?.getAttribute('aria-pressed') === 'true');
  assert.equal(await third.locator('#type-box').inputValue(), await other.locator('#type-box').inputValue());
  assert.deepEqual(env.errors, []);
});

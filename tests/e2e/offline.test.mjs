// Offline and installable: the service worker (www/sw.js) caches the build after one visit; the
// page, its engine, every bundled model, share links and exercises then work without the network;
// a changed build is installed beside the old one and taken on reload, never mixed with it.
// Runs on a copy of the built site (this test changes its build; the other tests serve www/).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OUT, ROOT, shot, start } from './harness.mjs';
import { composedChange, copyLink, open, pageState, toggle } from './page.mjs';

const SITE = join(OUT, 'offline-site');
rmSync(SITE, { recursive: true, force: true });
cpSync(join(ROOT, 'www'), SITE, { recursive: true, filter: (src) => !/[/](pkg-scalar|ort|onnx)$/.test(src) });

/** build_site's manifest step over the copy; returns {version, files}. */
function rebuild() {
  execFileSync('bash', ['-c', 'source scripts/lib.sh && write_build_manifest "$1"', 'build', SITE], { cwd: ROOT });
  const self = {};
  new Function('self', readFileSync(join(SITE, 'build.js'), 'utf8'))(self);
  return self.REMODULE_BUILD;
}

/** What a link restores, as the user sees it. */
const seen = (s) => ({ model: s.model, composed: s.composed, cards: s.cards, matrix: s.matrix });

test('one visit, then offline: reload, decompose another bundled model, toggle, open a share link and an exercise; a new build on reload', async () => {
  const first = rebuild();
  const env = await start({ dir: SITE });
  try {
    const page = await env.newPage();
    const context = page.context();
    await open(page, env.url);
    await page.locator('body[data-offline="ready"]').waitFor({ timeout: 180000 });
    assert.equal(await page.evaluate(() => document.body.dataset.build), first.version);
    assert.match(await page.locator('#offline-note').textContent(), /works offline/);
    // Every file of the build is cached, in this build's cache only.
    const cached = await page.evaluate(async () => Promise.all((await caches.keys()).map(async (k) => [k, (await (await caches.open(k)).keys()).length])));
    assert.deepEqual(cached, [[`remodule-${first.version}`, Object.keys(first.files).length]]);
    assert.ok(Object.keys(first.files).some((f) => f === 'bundled/clothing.npz'), 'the bundled data are part of the build');
    // Installable: a manifest with the icons a browser needs, all reachable.
    const manifest = JSON.parse(readFileSync(join(SITE, 'manifest.webmanifest'), 'utf8'));
    assert.deepEqual(manifest.icons.filter((i) => i.type === 'image/png').map((i) => i.sizes).sort(), ['192x192', '512x512', '512x512']);
    for (const i of manifest.icons) assert.ok(first.files[i.src], `${i.src} is cached`);
    assert.equal(await page.evaluate(() => document.querySelector('link[rel=manifest]').href.endsWith('manifest.webmanifest')), true);

    await context.setOffline(true);
    assert.equal(await page.evaluate(() => fetch('bench.html', { cache: 'no-store' }).then(() => 'online', () => 'offline')), 'offline',
      'a file outside the build is not cached: the browser is really offline');
    env.errors.length = 0; // that failed load, reported on the console
    page.on('requestfailed', (r) => env.errors.push(`offline: ${r.url()} failed`));
    await page.reload();
    await page.locator('#app[data-composed]').waitFor({ timeout: 90000 });
    await page.locator('#share-btn:not([disabled])').waitFor();
    await page.locator('body[data-offline="ready"]').waitFor();
    // A bundled model this profile never loaded: from the cache, decomposed in the page.
    await composedChange(page, () => page.locator('#model-picker').selectOption('digits_cnn.keras'));
    await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('CNN'));
    await toggle(page, '3');
    assert.equal(await page.locator('.module[data-class="3"]').getAttribute('class'), 'module off');
    const link = await copyLink(page);
    const before = seen(await pageState(page));

    const tab = await env.newPage.in(context);
    await open(tab, link);
    assert.equal(await tab.evaluate(() => document.body.dataset.link), 'opened');
    assert.deepEqual(seen(await pageState(tab)), before);
    await composedChange(tab, () => tab.locator('.ex-item[data-exercise="digits-and-clothing"]').click());
    await tab.locator('#exercise-panel[data-exercise="digits-and-clothing"]').waitFor();
    await shot(tab, 'offline-exercise');
    const saved = seen(await pageState(tab)); // the last state saved in this profile
    await tab.close();
    assert.deepEqual(env.errors, []);

    // A new build on the server (page code and the engine's worker change): the reload installs
    // it beside the running one, which keeps serving this tab whole until the user switches.
    await context.setOffline(false);
    appendFileSync(join(SITE, 'worker.js'), '\n// build 2\n');
    writeFileSync(join(SITE, 'index.html'), readFileSync(join(SITE, 'index.html'), 'utf8').replace('<title>', '<meta name="x-build" content="2">\n<title>'));
    const second = rebuild();
    assert.notEqual(second.version, first.version);
    await page.reload();
    await page.locator('#app[data-composed]').waitFor({ timeout: 90000 });
    await page.locator('#update-reload').waitFor({ timeout: 120000 });
    await shot(page, 'offline-update-ready');
    const running = () => page.evaluate(async () => ({
      build: document.body.dataset.build,
      page2: Boolean(document.querySelector('meta[name=x-build]')),
      worker2: (await (await fetch('worker.js')).text()).includes('// build 2'),
      caches: (await caches.keys()).sort(),
    }));
    assert.deepEqual(await running(), { build: first.version, page2: false, worker2: false,
      caches: [`remodule-${first.version}`, `remodule-${second.version}`].sort() });
    await Promise.all([page.waitForEvent('load'), page.locator('#update-reload').click()]);
    await page.locator('#app[data-composed]').waitFor({ timeout: 90000 });
    await page.locator('body[data-offline="ready"]').waitFor({ timeout: 60000 });
    assert.deepEqual(await running(), { build: second.version, page2: true, worker2: true, caches: [`remodule-${second.version}`] });
    // The playground came back as it was last saved (by the exercise tab), now on the new build.
    assert.deepEqual(seen(await pageState(page)), saved);
    assert.deepEqual(env.errors, []);
  } finally {
    await env.close();
  }
});

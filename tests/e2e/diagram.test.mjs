// Selecting a module lights its kept units on the layer diagram: the lit dots
// (counted from the pictures' pixels) are the units the CLI says it keeps.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, start, shot } from './harness.mjs';
import { open } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

/** Per lit layer of the diagram: [layer, blue cells in its picture, cells, the printed "k/n"]. */
function litLayers(page) {
  return page.evaluate(() => [...document.querySelectorAll('#layers li')].filter((li) => li.querySelector('.lit')).map((li) => {
    const canvas = li.querySelector('.lit canvas');
    const [k, n] = li.querySelector('.lit-count').textContent.split('/').map(Number);
    // Dense layers: units in rows of up to 32 square cells; read each cell's centre.
    const cols = Math.min(32, n);
    const cell = canvas.width / cols;
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let blue = 0;
    let cells = 0;
    for (let u = 0; u < n; u++) {
      const x = Math.floor((u % cols) * cell + cell / 2);
      const y = Math.floor(Math.floor(u / cols) * cell + cell / 2);
      const i = 4 * (y * canvas.width + x);
      cells++;
      if (px[i] === 37 && px[i + 1] === 99 && px[i + 2] === 235) blue++;
    }
    return [li.dataset.layer, blue, cells, k, n];
  }));
}

test('selecting a module lights the units it keeps on the layer diagram', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await page.locator('#layers .lit').first().waitFor();
  const report = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--json');
  for (const cls of ['7', '2']) {
    await page.locator(`.module[data-class="${cls}"] .cls`).click();
    await page.waitForFunction((c) => document.getElementById('layers').dataset.module === c, cls);
    const lit = await litLayers(page);
    assert.deepEqual(lit.map((l) => l[0]), ['dense_1', 'dense_2']); // the two hidden layers, not input or output
    const kept = lit.reduce((a, l) => a + l[1], 0);
    const total = lit.reduce((a, l) => a + l[2], 0);
    for (const [, blue, , k] of lit) assert.equal(blue, k);
    // kept ÷ tracked units is the module's Jaccard index in the CLI's report.
    assert.ok(Math.abs(kept / total - report.modules[Number(cls)].jaccard) < 1e-6, `${kept}/${total} vs ${report.modules[Number(cls)].jaccard}`);
    assert.ok(kept < total, 'the module removes some units');
    assert.equal(await page.locator(`.module[data-class="${cls}"]`).evaluate((c) => c.classList.contains('selected')), true);
    assert.equal(await page.locator('.module.selected').count(), 1);
    assert.equal(await page.locator('#units-class').inputValue(), cls);
  }
  await shot(page, 'diagram-module-2');
  // Keyboard: the module names are buttons.
  await page.locator('.module[data-class="9"] .cls').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('layers').dataset.module === '9');

  // Conv maps and recurrent steps are pictured on their layers too.
  await page.locator('#model-picker').selectOption('digits_cnn.keras');
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('CNN') && document.querySelectorAll('#layers .lit').length > 0);
  assert.ok(await page.locator('#layers li[data-layer^="conv"] .lit canvas').count() >= 1);
  await page.locator('#model-picker').selectOption('lang_a_lstm.keras');
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('LSTM') && document.querySelector('#layers li.tracked .lit'));
  const lstm = await page.locator('#layers li.tracked').first().getAttribute('data-layer');
  assert.match(await page.locator('#layers li.tracked .lit').first().getAttribute('title'), /steps × units/);
  assert.ok(lstm);
  await shot(page, 'diagram-lstm');
  assert.deepEqual(env.errors, []);
});

// Writes the README's screenshot (docs/screenshot.png, 1280×800) and a tablet-width
// view (test-output/e2e/tablet.png): the faulty digits model with its 7-module
// replaced from MLP B, its 1-module's kept units lit, a test 7 scored. Run: node tests/e2e/screenshot.mjs
import { join } from 'node:path';
import { OUT, ROOT, start } from './harness.mjs';
import { open, setSource } from './page.mjs';

const env = await start();
try {
  for (const [width, height, path] of [[1280, 800, join(ROOT, 'docs', 'screenshot.png')], [800, 1100, join(OUT, 'tablet.png')]]) {
    const page = await env.newPage({ width, height });
    await open(page, env.url);
    await page.locator('#model-picker').selectOption('digits_mlp_faulty.keras');
    await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('faulty'), null, { timeout: 60000 });
    await setSource(page, '7', 'digits_mlp_b.keras');
    // The faulty model's 1-module: it learned the 7s as 1s.
    await page.locator('.module[data-class="1"] .cls').click();
    await page.waitForFunction(() => document.getElementById('layers').dataset.module === '1');
    await page.locator('#samples button').first().click();
    await page.waitForFunction(() => document.getElementById('answer').textContent === '7');
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await page.waitForTimeout(300);
    await page.screenshot({ path });
    if (width < 1000) await page.screenshot({ path: join(OUT, 'tablet-full.png'), fullPage: true });
    console.log(`wrote ${path}`);
  }
  if (env.errors.length) throw new Error(`page errors: ${env.errors.join('; ')}`);
} finally {
  await env.close();
}

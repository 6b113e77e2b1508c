// Export from the page: "Download ONNX" gives the bytes the CLI exports for
// the same composition (whose answers onnx_export.test.mjs checks in
// onnxruntime), and "Download module set" gives .remodule files the CLI reads
// and the page loads back with the same modules.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, OUT, ROOT, cli, compositionFile, pctText, start } from './harness.mjs';
import { open, setSource, toggle } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });


/** Clicks `button` and saves the `count` downloads it starts: [{name, path}]. */
async function downloads(page, button, count) {
  const files = [];
  let onDownload;
  const got = new Promise((resolve) => {
    onDownload = async (d) => {
      const path = join(OUT, `page-${d.suggestedFilename()}`);
      await d.saveAs(path);
      files.push({ name: d.suggestedFilename(), path });
      if (files.length === count) resolve();
    };
    page.on('download', onDownload);
  });
  await page.locator(button).click();
  await got;
  page.off('download', onDownload);
  return files.sort((a, b) => (a.name < b.name ? -1 : 1));
}

test('Download ONNX and module sets of a composition; the sets load back in the CLI and the page', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  // The faulty model, its 7-module replaced from the good model, 3 removed.
  await page.locator('#model-picker').selectOption('digits_mlp_faulty.keras');
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('faulty'));
  await page.locator('#app[data-composed]').waitFor();
  await setSource(page, '7', 'digits_mlp.keras');
  await toggle(page, '3');

  const [onnx] = await downloads(page, '#export-onnx', 1);
  assert.equal(onnx.name, 'digits_mlp_faulty-composition.onnx');
  const cliOnnx = join(OUT, 'cli-composition.onnx');
  const plan = compositionFile('page-export', { faulty: ['models/digits_mlp_faulty.keras', 'data/digits.npz'], good: ['models/digits_mlp.keras', 'data/digits.npz'] },
    [['faulty', ['0', '1', '2', '4', '5', '6']], ['good', ['7']], ['faulty', ['8', '9']]]);
  execFileSync(BIN, ['export', plan, '--softmax', '--out', cliOnnx], { cwd: ROOT });
  assert.ok(readFileSync(onnx.path).equals(readFileSync(cliOnnx)), 'the page exports the bytes the CLI exports');

  const sets = await downloads(page, '#export-set', 2);
  assert.deepEqual(sets.map((f) => f.name), ['digits_mlp.remodule', 'digits_mlp_faulty.remodule']);
  const faultyDigest = await page.locator('#app').getAttribute('data-mask-digest');
  for (const f of sets) {
    const source = f.name === 'digits_mlp.remodule' ? 'digits_mlp.keras' : 'digits_mlp_faulty.keras';
    const original = cli('report', `models/${source}`, '--data', 'data/digits.npz', '--json');
    // The CLI reads the set as saved: same masks, same accuracies, no re-decomposition.
    const saved = cli('report', f.path, '--data', 'data/digits.npz', '--json');
    assert.equal(saved.mask_digest, original.mask_digest);
    assert.equal(saved.composed_accuracy, original.composed_accuracy);
    assert.equal(cli('eval', f.path, '--data', 'data/digits.npz', '--json').accuracy, original.model_accuracy);
    assert.match(execFileSync(BIN, ['info', f.path, '--data', 'data/digits.npz'], { cwd: ROOT, encoding: 'utf8' }), /parameters, 10 classes/);
    if (source === 'digits_mlp_faulty.keras') assert.equal(saved.mask_digest, faultyDigest);
  }

  // Back into the page: the uploaded set brings its modules (same masks, same numbers).
  const good = sets.find((f) => f.name === 'digits_mlp.remodule');
  await page.locator('#upload').setInputFiles({ name: 'digits_mlp.remodule', mimeType: 'application/octet-stream', buffer: readFileSync(good.path) });
  await page.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('digits_mlp.remodule'));
  await page.locator('#app[data-composed]').waitFor();
  const report = cli('report', 'models/digits_mlp.keras', '--data', 'data/digits.npz', '--json');
  assert.equal(await page.locator('#app').getAttribute('data-mask-digest'), report.mask_digest);
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(report.composed_accuracy));
  // Its modules compose like the source model's.
  await toggle(page, '5');
  const expected = cli('compose', good.path, '--data', 'data/digits.npz', '--classes', '0,1,2,3,4,6,7,8,9', '--json');
  assert.equal(await page.locator('#composed-acc').textContent(), pctText(expected.top1));
  assert.deepEqual(env.errors, []);
});

test('a module set of another data set is refused with a message and the page keeps working', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  const set = join(OUT, 'cli-clothing.remodule');
  execFileSync(BIN, ['report', 'models/clothing_mlp.keras', '--data', 'data/clothing.npz', '--samples', '50', '--out', set], { cwd: ROOT });
  const before = await page.locator('#composed-acc').textContent();
  await page.locator('#upload').setInputFiles(set);
  await page.locator('#error-banner:not([hidden])').waitFor();
  assert.match(await page.locator('#error-text').textContent(), /decomposed for classes/);
  assert.equal(await page.locator('#composed-acc').textContent(), before);
  assert.equal(await page.locator('.module').count(), 10);
});

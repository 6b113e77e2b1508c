// The page's side of the one settings schema (www/settings.json): www/settings.js takes its
// defaults and its link/form check from the file, and draws the line exactly at each bound.
// tests/settings_schema.rs checks the same file against Rust's Settings, so the page and the
// engine agree through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { DEFAULTS, SETTINGS, nonDefault, range, settingsProblem } from '../../www/settings.js';
import { decodeFragment, encodeState } from '../../www/share.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const file = JSON.parse(readFileSync(join(ROOT, 'www', 'settings.json'), 'utf8')).settings;
const ctx = { catalog: JSON.parse(readFileSync(join(ROOT, 'models', 'catalog.json'), 'utf8')), exercises: [] };

test('the defaults and names are the file\'s', () => {
  assert.deepEqual(SETTINGS.map((s) => s.name), file.map((s) => s.name));
  assert.deepEqual(DEFAULTS, Object.fromEntries(file.map((s) => [s.name, s.default])));
  assert.equal(settingsProblem(DEFAULTS), null);
  assert.deepEqual(nonDefault(DEFAULTS), {});
  assert.deepEqual(nonDefault({ ...DEFAULTS, delta: 0.25 }), { delta: 0.25 });
});

test('each numeric bound is the line between taken and refused', () => {
  let checked = 0;
  for (const s of file.filter((e) => e.type === 'integer' || e.type === 'number')) {
    const eps = s.type === 'integer' ? 1 : 1e-3;
    for (const [side, dir] of [['min', -1], ['max', 1]]) {
      const b = s[side];
      const inclusive = s[`${side}_inclusive`];
      const at = settingsProblem({ [s.name]: b });
      const outside = settingsProblem({ [s.name]: b + dir * eps });
      const inside = settingsProblem({ [s.name]: b - dir * eps });
      assert.equal(at === null, inclusive, `${s.name}: its ${inclusive ? 'inclusive' : 'exclusive'} ${side} ${b} gave ${at}`);
      assert.match(outside ?? '', new RegExp(`settings\\.${s.name} must be an? (integer|number) in \\${range(s)[0]}`), `${s.name}: just outside its ${side}`);
      assert.equal(inside, null, `${s.name}: just inside its ${side}`);
      checked++;
    }
    assert.notEqual(settingsProblem({ [s.name]: NaN }), null);
    assert.notEqual(settingsProblem({ [s.name]: String(s.default) }), null);
    if (s.type === 'integer') assert.notEqual(settingsProblem({ [s.name]: s.default + 0.5 }), null);
  }
  assert.ok(checked >= 8, `only ${checked} bounds checked`);
});

test('enums take their values only, booleans true and false only, and unknown keys are refused', () => {
  for (const s of file) {
    if (s.type === 'enum') {
      for (const v of s.values) assert.equal(settingsProblem({ [s.name]: v }), null);
      assert.match(settingsProblem({ [s.name]: 'not-a-value' }), new RegExp(`one of ${s.values.join(', ')}`));
    }
    if (s.type === 'boolean') {
      assert.equal(settingsProblem({ [s.name]: true }), null);
      assert.notEqual(settingsProblem({ [s.name]: 'true' }), null);
      assert.notEqual(settingsProblem({ [s.name]: 1 }), null);
    }
  }
  assert.match(settingsProblem({ evil: 1 }), /unknown key "evil"/);
  assert.match(settingsProblem([]), /must be an object/);
});

test('links made before the default strength was 0.2 open at strength 0; links made now carry theirs', async () => {
  const st = (settings) => ({ models: [{ key: 'digits_mlp.keras', dataset: 'digits' }], settings, current: 'digits_mlp.keras', slots: null, try: null, exercise: null, hide: [] });
  assert.equal(DEFAULTS.strength, 0.2);
  // Today's default round trips as "the defaults"; 0 and 0.5 as themselves.
  for (const [settings, back] of [[{}, {}], [{ strength: 0 }, { strength: 0 }], [{ strength: 0.5 }, { strength: 0.5 }]]) {
    assert.deepEqual((await decodeFragment(await encodeState(st(settings)), ctx)).settings, back, JSON.stringify(settings));
  }
  // An old link: its JSON has no strength at all.
  const old = await encodeState(st({ delta: 0.1 }));
  const json = JSON.parse(inflateRawSync(Buffer.from(new URLSearchParams(old).get('s'), 'base64url')).toString());
  assert.equal(json.settings.strength, 0.2, 'a new link always names its strength');
  delete json.settings.strength;
  const legacy = `v=1&s=${deflateRawSync(Buffer.from(JSON.stringify(json))).toString('base64url')}`;
  assert.deepEqual((await decodeFragment(legacy, ctx)).settings, { delta: 0.1, strength: 0 });
});

test('a share link carries settings through the schema\'s check', async () => {
  const st = (settings) => ({ models: [{ key: 'digits_mlp.keras', dataset: 'digits' }], settings, current: 'digits_mlp.keras', slots: null, try: null, exercise: null, hide: [] });
  const ok = await decodeFragment(await encodeState(st({ delta: 0.1, technique: 'mc-bi' })), ctx);
  assert.deepEqual(ok.settings, { delta: 0.1, technique: 'mc-bi' });
  const bad = await encodeState(st({ delta: 0 }));
  await assert.rejects(decodeFragment(bad, ctx), /settings\.delta must be a number in \(0, 10\], not 0/);
});

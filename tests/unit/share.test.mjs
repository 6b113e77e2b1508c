// The share-link codec (www/share.js) in node: round trips, and thousands of
// random and mutated links. The decoder must always either return a state
// that satisfies every invariant below or throw ShareLinkError — never hang,
// never throw anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import {
  LIMITS, ShareLinkError, VERSION, decodeFragment, encodeState, fromBase64url, inflateRaw, parseFragment, sha256, sha256Hex, stateToJson, toBase64url,
} from '../../www/share.js';
import { HIDEABLE, validateExercise } from '../../www/exercises.js';
import { nonDefault } from '../../www/settings.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const catalog = JSON.parse(readFileSync(join(ROOT, 'models', 'catalog.json'), 'utf8'));
const exercises = JSON.parse(readFileSync(join(ROOT, 'www', 'exercises', 'builtin.json'), 'utf8'))
  .map((e) => validateExercise(e, { catalog }, { builtin: true }));
const ctx = { catalog, exercises };

// ---- a small seeded PRNG so failures reproduce --------------------------------
function rng(seed) {
  let s = seed >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
  const int = (n) => Math.floor(next() * n);
  const pick = (a) => a[int(a.length)];
  return { next, int, pick, bool: () => next() < 0.5 };
}

// ---- random valid states ------------------------------------------------------
async function randomState(r) {
  const files = catalog.models.map((m) => m.file);
  const n = 1 + r.int(Math.min(4, files.length));
  const chosen = [...files].sort(() => r.next() - 0.5).slice(0, n);
  const models = chosen.map((f) => ({ key: f, dataset: catalog.models.find((m) => m.file === f).dataset }));
  if (r.next() < 0.3) {
    const bytes = new Uint8Array(1 + r.int(r.bool() ? 300 : LIMITS.embed + 100)).map(() => r.int(256));
    const name = `my model ${r.int(1000)}.keras`;
    models.splice(r.int(models.length + 1), 0, {
      key: `upload:${name}`, dataset: r.pick(Object.keys(catalog.datasets)),
      upload: { name, sha256: await sha256Hex(bytes), bytes: bytes.length <= LIMITS.embed && r.bool() ? bytes : null },
    });
  }
  const cur = r.pick(models);
  const st = { models, settings: {}, current: cur.key, slots: null, try: null, text: null, update: false, verify: null, exercise: null, hide: [] };
  if (r.next() < 0.8) {
    const base = cur.dataset;
    const sameDs = models.filter((m) => m.dataset === base);
    st.slots = catalog.datasets[base].classes.map((_, c) => ({ source: r.pick(sameDs).key, class: c, on: r.next() < 0.7 }));
    const sameShape = (d) => JSON.stringify(catalog.datasets[d].shape) === JSON.stringify(catalog.datasets[base].shape);
    for (const m of models.filter((x) => x.dataset !== base && sameShape(x.dataset))) {
      for (let c = 0; c < catalog.datasets[m.dataset].classes.length; c++) {
        if (r.next() < 0.2 && !st.slots.some((s) => s.class === c && models.find((x) => x.key === s.source).dataset === m.dataset)) {
          st.slots.push({ source: m.key, class: c, on: r.bool() });
        }
      }
    }
  }
  if (r.next() < 0.3) st.settings = { mode: r.pick(['paper', 'reference']), samples_per_class: 1 + r.int(2000) };
  if (r.next() < 0.2) st.settings = { ...st.settings, gates: r.bool(), keep_encoder: r.bool() };
  const t = r.next();
  if (t < 0.3) st.try = { sample: r.int(LIMITS.samples) };
  else if (t < 0.6) st.try = { pixels: new Uint8Array(LIMITS.pixels).map(() => (r.next() < 0.8 ? 0 : r.int(256))) };
  const x = r.next();
  if (x < 0.2) st.text = { sample: r.int(LIMITS.samples) };
  else if (x < 0.5) st.text = Array.from({ length: 1 + r.int(r.bool() ? 40 : LIMITS.text) }, () => r.pick([...'abc xyzäöüßéñ€漢\n\t"\'<>&', '😀'])).join('').slice(0, LIMITS.text);
  st.update = r.next() < 0.3;
  const verifiers = models.filter((m) => m.dataset === cur.dataset && m.key !== cur.key);
  if (verifiers.length && r.next() < 0.5) st.verify = { class: r.int(catalog.datasets[cur.dataset].classes.length), by: r.pick(verifiers).key };
  const e = r.next();
  if (e < 0.3) st.exercise = r.pick(exercises);
  else if (e < 0.5) {
    st.exercise = validateExercise({
      title: `Exercise ${r.int(100)} <b>&amp;</b>`, story: 'Do it.', models: [cur.key],
      goal: [{ check: 'accuracy', min: r.next(), classes: [`${cur.dataset}:${catalog.datasets[cur.dataset].classes[0]}`] },
        { check: 'modules_from', model: cur.key, max: r.int(5) }],
      hints: ['one', 'two'], hide: [r.pick(HIDEABLE)],
    }, { catalog, uploads: models.filter((m) => m.upload).map((m) => m.key) });
  }
  if (r.next() < 0.2) st.hide = [r.pick(HIDEABLE)];
  return st;
}

/** Invariants of a decoded state, checked independently of the decoder. */
function checkInvariants(st) {
  assert.ok(Array.isArray(st.models) && st.models.length >= 1 && st.models.length <= LIMITS.models);
  const keys = st.models.map((m) => m.key);
  assert.equal(new Set(keys).size, keys.length);
  for (const m of st.models) {
    assert.ok(Object.hasOwn(catalog.datasets, m.dataset), `dataset ${m.dataset}`);
    if (m.upload) {
      assert.equal(m.key, `upload:${m.upload.name}`);
      assert.match(m.upload.sha256, /^[0-9a-f]{64}$/);
      assert.ok(m.upload.bytes === null || (m.upload.bytes instanceof Uint8Array && m.upload.bytes.length <= LIMITS.embed));
    } else {
      assert.equal(catalog.models.find((c) => c.file === m.key)?.dataset, m.dataset);
    }
  }
  assert.ok(keys.includes(st.current));
  if (st.slots) {
    const ds = (k) => st.models.find((m) => m.key === k).dataset;
    const seen = new Set();
    for (const s of st.slots) {
      assert.ok(keys.includes(s.source));
      assert.ok(Number.isInteger(s.class) && s.class >= 0 && s.class < catalog.datasets[ds(s.source)].classes.length);
      assert.equal(typeof s.on, 'boolean');
      const id = `${ds(s.source)}:${s.class}`;
      assert.ok(!seen.has(id));
      seen.add(id);
    }
    const base = ds(st.current);
    catalog.datasets[base].classes.forEach((_, c) => assert.ok(seen.has(`${base}:${c}`)));
  }
  assert.ok(st.text === null || (typeof st.text === 'string' && st.text.length >= 1 && st.text.length <= LIMITS.text)
    || (Number.isInteger(st.text.sample) && st.text.sample >= 0 && st.text.sample < LIMITS.samples));
  assert.equal(typeof st.update, 'boolean');
  if (st.verify !== null) {
    const base = st.models.find((m) => m.key === st.current).dataset;
    assert.ok(Number.isInteger(st.verify.class) && st.verify.class >= 0 && st.verify.class < catalog.datasets[base].classes.length);
    assert.notEqual(st.verify.by, st.current);
    assert.equal(st.models.find((m) => m.key === st.verify.by)?.dataset, base);
  }
  if (st.try) {
    assert.ok((Number.isInteger(st.try.sample) && st.try.sample >= 0 && st.try.sample < LIMITS.samples)
      || (st.try.pixels instanceof Uint8Array && st.try.pixels.length === LIMITS.pixels));
  }
  if (st.exercise) {
    assert.equal(typeof st.exercise.title, 'string');
    assert.ok(st.exercise.goal.length >= 1);
  }
  for (const h of st.hide) assert.ok(HIDEABLE.includes(h));
}

const TIMEOUT = 5000;
/** Decodes with a time limit; returns the state or the ShareLinkError. Anything else fails the test. */
async function decodeTyped(frag, what) {
  let timer;
  const hang = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`decoder hung on ${what}`)), TIMEOUT); });
  try {
    const st = await Promise.race([decodeFragment(frag, ctx), hang]);
    checkInvariants(st);
    return st;
  } catch (e) {
    if (e instanceof ShareLinkError) {
      assert.equal(typeof e.code, 'string');
      assert.ok(e.message.length > 0 && e.message.length < 400, e.message);
      return e;
    }
    throw new Error(`${what}: ${e?.stack ?? e}\nfragment: ${String(frag).slice(0, 300)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** The page-facing state in a comparable form. */
const norm = (st) => JSON.parse(JSON.stringify({ ...st, models: st.models.map((m) => (m.upload ? { ...m, upload: { ...m.upload, bytes: m.upload.bytes ? [...m.upload.bytes] : null } } : m)), try: st.try?.pixels ? { pixels: [...st.try.pixels] } : st.try }));

test('base64url round trips and rejects other alphabets', () => {
  const r = rng(7);
  for (let i = 0; i < 500; i++) {
    const b = new Uint8Array(r.int(200)).map(() => r.int(256));
    assert.deepEqual(fromBase64url(toBase64url(b)), b);
    assert.deepEqual(toBase64url(b), Buffer.from(b).toString('base64url'));
  }
  for (const bad of ['a', 'ab=c', 'ab+c', 'ab/c', 'ab c', 'é', 'abcde']) assert.throws(() => fromBase64url(bad), ShareLinkError);
});

test('the plain-JS SHA-256 (for pages without Web Crypto) agrees with node', async () => {
  const { createHash } = await import('node:crypto');
  const r = rng(5);
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100000, ...Array.from({ length: 50 }, () => r.int(5000))]) {
    const b = new Uint8Array(n).map(() => r.int(256));
    assert.equal(Buffer.from(sha256(b)).toString('hex'), createHash('sha256').update(b).digest('hex'), `${n} bytes`);
  }
});

test('2,000 random valid states survive encode → decode unchanged', async () => {
  const r = rng(42);
  let longest = 0;
  for (let i = 0; i < 2000; i++) {
    const st = await randomState(r);
    const frag = await encodeState(st);
    longest = Math.max(longest, frag.length);
    assert.ok(frag.length <= LIMITS.fragment);
    const back = await decodeTyped(`#${frag}`, `round trip ${i}`);
    assert.ok(!(back instanceof ShareLinkError), `round trip ${i}: ${back.message}`);
    // Settings come back as the page keeps them: only what differs from the defaults.
    const want = norm({ ...st, settings: nonDefault(st.settings) });
    // A too-large upload leaves its bytes at home.
    for (const m of want.models) if (m.upload?.bytes && m.upload.bytes.length > LIMITS.embed) m.upload.bytes = null;
    assert.deepEqual(norm(back), want, `round trip ${i}`);
  }
  console.log(`# longest link: ${longest} characters`);
});

test('a typical link is short', async () => {
  const slots = Array.from({ length: 10 }, (_, c) => ({ source: c === 7 ? 'digits_mlp_b.keras' : 'digits_mlp_faulty.keras', class: c, on: c !== 3 }));
  const st = { models: [{ key: 'digits_mlp_faulty.keras', dataset: 'digits' }, { key: 'digits_mlp_b.keras', dataset: 'digits' }], settings: {},
    current: 'digits_mlp_faulty.keras', slots, try: { sample: 4 }, exercise: exercises[0], hide: [] };
  const frag = await encodeState(st);
  assert.ok(frag.length < 260, `${frag.length} characters`);
  assert.match(frag, /^v=1&s=[A-Za-z0-9_-]+$/);
});

test('typed text and the module-update switch: restored exactly, and an older link (without them) still opens', async () => {
  const base = { models: [{ key: 'lang_a_lstm.keras', dataset: 'lang_a' }, { key: 'lang_b_lstm.keras', dataset: 'lang_b' }], settings: {},
    current: 'lang_a_lstm.keras', slots: null, try: null, exercise: null, hide: [] };
  for (const text of ['dit is een zin', ' two  spaces\nand a line ', 'x'.repeat(LIMITS.text), { sample: 11 }]) {
    const back = await decodeTyped(`#${await encodeState({ ...base, text, update: true })}`, 'text');
    assert.deepEqual(back.text, text);
    assert.equal(back.update, true);
  }
  // Links made before these keys existed (same version) decode to "no text, switch off".
  const old = await decodeTyped(pack({ models: ['lang_a_lstm.keras'], current: 0 }), 'old link');
  assert.equal(old.text, null);
  assert.equal(old.update, false);
  for (const bad of [{ text: '' }, { text: 'x'.repeat(LIMITS.text + 1) }, { text: 'a\u0000b' }, { text: 5 }, { text: { sample: 12 } }, { update: true }, { update: 2 }]) {
    const out = await decodeTyped(pack({ models: ['lang_a_lstm.keras'], current: 0, ...bad }), `bad ${JSON.stringify(bad)}`);
    assert.ok(out instanceof ShareLinkError, JSON.stringify(bad));
  }
});

test('the verification row: restored exactly, an older link opens with it off, bad values are refused', async () => {
  const models = [{ key: 'digits_mlp_faulty.keras', dataset: 'digits' }, { key: 'clothing_mlp.keras', dataset: 'clothing' }, { key: 'digits_mlp_b.keras', dataset: 'digits' }];
  const base = { models, settings: {}, current: 'digits_mlp_faulty.keras', slots: null, try: null, exercise: null, hide: [] };
  const back = await decodeTyped(`#${await encodeState({ ...base, verify: { class: 1, by: 'digits_mlp_b.keras' } })}`, 'verify');
  assert.deepEqual(back.verify, { class: 1, by: 'digits_mlp_b.keras' });
  assert.deepEqual(stateToJson(back).verify, { class: 1, by: 2 });
  assert.equal((await decodeTyped(pack({ models: ['digits_mlp_faulty.keras'], current: 0 }), 'old link')).verify, null);
  const three = ['digits_mlp_faulty.keras', 'clothing_mlp.keras', 'digits_mlp_b.keras'];
  for (const bad of [{ class: 1, by: 0 }, { class: 1, by: 1 }, { class: 10, by: 2 }, { class: -1, by: 2 }, { class: 1, by: 3 }, { class: '1', by: 2 }, { by: 2 }, [1, 2], 1]) {
    const out = await decodeTyped(pack({ models: three, current: 0, verify: bad }), `bad verify ${JSON.stringify(bad)}`);
    assert.ok(out instanceof ShareLinkError, JSON.stringify(bad));
    assert.match(out.message, /verify/);
  }
});

test('3,000 random fragments are refused with ShareLinkError', async () => {
  const r = rng(1234);
  const alphabets = ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', '=&v1s#%+/ ', '\u0000\uffff\ud800é漢'];
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const len = r.next() < 0.95 ? r.int(400) : r.int(LIMITS.fragment + 1000);
    let body = '';
    for (let k = 0; k < len; k++) body += r.pick(alphabets[r.next() < 0.9 ? 0 : r.int(3)]);
    const frag = r.pick([`#v=1&s=${body}`, `#${body}`, `#v=${r.int(3)}&s=${body}&x=1`, body, `#s=${body}&v=1`]);
    const out = await decodeTyped(frag, `random ${i}`);
    if (!(out instanceof ShareLinkError)) accepted++;
  }
  assert.equal(accepted, 0);
});

function mutateString(r, s) {
  const ops = r.int(4) + 1;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let k = 0; k < ops; k++) {
    const i = r.int(s.length + 1);
    switch (r.int(6)) {
      case 0: s = s.slice(0, i) + r.pick(alphabet) + s.slice(i + 1); break; // replace
      case 1: s = s.slice(0, i) + r.pick(alphabet) + s.slice(i); break; // insert
      case 2: s = s.slice(0, i) + s.slice(i + 1); break; // delete
      case 3: s = s.slice(0, i); break; // truncate
      case 4: s = s + s.slice(i); break; // append junk
      default: { const j = r.int(s.length + 1); s = s.slice(0, Math.min(i, j)) + s.slice(Math.max(i, j)) + s.slice(Math.min(i, j), Math.max(i, j)); }
    }
  }
  return s;
}

test('4,000 mutated links decode to a valid state or ShareLinkError', async () => {
  const r = rng(99);
  const codes = {};
  for (let i = 0; i < 4000; i++) {
    const frag = await encodeState(await randomState(r));
    const s = frag.slice(frag.indexOf('s=') + 2).split('&')[0];
    const mutated = `#v=1&s=${mutateString(r, s)}`;
    const out = await decodeTyped(mutated, `mutation ${i}`);
    const code = out instanceof ShareLinkError ? out.code : 'ok';
    codes[code] = (codes[code] ?? 0) + 1;
  }
  console.log(`# outcomes: ${JSON.stringify(codes)}`);
  assert.ok((codes.compression ?? 0) > 100, 'most mutations break the compressed stream');
});

// Mutations of the JSON itself, re-compressed: these reach the validator.
const WEIRD = [null, true, false, 0, -1, 1.5, 1e308, -0, 7, 9, 10, 11, 12, 784, 2 ** 53, '', 'x', '__proto__', 'constructor', 'digits',
  'digits:7', 'digits:99', 'clothing:Bag', 'upload:x', 'digits_mlp.keras', 'a'.repeat(5000), '<img src=x onerror=alert(1)>', [], [[]], {},
  { __proto__: { polluted: 1 } }, [0, 0, 1], [0, 99, 1], [-1, 0, 1], [0, 0, 2], { sample: 3 }, { sample: 12 }, { pixels: 'AAAA' },
  { check: 'accuracy', min: 2 }, { check: 'nope' }, ['upload', 'tryit'], 'a'.repeat(64), '0'.repeat(64), 'a'.repeat(401), 'tab\there', 'nul\u0000'];

function mutateJson(r, v, depth = 0) {
  if (r.next() < 0.15 || depth > 6) return structuredClone(r.pick(WEIRD));
  if (Array.isArray(v)) {
    const a = v.map((x) => (r.next() < 0.3 ? mutateJson(r, x, depth + 1) : x));
    const op = r.next();
    if (op < 0.1) a.splice(r.int(a.length + 1), 0, structuredClone(r.pick(WEIRD)));
    else if (op < 0.2) a.splice(r.int(a.length), 1);
    else if (op < 0.25) a.push(...a);
    return a;
  }
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) {
      const op = r.next();
      if (op < 0.05) continue; // drop a key
      o[op < 0.08 ? `${k}_` : k] = r.next() < 0.3 ? mutateJson(r, x, depth + 1) : x;
    }
    if (r.next() < 0.1) o[r.pick(['extra', 'v', 'models', 'settings', 'try', 'hide', '__proto__'])] = structuredClone(r.pick(WEIRD));
    return o;
  }
  return r.next() < 0.5 ? structuredClone(r.pick(WEIRD)) : v;
}

const pack = (obj) => `#v=1&s=${toBase64url(deflateRawSync(Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj))))}`;

test('4,000 tampered states (valid compression, mutated JSON) are validated or refused', async () => {
  const r = rng(2024);
  let ok = 0;
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    const json = stateToJson(await randomState(r));
    const out = await decodeTyped(pack(mutateJson(r, json)), `tampered ${i}`);
    if (out instanceof ShareLinkError) refused++; else ok++;
  }
  console.log(`# tampered: ${ok} still valid, ${refused} refused`);
  assert.ok(refused > 1000 && ok > 100);
});

test('hostile JSON: deep nesting, huge numbers, prototype keys, wrong types', async () => {
  const deep = `${'['.repeat(100000)}${']'.repeat(100000)}`;
  for (const s of [deep, '{"models":' + deep + '}', '"just a string"', '123', 'null', '{',
    '\ufeff{}', '{"models":["digits_mlp.keras"],"current":"0"}', '{"models":["digits_mlp.keras","digits_mlp.keras"],"current":0}',
    '{"models":["digits_mlp.keras"],"current":0,"settings":{"mode":"paper","evil":1}}',
    '{"models":["digits_mlp.keras"],"current":0,"settings":{"samples_per_class":1e9}}',
    '{"models":["digits_mlp.keras"],"current":0,"settings":{"gates":"yes"}}', '{"models":["digits_mlp.keras"],"current":0,"settings":{"keep_encoder":1}}',
    '{"models":["../../etc/passwd"],"current":0}', '{"models":["digits_mlp.keras"],"current":0,"exercise":"no-such"}',
    '{"models":["digits_mlp.keras"],"current":0,"slots":[[0,0,1]]}',
    '{"models":["digits_mlp.keras","clothing_mlp.keras"],"current":0,"slots":[[0,0,1],[0,1,1],[0,2,1],[0,3,1],[0,4,1],[0,5,1],[0,6,1],[0,7,1],[0,8,1],[0,9,1],[1,3,1],[1,3,0]]}',
    '{"models":[{"upload":"a","sha256":"' + 'a'.repeat(64) + '","dataset":"digits","bytes":"AAAA"}],"current":0}']) {
    const out = await decodeTyped(pack(s), `hostile ${s.slice(0, 40)}`);
    assert.ok(out instanceof ShareLinkError, `accepted: ${s.slice(0, 80)}`);
  }
  // Unknown top-level keys are ignored (and pollute nothing); known ones still count.
  const st = await decodeTyped(pack('{"models":["digits_mlp.keras"],"current":0,"future":{"anything":1},"__proto__":{"polluted":1}}'), 'unknown key');
  assert.ok(!(st instanceof ShareLinkError), st.message);
  assert.equal(st.current, 'digits_mlp.keras');
  assert.equal({}.polluted, undefined);
  assert.equal(st.polluted, undefined);
});

test('deflate bombs are stopped at the byte cap, quickly', async () => {
  // 45 MB of zeros deflates to ~45 KB: a link just under the length cap.
  const bomb = deflateRawSync(Buffer.alloc(45 * 1024 * 1024), { level: 9 });
  const frag = `#v=1&s=${toBase64url(bomb)}`;
  assert.ok(frag.length < LIMITS.fragment, `${frag.length}`);
  const t0 = performance.now();
  const out = await decodeTyped(frag, 'bomb');
  const ms = performance.now() - t0;
  assert.ok(out instanceof ShareLinkError && out.code === 'too-large', String(out.message));
  assert.ok(ms < 1500, `took ${ms.toFixed(0)} ms`);
  console.log(`# deflate bomb refused in ${ms.toFixed(0)} ms`);
  // The inflater itself, straight: output beyond the cap is never collected.
  await assert.rejects(inflateRaw(bomb, 1000), (e) => e instanceof ShareLinkError && e.code === 'too-large');
});

test('too long, wrong version, missing parts, tampered embedded upload', async () => {
  const long = await decodeTyped(`#v=1&s=${'A'.repeat(LIMITS.fragment + 1)}`, 'long');
  assert.equal(long.code, 'too-long');
  const good = await encodeState({ models: [{ key: 'digits_mlp.keras', dataset: 'digits' }], settings: {}, current: 'digits_mlp.keras', slots: null, try: null, exercise: null, hide: [] });
  assert.equal((await decodeTyped(`#${good.replace('v=1', 'v=2')}`, 'v2')).code, 'version');
  assert.equal((await decodeTyped(`#${good.replace('v=1', 'v=01')}`, 'v01')).code, 'version');
  assert.equal((await decodeTyped(`#${good.replace('v=1&', '')}`, 'no v')).code, 'syntax');
  assert.equal(VERSION, 1);
  // Extra keys in the fragment are ignored; known *_hide keys are read.
  const withHide = await decodeTyped(`#${good}&matrix_hide=true&bogus_hide=true&utm=x`, 'hide');
  assert.deepEqual(withHide.hide, ['matrix']);
  assert.deepEqual(parseFragment('#v=1&s=x&tryit_hide=true&tryit_hide=false').hide, ['tryit']);

  const bytes = new Uint8Array(500).map((_, i) => i * 7);
  const model = { key: 'upload:t.keras', dataset: 'digits', upload: { name: 't.keras', sha256: await sha256Hex(bytes), bytes } };
  const frag = await encodeState({ models: [model], settings: {}, current: model.key, slots: null, try: null, exercise: null, hide: [] });
  const ok = await decodeTyped(`#${frag}`, 'embedded');
  assert.deepEqual(ok.models[0].upload.bytes, bytes);
  const json = stateToJson({ models: [model], settings: {}, current: model.key });
  json.models[0].bytes = toBase64url(bytes.map((b, i) => (i === 3 ? b ^ 1 : b)));
  assert.equal((await decodeTyped(pack(json), 'tampered upload')).code, 'hash');
});

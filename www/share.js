// Share links: the whole playground state in the URL fragment, and back.
//
//   #v=1&s=<base64url(deflate-raw(JSON))>[&<control>_hide=true ...]
//
// No DOM: the page and the node tests both use it. `decodeFragment` either
// returns a validated state or throws ShareLinkError — for any input. The
// format is documented in docs/SHARE.md.
import { ExerciseError, HIDEABLE, validateExercise } from './exercises.js';
import { DEFAULTS, nonDefault, settingsProblem } from './settings.js';

export const VERSION = 1;
export const LIMITS = Object.freeze({
  /** Characters of the fragment (after '#'). */
  fragment: 64 * 1024,
  /** Bytes of JSON after inflating; the inflater stops reading beyond this. */
  inflated: 128 * 1024,
  /** Uploaded models up to this size travel inside the link. */
  embed: 24 * 1024,
  models: 8,
  name: 200,
  /** Try-it samples offered per data set (the strip). */
  samples: 12,
  pixels: 28 * 28,
  /** Characters of typed text (the text box's maxlength). */
  text: 400,
});

/** Why a link could not be opened; `code` says which stage refused it. */
export class ShareLinkError extends Error {
  constructor(message, code = 'invalid') {
    super(message);
    this.name = 'ShareLinkError';
    this.code = code;
  }
}

// ---- base64url ------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

export function toBase64url(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    if (i + 1 < bytes.length) out += B64[(n >> 6) & 63];
    if (i + 2 < bytes.length) out += B64[n & 63];
  }
  return out;
}

/** Strict: only the base64url alphabet, no padding. */
export function fromBase64url(s, what = 'data') {
  if (typeof s !== 'string' || s.length % 4 === 1) throw new ShareLinkError(`the link's ${what} is not valid base64url`, 'encoding');
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_INDEX[c] : -1;
    if (v < 0) throw new ShareLinkError(`the link's ${what} is not valid base64url (character ${i + 1})`, 'encoding');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

// ---- deflate-raw ----------------------------------------------------------

async function readAll(stream) {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export async function deflateRaw(bytes) {
  return readAll(new Blob([bytes]).stream().pipeThrough(new CompressionStream('deflate-raw')));
}

/**
 * Inflates with a byte cap. The input goes in small slices and the output is
 * counted as it comes, so a deflate bomb is stopped after about `cap` bytes
 * instead of being inflated whole.
 */
export async function inflateRaw(bytes, cap = LIMITS.inflated) {
  const ds = new DecompressionStream('deflate-raw');
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  let stop = false;
  const feeding = (async () => {
    for (let i = 0; i < bytes.length && !stop; i += 256) {
      await writer.ready;
      await writer.write(bytes.subarray(i, i + 256));
    }
    if (!stop) await writer.close();
  })();
  feeding.catch(() => {});
  const parts = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > cap) throw new ShareLinkError(`the link inflates to more than ${cap / 1024} KB (a damaged or hostile link)`, 'too-large');
      parts.push(value);
    }
    await feeding;
  } catch (e) {
    stop = true;
    reader.cancel().catch(() => {});
    writer.abort().catch(() => {});
    if (e instanceof ShareLinkError) throw e;
    throw new ShareLinkError('the link is damaged: its data does not decompress', 'compression');
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

/** SHA-256 as 64 hex digits: Web Crypto where the page has it, else a plain-JS digest. */
export async function sha256Hex(bytes) {
  // crypto.subtle exists only in secure contexts (https, localhost); a page served
  // over plain http from another host still needs hashes for uploads.
  const d = globalThis.crypto?.subtle ? new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)) : sha256(bytes);
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

/** FIPS 180-4 SHA-256 of `bytes` (the fallback of `sha256Hex`). */
export function sha256(bytes) {
  const n = bytes.length;
  const padded = new Uint8Array(Math.ceil((n + 9) / 64) * 64);
  padded.set(bytes);
  padded[n] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(n / 2 ** 29));
  view.setUint32(padded.length - 4, (n * 8) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, k) => (x >>> k) | (x << (32 - k));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(4 * i, x));
  return out;
}

// ---- validation -----------------------------------------------------------

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const bad = (msg) => { throw new ShareLinkError(`the link is invalid: ${msg}`, 'invalid'); };
const index = (v, n, path) => {
  if (!Number.isInteger(v) || v < 0 || v >= n) bad(`${path} must be a whole number from 0 to ${n - 1}`);
  return v;
};

function validName(v, path) {
  if (typeof v !== 'string' || v.length === 0 || v.length > LIMITS.name || /[\u0000-\u001f\u007f]/.test(v)) {
    bad(`${path} must be a file name of 1–${LIMITS.name} printable characters`);
  }
  return v;
}

function validModel(raw, k, catalog) {
  const path = `models[${k}]`;
  if (typeof raw === 'string') {
    const m = catalog.models.find((x) => x.file === raw);
    if (!m) bad(`${path} names a model that is not bundled ("${raw.slice(0, 60)}")`);
    return { key: m.file, dataset: m.dataset };
  }
  if (!isObj(raw)) bad(`${path} must be a bundled model's file name or an uploaded model`);
  const name = validName(raw.upload, `${path}.upload`);
  if (typeof raw.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(raw.sha256)) bad(`${path}.sha256 must be 64 lower-case hex digits`);
  if (typeof raw.dataset !== 'string' || !has(catalog.datasets, raw.dataset)) bad(`${path}.dataset must be one of ${Object.keys(catalog.datasets).join(', ')}`);
  let bytes = null;
  if (has(raw, 'bytes')) {
    if (typeof raw.bytes !== 'string' || raw.bytes.length > Math.ceil((LIMITS.embed * 4) / 3)) bad(`${path}.bytes must be at most ${LIMITS.embed / 1024} KB of base64url`);
    bytes = fromBase64url(raw.bytes, `${path}.bytes`);
    if (bytes.length === 0) bad(`${path}.bytes is empty`);
  }
  return { key: `upload:${name}`, dataset: raw.dataset, upload: { name, sha256: raw.sha256, bytes } };
}

function validSettings(raw) {
  const problem = settingsProblem(raw);
  if (problem) bad(problem);
  return Object.fromEntries(Object.keys(raw).map((k) => [k, raw[k]]));
}

/**
 * Checks a parsed state against the catalog (models, data sets, classes) and
 * the built-in exercises; returns a fresh object of known fields only.
 * `ctx`: {catalog, exercises: [built-in exercise]}.
 */
export function validateState(raw, ctx) {
  const { catalog } = ctx;
  if (!isObj(raw)) bad('the state must be an object');
  if (!Array.isArray(raw.models) || raw.models.length === 0 || raw.models.length > LIMITS.models) bad(`models must list 1–${LIMITS.models} models`);
  const models = raw.models.map((m, k) => validModel(m, k, catalog));
  const keys = models.map((m) => m.key);
  if (new Set(keys).size !== keys.length) bad('models lists a model twice');
  const current = index(raw.current, models.length, 'current');
  const dsOf = (i) => catalog.datasets[models[i].dataset];
  const given = has(raw, 'settings') ? validSettings(raw.settings) : {};
  // Links made before the strength's default was 0.2 do not carry it (0 was the default then):
  // they open as they were made. Links made since always carry it (stateToJson). The state keeps
  // only what differs from today's defaults, as the page does.
  const settings = nonDefault({ strength: 0, ...given });
  const st = { models, settings, current: keys[current], slots: null, try: null, text: null, update: false, verify: null, exercise: null };

  if (has(raw, 'slots')) {
    const base = models[current].dataset;
    const shape = JSON.stringify(catalog.datasets[base].shape ?? null);
    if (!Array.isArray(raw.slots) || raw.slots.length > 8 * 64) bad('slots must be a list');
    const seen = new Set();
    st.slots = raw.slots.map((s, k) => {
      const path = `slots[${k}]`;
      if (!Array.isArray(s) || s.length !== 3) bad(`${path} must be [model, class, on]`);
      const mi = index(s[0], models.length, `${path} model`);
      const classes = dsOf(mi).classes ?? [];
      const cls = index(s[1], classes.length, `${path} class`);
      if (s[2] !== 0 && s[2] !== 1) bad(`${path} on must be 0 or 1`);
      const ds = models[mi].dataset;
      if (ds !== base && JSON.stringify(dsOf(mi).shape ?? null) !== shape) bad(`${path}: data set ${ds} has another input shape than ${base}`);
      const id = `${ds}:${cls}`;
      if (seen.has(id)) bad(`${path}: class ${ds}:${classes[cls]} has two modules`);
      seen.add(id);
      return { source: keys[mi], class: cls, on: s[2] === 1 };
    });
    const missing = (catalog.datasets[base].classes ?? []).findIndex((_, c) => !seen.has(`${base}:${c}`));
    if (missing >= 0) bad(`slots has no entry for class ${missing} of ${base}`);
  }

  if (has(raw, 'try') && raw.try !== null) {
    const t = raw.try;
    if (isObj(t) && has(t, 'sample')) st.try = { sample: index(t.sample, LIMITS.samples, 'try.sample') };
    else if (isObj(t) && has(t, 'pixels')) {
      const px = typeof t.pixels === 'string' && t.pixels.length <= 1100 ? fromBase64url(t.pixels, 'try.pixels') : null;
      if (!px || px.length !== LIMITS.pixels) bad(`try.pixels must be ${LIMITS.pixels} bytes of base64url`);
      st.try = { pixels: px };
    } else bad('try must be {"sample": n} or {"pixels": "…"}');
  }

  // Added in version 1 without a version change: older pages ignore both keys.
  if (has(raw, 'text') && raw.text !== null) {
    const t = raw.text;
    if (isObj(t) && has(t, 'sample')) st.text = { sample: index(t.sample, LIMITS.samples, 'text.sample') };
    else if (typeof t === 'string' && t.length >= 1 && t.length <= LIMITS.text && !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(t)) st.text = t;
    else bad(`text must be {"sample": n} or 1–${LIMITS.text} characters without control characters`);
  }
  if (has(raw, 'update')) {
    if (raw.update !== 0 && raw.update !== 1) bad('update must be 0 or 1');
    st.update = raw.update === 1;
  }
  // Added in version 1 without a version change, like `update`.
  if (has(raw, 'verify') && raw.verify !== null) {
    const v = raw.verify;
    if (!isObj(v)) bad('verify must be {"class": n, "by": model index}');
    const base = models[current].dataset;
    const cls = index(v.class, (catalog.datasets[base].classes ?? []).length, 'verify.class');
    const by = index(v.by, models.length, 'verify.by');
    if (by === current || models[by].dataset !== base) bad(`verify.by must be another model of data set ${base}`);
    st.verify = { class: cls, by: keys[by] };
  }

  if (has(raw, 'exercise') && raw.exercise !== null) {
    if (typeof raw.exercise === 'string') {
      const ex = (ctx.exercises ?? []).find((e) => e.id === raw.exercise);
      if (!ex) bad(`exercise "${raw.exercise.slice(0, 40)}" is not a built-in exercise`);
      st.exercise = ex;
    } else {
      try {
        st.exercise = validateExercise(raw.exercise, { catalog, uploads: keys.filter((k) => k.startsWith('upload:')) });
      } catch (e) {
        if (e instanceof ExerciseError) bad(e.message);
        throw e;
      }
    }
  }
  return st;
}

/** Fragment → {v, s, hide}; unknown keys are ignored. */
export function parseFragment(hash) {
  if (typeof hash !== 'string') throw new ShareLinkError('the link is empty', 'syntax');
  const frag = hash.startsWith('#') ? hash.slice(1) : hash;
  if (frag.length > LIMITS.fragment) throw new ShareLinkError(`the link is too long (${frag.length} characters; at most ${LIMITS.fragment})`, 'too-long');
  const out = { v: null, s: null, hide: [] };
  for (const part of frag.split('&')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    if (k === 'v') out.v = v;
    else if (k === 's') out.s = v;
    else if (k.endsWith('_hide') && v === 'true' && HIDEABLE.includes(k.slice(0, -5))) out.hide.push(k.slice(0, -5));
  }
  return out;
}

/** True when the fragment looks like a share link (has `s=`). */
export function isShareFragment(hash) {
  return typeof hash === 'string' && /(^#?|&)s=/.test(hash);
}

/**
 * Fragment → validated state ({models, settings, current, slots, try, text,
 * update, verify, exercise, hide}). Throws ShareLinkError, never anything else.
 */
export async function decodeFragment(hash, ctx) {
  const { v, s, hide } = parseFragment(hash);
  if (v === null || s === null) throw new ShareLinkError('the link is incomplete (no "v=" or "s=" part)', 'syntax');
  if (v !== String(VERSION)) throw new ShareLinkError(`the link has format version ${JSON.stringify(v.slice(0, 10))}; this page reads version ${VERSION}`, 'version');
  const packed = fromBase64url(s, 'state');
  const bytes = await inflateRaw(packed, LIMITS.inflated);
  let raw;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new ShareLinkError('the link is damaged: its state is not JSON', 'json');
  }
  const st = validateState(raw, ctx);
  for (const m of st.models) {
    if (m.upload?.bytes && (await sha256Hex(m.upload.bytes)) !== m.upload.sha256) {
      throw new ShareLinkError(`the link is damaged: the embedded file ${m.upload.name} does not match its SHA-256`, 'hash');
    }
  }
  // Controls the fragment hides; an exercise's own `hide` applies while it is open.
  st.hide = [...new Set(hide)];
  return st;
}

/** The JSON form of a state (what `validateState` reads). */
export function stateToJson(st) {
  const keys = st.models.map((m) => m.key);
  const out = {
    models: st.models.map((m) => {
      if (!m.upload) return m.key;
      const u = { upload: m.upload.name, sha256: m.upload.sha256, dataset: m.dataset };
      if (m.upload.bytes && m.upload.bytes.length <= LIMITS.embed) u.bytes = toBase64url(m.upload.bytes);
      return u;
    }),
    settings: { ...st.settings, strength: st.settings?.strength ?? DEFAULTS.strength },
    current: keys.indexOf(st.current),
  };
  if (st.slots) out.slots = st.slots.map((s) => [keys.indexOf(s.source), s.class, s.on ? 1 : 0]);
  if (st.try?.sample !== undefined) out.try = { sample: st.try.sample };
  else if (st.try?.pixels) out.try = { pixels: toBase64url(st.try.pixels) };
  if (st.text?.sample !== undefined) out.text = { sample: st.text.sample };
  else if (typeof st.text === 'string' && st.text !== '') out.text = st.text;
  if (st.update) out.update = 1;
  if (st.verify) out.verify = { class: st.verify.class, by: keys.indexOf(st.verify.by) };
  if (st.exercise) {
    if (st.exercise.id) out.exercise = st.exercise.id;
    else {
      const { id, ...ex } = st.exercise; // eslint-disable-line no-unused-vars
      out.exercise = ex;
    }
  }
  return out;
}

/** State → fragment (without '#'). Throws ShareLinkError when it would be too long. */
export async function encodeState(st) {
  const json = new TextEncoder().encode(JSON.stringify(stateToJson(st)));
  if (json.length > LIMITS.inflated) throw new ShareLinkError('the state is too large for a link', 'too-large');
  const frag = `v=${VERSION}&s=${toBase64url(await deflateRaw(json))}${(st.hide ?? []).map((h) => `&${h}_hide=true`).join('')}`;
  if (frag.length > LIMITS.fragment) throw new ShareLinkError(`the link would be too long (${frag.length} characters)`, 'too-long');
  return frag;
}

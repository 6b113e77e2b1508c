// Classroom exercises: the format (docs/EXERCISES.md), its validation, and the
// checker that evaluates a goal against the current composition. No DOM: the
// page and the node tests both use it.

/** Controls an exercise (or a link's `<control>_hide=true`) may hide. */
export const HIDEABLE = Object.freeze(['picker', 'upload', 'layers', 'addmodule', 'tryit', 'matrix', 'teacher']);
export const CHECKS = Object.freeze(['accuracy', 'class_accuracy', 'modules_from', 'no_module', 'module_from', 'module_update', 'verified', 'strength']);
const LIMITS = { title: 120, story: 2000, hint: 500, hints: 10, goal: 20, models: 8, classes: 64 };

/** A malformed exercise; the message names the field. */
export class ExerciseError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ExerciseError';
  }
}

const fail = (path, msg) => { throw new ExerciseError(`${path} ${msg}`); };
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

function text(v, path, max, { empty = false } = {}) {
  if (typeof v !== 'string') fail(path, 'must be a string');
  if (v.length > max) fail(path, `is longer than ${max} characters`);
  if (!empty && v.trim() === '') fail(path, 'is empty');
  // Control characters other than newline/tab have no place in page text.
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(v)) fail(path, 'contains control characters');
  return v;
}

function list(v, path, max, { min = 0 } = {}) {
  if (!Array.isArray(v)) fail(path, 'must be a list');
  if (v.length < min) fail(path, `needs at least ${min} entr${min === 1 ? 'y' : 'ies'}`);
  if (v.length > max) fail(path, `has more than ${max} entries`);
  return v;
}

function fraction(v, path) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) fail(path, 'must be a number between 0 and 1');
  return v;
}

function count(v, path) {
  if (!Number.isInteger(v) || v < 0 || v > 1000) fail(path, 'must be a whole number between 0 and 1000');
  return v;
}

/** `"digits:7"` → the same string, checked against the catalog's data sets and classes. */
export function classRef(v, path, catalog) {
  if (typeof v !== 'string') fail(path, 'must be a class written as "<data set>:<class name>", e.g. "digits:7"');
  const i = v.indexOf(':');
  const ds = i > 0 ? v.slice(0, i) : '';
  if (!has(catalog.datasets, ds)) fail(path, `names an unknown data set ("${v.slice(0, 40)}"); classes are written "<data set>:<class>", e.g. "digits:7"`);
  const classes = catalog.datasets[ds].classes ?? [];
  if (!classes.includes(v.slice(i + 1))) fail(path, `names a class that data set "${ds}" does not have ("${v.slice(0, 60)}")`);
  return v;
}

/** A model: a catalog file name, or `upload:<name>` of an upload the link carries. */
export function modelRef(v, path, { catalog, uploads = [] }) {
  if (typeof v !== 'string') fail(path, 'must be a model file name');
  if (catalog.models.some((m) => m.file === v) || uploads.includes(v)) return v;
  fail(path, `names a model that is neither bundled nor uploaded with this link ("${v.slice(0, 60)}")`);
}

function check(raw, path, ctx) {
  if (!isObj(raw)) fail(path, 'must be an object');
  const kind = raw.check;
  if (!CHECKS.includes(kind)) fail(`${path}.check`, `must be one of ${CHECKS.join(', ')}`);
  switch (kind) {
    case 'accuracy': {
      const c = { check: kind, min: fraction(raw.min, `${path}.min`) };
      if (has(raw, 'classes')) {
        c.classes = list(raw.classes, `${path}.classes`, LIMITS.classes, { min: 1 }).map((x, k) => classRef(x, `${path}.classes[${k}]`, ctx.catalog));
        if (new Set(c.classes).size !== c.classes.length) fail(`${path}.classes`, 'lists a class twice');
      }
      return c;
    }
    case 'class_accuracy':
      return { check: kind, class: classRef(raw.class, `${path}.class`, ctx.catalog), min: fraction(raw.min, `${path}.min`) };
    case 'modules_from': {
      const c = { check: kind, model: modelRef(raw.model, `${path}.model`, ctx) };
      if (has(raw, 'min')) c.min = count(raw.min, `${path}.min`);
      if (has(raw, 'max')) c.max = count(raw.max, `${path}.max`);
      if (c.min === undefined && c.max === undefined) fail(path, 'needs "min" or "max"');
      if (c.min !== undefined && c.max !== undefined && c.min > c.max) fail(path, 'has min > max');
      return c;
    }
    case 'no_module':
      return { check: kind, class: classRef(raw.class, `${path}.class`, ctx.catalog) };
    case 'module_from':
      return { check: kind, class: classRef(raw.class, `${path}.class`, ctx.catalog), model: modelRef(raw.model, `${path}.model`, ctx) };
    case 'module_update':
      if (has(raw, 'on') && typeof raw.on !== 'boolean') fail(`${path}.on`, 'must be true or false');
      return { check: kind, on: raw.on ?? true };
    case 'verified':
      return { check: kind, class: classRef(raw.class, `${path}.class`, ctx.catalog), by: modelRef(raw.by, `${path}.by`, ctx) };
    case 'strength': {
      const c = { check: kind };
      if (has(raw, 'min')) c.min = fraction(raw.min, `${path}.min`);
      if (has(raw, 'max')) c.max = fraction(raw.max, `${path}.max`);
      if (c.min === undefined && c.max === undefined) fail(path, 'needs "min" or "max"');
      if (c.min !== undefined && c.max !== undefined && c.min > c.max) fail(path, 'has min > max');
      return c;
    }
  }
}

/**
 * Validates an exercise; returns a fresh object holding only known fields.
 * `ctx`: {catalog, uploads: ['upload:<name>', ...]}; `builtin` keeps the `id`.
 * Unknown fields are ignored. Throws ExerciseError.
 */
export function validateExercise(raw, ctx, { builtin = false, path = 'exercise' } = {}) {
  if (!isObj(raw)) fail(path, 'must be an object');
  const ex = {};
  if (builtin) {
    if (typeof raw.id !== 'string' || !/^[a-z0-9-]{1,40}$/.test(raw.id)) fail(`${path}.id`, 'must be 1–40 of a-z, 0-9, -');
    ex.id = raw.id;
  }
  ex.title = text(raw.title, `${path}.title`, LIMITS.title);
  ex.story = has(raw, 'story') ? text(raw.story, `${path}.story`, LIMITS.story, { empty: true }) : '';
  ex.models = list(raw.models, `${path}.models`, LIMITS.models, { min: 1 }).map((m, k) => modelRef(m, `${path}.models[${k}]`, ctx));
  if (new Set(ex.models).size !== ex.models.length) fail(`${path}.models`, 'lists a model twice');
  ex.goal = list(raw.goal, `${path}.goal`, LIMITS.goal, { min: 1 }).map((c, k) => check(c, `${path}.goal[${k}]`, ctx));
  ex.hints = has(raw, 'hints') ? list(raw.hints, `${path}.hints`, LIMITS.hints).map((h, k) => text(h, `${path}.hints[${k}]`, LIMITS.hint)) : [];
  ex.hide = has(raw, 'hide') ? list(raw.hide, `${path}.hide`, HIDEABLE.length).map((h, k) => {
    if (!HIDEABLE.includes(h)) fail(`${path}.hide[${k}]`, `must be one of ${HIDEABLE.join(', ')}`);
    return h;
  }) : [];
  ex.hide = [...new Set(ex.hide)];
  return ex;
}

/** The data set part of a class reference. */
export const datasetOf = (cls) => cls.slice(0, cls.indexOf(':'));

function classesIn(ex) {
  const out = new Set();
  for (const c of ex.goal) {
    if (c.class) out.add(c.class);
    for (const k of c.classes ?? []) out.add(k);
  }
  return out;
}

/** Display name of a class: "7", or "clothing:Bag" when the exercise spans data sets. */
export function classLabel(cls, multi) {
  return multi ? cls : cls.slice(cls.indexOf(':') + 1);
}

function modelLabel(key, catalog) {
  const m = catalog.models.find((x) => x.file === key);
  return m ? m.title : key.replace(/^upload:/, '') + ' (uploaded)';
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

/** One sentence per check, for people. */
export function describe(c, { catalog, multi = false }) {
  const cls = (k) => classLabel(k, multi);
  switch (c.check) {
    case 'accuracy':
      return `Composed accuracy ≥ ${pct(c.min)}${c.classes ? ` with exactly the classes ${c.classes.map(cls).join(', ')}` : ''}`;
    case 'class_accuracy':
      return `Class ${cls(c.class)} recognised ≥ ${pct(c.min)} of the time`;
    case 'modules_from': {
      const m = modelLabel(c.model, catalog);
      if (c.min !== undefined && c.max !== undefined) return `Between ${c.min} and ${c.max} modules from ${m}`;
      if (c.max === 0 && c.min === undefined) return `No module from ${m}`;
      if (c.max !== undefined) return `At most ${c.max} module${c.max === 1 ? '' : 's'} from ${m}`;
      return `At least ${c.min} module${c.min === 1 ? '' : 's'} from ${m}`;
    }
    case 'no_module':
      return `No module for class ${cls(c.class)}`;
    case 'module_from':
      return `The module for class ${cls(c.class)} comes from ${modelLabel(c.model, catalog)}`;
    case 'module_update':
      return c.on ? 'Module update is on (modules from different data sets)' : 'Module update is off';
    case 'verified':
      return `Answers of class ${cls(c.class)} are checked again by the modules of ${modelLabel(c.by, catalog)}`;
    case 'strength':
      if (c.min !== undefined && c.max !== undefined) return `Class-specific strength between ${c.min} and ${c.max}`;
      return c.min !== undefined ? `Class-specific strength at least ${c.min}` : `Class-specific strength at most ${c.max}`;
  }
  return c.check;
}

/**
 * Evaluates the goal. `snap`: {slots: [{cls: "digits:7", model: key, on}],
 * result: null | {top1, perClass: {"digits:7": accuracy, ...}}, update, verify} —
 * `result` is the composition of the slots that are on (null when none are);
 * `update`: module update applies to it (the switch is on and the
 * composition spans data sets); `verify`: null | {class: "digits:1", by:
 * model key} — the answers of that class are checked by that model's modules;
 * `strength`: the decomposition's class-specific strength (0 when unset).
 * Returns {solved, multi, checks: [{check, ok, text, now}]}.
 */
export function evaluate(ex, snap, { catalog }) {
  const on = snap.slots.filter((s) => s.on);
  const composed = new Set(on.map((s) => s.cls));
  const multi = new Set([...classesIn(ex), ...composed].map(datasetOf)).size > 1;
  const r = snap.result;
  const checks = ex.goal.map((c) => {
    let ok = false;
    let now = '';
    switch (c.check) {
      case 'accuracy': {
        const exact = !c.classes || (c.classes.length === composed.size && c.classes.every((k) => composed.has(k)));
        ok = !!r && exact && r.top1 + 1e-6 >= c.min;
        now = r ? `now ${pct(r.top1)}` : 'no modules selected';
        if (r && !exact) {
          const missing = (c.classes ?? []).filter((k) => !composed.has(k)).map((k) => classLabel(k, multi));
          const extra = [...composed].filter((k) => !c.classes.includes(k)).map((k) => classLabel(k, multi));
          now += [missing.length ? `; missing ${missing.join(', ')}` : '', extra.length ? `; not wanted ${extra.join(', ')}` : ''].join('');
        }
        break;
      }
      case 'class_accuracy': {
        const acc = r && composed.has(c.class) ? r.perClass[c.class] : undefined;
        ok = acc !== undefined && acc + 1e-6 >= c.min;
        now = acc === undefined ? 'no module for it' : `now ${pct(acc)}`;
        break;
      }
      case 'modules_from': {
        const n = on.filter((s) => s.model === c.model).length;
        ok = (c.min === undefined || n >= c.min) && (c.max === undefined || n <= c.max);
        now = `now ${n}`;
        break;
      }
      case 'no_module':
        ok = !composed.has(c.class);
        now = ok ? 'none' : 'still there';
        break;
      case 'module_from': {
        const s = on.find((x) => x.cls === c.class);
        ok = !!s && s.model === c.model;
        now = !s ? 'no module for it' : ok ? 'yes' : `now from ${modelLabel(s.model, catalog)}`;
        break;
      }
      case 'module_update':
        ok = Boolean(snap.update) === c.on;
        now = snap.update ? 'now on' : 'now off';
        break;
      case 'verified': {
        const v = snap.verify;
        ok = !!v && v.class === c.class && v.by === c.by;
        now = !v ? 'nothing checked' : ok ? 'yes' : `now class ${classLabel(v.class, multi)} by ${modelLabel(v.by, catalog)}`;
        break;
      }
      case 'strength': {
        const st = snap.strength ?? 0;
        ok = (c.min === undefined || st + 1e-6 >= c.min) && (c.max === undefined || st <= c.max + 1e-6);
        now = `now ${st}`;
        break;
      }
    }
    return { check: c, ok, text: describe(c, { catalog, multi }), now };
  });
  return { solved: checks.every((c) => c.ok), multi, checks };
}

/**
 * Teacher mode: an exercise whose goal is the current state — composed
 * accuracy at least the current one rounded down to a whole percent, on
 * exactly the current classes; every module that does not come from the start
 * model must come from where it comes from now; every class switched off
 * stays out. The student starts from the start model's own modules.
 */
export function exerciseFromState(snap, { start, title, story = '', hints = [], hide = [] }) {
  const on = snap.slots.filter((s) => s.on);
  const models = [start, ...new Set([...on.map((s) => s.model), ...(snap.verify ? [snap.verify.by] : [])].filter((m) => m !== start))];
  const goal = [];
  if (snap.result) {
    goal.push({ check: 'accuracy', min: Math.floor(snap.result.top1 * 100 + 1e-4) / 100, classes: on.map((s) => s.cls) });
  }
  for (const s of on) if (s.model !== start) goal.push({ check: 'module_from', class: s.cls, model: s.model });
  for (const s of snap.slots) if (!s.on && !on.some((o) => o.cls === s.cls)) goal.push({ check: 'no_module', class: s.cls });
  if (snap.update) goal.push({ check: 'module_update', on: true });
  if (snap.verify) goal.push({ check: 'verified', class: snap.verify.class, by: snap.verify.by });
  const ex = { title: title || 'Rebuild this composition', story, models, goal };
  if (hints.length) ex.hints = hints;
  if (hide.length) ex.hide = hide;
  return ex;
}

/** A stable id for an exercise without one (progress of a teacher's exercise). */
export function exerciseId(ex) {
  if (ex.id) return ex.id;
  const s = JSON.stringify([ex.title, ex.story, ex.models, ex.goal]);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return `link-${h.toString(16).padStart(8, '0')}`;
}

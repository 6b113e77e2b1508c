// The exercise format and checker (www/exercises.js) in node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExerciseError, evaluate, exerciseFromState, exerciseId, validateExercise } from '../../www/exercises.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const catalog = JSON.parse(readFileSync(join(ROOT, 'models', 'catalog.json'), 'utf8'));
const raw = JSON.parse(readFileSync(join(ROOT, 'www', 'exercises', 'builtin.json'), 'utf8'));
const builtins = raw.map((e) => validateExercise(e, { catalog }, { builtin: true }));
const byId = Object.fromEntries(builtins.map((e) => [e.id, e]));

const digits = (c) => `digits:${c}`;
/** A snapshot: the faulty model's ten modules, `over` replacing some sources, `off` classes out. */
function faulty({ over = {}, off = [], top1, perClass = {} }) {
  const slots = Array.from({ length: 10 }, (_, c) => ({ cls: digits(c), model: over[c] ?? 'digits_mlp_faulty.keras', on: !off.includes(c) }));
  return { slots, result: { top1, perClass } };
}

test('the built-in exercises are valid, distinct, and name only bundled models and classes', () => {
  assert.ok(builtins.length >= 4);
  assert.equal(new Set(builtins.map((e) => e.id)).size, builtins.length);
  for (const e of builtins) {
    assert.ok(e.models.every((m) => catalog.models.some((c) => c.file === m)));
    assert.ok(e.goal.length >= 1 && e.title && e.story);
  }
  // Round trip: validating the validated form changes nothing.
  for (const e of builtins) assert.deepEqual(validateExercise(e, { catalog }, { builtin: true }), e);
});

test('fix-faulty-7: solved only with a good 7-module and the accuracy kept (numbers from docs/FIDELITY.md)', () => {
  const ex = byId['fix-faulty-7'];
  const start = evaluate(ex, faulty({ top1: 0.877, perClass: { 'digits:7': 0.02 } }), { catalog });
  assert.equal(start.solved, false);
  assert.deepEqual(start.checks.map((c) => c.ok), [false, true, true]);
  const fixed = evaluate(ex, faulty({ over: { 7: 'digits_mlp_b.keras' }, top1: 0.967, perClass: { 'digits:7': 0.93 } }), { catalog });
  assert.equal(fixed.solved, true);
  // Removing the 7 is not a fix: the class must be there.
  const removed = evaluate(ex, faulty({ off: [7], top1: 0.972 }), { catalog });
  assert.equal(removed.solved, false);
  assert.match(removed.checks[0].now, /no module/);
  assert.match(removed.checks[1].now, /missing 7/);
  // Swapping the whole model is not a module replacement.
  const all = Object.fromEntries(Array.from({ length: 10 }, (_, c) => [c, 'digits_mlp_b.keras']));
  assert.equal(evaluate(ex, faulty({ over: all, top1: 0.976, perClass: { 'digits:7': 0.96 } }), { catalog }).solved, false);
  // f32 accuracies just below a threshold's decimal still count (0.877 as f32).
  assert.equal(evaluate(ex, faulty({ over: { 7: 'digits_mlp_b.keras' }, top1: Math.fround(0.877), perClass: { 'digits:7': Math.fround(0.8) } }), { catalog }).solved, true);
});

test('check texts read well', () => {
  const r = evaluate(byId['digits-and-clothing'], { slots: [{ cls: 'digits:0', model: 'digits_mlp.keras', on: true }], result: { top1: 1, perClass: {} } }, { catalog });
  assert.equal(r.multi, true);
  assert.match(r.checks[0].text, /exactly the classes digits:0, digits:1, clothing:Sneaker, clothing:Bag/);
  assert.match(r.checks[0].now, /missing digits:1, clothing:Sneaker, clothing:Bag/);
  assert.match(r.checks[1].text, /Sneaker comes from Clothing · dense MLP/);
  const one = evaluate(byId['reuse-2-4-9'], faulty({ top1: 0.9 }), { catalog });
  assert.equal(one.multi, false);
  assert.match(one.checks[0].text, /^Composed accuracy ≥ 99\.0% with exactly the classes 2, 4, 9$/);
  assert.match(one.checks[1].text, /^At most 1 module from Digits · small CNN$/);
});

test('an empty composition solves nothing that asks for accuracy', () => {
  const snap = { slots: Array.from({ length: 10 }, (_, c) => ({ cls: digits(c), model: 'digits_mlp.keras', on: false })), result: null };
  for (const ex of builtins) assert.equal(evaluate(ex, snap, { catalog }).solved, false, ex.id);
});

test('teacher mode: the exercise made from a state is solved by that state, not by the start', () => {
  const snap = faulty({ over: { 7: 'digits_mlp_b.keras' }, off: [3], top1: 0.9077, perClass: {} });
  const ex = validateExercise(exerciseFromState(snap, { start: 'digits_mlp_faulty.keras', title: 'Mine', hints: ['h'] }), { catalog });
  assert.deepEqual(ex.models, ['digits_mlp_faulty.keras', 'digits_mlp_b.keras']);
  assert.deepEqual(ex.goal[0], { check: 'accuracy', min: 0.9, classes: [0, 1, 2, 4, 5, 6, 7, 8, 9].map(digits) });
  assert.deepEqual(ex.goal.slice(1), [
    { check: 'module_from', class: 'digits:7', model: 'digits_mlp_b.keras' },
    { check: 'no_module', class: 'digits:3' },
  ]);
  assert.equal(evaluate(ex, snap, { catalog }).solved, true);
  assert.equal(evaluate(ex, faulty({ top1: 0.829 }), { catalog }).solved, false);
  // Rounding down never makes the state fail its own goal, even at exact percents stored as f32.
  for (const top1 of [0.9, 0.95, 0.99, 1, Math.fround(0.93), Math.fround(0.57)]) {
    const e = exerciseFromState(faulty({ top1 }), { start: 'digits_mlp_faulty.keras' });
    assert.equal(evaluate(validateExercise(e, { catalog }), faulty({ top1 }), { catalog }).solved, true, String(top1));
    // …and an f32 whole percent is that percent, not one below (0.9 arrives as 0.89999998).
    assert.equal(e.goal[0].min, Math.round(top1 * 100) / 100, String(top1));
  }
  assert.match(exerciseId(ex), /^link-[0-9a-f]{8}$/);
  assert.equal(exerciseId(ex), exerciseId(structuredClone(ex)));
});

test('malformed exercises are refused with ExerciseError naming the field', () => {
  const good = raw[0];
  const cases = [
    [null, /must be an object/],
    [{ ...good, title: '' }, /title is empty/],
    [{ ...good, title: 'x'.repeat(121) }, /title is longer/],
    [{ ...good, title: 'a\u0007b' }, /control characters/],
    [{ ...good, models: [] }, /models needs at least 1/],
    [{ ...good, models: ['evil.keras'] }, /models\[0\] names a model/],
    [{ ...good, models: ['digits_mlp.keras', 'digits_mlp.keras'] }, /twice/],
    [{ ...good, goal: [] }, /goal needs at least 1/],
    [{ ...good, goal: [{ check: 'teleport' }] }, /goal\[0\]\.check must be one of/],
    [{ ...good, goal: [{ check: 'accuracy', min: 1.5 }] }, /min must be a number between 0 and 1/],
    [{ ...good, goal: [{ check: 'accuracy', min: 0.5, classes: ['digits:10'] }] }, /class that data set "digits" does not have/],
    [{ ...good, goal: [{ check: 'accuracy', min: 0.5, classes: ['7'] }] }, /unknown data set/],
    [{ ...good, goal: [{ check: 'accuracy', min: 0.5, classes: ['__proto__:x'] }] }, /unknown data set/],
    [{ ...good, goal: [{ check: 'modules_from', model: 'digits_mlp.keras' }] }, /needs "min" or "max"/],
    [{ ...good, goal: [{ check: 'modules_from', model: 'digits_mlp.keras', min: 3, max: 1 }] }, /min > max/],
    [{ ...good, goal: [{ check: 'module_from', class: 'digits:7', model: 'upload:x.keras' }] }, /neither bundled nor uploaded/],
    [{ ...good, hide: ['everything'] }, /hide\[0\] must be one of/],
    [{ ...good, hints: 'not a list' }, /hints must be a list/],
  ];
  for (const [ex, re] of cases) assert.throws(() => validateExercise(ex, { catalog }), (e) => e instanceof ExerciseError && re.test(e.message), JSON.stringify(ex)?.slice(0, 80));
  // An upload named by the link is a valid model reference.
  const ok = validateExercise({ ...good, goal: [{ check: 'module_from', class: 'digits:7', model: 'upload:x.keras' }] }, { catalog, uploads: ['upload:x.keras'] });
  assert.equal(ok.goal[0].model, 'upload:x.keras');
  // Unknown fields are dropped; a link's exercise never carries an id.
  const plain = validateExercise({ ...good, extra: 1 }, { catalog });
  assert.equal(plain.extra, undefined);
  assert.equal(plain.id, undefined);
});

test('random junk never makes the validator throw anything but ExerciseError', () => {
  let s = 12345;
  const r = () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31; };
  const atoms = [null, 0, 1, -1, 0.5, 2, 'x', '', 'digits:7', 'clothing:Bag', 'digits_mlp.keras', [], {}, true, 'accuracy', 'module_from', 'modules_from', 'no_module', 'class_accuracy'];
  const junk = (d) => {
    const k = r();
    if (d > 3 || k < 0.4) return atoms[Math.floor(r() * atoms.length)];
    if (k < 0.6) return Array.from({ length: Math.floor(r() * 4) }, () => junk(d + 1));
    const o = {};
    for (const key of ['title', 'story', 'models', 'goal', 'hints', 'hide', 'check', 'min', 'max', 'class', 'classes', 'model']) if (r() < 0.5) o[key] = junk(d + 1);
    return o;
  };
  for (let i = 0; i < 5000; i++) {
    const j = i % 2 ? junk(0) : { ...raw[i % raw.length], goal: [junk(1), junk(1)] };
    try {
      validateExercise(j, { catalog });
    } catch (e) {
      assert.ok(e instanceof ExerciseError, `${e?.stack}\n${JSON.stringify(j)}`);
    }
  }
});

test('languages-module-update: the accuracy alone is not enough, the update switch must be on', () => {
  const ex = byId['languages-module-update'];
  const slots = [['lang_a:English', 'lang_a_lstm.keras'], ['lang_a:French', 'lang_a_lstm.keras'], ['lang_b:Portuguese', 'lang_b_lstm.keras'], ['lang_b:Polish', 'lang_b_lstm.keras']]
    .map(([cls, model]) => ({ cls, model, on: true }));
  const perClass = { 'lang_a:French': 0.72 };
  const off = evaluate(ex, { slots, result: { top1: 0.911, perClass }, update: false }, { catalog });
  assert.deepEqual(off.checks.map((c) => c.ok), [true, true, false]);
  assert.match(off.checks[2].text, /^Module update is on/);
  assert.equal(off.checks[2].now, 'now off');
  assert.equal(evaluate(ex, { slots, result: { top1: 0.911, perClass }, update: true }, { catalog }).solved, true);
  // An old snapshot without the flag counts as "off"; {on: false} goals hold then.
  assert.equal(evaluate({ ...ex, goal: [{ check: 'module_update', on: false }] }, { slots, result: null }, { catalog }).solved, true);
  assert.throws(() => validateExercise({ title: 't', models: ['lang_a_lstm.keras'], goal: [{ check: 'module_update', on: 'yes' }] }, { catalog }), /goal\[0\]\.on must be true or false/);
  // Teacher mode keeps the switch.
  const made = validateExercise(exerciseFromState({ slots, result: { top1: 0.911, perClass }, update: true }, { start: 'lang_a_lstm.keras' }), { catalog });
  assert.deepEqual(made.goal.at(-1), { check: 'module_update', on: true });
});

test('fix-7-verify: the right class must be checked by MLP B, without borrowing B modules (numbers from remodule compose)', () => {
  const ex = byId['fix-7-verify'];
  const good = { top1: 0.969, perClass: { 'digits:7': 0.94 } };
  const snap = (verify, over = {}) => ({ ...faulty({ over, ...good }), verify });
  assert.equal(evaluate(ex, snap({ class: 'digits:1', by: 'digits_mlp_b.keras' }), { catalog }).solved, true);
  const none = evaluate(ex, snap(null), { catalog });
  assert.equal(none.solved, false);
  assert.equal(none.checks[0].now, 'nothing checked');
  assert.match(none.checks[0].text, /^Answers of class 1 are checked again by the modules of .*variant B/);
  const wrong = evaluate(ex, snap({ class: 'digits:7', by: 'digits_mlp_b.keras' }), { catalog });
  assert.equal(wrong.checks[0].ok, false);
  assert.match(wrong.checks[0].now, /^now class 7 by /);
  assert.equal(evaluate(ex, snap({ class: 'digits:1', by: 'digits_mlp.keras' }), { catalog }).checks[0].ok, false);
  assert.match(none.checks[3].text, /^No module from Digits · dense MLP, variant B$/);
  // A replaced module from B is option 1, not this exercise.
  assert.equal(evaluate(ex, snap({ class: 'digits:1', by: 'digits_mlp_b.keras' }, { 7: 'digits_mlp_b.keras' }), { catalog }).solved, false);
  assert.throws(() => validateExercise({ title: 't', models: ['digits_mlp.keras'], goal: [{ check: 'verified', class: 'digits:1', by: 'nope.keras' }] }, { catalog }), /goal\[0\]\.by names a model/);
  assert.throws(() => validateExercise({ title: 't', models: ['digits_mlp.keras'], goal: [{ check: 'verified', class: 'digits:x', by: 'digits_mlp.keras' }] }, { catalog }), /goal\[0\]\.class/);
  // Teacher mode keeps the verification, and the verifier becomes one of the exercise's models.
  const made = validateExercise(exerciseFromState(snap({ class: 'digits:1', by: 'digits_mlp_b.keras' }), { start: 'digits_mlp_faulty.keras' }), { catalog });
  assert.deepEqual(made.goal.at(-1), { check: 'verified', class: 'digits:1', by: 'digits_mlp_b.keras' });
  assert.deepEqual(made.models, ['digits_mlp_faulty.keras', 'digits_mlp_b.keras']);
});

test('fix-7-remove and fix-7-small-model: solved by their option only', () => {
  const rm = byId['fix-7-remove'];
  assert.equal(evaluate(rm, faulty({ off: [7], top1: 0.972 }), { catalog }).solved, true);
  assert.equal(evaluate(rm, faulty({ top1: 0.972 }), { catalog }).solved, false);
  const small = byId['fix-7-small-model'];
  const withSmall = (first) => {
    const s = faulty({ off: [7], top1: 0.831, perClass: { 'digits:7': 0.8 } });
    s.slots.push({ cls: 'digits:7', model: 'digits_1v7.keras', on: true });
    if (!first) s.slots[7].on = true;
    return s;
  };
  assert.equal(evaluate(small, withSmall(true), { catalog }).solved, true);
  // The faulty 7-module still in: the 7 is not the small model's.
  assert.equal(evaluate(small, withSmall(false), { catalog }).solved, false);
});

test('the strength check: a range on the decomposition\'s class-specific strength', () => {
  const ex = byId['class-specific-modules'];
  const snap = (strength, top1) => ({ ...faulty({ top1 }), strength, slots: Array.from({ length: 10 }, (_, c) => ({ cls: digits(c), model: 'digits_mlp.keras', on: true })) });
  assert.equal(evaluate(ex, snap(0.5, 0.922), { catalog }).solved, true);
  const weak = evaluate(ex, snap(0.35, 0.947), { catalog });
  assert.deepEqual(weak.checks.map((c) => c.ok), [false, true]);
  assert.match(weak.checks[0].text, /^Class-specific strength at least 0\.5$/);
  assert.equal(weak.checks[0].now, 'now 0.35');
  // No strength in the snapshot is strength 0.
  assert.equal(evaluate(ex, { ...snap(0.5, 0.93), strength: undefined }, { catalog }).checks[0].ok, false);
  for (const [raw, why] of [[{ check: 'strength' }, /needs "min" or "max"/], [{ check: 'strength', min: 0.5, max: 0.2 }, /min > max/], [{ check: 'strength', min: 2 }, /min/]]) {
    assert.throws(() => validateExercise({ ...ex, goal: [raw] }, { catalog }), why);
  }
});

// Decomposition settings, read from their one schema (settings.json): the engine reads the
// same file for its bounds and tests/settings_schema.rs checks it against Rust's Settings.
// Here: the defaults, the check a share link's or the form's settings must pass, and the
// settings form, built from the entries that have a label. No DOM except in the form helpers.
import schema from './settings.json' with { type: 'json' };

/** The entries, in the schema's order. */
export const SETTINGS = Object.freeze(schema.settings.map((s) => Object.freeze(s)));
const BY_NAME = new Map(SETTINGS.map((s) => [s.name, s]));

/** The engine's defaults; the page keeps only the settings that differ from them. */
export const DEFAULTS = Object.freeze(Object.fromEntries(SETTINGS.map((s) => [s.name, s.default])));

/** A numeric setting's range in interval notation, e.g. "(0, 10]". */
export function range(spec) {
  return `${spec.min_inclusive ? '[' : '('}${spec.min}, ${spec.max}${spec.max_inclusive ? ']' : ')'}`;
}

/** Why `v` is not a value of `spec`, or null. */
function valueProblem(spec, v) {
  const shown = typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v)).slice(0, 40);
  switch (spec.type) {
    case 'enum':
      return spec.values.includes(v) ? null : `must be one of ${spec.values.join(', ')}, not ${shown}`;
    case 'boolean':
      return typeof v === 'boolean' ? null : `must be true or false, not ${shown}`;
    case 'integer':
    case 'number': {
      const kind = spec.type === 'integer' ? 'an integer' : 'a number';
      const ok = typeof v === 'number' && Number.isFinite(v) && (spec.type === 'number' || Number.isInteger(v))
        && (spec.min_inclusive ? v >= spec.min : v > spec.min) && (spec.max_inclusive ? v <= spec.max : v < spec.max);
      return ok ? null : `must be ${kind} in ${range(spec)}, not ${shown}`;
    }
    default:
      throw new Error(`settings.json: "${spec.name}" has an unknown type "${spec.type}"`);
  }
}

/** What is wrong with decomposition settings (known keys, values of the schema), or null. */
export function settingsProblem(raw) {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'settings must be an object';
  for (const k of Object.keys(raw)) {
    // An ignored setting would silently give other numbers than the sender's.
    const spec = BY_NAME.get(k);
    if (!spec) return `settings has an unknown key "${k.slice(0, 40)}"`;
    const problem = valueProblem(spec, raw[k]);
    if (problem) return `settings.${k} ${problem}`;
  }
  return null;
}

/** Only the entries that differ from the defaults (links stay short; {} means "the defaults"). */
export function nonDefault(values) {
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => v !== DEFAULTS[k]));
}

// ---- the form ---------------------------------------------------------------

const FORMED = SETTINGS.filter((s) => s.label);

function control(spec) {
  let c;
  if (spec.control === 'range') {
    c = document.createElement('input');
    c.type = 'range';
    Object.assign(c, { min: String(spec.min), max: String(spec.max), step: String(spec.step ?? 'any') });
  } else if (spec.type === 'enum' || spec.type === 'boolean') {
    c = document.createElement('select');
    const values = spec.type === 'enum' ? spec.values : ['false', 'true'];
    for (const v of values) c.append(new Option(spec.labels?.[v] ?? v, v));
  } else {
    c = document.createElement('input');
    c.type = 'number';
    // The form's spin range; an exclusive bound is checked by settingsProblem (the form is novalidate).
    Object.assign(c, { min: String(spec.min), max: String(spec.max), step: String(spec.step ?? 'any') });
  }
  c.id = `s-${spec.name}`;
  c.name = spec.name;
  if (spec.help) c.title = spec.help;
  return c;
}

/**
 * Puts a label and a control for every labelled setting before `before` (the buttons' row);
 * a slider (`control: "range"`) goes into `sliders` instead, outside the fold, with a readout,
 * still one of the form's elements (the `form` attribute).
 */
export function buildSettingsForm(form, before, sliders) {
  for (const spec of FORMED) {
    const label = document.createElement('label');
    label.htmlFor = `s-${spec.name}`;
    label.textContent = spec.label;
    if (spec.help) label.title = spec.help;
    const c = control(spec);
    if (spec.control === 'range' && sliders) {
      c.setAttribute('form', form.id);
      const out = document.createElement('output');
      out.id = `s-${spec.name}-out`;
      out.htmlFor = c.id;
      c.addEventListener('input', () => { out.textContent = readout(spec, Number(c.value)); });
      sliders.append(label, c, out);
    } else {
      form.insertBefore(label, before);
      form.insertBefore(c, before);
    }
  }
}

/** A slider's readout: its value, and what 0 and the default mean. */
function readout(spec, v) {
  if (v === 0) return "0 (the papers' modules)";
  return v === spec.default ? `${v} (default)` : String(v);
}

/** Shows `values` (missing ones as their defaults) in the form. */
export function showSettingsForm(form, values) {
  for (const spec of FORMED) {
    const v = values[spec.name] ?? spec.default;
    form.elements[spec.name].value = String(v);
    const out = document.getElementById(`s-${spec.name}-out`);
    if (out) out.textContent = readout(spec, v);
  }
}

/** The form's values, typed as the schema says (an empty number field reads as NaN and is refused). */
export function readSettingsForm(form) {
  return Object.fromEntries(FORMED.map((spec) => {
    const raw = form.elements[spec.name].value;
    if (spec.type === 'boolean') return [spec.name, raw === 'true'];
    if (spec.type === 'enum') return [spec.name, raw];
    return [spec.name, raw.trim() === '' ? NaN : Number(raw)];
  }));
}

// "Try it" for character models: a text box and a strip of test snippets.
// The engine turns text into token ids (its vocabulary, its rules); every
// selected module scores them. Per-step models tag each character.
import { el, renderTry } from './view.js';

export class TypeIt {
  /**
   * `score(text | ids)` resolves to {scores, answer, names, step_answers}.
   * `text` is what the user typed; a sample passes its token ids instead.
   */
  constructor({ box, samples, answer, bars, tags }, score, onError) {
    Object.assign(this, { box, samples, answerEl: answer, bars, tags, score, onError });
    this.pending = false;
    box.addEventListener('input', () => { this.selectSample(null); this.update(); });
  }

  /** Fills the strip with test snippets: [{ids, text, name}]. */
  setSamples(list) {
    this.sampleList = list;
    this.selected = null;
    this.samples.replaceChildren(...list.map((s, i) => {
      const b = el('button', { type: 'button', class: 'snippet', 'aria-pressed': 'false', 'data-label': s.name, title: `Test snippet ${i + 1} (label ${s.name})` }, s.text);
      b.addEventListener('click', () => {
        this.selectSample(i);
        this.box.value = s.text;
        this.current = s.ids;
        this.update();
      });
      return b;
    }));
  }

  selectSample(i) {
    this.current = null;
    this.selected = i;
    [...this.samples.children].forEach((b, k) => b.setAttribute('aria-pressed', String(k === i)));
  }

  /** What a share link keeps: {sample: i}, the typed text, or null (an empty box). */
  linkState() {
    if (this.selected !== null && this.selected !== undefined) return { sample: this.selected };
    return this.box.value === '' ? null : this.box.value;
  }

  /** Shows and scores what `linkState` returned. */
  restore(t) {
    if (t === null || t === undefined) return;
    if (typeof t === 'string') {
      this.selectSample(null);
      this.box.value = t;
    } else {
      const s = this.sampleList?.[t.sample];
      if (!s) throw new Error(`the link selects test snippet ${t.sample + 1}, which this data set does not have`);
      this.selectSample(t.sample);
      this.box.value = s.text;
      this.current = s.ids;
    }
    this.update();
  }

  /** Re-scores the current text (one request in flight; the latest input wins). */
  update() {
    const input = this.current ?? this.box.value;
    if (typeof input === 'string' && input.trim() === '') { this.render(null); return; }
    if (this.pending) { this.again = true; return; }
    this.pending = true;
    this.score(input)
      .then((r) => this.render(r, input))
      .catch(this.onError)
      .finally(() => {
        this.pending = false;
        if (this.again) { this.again = false; this.update(); }
      });
  }

  render(r) {
    renderTry(this.answerEl, this.bars, r);
    // Per-step models: each character with the module that won its step.
    const steps = r?.step_answers ?? [];
    this.tags.replaceChildren(...steps.map((a, t) => el('span', { class: `tag t${a % 8}`, title: r.names[a] }, r.chars?.[t] ?? '·')));
    this.tags.hidden = steps.length === 0;
  }
}

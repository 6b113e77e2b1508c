// "Try it": a 28×28 drawing pad and a strip of test images. Every selected
// module scores the input in the worker; the highest score is the answer.
import { el, renderTry } from './view.js';

const SIDE = 28;

export class TryIt {
  /** `score(pixels)` resolves to {scores, answer, names}; pixels are 0–255 raw values. */
  constructor({ pad, clear, samples, answer, bars }, score, onError) {
    Object.assign(this, { pad, samples, answerEl: answer, bars, score, onError });
    this.ctx = pad.getContext('2d', { willReadFrequently: true });
    this.small = Object.assign(document.createElement('canvas'), { width: SIDE, height: SIDE }).getContext('2d', { willReadFrequently: true });
    this.empty = true;
    this.pending = false;
    this.reset();
    let drawing = false;
    const at = (e) => {
      const r = pad.getBoundingClientRect();
      return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
    };
    pad.addEventListener('pointerdown', (e) => {
      drawing = true;
      pad.setPointerCapture(e.pointerId);
      this.selectSample(null);
      this.ctx.beginPath();
      this.ctx.moveTo(...at(e));
      this.stroke(at(e));
    });
    pad.addEventListener('pointermove', (e) => { if (drawing) this.stroke(at(e)); });
    pad.addEventListener('pointerup', () => { drawing = false; this.update(); });
    clear.addEventListener('click', () => { this.reset(); this.selectSample(null); this.render(null); });
  }

  reset() {
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.pad.width, this.pad.height);
    this.empty = true;
    this.selected = null;
  }

  stroke([x, y]) {
    const c = this.ctx;
    Object.assign(c, { strokeStyle: '#fff', lineWidth: this.pad.width / 11, lineCap: 'round', lineJoin: 'round' });
    c.lineTo(x, y);
    c.stroke();
    this.empty = false;
    this.update();
  }

  /** Pixels of the pad scaled to 28×28 (red channel, 0–255). */
  pixels() {
    this.small.imageSmoothingEnabled = true;
    this.small.drawImage(this.pad, 0, 0, SIDE, SIDE);
    const d = this.small.getImageData(0, 0, SIDE, SIDE).data;
    return Array.from({ length: SIDE * SIDE }, (_, i) => d[4 * i]);
  }

  /** Shows raw 28×28 pixels on the pad (nearest-neighbour upscaling). */
  show(pixels) {
    const img = this.small.createImageData(SIDE, SIDE);
    pixels.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
    this.small.putImageData(img, 0, 0);
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(this.small.canvas, 0, 0, this.pad.width, this.pad.height);
    this.empty = false;
  }

  /** Fills the strip with test samples: [{pixels, label, name}]. */
  setSamples(list) {
    if (this.selected !== null) this.selectSample(null);
    this.sampleList = list;
    this.samples.replaceChildren(...list.map((s, i) => {
      const c = Object.assign(document.createElement('canvas'), { width: SIDE, height: SIDE });
      const img = c.getContext('2d').createImageData(SIDE, SIDE);
      s.pixels.forEach((v, k) => { img.data.set([v, v, v, 255], 4 * k); });
      c.getContext('2d').putImageData(img, 0, 0);
      const b = el('button', { type: 'button', 'aria-pressed': 'false', 'data-label': s.name, title: `Test image ${i + 1} (label ${s.name})` }, c);
      b.addEventListener('click', () => { this.selectSample(i); this.show(s.pixels); this.current = s.pixels; this.update(); });
      return b;
    }));
  }

  selectSample(i) {
    this.current = null;
    this.selected = i;
    [...this.samples.children].forEach((b, k) => b.setAttribute('aria-pressed', String(k === i)));
  }

  /** What a share link keeps: {sample: i}, {pixels: 28×28 bytes} of a drawing, or null. */
  linkState() {
    if (this.selected !== null && this.selected !== undefined) return { sample: this.selected };
    if (this.empty) return null;
    return { pixels: Uint8Array.from(this.current ?? this.pixels()) };
  }

  /** Shows and scores what `linkState` returned (exactly: a drawing is scored from its 28×28 bytes). */
  restore(t) {
    if (!t) return;
    if (t.sample !== undefined) {
      const s = this.sampleList?.[t.sample];
      if (!s) throw new Error(`the link selects test image ${t.sample + 1}, which this data set does not have`);
      this.selectSample(t.sample);
      this.show(s.pixels);
      this.current = s.pixels;
    } else {
      this.selectSample(null);
      this.show(Array.from(t.pixels));
      this.current = Array.from(t.pixels);
    }
    this.update();
  }

  /** Re-scores the current input (at most one request in flight; the latest input wins). */
  update() {
    if (this.empty) return;
    if (this.pending) { this.again = true; return; }
    this.pending = true;
    this.score(this.current ?? this.pixels())
      .then((r) => this.render(r))
      .catch(this.onError)
      .finally(() => {
        this.pending = false;
        if (this.again) { this.again = false; this.update(); }
      });
  }

  render(r) {
    renderTry(this.answerEl, this.bars, r);
  }
}

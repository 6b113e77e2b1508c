// UI-side handle on the engine worker: promise-based calls with progress.
//
// The worker runs each call to the end (the engine is synchronous), so a
// running decomposition cannot be told to stop by a message. `restart()`
// stops it the only way that works without cross-origin isolation: it ends
// the worker and starts a fresh one, then replays the journal — every call
// that added a data set or a model, in order, so the new worker hands out
// the same ids — and re-decomposes the models the page still uses.

/** Calls that add to the engine's state (their ids depend on their order). */
const JOURNALED = new Set(['addDataset', 'addIdxDataset', 'addModel', 'addFile']);
/** `args` with a copy of each ArrayBuffer in it, and those copies (to transfer). */
function copyBuffers(args) {
  const copy = Object.fromEntries(Object.entries(args).map(([k, v]) => [k, v instanceof ArrayBuffer ? v.slice(0) : v]));
  return [copy, Object.values(copy).filter((v) => v instanceof ArrayBuffer)];
}

/** What a call ended by `restart()` rejects with. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export class Engine {
  constructor(url = './worker.js') {
    this.url = new URL(url, import.meta.url);
    this.next = 1;
    this.pending = new Map();
    this.journal = [];              // [{op, args}] of successful JOURNALED calls, in order
    this.decompositions = new Map(); // model id -> {settings, digest} of its latest decomposition
    this.restoring = null;           // a replay in progress: other calls wait for it
    this.spawn();
  }

  spawn() {
    this.worker = new Worker(this.url, { type: 'module' });
    this.worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.progress !== undefined) return p.onProgress?.(data.progress);
      this.pending.delete(data.id);
      data.ok ? p.resolve(data.result) : p.reject(new Error(data.error));
    };
    this.worker.onerror = (e) => {
      const err = new Error(`engine worker failed: ${e.message ?? 'unknown error'}`);
      this.rejectAll(err);
      this.onFatal?.(err);
    };
  }

  rejectAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  post(op, args, onProgress, transfer = []) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  async call(op, args, onProgress, transfer = []) {
    if (this.restoring) await this.restoring.catch(() => {});
    // The journal keeps its own copy: transferred bytes are gone from this thread.
    const kept = JOURNALED.has(op) ? { op, args: copyBuffers(args)[0] } : null;
    const result = await this.post(op, args, onProgress, transfer);
    if (kept) this.journal.push(kept);
    if (op === 'decompose') this.decompositions.set(args.model, { settings: args.settings ?? null, digest: result.mask_digest });
    return result;
  }

  /**
   * Ends the worker (every call under way rejects with CancelledError) and
   * starts a fresh one with the same data sets and models. `keep(modelId)`
   * says which models to decompose again (asked once the rejected calls have
   * unwound); each must give the same masks as before. Resolves when the new
   * worker is ready; `onProgress(fraction)` follows the replay.
   */
  restart(keep = () => true, onProgress) {
    this.worker.terminate();
    this.rejectAll(new CancelledError());
    this.spawn();
    const replay = async () => {
      // Let the rejected calls' handlers run first: they decide what the page keeps.
      await new Promise((r) => setTimeout(r, 0));
      const redo = [...this.decompositions].filter(([id]) => keep(id));
      const steps = this.journal.length + redo.length;
      let done = 0;
      for (const { op, args } of this.journal) {
        const [copy, buffers] = copyBuffers(args);
        await this.post(op, copy, null, buffers);
        onProgress?.(++done / steps);
      }
      this.decompositions = new Map();
      for (const [model, { settings, digest }] of redo) {
        const dec = await this.post('decompose', { model, settings }, (f) => onProgress?.((done + f) / steps));
        onProgress?.(++done / steps);
        if (dec.mask_digest !== digest) throw new Error(`the restored decomposition of model ${model} differs from the one before cancelling`);
        this.decompositions.set(model, { settings, digest });
      }
    };
    this.restoring = replay().finally(() => { this.restoring = null; });
    return this.restoring;
  }
}

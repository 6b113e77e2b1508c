// UI-side handle on the engine worker: promise-based calls with progress.
export class Engine {
  constructor(url = './worker.js') {
    this.worker = new Worker(new URL(url, import.meta.url), { type: 'module' });
    this.next = 1;
    this.pending = new Map();
    this.worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.progress !== undefined) return p.onProgress?.(data.progress);
      this.pending.delete(data.id);
      data.ok ? p.resolve(data.result) : p.reject(new Error(data.error));
    };
    this.worker.onerror = (e) => {
      const err = new Error(`engine worker failed: ${e.message ?? 'unknown error'}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.onFatal?.(err);
    };
  }

  call(op, args, onProgress, transfer = []) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }
}

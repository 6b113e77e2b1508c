// The only thread that runs the engine. Messages in: {id, op, args};
// out: {id, ok: true, result} | {id, ok: false, error} | {id, progress: [done, total]}.
import init, * as engine from './pkg/remodule.js';

const ready = init().then(() => engine.engineInfo());

const ops = {
  info: () => ready,
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    await ready;
    const fn = ops[op];
    if (!fn) throw new Error(`unknown operation ${op}`);
    const result = await fn(args ?? {}, (done, total) => self.postMessage({ id, progress: [done, total] }));
    self.postMessage({ id, ok: true, result });
  } catch (e) {
    self.postMessage({ id, ok: false, error: String(e?.message ?? e) });
  }
};

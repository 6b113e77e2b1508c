import { Engine } from './engine.js';

const $ = (id) => document.getElementById(id);

export function showError(err) {
  $('error-text').textContent = String(err?.message ?? err);
  $('error-banner').hidden = false;
}
$('error-close').addEventListener('click', () => { $('error-banner').hidden = true; });
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

const engine = new Engine();
engine.onFatal = showError;

async function boot() {
  const info = await engine.call('info');
  const status = $('engine-status');
  status.textContent = `Engine ${info.version} ready · SIMD ${info.simd ? 'on' : 'off'}`;
  status.dataset.ready = 'true';
}

boot().catch(showError);

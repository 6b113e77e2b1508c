// Offline and installable (sw.js): registered once the first view is shown, so it never competes
// with the first visit's downloads. The footer names this page's build and says when it is
// available offline; when a new build has been installed beside this one, a notice offers the
// reload that switches to it (sw.js never hands this page another build's files).
// body[data-build] is this page's build, body[data-offline] one of
// installing | ready | update-ready | other-build | unavailable (the tests wait on it).
import { el } from './view.js';

/** This page's build ({version, files}) as build.js says (from the service worker: the build that served the page). */
async function pageBuild() {
  await import('./build.js');
  const b = globalThis.REMODULE_BUILD;
  if (!b?.version) throw new Error('build.js names no build');
  return b;
}

/** Sends `msg` to service worker `w` and resolves to its reply. */
function ask(w, msg) {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = (e) => resolve(e.data);
    w.postMessage(msg, [ch.port2]);
  });
}

export async function startOffline() {
  const note = el('span', { id: 'offline-note', role: 'status' });
  document.querySelector('footer')?.append(' ', note);
  const say = (state, text) => {
    document.body.dataset.offline = state;
    note.textContent = text;
  };
  let build;
  try {
    build = await pageBuild();
  } catch (e) {
    say('unavailable', `No offline copy: ${e.message}.`);
    return;
  }
  document.body.dataset.build = build.version;
  const name = `Build ${build.version.slice(0, 8)}`;
  if (!('serviceWorker' in navigator)) {
    say('unavailable', `${name} · this browser keeps no offline copy.`);
    return;
  }
  const sw = navigator.serviceWorker;
  say('installing', `${name} · saving an offline copy…`);
  let reg;
  try {
    reg = await sw.register('sw.js', { updateViaCache: 'none' });
  } catch (e) {
    say('unavailable', `${name} · no offline copy (${e.message}).`);
    return;
  }
  const failed = (w) => w?.addEventListener('statechange', () => {
    // An install that failed (a file missing, or not the build's bytes): the browser tries again on a later visit.
    if (w.state === 'redundant' && !reg.active) say('unavailable', `${name} · the offline copy could not be saved (see the service worker's console); a later visit tries again.`);
  });
  failed(reg.installing);
  const watch = (w) => {
    if (!w) return;
    const check = () => { if (w.state === 'installed' && sw.controller) offerUpdate(w, name, say); };
    w.addEventListener('statechange', check);
    check();
  };
  watch(reg.waiting);
  reg.addEventListener('updatefound', () => watch(reg.installing));
  window.addEventListener('online', () => reg.update().catch(() => {}));
  await sw.ready;
  const active = reg.active;
  const { version } = await ask(active, { type: 'version' });
  if (version !== build.version) {
    // Loaded from the network while another build is cached (a hard reload, a build deployed meanwhile).
    if (!reg.waiting) say('other-build', `${name} · the offline copy is of build ${version.slice(0, 8)}; reload to use it.`);
    return;
  }
  if (!sw.controller) await ask(active, { type: 'claim', version: build.version });
  if (!reg.waiting) say('ready', `${name} · works offline.`);
}

/** The notice for a new build that waits beside this one. */
function offerUpdate(w, name, say) {
  if (document.getElementById('update-notice')) return;
  say('update-ready', `${name} · a new version is ready.`);
  const button = el('button', { type: 'button', id: 'update-reload' }, 'Reload to update');
  const text = el('span', {}, 'A new version of Remodule is ready. Your playground is kept (a data set you uploaded has to be chosen again).');
  const notice = el('div', { id: 'update-notice', class: 'notice update-notice', role: 'status' }, text, ' ', button);
  document.querySelector('header.top')?.after(notice);
  button.addEventListener('click', async () => {
    button.disabled = true;
    navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
    const r = await ask(w, { type: 'update' });
    if (!r.ok) {
      text.textContent = `A new version of Remodule is ready: close the other ${r.tabs - 1} Remodule tab${r.tabs > 2 ? 's' : ''}, then reload.`;
      button.disabled = false;
    }
  });
}

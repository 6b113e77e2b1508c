// The page's offline copy (registered by offline.js; no server logic, any static host will do).
//
// One cache per build: build.js, written by build_site, names the build's version and the SHA-256
// of every file of the site (page code, engine, settings, exercises, bundled models and data).
// Installing caches exactly those bytes — each file checked against its digest, unchanged ones
// copied from the previous build's cache instead of downloaded — and a page is answered only from
// its own build's cache: a new build is installed beside the old one and waits; the page offers
// a reload, and the new build takes over only when no other tab still runs the old one. So a page
// is never served another build's engine or data. Files outside the build (benchmarks) go to the
// network as usual.
importScripts('build.js');

const BUILD = self.REMODULE_BUILD;
const PREFIX = 'remodule-';
const CACHE = PREFIX + BUILD.version;
const SCOPE = new URL(self.registration.scope);
const key = (path) => new URL(path, SCOPE).href;

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
const sha256 = async (response) => hex(await crypto.subtle.digest('SHA-256', await response.clone().arrayBuffer()));

/** Puts file `path` (expected digest `want`) into `cache`: reused from an older build's cache, or fetched. */
async function cacheFile(cache, older, path, want) {
  const k = key(path);
  const have = await cache.match(k);
  if (have && await sha256(have) === want) return;
  for (const old of older) {
    const r = await old.match(k);
    if (r && await sha256(r) === want) return cache.put(k, r);
  }
  // Past the HTTP cache (revalidated): the bytes must be this build's.
  const r = await fetch(k, { cache: 'no-cache' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  if (await sha256(r) !== want) throw new Error(`${path} on the server is not the file of build ${BUILD.version} (the site changed while it was being cached)`);
  await cache.put(k, r);
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const older = await Promise.all((await caches.keys()).filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.open(k)));
    const files = Object.entries(BUILD.files);
    let next = 0;
    // Four downloads at a time; any failure fails the install (the browser tries again on a later visit).
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < files.length) {
        const [path, want] = files[next++];
        await cacheFile(cache, older, path, want);
      }
    }));
  })());
});

self.addEventListener('activate', (event) => {
  // The previous build's tabs are gone (or were reloaded): its cache goes.
  event.waitUntil((async () => {
    for (const k of await caches.keys()) if (k.startsWith(PREFIX) && k !== CACHE) await caches.delete(k);
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || !req.url.startsWith(SCOPE.href)) return;
  let path = new URL(req.url).pathname.slice(SCOPE.pathname.length);
  if (path === '' && req.mode === 'navigate') path = 'index.html';
  if (path === 'build.js') {
    // The page asks which build it is: the one that served it.
    event.respondWith(new Response(`self.REMODULE_BUILD = ${JSON.stringify(BUILD)};\n`, { headers: { 'Content-Type': 'text/javascript' } }));
    return;
  }
  if (!Object.hasOwn(BUILD.files, path)) return;
  event.respondWith(caches.open(CACHE).then((c) => c.match(key(path))).then((r) => r ?? fetch(req)));
});

self.addEventListener('message', (event) => {
  const reply = (m) => event.ports[0]?.postMessage(m);
  const { type, version } = event.data ?? {};
  event.waitUntil((async () => {
    const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    if (type === 'version') {
      reply({ version: BUILD.version });
    } else if (type === 'claim') {
      // A first visit's page, loaded from the network: taken over only if it is of this build
      // and the only tab (so its later loads, e.g. another model, work offline too).
      const ok = version === BUILD.version && tabs.length === 1;
      if (ok) await self.clients.claim();
      reply({ ok });
    } else if (type === 'update') {
      // Asked by the tab that will reload at once; other tabs of the old build keep it until closed.
      const ok = tabs.length <= 1;
      if (ok) await self.skipWaiting();
      reply({ ok, tabs: tabs.length });
    }
  })());
});

// IndexedDB stores (idb-keyval) in real Chromium: the shared persistence suite, plus a write from
// the shared WASM memory's kind of buffer (a SharedArrayBuffer view), which Chromium's IndexedDB
// refuses to store unless the store copies it (fake-indexeddb accepts it, so only this shows it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from './stores-shared.js';
import { storeSuite } from './stores-suite.js';

const ctx = storeSuite({ kind: 'idb', pageMode: 'idb', prefix: 'idb:', second: /^idb: open tests\/err\.bin failed: the file is open elsewhere/ });

test('idb: writes from SharedArrayBuffer views are stored (copied) and read back after a reload', async () => {
  const r = await call<{ isolated: boolean }>(ctx.page, 'idbSharedWrite', { path: 'tests/sab.bin' });
  assert.equal(r.isolated, true);
  await ctx.page.reload();
  assert.deepEqual(await call(ctx.page, 'idbSharedRead', { path: 'tests/sab.bin' }), { size: 200_000, sum: 200_000 * 0x42 });
});

// IndexedDB stores (idb-keyval) in real Chromium: the shared persistence suite, plus a write from
// the shared WASM memory's kind of buffer (a SharedArrayBuffer view), which Chromium's IndexedDB
// refuses to store unless the store copies it (fake-indexeddb accepts it, so only this shows it);
// and where Chromium keeps the chunks (inside the database, not as one Blob file each).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { call, openPage, startStoreBrowser } from './stores-shared.js';
import { makeTempDir } from '../helpers/tmp.js';
import { storeSuite } from './stores-suite.js';

const ctx = storeSuite({ kind: 'idb', pageMode: 'idb', prefix: 'idb:', second: /^open idb:tests\/err\.bin for writing refused: the image is in use by another writer \(another page or worker, which holds the Web Lock "ploop-wasm:idb:[^"]+\/tests\/err\.bin"\); close it there first, or open it read-only$/ });

test('idb: writes from SharedArrayBuffer views are stored (copied) and read back after a reload', async () => {
  const r = await call<{ isolated: boolean }>(ctx.page, 'idbSharedWrite', { path: 'tests/sab.bin' });
  assert.equal(r.isolated, true);
  await ctx.page.reload();
  assert.deepEqual(await call(ctx.page, 'idbSharedRead', { path: 'tests/sab.bin' }), { size: 200_000, sum: 200_000 * 0x42 });
});

// Chromium keeps an IndexedDB value whose serialized form is above 64 KiB (Blink's
// IDBValueWrapper threshold) as a Blob in a file of its own, next to the database. The store's
// default chunks must stay below it; 64 KiB chunks (the old default, 65564 bytes serialized)
// must not, or this test proves nothing.
test('idb: default chunks are stored inside the database, 64 KiB chunks would each be a Blob file', async () => {
  const profile = await makeTempDir('ploop-idb-blobs-');
  const session = await startStoreBrowser({ profileDir: profile.dir });
  try {
    const page = await openPage(session);
    const blobFiles = async () => {
      const root = join(profile.dir, 'Default', 'IndexedDB');
      const dirs = (await readdir(root)).filter((d) => d.endsWith('.indexeddb.blob'));
      let n = 0;
      for (const d of dirs) n += (await readdir(join(root, d), { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
      return n;
    };
    // A string, not a function: the page runs it exactly as written.
    const write = (db: string, chunkBytes: number | null) => page.evaluate(`(async () => {
      const lib = await import('/ploop.js');
      const s = await lib.IdbStore.open('disk', { create: true, db: ${JSON.stringify(db)}${chunkBytes ? `, chunkBytes: ${chunkBytes}` : ''} });
      const data = new Uint8Array(1 << 20);
      for (let at = 0; at < data.length; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
      await s.write(0, data);
      await s.close();
      const r = await lib.IdbStore.open('disk', { db: ${JSON.stringify(db)}, cacheBytes: 0 });
      const back = new Uint8Array(1 << 20);
      await r.read(0, back);
      await r.close();
      return { chunkBytes: s.chunkBytes, same: back.every((b, i) => b === data[i]) };
    })()`) as Promise<{ chunkBytes: number; same: boolean }>;
    const small = await write('blobs-default', null);
    assert.deepEqual(small, { chunkBytes: 32 << 10, same: true });
    assert.equal(await blobFiles(), 0, '1 MiB in 32 KiB chunks made Blob files');
    const big = await write('blobs-64k', 64 << 10);
    assert.deepEqual(big, { chunkBytes: 64 << 10, same: true });
    assert.ok(await blobFiles() >= 16, `1 MiB in 64 KiB chunks made ${await blobFiles()} Blob files, expected one per chunk (16)`);
    assert.deepEqual(session.errors, []);
  } finally {
    await session.close();
    await profile.cleanup();
  }
});

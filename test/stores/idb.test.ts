// IdbStore and IdbDirectory in Node over fake-indexeddb (the browser run is in
// test/browser/stores-idb.test.ts): random operations against MemoryStore as the model, with
// tiny chunks, a tiny dirty bound and a tiny clean cache so that background commits, partial
// chunks, evictions and shrinks interleave; reopening after flush shows exactly what was flushed.
import 'fake-indexeddb/auto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdbStore } from '../../src/stores/idb.js';
import { IdbDirectory } from '../../src/stores/idb-dir.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { initStack, openStackDir, snapshotStack } from '../../src/engine/stack.js';
import { Prng } from '../helpers/prng.js';
import { rejectsWith } from '../helpers/errors.js';

async function bytesOf(store: { size(): Promise<number>; read(o: number, b: Uint8Array): Promise<number> }): Promise<Uint8Array> {
  const out = new Uint8Array(await store.size());
  await store.read(0, out);
  return out;
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`random writes, reads, truncates and flushes match a MemoryStore (seed ${seed})`, async () => {
    const rng = new Prng(seed);
    const path = `model-${seed}`;
    const cacheBytes = seed % 2 === 0 ? 3072 : 0;
    let store = await IdbStore.open(path, { create: true, chunkBytes: 1024, maxDirtyBytes: 4096, cacheBytes });
    const model = new MemoryStore();
    let flushed = new Uint8Array(0);
    const pending: Array<Promise<void>> = [];
    for (let step = 0; step < 400; step++) {
      const op = rng.int(100);
      if (op < 55) {
        const length = 1 + rng.int(3000);
        const offset = rng.int(20000);
        const data = new Uint8Array(length);
        for (let i = 0; i < length; i++) data[i] = rng.int(256);
        // Writes are issued without waiting (as the engine does); the store orders them.
        pending.push(store.write(offset, data));
        await model.write(offset, data);
      } else if (op < 80) {
        await Promise.all(pending.splice(0));
        const offset = rng.int(22000);
        const length = rng.int(5000);
        const got = new Uint8Array(length);
        const want = new Uint8Array(length);
        const n = await store.read(offset, got);
        const m = await model.read(offset, want);
        assert.equal(n, m, `step ${step}: read length at ${offset}`);
        assert.deepEqual(got, want, `step ${step}: read ${length} at ${offset}`);
      } else if (op < 88) {
        const size = rng.int(24000);
        pending.push(store.truncate(size));
        await model.truncate(size);
      } else if (op < 96) {
        await Promise.all(pending.splice(0));
        await store.flush();
        flushed = model.bytes().slice();
      } else {
        // Close without flush is a flush too; reopen shows the flushed state.
        await Promise.all(pending.splice(0));
        await store.close();
        flushed = model.bytes().slice();
        store = await IdbStore.open(path, { writable: true, maxDirtyBytes: 4096, cacheBytes });
        assert.equal(store.chunkBytes, 1024, 'an existing image keeps its chunk size');
        assert.deepEqual(await bytesOf(store), flushed, `step ${step}: reopened`);
      }
    }
    await Promise.all(pending);
    await store.flush();
    const reader = await IdbStore.open(path, { chunkBytes: 4096 });
    assert.deepEqual(await bytesOf(reader), model.bytes());
    await reader.close();
    await store.close();
  });
}

test('unflushed writes are not visible to a second opener; flushed ones are', async () => {
  const a = await IdbStore.open('visibility', { create: true, chunkBytes: 4096 });
  await a.write(10, new Uint8Array([1, 2, 3]));
  let b = await IdbStore.open('visibility');
  assert.equal(await b.size(), 0);
  await a.flush();
  b = await IdbStore.open('visibility');
  assert.equal(await b.size(), 13);
  assert.deepEqual(await bytesOf(b), Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]));
  await a.close();
});

test('a write from a SharedArrayBuffer view is stored as a copy', async () => {
  const shared = new Uint8Array(new SharedArrayBuffer(8192)).fill(0x42);
  const s = await IdbStore.open('sab', { create: true, chunkBytes: 4096 });
  await s.write(100, shared);
  shared.fill(0);
  await s.close();
  const r = await IdbStore.open('sab');
  const got = new Uint8Array(8192);
  await r.read(100, got);
  assert.ok(got.every((b) => b === 0x42));
});

test('errors name the store and the operation', async () => {
  await rejectsWith(() => IdbStore.open('nothing-here'), 'EIO', /^idb: open nothing-here failed: no such file$/);
  await rejectsWith(() => IdbStore.open('x', { chunkBytes: 100 }), 'EINVAL', /chunkBytes 100 is out of range/);
  const s = await IdbStore.open('ro', { create: true });
  await s.close();
  const ro = await IdbStore.open('ro');
  await rejectsWith(() => ro.write(0, new Uint8Array(1)), 'EREADONLY', /^idb:ro: write refused, the store is read-only$/);
  await rejectsWith(() => ro.truncate(0), 'EREADONLY', /^idb:ro: truncate refused/);
  await ro.close();
  await rejectsWith(() => ro.read(0, new Uint8Array(1)), 'ECLOSED', /^idb:ro: read refused, the store is closed$/);
  const w = await IdbStore.open('ro', { writable: true });
  await rejectsWith(() => w.truncate(-1), 'EINVAL', /truncate to -1 refused/);
  await w.close();
});

test('a disk folder in IdbDirectory: init, snapshot, write through the stack; remove drops it', async () => {
  const dir = await IdbDirectory.open('folders/vm');
  await initStack(dir, { size: 4 << 20, clusterSize: 64 << 10 });
  let image = await openStackDir(dir, { writable: true });
  await image.write(0, new Uint8Array(70000).fill(1));
  await image.close();
  const snap = await snapshotStack(dir);
  image = await openStackDir(dir, { writable: true });
  await image.write(65536, new Uint8Array(10).fill(2));
  await image.close();
  image = await openStackDir(dir);
  const got = await image.read(65530, 20);
  await image.close();
  assert.deepEqual(Array.from(got), [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1]);
  assert.match((await dir.readText('DiskDescriptor.xml'))!, new RegExp(snap.file.replace(/[{}.]/g, '\\$&')));
  assert.deepEqual(await dir.list(), ['DiskDescriptor.xml', 'root.hds', snap.file].sort());
  assert.deepEqual(await (await IdbDirectory.open('folders')).list(), [], 'files of sub-folders are not listed');
  await IdbDirectory.remove('folders/vm');
  assert.equal(await dir.readText('DiskDescriptor.xml'), null);
  await rejectsWith(() => dir.openStore('root.hds'), 'EIO', /no such file/);
  await rejectsWith(() => dir.openStore('a/b'), 'EINVAL', /must be a plain name/);
});

test('a second object store in the same database is added by an upgrade; data in the first stays', async () => {
  const a = await IdbStore.open('shared-db-image', { create: true, db: 'two-stores', store: 'first' });
  await a.write(0, new Uint8Array([1, 2, 3]));
  await a.close();
  const b = await IdbStore.open('shared-db-image', { create: true, db: 'two-stores', store: 'second' });
  await b.write(0, new Uint8Array([4, 5]));
  await b.close();
  const again = await IdbStore.open('shared-db-image', { db: 'two-stores', store: 'first' });
  assert.deepEqual(Array.from(await bytesOf(again)), [1, 2, 3]);
  const other = await IdbStore.open('shared-db-image', { db: 'two-stores', store: 'second' });
  assert.deepEqual(Array.from(await bytesOf(other)), [4, 5]);
});

test('new images get 32 KiB chunks; an image made with the old 64 KiB chunks keeps them and reads back', async () => {
  const fresh = await IdbStore.open('chunk-default', { create: true });
  assert.equal(fresh.chunkBytes, 32 << 10);
  assert.equal(IdbStore.DEFAULT_CHUNK_BYTES, 32 << 10);
  await fresh.close();
  const data = new Uint8Array(300_000).map((_, i) => (i * 7 + (i >> 16)) & 0xff);
  const old = await IdbStore.open('chunk-old', { create: true, chunkBytes: 64 << 10 });
  await old.write(1000, data);
  await old.close();
  // Reopened by today's code, without saying a chunk size (or asking for another one).
  for (const options of [{}, { chunkBytes: 32 << 10 }]) {
    const again = await IdbStore.open('chunk-old', { writable: true, ...options });
    assert.equal(again.chunkBytes, 64 << 10, 'the chunk size recorded in the metadata wins');
    assert.equal(await again.size(), 301_000);
    const back = new Uint8Array(300_000);
    assert.equal(await again.read(1000, back), 300_000);
    assert.deepEqual(back, data);
    await again.write(65_000, new Uint8Array(1000).fill(9)); // across a 64 KiB chunk boundary
    await again.close();
    data.fill(9, 64_000, 65_000);
  }
});

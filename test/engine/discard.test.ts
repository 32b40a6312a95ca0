// Discard and allocation (docs/format.md 'Deltas and stacks'; docs/engine.md 'Discard and slot
// reuse'): whole clusters are unmapped and reused after a flush, zero writes allocate nothing, and
// new clusters read zeros around a partial write even when they reuse discarded space.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createImage, MemoryStore, PloopImage, type BlockStore } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { DiskModel, assertBytesEqual, assertAllZero } from '../helpers/model.ts';
import { assertQemuAgrees, assertQemuAgreesOnBytes } from '../helpers/oracle.ts';
import { readWhole } from '../helpers/images.ts';

const C = 64 << 10;
const SIZE = 4 << 20;

async function fresh(store: BlockStore = new MemoryStore(), preallocBytes?: number): Promise<{ store: BlockStore; image: PloopImage; model: DiskModel }> {
  await createImage(store, { size: SIZE, clusterSize: C });
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true, preallocBytes });
  return { store, image, model: new DiskModel(SIZE) };
}

/** BAT entry `i` as it is in the store right now (not the engine's memory). */
async function storedEntry(store: BlockStore, i: number): Promise<number> {
  const b = new Uint8Array(4);
  await store.read(64 + 4 * i, b);
  return new DataView(b.buffer).getUint32(0, true);
}

function fill(value: number, length = C): Uint8Array {
  return new Uint8Array(length).fill(value);
}

async function write(t: { image: PloopImage; model: DiskModel }, offset: number, data: Uint8Array): Promise<void> {
  await t.image.write(offset, data);
  t.model.write(offset, data);
}

async function discard(t: { image: PloopImage; model: DiskModel }, offset: number, length: number): Promise<void> {
  await t.image.discard(offset, length);
  t.model.discard(offset, length);
}

test('a whole-cluster discard zeroes the BAT entry on disk and the cluster reads zeros', async () => {
  await withTempDir(async (dir) => {
    const t = await fresh();
    for (let i = 0; i < 4; i++) await write(t, i * C, fill(0xa0 + i));
    const before = [0, 1, 2, 3].map((i) => t.image.bat.entryValue(i));
    assert.deepEqual(await Promise.all([0, 1, 2, 3].map((i) => storedEntry(t.store, i))), before);
    assert.ok(before.every((v) => v !== 0));
    await discard(t, 1 * C, C);
    assert.equal(await storedEntry(t.store, 1), 0, 'BAT[1] on disk after the discard resolved');
    assert.deepEqual([0, 2, 3].map((i) => t.image.bat.entryValue(i)), [before[0], before[2], before[3]], 'other entries untouched');
    assertAllZero(await t.image.read(C, C), 'discarded cluster 1');
    assert.equal(t.image.allocatedClusters(), 3);
    assert.deepEqual(t.image.map(C, C).map((e) => e.hostOffset), [-1], 'cluster 1 is a hole');
    assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk after discard');
    await t.image.close();
    await assertQemuAgreesOnBytes(dir, (t.store as MemoryStore).bytes(), t.model.bytes, 'after discard');
  });
});

test('after a flush the next allocation reuses the discarded cluster and the file does not grow', async () => {
  await withTempDir(async (dir) => {
    // Without preallocation, so that the file's size is the data area's (preallocation grows the
    // file ahead of the allocator whether or not a slot is reused).
    const t = await fresh(new MemoryStore(), 0);
    for (let i = 0; i < 4; i++) await write(t, i * C, fill(0xb0 + i));
    const freed = t.image.bat.entryValue(1);
    await discard(t, C, C);
    await t.image.flush();
    const sizeBefore = await t.store.size();
    await write(t, 9 * C, fill(0x99));
    assert.equal(t.image.bat.entryValue(9), freed, 'cluster 9 took the freed cluster');
    assert.equal(await storedEntry(t.store, 9), freed);
    assert.equal(await t.store.size(), sizeBefore, 'the file did not grow');
    assertAllZero(await t.image.read(C, C), 'cluster 1 still reads zeros after its old space was reused');
    assertBytesEqual(await t.image.read(9 * C, C), fill(0x99), 'cluster 9');
    await t.image.close();
    await assertQemuAgreesOnBytes(dir, (t.store as MemoryStore).bytes(), t.model.bytes, 'after reuse');
  });
});

test('a cluster freed by discard is not reused before a flush has made the unmapping durable', async () => {
  const t = await fresh();
  await write(t, 0, fill(0xc0));
  await write(t, C, fill(0xc1));
  const freed = t.image.bat.entryValue(0);
  await discard(t, 0, C);
  // No flush yet: the old BAT entry may still be on disk, so its cluster must not get new data.
  await write(t, 5 * C, fill(0xc5));
  assert.notEqual(t.image.bat.entryValue(5), freed, 'cluster 5 must not reuse the not-yet-durable freed cluster');
  await t.image.flush();
  await write(t, 6 * C, fill(0xc6));
  assert.equal(t.image.bat.entryValue(6), freed, 'after the flush the freed cluster is reused');
  assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk');
  await t.image.close();
});

test('a write of all zeros to unallocated clusters allocates nothing', async () => {
  const t = await fresh();
  const sizeBefore = await t.store.size();
  await write(t, 2 * C, new Uint8Array(C)); // one whole cluster
  await write(t, 3 * C + 1234, new Uint8Array(2 * C)); // unaligned, over three clusters
  await write(t, SIZE - 7, new Uint8Array(7)); // the last bytes
  assert.equal(t.image.stats.clustersAllocated, 0);
  assert.equal(t.image.allocatedClusters(), 0);
  assert.equal(await t.store.size(), sizeBefore, 'the file did not grow');
  for (let i = 0; i < SIZE / C; i++) assert.equal(await storedEntry(t.store, i), 0, `BAT[${i}]`);
  // Data with a whole zero cluster in the middle: the zero cluster stays a hole.
  const data = new Uint8Array(2 * C).fill(0x77);
  data.fill(0, C / 2, C / 2 + C);
  await write(t, 10 * C + C / 2, data);
  assert.equal(t.image.stats.clustersAllocated, 2);
  assert.equal(t.image.bat.entryValue(11), 0, 'cluster 11 (all zeros) stays unallocated');
  assert.notEqual(t.image.bat.entryValue(10), 0);
  assert.notEqual(t.image.bat.entryValue(12), 0);
  // Zeros written over allocated data do overwrite it (no allocation, no unmapping).
  await write(t, 10 * C + C / 2, new Uint8Array(100));
  assert.equal(t.image.stats.clustersAllocated, 2);
  assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk');
  await t.image.close();
});

for (const kind of ['MemoryStore', 'NodeFileStore'] as const) {
  test(`partial writes into unallocated clusters read back zeros around them, also in reused discarded space (${kind})`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'p.hds');
      const store = kind === 'MemoryStore' ? new MemoryStore() : await NodeFileStore.open(path, { create: true });
      const t = await fresh(store);
      // A fresh cluster in the middle of nowhere.
      await write(t, 20 * C + 333, fill(0x42, 100));
      const cluster20 = await t.image.read(20 * C, C);
      assertAllZero(cluster20.subarray(0, 333), 'before the write in cluster 20');
      assertAllZero(cluster20.subarray(433), 'after the write in cluster 20');
      // Fill a cluster with 0xff, discard it, flush, then write a little into another cluster:
      // it reuses the discarded space, whose old bytes must not show.
      await write(t, 0, fill(0xff));
      const old = t.image.bat.entryValue(0);
      await discard(t, 0, C);
      await t.image.flush();
      await write(t, 3 * C + 1000, fill(0x42, 100));
      assert.equal(t.image.bat.entryValue(3), old, 'cluster 3 reuses the discarded space');
      const cluster3 = await t.image.read(3 * C, C);
      assertAllZero(cluster3.subarray(0, 1000), 'before the write in cluster 3');
      assertAllZero(cluster3.subarray(1100), 'after the write in cluster 3');
      // A write straddling two unallocated clusters.
      await write(t, 30 * C - 10, fill(0x43, 20));
      assertBytesEqual(await t.image.read(29 * C, 3 * C), t.model.read(29 * C, 3 * C), 'clusters 29..31');
      assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk');
      await t.image.close();
      if (store instanceof MemoryStore) await assertQemuAgreesOnBytes(dir, store.bytes(), t.model.bytes, kind);
      else {
        await store.close();
        await assertQemuAgrees(path, t.model.bytes, kind);
      }
    });
  });
}

test('an unaligned discard writes zeros into the partial clusters and unmaps the whole clusters inside', async () => {
  await withTempDir(async (dir) => {
    const t = await fresh();
    for (let i = 0; i < 5; i++) await write(t, i * C, fill(0x5a));
    const entries = [0, 1, 2, 3, 4].map((i) => t.image.bat.entryValue(i));
    await discard(t, C / 2, 3 * C); // second half of 0, all of 1 and 2, first half of 3
    assert.deepEqual([0, 1, 2, 3, 4].map((i) => t.image.bat.entryValue(i)), [entries[0], 0, 0, entries[3], entries[4]]);
    assert.equal(await storedEntry(t.store, 1), 0);
    assert.equal(await storedEntry(t.store, 2), 0);
    // Discarding holes allocates nothing.
    const allocated = t.image.stats.clustersAllocated;
    await discard(t, 40 * C + 5, 2 * C);
    assert.equal(t.image.stats.clustersAllocated, allocated);
    assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk');
    await t.image.close();
    await assertQemuAgreesOnBytes(dir, (t.store as MemoryStore).bytes(), t.model.bytes, 'after unaligned discard');
  });
});

test('a discard that reaches the end of a disk with a partial last cluster unmaps that cluster', async () => {
  await withTempDir(async (dir) => {
    const size = 5 * C + 1536; // the last cluster has 1536 bytes inside the disk
    const store = new MemoryStore();
    await createImage(store, { size, clusterSize: C });
    const t = { store, image: await PloopImage.open(store, { writable: true, keepStoreOpen: true }), model: new DiskModel(size) };
    await write(t, 4 * C, fill(0x61, C + 1536));
    assert.notEqual(t.image.bat.entryValue(5), 0);
    await discard(t, 5 * C + 1000, 536); // the tail only: zeros written, still mapped
    assert.notEqual(t.image.bat.entryValue(5), 0);
    await discard(t, 5 * C, 1536); // all of it that is inside the disk
    assert.equal(t.image.bat.entryValue(5), 0);
    assert.equal(await storedEntry(store, 5), 0);
    assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk');
    await t.image.close();
    await assertQemuAgreesOnBytes(dir, store.bytes(), t.model.bytes, 'partial last cluster');
  });
});

test('a full disk whose clusters are all discarded and rewritten at once, before any flush, does not run out of space', async () => {
  await withTempDir(async (dir) => {
    const size = 16 * C;
    const store = new MemoryStore();
    await createImage(store, { size, clusterSize: C });
    const t = { store, image: await PloopImage.open(store, { writable: true, keepStoreOpen: true }), model: new DiskModel(size) };
    await write(t, 0, fill(0x31, size));
    await discard(t, 0, size);
    assert.equal(t.image.allocatedClusters(), 0);
    // The discarded clusters are not reusable until a flush: each rewrite needs another one.
    await Promise.all(Array.from({ length: 16 }, (_, i) => write(t, i * C + 7, fill(0x40 + i, 100))));
    assert.equal(t.image.allocatedClusters(), 16);
    assertBytesEqual(await readWhole(t.image), t.model.bytes, 'whole disk');
    await t.image.close();
    await assertQemuAgreesOnBytes(dir, store.bytes(), t.model.bytes, 'rewritten disk');
  });
});

// The engine has store operations in flight at the same time: data writes, the truncate that
// grows the file before a BAT write, BAT writes, reads. A real store (Node's fs thread pool,
// OPFS) may complete them in any order, so correctness must not depend on it. These tests run
// the engine on a store that delays each operation by a random amount.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, MemoryStore, PloopImage, type PloopFormat } from '../../src/index.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { JitterStore } from '../helpers/jitter-store.ts';
import { readWhole } from '../helpers/images.ts';
import { randomOp } from '../helpers/workload.ts';
import { assertQemuAgreesOnBytes } from '../helpers/oracle.ts';

const C = 4096;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a truncate that grows the file but completes after a later write to a new cluster does not cut that write off', async () => {
  const memory = new MemoryStore();
  await createImage(memory, { size: 16 << 20, clusterSize: C });
  // Truncates take effect 10..30 ms late, writes at once: the first writeback cycle's truncate
  // lands after the next writes (on other md pages, so they do not wait for that cycle).
  const store = new JitterStore(memory, new Prng(1), { readMs: 0, writeMs: 0, truncateMs: 30 });
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  const model = new DiskModel(16 << 20);
  const writes: Promise<void>[] = [];
  // Clusters on md pages 0, 1, 2, 3 (1024 entries per page; page 0 starts with the header).
  for (const [i, cluster] of [0, 1500, 2600, 3700].entries()) {
    const data = new Uint8Array(10).fill(0xa0 + i);
    writes.push(image.write(cluster * C + 5, data));
    model.write(cluster * C + 5, data);
    await sleep(3);
  }
  await Promise.all(writes);
  assertBytesEqual(await readWhole(image), model.bytes, 'whole disk while open');
  await image.close();
  const reopened = await PloopImage.open(new MemoryStore(memory.bytes().slice()));
  assertBytesEqual(await readWhole(reopened), model.bytes, 'whole disk after reopen');
  await reopened.close();
});

/**
 * Keep up to 8 requests in flight on disjoint cluster ranges, issuing a new one every 0..2 ms,
 * so that writeback cycles overlap each other and new requests. The model is updated when a
 * request completes (no other request touches its range meanwhile).
 */
async function streamingWorkload(image: PloopImage, rng: Prng, opCount: number): Promise<DiskModel> {
  const model = new DiskModel(image.size);
  const clusters = Math.floor(image.size / C);
  const inflight = new Map<Promise<void>, [number, number]>();
  const window = Math.min(clusters, 2048); // a window wider than one md page, small enough for reuse
  let issued = 0;
  while (issued < opCount) {
    await sleep(rng.int(3));
    if (inflight.size >= 8) await Promise.race(inflight.keys());
    const first = rng.chance(0.1) ? clusters - 3 : rng.int(window - 3);
    const last = first + rng.range(1, 3);
    if ([...inflight.values()].some(([a, b]) => first < b && a < last)) continue;
    const op = randomOp(rng, first * C, Math.min(image.size, last * C), C);
    if (!op) continue;
    const p: Promise<void> = (op.kind === 'write' ? image.write(op.offset, op.data) : image.discard(op.offset, op.length)).then(() => {
      if (op.kind === 'write') model.write(op.offset, op.data);
      else model.discard(op.offset, op.length);
      inflight.delete(p);
    });
    inflight.set(p, [first, last]);
    issued++;
    if (rng.chance(0.05)) void image.flush();
  }
  await Promise.all(inflight.keys());
  return model;
}

for (const [seed, format] of [[11, 'v2'], [12, 'v1'], [13, 'v2']] as Array<[number, PloopFormat]>) {
  test(`a streaming workload on a store that completes operations out of order reads back the model and closes into a clean image (${format}, seed ${seed})`, async () => {
    await withTempDir(async (dir) => {
      const memory = new MemoryStore();
      const size = 16 << 20;
      await createImage(memory, { size, clusterSize: C, format });
      const store = new JitterStore(memory, new Prng(seed * 7919), { readMs: 2, writeMs: 3, truncateMs: 6 });
      const createdBytes = memory.bytes().length;
      const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
      const model = await streamingWorkload(image, new Prng(seed), 500);
      assertBytesEqual(await readWhole(image), model.bytes, `whole disk before close (seed ${seed})`);
      await image.close();
      // New clusters past the end grow the file by writes only (a truncate racing them could cut
      // data off), so the scenario exercised appends completing out of order.
      assert.ok(memory.bytes().length > createdBytes, 'the file grew by appended clusters');
      await assertQemuAgreesOnBytes(dir, memory.bytes(), model.bytes, `${format}, seed ${seed}`);
    });
  });
}

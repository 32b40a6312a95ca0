// The request rings and the shared-memory store in Node (real worker_threads): runners attach
// to one SharedArrayBuffer store and serve thousands of requests through their rings; errors
// raised inside a runner cross the ring as the same PloopError; an idle pool answers control
// calls; a long stream of small requests never stalls (the lost wake-up that Node's
// Atomics.waitAsync showed in workers); the store itself grows, shrinks and refuses as it says.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, MemoryStore, PloopError, checkImage } from '../../src/index.ts';
import { SharedMemoryStore } from '../../src/stores/shared-memory.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import type { StoreSpec } from '../../src/runners/protocol.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { assertBytesEqual } from '../helpers/model.ts';
import { runWorkload } from '../helpers/workload.ts';
import { assertQemuAgreesOnBytes } from '../helpers/oracle.ts';
import { rejectsWith } from '../helpers/errors.ts';
import { within } from '../helpers/race.ts';
import { OFF } from '../helpers/image-file.ts';
import '../helpers/source-workers.ts';

const C = 64 << 10;

async function emptyImage(size: number, clusterSize = C): Promise<Uint8Array> {
  const m = new MemoryStore();
  await createImage(m, { size, clusterSize });
  return m.bytes().slice();
}

test('shared-memory store: grows on writes past the end, truncate cuts and later growth reads zeros, another attachment sees the same bytes and size', async () => {
  const a = SharedMemoryStore.from(new Uint8Array([1, 2, 3]), { maxBytes: 1 << 20 });
  const b = SharedMemoryStore.attach(a.spec());
  assert.equal(a.shared, true);
  await b.write(100_000, new Uint8Array([9, 8]));
  assert.equal(await a.size(), 100_002, 'size seen through the other attachment');
  const back = new Uint8Array(4);
  assert.equal(await a.read(99_999, back), 3, 'short read at the end');
  assert.deepEqual([...back], [0, 9, 8, 0]);
  await a.truncate(2);
  assert.equal(await b.size(), 2);
  await b.write(10, new Uint8Array([5]));
  assert.deepEqual([...a.bytes()], [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 5], 'bytes cut by truncate read as zeros after growing again');
});

test('shared-memory store: refuses writes past maxBytes (ENOSPC naming the limit) and writes on a read-only attachment (EREADONLY)', async () => {
  const s = SharedMemoryStore.from(new Uint8Array(10), { maxBytes: 4096 });
  await rejectsWith(() => s.write(4000, new Uint8Array(200)), 'ENOSPC', /up to byte 4200/, /maxBytes \(4096\)/);
  const ro = SharedMemoryStore.attach(s.spec(false));
  await rejectsWith(() => ro.write(0, new Uint8Array(1)), 'EREADONLY', /read-only/);
  assert.throws(() => SharedMemoryStore.from(new Uint8Array(10), { maxBytes: 5 }), (e: unknown) => e instanceof PloopError && e.code === 'EINVAL' && /maxBytes 5/.test(e.message));
});

for (const runners of [1, 2, 4]) {
  test(`${runners} runner${runners > 1 ? 's' : ''} over a SharedArrayBuffer store: random writes and discards read back the model and QEMU agrees with the store's bytes`, { timeout: 60_000 }, async () => {
    const SIZE = 16 << 20;
    const store = SharedMemoryStore.from(await emptyImage(SIZE));
    const image = await ParallelImage.open([store.spec()], { writable: true, runners });
    let model: Uint8Array;
    try {
      assert.equal(image.runnerCount, runners);
      const r = await runWorkload(image, new Prng(0x7100 + runners), 1200, async () => new DataView(store.bytes().buffer).getUint32(OFF.inUse, true));
      model = r.model.bytes;
      assert.ok(r.sawInUseWhileOpen, 'the in-use flag was set in the shared store while open');
      assert.ok(r.discards > 50, `discards exercised (${r.discards})`);
      assertBytesEqual(await image.read(0, SIZE), model, `whole disk through ${runners} runners`);
      const stats = await image.stats();
      assert.equal(stats.runnerRequests.length, runners);
      for (const n of stats.runnerRequests) assert.ok(n > 50, `every runner served requests through its ring (${stats.runnerRequests})`);
    } finally {
      await image.close();
    }
    const report = await checkImage(new MemoryStore(store.bytes(), { writable: false }));
    assert.equal(report.clean, true, `checkImage: ${JSON.stringify(report.findings.slice(0, 3))}`);
    await withTempDir((dir) => assertQemuAgreesOnBytes(dir, store.bytes(), model, `${runners} runners on shared memory`));
  });
}

test('an error inside a runner crosses the ring as the same PloopError; the other requests of the burst complete and the image stays consistent', { timeout: 60_000 }, async () => {
  const SIZE = 8 << 20;
  const bytes = await emptyImage(SIZE);
  // Room for the header, the BAT and 4 clusters: the 5th allocation fails in the runner's store.
  const store = SharedMemoryStore.from(bytes, { maxBytes: bytes.length + 4 * C });
  const image = await ParallelImage.open([store.spec()], { writable: true, runners: 2 });
  try {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => image.write(i * C, new Uint8Array(C).fill(i + 1))));
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    assert.equal(failed.length, 4, `4 of 8 allocating writes fail: ${results.map((r) => r.status)}`);
    for (const f of failed) {
      assert.ok(f.reason instanceof PloopError, `a PloopError, got ${f.reason}`);
      assert.equal(f.reason.code, 'ENOSPC');
      assert.match(f.reason.message, /shared-memory store: write up to byte \d+ passes the store's maxBytes/);
    }
    // What was acknowledged reads back; the failed clusters read as holes.
    for (const [i, r] of results.entries()) {
      const got = await image.read(i * C, C);
      assertBytesEqual(got, new Uint8Array(C).fill(r.status === 'fulfilled' ? i + 1 : 0), `cluster ${i} (${r.status})`);
    }
  } finally {
    await image.close();
  }
  const report = await checkImage(new MemoryStore(store.bytes(), { writable: false }));
  assert.equal(report.clean, true, `checkImage after the failures: ${JSON.stringify(report.findings.slice(0, 3))}`);
});

test('a long stream of 4 KiB reads through 2 runners never stalls, reads the right blocks, and an idle pool answers stats', { timeout: 60_000 }, async () => {
  const SIZE = 8 << 20;
  const store = SharedMemoryStore.from(await emptyImage(SIZE));
  const image = await ParallelImage.open([store.spec()], { writable: true, runners: 2 });
  try {
    // Every 4 KiB block holds its own number.
    for (let at = 0; at < SIZE; at += 1 << 20) {
      const chunk = new Uint8Array(1 << 20);
      const view = new DataView(chunk.buffer);
      for (let b = 0; b < chunk.length; b += 4096) view.setUint32(b, (at + b) / 4096, true);
      await image.write(at, chunk);
    }
    const blocks = SIZE / 4096;
    const rng = new Prng(0x51ab);
    let next = 0;
    let wrong = 0;
    const COUNT = 30_000;
    // A deadline only to turn a stall into a failure (nothing is timed): 30 000 reads take well under a second when nothing stalls.
    await within(Promise.all(Array.from({ length: 32 }, async () => {
      const buffer = new Uint8Array(4096);
      const view = new DataView(buffer.buffer);
      while (next++ < COUNT) {
        const block = rng.nextU32() % blocks;
        await image.readInto(block * 4096, buffer);
        if (view.getUint32(0, true) !== block) wrong++;
      }
    })), 40_000, '30 000 reads at depth 32');
    assert.equal(wrong, 0, 'every read returned its block');
    // Idle runners block in Atomics.wait: a control call must still be answered promptly.
    await new Promise((r) => setTimeout(r, 200));
    const stats = await within(image.stats(), 5_000, 'stats() of an idle pool');
    assert.ok(stats.runnerRequests.every((n) => n > COUNT / 4), `both runners served reads: ${stats.runnerRequests}`);
  } finally {
    await within(image.close(), 10_000, 'close');
  }
});

test('bad pool arguments are refused with the field named: runner count, an unknown store kind', async () => {
  const store = SharedMemoryStore.from(await emptyImage(1 << 20));
  await rejectsWith(() => ParallelImage.open([store.spec()], { runners: -1 }), 'EINVAL', /runners -1/, /0 to 64/);
  await rejectsWith(() => ParallelImage.open([store.spec()], { runners: 1.5 }), 'EINVAL', /runners 1\.5/);
  await rejectsWith(() => ParallelImage.open([{ kind: 'tape', path: 'x' } as unknown as StoreSpec], { runners: 1 }), 'ENOTSUP', /store spec kind "tape"/);
  await rejectsWith(() => ParallelImage.open([], { runners: 1 }), 'EINVAL', /no deltas/);
});

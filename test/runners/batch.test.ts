// Batched requests (readMany / writeMany) through the runner pool (real worker_threads) and in
// this thread: random batches of aligned, unaligned, cross-cluster, empty and overlapping
// requests against the in-memory model, with 0 (in-thread), 1, 2 and 4 runners; then every
// byte, a reopen, and QEMU's check and convert. Overlapping writes of one batch land in request
// order. A failing request rejects the batch with an error naming it while the others complete;
// bad arguments are refused before anything runs, naming the request; a batch far bigger than
// the rings completes (flow control); buffers from allocShared are served in place.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createImage, MemoryStore, PloopImage, PloopError, checkImage } from '../../src/index.ts';
import { SharedMemoryStore } from '../../src/stores/shared-memory.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { readFileImage } from '../helpers/images.ts';
import { OFF, readU32, INUSE_MAGIC } from '../helpers/image-file.ts';
import { assertQemuAgrees, assertQemuAgreesOnBytes } from '../helpers/oracle.ts';
import { rejectsWith } from '../helpers/errors.ts';
import { within, createImageFile } from '../helpers/race.ts';
import { FaultyStore } from '../helpers/faulty-store.ts';
import { JitterStore } from '../helpers/jitter-store.ts';
import '../helpers/source-workers.ts';

const C = 64 << 10;
const SIZE = 16 << 20;

type Image = ParallelImage | PloopImage;

/** One random write request: 4 KiB aligned, small unaligned, crossing clusters, empty, or zeros. */
function randomWrite(rng: Prng, size: number): { offset: number; data: Uint8Array } {
  const r = rng.int(100);
  let offset: number;
  let length: number;
  if (r < 35) {
    length = 4096;
    offset = rng.int(size / 4096) * 4096;
  } else if (r < 60) {
    length = rng.range(1, 3000);
    offset = rng.int(size - length);
  } else if (r < 85) {
    // Crossing one or two cluster edges.
    length = rng.range(C / 2, Math.floor(C * 2.5));
    offset = Math.min(size - length, rng.int(size / C) * C - rng.range(1, C / 2) + C);
  } else if (r < 90) {
    length = 0;
    offset = rng.int(size);
  } else {
    length = rng.range(1, 2 * C);
    offset = rng.int(size - length);
    return { offset, data: new Uint8Array(length) };
  }
  return { offset, data: rng.bytes(length) };
}

async function readManyChecked(image: Image, model: DiskModel, rng: Prng, count: number, what: string): Promise<void> {
  const requests = Array.from({ length: count }, () => {
    const length = rng.chance(0.5) ? 4096 : rng.range(0, 3 * C);
    const offset = rng.int(model.size - length + 1);
    return { offset, into: new Uint8Array(length).fill(0xee) };
  });
  await image.readMany(requests);
  for (const [i, r] of requests.entries()) assertBytesEqual(r.into, model.read(r.offset, r.into.length), `${what}: read request ${i} (offset ${r.offset}, length ${r.into.length})`);
}

for (const runners of [0, 1, 2, 4]) {
  test(`${runners === 0 ? 'in-thread (0 runners)' : `${runners} runner${runners > 1 ? 's' : ''}`}: random batches of reads and writes (unaligned, cross-cluster, empty, overlapping) read back the model; reopen and QEMU agree`, { timeout: 90_000 }, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'batch.hds');
      await createImageFile(path, SIZE, C);
      const rng = new Prng(0xba7c + runners);
      const model = new DiskModel(SIZE);
      const image = await ParallelImage.open([path], { writable: true, runners, onWarning: () => {} });
      let overlapping = 0;
      try {
        assert.equal(image.runnerCount, runners);
        for (let round = 0; round < 60; round++) {
          const requests = Array.from({ length: rng.range(1, 48) }, () => randomWrite(rng, SIZE));
          // Now and then a request that overlaps an earlier one of the same batch: it must win.
          if (requests.length > 1 && rng.chance(0.4)) {
            const earlier = requests[rng.int(requests.length)];
            const offset = Math.max(0, Math.min(SIZE - 1, earlier.offset + rng.range(-100, 100)));
            requests.push({ offset, data: rng.bytes(Math.min(SIZE - offset, rng.range(1, 5000))) });
            overlapping++;
          }
          await image.writeMany(requests);
          for (const r of requests) model.write(r.offset, r.data);
          if (round % 3 === 0) await readManyChecked(image, model, rng, rng.range(1, 40), `round ${round}`);
          if (round % 10 === 9) await image.flush();
          // Two read batches in flight at once.
          if (round % 7 === 0) await Promise.all([readManyChecked(image, model, rng, 20, `round ${round} a`), readManyChecked(image, model, rng, 20, `round ${round} b`)]);
        }
        assert.ok(overlapping > 10, `batches with overlapping writes exercised (${overlapping})`);
        // The whole disk, in one batch of 1 MiB requests.
        const whole = new Uint8Array(SIZE);
        await image.readMany(Array.from({ length: SIZE / (1 << 20) }, (_, i) => ({ offset: i << 20, into: whole.subarray(i << 20, (i + 1) << 20) })));
        assertBytesEqual(whole, model.bytes, `whole disk through ${runners} runners`);
        if (runners > 0) {
          const stats = await image.stats();
          for (const n of stats.runnerRequests) assert.ok(n > 100, `every runner served batch pieces (${stats.runnerRequests})`);
        }
      } finally {
        await image.close();
      }
      assertBytesEqual(await readFileImage(path), model.bytes, 'after reopen');
      await assertQemuAgrees(path, model.bytes, `${runners} runners, batches`);
    });
  });
}

for (const runners of [0, 1, 2]) {
  test(`${runners} runners: overlapping writes of one batch take effect in request order (a later request wins), allocating and in place`, { timeout: 60_000 }, async () => {
    const store = SharedMemoryStore.from(await emptyImage(SIZE));
    const image = await ParallelImage.open([store.spec()], { writable: true, runners, onWarning: () => {} });
    try {
      const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
      // Cluster 3 is unallocated (the first request allocates it); cluster 5 gets allocated first.
      await image.write(5 * C, fill(C, 9));
      const batch = [
        { offset: 3 * C, data: fill(C, 1) },
        { offset: 3 * C + 100, data: fill(200, 2) },
        { offset: 5 * C + 10, data: fill(3 * C, 3) }, // crosses into clusters 6, 7, 8
        { offset: 3 * C + 150, data: fill(10, 4) },
        { offset: 6 * C - 5, data: fill(10, 5) }, // across the edge of clusters 5/6, over request 2
        { offset: 3 * C, data: fill(1, 6) },
      ];
      await image.writeMany(batch);
      const model = new DiskModel(SIZE);
      model.write(5 * C, fill(C, 9));
      for (const r of batch) model.write(r.offset, r.data);
      assertBytesEqual(await image.read(0, 10 * C), model.read(0, 10 * C), 'clusters 0..9 after the overlapping batch');
      assert.deepEqual([...await image.read(3 * C, 301)].filter((_, i) => [0, 99, 100, 149, 150, 159, 160, 299, 300].includes(i)), [6, 1, 2, 2, 4, 4, 2, 2, 1],
        'cluster 3: request 5 over 0, request 1 over 0, request 3 over 1');
      assert.deepEqual([...await image.read(6 * C - 6, 12)], [3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 3], 'the edge of clusters 5/6: request 4 over request 2');
    } finally {
      await image.close();
    }
    const report = await checkImage(new MemoryStore(store.bytes(), { writable: false }));
    assert.equal(report.clean, true, JSON.stringify(report.findings.slice(0, 3)));
  });
}

test('in-thread over a store that completes writes in random order (JitterStore): overlapping in-place writes of one batch still land in request order', { timeout: 60_000 }, async () => {
  const memory = new MemoryStore(await emptyImage(SIZE));
  const rng = new Prng(0x0d3a);
  const image = await PloopImage.open(new JitterStore(memory, rng, { readMs: 0, writeMs: 3, truncateMs: 0 }), { writable: true, onWarning: () => {} });
  const model = new DiskModel(SIZE);
  try {
    // Allocate clusters 0..7 first, so the batches below write in place, where nothing but the
    // waves orders two writes to the same bytes.
    await image.write(0, new Uint8Array(8 * C).fill(0xaa));
    model.write(0, new Uint8Array(8 * C).fill(0xaa));
    for (let round = 0; round < 10; round++) {
      const requests = Array.from({ length: 12 }, (_, i) => ({ offset: rng.int(8 * C - 9000), data: new Uint8Array(rng.range(1, 9000)).fill(round * 16 + i + 1) }));
      await image.writeMany(requests);
      for (const r of requests) model.write(r.offset, r.data);
      assertBytesEqual(await image.read(0, 8 * C), model.read(0, 8 * C), `round ${round}: later requests win`);
    }
  } finally {
    await image.close();
  }
});

async function emptyImage(size: number): Promise<Uint8Array> {
  const m = new MemoryStore();
  await createImage(m, { size, clusterSize: C });
  return m.bytes().slice();
}

for (const runners of [1, 2]) {
  test(`${runners} runner${runners > 1 ? 's' : ''}: requests that fail inside a runner reject the batch with one error naming how many and the first; the others complete`, { timeout: 60_000 }, async () => {
    const bytes = await emptyImage(8 << 20);
    // Room for the header, the BAT and 3 clusters: later allocations fail in the runners' store.
    const store = SharedMemoryStore.from(bytes, { maxBytes: bytes.length + 3 * C });
    const image = await ParallelImage.open([store.spec()], { writable: true, runners, onWarning: () => {} });
    const requests = Array.from({ length: 8 }, (_, i) => ({ offset: i * C + 512, data: new Uint8Array(1000).fill(i + 1) }));
    try {
      const e = await rejectsWith(() => image.writeMany(requests), 'ENOSPC', /^writeMany: 5 of 8 requests failed \(the others completed\); first: request \d+ \(offset \d+, length 1000\): shared-memory store: write up to byte \d+ passes the store's maxBytes/);
      // Which requests failed depends on the order the runners allocated in: read them back.
      const failed: number[] = [];
      for (const [i, r] of requests.entries()) {
        const got = await image.read(r.offset, 1000);
        if (got[0] === 0) failed.push(i);
        else assertBytesEqual(got, r.data, `request ${i} completed`);
      }
      assert.equal(failed.length, 5, `5 requests read back as holes: ${failed}`);
      assert.equal(e.data.index, failed[0], 'the error names the first failing request');
      assert.equal(e.data.offset, requests[failed[0]].offset);
      assert.equal(e.data.failed, 5);
      assert.ok(e.cause instanceof PloopError && e.cause.code === 'ENOSPC', 'the cause is the runner\'s PloopError');
      // The pool is still usable: in-place writes and reads of the allocated clusters.
      const ok = requests.filter((_, i) => !failed.includes(i)).map((r) => ({ offset: r.offset, data: new Uint8Array(1000).fill(0x77) }));
      await image.writeMany(ok);
      const back = ok.map((r) => ({ offset: r.offset, into: new Uint8Array(1000) }));
      await image.readMany(back);
      for (const b of back) assertBytesEqual(b.into, new Uint8Array(1000).fill(0x77), `rewritten at ${b.offset}`);
    } finally {
      await image.close();
    }
    const report = await checkImage(new MemoryStore(store.bytes(), { writable: false }));
    assert.equal(report.clean, true, JSON.stringify(report.findings.slice(0, 3)));
  });
}

test('in-thread: a data write that fails in the store (FaultyStore) rejects the batch naming that request; the others complete, survive a reopen and QEMU checks clean', { timeout: 60_000 }, async () => {
  const memory = new MemoryStore();
  const header = await createImage(memory, { size: SIZE, clusterSize: C });
  const store = new FaultyStore(memory, header.dataOff * 512);
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true, onWarning: () => {} });
  const model = new DiskModel(SIZE);
  const requests = Array.from({ length: 6 }, (_, i) => ({ offset: i * 3 * C + 7, data: new Uint8Array(5000).fill(0x10 + i) }));
  try {
    store.failNth('data-write', 4);
    const e = await rejectsWith(() => image.writeMany(requests), 'EIO', /^writeMany: 1 of 6 requests failed \(the others completed\); first: request \d \(offset \d+, length 5000\): data write of 5000 bytes at host byte \d+ failed: injected data-write fault/);
    assert.equal(store.failures.length, 1, 'one data write failed');
    const index = e.data.index as number;
    assert.equal(e.data.offset, requests[index].offset);
    assert.match(e.message, new RegExp(`request ${index} \\(offset ${requests[index].offset}, length 5000\\)`));
    for (const [i, r] of requests.entries()) if (i !== index) model.write(r.offset, r.data);
    const back = requests.map((r) => ({ offset: r.offset, into: new Uint8Array(5000) }));
    await image.readMany(back);
    for (const [i, b] of back.entries()) assertBytesEqual(b.into, model.read(b.offset, 5000), `request ${i} after the failure`);
  } finally {
    await image.close();
  }
  await withTempDir((dir) => assertQemuAgreesOnBytes(dir, memory.bytes(), model.bytes, 'after a failed request in a batch'));
});

for (const runners of [0, 2]) {
  test(`${runners} runners: bad arguments reject the whole batch before anything runs, naming the request; empty batches do nothing`, { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'args.hds');
      await createImageFile(path, SIZE, C);
      const image = await ParallelImage.open([path], { writable: true, runners, onWarning: () => {} });
      try {
        await image.writeMany([]);
        await image.readMany([]);
        assert.equal(await readU32(path, OFF.inUse), 0, 'an empty write batch does not even set the in-use flag');
        const good = { offset: 0, data: new Uint8Array(10).fill(1) };
        await rejectsWith(() => image.writeMany([good, good, good, { offset: SIZE - 5, data: new Uint8Array(10) }]), 'ERANGE', /^writeMany: request 3: range 16777211\+10 is outside the virtual disk \(0\.\.16777216 bytes\)/);
        await rejectsWith(() => image.readMany([{ offset: -1, into: new Uint8Array(1) }]), 'ERANGE', /readMany: request 0: range -1\+1 is outside/);
        await rejectsWith(() => image.readMany([{ offset: 0, into: new Uint8Array(1) }, { offset: 1.5, into: new Uint8Array(1) }]), 'ERANGE', /request 1: range 1\.5\+1/);
        await rejectsWith(() => image.writeMany([good, { offset: 0, data: 'text' as unknown as Uint8Array }]), 'EINVAL', /writeMany: request 1: data is string, expected a Uint8Array/);
        await rejectsWith(() => image.readMany([{ offset: 0, data: new Uint8Array(1) } as never]), 'EINVAL', /readMany: request 0: into is undefined, expected a Uint8Array/);
        await rejectsWith(() => image.readMany([null as never]), 'EINVAL', /request 0 is null/);
        await rejectsWith(() => image.readMany('nope' as never), 'EINVAL', /readMany: expected an array of requests, got string/);
        assert.equal(await readU32(path, OFF.inUse), 0, 'no refused batch wrote anything (not even the in-use flag)');
        assertBytesEqual(await image.read(0, 10), new Uint8Array(10), 'request 0 of the refused batch did not run');
        await image.writeMany([good]);
        assert.equal(await readU32(path, OFF.inUse), INUSE_MAGIC, 'a real batch sets the in-use flag');
      } finally {
        await image.close();
      }
      await rejectsWith(() => image.readMany([{ offset: 0, into: new Uint8Array(1) }]), 'ECLOSED', /closed/);
      const ro = await ParallelImage.open([path], { runners, onWarning: () => {} });
      try {
        await rejectsWith(() => ro.writeMany([{ offset: 0, data: new Uint8Array(1) }]), 'EREADONLY', /writeMany: the image was opened read-only/);
      } finally {
        await ro.close();
      }
    });
  });
}

test('2 runners with 4-slot rings: batches of 1500 writes and reads (far more than the rings hold) complete and read back the model', { timeout: 60_000 }, async () => {
  const store = SharedMemoryStore.from(await emptyImage(SIZE));
  const image = await ParallelImage.open([store.spec()], { writable: true, runners: 2, ringSlots: 4, onWarning: () => {} });
  const rng = new Prng(0xb16);
  const model = new DiskModel(SIZE);
  try {
    const writes = Array.from({ length: 1500 }, () => ({ offset: rng.int(SIZE / 4096) * 4096 + rng.int(100), data: rng.bytes(rng.range(1, 4000)) }));
    // A deadline only to turn a flow-control stall into a failure.
    await within(image.writeMany(writes), 30_000, 'writeMany of 1500 through 4-slot rings');
    for (const w of writes) model.write(w.offset, w.data);
    const reads = Array.from({ length: 1500 }, () => ({ offset: rng.int(SIZE / 4096) * 4096, into: new Uint8Array(4096) }));
    await within(Promise.all([image.readMany(reads), image.readMany(reads.slice(0, 700).map((r) => ({ offset: r.offset, into: new Uint8Array(4096) })))]), 30_000, 'two readMany batches through 4-slot rings');
    for (const [i, r] of reads.entries()) assertBytesEqual(r.into, model.read(r.offset, 4096), `read ${i}`);
    // Single requests still share the rings with batches.
    const single = image.read(writes[0].offset, 10);
    await image.readMany(reads.slice(0, 300));
    assertBytesEqual(await single, model.read(writes[0].offset, 10), 'a single read beside a batch');
  } finally {
    await image.close();
  }
  const report = await checkImage(new MemoryStore(store.bytes(), { writable: false }));
  assert.equal(report.clean, true, JSON.stringify(report.findings.slice(0, 3)));
});

test('2 runners: the reads of one batch are shared by both runners even when they all lie in one cluster (writes stay with the cluster\'s runner)', { timeout: 60_000 }, async () => {
  // Rule: reads go to the runner with the fewest pieces not yet done (pool-batch.ts), not to
  // runner c mod N — so a batch does not wait for one runner while the other sleeps.
  const store = SharedMemoryStore.from(await emptyImage(SIZE));
  const image = await ParallelImage.open([store.spec()], { writable: true, runners: 2, onWarning: () => {} });
  const rng = new Prng(0x5ba1);
  try {
    const cluster = rng.bytes(64 << 10);
    await image.writeMany(Array.from({ length: 16 }, (_, i) => ({ offset: i * 4096, data: cluster.subarray(i * 4096, (i + 1) * 4096) })));
    const before = await image.stats();
    assert.equal(Math.min(...before.runnerRequests), 0, `the 16 writes into cluster 0 went to one runner: ${before.runnerRequests}`);
    const reads = Array.from({ length: 400 }, (_, i) => ({ offset: (i % 16) * 4096, into: new Uint8Array(4096) }));
    await image.readMany(reads);
    for (const [i, r] of reads.entries()) assertBytesEqual(r.into, cluster.subarray((i % 16) * 4096, (i % 16 + 1) * 4096), `read ${i}`);
    const after = await image.stats();
    const served = after.runnerRequests.map((n, k) => n - before.runnerRequests[k]);
    assert.equal(served[0] + served[1], 400);
    assert.ok(Math.min(...served) >= 100, `both runners served reads of cluster 0: ${served}`);
  } finally {
    await image.close();
  }
});

for (const runners of [0, 2]) {
  test(`${runners} runners: allocShared buffers are read into and written from in place; freeShared refuses a foreign or freed view`, { timeout: 60_000 }, async () => {
    const store = SharedMemoryStore.from(await emptyImage(SIZE));
    const image = await ParallelImage.open([store.spec()], { writable: true, runners, onWarning: () => {} });
    try {
      const out = image.allocShared(64 * 4096);
      assert.equal(out.length, 64 * 4096);
      for (let i = 0; i < 64; i++) out.fill(i + 1, i * 4096, (i + 1) * 4096);
      const at = (i: number) => (i * 37 % 4096) * 4096;
      await image.writeMany(Array.from({ length: 64 }, (_, i) => ({ offset: at(i), data: out.subarray(i * 4096, (i + 1) * 4096) })));
      out.fill(0);
      await image.readMany(Array.from({ length: 64 }, (_, i) => ({ offset: at(63 - i), into: out.subarray(i * 4096, (i + 1) * 4096) })));
      for (let i = 0; i < 64; i++) assertBytesEqual(out.subarray(i * 4096, (i + 1) * 4096), new Uint8Array(4096).fill(64 - i), `block ${i}`);
      image.freeShared(out);
      if (runners > 0) {
        assert.throws(() => image.freeShared(out), (e: unknown) => e instanceof PloopError && e.code === 'EINVAL' && /freeShared: the view at byte \d+ \(262144 bytes\) was not returned by allocShared or was freed already/.test(e.message));
        assert.throws(() => image.freeShared(new Uint8Array(8)), (e: unknown) => e instanceof PloopError && e.code === 'EINVAL');
      }
      assert.throws(() => image.allocShared(-1), (e: unknown) => e instanceof PloopError && e.code === 'EINVAL' && /allocShared: -1 bytes/.test(e.message));
    } finally {
      await image.close();
    }
  });
}

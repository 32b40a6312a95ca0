// The runners' fast path (src/runners/fast-path.ts): plain reads and in-place writes on
// synchronous stores (node-fs files with syncMaxBytes, SharedMemoryStore) served by address,
// without ClusterIo. It must behave exactly as the generic path: holes read zeros, clusters of a
// lower delta read the lower delta, reads crossing clusters are assembled from both, in-place
// writes racing an allocation of the same cluster never lose data, and a store error becomes the
// same PloopError. The counters show which path served each request, so a test that thinks it
// exercises the fast path cannot silently run the generic one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { PloopImage, PloopError, MemoryStore, createImage } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { SharedMemoryStore } from '../../src/stores/shared-memory.ts';
import { FastPath, type SyncAccess } from '../../src/runners/fast-path.ts';
import { BatMap } from '../../src/core/bat-map.ts';
import type { StoreSpec } from '../../src/runners/protocol.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { readWhole } from '../helpers/images.ts';
import { createImageFile } from '../helpers/race.ts';
import { assertChecksClean, qemuConvertChain } from '../helpers/stack.ts';
import '../helpers/source-workers.ts';

const C = 64 << 10;
const SIZE = 8 << 20;

/**
 * A two-delta stack on files: the base holds data in about half of its clusters (some partial),
 * the top its own data in about a quarter (some copied up from the base), the rest are holes.
 */
async function buildStack(dir: string, rng: Prng): Promise<{ base: string; top: string; model: DiskModel }> {
  const base = join(dir, 'base.hds');
  const top = join(dir, 'top.hds');
  const model = new DiskModel(SIZE);
  await createImageFile(base, SIZE, C);
  await createImageFile(top, SIZE, C);
  const b = await PloopImage.open(await NodeFileStore.open(base, { writable: true }), { writable: true, onWarning: () => {} });
  try {
    for (let cluster = 0; cluster < SIZE / C; cluster++) {
      if (!rng.chance(0.5)) continue;
      const offset = cluster * C + (rng.chance(0.3) ? rng.int(C / 2) : 0);
      const data = rng.bytes(cluster * C + C - offset);
      await b.write(offset, data);
      model.write(offset, data);
    }
  } finally {
    await b.close();
  }
  const t = await PloopImage.openStack([{ store: await NodeFileStore.open(base) }, { store: await NodeFileStore.open(top, { writable: true }) }], { writable: true, onWarning: () => {} });
  try {
    for (let cluster = 0; cluster < SIZE / C; cluster++) {
      if (!rng.chance(0.25)) continue;
      const offset = cluster * C + rng.int(C / 2);
      const data = rng.bytes(rng.range(1, C / 2));
      await t.write(offset, data);
      model.write(offset, data);
    }
  } finally {
    await t.close();
  }
  return { base, top, model };
}

/** Random reads (unaligned, some crossing one or two cluster boundaries) in three ways: readMany with an allocShared buffer, with private buffers, and read(). */
async function readAndCompare(image: ParallelImage, model: DiskModel, rng: Prng, what: string): Promise<void> {
  const shared = image.allocShared(64 * 3 * C);
  try {
    for (let round = 0; round < 12; round++) {
      const requests: Array<{ offset: number; into: Uint8Array }> = [];
      let used = 0;
      for (let i = 0; i < 64; i++) {
        const length = rng.chance(0.3) ? rng.range(C, 2 * C + 100) : rng.range(1, 8192);
        const offset = rng.int(SIZE - length);
        const into = round % 2 === 0 ? shared.subarray(used, used + length) : new Uint8Array(length);
        into.fill(0xee);
        used += length;
        requests.push({ offset, into });
      }
      await image.readMany(requests);
      requests.forEach((r, i) => assertBytesEqual(r.into, model.read(r.offset, r.into.length), `${what}: round ${round} request ${i} (offset ${r.offset}, length ${r.into.length})`));
    }
    for (let i = 0; i < 200; i++) {
      const length = rng.range(1, 2 * C);
      const offset = rng.int(SIZE - length);
      assertBytesEqual(await image.read(offset, length), model.read(offset, length), `${what}: read() ${i} (offset ${offset}, length ${length})`);
    }
  } finally {
    image.freeShared(shared);
  }
}

for (const kind of ['file', 'shared-memory'] as const) {
  test(`fast path, ${kind} stores: reads of holes, of the base delta's clusters and of the top's, unaligned and crossing clusters, read the model; every piece went through the fast path, and the same reads without it agree`, { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      const rng = new Prng(kind === 'file' ? 0xfa57 : 0x5ab5);
      const { base, top, model } = await buildStack(dir, rng);
      const specs = (): StoreSpec[] => kind === 'file'
        ? [{ kind: 'node-fs', path: base, writable: false, syncMaxBytes: 64 << 10 }, { kind: 'node-fs', path: top, writable: false, syncMaxBytes: 64 << 10 }]
        : [SharedMemoryStore.from(readFileSync(base)).spec(false), SharedMemoryStore.from(readFileSync(top)).spec(false)];
      for (const fastPath of [true, false]) {
        const image = await ParallelImage.open(specs(), { runners: 2, fastPath, onWarning: () => {} });
        try {
          await readAndCompare(image, model, rng, `${kind}, fast path ${fastPath ? 'on' : 'off'}`);
          assertBytesEqual(await readWhole(image as unknown as PloopImage), model.bytes, `${kind}: whole disk`);
          const stats = await image.stats();
          const served = stats.runnerRequests.reduce((a, b) => a + b, 0);
          const fast = stats.runnerFastRequests.reduce((a, b) => a + b, 0);
          assert.ok(served > 1000, `requests reached the runners (${served})`);
          // Pieces are cut at cluster boundaries (64 KiB here, the runners' syncMaxBytes), so
          // every one of them is a plain read the fast path serves: holes, base or top.
          assert.equal(fast, fastPath ? served : 0, `requests the fast path served (of ${served})`);
        } finally {
          await image.close();
        }
      }
    });
  });
}

test('fast path: in-place writes racing allocating writes of the same clusters (2 runners, files) all land; in-place writes are served by the fast path, the rest by ClusterIo; QEMU agrees', { timeout: 60_000 }, async () => {
  await withTempDir(async (dir) => {
    const rng = new Prng(0x1a9e);
    const { base, top, model } = await buildStack(dir, rng);
    const image = await ParallelImage.open([base, top], { writable: true, runners: 2, onWarning: () => {} });
    try {
      for (let round = 0; round < 40; round++) {
        // A few clusters, each hit at once by one allocating (or copy-on-write) write and by
        // many small writes at other places of the same cluster: those that run after the
        // allocation mapped it are in place (fast path); the others wait for it in ClusterIo.
        const pending: Promise<void>[] = [];
        // Distinct clusters, and the in-place writes below stay out of them: requests that run
        // at the same time never overlap, so the model's order is the disk's.
        const racing = new Set<number>();
        while (racing.size < 3) racing.add(rng.int(SIZE / C));
        for (const cluster of racing) {
          const slices = 16;
          const order = Array.from({ length: slices }, (_, i) => i).sort(() => rng.int(3) - 1);
          const batch: Array<{ offset: number; data: Uint8Array }> = [];
          for (const s of order) {
            const at = cluster * C + s * (C / slices) + rng.int(C / slices / 2);
            const data = rng.bytes(rng.range(1, C / slices / 2));
            model.write(at, data);
            if (rng.chance(0.5)) pending.push(image.write(at, data));
            else batch.push({ offset: at, data });
          }
          if (batch.length > 0) pending.push(image.writeMany(batch));
        }
        // Plain in-place writes of clusters mapped already, in the same burst.
        const inPlace: Array<{ offset: number; data: Uint8Array }> = [];
        for (let i = 0; i < 32; i++) {
          let cluster = rng.int(SIZE / C);
          while (racing.has(cluster)) cluster = rng.int(SIZE / C);
          inPlace.push({ offset: cluster * C + rng.int(C - 4096), data: rng.bytes(rng.range(1, 4096)) });
        }
        // Later requests of one batch win where they overlap, as in the model.
        for (const r of inPlace) model.write(r.offset, r.data);
        pending.push(image.writeMany(inPlace));
        await Promise.all(pending);
      }
      await image.flush();
      assertBytesEqual(await readWhole(image as unknown as PloopImage), model.bytes, 'whole stack after the racing writes');
      const stats = await image.stats();
      const fast = stats.runnerFastRequests.reduce((a, b) => a + b, 0);
      const served = stats.runnerRequests.reduce((a, b) => a + b, 0);
      assert.ok(fast > 200 && fast < served, `both paths served writes: ${fast} fast of ${served}`);
      assert.ok(stats.clustersAllocated > 50, `allocations raced with the in-place writes (${stats.clustersAllocated})`);
    } finally {
      await image.close();
    }
    await assertChecksClean([base, top], 'stack after racing writes');
    assertBytesEqual(await qemuConvertChain([base, top], join(dir, 'chain.raw')), model.bytes, 'qemu-img convert of the chain vs model');
  });
});

test('fast path, in this thread: a failing store read or write throws the PloopError the generic path gives (naming the store, the host offset and the cause); short reads end in zeros; what it cannot serve it leaves alone (false, nothing touched)', async () => {
  const memory = new MemoryStore();
  await createImage(memory, { size: 1 << 20, clusterSize: 4096 });
  const image = await PloopImage.open(memory, { writable: true, onWarning: () => {} });
  try {
    await image.write(8192, new Uint8Array(4096).fill(7));
    await image.write(5 * 4096, new Uint8Array(4096).fill(9));
    const bat: BatMap = (image as unknown as { bat: BatMap }).bat;
    const core = bat.core;
    const scratch = core.alloc(BatMap.EXTENT_SCRATCH_BYTES);
    const buffer = core.alloc(16384, 16);
    let mode: 'fail' | 'short' = 'fail';
    const access: SyncAccess = {
      name: 'flaky.hds',
      maxBytes: 65536,
      read(mem, at, length) {
        if (mode === 'fail') throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
        mem.fill(0x33, at, at + length / 2);
        return length / 2;
      },
      write() {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    };
    const stats = { dataWrites: 0, clustersAllocated: 0, clustersCopied: 0, virginAllocations: 0 };
    const fp = new FastPath({ core, ctx: bat.ctx, scratch, topLevel: bat.topLevel, access: [access], stats });
    const host = bat.lookup(2);
    assert.throws(() => fp.read(8192, 4096, buffer), (e: unknown) => e instanceof PloopError && e.code === 'EIO'
      && e.message === `read flaky.hds at ${host} failed: EIO: i/o error, read` && (e.cause as Error).message === 'EIO: i/o error, read', 'read error');
    assert.throws(() => fp.write(8192 + 100, 50, buffer), (e: unknown) => e instanceof PloopError && e.code === 'EIO'
      && e.message === `write flaky.hds at ${host + 100} failed: ENOSPC: no space left on device, write`, 'write error');
    mode = 'short';
    core.u8.fill(0xee, buffer, buffer + 3 * 4096);
    // A hole, a short read of a mapped cluster, a hole: zeros where nothing was read.
    assert.equal(fp.read(4096, 3 * 4096, buffer), true);
    const got = core.u8.slice(buffer, buffer + 3 * 4096);
    assert.deepEqual([got[0], got[4095], got[4096], got[4096 + 2047], got[4096 + 2048], got[8191], got[8192], got[12287]], [0, 0, 0x33, 0x33, 0, 0, 0, 0]);
    // Not for the fast path: a write into a hole (an allocation), a write across two extents,
    // a range outside the disk (the generic path words that error). Nothing is written then.
    assert.equal(fp.write(0, 100, buffer), false, 'allocating write');
    assert.equal(fp.write(5 * 4096 + 4000, 200, buffer), false, 'write across a mapped cluster and a hole');
    assert.equal(fp.read((1 << 20) - 10, 100, buffer), false, 'range outside the disk');
    assert.equal(stats.dataWrites, 1, 'only the failed in-place write counted as a data write');
    assert.equal(fp.served, 1);
    core.free(buffer);
    core.free(scratch);
  } finally {
    await image.close();
  }
});

// Store failures in the middle of the md update protocol (in-thread PloopImage over a store
// that fails chosen operations): the Nth data write, the Nth BAT page write, a flush (the
// data barrier of a writeback cycle, an explicit flush, the flush that sets the in-use flag).
// The request that needed the failed operation rejects with a PloopError naming it; every
// other request completes; what was acknowledged survives a reopen; the image checks clean
// (ours and QEMU's); the slot of a failed allocation is reused, so failures do not make the
// file grow.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, checkImage, MemoryStore, PloopImage, PloopError } from '../../src/index.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { readWhole } from '../helpers/images.ts';
import { assertQemuAgreesOnBytes } from '../helpers/oracle.ts';
import { FaultyStore, type FaultKind } from '../helpers/faulty-store.ts';

const C = 4096;
const SIZE = 16 << 20; // 4096 entries: md pages 0..4
/** First cluster of md pages 0..3 (page 0 holds 1008 entries after the header). */
const PAGE_FIRST = [0, 1008, 2032, 3056];
const WINDOW = 16; // clusters used per page: small, so that slots are freed and reused

/** What each kind of failure must say (the operation, and the store's own message). */
const MESSAGE: Record<FaultKind, RegExp> = {
  'data-write': /write.*injected data-write fault/,
  'bat-write': /BAT write of md page \d+.*injected bat-write fault/,
  flush: /flush.*injected flush fault/,
};

function assertNamedFailure(e: unknown, kind: FaultKind, what: string): void {
  assert.ok(e instanceof PloopError, `${what}: rejects with a PloopError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  assert.equal(e.code, 'EIO', `${what}: error code`);
  assert.match(e.message, MESSAGE[kind], `${what}: the message names the failed operation`);
}

async function newImage(): Promise<{ memory: MemoryStore; store: FaultyStore; image: PloopImage }> {
  const memory = new MemoryStore();
  const header = await createImage(memory, { size: SIZE, clusterSize: C });
  const store = new FaultyStore(memory, header.dataOff * 512);
  // Without preallocation: every allocation's cycle then has a data barrier for flush faults to
  // hit (a fresh slot inside preallocation needs none; power-cut-prealloc.test.ts covers that).
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true, onWarning: () => {}, preallocBytes: 0 });
  return { memory, store, image };
}

type Op = { kind: 'write'; offset: number; data: Uint8Array } | { kind: 'discard'; offset: number; length: number };

/** One request inside one cluster of the window of md page `page`. */
function randomOp(rng: Prng, page: number): Op {
  const cluster = PAGE_FIRST[page] + rng.int(WINDOW);
  const base = cluster * C;
  const r = rng.int(100);
  if (r < 40) return { kind: 'write', offset: base, data: rng.bytes(C) };
  const at = rng.int(C);
  const len = rng.range(1, C - at);
  if (r < 65) return { kind: 'write', offset: base + at, data: rng.bytes(len) };
  if (r < 72) return { kind: 'write', offset: base + at, data: new Uint8Array(len) };
  if (r < 88) return { kind: 'discard', offset: base, length: C };
  return { kind: 'discard', offset: base + at, length: len };
}

/**
 * Groups of concurrent requests, each group on distinct md pages (so one BAT page write
 * carries exactly one request) and, for flush faults, one request at a time (so one cycle's
 * data barrier carries exactly one). Faults are armed now and then; the model takes only the
 * requests that completed.
 */
async function faultWorkload(image: PloopImage, store: FaultyStore, kind: FaultKind, seed: number, faults: number, model: DiskModel) {
  const rng = new Prng(seed);
  let armed = 0;
  let failedRequests = 0;
  let failedFlushes = 0;
  let completed = 0;
  for (let group = 0; group < 400 && (armed < faults || store.failures.length < armed); group++) {
    if (armed < faults && group % 10 === 3) {
      store.failNth(kind, rng.range(1, 3));
      armed++;
    }
    const pages = [0, 1, 2, 3].sort(() => rng.int(3) - 1).slice(0, kind === 'flush' ? 1 : rng.range(1, 4));
    const ops = pages.map((p) => randomOp(rng, p));
    const results = await Promise.allSettled(ops.map((op) => (op.kind === 'write' ? image.write(op.offset, op.data) : image.discard(op.offset, op.length))));
    results.forEach((r, i) => {
      const op = ops[i];
      if (r.status === 'fulfilled') {
        completed++;
        if (op.kind === 'write') model.write(op.offset, op.data);
        else model.discard(op.offset, op.length);
      } else {
        failedRequests++;
        assertNamedFailure(r.reason, kind, `${op.kind} at ${op.offset} (seed ${seed}, group ${group})`);
      }
    });
    if (rng.chance(0.2)) {
      try {
        await image.flush();
      } catch (e) {
        failedFlushes++;
        assertNamedFailure(e, 'flush', `explicit flush (seed ${seed}, group ${group})`);
      }
    }
    // Read back while open: completed requests are visible, failed ones left nothing behind.
    const page = rng.int(4);
    assertBytesEqual(await image.read(PAGE_FIRST[page] * C, WINDOW * C), model.read(PAGE_FIRST[page] * C, WINDOW * C), `window of page ${page} while open (seed ${seed}, group ${group})`);
  }
  return { model, armed, failedRequests, failedFlushes, completed };
}

/** Our check is clean (repairing first if the in-use flag is all that is left), then QEMU's. */
async function assertChecksClean(dir: string, bytes: Uint8Array, expected: Uint8Array, what: string): Promise<void> {
  const store = new MemoryStore(bytes.slice());
  let report = await checkImage(store);
  if (!report.clean && report.findings.every((f) => f.kind === 'unclean')) report = await checkImage(store, { repair: true });
  assert.ok(report.clean, `${what}: checkImage: ${JSON.stringify(report.findings)}`);
  assert.equal(report.leakedClusters, 0, `${what}: no leaked clusters`);
  await assertQemuAgreesOnBytes(dir, store.bytes(), expected, what);
}

for (const [kind, seed] of [['data-write', 0xfa01], ['bat-write', 0xfa02], ['flush', 0xfa03]] as Array<[FaultKind, number]>) {
  test(`injected ${kind} failures: each fails only the request that needed it, with a PloopError naming the operation; every other request completes and survives a reopen; the image checks clean (seed ${seed})`, { timeout: 30_000 }, async () => {
    await withTempDir(async (dir) => {
      const { memory, store, image } = await newImage();
      const model = new DiskModel(SIZE);
      try {
        // The in-use flag is set (and flushed) before any fault is armed.
        await image.write(0, new Uint8Array(C).fill(1));
        model.write(0, new Uint8Array(C).fill(1));
        const r = await faultWorkload(image, store, kind, seed, 6, model);
        assert.equal(store.failures.length, r.armed, 'every armed fault was hit');
        assert.equal(r.failedRequests + r.failedFlushes, store.failures.length, `one failed request or flush per injected fault (${r.failedRequests} requests, ${r.failedFlushes} flushes, ${r.completed} completed)`);
        assert.ok(r.failedRequests >= 3, `requests failed (${r.failedRequests})`);
        assertBytesEqual(await readWhole(image), model.bytes, `whole disk while open (seed ${seed})`);
      } finally {
        await image.close();
      }
      const reopened = await PloopImage.open(new MemoryStore(memory.bytes().slice()));
      try {
        assertBytesEqual(await readWhole(reopened), model.bytes, `whole disk after reopening (seed ${seed})`);
      } finally {
        await reopened.close();
      }
      await assertChecksClean(dir, memory.bytes(), model.bytes, `${kind} faults, seed ${seed}`);
    });
  });
}

for (const kind of ['data-write', 'bat-write', 'flush'] as FaultKind[]) {
  test(`an allocating write that fails ${kind === 'flush' ? 'at the data barrier before its BAT write' : `at its ${kind}`} 40 times in a row gives its slot back each time: the retry reuses it and the file does not grow`, { timeout: 30_000 }, async () => {
    await withTempDir(async (dir) => {
      const { memory, store, image } = await newImage();
      const data = new Uint8Array(C).fill(0x5a);
      const model = new DiskModel(SIZE);
      try {
        await image.write(10 * C, data); // slot 0, and the in-use flag
        model.write(10 * C, data);
        const sizeAfterFirst = await store.size();
        for (let i = 0; i < 40; i++) {
          store.failNth(kind, 1);
          await assert.rejects(image.write(20 * C + 100, data.subarray(0, 1000)), (e: unknown) => {
            assertNamedFailure(e, kind, `attempt ${i}`);
            return true;
          });
          assert.equal(image.bat.lookup(20), -1, `attempt ${i}: cluster 20 stays unmapped`);
          assert.equal(image.bat.slotUsed(1), false, `attempt ${i}: the slot is free again`);
        }
        await image.write(20 * C + 100, data.subarray(0, 1000));
        model.write(20 * C + 100, data.subarray(0, 1000));
        assert.equal(image.bat.lookup(20), image.bat.slotOffset(1), 'the successful retry uses the slot the failures gave back');
        assert.ok((await store.size()) <= sizeAfterFirst + C, `file size ${await store.size()} after 40 failures: at most one cluster more than ${sizeAfterFirst}`);
      } finally {
        await image.close();
      }
      await assertChecksClean(dir, memory.bytes(), model.bytes, `${kind} retries`);
    });
  });
}

test('a failed flush of the in-use flag fails only the write that needed it: the next write sets the flag and completes', { timeout: 30_000 }, async () => {
  await withTempDir(async (dir) => {
    const { memory, store, image } = await newImage();
    const model = new DiskModel(SIZE);
    try {
      store.failNth('flush', 1);
      await assert.rejects(image.write(0, new Uint8Array(100).fill(3)), (e: unknown) => {
        assertNamedFailure(e, 'flush', 'first write');
        return true;
      });
      const data = new Uint8Array(5000).fill(4);
      await image.write(C - 10, data);
      model.write(C - 10, data);
      assert.equal(new DataView(memory.bytes().buffer).getUint32(44, true), 0x746f6e59, 'the in-use flag is set on disk');
      assertBytesEqual(await readWhole(image), model.bytes, 'whole disk while open');
    } finally {
      await image.close();
    }
    await assertChecksClean(dir, memory.bytes(), model.bytes, 'in-use flush failure');
  });
});

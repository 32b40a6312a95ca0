// The WebAssembly core (assembly/*.ts) tested directly: through getCore() and BatMap, and by
// calling core.exports for the raw status codes. Includes a two-worker race on one allocator.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { getCore, type WasmCore } from '../../src/core/wasm.ts';
import {
  BatMap, LEVEL_NONE, MD_DIRTY, MD_WRITEBACK, MD_HIGHPRIO, MD_UPDATING, MD_PAGE_BYTES, type BatMapOptions,
} from '../../src/core/bat-map.ts';
import {
  STATUS_BUSY, STATUS_RANGE, STATUS_NOSPACE, STATUS_BAD_PAGE, STATUS_BAD_SLOT, STATUS_NO_ROOM, SUBMIT_TAKEN, SUBMIT_BUSY, SUBMIT_CLEAN,
  PIWB_NONE, CTX_BITMAP, CTX_SLOTS_END, CTX_FREE_HINT,
  EXTENT_BYTES, EXTENT_OFFSET, EXTENT_LENGTH, EXTENT_HOST, EXTENT_LEVEL, EXTENT_FIRST_CLUSTER,
} from '../../src/core/wasm-interface.generated.ts';
import { PloopError } from '../../src/errors.ts';

const CLUSTER = 4096;

let core: WasmCore;
let baselineBytes: number;
const maps: BatMap[] = [];

before(async () => {
  core = await getCore();
  baselineBytes = core.usedBytes;
});

after(() => {
  for (const m of maps) m.dispose();
});

/** A BatMap with 4 KiB clusters; level 0 counts in sectors (v1), level 1 in clusters (v2). */
function makeMap(o: Partial<BatMapOptions> = {}): BatMap {
  const batEntryCount = o.batEntryCount ?? 16;
  const m = new BatMap(core, {
    batEntryCount,
    clusterBytes: CLUSTER,
    mdPageCount: Math.ceil((16 + batEntryCount) * 4 / MD_PAGE_BYTES),
    firstSlotByte: 3 * CLUSTER,
    slotCapacity: 64,
    topLevel: 1,
    unitBytesByLevel: [512, CLUSTER],
    ...o,
  });
  maps.push(m);
  return m;
}

function disposeMap(m: BatMap): void {
  m.dispose();
  maps.splice(maps.indexOf(m), 1);
}

function assertPloopError(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PloopError, `expected PloopError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

interface RawExtent { offset: number; length: number; hostOffset: number; level: number; firstClusterIndex: number }

/** Call the mapRange export directly; returns the status and the records it wrote. */
function rawMapRange(m: BatMap, offset: number, length: number, maxExtents: number, bufferRecords = 16): { status: number; extents: RawExtent[]; untouched: boolean } {
  const out = core.alloc(EXTENT_BYTES * bufferRecords);
  try {
    core.u8.fill(0xaa, out, out + EXTENT_BYTES * bufferRecords);
    const status = core.exports.mapRange(m.ctx, offset, length, out, maxExtents);
    const extents: RawExtent[] = [];
    for (let i = 0; i < Math.max(0, status); i++) {
      const rec = out + i * EXTENT_BYTES;
      extents.push({
        offset: core.f64[(rec + EXTENT_OFFSET) >>> 3], length: core.f64[(rec + EXTENT_LENGTH) >>> 3], hostOffset: core.f64[(rec + EXTENT_HOST) >>> 3],
        level: core.u32[(rec + EXTENT_LEVEL) >>> 2], firstClusterIndex: core.u32[(rec + EXTENT_FIRST_CLUSTER) >>> 2],
      });
    }
    const rest = core.u8.subarray(out + Math.max(0, status) * EXTENT_BYTES, out + EXTENT_BYTES * bufferRecords);
    return { status, extents, untouched: rest.every((b) => b === 0xaa) };
  } finally {
    core.free(out);
  }
}

/**
 * 16 clusters:
 *   0..2  top (v2 units) clusters 3, 4, 5 (contiguous)      3..4   holes
 *   5..6  level 0 (sector units) 80, 88 (contiguous)        7      top cluster 11 (= where 6 ends, other level)
 *   8     top cluster 13 (gap)                              9      top cluster 12 (backwards)
 *   10..15 holes
 */
function mixedMap(): BatMap {
  const m = makeMap();
  m.setEntryValue(0, 3, 1);
  m.setEntryValue(1, 4, 1);
  m.setEntryValue(2, 5, 1);
  m.setEntryValue(5, 80, 0);
  m.setEntryValue(6, 88, 0);
  m.setEntryValue(7, 11, 1);
  m.setEntryValue(8, 13, 1);
  m.setEntryValue(9, 12, 1);
  return m;
}

const ext = (offset: number, length: number, hostOffset: number, level: number, firstClusterIndex: number): RawExtent =>
  ({ offset, length, hostOffset, level, firstClusterIndex });

describe('lookupCluster and levelOf', () => {
  test('a hole is -1, a mapped cluster is its value times its level unit, out of range is STATUS_RANGE', () => {
    const m = mixedMap();
    const e = core.exports;
    assert.equal(e.lookupCluster(m.ctx, 0), 3 * CLUSTER);
    assert.equal(e.lookupCluster(m.ctx, 5), 80 * 512);
    assert.equal(e.lookupCluster(m.ctx, 3), -1);
    assert.equal(e.lookupCluster(m.ctx, 15), -1);
    assert.equal(e.lookupCluster(m.ctx, 16), STATUS_RANGE);
    assert.equal(e.lookupCluster(m.ctx, 0xffffffff), STATUS_RANGE);
    assert.equal(e.levelOf(m.ctx, 0), 1);
    assert.equal(e.levelOf(m.ctx, 5), 0);
    assert.equal(e.levelOf(m.ctx, 3), LEVEL_NONE);
    assert.equal(e.levelOf(m.ctx, 16), STATUS_RANGE);
    assert.equal(m.lookup(1), 4 * CLUSTER);
    assertPloopError(() => m.lookup(16), 'ERANGE', /BAT lookup: offset or cluster outside the virtual disk/);
    assertPloopError(() => m.levelOf(99), 'ERANGE', /BAT level lookup/);
  });

  test('a v2 entry near 2^32 gives an exact host offset beyond 2^32 bytes (f64, not u32)', () => {
    const m = makeMap();
    m.setEntryValue(4, 0xfffffff0, 1);
    assert.equal(m.lookup(4), 0xfffffff0 * CLUSTER);
  });

  test('countTopMapped counts only the top level', () => {
    assert.equal(mixedMap().countTopMapped(), 6);
  });
});

describe('mapRange', () => {
  test('merges contiguous clusters, splits at level changes and at non-contiguous host offsets', () => {
    const m = mixedMap();
    const r = rawMapRange(m, 0, 16 * CLUSTER, 16);
    assert.equal(r.status, 7);
    assert.deepEqual(r.extents, [
      ext(0, 3 * CLUSTER, 3 * CLUSTER, 1, 0),
      ext(3 * CLUSTER, 2 * CLUSTER, -1, LEVEL_NONE, 3),
      ext(5 * CLUSTER, 2 * CLUSTER, 80 * 512, 0, 5),
      ext(7 * CLUSTER, CLUSTER, 11 * CLUSTER, 1, 7), // starts where cluster 6 ends, but another level
      ext(8 * CLUSTER, CLUSTER, 13 * CLUSTER, 1, 8),
      ext(9 * CLUSTER, CLUSTER, 12 * CLUSTER, 1, 9),
      ext(10 * CLUSTER, 6 * CLUSTER, -1, LEVEL_NONE, 10),
    ]);
    assert.deepEqual(m.mapRange(0, 16 * CLUSTER), r.extents);
  });

  test('an unaligned offset and length give a first extent inside a cluster and a short last one', () => {
    const m = mixedMap();
    assert.deepEqual(rawMapRange(m, 100, 5000, 8).extents, [ext(100, 5000, 3 * CLUSTER + 100, 1, 0)]);
    assert.deepEqual(rawMapRange(m, 4000, 10000, 8).extents, [
      ext(4000, 3 * CLUSTER - 4000, 3 * CLUSTER + 4000, 1, 0),
      ext(3 * CLUSTER, 14000 - 3 * CLUSTER, -1, LEVEL_NONE, 3),
    ]);
    assert.deepEqual(rawMapRange(m, 5 * CLUSTER + 1, 1, 8).extents, [ext(5 * CLUSTER + 1, 1, 80 * 512 + 1, 0, 5)]);
    assert.equal(rawMapRange(m, 7, 0, 8).status, 0);
  });

  test('writes at most maxExtents records and a caller continues from the end of the last one', () => {
    const m = mixedMap();
    const all = rawMapRange(m, 0, 16 * CLUSTER, 16).extents;
    const got: RawExtent[] = [];
    let pos = 0;
    let calls = 0;
    while (pos < 16 * CLUSTER) {
      const r = rawMapRange(m, pos, 16 * CLUSTER - pos, 2, 4);
      assert.ok(r.status >= 1 && r.status <= 2, `status ${r.status}`);
      assert.ok(r.untouched, 'no record written past maxExtents');
      got.push(...r.extents);
      const last = r.extents[r.extents.length - 1];
      pos = last.offset + last.length;
      calls++;
    }
    assert.equal(calls, 4);
    assert.deepEqual(got, all, 'the hole that fills up before the limit is complete, not cut');
  });

  test('BatMap.mapRange stitches more than 64 extents (one call per 64) into one exact cover', () => {
    const m = makeMap({ batEntryCount: 200, slotCapacity: 256 });
    for (let c = 0; c < 200; c += 2) m.setEntryValue(c, 1000 - c, 1); // every mapped cluster its own extent
    const extents = m.mapRange(10, 200 * CLUSTER - 20);
    assert.equal(extents.length, 200);
    let pos = 10;
    for (const [i, e] of extents.entries()) {
      assert.equal(e.offset, pos);
      assert.equal(e.firstClusterIndex, i);
      assert.equal(e.level, i % 2 === 0 ? 1 : LEVEL_NONE);
      if (i % 2 === 0) assert.equal(e.hostOffset, (1000 - i) * CLUSTER + (pos - i * CLUSTER));
      pos += e.length;
    }
    assert.equal(pos, 200 * CLUSTER - 10);
  });

  test('a bad range is STATUS_RANGE, no room is STATUS_NO_ROOM, and BatMap turns them into PloopErrors', () => {
    const m = mixedMap();
    assert.equal(rawMapRange(m, -1, 10, 4).status, STATUS_RANGE);
    assert.equal(rawMapRange(m, 0, -1, 4).status, STATUS_RANGE);
    assert.equal(rawMapRange(m, 0, 16 * CLUSTER + 1, 4).status, STATUS_RANGE);
    assert.equal(rawMapRange(m, 16 * CLUSTER, 1, 4).status, STATUS_RANGE);
    assert.equal(rawMapRange(m, 16 * CLUSTER, 0, 4).status, 0);
    assert.equal(rawMapRange(m, 0, 10, 0).status, STATUS_NO_ROOM);
    assert.equal(rawMapRange(m, 0, 10, -5).status, STATUS_NO_ROOM);
    assertPloopError(() => m.mapRange(16 * CLUSTER - 1, 2), 'ERANGE', /BAT map: offset or cluster outside the virtual disk/);
  });
});

describe('slot allocation', () => {
  test('allocSlot hands out the lowest free slot, appends at slotsEnd, and reuses freed holes', () => {
    const m = makeMap({ slotCapacity: 100 });
    const e = core.exports;
    assert.deepEqual([e.allocSlot(m.ctx), e.allocSlot(m.ctx), e.allocSlot(m.ctx)], [0, 1, 2]);
    assert.equal(m.claimSlot(5), true);
    assert.equal(core.u32[(m.ctx + CTX_SLOTS_END) >>> 2], 6, 'claim raises slotsEnd');
    assert.deepEqual([m.allocSlot(), m.allocSlot(), m.allocSlot()], [3, 4, 6]);
    m.freeSlot(1);
    assert.equal(m.slotUsed(1), false);
    assert.equal(m.allocSlot(), 1);
    m.freeSlot(4);
    m.freeSlot(2);
    assert.deepEqual([m.allocSlot(), m.allocSlot(), m.allocSlot()], [2, 4, 7]);
    // Across 32-bit words of the bitmap.
    while (m.allocSlot() < 69);
    m.freeSlot(65);
    m.freeSlot(33);
    assert.deepEqual([m.allocSlot(), m.allocSlot(), m.allocSlot()], [33, 65, 70]);
  });

  test('allocSlot returns STATUS_NOSPACE (-3) at capacity and BatMap throws ENOSPC; a freed slot makes room again', () => {
    const m = makeMap({ slotCapacity: 40 });
    for (let i = 0; i < 40; i++) assert.equal(core.exports.allocSlot(m.ctx), i);
    assert.equal(core.exports.allocSlot(m.ctx), STATUS_NOSPACE);
    assert.equal(core.exports.allocSlot(m.ctx), STATUS_NOSPACE);
    assertPloopError(() => m.allocSlot(), 'ENOSPC', /allocate cluster: no free cluster left/);
    m.freeSlot(17);
    assert.equal(m.allocSlot(), 17);
    assert.equal(core.exports.allocSlot(m.ctx), STATUS_NOSPACE);
  });

  test('allocSlots fills a buffer and stops at capacity with the count so far, then STATUS_NOSPACE', () => {
    const m = makeMap({ slotCapacity: 3 });
    const out = core.alloc(4 * 8);
    try {
      assert.equal(core.exports.allocSlots(m.ctx, 5, out), 3);
      assert.deepEqual([...core.u32.subarray(out >>> 2, (out >>> 2) + 3)], [0, 1, 2]);
      assert.equal(core.exports.allocSlots(m.ctx, 5, out), STATUS_NOSPACE);
    } finally {
      core.free(out);
    }
  });

  test('claimSlot returns 1 then 0 for the same slot; slot numbers past the capacity are STATUS_BAD_SLOT', () => {
    const m = makeMap({ slotCapacity: 40 });
    const e = core.exports;
    assert.equal(e.claimSlot(m.ctx, 9), 1);
    assert.equal(e.claimSlot(m.ctx, 9), 0);
    assert.equal(e.slotUsed(m.ctx, 9), 1);
    assert.equal(e.slotUsed(m.ctx, 8), 0);
    assert.equal(e.claimSlot(m.ctx, 40), STATUS_BAD_SLOT);
    assert.equal(e.freeSlot(m.ctx, 40), STATUS_BAD_SLOT);
    assert.equal(e.slotUsed(m.ctx, 0xffffffff), STATUS_BAD_SLOT);
    assert.equal(m.claimSlot(9), false);
    assertPloopError(() => m.claimSlot(40), 'EINVAL', /claim cluster: slot number beyond the allocation bitmap/);
  });

  test('usedSlotsEnd is one past the highest used slot; trimSlotsEnd pulls slotsEnd back to it and resets the hint', () => {
    const m = makeMap({ slotCapacity: 100 });
    assert.equal(m.usedSlotsEnd(), 0);
    for (let i = 0; i < 40; i++) m.allocSlot();
    m.freeSlot(39);
    m.freeSlot(38);
    m.freeSlot(3);
    assert.equal(m.usedSlotsEnd(), 38);
    assert.equal(core.u32[(m.ctx + CTX_SLOTS_END) >>> 2], 40);
    assert.equal(m.trimSlotsEnd(), 38);
    assert.equal(core.u32[(m.ctx + CTX_SLOTS_END) >>> 2], 38);
    assert.equal(core.u32[(m.ctx + CTX_FREE_HINT) >>> 2], 0);
    assert.deepEqual([m.allocSlot(), m.allocSlot()], [3, 38]);
    for (let i = 0; i <= 38; i++) m.freeSlot(i);
    assert.equal(m.usedSlotsEnd(), 0);
    assert.equal(m.trimSlotsEnd(), 0);
    assert.equal(m.allocSlot(), 0);
  });
});

describe('md page state', () => {
  test('mdBeginUpdate returns the previous word and sets UPDATING, or STATUS_BUSY when UPDATING or WRITEBACK', () => {
    const m = makeMap({ batEntryCount: 2000 });
    assert.equal(m.mdPageCount, 2);
    const e = core.exports;
    assert.equal(e.mdStatus(m.ctx, 0), 0);
    assert.equal(e.mdBeginUpdate(m.ctx, 0), 0);
    assert.equal(e.mdStatus(m.ctx, 0), MD_UPDATING);
    assert.equal(e.mdBeginUpdate(m.ctx, 0), STATUS_BUSY);
    assert.equal(e.mdBeginUpdate(m.ctx, 1), 0, 'pages are independent');
    assert.equal(e.mdSet(m.ctx, 0, MD_DIRTY), MD_UPDATING);
    assert.equal(e.mdClear(m.ctx, 0, MD_UPDATING), MD_UPDATING | MD_DIRTY);
    assert.equal(e.mdBeginUpdate(m.ctx, 0), MD_DIRTY, 'the caller sees the page was already dirty');
    e.mdClear(m.ctx, 0, MD_UPDATING | MD_DIRTY);
    e.mdSet(m.ctx, 0, MD_WRITEBACK | MD_DIRTY);
    assert.equal(e.mdBeginUpdate(m.ctx, 0), STATUS_BUSY);
    assert.equal(e.mdStatus(m.ctx, 0), MD_WRITEBACK | MD_DIRTY, 'a refused begin changes nothing');
    assert.equal(m.mdBeginUpdate(0), STATUS_BUSY);
  });

  test('mdTrySubmit: SUBMIT_BUSY while UPDATING or WRITEBACK, SUBMIT_CLEAN when clean, else SUBMIT_TAKEN with WRITEBACK set and DIRTY|HIGHPRIO cleared', () => {
    const m = makeMap({ batEntryCount: 2000 });
    const e = core.exports;
    assert.equal(e.mdTrySubmit(m.ctx, 0), SUBMIT_CLEAN);
    e.mdSet(m.ctx, 0, MD_DIRTY | MD_UPDATING);
    assert.equal(e.mdTrySubmit(m.ctx, 0), SUBMIT_BUSY);
    e.mdClear(m.ctx, 0, MD_UPDATING);
    e.mdSet(m.ctx, 0, MD_WRITEBACK);
    assert.equal(e.mdTrySubmit(m.ctx, 0), SUBMIT_BUSY);
    assert.equal(e.mdStatus(m.ctx, 0), MD_DIRTY | MD_WRITEBACK);
    e.mdClear(m.ctx, 0, MD_WRITEBACK);
    e.mdSet(m.ctx, 0, MD_HIGHPRIO);
    assert.equal(e.mdTrySubmit(m.ctx, 0), SUBMIT_TAKEN);
    assert.equal(e.mdStatus(m.ctx, 0), MD_WRITEBACK);
    assert.equal(e.mdTrySubmit(m.ctx, 0), SUBMIT_BUSY);
    e.mdClear(m.ctx, 0, MD_WRITEBACK);
    assert.equal(e.mdTrySubmit(m.ctx, 0), SUBMIT_CLEAN);
    assert.equal(m.mdTrySubmit(1), SUBMIT_CLEAN);
  });

  test('the pending-piwb word is exchanged and compare-and-swapped atomically', () => {
    const m = makeMap({ batEntryCount: 2000 });
    assert.equal(m.mdPiwb(1), PIWB_NONE);
    assert.equal(m.mdExchangePiwb(1, 7), PIWB_NONE);
    assert.equal(m.mdExchangePiwb(1, 9), 7);
    assert.equal(m.mdCasPiwb(1, 7, 3), 9, 'a failed swap returns the id seen');
    assert.equal(m.mdPiwb(1), 9);
    assert.equal(m.mdCasPiwb(1, 9, PIWB_NONE), 9);
    assert.equal(m.mdPiwb(1), PIWB_NONE);
    assert.equal(m.mdPiwb(0), PIWB_NONE);
  });

  test('a page number past the BAT is STATUS_BAD_PAGE for every md export', () => {
    const m = makeMap({ batEntryCount: 2000 });
    const e = core.exports;
    const buf = core.alloc(MD_PAGE_BYTES, MD_PAGE_BYTES);
    try {
      for (const r of [
        e.mdStatus(m.ctx, 2), e.mdBeginUpdate(m.ctx, 2), e.mdSet(m.ctx, 2, MD_DIRTY), e.mdClear(m.ctx, 2, MD_DIRTY),
        e.mdTrySubmit(m.ctx, 2), e.mdExchangePiwb(m.ctx, 2, 1), e.mdCasPiwb(m.ctx, 2, PIWB_NONE, 1),
        e.piwbPrepare(m.ctx, 2, buf), e.piwbApply(m.ctx, 2, buf),
      ]) assert.equal(r, STATUS_BAD_PAGE);
    } finally {
      core.free(buf);
    }
    assertPloopError(() => m.mdStatus(2), 'EINVAL', /md status: md page number beyond the BAT/);
    assertPloopError(() => m.mdBeginUpdate(5), 'EINVAL', /md begin update/);
    assertPloopError(() => m.mdExchangePiwb(2, 0), 'EINVAL', /md piwb exchange/);
  });
});

describe('piwb prepare and apply', () => {
  /**
   * 2000 entries on two md pages. Page 0: header slots 0..15 hold 1..16; entry 0 top 100,
   * entry 1 lower (level 0) 5000, entry 2 hole, entry 3 a hole whose live slot holds junk,
   * entry 1007 (last of page 0) top 150. Page 1: entry 1008 top 200, entry 1999 lower 6000 (slot
   * 991); slots 992..1023 (past the last entry) hold junk.
   */
  function piwbMap(): BatMap {
    const m = makeMap({ batEntryCount: 2000, slotCapacity: 4096 });
    const live = core.u32;
    const bat = m.pages().byteOffset >>> 2;
    for (let i = 0; i < 16; i++) live[bat + i] = i + 1;
    m.setEntryValue(0, 100, 1);
    m.setEntryValue(1, 5000, 0);
    live[bat + 16 + 3] = 777;
    m.setEntryValue(1007, 150, 1);
    m.setEntryValue(1008, 200, 1);
    m.setEntryValue(1999, 6000, 0);
    for (let i = 992; i < 1024; i++) live[bat + 1024 + i] = 0xdead0000 + i;
    return m;
  }

  test('piwbPrepare copies the page, keeps page 0 header slots, zeroes slots not mapped at top and the tail past the last entry', () => {
    const m = piwbMap();
    const a0 = core.alloc(MD_PAGE_BYTES, MD_PAGE_BYTES);
    const a1 = core.alloc(MD_PAGE_BYTES, MD_PAGE_BYTES);
    try {
      core.u8.fill(0x55, a0, a0 + MD_PAGE_BYTES);
      core.u8.fill(0x55, a1, a1 + MD_PAGE_BYTES);
      assert.equal(core.exports.piwbPrepare(m.ctx, 0, a0), 0);
      m.piwbPrepare(1, a1);
      const p0 = core.u32.slice(a0 >>> 2, (a0 >>> 2) + 1024);
      const p1 = core.u32.slice(a1 >>> 2, (a1 >>> 2) + 1024);
      assert.deepEqual([...p0.subarray(0, 16)], Array.from({ length: 16 }, (_, i) => i + 1));
      assert.deepEqual([...p0.subarray(16, 20)], [100, 0, 0, 0]);
      assert.equal(p0[1023], 150);
      assert.equal(p0.subarray(20, 1023).every((v) => v === 0), true);
      assert.equal(p1[0], 200);
      assert.equal(p1[991], 0, 'a lower-level entry is 0 in the top delta');
      assert.equal(p1.subarray(1, 1024).every((v) => v === 0), true, 'tail past the last entry is zeroed');
      // The live page is left as it was.
      const bat = m.pages().byteOffset >>> 2;
      assert.equal(core.u32[bat + 16 + 1], 5000);
      assert.equal(core.u32[bat + 16 + 3], 777);
      assert.equal(core.u32[bat + 1024 + 1000], 0xdead0000 + 1000);
    } finally {
      core.free(a0);
      core.free(a1);
    }
  });

  test('piwbApply maps new entries at the top level, unmaps zeroed top entries, and leaves header, lower levels and the tail alone', () => {
    const m = piwbMap();
    const a0 = core.alloc(MD_PAGE_BYTES, MD_PAGE_BYTES);
    const a1 = core.alloc(MD_PAGE_BYTES, MD_PAGE_BYTES);
    try {
      m.piwbPrepare(0, a0);
      m.piwbPrepare(1, a1);
      const w = core.u32;
      w[(a0 >>> 2) + 0] = 0xbad; // header slot: ignored
      w[(a0 >>> 2) + 16 + 0] = 0; // discard entry 0 (top)
      w[(a0 >>> 2) + 16 + 2] = 300; // allocate entry 2 (hole)
      // entry 1 (lower level) stays 0 in the piwb: not a discard
      // entry 1007 unchanged (150): not counted
      assert.equal(core.exports.piwbApply(m.ctx, 0, a0), 2);
      assert.equal(m.levelOf(0), LEVEL_NONE);
      assert.equal(m.entryValue(0), 0);
      assert.equal(m.lookup(2), 300 * CLUSTER);
      assert.equal(m.levelOf(2), 1);
      assert.equal(m.lookup(1), 5000 * 512, 'lower level untouched');
      assert.equal(m.levelOf(1), 0);
      assert.equal(m.lookup(1007), 150 * CLUSTER);
      assert.equal(core.u32[m.pages().byteOffset >>> 2], 1, 'header slot untouched');

      w[(a1 >>> 2) + 991] = 400; // COW of entry 1999 into the top delta
      w[(a1 >>> 2) + 995] = 123; // past the last entry: ignored
      assert.equal(m.piwbApply(1, a1), 1);
      assert.equal(m.levelOf(1999), 1);
      assert.equal(m.lookup(1999), 400 * CLUSTER);
      assert.equal(core.u32[(m.pages().byteOffset >>> 2) + 1024 + 995], 0xdead0000 + 995);
      // Applying the same piwb again changes nothing.
      assert.equal(m.piwbApply(1, a1), 0);
    } finally {
      core.free(a0);
      core.free(a1);
    }
  });
});

describe('loadTopBat', () => {
  /** v1-style top delta: level 0 in sectors, data at byte 12288, file 28672 bytes (4 slots). */
  function scanMap(): BatMap {
    const m = makeMap({ topLevel: 0 });
    const values = [24, 8, 24 + 8 * 100, 24, 33, 32, 48, 49];
    const bat = m.pages().byteOffset >>> 2;
    values.forEach((v, c) => (core.u32[bat + 16 + c] = v));
    return m;
  }

  test('a cluster that starts before the end of the file is not outside, even when the file ends inside it (a copy cut short)', () => {
    const m = makeMap({ topLevel: 0 });
    const bat = m.pages().byteOffset >>> 2;
    [24, 32, 40].forEach((v, c) => (core.u32[bat + 16 + c] = v)); // slots 0, 1, 2: bytes 12288, 16384, 20480
    assert.deepEqual(m.loadTop(20480 + 100).problems, [], 'slot 2 is cut short: it reads its 100 bytes, then zeros');
    const again = makeMap({ topLevel: 0 });
    const bat2 = again.pages().byteOffset >>> 2;
    [24, 32, 41].forEach((v, c) => (core.u32[bat2 + 16 + c] = v));
    assert.deepEqual(again.loadTop(20480).problems, [{ kind: 'outside', clusterIndex: 2, hostOffset: 41 * 512 }], 'one sector past the end is outside');
    disposeMap(m);
    disposeMap(again);
  });

  test('reports metadata, outside, duplicate and misaligned entries in order, maps every non-zero entry, claims the good slots', () => {
    const m = scanMap();
    const { problems, problemCount } = m.loadTop(28672);
    assert.equal(problemCount, 5);
    assert.deepEqual(problems, [
      { kind: 'metadata', clusterIndex: 1, hostOffset: 4096 },
      { kind: 'outside', clusterIndex: 2, hostOffset: 824 * 512 },
      { kind: 'duplicate', clusterIndex: 3, hostOffset: 12288 },
      { kind: 'misaligned', clusterIndex: 4, hostOffset: 33 * 512 },
      // Starts inside the file and ends past it: not outside (QEMU 7.2: off > size), but off the grid.
      { kind: 'misaligned', clusterIndex: 7, hostOffset: 49 * 512 },
    ]);
    for (let c = 0; c < 8; c++) assert.equal(m.levelOf(c), 0, `entry ${c} mapped at the top level`);
    for (let c = 8; c < 16; c++) assert.equal(m.levelOf(c), LEVEL_NONE);
    assert.deepEqual([0, 1, 2, 3, 4].map((s) => m.slotUsed(s)), [true, true, false, true, false]);
    assert.equal(m.usedSlotsEnd(), 4);
    assert.equal(m.allocSlot(), 2, 'the hole between good slots is reused');
  });

  test('returns the full count but records only maxOut problems', () => {
    const m = scanMap();
    const out = core.alloc(16 * 2);
    try {
      core.u8.fill(0x77, out, out + 32);
      assert.equal(core.exports.loadTopBat(m.ctx, 28672, out, 1), 5);
      assert.equal(core.u32[out >>> 2], 1, 'kind metadata');
      assert.equal(core.u32[(out >>> 2) + 1], 1, 'entry 1');
      assert.equal(core.u32[(out >>> 2) + 4], 0x77777777, 'second record not written');
    } finally {
      core.free(out);
    }
    const again = scanMap().loadTop(28672, 2);
    assert.equal(again.problemCount, 5);
    assert.equal(again.problems.length, 2);
  });

  test('a v2 top delta counts entries in clusters: one entry per slot, below the data area is metadata', () => {
    const m = makeMap({ topLevel: 1 });
    const bat = m.pages().byteOffset >>> 2;
    [3, 5, 2, 0, 4].forEach((v, c) => (core.u32[bat + 16 + c] = v));
    const { problems } = m.loadTop(6 * CLUSTER);
    assert.deepEqual(problems, [{ kind: 'metadata', clusterIndex: 2, hostOffset: 2 * CLUSTER }]);
    assert.equal(m.lookup(1), 5 * CLUSTER);
    assert.equal(m.levelOf(3), LEVEL_NONE);
    assert.deepEqual([0, 1, 2].map((s) => m.slotUsed(s)), [true, true, true]);
  });
});

interface WorkerResult { slots?: number[]; status?: number; maxSlot?: number; failures?: number }

function runWorker(data: Record<string, unknown>): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./alloc-worker.mjs', import.meta.url), {
      workerData: { module: core.module, memory: core.memory, ...data },
    });
    const timer = setTimeout(() => {
      void w.terminate();
      reject(new Error('worker timed out'));
    }, 20000);
    w.once('message', (m: WorkerResult) => {
      clearTimeout(timer);
      resolve(m);
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describe('allocSlot across threads on one shared memory', () => {
  test('two workers racing allocSlot on one context get every slot exactly once: no duplicates, none lost', async () => {
    const n = 20000;
    const m = makeMap({ slotCapacity: 3 * n });
    const [a, b] = await Promise.all([runWorker({ ctx: m.ctx, n }), runWorker({ ctx: m.ctx, n })]);
    const all = [...a.slots!, ...b.slots!];
    assert.equal(all.filter((s) => s < 0).length, 0, 'no allocation failed');
    const sorted = Int32Array.from(all).sort();
    for (let i = 0; i < sorted.length; i++) assert.equal(sorted[i], i, `slot ${i} handed out once`);
    assert.equal(m.usedSlotsEnd(), 2 * n);
    assert.equal(m.allocSlot(), 2 * n);
    disposeMap(m);
  });

  test('two workers filling a bitmap with pre-claimed holes share out exactly the free slots and both see STATUS_NOSPACE', async () => {
    const capacity = 30000;
    const m = makeMap({ slotCapacity: capacity });
    const pre = new Set<number>();
    for (let s = 0; s < capacity; s += 7) {
      m.claimSlot(s);
      pre.add(s);
    }
    m.freeSlot(0); // also lowers the hint
    pre.delete(0);
    const [a, b] = await Promise.all([runWorker({ ctx: m.ctx, mode: 'fill' }), runWorker({ ctx: m.ctx, mode: 'fill' })]);
    assert.equal(a.status, STATUS_NOSPACE);
    assert.equal(b.status, STATUS_NOSPACE);
    const seen = new Uint8Array(capacity);
    for (const s of [...a.slots!, ...b.slots!, ...pre]) {
      assert.equal(seen[s], 0, `slot ${s} handed out twice`);
      seen[s] = 1;
    }
    assert.equal(seen.every((x) => x === 1), true, 'every slot used');
    disposeMap(m);
  });

  test('concurrent allocate/free rounds lose no freed slot: afterwards the lowest slot comes back and the bitmap never grew past what was held', async () => {
    const k = 100;
    const m = makeMap({ slotCapacity: 1 << 16 });
    const [a, b] = await Promise.all([
      runWorker({ ctx: m.ctx, mode: 'churn', n: 3000, k }),
      runWorker({ ctx: m.ctx, mode: 'churn', n: 3000, k }),
    ]);
    assert.equal(a.failures, 0);
    assert.equal(b.failures, 0);
    assert.equal(m.usedSlotsEnd(), 0, 'everything was freed');
    // At most 2k slots are held at any time; a freed slot hidden above the hint makes the
    // allocator append instead, so the high-water mark climbs far past that.
    const slotsEnd = core.u32[(m.ctx + CTX_SLOTS_END) >>> 2];
    assert.ok(slotsEnd <= 3 * k, `slotsEnd ${slotsEnd} (max slot ${Math.max(a.maxSlot!, b.maxSlot!)}) for ${2 * k} slots held`);
    assert.equal(m.allocSlot(), 0, 'the lowest free slot, not one above a stale hint');
    disposeMap(m);
  });
});

describe('allocSlot and freeSlot racing inside one scan', () => {
  /**
   * Every slot of a 2^28-slot bitmap is used except `last`; the hint starts at `hint`. A worker
   * calls allocSlot, whose scan walks 8M full words (milliseconds); meanwhile this thread frees
   * slot 5, which the scan has already passed. The worker finds `last`; slot 5 must still be
   * found by the next allocSlot. A hint raised over it (with or without the free having lowered
   * the hint first) would hide it: the next allocation would fail with NOSPACE instead.
   */
  async function race(hint: number): Promise<{ worker: number; next: number; duringScan: boolean }> {
    const capacity = 1 << 28;
    const last = capacity - 40;
    const m = makeMap({ slotCapacity: capacity });
    const warm = makeMap({ slotCapacity: 64 });
    const flag = core.alloc(8);
    try {
      const bitmap = core.u32[(m.ctx + CTX_BITMAP) >>> 2] >>> 2;
      core.u32.fill(0xffffffff, bitmap, bitmap + capacity / 32);
      core.u32[bitmap + (last >>> 5)] &= ~(1 << (last & 31));
      core.u32[(m.ctx + CTX_SLOTS_END) >>> 2] = capacity;
      core.u32[(m.ctx + CTX_FREE_HINT) >>> 2] = hint;
      const w = new Worker(new URL('./alloc-worker.mjs', import.meta.url), {
        workerData: { module: core.module, memory: core.memory, ctx: m.ctx, warmCtx: warm.ctx, mode: 'signal', flag },
      });
      const result = new Promise<WorkerResult>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      await new Promise((resolve) => w.once('online', resolve));
      // Spin (not Atomics.wait: its wake-up can take longer than the scan) until the worker is
      // about to scan, give it 1 ms to pass slot 5's word (the scan takes several), then free slot 5.
      const i32 = core.i32;
      const deadline = performance.now() + 10000;
      while (Atomics.load(i32, flag >>> 2) === 0) assert.ok(performance.now() < deadline, 'worker never started');
      const at = performance.now() + 1;
      while (performance.now() < at);
      assert.equal(core.exports.freeSlot(m.ctx, 5), 0);
      const duringScan = Atomics.load(core.i32, (flag >>> 2) + 1) === 0;
      const worker = (await result).slots![0];
      const next = core.exports.allocSlot(m.ctx);
      return { worker, next, duringScan };
    } finally {
      core.free(flag);
      disposeMap(m);
      disposeMap(warm);
    }
  }

  for (const hint of [0, 32]) {
    test(`a slot freed while another thread's scan is past it is not lost (hint ${hint} ${hint === 0 ? 'below' : 'above'} the freed slot)`, async () => {
      let conclusive = 0;
      for (let trial = 0; trial < 8 && conclusive < 2; trial++) {
        const r = await race(hint);
        // Either order is fine as long as both slots are handed out.
        assert.deepEqual([r.worker, r.next].sort((a, b) => a - b), [5, (1 << 28) - 40], `worker got ${r.worker}, next allocation ${r.next}`);
        if (r.duringScan && r.worker !== 5) conclusive++;
      }
      assert.ok(conclusive > 0, 'the free never landed inside the scan: the race was not exercised');
    });
  }
});

describe('memory', () => {
  test('disposing every BatMap returns core.usedBytes to its value before the tests', () => {
    for (const m of [...maps]) disposeMap(m);
    assert.equal(core.usedBytes, baselineBytes);
  });
});

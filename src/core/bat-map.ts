// SPDX-License-Identifier: MIT
// One image's BAT in WebAssembly memory: the md pages, level bytes, md state words, piwb slots
// and the slot bitmap, with a typed API over the core's functions. Byte offsets are numbers
// (exact up to 2^53); cluster and slot indices are u32.
// size: one class over one WebAssembly context record, mostly one-line wrappers of the core's
// exports (BAT, slots, md pages, piwbs, preallocation words); its parts share the context's
// private fields, and split across files they would have to be public.

import { checkStatus, type WasmCore } from './wasm.js';
import { PloopError } from '../errors.js';
import { StepGates, GATE_COUNT } from '../engine/step-gates.js';
import {
  CTX_BAT, CTX_LEVELS, CTX_STATUS, CTX_ENTRIES, CTX_CLUSTER, CTX_TOP, CTX_BITMAP, CTX_CAPACITY, CTX_FIRST_SLOT, CTX_SLOTS_END,
  CTX_PAGES, CTX_PIWB_SLOTS, CTX_PIWB_POOL, CTX_PIWB_COUNT, CTX_PIWB_BITMAP, CTX_ATTACH, CTX_PRISTINE_FROM, CTX_LOWER_LEVELS,
  CTX_GATES, CTX_PREALLOC_END, CTX_PREALLOC_TARGET, CTX_PREALLOC_FILL_START, CTX_UNITS, CTX_BYTES, PAGE_BYTES, SLOTS_PER_PAGE,
  MAP_OFFSET, LEVEL_NONE, STATUS_BUSY, STATUS_RANGE, STATUS_BAD_PAGE, PIWB_NONE, SUBMIT_CLEAN,
  EXTENT_OFFSET, EXTENT_LENGTH, EXTENT_HOST, EXTENT_LEVEL, EXTENT_FIRST_CLUSTER, EXTENT_BYTES,
  PROBLEM_METADATA, PROBLEM_OUTSIDE, PROBLEM_MISALIGNED, PROBLEM_DUPLICATE, PROBLEM_KIND, PROBLEM_CLUSTER, PROBLEM_HOST, PROBLEM_BYTES,
} from './wasm-interface.generated.js';

export {
  LEVEL_NONE, MD_DIRTY, MD_WRITEBACK, MD_HIGHPRIO, MD_UPDATING, PAGE_BYTES as MD_PAGE_BYTES,
} from './wasm-interface.generated.js';
/** Most piwb buffers one image keeps (4 KiB each); updaters wait when all are in use. */
const MAX_PIWBS = 256;
/** Extent records a mapRange call writes at most (the size of each thread's scratch). */
const EXTENT_SCRATCH_RECORDS = 64;

/** A run of the virtual disk that is one hole, or mapped contiguously by one level. */
export interface Extent {
  offset: number;
  length: number;
  /** Byte offset in the level's file, or -1 for a hole. */
  hostOffset: number;
  /** Delta level, or LEVEL_NONE for a hole. */
  level: number;
  firstClusterIndex: number;
}

export type BatProblemKind = 'metadata' | 'outside' | 'misaligned' | 'duplicate';
export interface BatProblem {
  kind: BatProblemKind;
  clusterIndex: number;
  hostOffset: number;
}
const PROBLEM_KINDS: Record<number, BatProblemKind> = {
  [PROBLEM_METADATA]: 'metadata', [PROBLEM_OUTSIDE]: 'outside', [PROBLEM_MISALIGNED]: 'misaligned', [PROBLEM_DUPLICATE]: 'duplicate',
};

export interface BatMapOptions {
  batEntryCount: number;
  clusterBytes: number;
  mdPageCount: number;
  firstSlotByte: number;
  /** Bits in the slot bitmap: the most physical clusters the top delta may hold. */
  slotCapacity: number;
  topLevel: number;
  /** Bytes per BAT unit, indexed by level. */
  unitBytesByLevel: number[];
}

export class BatMap {
  readonly core: WasmCore;
  readonly ctx: number;
  readonly batEntryCount: number;
  readonly clusterBytes: number;
  readonly mdPageCount: number;
  readonly firstSlotByte: number;
  readonly slotCapacity: number;
  readonly topLevel: number;
  readonly #regions: number[];
  #extentBuf: number;
  /** u8 per entry: the newest level below the top that maps it (LEVEL_NONE if none). */
  #lowerLevels: number;
  #closed = false;
  /** The export called once per request, bound once (no property lookups on the hot path). */
  readonly #mapRange: WasmCore['exports']['mapRange'];

  /**
   * A view of a map another thread created (a runner): `ctx` names it, `scratch` is this
   * thread's own EXTENT_SCRATCH_BYTES region for mapRange. Such a view allocates nothing.
   */
  static attach(core: WasmCore, ctx: number, scratch: number): BatMap {
    return new BatMap(core, null, ctx, scratch);
  }

  /** Extent records a scratch region holds: mapRange calls ask for at most this many. */
  static readonly EXTENT_SCRATCH_RECORDS = EXTENT_SCRATCH_RECORDS;
  /** Bytes a runner's scratch region needs (see attach). */
  static readonly EXTENT_SCRATCH_BYTES = EXTENT_BYTES * EXTENT_SCRATCH_RECORDS;

  constructor(core: WasmCore, o: BatMapOptions | null, attachCtx = 0, attachScratch = 0) {
    this.core = core;
    this.#mapRange = core.exports.mapRange;
    if (!o) {
      const u32 = core.u32;
      const f = (field: number) => u32[(attachCtx + field) >>> 2];
      this.ctx = attachCtx;
      this.batEntryCount = f(CTX_ENTRIES);
      this.clusterBytes = f(CTX_CLUSTER);
      this.mdPageCount = f(CTX_PAGES);
      this.firstSlotByte = core.f64[(attachCtx + CTX_FIRST_SLOT) >>> 3];
      this.slotCapacity = f(CTX_CAPACITY);
      this.topLevel = f(CTX_TOP);
      this.#extentBuf = attachScratch;
      this.#lowerLevels = f(CTX_LOWER_LEVELS);
      this.#regions = [];
      return;
    }
    this.batEntryCount = o.batEntryCount;
    this.clusterBytes = o.clusterBytes;
    this.mdPageCount = o.mdPageCount;
    this.firstSlotByte = o.firstSlotByte;
    this.slotCapacity = o.slotCapacity;
    this.topLevel = o.topLevel;
    const ctx = core.alloc(CTX_BYTES);
    const bat = core.alloc(o.mdPageCount * PAGE_BYTES, PAGE_BYTES);
    const levels = core.alloc(o.batEntryCount + 8);
    const status = core.alloc(o.mdPageCount * 4);
    const piwbSlots = core.alloc(o.mdPageCount * 4);
    const bitmap = core.alloc(Math.ceil(o.slotCapacity / 32) * 4 + 8);
    this.#extentBuf = core.alloc(BatMap.EXTENT_SCRATCH_BYTES);
    this.#lowerLevels = core.alloc(o.batEntryCount + 8);
    core.u8.fill(LEVEL_NONE, this.#lowerLevels, this.#lowerLevels + o.batEntryCount);
    const piwbCount = Math.max(4, Math.min(MAX_PIWBS, 2 * o.mdPageCount));
    const piwbPool = core.alloc(piwbCount * PAGE_BYTES, PAGE_BYTES);
    const piwbBitmap = core.alloc(Math.ceil(piwbCount / 32) * 4);
    const attach = core.alloc(o.mdPageCount * 4);
    const gates = core.alloc(GATE_COUNT * 4);
    this.#regions = [ctx, bat, levels, status, piwbSlots, bitmap, this.#extentBuf, this.#lowerLevels, piwbPool, piwbBitmap, attach, gates];
    this.ctx = ctx;
    const u32 = core.u32;
    const w = (field: number, v: number) => (u32[(ctx + field) >>> 2] = v);
    w(CTX_BAT, bat);
    w(CTX_LEVELS, levels);
    w(CTX_STATUS, status);
    w(CTX_ENTRIES, o.batEntryCount);
    w(CTX_CLUSTER, o.clusterBytes);
    w(CTX_TOP, o.topLevel);
    w(CTX_BITMAP, bitmap);
    w(CTX_CAPACITY, o.slotCapacity);
    core.f64[(ctx + CTX_FIRST_SLOT) >>> 3] = o.firstSlotByte;
    w(CTX_PAGES, o.mdPageCount);
    w(CTX_PIWB_SLOTS, piwbSlots);
    w(CTX_PIWB_POOL, piwbPool);
    w(CTX_PIWB_COUNT, piwbCount);
    w(CTX_PIWB_BITMAP, piwbBitmap);
    w(CTX_ATTACH, attach);
    w(CTX_LOWER_LEVELS, this.#lowerLevels);
    w(CTX_GATES, gates);
    core.i32.fill(PIWB_NONE, piwbSlots >>> 2, (piwbSlots >>> 2) + o.mdPageCount);
    // Start as all holes: alloc() zero-fills, and a level byte of 0 would read as "mapped by
    // level 0 at host byte 0" until loadTop() or setEntryValue() ran.
    core.u8.fill(LEVEL_NONE, levels, levels + o.batEntryCount);
    o.unitBytesByLevel.forEach((unit, level) => w(CTX_UNITS + level * 4, unit));
  }

  /** Bytes per BAT unit of `level` (512 for a v1 delta, the cluster size for v2 and raw). */
  setUnitBytes(level: number, unitBytes: number): void {
    this.core.u32[(this.ctx + CTX_UNITS + level * 4) >>> 2] = unitBytes;
  }

  #field(field: number): number {
    return this.core.u32[(this.ctx + field) >>> 2];
  }

  /** The md pages as bytes: header + BAT exactly as in the file, padded to whole pages. */
  pages(): Uint8Array {
    const bat = this.#field(CTX_BAT);
    return this.core.u8.subarray(bat, bat + this.mdPageCount * PAGE_BYTES);
  }

  /** Raw BAT value of entry `clusterIndex` (in the mapping level's units). */
  entryValue(clusterIndex: number): number {
    return this.core.u32[(this.#field(CTX_BAT) >>> 2) + MAP_OFFSET + clusterIndex];
  }

  /** Set a raw BAT value in the live page (repair and tests; the engine goes through piwbs). */
  setEntryValue(clusterIndex: number, value: number, level: number): void {
    this.core.u32[(this.#field(CTX_BAT) >>> 2) + MAP_OFFSET + clusterIndex] = value;
    this.core.u8[this.#field(CTX_LEVELS) + clusterIndex] = value === 0 && level === this.topLevel ? LEVEL_NONE : level;
  }

  /** Scan the loaded top BAT: set levels, claim slots, return the problems (all of them, bounded by `maxProblems`). */
  loadTop(fileBytes: number, maxProblems = 4096): { problems: BatProblem[]; problemCount: number } {
    const out = this.core.alloc(PROBLEM_BYTES * maxProblems);
    try {
      const count = this.core.exports.loadTopBat(this.ctx, fileBytes, out, maxProblems);
      return { problems: this.#readProblems(out, Math.min(count, maxProblems)), problemCount: count };
    } finally {
      this.core.free(out);
    }
  }

  /**
   * Merge a lower delta's BAT (on-disk bytes, `entries` u32 values) into the map; call for
   * levels from newest to oldest after loadTop. Returns that delta's bad entries.
   */
  loadLower(level: number, batBytes: Uint8Array, entries: number, fileBytes: number, firstSlotByte: number, maxProblems = 4096): { problems: BatProblem[]; problemCount: number } {
    const src = this.core.alloc(entries * 4 + 8);
    const out = this.core.alloc(PROBLEM_BYTES * maxProblems);
    try {
      this.core.u8.set(batBytes.subarray(0, entries * 4), src);
      const count = this.core.exports.loadLowerBat(this.ctx, level, src, entries, fileBytes, firstSlotByte, this.#lowerLevels, out, maxProblems);
      return { problems: this.#readProblems(out, Math.min(count, maxProblems)), problemCount: count };
    } finally {
      this.core.free(out);
      this.core.free(src);
    }
  }

  /** Map a raw base delta at `level`: cluster c at byte c * clusterBytes of its file. */
  loadRaw(level: number, clusterCount: number): number {
    return this.core.exports.loadRawLevel(this.ctx, level, clusterCount, this.#lowerLevels);
  }

  /** The newest level below the top that maps `clusterIndex`, or LEVEL_NONE. */
  lowerLevelOf(clusterIndex: number): number {
    return this.core.u8[this.#lowerLevels + clusterIndex];
  }

  #readProblems(out: number, n: number): BatProblem[] {
    const problems: BatProblem[] = [];
    const u32 = this.core.u32;
    const f64 = this.core.f64;
    for (let i = 0; i < n; i++) {
      const rec = out + i * PROBLEM_BYTES;
      problems.push({
        kind: PROBLEM_KINDS[u32[(rec + PROBLEM_KIND) >>> 2]],
        clusterIndex: u32[(rec + PROBLEM_CLUSTER) >>> 2],
        hostOffset: f64[(rec + PROBLEM_HOST) >>> 3],
      });
    }
    return problems;
  }

  /** Host byte offset of a virtual cluster, or -1 for a hole. */
  lookup(clusterIndex: number): number {
    const host = this.core.exports.lookupCluster(this.ctx, clusterIndex);
    if (host === STATUS_RANGE) checkStatus('BAT lookup', STATUS_RANGE, { clusterIndex });
    return host;
  }

  levelOf(clusterIndex: number): number {
    const level = this.core.exports.levelOf(this.ctx, clusterIndex);
    return level >= 0 ? level : checkStatus('BAT level lookup', level, { clusterIndex });
  }

  /**
   * Host byte offsets of the `count` clusters whose u32 indices are at WASM address `indices`,
   * written as f64 (-1 for a hole) at address `out`: one WebAssembly call for all of them.
   */
  lookupMany(indices: number, count: number, out: number): void {
    checkStatus('BAT lookup', this.core.exports.lookupClusters(this.ctx, indices, count, out), { count });
  }

  /**
   * The first extents (at most EXTENT_SCRATCH_RECORDS) of [offset, offset + length) into this
   * thread's scratch, without making objects: returns how many; read them with
   * extentOffset/Length/Host/Level before the next call. The request hot path uses this;
   * mapRange() wraps it.
   */
  mapChunk(offset: number, length: number): number {
    const n = this.#mapRange(this.ctx, offset, length, this.#extentBuf, EXTENT_SCRATCH_RECORDS);
    // No error details object unless there is an error: this runs once per request.
    return n >= 0 ? n : checkStatus('BAT map', n, { offset, length });
  }
  extentOffset(i: number): number {
    return this.core.f64[(this.#extentBuf + i * EXTENT_BYTES + EXTENT_OFFSET) >>> 3];
  }
  extentLength(i: number): number {
    return this.core.f64[(this.#extentBuf + i * EXTENT_BYTES + EXTENT_LENGTH) >>> 3];
  }
  extentHost(i: number): number {
    return this.core.f64[(this.#extentBuf + i * EXTENT_BYTES + EXTENT_HOST) >>> 3];
  }
  extentLevel(i: number): number {
    return this.core.u32[(this.#extentBuf + i * EXTENT_BYTES + EXTENT_LEVEL) >>> 2];
  }

  /** Extents covering [offset, offset + length): one WebAssembly call per EXTENT_SCRATCH_RECORDS extents. */
  mapRange(offset: number, length: number): Extent[] {
    const extents: Extent[] = [];
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const n = this.mapChunk(pos, end - pos);
      const f64 = this.core.f64;
      const u32 = this.core.u32;
      for (let i = 0; i < n; i++) {
        const rec = this.#extentBuf + i * EXTENT_BYTES;
        const e: Extent = {
          offset: f64[(rec + EXTENT_OFFSET) >>> 3],
          length: f64[(rec + EXTENT_LENGTH) >>> 3],
          hostOffset: f64[(rec + EXTENT_HOST) >>> 3],
          level: u32[(rec + EXTENT_LEVEL) >>> 2],
          firstClusterIndex: u32[(rec + EXTENT_FIRST_CLUSTER) >>> 2],
        };
        extents.push(e);
        pos = e.offset + e.length;
      }
    }
    return extents;
  }

  /** Virtual clusters the top delta maps. */
  countTopMapped(): number {
    return this.core.exports.countTopMapped(this.ctx);
  }

  /** File byte offset of slot `slot`. */
  slotOffset(slot: number): number {
    return this.firstSlotByte + slot * this.clusterBytes;
  }

  /** The top level's BAT value for slot `slot`. */
  slotValue(slot: number, unitBytes: number): number {
    return this.slotOffset(slot) / unitBytes;
  }

  /** Slot index of a host byte offset in the top delta (fractional when misaligned). */
  slotOf(hostOffset: number): number {
    return (hostOffset - this.firstSlotByte) / this.clusterBytes;
  }

  allocSlot(): number {
    return checkStatus('allocate cluster', this.core.exports.allocSlot(this.ctx), { capacity: this.slotCapacity });
  }

  claimSlot(slot: number): boolean {
    return checkStatus('claim cluster', this.core.exports.claimSlot(this.ctx, slot), { slot }) === 1;
  }

  freeSlot(slot: number): void {
    checkStatus('free cluster', this.core.exports.freeSlot(this.ctx, slot), { slot });
  }

  slotUsed(slot: number): boolean {
    return checkStatus('slot state', this.core.exports.slotUsed(this.ctx, slot), { slot }) === 1;
  }

  /** 1 + the highest used slot. */
  usedSlotsEnd(): number {
    return this.core.exports.usedSlotsEnd(this.ctx);
  }

  /** Forget appended-but-free slots at the end (after the file was trimmed). */
  trimSlotsEnd(): number {
    return this.core.exports.trimSlotsEnd(this.ctx);
  }

  // md page state (docs/engine.md, 'The state word'). Entry c is u32 slot c + MAP_OFFSET of the md pages.
  static pageOf(clusterIndex: number): number {
    return Math.floor((clusterIndex + MAP_OFFSET) / SLOTS_PER_PAGE);
  }
  static slotInPage(clusterIndex: number): number {
    return (clusterIndex + MAP_OFFSET) % SLOTS_PER_PAGE;
  }

  mdStatus(page: number): number {
    return checkStatus('md status', this.core.exports.mdStatus(this.ctx, page), { page });
  }
  /** Returns the previous state word, or STATUS_BUSY when the page is in WRITEBACK or UPDATING. */
  mdBeginUpdate(page: number): number {
    const r = this.core.exports.mdBeginUpdate(this.ctx, page);
    return r === STATUS_BUSY ? r : checkStatus('md begin update', r, { page });
  }
  mdSet(page: number, bits: number): number {
    return checkStatus('md set', this.core.exports.mdSet(this.ctx, page, bits), { page });
  }
  mdClear(page: number, bits: number): number {
    const old = checkStatus('md clear', this.core.exports.mdClear(this.ctx, page, bits), { page });
    this.notifyPage(page);
    return old;
  }
  /** SUBMIT_TAKEN (WRITEBACK set, DIRTY cleared), SUBMIT_BUSY (re-queue) or SUBMIT_CLEAN (not dirty). */
  mdTrySubmit(page: number): number {
    const r = this.core.exports.mdTrySubmit(this.ctx, page);
    return r === SUBMIT_CLEAN ? r : checkStatus('md submit', r, { page });
  }
  mdExchangePiwb(page: number, piwbId: number): number {
    const r = this.core.exports.mdExchangePiwb(this.ctx, page, piwbId);
    if (r === STATUS_BAD_PAGE) checkStatus('md piwb exchange', r, { page });
    return r;
  }
  /** The page's pending piwb id, or PIWB_NONE. */
  mdPiwb(page: number): number {
    return Atomics.load(this.core.i32, (this.#field(CTX_PIWB_SLOTS) >>> 2) + page);
  }
  mdCasPiwb(page: number, expected: number, piwbId: number): number {
    const r = this.core.exports.mdCasPiwb(this.ctx, page, expected, piwbId);
    if (r === STATUS_BAD_PAGE) checkStatus('md piwb swap', r, { page });
    return r;
  }
  piwbPrepare(page: number, piwbAddress: number): void {
    checkStatus('piwb prepare', this.core.exports.piwbPrepare(this.ctx, page, piwbAddress), { page });
  }
  piwbApply(page: number, piwbAddress: number): number {
    return checkStatus('piwb apply', this.core.exports.piwbApply(this.ctx, page, piwbAddress), { page });
  }

  /**
   * Step points for forced-interleaving tests (shared by every thread using this map). Made
   * once: updates pass them on the hot path, where a disarmed gate costs one atomic load.
   */
  get gates(): StepGates {
    if (this.#gates !== null) return this.#gates;
    const at = this.#field(CTX_GATES) >>> 2;
    return (this.#gates = new StepGates(this.core.i32.subarray(at, at + GATE_COUNT)));
  }
  #gates: StepGates | null = null;

  /** Take a piwb buffer from the pool: its id, or STATUS_BUSY when all are in use. */
  piwbAcquire(): number {
    return this.core.exports.piwbAcquire(this.ctx);
  }
  piwbRelease(id: number): void {
    checkStatus('piwb release', this.core.exports.piwbRelease(this.ctx, id), { id });
    // Wake updaters waiting for a buffer (waitPiwb): they all wait on the bitmap's first word.
    Atomics.notify(this.core.i32, this.#field(CTX_PIWB_BITMAP) >>> 2);
  }
  /**
   * Resolves once piwbRelease() gives a buffer back (on any thread), or after `timeoutMs`.
   * Call it before piwbAcquire(): the wait registers at once, so a release in between is not
   * missed (the timeout only bounds a stall, as in waitPage).
   */
  waitPiwb(timeoutMs = 20): Promise<unknown> {
    const at = this.#field(CTX_PIWB_BITMAP) >>> 2;
    const i32 = this.core.i32;
    const r = Atomics.waitAsync(i32, at, Atomics.load(i32, at), timeoutMs);
    return r.async ? r.value : Promise.resolve(r.value);
  }
  piwbAddress(id: number): number {
    return this.core.exports.piwbAddress(this.ctx, id);
  }

  /** Attachments made on `page` that the writeback coordinator has not registered yet. */
  attachPending(page: number): number {
    return Atomics.load(this.core.i32, (this.#field(CTX_ATTACH) >>> 2) + page);
  }
  attachAdd(page: number, delta: number): void {
    Atomics.add(this.core.i32, (this.#field(CTX_ATTACH) >>> 2) + page, delta);
  }

  /** True when `slot` lies past every byte ever written (and marks it written). */
  takePristine(slot: number): boolean {
    return this.core.exports.takePristine(this.ctx, slot) === 1;
  }
  /** Slots from here on were never written (set at open from the file size). */
  setPristineFrom(slot: number): void {
    this.core.u32[(this.ctx + CTX_PRISTINE_FROM) >>> 2] = slot;
  }

  /** 1 + the highest slot handed out or found in use (the allocator appends here). */
  get slotsEnd(): number {
    return Atomics.load(this.core.u32, (this.ctx + CTX_SLOTS_END) >>> 2);
  }

  /**
   * Preallocation (docs/engine.md, 'Virgin slots and preallocation'): the file's size is durable up
   * to slot `preallocEnd` (exclusive) and the slots past the data it had at open read zeros, so a
   * fresh slot below it needs no flush before the BAT page that maps it. Written by the coordinator
   * only after the extension's flush completed; read by every runner.
   */
  get preallocEnd(): number {
    return Atomics.load(this.core.i32, (this.ctx + CTX_PREALLOC_END) >>> 2);
  }
  /** The end an extension in progress will reach (== preallocEnd when none is). */
  get preallocTarget(): number {
    return Atomics.load(this.core.i32, (this.ctx + CTX_PREALLOC_TARGET) >>> 2);
  }
  /**
   * The first slot the extension in progress (or the last one) writes zeros over: from here to
   * preallocTarget no slot was handed out when it started, and none may be written before it has
   * completed (its zeros would land over the data). Read preallocTarget first, then this: the
   * coordinator stores this first, so a pair read in that order is one extension's, or an empty
   * range (a later extension's start is at or past an earlier one's target).
   */
  get preallocFillStart(): number {
    return Atomics.load(this.core.i32, (this.ctx + CTX_PREALLOC_FILL_START) >>> 2);
  }
  /**
   * Coordinator: an extension will zero-fill [fillStart, target) and make the file end durably at
   * `target`; or (no fillStart) a failed one is given up. The fill start never moves back: a new
   * extension starts at or past every slot handed out, which is past any earlier fill start.
   */
  setPreallocTarget(target: number, fillStart = this.preallocFillStart): void {
    Atomics.store(this.core.i32, (this.ctx + CTX_PREALLOC_FILL_START) >>> 2, fillStart);
    Atomics.store(this.core.i32, (this.ctx + CTX_PREALLOC_TARGET) >>> 2, target);
    Atomics.notify(this.core.i32, (this.ctx + CTX_PREALLOC_END) >>> 2);
  }
  /** Coordinator: the file is durably `end` slots long (wakes runners waiting for it). */
  setPreallocEnd(end: number): void {
    Atomics.store(this.core.i32, (this.ctx + CTX_PREALLOC_END) >>> 2, end);
    Atomics.notify(this.core.i32, (this.ctx + CTX_PREALLOC_END) >>> 2);
  }

  /**
   * Any thread: true once `slot` is inside durable preallocation; waits while an extension in
   * progress covers it (false when none does, or that extension failed).
   */
  async waitPrealloc(slot: number): Promise<boolean> {
    const at = (this.ctx + CTX_PREALLOC_END) >>> 2;
    for (;;) {
      const end = Atomics.load(this.core.i32, at);
      if (slot < end) return true;
      if (slot >= this.preallocTarget) return false;
      // Bounded: a missed notification costs a retry, never a hang.
      const r = Atomics.waitAsync(this.core.i32, at, end, 20);
      if (r.async) await r.value;
    }
  }

  /** Index of the page's state word in the i32 view (for Atomics.wait/notify). */
  #statusIndex(page: number): number {
    return (this.#field(CTX_STATUS) >>> 2) + page;
  }

  /** Wake every thread waiting for this page's state to change. */
  notifyPage(page: number): void {
    Atomics.notify(this.core.i32, this.#statusIndex(page));
  }

  /**
   * Resolve when the page's state word is no longer `seen` (or after `timeoutMs`, so that a
   * missed notification costs a retry, never a hang).
   */
  async waitPage(page: number, seen: number, timeoutMs = 20): Promise<void> {
    const r = Atomics.waitAsync(this.core.i32, this.#statusIndex(page), seen, timeoutMs);
    if (r.async) await r.value;
  }

  /** Release every region; the map is unusable afterwards. */
  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of this.#regions) this.core.free(r);
  }

  assertOpen(): void {
    if (this.#closed) throw new PloopError('ECLOSED', 'BAT map used after the image was closed');
  }
}

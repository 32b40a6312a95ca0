// SPDX-License-Identifier: MIT
// A ploop image: one delta, or a stack of deltas (base … top) of which only the top is written.
// Open, read, write, discard, flush, close (one runner). Reads fall through the levels to the
// newest delta that maps a cluster; a write to a cluster a lower delta maps copies the whole
// cluster into the top first (copy-on-write); lower deltas are never written.
//
// Durability rule: an allocating write writes its data cluster, and the writeback cycle makes it
// durable (store flush) before it writes the BAT page that maps it — unless the slot is virgin
// and the cluster read zeros before (cluster-io.ts): then a lost data write leaves the cluster
// reading zeros, its old content, and no flush is needed. Virgin slots come from preallocation:
// the file is extended ahead of the allocator by a chunk (preallocBytes) and that extension is
// made durable once (the store's writeDurably, else a flush), so the slots in it read zeros after
// any crash. The request resolves after its
// BAT write either way. A BAT entry never maps bytes that were not the cluster's. The
// in-use flag is written (and flushed) before the first change reaches the image and cleared on
// a clean close, which also trims unused clusters at the end of the file.

import {
  parseHeader, deriveGeometry, dataOffValid, dataOffError, inUseValid, inUseMessage, serializeHeader, HEADER_BYTES, INUSE_MAGIC, CLOSED_V21_MAGIC, SECTOR_BYTES, CIF_EMPTY,
  type Geometry, type PloopHeader,
} from '../format/header.js';
import { BatMap, type BatProblem, type Extent } from '../core/bat-map.js';
import { getCore } from '../core/wasm.js';
import { extensionProblem, MAX_VERIFIED_EXTENSION_BYTES } from '../format/extension.js';
import type { BlockStore } from '../stores/block-store.js';
import { readFully } from '../stores/block-store.js';
import { PloopError, ioError } from '../errors.js';
import { Writeback } from './writeback.js';
import { ClusterIo } from './cluster-io.js';
import { checkBatch, runBatchInThread, type ReadRequest, type WriteRequest } from './batch.js';
export { settleAll } from './cluster-io.js';
export type { ReadRequest, WriteRequest } from './batch.js';

export interface OpenOptions {
  /** Open for writing (default false). */
  writable?: boolean;
  /** Called with warnings (an image that was not closed cleanly, …); default console.warn. */
  onWarning?: (message: string) => void;
  /** Delay before a dirty md page is written, to gather more updates into one BAT write (ms). */
  submitDelayMs?: number;
  /** Keep the store open when the image closes (default: close it). */
  keepStoreOpen?: boolean;
  /** Accept an inconsistent image (for check/repair): invalid data_off and bad BAT entries. */
  lenient?: boolean;
  /**
   * Grow the file ahead of the allocator by this many bytes at a time (rounded up to clusters),
   * each growth made durable once, so that fresh clusters need no flush before their BAT write.
   * 0 = off (every allocation's BAT write waits for a flush). Default: 1/8 of the virtual size,
   * at least one cluster, at most 128 MiB (QEMU's parallels driver preallocates 128 MiB). A
   * clean close trims what was not used; after a crash check reports it as leaked clusters.
   * The default is 0 on a volatile store (memory), whose flush costs nothing.
   */
  preallocBytes?: number;
  /** Called once close() is done with the stores (openStackDir releases the disk folder's lock here). */
  onClose?: () => void | Promise<void>;
}

export interface ImageStats {
  dataWrites: number;
  /** Clusters copied up from a lower delta (copy-on-write). */
  clustersCopied: number;
  batPageWrites: number;
  clustersAllocated: number;
  clustersReleased: number;
  writebackCycles: number;
  /** Writeback cycles that flushed data before their BAT writes. */
  barriers: number;
  /** File extensions ahead of the allocator (each made durable once). */
  preallocations: number;
  /** Allocations into virgin slots (their BAT writes needed no flush). */
  virginAllocations: number;
}

/** One delta of a stack, as given to openStack: a ploop image or a raw (Plain) base. */
export interface DeltaSource {
  store: BlockStore;
  /** 'ploop' (default) or 'raw' (only as the base, level 0). */
  kind?: 'ploop' | 'raw';
  /** Name for messages (file name). */
  name?: string;
}

/** A delta below the top, as opened. */
export interface LowerDelta {
  level: number;
  kind: 'ploop' | 'raw';
  name: string;
  store: BlockStore;
  header: PloopHeader | null;
  geometry: Geometry | null;
}

/** Problems found while opening, for check (only with `lenient`). */
export interface OpenFindings {
  batProblems: BatProblem[];
  batProblemCount: number;
  dataOffValid: boolean;
  extOffValid: boolean;
  /** What is wrong with the format extension's magic or checksum, or null. */
  extProblem: string | null;
  /** Every damage the open found (top and lower deltas), one sentence each: what info and the page show. */
  damage: string[];
}

export class PloopImage {
  /** The top delta's store (the one that is written). */
  readonly store: BlockStore;
  /** Deltas below the top, level 0 (base) first. */
  readonly lowerDeltas: readonly LowerDelta[];
  readonly writable: boolean;
  readonly geometry: Geometry;
  readonly findings: OpenFindings;
  readonly #header: PloopHeader;
  readonly #bat: BatMap;
  readonly #writeback: Writeback;
  readonly #io: ClusterIo;
  readonly #options: OpenOptions;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #stats = { clustersReleased: 0, preallocations: 0 };
  /** Slots one preallocation adds (0 = off). */
  readonly #preallocSlots: number;
  /** The extension in progress. */
  #extending: Promise<boolean> | null = null;
  /** A flush failed in an extension nobody was waiting for: the next flush() reports it. */
  #flushError: unknown = null;
  #inUse: Promise<void> | null = null;
  /** #inUse resolved: the flag is on disk. */
  #inUseSet = false;
  #closed = false;
  /** Slots unmapped by a completed discard; free for reuse once a flush made that durable. */
  #releasedSlots: number[] = [];

  private constructor(store: BlockStore, lowerDeltas: LowerDelta[], header: PloopHeader, geometry: Geometry, bat: BatMap, fileBytes: number, findings: OpenFindings, options: OpenOptions) {
    this.store = store;
    this.lowerDeltas = lowerDeltas;
    this.#header = header;
    this.geometry = geometry;
    this.#bat = bat;
    this.findings = findings;
    this.#options = options;
    this.writable = !!options.writable;
    this.#preallocSlots = this.writable ? preallocSlotsFor(options.preallocBytes, geometry, store.volatile === true) : 0;
    // Slots past the end of the file (and past every used slot) read as zeros until written.
    bat.setPristineFrom(Math.max(0, Math.ceil((fileBytes - geometry.firstSlotByte) / geometry.clusterBytes), bat.usedSlotsEnd()));
    this.#writeback = new Writeback(bat, {
      barrier: () => this.#barrier(),
      writeBat: (offset, bytes) => this.store.write(offset, bytes),
      released: (slot) => {
        this.#releasedSlots.push(slot);
        this.#stats.clustersReleased++;
      },
      allocated: (slot) => this.#preallocAhead(slot),
    }, {
      batEndByte: geometry.batEndByte, submitDelayMs: options.submitDelayMs,
      // Requests queued behind an allocation in their cluster are not writing data: a burst
      // does not wait for them (sequential writes at depth 32 would add a gather per cluster).
      requestsInFlight: () => this.#inflight.size - this.#io.lockWaiters,
    });
    this.#io = new ClusterIo({
      bat, stores: [...lowerDeltas.map((d) => d.store), store], size: geometry.virtualSize, topUnitBytes: geometry.unitBytes,
      attach: (a) => this.#writeback.register(a),
      preallocate: (slot) => this.#preallocate(slot),
      lockWaited: () => this.#writeback.nudge(),
    });
  }

  /** The writeback coordinator (runners hand their BAT changes to it). */
  get writeback(): Writeback {
    return this.#writeback;
  }

  /** Open the ploop image held by `store`. */
  static open(store: BlockStore, options: OpenOptions = {}): Promise<PloopImage> {
    return PloopImage.openStack([{ store }], options);
  }

  /**
   * Open a stack of deltas, base first and top last. Only the top may be opened writable; every
   * delta must have the top's cluster size and no more BAT entries than the top.
   */
  static async openStack(deltas: DeltaSource[], options: OpenOptions = {}): Promise<PloopImage> {
    if (deltas.length === 0) throw new PloopError('EINVAL', 'openStack: no deltas given');
    if (deltas.length > 254) throw new PloopError('EINVAL', `openStack: ${deltas.length} deltas, at most 254 are supported`);
    const top = deltas[deltas.length - 1];
    if (top.kind === 'raw') throw new PloopError('EINVAL', `openStack: the top delta ${top.name ?? ''} is raw; only a ploop image can be the top`);
    deltas.slice(1).forEach((d, i) => {
      if (d.kind === 'raw') throw new PloopError('EINVAL', `openStack: delta at level ${i + 1} (${d.name ?? 'unnamed'}) is raw; only the base (level 0) may be raw`);
    });
    const store = top.store;
    if (options.writable && !store.writable) {
      throw new PloopError('EREADONLY', `open: read-write requested but store ${store.name} is read-only`);
    }
    const warn = options.onWarning ?? ((m: string) => console.warn(`ploop-wasm: ${m}`));
    // A writer active while this opens read-only, a lock that could not be taken (the stores saw it).
    for (const d of deltas) for (const w of d.store.openWarnings ?? []) warn(w);
    const fileBytes = await store.size();
    const header = parseHeader(await readFully(store, 0, Math.min(HEADER_BYTES, Math.max(fileBytes, 0))));
    // A read-only open takes a damaged image as QEMU reads it (an invalid data_off replaced by
    // the minimum, bad entries read where they point), says so, and refuses nothing a reader can
    // still show; a writer needs the image repaired first.
    const tolerant = !!options.lenient || !options.writable;
    const derived = deriveGeometry(header, fileBytes, tolerant);
    const core = await getCore();
    core.assertRoom(derived.batEndByte);
    const batBytes = await readFully(store, 0, derived.batEndByte);
    const geometry = alignSlotGrid(derived, batBytes.subarray(HEADER_BYTES));
    const fileSlots = Math.max(0, Math.ceil((fileBytes - geometry.firstSlotByte) / geometry.clusterBytes));
    // A read-only open allocates nothing, so its slot bitmap only has to cover the slots the BAT
    // (and a format extension) can name; sizing it from the file size would let a store that
    // lies about its size (an HTTP server claiming a terabyte) cost memory in proportion.
    const slotsNamed = options.writable ? fileSlots : Math.min(fileSlots, slotsNamedBy(batBytes, header, geometry));
    const bat = new BatMap(core, {
      batEntryCount: geometry.batEntryCount,
      clusterBytes: geometry.clusterBytes,
      mdPageCount: geometry.mdPageCount,
      firstSlotByte: geometry.firstSlotByte,
      // Up to one cluster per entry can be mapped or being allocated, and up to one more per
      // entry can be unmapped by a discard yet not reusable (its slot is freed only after the
      // next flush made the BAT change durable). So a full disk that discards and rewrites
      // clusters without a flush in between needs twice the entries, plus the file's own slots.
      slotCapacity: slotsNamed + 2 * geometry.batEntryCount + 2,
      topLevel: deltas.length - 1,
      unitBytesByLevel: [],
    });
    const lowerDeltas: LowerDelta[] = [];
    try {
      bat.pages().set(batBytes);
      bat.setUnitBytes(deltas.length - 1, geometry.unitBytes);
      const { problems, problemCount } = bat.loadTop(fileBytes);
      const damage: PloopError[] = [];
      if (!dataOffValid(header, fileBytes)) damage.push(dataOffError(header, fileBytes));
      if (problemCount > 0) damage.push(batProblemError(problems[0], problemCount, geometry, fileBytes));
      for (let level = deltas.length - 2; level >= 0; level--) {
        lowerDeltas.unshift(await PloopImage.#loadLower(bat, level, deltas[level], geometry, options, damage));
      }
      const extOffValid = PloopImage.#claimExtension(bat, header, geometry, fileBytes);
      if (!extOffValid) damage.push(extOffError(bat, header, geometry, fileBytes));
      const extProblem = extOffValid && header.extOff !== 0 ? await readExtensionProblem(store, header, geometry) : null;
      if (extProblem) damage.push(new PloopError('ECORRUPT', `${extProblem} (QEMU refuses to open such an image); run check --repair`, { field: 'ext_off', value: header.extOff }));
      const findings: OpenFindings = {
        batProblems: problems, batProblemCount: problemCount,
        dataOffValid: dataOffValid(header, fileBytes),
        extOffValid,
        extProblem,
        damage: damage.map((e) => e.message.replace(/; run check --repair$/, '')),
      };
      if (damage.length > 0 && !options.lenient) {
        if (options.writable) throw header.inUse === INUSE_MAGIC ? new PloopError(damage[0].code, `the image was not closed cleanly and is damaged: ${damage[0].message}`, damage[0].data) : damage[0];
        warn(`the image is damaged, reading it as QEMU does (writing needs check --repair first): ${findings.damage.join('; ')}`);
      }
      const unclean = header.inUse === INUSE_MAGIC || !inUseValid(header);
      const why = header.inUse === INUSE_MAGIC ? 'the image was not closed cleanly (in-use flag set)' : inUseMessage(header);
      if (unclean) {
        // A writer gets here only when the checks an open makes found nothing (every BAT entry,
        // data_off, ext_off): what a crash leaves besides is space past the last cluster, which
        // the clean close of this open trims, as check --repair would.
        warn(options.writable
          ? `${why}; its header and BAT check clean, so it is opened read-write and closed cleanly (space past the last cluster trimmed)`
          : `${why}; run \`ploop-wasm check\``);
      }
      const image = new PloopImage(store, lowerDeltas, header, geometry, bat, fileBytes, findings, options);
      if (unclean && options.writable && !options.lenient) await image.#markInUse();
      return image;
    } catch (e) {
      bat.dispose();
      throw e;
    }
  }

  /** Merge one lower delta into the map (levels are loaded newest first). */
  static async #loadLower(bat: BatMap, level: number, source: DeltaSource, top: Geometry, options: OpenOptions, damage: PloopError[]): Promise<LowerDelta> {
    const name = source.name ?? `level ${level}`;
    const fileBytes = await source.store.size();
    if (source.kind === 'raw') {
      bat.setUnitBytes(level, top.clusterBytes);
      bat.loadRaw(level, Math.ceil(fileBytes / top.clusterBytes));
      return { level, kind: 'raw', name, store: source.store, header: null, geometry: null };
    }
    let header: PloopHeader;
    let geometry: Geometry;
    try {
      header = parseHeader(await readFully(source.store, 0, Math.min(HEADER_BYTES, fileBytes)));
      geometry = deriveGeometry(header, fileBytes, !!options.lenient || !options.writable);
    } catch (e) {
      if (e instanceof PloopError) throw new PloopError(e.code, `delta ${name} (level ${level}): ${e.message}`, { ...e.data, level });
      throw e;
    }
    if (geometry.clusterBytes !== top.clusterBytes) {
      throw new PloopError('EFORMAT', `delta ${name} (level ${level}) has ${geometry.clusterBytes}-byte clusters, the top delta has ${top.clusterBytes}; all deltas of a stack must match`, { level });
    }
    if (geometry.batEntryCount > top.batEntryCount) {
      throw new PloopError('EFORMAT', `delta ${name} (level ${level}) has ${geometry.batEntryCount} BAT entries, more than the ${top.batEntryCount} of the delta above it`, { level });
    }
    bat.setUnitBytes(level, geometry.unitBytes);
    const batBytes = await readFully(source.store, HEADER_BYTES, 4 * geometry.batEntryCount);
    geometry = alignSlotGrid(geometry, batBytes);
    const { problems, problemCount } = bat.loadLower(level, batBytes, geometry.batEntryCount, fileBytes, geometry.firstSlotByte);
    if (!dataOffValid(header, fileBytes)) {
      const e = dataOffError(header, fileBytes);
      damage.push(new PloopError(e.code, `delta ${name} (level ${level}): ${e.message}`, { ...e.data, level }));
    }
    if (problemCount > 0) {
      const e = batProblemError(problems[0], problemCount, geometry, fileBytes);
      damage.push(new PloopError(e.code, `delta ${name} (level ${level}): ${e.message}`, { ...e.data, level }));
    }
    return { level, kind: 'ploop', name, store: source.store, header, geometry };
  }

  /** Keep a format extension cluster from being allocated over or trimmed away. */
  static #claimExtension(bat: BatMap, header: PloopHeader, g: Geometry, fileBytes: number): boolean {
    if (header.extOff === 0) return true;
    const offset = header.extOff * SECTOR_BYTES;
    const slot = bat.slotOf(offset);
    if (!Number.isInteger(slot) || slot < 0 || offset + g.clusterBytes > fileBytes || slot >= bat.slotCapacity) return false;
    return bat.claimSlot(slot);
  }

  /** Virtual disk size in bytes. */
  get size(): number {
    return this.geometry.virtualSize;
  }
  get clusterSize(): number {
    return this.geometry.clusterBytes;
  }
  /** A copy of the header as it is now. */
  get header(): PloopHeader {
    return { ...this.#header };
  }
  get stats(): ImageStats {
    const wb = this.#writeback.stats;
    return { ...this.#io.stats, ...this.#stats, batPageWrites: wb.batPageWrites, writebackCycles: wb.cycles, barriers: wb.barriers };
  }
  /** The BAT map (for check, info and tests). */
  get bat(): BatMap {
    return this.#bat;
  }

  /** Virtual clusters that hold data. */
  allocatedClusters(): number {
    return this.#bat.countTopMapped();
  }

  /** Extents of the virtual range: holes and mapped runs. */
  map(offset = 0, length = this.size - offset): Extent[] {
    this.#checkOpen();
    this.#checkRange('map', offset, length);
    return this.#bat.mapRange(offset, length);
  }

  /** Read `length` bytes at virtual `offset`. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    // Check before allocating: a negative, fractional or huge length is ERANGE, not a RangeError.
    this.#checkOpen();
    this.#checkRange('read', offset, length);
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  /** Read `into.length` bytes at virtual `offset` into `into`. Holes read as zeros without touching the store. */
  async readInto(offset: number, into: Uint8Array): Promise<void> {
    this.#checkOpen();
    this.#checkRange('read', offset, into.length);
    if (into.length === 0) return;
    await this.#io.read(offset, into);
  }

  /** Write `data` at virtual `offset`; resolves once the data and the BAT page mapping it are written. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkOpen();
    this.#checkWritable('write');
    this.#checkRange('write', offset, data.length);
    if (data.length === 0) return;
    // Tracked from the start: a flush issued meanwhile must wait for this write even while it
    // is still setting the in-use flag (once it is set, no promise hop for it).
    await this.#track(this.#inUseSet ? this.#io.write(offset, data) : this.#markInUse().then(() => this.#io.write(offset, data)));
  }

  /**
   * Read many requests with one call (batch.ts has the rules): every request is attempted; if
   * some fail the promise rejects with one PloopError naming how many and the first of them.
   */
  async readMany(requests: readonly ReadRequest[]): Promise<void> {
    this.#checkOpen();
    checkBatch('readMany', requests, this.size);
    if (requests.length === 0) return;
    await runBatchInThread('readMany', requests, (r) => this.#io.read(r.offset, r.into));
  }

  /**
   * Write many requests with one call; each completes like write() (data and BAT page written),
   * overlapping ones in request order (a later request wins). Failures as in readMany.
   */
  async writeMany(requests: readonly WriteRequest[]): Promise<void> {
    this.#checkOpen();
    this.#checkWritable('writeMany');
    checkBatch('writeMany', requests, this.size);
    if (requests.length === 0) return;
    await this.#track(this.#markInUse().then(() => runBatchInThread('writeMany', requests, (r) => this.#io.write(r.offset, r.data))));
  }

  /**
   * Discard [offset, offset + length): whole clusters are unmapped (their space is reused later),
   * partial clusters that hold data get zeros written. The range reads as zeros afterwards.
   */
  async discard(offset: number, length: number): Promise<void> {
    this.#checkOpen();
    this.#checkWritable('discard');
    this.#checkRange('discard', offset, length);
    if (length === 0) return;
    await this.#track(this.#markInUse().then(() => this.#io.discard(offset, length)));
  }

  /**
   * Set the in-use flag (durably) if this is the first change; write and discard do this
   * themselves, a runner pool calls it before handing a change to its runners.
   */
  ensureInUse(): Promise<void> {
    this.#checkOpen();
    this.#checkWritable('write');
    return this.#markInUse();
  }

  /** Wait for every request issued before, write pending BAT pages, and make it all durable. */
  async flush(): Promise<void> {
    this.#checkOpen();
    // Write pages back while the requests finish: they may be waiting for their BAT page.
    await this.#writeback.drain(Promise.allSettled([...this.#inflight]));
    if (this.#extending) await this.#extending;
    if (this.writable) await this.#flushStore(true);
  }

  /** Flush, trim unused clusters at the end of the file, clear the in-use flag, release memory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
      if (this.writable && this.#inUse) {
        await this.#inUse;
        try {
          await this.#trimTail();
          this.#header.inUse = this.#header.extOff !== 0 ? CLOSED_V21_MAGIC : 0;
          // Empty again if every cluster was discarded (the first allocation cleared it).
          if (this.#bat.countTopMapped() === 0) this.#header.flags |= CIF_EMPTY;
          else this.#header.flags &= ~CIF_EMPTY;
          await this.#writeHeader();
          await this.store.flush();
        } catch (e) {
          // The image stays marked in use (check --repair clears it); the error says which step failed.
          throw ioError('close (trimming the file, clearing the in-use flag, flush)', e);
        }
      }
    } finally {
      this.#closed = true;
      this.#bat.dispose();
      try {
        if (!this.#options.keepStoreOpen) {
          await this.store.close();
          for (const d of this.lowerDeltas) await d.store.close();
        }
      } finally {
        await this.#options.onClose?.();
      }
    }
  }

  async #barrier(): Promise<void> {
    await this.#flushStore();
  }

  /** `reportEarlier` (flush(), not the barrier): first report an extension's failed flush. */
  async #flushStore(reportEarlier = false): Promise<void> {
    const releasing = this.#releasedSlots.splice(0);
    try {
      // A flush that failed earlier may have lost writes that a later, successful flush no
      // longer reports (Linux reports a writeback error once): flush() reports it instead.
      const earlier = reportEarlier ? this.#flushError : null;
      if (earlier) {
        this.#flushError = null;
        throw earlier;
      }
      await this.store.flush();
    } catch (e) {
      this.#releasedSlots.push(...releasing);
      throw ioError(`flush of ${this.store.name}`, e);
    }
    for (const slot of releasing) this.#bat.freeSlot(slot);
  }

  #markInUse(): Promise<void> {
    this.#inUse ??= (async () => {
      this.#header.inUse = INUSE_MAGIC;
      // Cleared with the in-use flag, before any cluster can be allocated: a crash leaves the
      // flag set, and check --repair sets CIF_Empty again if no cluster was written.
      this.#header.flags &= ~CIF_EMPTY;
      try {
        await this.#writeHeader();
        await this.store.flush();
        this.#inUseSet = true;
      } catch (e) {
        // Forget the failed attempt: the next change tries again instead of failing for good.
        this.#inUse = null;
        throw ioError('setting the in-use flag (header write and flush)', e);
      }
    })();
    return this.#inUse;
  }

  async #writeHeader(): Promise<void> {
    const bytes = serializeHeader(this.#header);
    this.#bat.pages().set(bytes, 0);
    await this.store.write(0, bytes);
  }

  /**
   * Make the file durably cover `slot` (for an allocation that would otherwise need a flush
   * before its BAT write): joins the extension in progress, or starts one. False when the
   * extension failed (the allocation then takes the barrier instead).
   */
  async #preallocate(slot: number): Promise<boolean> {
    if (this.#preallocSlots === 0) return false;
    let started = 0;
    while (slot >= this.#bat.preallocEnd) {
      let extending = this.#extending;
      if (!extending) {
        if (started++ >= 2) return false;
        extending = this.#extend(slot);
      }
      if (!(await extending)) return slot < this.#bat.preallocEnd;
    }
    return true;
  }

  /**
   * Start the next extension early, when the allocator came within half a chunk of its end (the
   * first one is made by the first allocation: writes that allocate nothing never grow the file).
   */
  #preallocAhead(allocatedSlot: number): void {
    if (this.#preallocSlots === 0 || this.#extending || this.#closed || !this.#inUse) return;
    // (Not slotsEnd: an allocation that did not wait for the extension may lie past it.)
    const end = this.#bat.preallocEnd;
    if (allocatedSlot + this.#preallocSlots / 2 >= end) void this.#extend(end);
  }

  /**
   * One extension covering `slot` and a chunk past the allocator's end, made durable once;
   * concurrent allocations share it. It writes one zero byte at the new end (a write, unlike a
   * truncate, can never cut off another request's data past it), in the last slot of the chunk:
   * no slot there has been handed out yet, and an allocation handed it meanwhile waits for the
   * extension before writing (the range is published first, see BatMap.preallocFillStart), so
   * the zero can never land on its data. Nothing is held back from the allocator: an allocation
   * that skipped a held slot left a free slot inside the file (a 2 MiB write from a pipe did).
   */
  #extend(slot: number): Promise<boolean> {
    const bat = this.#bat;
    const target = Math.min(Math.max(slot, bat.preallocEnd, bat.slotsEnd) + this.#preallocSlots, bat.slotCapacity);
    if (target <= Math.max(slot, bat.slotsEnd)) return Promise.resolve(false);
    bat.setPreallocTarget(target, target - 1);
    let extending: Promise<boolean> | null = null;
    extending = (async () => {
      try {
        const at = bat.slotOffset(target) - 1;
        // A store that writes the new last byte durably has made the new size durable with it;
        // otherwise the flush does, writing back every dirty page of the file as well.
        if (this.store.writeDurably) {
          await this.store.writeDurably(at, new Uint8Array(1));
        } else {
          await this.store.write(at, new Uint8Array(1));
          try {
            await this.store.flush();
          } catch (e) {
            this.#flushError ??= e;
            throw e;
          }
        }
        this.#stats.preallocations++;
        this.#preallocDone(target);
        return true;
      } catch {
        // The allocations waiting for it take the barrier; a failed flush is reported by the next flush().
        bat.setPreallocTarget(bat.preallocEnd);
        return false;
      } finally {
        // Runs after the first await inside, so `extending` is assigned by then.
        if (this.#extending === extending) this.#extending = null;
      }
    })();
    this.#extending = extending;
    return extending;
  }

  #preallocDone(target: number): void {
    if (target > this.#bat.preallocEnd) this.#bat.setPreallocEnd(target);
  }

  /**
   * Where the file's used bytes end: header, BAT and every slot up to the last one in use. What
   * lies past it (the preallocated tail, clusters freed at the end) holds nothing the image needs;
   * close() trims it, and a copy of the open file should stop there (exportDelta).
   */
  usedEndBytes(): number {
    return Math.max(this.#bat.slotOffset(this.#bat.usedSlotsEnd()), this.#header.dataOff * SECTOR_BYTES, this.geometry.batEndByte);
  }

  async #trimTail(): Promise<void> {
    const end = this.usedEndBytes();
    if ((await this.store.size()) > end) await this.store.truncate(end);
    this.#bat.trimSlotsEnd();
  }

  /** Count a request served elsewhere (by a runner) as this image's: flush waits for it, writeback sees it coming. */
  trackRequest<T>(p: Promise<T>): Promise<T> {
    return this.#track(p);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => {
      this.#inflight.delete(p);
      this.#writeback.nudge();
    };
    p.then(done, done);
    return p;
  }

  #checkOpen(): void {
    if (this.#closed) throw new PloopError('ECLOSED', 'the image is closed');
  }
  #checkWritable(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `${operation}: the image was opened read-only`);
  }
  #checkRange(operation: string, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new PloopError('ERANGE', `${operation}: range ${offset}+${length} is outside the virtual disk (0..${this.size} bytes)`, { operation, offset, length, size: this.size });
    }
  }
}


/** Slots per preallocation: `bytes` rounded up to clusters, or the default (OpenOptions.preallocBytes). */
function preallocSlotsFor(bytes: number | undefined, g: Geometry, volatileStore: boolean): number {
  // A memory store would only hold the chunk in RAM for nothing: its barrier is free.
  if (bytes === undefined) bytes = volatileStore ? 0 : Math.max(g.clusterBytes, Math.min(128 << 20, Math.floor(g.virtualSize / 8)));
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new PloopError('EINVAL', `open: preallocBytes ${bytes} is not a whole number of bytes >= 0`, { field: 'preallocBytes', value: bytes });
  }
  return Math.ceil(bytes / g.clusterBytes);
}

/**
 * v1 BAT entries count sectors, so a v1 image's clusters may sit anywhere on the sector grid:
 * QEMU reads them where they are. When data_off does not say where the cluster grid starts (0,
 * or a value below the data), every cluster still shares one offset modulo the cluster size:
 * the slot grid starts there. `entries` are the BAT's u32 values.
 */
function alignSlotGrid(g: Geometry, entries: Uint8Array): Geometry {
  if (g.format !== 'v1') return g;
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  let residue = -1;
  for (let i = 0; i + 4 <= entries.byteLength && i < 4 * g.batEntryCount; i += 4) {
    const host = view.getUint32(i, true) * SECTOR_BYTES;
    if (host === 0 || host < g.firstSlotByte) continue;
    const r = (host - g.firstSlotByte) % g.clusterBytes;
    if (residue === -1) residue = r;
    else if (r !== residue) return g; // clusters off one grid: misaligned entries, for check to report
  }
  return residue > 0 ? { ...g, firstSlotByte: g.firstSlotByte + residue } : g;
}

/** The format extension's problem (extension.ts), for a cluster no bigger than ploop makes. */
async function readExtensionProblem(store: BlockStore, header: PloopHeader, g: Geometry): Promise<string | null> {
  if (g.clusterBytes > MAX_VERIFIED_EXTENSION_BYTES) return null;
  const offset = header.extOff * SECTOR_BYTES;
  return extensionProblem(await readFully(store, offset, g.clusterBytes), offset);
}

/** The ext_off refusal: a cluster outside the file, or one a BAT entry also maps. */
function extOffError(bat: BatMap, header: PloopHeader, g: Geometry, fileBytes: number): PloopError {
  // Inside the file and aligned, the cluster can only have been refused because an entry maps it.
  const offset = header.extOff * SECTOR_BYTES;
  const slot = bat.slotOf(offset);
  const inside = Number.isInteger(slot) && slot >= 0 && offset + g.clusterBytes <= fileBytes;
  const why = inside ? `names the cluster at byte ${offset}, which a BAT entry also maps` : `does not name a whole cluster inside the file (${fileBytes} bytes)`;
  return new PloopError('ECORRUPT', `invalid ploop header: ext_off ${header.extOff} sectors ${why}; run check --repair`, { field: 'ext_off', value: header.extOff });
}

function batProblemError(p: BatProblem, count: number, g: Geometry, fileBytes: number): PloopError {
  const what = {
    metadata: `points into the header/BAT area (data starts at byte ${g.firstSlotByte})`,
    // Name the limit too: the cluster must start within the file (QEMU reads zeros past its end).
    outside: `points past the end of the file (its cluster starts at byte ${p.hostOffset}, the file has ${fileBytes} bytes)`,
    misaligned: `is not a whole number of ${g.clusterBytes}-byte clusters from the data area at byte ${g.firstSlotByte}`,
    duplicate: 'points at a cluster another entry already uses',
  }[p.kind];
  const more = count > 1 ? ` (${count} bad entries in all)` : '';
  return new PloopError('ECORRUPT', `corrupt BAT: entry ${p.clusterIndex} (host byte ${p.hostOffset}) ${what}${more}; run check --repair`,
    { field: 'bat', clusterIndex: p.clusterIndex, hostOffset: p.hostOffset, kind: p.kind, count });
}

/** One past the highest slot that a BAT entry or the format extension names (0 when none). */
function slotsNamedBy(batBytes: Uint8Array, header: PloopHeader, g: Geometry): number {
  const entries = new DataView(batBytes.buffer, batBytes.byteOffset, batBytes.byteLength);
  let highestByte = header.extOff * SECTOR_BYTES;
  for (let i = 0; i < g.batEntryCount; i++) {
    const entry = entries.getUint32(HEADER_BYTES + 4 * i, true);
    if (entry !== 0) highestByte = Math.max(highestByte, entry * g.unitBytes);
  }
  return Math.max(0, Math.floor((highestByte - g.firstSlotByte) / g.clusterBytes) + 1);
}

// SPDX-License-Identifier: MIT
// A ploop image: one delta, or a stack of deltas (base … top) of which only the top is written.
// Open, read, write, discard, flush, close (one runner). Reads fall through the levels to the
// newest delta that maps a cluster; a write to a cluster a lower delta maps copies the whole
// cluster into the top first (copy-on-write); lower deltas are never written.
//
// Durability rule: an allocating write writes its data cluster, and the writeback cycle makes it
// durable (store flush) before it writes the BAT page that maps it, unless the slot is virgin
// (prealloc.ts) and the cluster read zeros before (cluster-io.ts). The request resolves after its
// BAT write either way; a BAT entry never maps bytes that were not the cluster's. The in-use flag
// is written (and flushed) before the first change reaches the image and cleared on a clean
// close, which also trims unused clusters at the end of the file. Opening: image-open.ts.

import {
  parseHeader, deriveGeometry, serializeHeader, HEADER_BYTES, INUSE_MAGIC, CLOSED_V21_MAGIC, SECTOR_BYTES, CIF_EMPTY,
  type Geometry, type PloopHeader,
} from '../format/header.js';
import type { BatMap, BatProblem, Extent } from '../core/bat-map.js';
import { getCore } from '../core/wasm.js';
import type { BlockStore } from '../stores/block-store.js';
import { checkStack, newBatMap, loadDeltas, announceDamage, alignSlotGrid } from './image-open.js';
import { Preallocator, preallocSlotsFor } from './prealloc.js';
import type { Image } from './image-interface.js';
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

export class PloopImage implements Image {
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
  /** Grows the file ahead of the allocator (preallocBytes). */
  readonly #prealloc: Preallocator;
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
    this.#prealloc = new Preallocator(bat, store, this.writable ? preallocSlotsFor(options.preallocBytes, geometry, store.volatile === true) : 0, {
      // The first extension is made by the first allocation: writes that allocate nothing never grow the file.
      mayGrowAhead: () => !this.#closed && !!this.#inUse,
      flushFailed: (e) => (this.#flushError ??= e),
      extended: () => this.#stats.preallocations++,
    });
    // Slots past the end of the file (and past every used slot) read as zeros until written.
    bat.setPristineFrom(Math.max(0, Math.ceil((fileBytes - geometry.firstSlotByte) / geometry.clusterBytes), bat.usedSlotsEnd()));
    this.#writeback = new Writeback(bat, {
      barrier: () => this.#barrier(),
      writeBat: (offset, bytes) => this.store.write(offset, bytes),
      released: (slot) => {
        this.#releasedSlots.push(slot);
        this.#stats.clustersReleased++;
      },
      allocated: (slot) => this.#prealloc.ahead(slot),
    }, {
      batEndByte: geometry.batEndByte, submitDelayMs: options.submitDelayMs,
      // Requests queued behind an allocation in their cluster are not writing data: a burst
      // does not wait for them (sequential writes at depth 32 would add a gather per cluster).
      requestsInFlight: () => this.#inflight.size - this.#io.lockWaiters,
    });
    this.#io = new ClusterIo({
      bat, stores: [...lowerDeltas.map((d) => d.store), store], size: geometry.virtualSize, topUnitBytes: geometry.unitBytes,
      attach: (a) => this.#writeback.register(a),
      preallocate: (slot) => this.#prealloc.cover(slot),
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
    checkStack(deltas, options);
    const store = deltas[deltas.length - 1].store;
    const warn = options.onWarning ?? ((m: string) => console.warn(`ploop-wasm: ${m}`));
    // A writer active while this opens read-only, a lock that could not be taken (the stores saw it).
    for (const d of deltas) for (const w of d.store.openWarnings ?? []) warn(w);
    const fileBytes = await store.size();
    const header = parseHeader(await readFully(store, 0, Math.min(HEADER_BYTES, Math.max(fileBytes, 0))));
    // A read-only open takes a damaged image as QEMU reads it (an invalid data_off replaced by
    // the minimum, bad entries read where they point), says so, and refuses nothing a reader can
    // still show; a writer needs the image repaired first.
    const derived = deriveGeometry(header, fileBytes, !!options.lenient || !options.writable);
    const core = await getCore();
    core.assertRoom(derived.batEndByte);
    const batBytes = await readFully(store, 0, derived.batEndByte);
    const geometry = alignSlotGrid(derived, batBytes.subarray(HEADER_BYTES));
    const bat = newBatMap(core, geometry, header, batBytes, fileBytes, deltas.length - 1, !!options.writable);
    try {
      const { lowerDeltas, findings, damage } = await loadDeltas(bat, deltas, header, geometry, fileBytes, options);
      const unclean = announceDamage(header, findings, damage, options, warn);
      const image = new PloopImage(store, lowerDeltas, header, geometry, bat, fileBytes, findings, options);
      if (unclean && options.writable && !options.lenient) await image.#markInUse();
      return image;
    } catch (e) {
      bat.dispose();
      throw e;
    }
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
    await this.#prealloc.settled();
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

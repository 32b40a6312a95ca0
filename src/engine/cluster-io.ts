// SPDX-License-Identifier: MIT
// The request work a runner does on one image: reads that fall through the levels, writes in
// place, allocating writes and copy-on-write, discards. Any thread can run it over the shared
// BAT map; the BAT changes go to the image's writeback coordinator through `attach`.
//
// An allocating write takes a free slot, writes the cluster (data first), and only then
// attaches the new entry to the md page's piwb; it completes when that BAT page is written.
// The attachment says whether the data must be made durable before that BAT write: not when
// the slot is virgin (never used, inside durable preallocation: it reads zeros) and the cluster
// read zeros before (a hole at every level), because then a crash that keeps the BAT page and
// loses the data leaves the cluster reading what it read before.

import { BatMap, LEVEL_NONE } from '../core/bat-map.js';
import type { BlockStore } from '../stores/block-store.js';
import { ClusterLocks } from './cluster-locks.js';
import { updateEntry, type Attachment } from './writeback.js';
import { isAllZero, writeZeros } from './zero.js';
import { ioError } from '../errors.js';

export interface ClusterIoStats {
  dataWrites: number;
  clustersAllocated: number;
  /** Clusters copied up from a lower delta (copy-on-write). */
  clustersCopied: number;
  /** Allocations into virgin slots over clusters that read zeros (no barrier before their BAT write). */
  virginAllocations: number;
}

export interface ClusterIoOptions {
  bat: BatMap;
  /** Store of each level; the top level's is the one written. */
  stores: BlockStore[];
  /** Virtual disk size in bytes. */
  size: number;
  /** Bytes per BAT unit of the top delta (512 for v1, the cluster size for v2). */
  topUnitBytes: number;
  /** Hand a BAT change to the writeback coordinator; resolves when its page is written. */
  attach: (a: Attachment) => Promise<void>;
  /**
   * The coordinator's preallocation: make the file durably cover `slot` (resolves true when it
   * does). Without it (a runner), a slot past the durable preallocation waits only for an
   * extension already in progress (BatMap.waitPrealloc).
   */
  preallocate?: (slot: number) => Promise<boolean>;
  /** A request started waiting for a cluster another request holds (see `lockWaiters`). */
  lockWaited?: () => void;
}

export class ClusterIo {
  readonly stats: ClusterIoStats = { dataWrites: 0, clustersAllocated: 0, clustersCopied: 0, virginAllocations: 0 };
  readonly #bat: BatMap;
  readonly #stores: BlockStore[];
  readonly #top: BlockStore;
  readonly #size: number;
  readonly #clusterBytes: number;
  readonly #topUnitBytes: number;
  readonly #attach: (a: Attachment) => Promise<void>;
  readonly #preallocate: ((slot: number) => Promise<boolean>) | undefined;
  readonly #locks: ClusterLocks;

  constructor(o: ClusterIoOptions) {
    this.#bat = o.bat;
    this.#stores = o.stores;
    this.#top = o.stores[o.bat.topLevel];
    this.#size = o.size;
    this.#clusterBytes = o.bat.clusterBytes;
    this.#topUnitBytes = o.topUnitBytes;
    this.#attach = o.attach;
    this.#preallocate = o.preallocate;
    this.#locks = new ClusterLocks(o.lockWaited);
  }

  /**
   * Requests waiting for a cluster another request is allocating: they attach nothing to a
   * BAT page until it is done, so the writeback must not wait for them to gather a burst.
   */
  get lockWaiters(): number {
    return this.#locks.waiters;
  }

  /** Read into `into` from virtual `offset`; holes read as zeros without touching a store. */
  read(offset: number, into: Uint8Array): Promise<void> {
    // The hot path: extents straight from the WebAssembly scratch (no Extent objects, no
    // task array for the usual request that one extent serves).
    const bat = this.#bat;
    const end = offset + into.length;
    let single: Promise<void> | null = null;
    let tasks: Promise<void>[] | null = null;
    for (let pos = offset; pos < end;) {
      let n: number;
      try {
        n = bat.mapChunk(pos, end - pos);
      } catch (e) {
        return Promise.reject(e);
      }
      for (let i = 0; i < n; i++) {
        // Fields first: the store call below may run other code before it returns.
        const at = bat.extentOffset(i) - offset;
        const length = bat.extentLength(i);
        const level = bat.extentLevel(i);
        const part = into.subarray(at, at + length);
        pos = offset + at + length;
        if (level === LEVEL_NONE) {
          part.fill(0);
          continue;
        }
        const task = this.#readPart(level, bat.extentHost(i), part);
        if (!single) single = task;
        else (tasks ??= [single]).push(task);
      }
    }
    if (tasks) return settleAll(tasks);
    return single ?? Promise.resolve();
  }

  async #readPart(level: number, hostOffset: number, part: Uint8Array): Promise<void> {
    const n = await this.#readStore(level, hostOffset, part, 'data read');
    if (n < part.length) part.fill(0, n);
  }

  /** A store read whose failure, like a write's, is a PloopError saying which read failed. */
  #readStore(level: number, hostOffset: number, into: Uint8Array, what: string): Promise<number> {
    return this.#stores[level].read(hostOffset, into).catch((e: unknown) => {
      throw ioError(`${what} of ${into.length} bytes at host byte ${hostOffset} (level ${level})`, e);
    });
  }

  /** Write `data` at virtual `offset`; resolves once the data and any BAT page mapping it are written. */
  write(offset: number, data: Uint8Array): Promise<void> {
    // The usual request: one extent the top maps, written in place — straight from the WASM
    // scratch, no Extent objects, no task array, no extra await.
    let n: number;
    try {
      n = this.#bat.mapChunk(offset, data.length);
    } catch (e) {
      return Promise.reject(e);
    }
    if (n === 1 && this.#bat.extentLevel(0) === this.#bat.topLevel && this.#bat.extentLength(0) === data.length) {
      return this.#writeData(this.#bat.extentHost(0), data);
    }
    return this.#writeExtents(offset, data);
  }

  async #writeExtents(offset: number, data: Uint8Array): Promise<void> {
    const tasks: Promise<void>[] = [];
    const clusterBytes = this.#clusterBytes;
    for (const e of this.#bat.mapRange(offset, data.length)) {
      const part = data.subarray(e.offset - offset, e.offset - offset + e.length);
      if (e.level === this.#bat.topLevel) {
        tasks.push(this.#writeData(e.hostOffset, part));
        continue;
      }
      // A hole or a lower delta's cluster: allocate cluster by cluster (copy-on-write for lower
      // ones); zeros over a hole need no cluster at all.
      for (let pos = 0; pos < part.length;) {
        const virt = e.offset + pos;
        const clusterIndex = Math.floor(virt / clusterBytes);
        const inCluster = virt - clusterIndex * clusterBytes;
        const n = Math.min(clusterBytes - inCluster, part.length - pos);
        const bytes = part.subarray(pos, pos + n);
        if (e.level !== LEVEL_NONE || !isAllZero(bytes)) tasks.push(this.#allocatingWrite(clusterIndex, inCluster, bytes));
        pos += n;
      }
    }
    await settleAll(tasks);
  }

  /**
   * Discard [offset, offset + length): whole clusters only the top maps are unmapped (their
   * slot is reused later); other mapped parts get zeros (copied up from a lower delta if need
   * be), so unmapping never exposes a lower delta's old data. Afterwards the range reads zeros.
   */
  async discard(offset: number, length: number): Promise<void> {
    const clusterBytes = this.#clusterBytes;
    const tasks: Promise<void>[] = [];
    const top = this.#bat.topLevel;
    for (const e of this.#bat.mapRange(offset, length)) {
      if (e.level === LEVEL_NONE) continue;
      for (let pos = e.offset; pos < e.offset + e.length;) {
        const clusterIndex = Math.floor(pos / clusterBytes);
        const clusterStart = clusterIndex * clusterBytes;
        const clusterEnd = Math.min(clusterStart + clusterBytes, this.#size);
        const end = Math.min(clusterEnd, e.offset + e.length);
        const whole = pos === clusterStart && end === clusterEnd;
        if (whole && e.level === top && this.#bat.lowerLevelOf(clusterIndex) === LEVEL_NONE) {
          tasks.push(this.#discardCluster(clusterIndex));
        } else if (e.level === top) {
          tasks.push(this.#writeData(e.hostOffset + (pos - e.offset), new Uint8Array(end - pos)));
        } else {
          tasks.push(this.#allocatingWrite(clusterIndex, pos - clusterStart, new Uint8Array(end - pos)));
        }
        pos = end;
      }
    }
    await settleAll(tasks);
  }

  async #allocatingWrite(clusterIndex: number, inCluster: number, bytes: Uint8Array): Promise<void> {
    const release = await this.#locks.acquire(clusterIndex);
    // Someone may have allocated it while we waited for the lock. Then it is an in-place write,
    // which needs no lock (write() does those without one): release it before writing, so that
    // the requests queued behind an allocation write their data in parallel, not one by one.
    let inPlaceHost: number;
    try {
      inPlaceHost = this.#bat.levelOf(clusterIndex) === this.#bat.topLevel ? this.#bat.lookup(clusterIndex) : -1;
    } catch (e) {
      release();
      throw e;
    }
    if (inPlaceHost >= 0) {
      release();
      return this.#writeData(inPlaceHost + inCluster, bytes);
    }
    try {
      const level = this.#bat.levelOf(clusterIndex);
      // Copy-on-write: the whole cluster from the lower delta that maps it, then our bytes on top.
      let payload = bytes;
      let payloadOffset = inCluster;
      if (level !== LEVEL_NONE) {
        payload = new Uint8Array(this.#clusterBytes);
        const n = await this.#readStore(level, this.#bat.lookup(clusterIndex), payload, 'copy-on-write read');
        payload.fill(0, n);
        payload.set(bytes, inCluster);
        payloadOffset = 0;
        this.stats.clustersCopied++;
      }
      const bat = this.#bat;
      const slot = bat.allocSlot();
      this.stats.clustersAllocated++;
      let attached: { completion: Promise<void> };
      try {
        // Never handed out since open and past the data the file had then (a freed slot that
        // comes back is not: it may hold a discarded cluster's bytes).
        const pristine = bat.takePristine(slot);
        // Whether the file's size covers the slot durably (a pristine one then reads zeros
        // after any crash).
        let durable: boolean;
        if (slot < bat.preallocEnd) {
          durable = true;
        } else {
          const target = bat.preallocTarget;
          const fillStart = bat.preallocFillStart;
          if (slot >= fillStart && slot < target) {
            // The extension in progress writes its zero byte into this slot: wait until it is
            // done, whatever goes there (copy-on-write too), or the zero could land on our data.
            durable = await bat.waitPrealloc(slot);
          } else {
            // A fresh cluster waits for the file's size to cover it durably (an extension).
            durable = pristine && level === LEVEL_NONE && await this.#waitPrealloc(slot);
          }
        }
        // Virgin: pristine and inside the durable file (it reads zeros after any crash). Only
        // over a cluster that read zeros: a copy-on-write cluster read a lower delta's bytes,
        // which zeros are not.
        const virgin = pristine && durable && level === LEVEL_NONE;
        if (virgin) this.stats.virginAllocations++;
        await this.#writeNewCluster(slot, payloadOffset, payload, pristine, pristine && durable);
        attached = await updateEntry(bat, clusterIndex, { value: bat.slotValue(slot, this.#topUnitBytes), allocatedSlot: slot, needsBarrier: !virgin }, this.#attach);
      } catch (e) {
        bat.freeSlot(slot); // nothing maps it: give it back at once
        throw e;
      }
      // A failed BAT write frees the slot in the writeback's completion.
      await attached.completion;
    } finally {
      release();
    }
  }

  #waitPrealloc(slot: number): Promise<boolean> {
    return this.#preallocate ? this.#preallocate(slot) : this.#bat.waitPrealloc(slot);
  }

  /**
   * Write a fresh slot: the payload, and what else the slot needs so that the cluster reads the
   * payload and zeros. A sparse store (a file) gets zeros written around the payload whatever the
   * slot held, so that no hole is left in it: the ploop tools refuse images with holes, and one
   * write of the cluster's zeros measured cheaper than zero-filling preallocated chunks ahead of
   * the allocator (docs/performance.md). Elsewhere a slot that reads zeros already (pristine,
   * inside the file) needs the payload only, and a pristine slot past the end of the file a
   * write of its last byte (a truncate could race with other runners' writes and cut them off);
   * any other slot may hold old bytes, which zeros replace.
   */
  async #writeNewCluster(slot: number, inCluster: number, bytes: Uint8Array, pristine: boolean, readsZeros: boolean): Promise<void> {
    const at = this.#bat.slotOffset(slot);
    const clusterBytes = this.#clusterBytes;
    const end = inCluster + bytes.length;
    const sparse = this.#top.sparse === true;
    if ((inCluster === 0 && end === clusterBytes) || (readsZeros && !sparse)) return this.#writeData(at + inCluster, bytes);
    const tasks = [this.#writeData(at + inCluster, bytes)];
    if (pristine && !sparse) {
      if (end < clusterBytes) tasks.push(this.#writeData(at + clusterBytes - 1, new Uint8Array(1)));
    } else {
      if (inCluster > 0) tasks.push(this.#writeZeros(at, inCluster));
      if (end < clusterBytes) tasks.push(this.#writeZeros(at + end, clusterBytes - end));
    }
    return settleAll(tasks);
  }

  #writeZeros(hostOffset: number, length: number): Promise<void> {
    this.stats.dataWrites++;
    return writeZeros(this.#top, hostOffset, length).catch((e: unknown) => {
      throw ioError(`zero write of ${length} bytes at host byte ${hostOffset}`, e);
    });
  }

  async #discardCluster(clusterIndex: number): Promise<void> {
    const release = await this.#locks.acquire(clusterIndex);
    try {
      if (this.#bat.levelOf(clusterIndex) !== this.#bat.topLevel) return;
      const slot = this.#bat.slotOf(this.#bat.lookup(clusterIndex));
      // Unmapping needs no data barrier: it maps no data, and the slot it frees is reused only
      // after a flush made this BAT change durable (the image's released list).
      const { completion } = await updateEntry(this.#bat, clusterIndex, { value: 0, releasedSlot: Number.isInteger(slot) ? slot : -1, needsBarrier: false }, this.#attach);
      await completion;
    } finally {
      release();
    }
  }

  #writeData(hostOffset: number, bytes: Uint8Array): Promise<void> {
    this.stats.dataWrites++;
    // A store outside this library may fail with any error: the request's error must still
    // be a PloopError that says which write failed (like the BAT write's does).
    return this.#top.write(hostOffset, bytes).catch((e: unknown) => {
      throw ioError(`data write of ${bytes.length} bytes at host byte ${hostOffset}`, e);
    });
  }
}

/** Wait for all tasks; throw the first failure after every task has settled. */
export async function settleAll(tasks: Promise<unknown>[]): Promise<void> {
  if (tasks.length === 1) {
    await tasks[0];
    return;
  }
  const results = await Promise.allSettled(tasks);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

// SPDX-License-Identifier: MIT
// The request work a runner does on one image: reads that fall through the levels, writes in
// place, allocating writes and copy-on-write, discards. Any thread can run it over the shared
// BAT map; the BAT changes go to the image's writeback coordinator through `attach`.
//
// An allocating write takes a free slot, writes the cluster (data first), and only then
// attaches the new entry to the md page's piwb; it completes when that BAT page is written.

import { BatMap, LEVEL_NONE } from '../core/bat-map.js';
import type { BlockStore } from '../stores/block-store.js';
import { ClusterLocks } from './cluster-locks.js';
import { updateEntry, type Attachment } from './writeback.js';
import { isAllZero } from './zero.js';
import { ioError } from '../errors.js';

export interface ClusterIoStats {
  dataWrites: number;
  clustersAllocated: number;
  /** Clusters copied up from a lower delta (copy-on-write). */
  clustersCopied: number;
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
}

export class ClusterIo {
  readonly stats: ClusterIoStats = { dataWrites: 0, clustersAllocated: 0, clustersCopied: 0 };
  readonly #bat: BatMap;
  readonly #stores: BlockStore[];
  readonly #top: BlockStore;
  readonly #size: number;
  readonly #clusterBytes: number;
  readonly #topUnitBytes: number;
  readonly #attach: (a: Attachment) => Promise<void>;
  readonly #locks = new ClusterLocks();

  constructor(o: ClusterIoOptions) {
    this.#bat = o.bat;
    this.#stores = o.stores;
    this.#top = o.stores[o.bat.topLevel];
    this.#size = o.size;
    this.#clusterBytes = o.bat.clusterBytes;
    this.#topUnitBytes = o.topUnitBytes;
    this.#attach = o.attach;
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
  async write(offset: number, data: Uint8Array): Promise<void> {
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
      const slot = this.#bat.allocSlot();
      this.stats.clustersAllocated++;
      let attached: { completion: Promise<void> };
      try {
        await this.#writeNewCluster(slot, payloadOffset, payload);
        attached = await updateEntry(this.#bat, clusterIndex, { value: this.#bat.slotValue(slot, this.#topUnitBytes), allocatedSlot: slot }, this.#attach);
      } catch (e) {
        this.#bat.freeSlot(slot); // nothing maps it: give it back at once
        throw e;
      }
      // A failed BAT write frees the slot in the writeback's completion.
      await attached.completion;
    } finally {
      release();
    }
  }

  /** Write a fresh slot: the payload, and zeros around it unless the slot is past every byte ever written. */
  async #writeNewCluster(slot: number, inCluster: number, bytes: Uint8Array): Promise<void> {
    const at = this.#bat.slotOffset(slot);
    const clusterBytes = this.#clusterBytes;
    if (this.#bat.takePristine(slot)) {
      // The file reads zeros there; it only has to reach the cluster's end. A write of its last
      // byte extends it (a truncate could race with other runners' writes and cut them off).
      const tasks = [this.#writeData(at + inCluster, bytes)];
      if (inCluster + bytes.length < clusterBytes) tasks.push(this.#writeData(at + clusterBytes - 1, new Uint8Array(1)));
      return settleAll(tasks);
    }
    if (inCluster === 0 && bytes.length === clusterBytes) return this.#writeData(at, bytes);
    const whole = new Uint8Array(clusterBytes);
    whole.set(bytes, inCluster);
    return this.#writeData(at, whole);
  }

  async #discardCluster(clusterIndex: number): Promise<void> {
    const release = await this.#locks.acquire(clusterIndex);
    try {
      if (this.#bat.levelOf(clusterIndex) !== this.#bat.topLevel) return;
      const slot = this.#bat.slotOf(this.#bat.lookup(clusterIndex));
      const { completion } = await updateEntry(this.#bat, clusterIndex, { value: 0, releasedSlot: Number.isInteger(slot) ? slot : -1 }, this.#attach);
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

// SPDX-License-Identifier: MIT
// Preallocation: the file is extended ahead of the allocator by a chunk (OpenOptions.preallocBytes)
// and that extension is made durable once (the store's writeDurably, else a flush), so the slots
// in it are virgin: they read zeros after any crash, and an allocating write into one needs no
// flush before its BAT write (docs/engine.md, 'Virgin slots and preallocation').

import type { BatMap } from '../core/bat-map.js';
import type { Geometry } from '../format/header.js';
import type { BlockStore } from '../stores/block-store.js';
import { PloopError } from '../errors.js';

/** What the image tells its preallocator and is told back. */
export interface PreallocHooks {
  /** Whether an extension may start early (the image is open and in use). */
  mayGrowAhead(): boolean;
  /** An extension's flush failed: the image's next flush() reports it (Linux reports a writeback error once). */
  flushFailed(e: unknown): void;
  /** An extension is durable (for ImageStats.preallocations). */
  extended(): void;
}

/** Slots per preallocation: `bytes` rounded up to clusters, or the default (OpenOptions.preallocBytes). */
export function preallocSlotsFor(bytes: number | undefined, g: Geometry, volatileStore: boolean): number {
  // A memory store would only hold the chunk in RAM for nothing: its barrier is free.
  if (bytes === undefined) bytes = volatileStore ? 0 : Math.max(g.clusterBytes, Math.min(128 << 20, Math.floor(g.virtualSize / 8)));
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new PloopError('EINVAL', `open: preallocBytes ${bytes} is not a whole number of bytes >= 0`, { field: 'preallocBytes', value: bytes });
  }
  return Math.ceil(bytes / g.clusterBytes);
}

export class Preallocator {
  readonly #bat: BatMap;
  readonly #store: BlockStore;
  /** Slots one preallocation adds (0 = off). */
  readonly #slots: number;
  readonly #hooks: PreallocHooks;
  /** The extension in progress. */
  #extending: Promise<boolean> | null = null;

  constructor(bat: BatMap, store: BlockStore, slots: number, hooks: PreallocHooks) {
    this.#bat = bat;
    this.#store = store;
    this.#slots = slots;
    this.#hooks = hooks;
  }

  /** Wait for the extension in progress, if any (flush does, so it reports a failed one). */
  async settled(): Promise<void> {
    if (this.#extending) await this.#extending;
  }

  /**
   * Make the file durably cover `slot` (for an allocation that would otherwise need a flush
   * before its BAT write): joins the extension in progress, or starts one. False when the
   * extension failed (the allocation then takes the barrier instead).
   */
  async cover(slot: number): Promise<boolean> {
    if (this.#slots === 0) return false;
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

  /** Start the next extension early, when the allocator came within half a chunk of its end. */
  ahead(allocatedSlot: number): void {
    if (this.#slots === 0 || this.#extending || !this.#hooks.mayGrowAhead()) return;
    // (Not slotsEnd: an allocation that did not wait for the extension may lie past it.)
    const end = this.#bat.preallocEnd;
    if (allocatedSlot + this.#slots / 2 >= end) void this.#extend(end);
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
    const target = Math.min(Math.max(slot, bat.preallocEnd, bat.slotsEnd) + this.#slots, bat.slotCapacity);
    if (target <= Math.max(slot, bat.slotsEnd)) return Promise.resolve(false);
    bat.setPreallocTarget(target, target - 1);
    let extending: Promise<boolean> | null = null;
    extending = (async () => {
      try {
        await this.#growTo(bat.slotOffset(target) - 1);
        this.#hooks.extended();
        if (target > bat.preallocEnd) bat.setPreallocEnd(target);
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

  /**
   * Write the byte at `at` durably: a store that writes the new last byte durably has made the
   * new size durable with it; otherwise the flush does, writing back every dirty page as well.
   */
  async #growTo(at: number): Promise<void> {
    if (this.#store.writeDurably) {
      await this.#store.writeDurably(at, new Uint8Array(1));
      return;
    }
    await this.#store.write(at, new Uint8Array(1));
    try {
      await this.#store.flush();
    } catch (e) {
      this.#hooks.flushFailed(e);
      throw e;
    }
  }
}

// SPDX-License-Identifier: MIT
// A volume (a partition, or the whole disk) as the filesystem readers see it, and a small LRU
// cache of metadata blocks: directory walks read the same inode-table and FAT blocks again and
// again, and over HTTP each miss is a round trip. File data is read around the cache.

import { PloopError } from '../errors.js';
import type { VolumeReader } from './types.js';

/** What a volume is read from: any Image (PloopImage, ParallelImage: engine/image-interface.ts) or a raw store (diskOfStore in open.ts). */
export interface DiskReader {
  /** Virtual disk size in bytes. */
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** The bytes [startBytes, startBytes + sizeBytes) of `disk` as a volume. */
export function volumeOf(disk: DiskReader, startBytes: number, sizeBytes: number): VolumeReader {
  const end = Math.min(sizeBytes, Math.max(0, disk.size - startBytes));
  return {
    sizeBytes: end,
    read(offset, length, what = 'filesystem data') {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > end) {
        return Promise.reject(new PloopError('ECORRUPT', `${what}: bytes ${offset}..${offset + length} lie outside the volume (${end} bytes)`, { offset, length, volumeBytes: end }));
      }
      return length === 0 ? Promise.resolve(new Uint8Array(0)) : disk.read(startBytes + offset, length);
    },
  };
}

/**
 * Fixed-size blocks of a volume, the most recently used kept up to `capacityBytes`. Concurrent
 * reads of one block share one fetch. Callers must not modify the returned bytes.
 */
export class BlockCache {
  readonly #volume: VolumeReader;
  readonly #blockBytes: number;
  readonly #capacity: number;
  /** Insertion order is recency: a hit moves its block to the end. */
  readonly #blocks = new Map<number, Uint8Array>();
  readonly #inflight = new Map<number, Promise<Uint8Array>>();
  #hits = 0;
  #misses = 0;

  constructor(volume: VolumeReader, blockBytes: number, capacityBytes = 8 << 20) {
    this.#volume = volume;
    this.#blockBytes = blockBytes;
    this.#capacity = Math.max(1, Math.floor(capacityBytes / blockBytes));
  }

  get stats(): { hits: number; misses: number; cachedBlocks: number } {
    return { hits: this.#hits, misses: this.#misses, cachedBlocks: this.#blocks.size };
  }

  /** Block `block` (`what` names it in errors: "inode table of group 3"). */
  get(block: number, what?: string): Promise<Uint8Array> {
    const cached = this.#blocks.get(block);
    if (cached) {
      this.#hits++;
      this.#blocks.delete(block);
      this.#blocks.set(block, cached);
      return Promise.resolve(cached);
    }
    const pending = this.#inflight.get(block);
    if (pending) return pending;
    this.#misses++;
    const fetch = this.#volume.read(block * this.#blockBytes, this.#blockBytes, what ?? `block ${block}`).then(
      (bytes) => {
        this.#inflight.delete(block);
        this.#blocks.set(block, bytes);
        if (this.#blocks.size > this.#capacity) this.#blocks.delete(this.#blocks.keys().next().value as number);
        return bytes;
      },
      (e: unknown) => {
        this.#inflight.delete(block);
        throw e;
      },
    );
    this.#inflight.set(block, fetch);
    return fetch;
  }
}

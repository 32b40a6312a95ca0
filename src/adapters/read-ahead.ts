// SPDX-License-Identifier: MIT
// Read-ahead for an emulator disk. A BIOS or bootloader loads a kernel with one small read after
// the other, and the guest's CPU waits for each: over an HTTP base (or even a Blob) every read
// pays a round trip that an in-memory raw disk does not. When reads run sequentially, the next
// `aheadBytes` are fetched in chunks while the guest works on the current ones, and a read the
// chunks cover is answered synchronously, as from a disk in memory.
//
// Consistency: chunks are read through PendingWrites (writes not yet in the device laid over);
// a write issued later patches the chunks it touches, and a chunk in flight when a write touches
// it is dropped when it lands (it may predate the write).

import type { BlockDevice } from './block-device.js';
import type { PendingWrites } from './pending-writes.js';

interface Chunk {
  offset: number;
  bytes: Uint8Array | null;
  /** Resolves with the bytes, or null when the chunk was dropped or its read failed. */
  ready: Promise<Uint8Array | null>;
  stale: boolean;
}

export interface ReadAheadOptions {
  /** How far ahead of a sequential read to fetch (default 1 MiB; 0 turns read-ahead off). */
  aheadBytes?: number;
  /** Size of one fetch (default 256 KiB). */
  chunkBytes?: number;
}

export class ReadAhead {
  readonly aheadBytes: number;
  readonly chunkBytes: number;
  readonly #device: BlockDevice;
  readonly #writes: PendingWrites;
  /** By offset (a multiple of chunkBytes). */
  readonly #chunks = new Map<number, Chunk>();
  #lastEnd = -1;
  /** Counters for tests and figures. */
  readonly counters = { hits: 0, chunksFetched: 0, chunksDropped: 0 };

  constructor(device: BlockDevice, writes: PendingWrites, options: ReadAheadOptions = {}) {
    this.#device = device;
    this.#writes = writes;
    this.aheadBytes = options.aheadBytes ?? 1 << 20;
    this.chunkBytes = options.chunkBytes ?? 256 << 10;
  }

  /** The bytes of [offset, offset + length) if fetched chunks hold all of them, else null. */
  take(offset: number, length: number): Uint8Array | null {
    const parts = this.#cover(offset, length);
    if (!parts || parts.some((c) => c.bytes === null)) return null;
    this.counters.hits++;
    return this.#assemble(parts, offset, length);
  }

  /** Like take, waiting for chunks in flight; null if some are not even asked for (or dropped). */
  async wait(offset: number, length: number): Promise<Uint8Array | null> {
    const parts = this.#cover(offset, length);
    if (!parts) return null;
    for (const c of parts) if ((await c.ready) === null) return null;
    return this.take(offset, length);
  }

  /** After a read: when it continued the previous one, make sure the next aheadBytes are coming. */
  after(offset: number, length: number): void {
    const end = offset + length;
    const sequential = offset === this.#lastEnd;
    this.#lastEnd = end;
    if (this.aheadBytes <= 0 || !sequential) return;
    // Chunks wholly behind the read are done with.
    for (const [at, c] of this.#chunks) {
      if (at + this.chunkBytes > offset) continue;
      this.#chunks.delete(at);
      c.stale = true;
    }
    const first = Math.floor(end / this.chunkBytes) * this.chunkBytes;
    const last = Math.min(end + this.aheadBytes, this.#device.sizeBytes);
    for (let at = first; at < last; at += this.chunkBytes) if (!this.#chunks.has(at)) this.#fetch(at);
  }

  /** A write was issued (and copied into PendingWrites): keep the chunks equal to the disk. */
  wrote(offset: number, data: Uint8Array): void {
    for (const c of this.#chunks.values()) {
      const len = c.bytes?.length ?? this.chunkBytes;
      if (c.offset >= offset + data.length || c.offset + len <= offset) continue;
      if (c.bytes) patch(c.bytes, c.offset, offset, data);
      else c.stale = true;
    }
  }

  #fetch(at: number): void {
    const length = Math.min(this.chunkBytes, this.#device.sizeBytes - at);
    const chunk: Chunk = { offset: at, bytes: null, ready: Promise.resolve(null), stale: false };
    chunk.ready = this.#writes.read(at, length).then((bytes) => {
      if (chunk.stale) {
        this.counters.chunksDropped++;
        if (this.#chunks.get(at) === chunk) this.#chunks.delete(at);
        return null;
      }
      chunk.bytes = bytes;
      return bytes;
    }, () => {
      // A failed read-ahead is no error: the guest's own read will ask (and report) again.
      if (this.#chunks.get(at) === chunk) this.#chunks.delete(at);
      return null;
    });
    this.counters.chunksFetched++;
    this.#chunks.set(at, chunk);
    // Bounded: runs of sequential reads elsewhere leave chunks nobody reads; the oldest go first.
    const limit = Math.ceil(this.aheadBytes / this.chunkBytes) + 2;
    for (const [old, c] of this.#chunks) {
      if (this.#chunks.size <= limit) break;
      this.#chunks.delete(old);
      c.stale = true;
    }
  }

  /** The chunks that hold [offset, offset + length), or null if one is missing. */
  #cover(offset: number, length: number): Chunk[] | null {
    if (this.#chunks.size === 0 || length === 0) return null;
    const parts: Chunk[] = [];
    for (let at = Math.floor(offset / this.chunkBytes) * this.chunkBytes; at < offset + length; at += this.chunkBytes) {
      const c = this.#chunks.get(at);
      if (!c || c.stale) return null;
      parts.push(c);
    }
    return parts;
  }

  #assemble(parts: Chunk[], offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (const c of parts) patch(out, offset, c.offset, c.bytes!);
    return out;
  }
}

/** Copy the part of `data` (at `dataOffset`) that overlaps `target` (at `targetOffset`) into it. */
export function patch(target: Uint8Array, targetOffset: number, dataOffset: number, data: Uint8Array): void {
  const from = Math.max(targetOffset, dataOffset);
  const to = Math.min(targetOffset + target.length, dataOffset + data.length);
  if (from < to) target.set(data.subarray(from - dataOffset, to - dataOffset), from - targetOffset);
}

// SPDX-License-Identifier: MIT
// The one small interface every storage backend implements. Offsets and lengths are bytes.

import type { StoreSpec } from '../runners/protocol.js';

export interface BlockStore {
  /** Backend name, e.g. 'memory' or 'node-fs'. */
  readonly name: string;
  /** False when the store refuses write/truncate. */
  readonly writable: boolean;
  /**
   * True when nothing the store holds outlives the process (memory stores): flush() has nothing
   * to make durable, so the engine skips work that only pays off against a power cut
   * (preallocation ahead of the allocator).
   */
  readonly volatile?: boolean;
  /**
   * What opening the store found out about other users of its file, for the image to pass on
   * (PloopImage's onWarning): a writer active while this store reads, a writer lock that could
   * not be taken.
   */
  readonly openWarnings?: readonly string[];
  /**
   * True when ranges never written stay holes that no disk block backs (a file on a Linux file
   * system: NodeFileStore). They read as zeros, so QEMU does not mind, but the ploop tools refuse
   * an image with a hole anywhere in its header, BAT or clusters ("image is sparse"): the engine
   * then writes real zeros over every byte it would otherwise leave unwritten. Stores that hold
   * no holes, or whose contents leave them only as copies (memory, OPFS, IndexedDB), omit it and
   * skip that work.
   */
  readonly sparse?: boolean;
  /** Current size in bytes. */
  size(): Promise<number>;
  /** Read up to `into.length` bytes at `offset`; returns the bytes read (short at the end). */
  read(offset: number, into: Uint8Array): Promise<number>;
  /** Write all of `data` at `offset`; writing past the end grows the store (the gap reads as zeros). */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Resolves once every write that completed before the call is durable. */
  flush(): Promise<void>;
  /**
   * Optional: write `data` at `offset` and make those bytes, and the store's size, durable
   * without making the store's other writes durable (a file opened with O_DSYNC). The engine
   * grows a file ahead of its allocator with it; without it, a write and a flush() do the job,
   * and the flush also writes back every dirty page of the file.
   */
  writeDurably?(offset: number, data: Uint8Array): Promise<void>;
  /**
   * Optional: write zeros over [offset, offset + length), like write() of that many zero bytes
   * but without the caller making them (the engine backs a sparse store's clusters with it).
   */
  writeZeros?(offset: number, length: number): Promise<void>;
  /**
   * Optional, with `sparse`: the bytes of disk space that back the store (st_blocks × 512 for a
   * file), to tell whether it has holes at all: fewer than its size, rounded up to `blockBytes`,
   * means some range is not backed. (More does not quite prove the opposite: a file system may
   * count its own metadata blocks in, so a few KiB of holes can hide behind them.)
   */
  backing?(): Promise<{ allocatedBytes: number; blockBytes: number }>;
  /**
   * Optional: how a runner in another thread opens this same store, with its options (a
   * structured-clonable StoreSpec; runners/store-spec.ts opens it). Absent or null: only this
   * thread can (a private memory buffer, an IndexedDB image whose dirty chunks this instance
   * buffers), and a runner pool serves the store here.
   */
  spec?(): StoreSpec | null;
  /** Grow (with zeros) or shrink the store to exactly `size` bytes. */
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

/** Read exactly `length` bytes (zeros past the end of the store). */
export async function readFully(store: BlockStore, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await store.read(offset, out);
  return out;
}

/** A view of `store` whose close() does nothing: for a stack closed and reopened over a store its owner keeps. */
export function keptOpen(store: BlockStore): BlockStore {
  return {
    name: store.name,
    writable: store.writable,
    volatile: store.volatile,
    openWarnings: store.openWarnings,
    sparse: store.sparse,
    size: () => store.size(),
    read: (offset, into) => store.read(offset, into),
    write: (offset, data) => store.write(offset, data),
    flush: () => store.flush(),
    ...(store.writeDurably && { writeDurably: (offset: number, data: Uint8Array) => store.writeDurably!(offset, data) }),
    ...(store.writeZeros && { writeZeros: (offset: number, length: number) => store.writeZeros!(offset, length) }),
    ...(store.backing && { backing: () => store.backing!() }),
    truncate: (size) => store.truncate(size),
    close: async () => {},
  };
}

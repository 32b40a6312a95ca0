// SPDX-License-Identifier: MIT
// A runner's fast path for stores it can reach synchronously (a SharedMemoryStore, a node-fs file
// with syncMaxBytes): a ring request is served by address, straight between the store and the
// shared WebAssembly memory at the slot's buffer address — one WASM map call for the request's
// range, then one copy / pread / pwrite per extent, and the caller writes the completion at once.
// No Uint8Array view of the payload, no promise, no closure, no object per request: the generic
// path (ClusterIo) made a view, a promise chain and a closure per request, and the garbage they
// left cost V8's helper threads 0.3-1.3 µs per request on top of the runner's own 1.9-5 µs.
//
// Only the plain cases are served here; everything else returns false *before doing anything*
// and goes through ClusterIo, so holes, lower levels, allocations, copy-on-write, discards,
// asynchronous stores and mapping errors keep exactly the generic behaviour:
// - a read of extents that are holes (zeros) or mapped by a level with synchronous access;
// - a write that one extent of the top delta maps in place (ClusterIo.write's own fast case,
//   which takes no cluster lock either: a cluster the top maps is not being allocated).
// A store error is thrown as the same PloopError the generic path would give the request.

import type { WasmCore } from '../core/wasm.js';
import { BatMap } from '../core/bat-map.js';
import { LEVEL_NONE, EXTENT_BYTES, EXTENT_OFFSET, EXTENT_LENGTH, EXTENT_HOST, EXTENT_LEVEL } from '../core/wasm-interface.generated.js';
import type { ClusterIoStats } from '../engine/cluster-io.js';
import { ioError } from '../errors.js';
import type { BlockStore } from '../stores/block-store.js';
import { SharedMemoryStore } from '../stores/shared-memory.js';

/**
 * Synchronous access to one store by address. `mem` is a view of the whole shared memory,
 * `at` a byte address in it. Errors are the store's own (the fast path words them).
 */
export interface SyncAccess {
  /** Name used in error messages, as the store's own (`read <name> at <offset>`). */
  readonly name: string;
  /** Most bytes one call serves (larger requests take the generic path). */
  readonly maxBytes: number;
  /** Read up to `length` bytes at store byte `position` into mem[at..]; returns the bytes read (short at the end). */
  read(mem: Uint8Array, at: number, length: number, position: number): number;
  /** Write mem[at..at+length) at `position`; false (nothing written) when the store cannot do it synchronously (it must grow). */
  write(mem: Uint8Array, at: number, length: number, position: number): boolean;
  close?(): void;
}

/** Synchronous access to a SharedMemoryStore: one view of its buffer, copies with set(subarray). */
export function sharedMemoryAccess(store: SharedMemoryStore): SyncAccess {
  // A growable SharedArrayBuffer: a view without a length follows its growth.
  const data = new Uint8Array(store.buffer, SharedMemoryStore.DATA_OFFSET);
  const writable = store.writable;
  // The size word is a BigInt64 (a BigInt made per load): reads look at it again only past the
  // size seen last. A store that shrank meanwhile (truncate) zeroed the bytes it cut, so a read
  // past its new end still reads the zeros a short read would have given.
  let knownSize = store.sizeNow();
  return {
    name: store.name,
    maxBytes: Number.MAX_SAFE_INTEGER,
    read(mem, at, length, position) {
      if (position + length > knownSize) knownSize = store.sizeNow();
      const n = Math.max(0, Math.min(length, knownSize - position));
      if (n > 0) mem.set(data.subarray(position, position + n), at);
      return n;
    },
    write(mem, at, length, position) {
      // Growing the store (its buffer and size word) is the store's job: generic path.
      if (!writable || position + length > store.sizeNow()) return false;
      data.set(mem.subarray(at, at + length), position);
      return true;
    },
  };
}

/** The synchronous access the portable stores offer (null: none, the generic path serves them). */
export function portableSyncAccess(store: BlockStore): SyncAccess | null {
  return store instanceof SharedMemoryStore ? sharedMemoryAccess(store) : null;
}

export interface FastPathOptions {
  core: WasmCore;
  /** The image's BAT map context and this runner's extent scratch (RunnerInit). */
  ctx: number;
  scratch: number;
  topLevel: number;
  /** Per level (base first): its synchronous access, or null. */
  access: Array<SyncAccess | null>;
  /** ClusterIo's counters (in-place writes count as data writes there too). */
  stats: ClusterIoStats;
}

/** Extents per map call (all the scratch holds). */
const MAX_EXTENTS = BatMap.EXTENT_SCRATCH_RECORDS;
// The extent record's fields as indices into the f64 and u32 views of the scratch (records are
// 8-byte aligned): record i's field F is view[base + i * REC_… + F_…].
const REC_F64S = EXTENT_BYTES / 8;
const REC_U32S = EXTENT_BYTES / 4;
const OFFSET_F64 = EXTENT_OFFSET / 8;
const LENGTH_F64 = EXTENT_LENGTH / 8;
const HOST_F64 = EXTENT_HOST / 8;
const LEVEL_U32 = EXTENT_LEVEL / 4;

export class FastPath {
  /** Requests served here (the rest went through ClusterIo). */
  served = 0;
  readonly #core: WasmCore;
  readonly #mapRange: WasmCore['exports']['mapRange'];
  readonly #ctx: number;
  readonly #scratch: number;
  readonly #top: number;
  readonly #access: Array<SyncAccess | null>;
  readonly #topAccess: SyncAccess | null;
  readonly #stats: ClusterIoStats;
  /** Views of the memory, remade only when a request lies past their end (the memory grew). */
  #u8: Uint8Array;
  /** Views of the extent scratch (made once: it existed when the runner started). */
  readonly #f64: Float64Array;
  readonly #u32: Uint32Array;

  constructor(o: FastPathOptions) {
    this.#core = o.core;
    this.#mapRange = o.core.exports.mapRange;
    this.#ctx = o.ctx;
    this.#scratch = o.scratch;
    this.#top = o.topLevel;
    this.#access = o.access;
    this.#topAccess = o.access[o.topLevel] ?? null;
    this.#stats = o.stats;
    this.#u8 = o.core.u8;
    this.#f64 = o.core.f64;
    this.#u32 = o.core.u32;
  }

  /** True when any level can be served here (else the runner need not try). */
  get useful(): boolean {
    return this.#access.some((a) => a !== null);
  }

  #memory(end: number): Uint8Array {
    if (end > this.#u8.length) this.#u8 = this.#core.u8;
    return this.#u8;
  }

  /**
   * Serve a read of `length` bytes at virtual `offset` into memory address `buffer`: true when
   * done, false when it must take the generic path (nothing has been read then), throws the
   * request's error.
   */
  read(offset: number, length: number, buffer: number): boolean {
    const scratch = this.#scratch;
    const f64 = this.#f64;
    const u32 = this.#u32;
    const access = this.#access;
    const mem = this.#memory(buffer + length);
    // The usual request fits one map call; a longer list is walked twice (check, then serve).
    const n = this.#mapRange(this.#ctx, offset, length, scratch, MAX_EXTENTS);
    if (n <= 0 || n === MAX_EXTENTS) return false; // an error (the generic path words it) or a long list
    const rec64 = scratch >>> 3;
    const rec32 = scratch >>> 2;
    for (let i = 0; i < n; i++) {
      const level = u32[rec32 + i * REC_U32S + LEVEL_U32];
      if (level === LEVEL_NONE) continue;
      const a = access[level];
      if (a === null || a === undefined || f64[rec64 + i * REC_F64S + LENGTH_F64] > a.maxBytes) return false;
    }
    for (let i = 0; i < n; i++) {
      const r = rec64 + i * REC_F64S;
      const at = buffer + (f64[r + OFFSET_F64] - offset);
      const len = f64[r + LENGTH_F64];
      const level = u32[rec32 + i * REC_U32S + LEVEL_U32];
      if (level === LEVEL_NONE) {
        mem.fill(0, at, at + len);
        continue;
      }
      const host = f64[r + HOST_F64];
      const a = access[level]!;
      let got: number;
      try {
        got = a.read(mem, at, len, host);
      } catch (e) {
        // The words of the generic path: the store's `read <name> at <offset> failed: …`.
        throw ioError(`read ${a.name} at ${host}`, e);
      }
      if (got < len) mem.fill(0, at + got, at + len);
    }
    this.served++;
    return true;
  }

  /** Serve an in-place write (one extent the top maps): true when done, false for the generic path. */
  write(offset: number, length: number, buffer: number): boolean {
    const a = this.#topAccess;
    if (a === null || length > a.maxBytes) return false;
    const scratch = this.#scratch;
    const n = this.#mapRange(this.#ctx, offset, length, scratch, 2);
    if (n !== 1 || this.#u32[(scratch >>> 2) + LEVEL_U32] !== this.#top || this.#f64[(scratch >>> 3) + LENGTH_F64] !== length) return false;
    const host = this.#f64[(scratch >>> 3) + HOST_F64];
    const mem = this.#memory(buffer + length);
    let done: boolean;
    try {
      done = a.write(mem, buffer, length, host);
    } catch (e) {
      this.#stats.dataWrites++;
      throw ioError(`write ${a.name} at ${host}`, e);
    }
    if (!done) return false;
    this.#stats.dataWrites++;
    this.served++;
    return true;
  }
}

// SPDX-License-Identifier: MIT
// A store in one growable SharedArrayBuffer that every runner (worker) sees: the coordinator and
// each runner attach their own SharedMemoryStore object to the same buffer, so a write by one is
// a read by all without any message. The store's byte size lives in the buffer too (an atomic
// 64-bit word before the data) so that every thread agrees on it.
//
// Where SharedArrayBuffer is unavailable (a page that is not cross-origin isolated) the same class
// runs over a resizable ArrayBuffer: the store then works in one thread only, which is what the
// runner pool's in-thread fallback needs.

import type { BlockStore } from './block-store.js';
import { PloopError } from '../errors.js';

/** Bytes before the data: the size word (BigInt64) and room to keep the data 16-byte aligned. */
const HEADER_BYTES = 16;
const DEFAULT_MAX_BYTES = 1 << 30;

/** What a runner needs to attach to the same store (structured-cloneable). */
export interface SharedMemorySpec {
  kind: 'shared-memory';
  buffer: SharedArrayBuffer | ArrayBuffer;
  writable: boolean;
}

export interface SharedMemoryStoreOptions {
  /** Most bytes the store may ever hold (the buffer's maxByteLength). Default 1 GiB. */
  maxBytes?: number;
  writable?: boolean;
}

type Growable = (SharedArrayBuffer & { grow(n: number): void }) | (ArrayBuffer & { resize(n: number): void });

export class SharedMemoryStore implements BlockStore {
  readonly name = 'shared-memory';
  readonly volatile = true;
  readonly writable: boolean;
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  readonly #size: BigInt64Array;
  readonly #maxBytes: number;

  private constructor(buffer: SharedArrayBuffer | ArrayBuffer, writable: boolean) {
    this.buffer = buffer;
    this.writable = writable;
    this.#size = new BigInt64Array(buffer, 0, 1);
    this.#maxBytes = maxByteLengthOf(buffer) - HEADER_BYTES;
  }

  /** Byte offset of the data in `buffer` (a runner's synchronous fast path, runners/fast-path.ts). */
  static readonly DATA_OFFSET = HEADER_BYTES;

  /** True when this store's memory can be shared with workers. */
  get shared(): boolean {
    return typeof SharedArrayBuffer !== 'undefined' && this.buffer instanceof SharedArrayBuffer;
  }

  /** A new store holding a copy of `initial` (shared memory when the environment has it). */
  static from(initial: Uint8Array = new Uint8Array(0), options: SharedMemoryStoreOptions = {}): SharedMemoryStore {
    const maxBytes = options.maxBytes ?? Math.max(DEFAULT_MAX_BYTES, initial.length);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < initial.length) {
      throw new PloopError('EINVAL', `SharedMemoryStore.from: maxBytes ${maxBytes} must be a byte count ≥ the ${initial.length} initial bytes`, { field: 'maxBytes', value: maxBytes });
    }
    const length = HEADER_BYTES + initial.length;
    const max = HEADER_BYTES + maxBytes;
    let buffer: SharedArrayBuffer | ArrayBuffer;
    try {
      buffer = typeof SharedArrayBuffer !== 'undefined'
        ? new SharedArrayBuffer(length, { maxByteLength: max })
        : new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(length, { maxByteLength: max });
    } catch (e) {
      throw new PloopError('ENOSPC', `SharedMemoryStore.from: cannot reserve ${maxBytes} bytes (maxBytes): ${e instanceof Error ? e.message : e}`, { field: 'maxBytes', value: maxBytes });
    }
    new Uint8Array(buffer, HEADER_BYTES, initial.length).set(initial);
    const store = new SharedMemoryStore(buffer, options.writable ?? true);
    Atomics.store(store.#size, 0, BigInt(initial.length));
    return store;
  }

  /** Attach to the buffer of a store made by `from` (in another thread, from its spec). */
  static attach(spec: SharedMemorySpec): SharedMemoryStore {
    const buffer = spec.buffer;
    if (!(buffer instanceof ArrayBuffer) && !(typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer)) {
      throw new PloopError('EINVAL', 'SharedMemoryStore.attach: spec.buffer is not a SharedArrayBuffer or ArrayBuffer', { field: 'buffer' });
    }
    if (buffer.byteLength < HEADER_BYTES) {
      throw new PloopError('EINVAL', `SharedMemoryStore.attach: buffer of ${buffer.byteLength} bytes is smaller than the ${HEADER_BYTES}-byte header`, { field: 'buffer' });
    }
    return new SharedMemoryStore(buffer, spec.writable);
  }

  /** The spec a runner attaches with (the buffer is shared, not copied, when posted to a worker). */
  spec(writable = this.writable): SharedMemorySpec {
    return { kind: 'shared-memory', buffer: this.buffer, writable };
  }

  /** A copy of the current contents (a plain, unshared array). */
  bytes(): Uint8Array {
    const size = this.#sizeNow();
    return new Uint8Array(this.buffer, HEADER_BYTES, size).slice();
  }

  async size(): Promise<number> {
    return this.#sizeNow();
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const n = Math.max(0, Math.min(into.length, this.#sizeNow() - offset));
    if (n > 0) into.set(new Uint8Array(this.buffer, HEADER_BYTES + offset, n));
    return n;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write');
    const end = offset + data.length;
    this.#ensureCapacity('write', end);
    new Uint8Array(this.buffer, HEADER_BYTES + offset, data.length).set(data);
    // The size only grows here: a compare-exchange loop, as other threads may grow it too.
    for (let seen = Atomics.load(this.#size, 0); seen < BigInt(end);) {
      const was = Atomics.compareExchange(this.#size, 0, seen, BigInt(end));
      if (was === seen) break;
      seen = was;
    }
  }

  async flush(): Promise<void> {}

  async truncate(size: number): Promise<void> {
    this.#check('truncate');
    if (!Number.isSafeInteger(size) || size < 0) throw new PloopError('EINVAL', `shared-memory store: truncate to ${size} bytes, expected a byte count ≥ 0`, { field: 'size', value: size });
    this.#ensureCapacity('truncate', size);
    const old = this.#sizeNow();
    // Bytes past the new end must read as zeros if the store grows again.
    if (size < old) new Uint8Array(this.buffer, HEADER_BYTES + size, old - size).fill(0);
    Atomics.store(this.#size, 0, BigInt(size));
  }

  async close(): Promise<void> {}

  /** The size now, from the atomic size word (synchronous: for a runner's fast path). */
  sizeNow(): number {
    return this.#sizeNow();
  }

  #sizeNow(): number {
    return Number(Atomics.load(this.#size, 0));
  }

  #ensureCapacity(operation: string, end: number): void {
    const need = HEADER_BYTES + end;
    if (need <= this.buffer.byteLength) return;
    if (end > this.#maxBytes) {
      throw new PloopError('ENOSPC', `shared-memory store: ${operation} up to byte ${end} passes the store's maxBytes (${this.#maxBytes})`, { operation, end, maxBytes: this.#maxBytes });
    }
    // Grow in steps (at least doubling, capped) so that a stream of appends does not grow per write.
    const target = Math.min(HEADER_BYTES + this.#maxBytes, Math.max(need, Math.min(this.buffer.byteLength * 2, need + (64 << 20))));
    const b = this.buffer as Growable;
    try {
      if ('grow' in b) b.grow(target);
      else b.resize(target);
    } catch (e) {
      // Another thread may have grown the shared buffer past `target` meanwhile: that is fine.
      if (this.buffer.byteLength < need) throw new PloopError('ENOSPC', `shared-memory store: cannot grow to ${need} bytes for ${operation}: ${e instanceof Error ? e.message : e}`, { operation, end });
    }
  }

  #check(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `shared-memory store: ${operation} refused, the store is read-only`);
  }
}

function maxByteLengthOf(buffer: SharedArrayBuffer | ArrayBuffer): number {
  return (buffer as { maxByteLength?: number }).maxByteLength ?? buffer.byteLength;
}

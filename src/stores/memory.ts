// SPDX-License-Identifier: MIT
// A store kept in one growable Uint8Array: for tests, the browser and small images.

import type { BlockStore } from './block-store.js';
import { PloopError } from '../errors.js';

export class MemoryStore implements BlockStore {
  readonly name = 'memory';
  readonly volatile: boolean = true;
  readonly writable: boolean;
  #bytes: Uint8Array;
  #size: number;

  constructor(initial: Uint8Array = new Uint8Array(0), options: { writable?: boolean } = {}) {
    this.#bytes = initial;
    this.#size = initial.length;
    this.writable = options.writable ?? true;
  }

  /** The current contents (a view; copy it if you keep it past the next write). */
  bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#size);
  }

  async size(): Promise<number> {
    return this.#size;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const n = Math.max(0, Math.min(into.length, this.#size - offset));
    if (n > 0) into.set(this.#bytes.subarray(offset, offset + n));
    return n;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write');
    const end = offset + data.length;
    if (end > this.#size) this.#resize(end);
    this.#bytes.set(data, offset);
  }

  async flush(): Promise<void> {}

  async truncate(size: number): Promise<void> {
    this.#check('truncate');
    this.#resize(size);
  }

  async close(): Promise<void> {}

  #check(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `memory store: ${operation} refused, the store is read-only`);
  }

  #resize(size: number): void {
    if (size > this.#bytes.length) {
      let grown: Uint8Array;
      try {
        grown = new Uint8Array(Math.max(size, Math.min(this.#bytes.length * 2, size + (64 << 20))));
      } catch (e) {
        // Past the engine's largest typed array, or out of memory: a named error, not a RangeError.
        throw new PloopError('ENOSPC', `memory store: cannot grow to ${size} bytes (${e instanceof Error ? e.message : e})`);
      }
      grown.set(this.#bytes.subarray(0, this.#size));
      this.#bytes = grown;
    } else if (size < this.#size) {
      this.#bytes.fill(0, size, this.#size);
    }
    this.#size = size;
  }
}

// A store whose operations take effect after a random delay, so that operations the engine has
// in flight at the same time complete in any order, as they may on a thread pool (Node's fs)
// or in a browser store. flush() waits for every operation issued before it.

import type { BlockStore } from '../../src/index.ts';
import { MemoryStore } from '../../src/index.ts';
import type { Prng } from './prng.ts';

export interface JitterDelays {
  /** Largest delay of a read, write and truncate, in ms (each delay is uniform in 0..max). */
  readMs: number;
  writeMs: number;
  truncateMs: number;
}

export class JitterStore implements BlockStore {
  readonly name = 'jitter';
  readonly writable = true;
  readonly inner: MemoryStore;
  readonly #rng: Prng;
  readonly #delays: JitterDelays;
  readonly #pending = new Set<Promise<unknown>>();
  /** Truncates that took effect. */
  truncates = 0;

  constructor(inner: MemoryStore, rng: Prng, delays: JitterDelays) {
    this.inner = inner;
    this.#rng = rng;
    this.#delays = delays;
  }

  #later<T>(maxMs: number, fn: () => Promise<T>): Promise<T> {
    const delay = this.#rng.int(maxMs + 1);
    const p = new Promise<void>((r) => setTimeout(r, delay)).then(fn);
    this.#pending.add(p);
    const done = () => this.#pending.delete(p);
    p.then(done, done);
    return p;
  }

  size(): Promise<number> {
    return this.inner.size();
  }
  read(offset: number, into: Uint8Array): Promise<number> {
    return this.#later(this.#delays.readMs, () => this.inner.read(offset, into));
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.#later(this.#delays.writeMs, () => this.inner.write(offset, data));
  }
  truncate(size: number): Promise<void> {
    return this.#later(this.#delays.truncateMs, () => {
      this.truncates++;
      return this.inner.truncate(size);
    });
  }
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

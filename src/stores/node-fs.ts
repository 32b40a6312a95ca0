// SPDX-License-Identifier: MIT
// A store on a file through Node's fs. flush() is fdatasync.
//
// I/O goes through the callback API on a plain fd, not fs.promises' FileHandle: for 4 KiB
// requests served from the page cache the FileHandle promise machinery costs more than the
// pread itself (measured 2.4× fewer reads/s at depth 32; docs/performance.md). A caller that
// has nothing else to do on its thread may opt in to `syncMaxBytes`: requests up to that size
// then run as positioned readSync/writeSync (the pread/pwrite the thread pool would run
// anyway, minus the hop to it), several times faster again for page-cache hits, at the price
// of blocking the event loop while the kernel works. flush() stays asynchronous always.

import { open, read, write, fdatasync, ftruncate, close, fstat, readSync, writeSync } from 'node:fs';
import type { BlockStore } from './block-store.js';
import { PloopError, ioError } from '../errors.js';

export interface NodeFileStoreOptions {
  writable?: boolean;
  /** Create the file (or truncate it to empty) and open it read-write. */
  create?: boolean;
  /**
   * Serve reads and writes of at most this many bytes synchronously (positioned readSync /
   * writeSync) on the calling thread. Default 0: every request goes to libuv's thread pool.
   */
  syncMaxBytes?: number;
}

const call = <T>(fn: (cb: (e: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v))));
/** For the fs calls whose callback gets only an error. */
const done = (fn: (cb: (e: NodeJS.ErrnoException | null) => void) => void): Promise<void> =>
  new Promise((resolve, reject) => fn((e) => (e ? reject(e) : resolve())));

export class NodeFileStore implements BlockStore {
  readonly name = 'node-fs';
  readonly writable: boolean;
  readonly path: string;
  readonly syncMaxBytes: number;
  #fd: number;
  #size: number;
  #closed = false;

  private constructor(path: string, fd: number, size: number, writable: boolean, syncMaxBytes: number) {
    this.path = path;
    this.#fd = fd;
    this.#size = size;
    this.writable = writable;
    this.syncMaxBytes = syncMaxBytes;
  }

  /** Open an existing file (or create it with `create: true`). */
  static async open(path: string, options: NodeFileStoreOptions = {}): Promise<NodeFileStore> {
    const writable = options.writable ?? false;
    const syncMaxBytes = options.syncMaxBytes ?? 0;
    if (!Number.isSafeInteger(syncMaxBytes) || syncMaxBytes < 0) {
      throw new PloopError('EINVAL', `NodeFileStore.open: syncMaxBytes ${syncMaxBytes} is not a byte count ≥ 0`, { field: 'syncMaxBytes', value: syncMaxBytes });
    }
    const flags = options.create ? 'w+' : writable ? 'r+' : 'r';
    let fd: number;
    try {
      fd = await call<number>((cb) => open(path, flags, cb));
    } catch (e) {
      throw ioError(`open ${path}`, e);
    }
    let size: number;
    try {
      size = (await call<{ size: number }>((cb) => fstat(fd, cb))).size;
    } catch (e) {
      await done((cb) => close(fd, cb)).catch(() => {});
      throw ioError(`stat ${path}`, e);
    }
    return new NodeFileStore(path, fd, size, writable || !!options.create, syncMaxBytes);
  }

  async size(): Promise<number> {
    // Other handles on the same file (a runner pool's workers) may have grown it since: the
    // file system knows, this object does not (a stale size kept close() from trimming).
    try {
      this.#size = (await call<{ size: number }>((cb) => fstat(this.#fd, cb))).size;
    } catch (e) {
      throw ioError(`stat ${this.path}`, e);
    }
    return this.#size;
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    // A closed fd number may already name another file: never use it.
    if (this.#closed) return Promise.reject(this.#closedError('read'));
    if (into.length <= this.syncMaxBytes) {
      try {
        return Promise.resolve(this.#readSync(offset, into));
      } catch (e) {
        return Promise.reject(ioError(`read ${this.path} at ${offset}`, e));
      }
    }
    return this.#readAsync(offset, into);
  }

  #readSync(offset: number, into: Uint8Array): number {
    let done = 0;
    while (done < into.length) {
      const n = readSync(this.#fd, into, done, into.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  async #readAsync(offset: number, into: Uint8Array): Promise<number> {
    let done = 0;
    try {
      while (done < into.length) {
        const n = await this.#pread(into, done, offset + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      throw ioError(`read ${this.path} at ${offset}`, e);
    }
    return done;
  }

  #pread(into: Uint8Array, at: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => read(this.#fd, into, at, into.length - at, position, (e, n) => (e ? reject(e) : resolve(n))));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    try {
      if (this.#closed) throw this.#closedError('write');
      this.#check('write');
      if (data.length <= this.syncMaxBytes) {
        let done = 0;
        try {
          while (done < data.length) done += writeSync(this.#fd, data, done, data.length - done, offset + done);
        } catch (e) {
          throw ioError(`write ${this.path} at ${offset}`, e);
        }
        this.#size = Math.max(this.#size, offset + data.length);
        return Promise.resolve();
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#writeAsync(offset, data);
  }

  async #writeAsync(offset: number, data: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < data.length) {
        done += await new Promise<number>((resolve, reject) =>
          write(this.#fd, data, done, data.length - done, offset + done, (e, n) => (e ? reject(e) : resolve(n))));
      }
    } catch (e) {
      throw ioError(`write ${this.path} at ${offset}`, e);
    }
    this.#size = Math.max(this.#size, offset + data.length);
  }

  async flush(): Promise<void> {
    if (!this.writable) return;
    if (this.#closed) throw this.#closedError('flush');
    try {
      await done((cb) => fdatasync(this.#fd, cb));
    } catch (e) {
      throw ioError(`flush ${this.path}`, e);
    }
  }

  async truncate(size: number): Promise<void> {
    this.#check('truncate');
    try {
      await done((cb) => ftruncate(this.#fd, size, cb));
    } catch (e) {
      throw ioError(`truncate ${this.path} to ${size}`, e);
    }
    this.#size = size;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await done((cb) => close(this.#fd, cb));
    } catch (e) {
      throw ioError(`close ${this.path}`, e);
    }
  }

  #closedError(operation: string): PloopError {
    return new PloopError('ECLOSED', `${this.path}: ${operation} after the store was closed`);
  }

  #check(operation: string): void {
    if (this.#closed) throw this.#closedError(operation);
    if (!this.writable) throw new PloopError('EREADONLY', `${this.path}: ${operation} refused, the file was opened read-only`);
  }
}

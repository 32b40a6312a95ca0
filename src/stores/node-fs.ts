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
//
// Requests of up to 64 KiB go by default (`io: 'thread'`) to this thread's I/O thread
// (node-io-thread.ts): the same syscalls on a dedicated worker fed through shared memory, which
// spares each request libuv's pool round trip without blocking the event loop (it starts
// after a warm-up of small requests; until it runs they take the pool). `io: 'pool'`
// keeps them on libuv's pool; larger requests, flush, truncate and stat always go there.

import type { StoreSpec } from '../runners/protocol.js';
import { open, read, write, fdatasync, ftruncate, close, fstat, constants } from 'node:fs';
import { preadFully, pwriteFully } from './node-sync-io.js';
import type { BlockStore } from './block-store.js';
import { pread as threadRead, pwrite as threadWrite, pwriteZeros as threadWriteZeros, ioThreadReady, IO_THREAD_MAX_BYTES, IO_THREAD_MAX_ZERO_BYTES } from './node-io-thread.js';
import { PloopError, ioError } from '../errors.js';
import { lockForWriting, writerOf } from './node-lock.js';
import { writerActive } from './in-use.js';

export interface NodeFileStoreOptions {
  writable?: boolean;
  /** Create the file (or truncate it to empty) and open it read-write. */
  create?: boolean;
  /**
   * Serve reads and writes of at most this many bytes synchronously (positioned readSync /
   * writeSync) on the calling thread. Default 0: every request goes to libuv's thread pool.
   */
  syncMaxBytes?: number;
  /**
   * Where requests of up to 64 KiB that `syncMaxBytes` does not take run: 'thread' (default)
   * on this thread's dedicated I/O thread, 'pool' on libuv's thread pool.
   */
  io?: NodeFileIo;
  /**
   * With `writable` or `create`: hold the image's writer lock while the store is open, and refuse
   * to open (EBUSY, naming the holder) while another writer holds it: another store, process,
   * ploop or QEMU (node-lock.ts). Default true. Runners opened under their coordinator's lock
   * pass false. A read-only store takes no lock; its `openWarnings` say when a writer is active.
   */
  lock?: boolean;
}

export type NodeFileIo = 'thread' | 'pool';
const IO_MODES: readonly NodeFileIo[] = ['thread', 'pool'];

/** writeZeros on libuv's pool or this thread writes from one shared buffer of zeros, never written into. */
const ZERO_PIECE_BYTES = 256 << 10;
let zeros: Uint8Array | null = null;
const zeroPiece = (length: number): Uint8Array => (zeros ??= new Uint8Array(ZERO_PIECE_BYTES)).subarray(0, length);

const call = <T>(fn: (cb: (e: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((e, v) => (e ? reject(e) : resolve(v))));
/** For the fs calls whose callback gets only an error. */
const done = (fn: (cb: (e: NodeJS.ErrnoException | null) => void) => void): Promise<void> =>
  new Promise((resolve, reject) => fn((e) => (e ? reject(e) : resolve())));

export class NodeFileStore implements BlockStore {
  readonly name = 'node-fs';
  /** A file: ranges never written are holes (the engine writes the zeros the ploop tools want). */
  readonly sparse = true;
  readonly writable: boolean;
  readonly path: string;
  readonly syncMaxBytes: number;
  readonly io: NodeFileIo;
  /** What opening found out about other users of the file (a writer active while this store reads). */
  readonly openWarnings: readonly string[];
  /** Requests up to this size go to the I/O thread (0 with io 'pool'). */
  readonly #threadMaxBytes: number;
  #fd: number;
  #size: number;
  #closed = false;
  /**
   * The O_DSYNC descriptor writeDurably() opens on first use, or null where there is none (no
   * O_DSYNC flag, no /proc): writeDurably then writes and flushes.
   */
  #dsync: Promise<number | null> | null = null;
  /** writeDurably() calls in flight; close() waits for them before closing the descriptors. */
  readonly #durableWrites = new Set<Promise<void>>();
  /** Requests of this store still in the I/O thread; close() waits for them. */
  #inThread = 0;
  #idle: (() => void) | null = null;

  /** A runner thread opens the same file by its path (runner-node-worker.ts). */
  spec(): StoreSpec {
    return { kind: 'node-fs', path: this.path, writable: this.writable };
  }

  private constructor(path: string, fd: number, size: number, writable: boolean, syncMaxBytes: number, io: NodeFileIo, openWarnings: string[]) {
    this.path = path;
    this.openWarnings = openWarnings;
    this.#fd = fd;
    this.#size = size;
    this.writable = writable;
    this.syncMaxBytes = syncMaxBytes;
    this.io = io;
    this.#threadMaxBytes = io === 'thread' ? IO_THREAD_MAX_BYTES : 0;
  }

  /** Open an existing file (or create it with `create: true`). */
  static async open(path: string, options: NodeFileStoreOptions = {}): Promise<NodeFileStore> {
    const writable = options.writable ?? false;
    const syncMaxBytes = options.syncMaxBytes ?? 0;
    if (!Number.isSafeInteger(syncMaxBytes) || syncMaxBytes < 0) {
      throw new PloopError('EINVAL', `NodeFileStore.open: syncMaxBytes ${syncMaxBytes} is not a byte count ≥ 0`, { field: 'syncMaxBytes', value: syncMaxBytes });
    }
    const io = options.io ?? 'thread';
    if (!IO_MODES.includes(io)) {
      throw new PloopError('EINVAL', `NodeFileStore.open: io "${io}" is not one of ${IO_MODES.join(', ')}`, { field: 'io', value: io });
    }
    // `create` truncates only once the lock is held: a refused create must not empty the image
    // another writer has open.
    const flags = options.create ? constants.O_RDWR | constants.O_CREAT : writable ? 'r+' : 'r';
    let fd: number;
    try {
      fd = await call<number>((cb) => open(path, flags, 0o666, cb));
    } catch (e) {
      throw ioError(`open ${path}`, e);
    }
    const warnings: string[] = [];
    let size: number;
    try {
      if ((writable || options.create) && options.lock !== false) {
        const warning = await lockForWriting(fd, 'image', path);
        if (warning) warnings.push(warning);
      } else if (!writable && !options.create) {
        const writer = await writerOf(fd);
        if (writer) warnings.push(writerActive('image', path, writer));
      }
      const stats = await call<{ size: number; isFile(): boolean }>((cb) => fstat(fd, cb)).catch((e) => { throw ioError(`stat ${path}`, e); });
      size = stats.size;
      // As O_TRUNC would: files only (a device such as /dev/full is written as it is).
      if (options.create && stats.isFile() && size > 0) {
        await done((cb) => ftruncate(fd, 0, cb)).catch((e) => { throw ioError(`truncate ${path} to 0`, e); });
        size = 0;
      }
    } catch (e) {
      await done((cb) => close(fd, cb)).catch(() => {});
      throw e;
    }
    return new NodeFileStore(path, fd, size, writable || !!options.create, syncMaxBytes, io, warnings);
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

  /** Disk space backing the file (st_blocks × 512) and the file system's block size (st_blksize). */
  async backing(): Promise<{ allocatedBytes: number; blockBytes: number }> {
    if (this.#closed) throw this.#closedError('stat');
    try {
      const s = await call<{ blocks: number; blksize: number }>((cb) => fstat(this.#fd, cb));
      return { allocatedBytes: s.blocks * 512, blockBytes: s.blksize };
    } catch (e) {
      throw ioError(`stat ${this.path}`, e);
    }
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    // A closed fd number may already name another file: never use it.
    if (this.#closed) return Promise.reject(this.#closedError('read'));
    if (into.length <= this.syncMaxBytes) {
      try {
        return Promise.resolve(preadFully(this.#fd, into, 0, into.length, offset));
      } catch (e) {
        return Promise.reject(ioError(`read ${this.path} at ${offset}`, e));
      }
    }
    if (into.length <= this.#threadMaxBytes && ioThreadReady()) return this.#readThread(offset, into);
    return this.#readAsync(offset, into);
  }

  #readThread(offset: number, into: Uint8Array): Promise<number> {
    // One request: the I/O thread reads until full or the end of the file.
    this.#inThread++;
    return threadRead(this.#fd, into, offset).then(
      (n) => {
        this.#leftThread();
        return n;
      },
      (e) => {
        this.#leftThread();
        throw ioError(`read ${this.path} at ${offset}`, e);
      },
    );
  }

  #leftThread(): void {
    if (--this.#inThread === 0 && this.#idle) this.#idle();
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
        try {
          pwriteFully(this.#fd, data, 0, data.length, offset);
        } catch (e) {
          throw ioError(`write ${this.path} at ${offset}`, e);
        }
        this.#size = Math.max(this.#size, offset + data.length);
        return Promise.resolve();
      }
    } catch (e) {
      return Promise.reject(e);
    }
    if (data.length <= this.#threadMaxBytes && ioThreadReady()) return this.#writeThread(offset, data);
    return this.#writeAsync(offset, data);
  }

  #writeThread(offset: number, data: Uint8Array): Promise<void> {
    this.#inThread++;
    return threadWrite(this.#fd, data, offset).then(
      () => {
        this.#leftThread();
        this.#size = Math.max(this.#size, offset + data.length);
      },
      (e) => {
        this.#leftThread();
        throw ioError(`write ${this.path} at ${offset}`, e);
      },
    );
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

  /**
   * Write zeros over [offset, offset + length): on this thread in syncMaxBytes pieces when the
   * store runs small requests synchronously, else as one request to the I/O thread (which writes
   * them from its own buffer: nothing is copied), else on libuv's pool from a shared buffer.
   */
  writeZeros(offset: number, length: number): Promise<void> {
    try {
      if (this.#closed) throw this.#closedError('write');
      this.#check('write');
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new PloopError('EINVAL', `${this.path}: writeZeros ${offset}+${length}: expected a byte offset and length >= 0`, { offset, length });
      }
      if (this.syncMaxBytes > 0) {
        const zeros = zeroPiece(Math.min(this.syncMaxBytes, ZERO_PIECE_BYTES));
        try {
          for (let done = 0; done < length; done += zeros.length) pwriteFully(this.#fd, zeros, 0, Math.min(zeros.length, length - done), offset + done);
        } catch (e) {
          throw ioError(`write ${this.path} at ${offset}`, e);
        }
        this.#size = Math.max(this.#size, offset + length);
        return Promise.resolve();
      }
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#threadMaxBytes > 0 && ioThreadReady()) return this.#writeZerosThread(offset, length);
    return this.#writeZerosAsync(offset, length);
  }

  async #writeZerosThread(offset: number, length: number): Promise<void> {
    for (let done = 0; done < length;) {
      const n = Math.min(IO_THREAD_MAX_ZERO_BYTES, length - done);
      this.#inThread++;
      try {
        await threadWriteZeros(this.#fd, n, offset + done);
      } catch (e) {
        throw ioError(`write ${this.path} at ${offset + done}`, e);
      } finally {
        this.#leftThread();
      }
      done += n;
    }
    this.#size = Math.max(this.#size, offset + length);
  }

  async #writeZerosAsync(offset: number, length: number): Promise<void> {
    const zeros = zeroPiece(ZERO_PIECE_BYTES);
    for (let done = 0; done < length;) {
      const n = Math.min(zeros.length, length - done);
      await this.#writeAsync(offset + done, zeros.subarray(0, n));
      done += n;
    }
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

  /**
   * Write through a second descriptor opened with O_DSYNC: the kernel makes these bytes and the
   * size they give the file durable (an fdatasync of their range), not the other dirty pages of
   * the file, which an fdatasync of the whole file would write back first (0.1-0.2 s with a few
   * hundred MiB of fresh writes). Writes through either descriptor land in the same page cache.
   */
  writeDurably(offset: number, data: Uint8Array): Promise<void> {
    try {
      if (this.#closed) throw this.#closedError('write');
      this.#check('write');
      // fs.write takes a negative position as "at the current file position": refuse it here.
      if (!Number.isSafeInteger(offset) || offset < 0) {
        throw new PloopError('EINVAL', `${this.path}: writeDurably at ${offset}: expected a byte offset >= 0`, { field: 'offset', value: offset });
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const pending = this.#writeDurably(offset, data);
    this.#durableWrites.add(pending);
    const settled = () => this.#durableWrites.delete(pending);
    pending.then(settled, settled);
    return pending;
  }

  async #writeDurably(offset: number, data: Uint8Array): Promise<void> {
    let fd: number | null;
    try {
      fd = await (this.#dsync ??= this.#openDsync());
      if (fd !== null) {
        let written = 0;
        while (written < data.length) {
          written += await call<number>((cb) => write(fd!, data, written, data.length - written, offset + written, cb));
        }
      }
    } catch (e) {
      throw ioError(`write ${this.path} at ${offset} (O_DSYNC)`, e);
    }
    if (fd === null) {
      await this.write(offset, data);
      await this.flush();
      return;
    }
    this.#size = Math.max(this.#size, offset + data.length);
  }

  /**
   * Open this very file again with O_DSYNC: through /proc/self/fd, which reaches the open inode
   * even if its path was renamed or replaced since (a second open of the path could write into
   * another file). Null where that is not possible.
   */
  async #openDsync(): Promise<number | null> {
    const dsync = constants.O_DSYNC as number | undefined;
    if (typeof dsync !== 'number') return null;
    try {
      return await call<number>((cb) => open(`/proc/self/fd/${this.#fd}`, constants.O_WRONLY | dsync, cb));
    } catch {
      return null;
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
    // The fd number, once closed, may be handed to another open before a request still in
    // the I/O thread runs: that request would read or write the other file.
    if (this.#inThread > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    await Promise.allSettled([...this.#durableWrites]);
    try {
      const dsyncFd = await this.#dsync?.catch(() => null);
      if (dsyncFd != null) await done((cb) => close(dsyncFd, cb));
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

// SPDX-License-Identifier: MIT
// A store on a file in the origin-private file system (OPFS). In a dedicated worker it uses a
// FileSystemSyncAccessHandle directly (the fast path: no copies, SAB views accepted); on the
// page's main thread it goes through the OPFS host worker (opfs-remote.ts). flush() is the
// handle's flush(). A writable sync handle is exclusive: the file cannot be opened again (here,
// in another tab or worker) until it is closed, unless it is opened `shared` ('readwrite-unsafe'
// handles, for runners). Every writer holds the Web Lock named after the file, which keeps out a
// second writer with the same words as Node's lock (in-use.ts); a reader is told when it is held.

import type { BlockStore } from './block-store.js';
import { PloopError } from '../errors.js';
import { SyncFile, opfsError, resolveOpfs, syncHandlesAvailable, sharedHandlesSupported } from './opfs-sync.js';
import { RemoteFile } from './opfs-remote.js';
import { holdWebLock, webLockHeld, webLockHolder } from './web-lock.js';
import { writerActive, writerRefused } from './in-use.js';

export { setOpfsWorkerUrl } from './opfs-remote.js';

export interface OpfsOpenOptions {
  /** Open for writing (default false). */
  writable?: boolean;
  /** Create the file (and its folders), or truncate it to zero bytes when it exists. */
  create?: boolean;
  /**
   * Share the file with other stores (runners in other workers): a 'readwrite-unsafe' handle
   * that any number of stores may hold at once, readers and writers; size() and reads then ask
   * the file itself, since another store may have grown it. Writers must not overlap: the
   * engine's cluster ownership guarantees that. A browser without handle modes hands out an
   * exclusive handle instead (the store's `shared` is then false).
   */
  shared?: boolean;
  /**
   * When writing: hold the Web Lock named after the file ("ploop-wasm:opfs:" and its path) while
   * the store is open, and refuse to open (EBUSY) when another page or worker holds it (default
   * true). A runner opened under its coordinator's lock passes false. A reader takes no lock;
   * its `openWarnings` say when a writer holds it.
   */
  lock?: boolean;
  /** Name in messages (default: the path or the file's name). */
  label?: string;
}

interface OpenFile {
  size(): number | Promise<number>;
  read(offset: number, into: Uint8Array): number | Promise<number>;
  write(offset: number, data: Uint8Array): void | Promise<void>;
  flush(): void | Promise<void>;
  truncate(size: number): void | Promise<void>;
  close(): void | Promise<void>;
}

export class OpfsStore implements BlockStore {
  readonly name: string;
  readonly writable: boolean;
  /** 'sync' when this context holds the sync handle, 'worker' when the OPFS host worker does. */
  readonly mode: 'sync' | 'worker';
  /** True when the file is held with a 'readwrite-unsafe' handle that other stores may share. */
  readonly shared: boolean;
  readonly openWarnings: readonly string[];
  readonly #file: OpenFile;
  /** The same file when this context holds the sync handle: reads and writes then run at once. */
  readonly #sync: SyncFile | null;
  readonly #unlock: (() => void) | null;
  #size: number;
  #closed = false;

  private constructor(name: string, file: OpenFile & { shared: boolean }, size: number, writable: boolean, mode: 'sync' | 'worker', unlock: (() => void) | null, openWarnings: string[]) {
    this.name = name;
    this.openWarnings = openWarnings;
    this.shared = file.shared;
    this.#file = file;
    this.#sync = file instanceof SyncFile ? file : null;
    this.#unlock = unlock;
    this.#size = size;
    this.writable = writable;
    this.mode = mode;
  }

  /** Open `path` (e.g. 'images/disk.hds', relative to the OPFS root). */
  static async open(path: string, options: OpfsOpenOptions = {}): Promise<OpfsStore> {
    const { dir, name } = await resolveOpfs(path, { create: options.create });
    let handle: FileSystemFileHandle;
    try {
      handle = await dir.getFileHandle(name, { create: !!options.create });
    } catch (e) {
      throw opfsError(`open ${path}`, e);
    }
    return OpfsStore.openHandle(handle, { ...options, label: options.label ?? path });
  }

  /** Open a file handle from the OPFS (a handle from a directory listing, OpfsDirectory, …). */
  static async openHandle(handle: FileSystemFileHandle, options: OpfsOpenOptions = {}): Promise<OpfsStore> {
    const label = options.label ?? handle.name;
    const writable = !!(options.writable || options.create);
    // A shared handle does not keep out a writer in another page, and an exclusive one refuses
    // it in other words ("open elsewhere"): the lock does it, as Node's does.
    const lockName = await opfsLockName(handle, label);
    const unlock = writable && options.lock !== false
      ? await holdWebLock(lockName, () => writerRefused('image', `opfs:${label}`, webLockHolder(lockName), { lock: lockName }))
      : null;
    const warnings = !writable && (await webLockHeld(lockName)) ? [writerActive('image', `opfs:${label}`, webLockHolder(lockName))] : [];
    try {
      if (syncHandlesAvailable()) {
        const file = await SyncFile.open(handle, { ...options, label });
        return new OpfsStore(`opfs:${label}`, file, file.size(), writable, 'sync', unlock, warnings);
      }
      const file = await RemoteFile.open(handle, { ...options, label });
      try {
        return new OpfsStore(`opfs:${label}`, file, await file.size(), writable, 'worker', unlock, warnings);
      } catch (e) {
        await file.close();
        throw e;
      }
    } catch (e) {
      unlock?.();
      throw e;
    }
  }

  /**
   * Whether this browser grants 'readwrite-unsafe' handles, so that `shared` stores in several
   * workers can write one file (asked of the OPFS host worker on the page's main thread).
   */
  static async sharedHandlesSupported(): Promise<boolean> {
    if (typeof navigator === 'undefined' || !navigator.storage?.getDirectory) return false;
    return syncHandlesAvailable() ? sharedHandlesSupported() : RemoteFile.sharedHandlesSupported();
  }

  /** Delete an OPFS file (no error when it does not exist). */
  static async remove(path: string): Promise<void> {
    let found;
    try {
      found = await resolveOpfs(path);
    } catch (e) {
      if ((e as PloopError).cause && (e as { cause?: { name?: string } }).cause?.name === 'NotFoundError') return;
      throw e;
    }
    await removeEntry(found.dir, found.name, path);
  }

  async size(): Promise<number> {
    this.#check('size');
    if (this.shared) this.#size = await this.#file.size();
    return this.#size;
  }

  read(offset: number, into: Uint8Array): Promise<number> {
    // With the sync handle here, the read runs now and the promise is already settled (the
    // mechanism of NodeFileStore's syncMaxBytes): no async frame, no await inside, no copy —
    // within a few percent of calling the handle directly.
    if (this.#sync) {
      try {
        return Promise.resolve(this.#readSync(this.#sync, offset, into));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#readRemote(offset, into);
  }

  #readSync(file: SyncFile, offset: number, into: Uint8Array): number {
    this.#check('read');
    const view = this.#readable(offset, into);
    return view ? file.read(offset, view) : 0;
  }

  async #readRemote(offset: number, into: Uint8Array): Promise<number> {
    this.#check('read');
    const view = this.#readable(offset, into);
    return view ? this.#file.read(offset, view) : 0;
  }

  /** The part of `into` that a read at `offset` fills: up to our end of the file (null: none). */
  #readable(offset: number, into: Uint8Array): Uint8Array | null {
    // Another store may have written past our idea of the end: the handle knows.
    if (this.shared) return into;
    const length = this.#size - offset;
    if (length >= into.length) return into;
    return length > 0 ? into.subarray(0, length) : null;
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    if (this.#sync) {
      try {
        this.#check('write');
        this.#writable('write');
        this.#sync.write(offset, data);
        this.#grown(offset + data.length);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#writeRemote(offset, data);
  }

  async #writeRemote(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write');
    this.#writable('write');
    await this.#file.write(offset, data);
    this.#grown(offset + data.length);
  }

  #grown(end: number): void {
    if (end > this.#size) this.#size = end;
  }

  async flush(): Promise<void> {
    this.#check('flush');
    if (this.writable) await this.#file.flush();
  }

  async truncate(size: number): Promise<void> {
    this.#check('truncate');
    this.#writable('truncate');
    if (!Number.isSafeInteger(size) || size < 0) throw new PloopError('EINVAL', `${this.name}: truncate to ${size} refused, expected a byte count >= 0`);
    await this.#file.truncate(size);
    this.#size = size;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#file.close();
    } finally {
      this.#unlock?.();
    }
  }

  #check(operation: string): void {
    if (this.#closed) throw new PloopError('ECLOSED', `${this.name}: ${operation} refused, the store is closed`);
  }

  #writable(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `${this.name}: ${operation} refused, the store is read-only`, { store: this.name, operation });
  }
}

/**
 * The Web Lock named after the file's path under the OPFS root: the same name however the file
 * was reached (a path, a directory listing, OpfsDirectory).
 */
async function opfsLockName(handle: FileSystemFileHandle, label: string): Promise<string> {
  let path = label;
  try {
    path = (await (await navigator.storage.getDirectory()).resolve(handle))?.join('/') ?? label;
  } catch {
    // Not under the OPFS root (cannot happen for a handle we were given from it): name it by label.
  }
  return `ploop-wasm:opfs:${path}`;
}

/** removeEntry that ignores a missing entry and explains a locked one. */
export async function removeEntry(dir: FileSystemDirectoryHandle, name: string, label: string, recursive = false): Promise<void> {
  try {
    await dir.removeEntry(name, { recursive });
  } catch (e) {
    if ((e as { name?: string })?.name === 'NotFoundError') return;
    throw opfsError(`remove ${label}`, e);
  }
}

// SPDX-License-Identifier: MIT
// A store on a file in the origin-private file system (OPFS). In a dedicated worker it uses a
// FileSystemSyncAccessHandle directly (the fast path: no copies, SAB views accepted); on the
// page's main thread it goes through the OPFS host worker (opfs-remote.ts). flush() is the
// handle's flush(). A sync handle is exclusive: a file opened writable cannot be opened again
// (here, in another tab or worker) until it is closed.

import type { BlockStore } from './block-store.js';
import { PloopError } from '../errors.js';
import { SyncFile, opfsError, resolveOpfs, syncHandlesAvailable } from './opfs-sync.js';
import { RemoteFile } from './opfs-remote.js';

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
   * engine's cluster ownership guarantees that.
   */
  shared?: boolean;
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
  readonly shared: boolean;
  readonly #file: OpenFile;
  #size: number;
  #closed = false;

  private constructor(name: string, file: OpenFile, size: number, writable: boolean, mode: 'sync' | 'worker', shared: boolean) {
    this.name = name;
    this.shared = shared;
    this.#file = file;
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
    if (syncHandlesAvailable()) {
      const file = await SyncFile.open(handle, { ...options, label });
      return new OpfsStore(`opfs:${label}`, file, file.size(), writable, 'sync', !!options.shared);
    }
    const file = await RemoteFile.open(handle, { ...options, label });
    try {
      return new OpfsStore(`opfs:${label}`, file, await file.size(), writable, 'worker', !!options.shared);
    } catch (e) {
      await file.close();
      throw e;
    }
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

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.#check('read');
    // Another store may have written past our idea of the end: the handle knows.
    if (this.shared) return this.#file.read(offset, into);
    const length = Math.max(0, Math.min(into.length, this.#size - offset));
    if (length === 0) return 0;
    return this.#file.read(offset, length === into.length ? into : into.subarray(0, length));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write');
    this.#writable('write');
    await this.#file.write(offset, data);
    this.#size = Math.max(this.#size, offset + data.length);
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
    await this.#file.close();
  }

  #check(operation: string): void {
    if (this.#closed) throw new PloopError('ECLOSED', `${this.name}: ${operation} refused, the store is closed`);
  }

  #writable(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `${this.name}: ${operation} refused, the store is read-only`, { store: this.name, operation });
  }
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

// SPDX-License-Identifier: MIT
// The OPFS fast path: one file through a FileSystemSyncAccessHandle. Those handles exist only in
// dedicated workers, so this runs either inside the caller's worker (OpfsStore used from a
// worker) or inside the OPFS host worker on behalf of the page (opfs-remote.ts).

import { PloopError, ioError } from '../errors.js';

/** The part of FileSystemSyncAccessHandle we use (declared here: it is only in the webworker lib). */
export interface SyncAccessHandle {
  read(buffer: ArrayBufferView, options?: { at?: number }): number;
  write(buffer: ArrayBufferView, options?: { at?: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
  /** The mode the handle was granted (Chromium 121+; older browsers ignore the option and lack it). */
  readonly mode?: string;
}

type SyncCapableHandle = FileSystemFileHandle & {
  createSyncAccessHandle(options?: { mode?: 'read-only' | 'readwrite' | 'readwrite-unsafe' }): Promise<SyncAccessHandle>;
};

/** True in a dedicated worker where OPFS sync access handles exist. */
export function syncHandlesAvailable(): boolean {
  return typeof (globalThis as { FileSystemSyncAccessHandle?: unknown }).FileSystemSyncAccessHandle === 'function';
}

/**
 * True where sync access handles take a mode, so that 'readwrite-unsafe' handles can be shared by
 * several writers. Browsers without modes ignore the option and hand out exclusive handles.
 */
export function sharedHandlesSupported(): boolean {
  const ctor = (globalThis as { FileSystemSyncAccessHandle?: { prototype: object } }).FileSystemSyncAccessHandle;
  return !!ctor && 'mode' in ctor.prototype;
}

/** Split an OPFS path ('images/disk.hds') into checked segments. */
export function opfsSegments(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..')) {
    throw new PloopError('EINVAL', `opfs: path ${JSON.stringify(path)} is not a file path relative to the origin-private root (expected e.g. "images/disk.hds")`, { path });
  }
  return parts;
}

function domName(e: unknown): string {
  return (e as { name?: string } | null)?.name ?? '';
}

/** Turn a DOMException from the File System API into a PloopError that says what happened. */
export function opfsError(operation: string, e: unknown): PloopError {
  if (e instanceof PloopError) return e;
  switch (domName(e)) {
    case 'NotFoundError':
      return new PloopError('EIO', `opfs: ${operation} failed: no such file or directory`, { operation }, { cause: e });
    case 'NoModificationAllowedError':
    case 'InvalidStateError':
      return new PloopError('EIO', `opfs: ${operation} failed: the file is open elsewhere (another store, tab or worker holds a sync access handle); close it first`, { operation }, { cause: e });
    case 'QuotaExceededError':
      return new PloopError('ENOSPC', `opfs: ${operation} failed: storage quota exceeded`, { operation }, { cause: e });
    case 'TypeMismatchError':
      return new PloopError('EINVAL', `opfs: ${operation} failed: a file and a directory have the same name`, { operation }, { cause: e });
    default:
      return ioError(`opfs: ${operation}`, e);
  }
}

/** Walk `segments` from the OPFS root; the last one is a file (or directory with `lastIsDir`). */
export async function resolveOpfs(path: string, options: { create?: boolean } = {}): Promise<{ dir: FileSystemDirectoryHandle; name: string }> {
  const segments = opfsSegments(path);
  try {
    let dir = await navigator.storage.getDirectory();
    for (const s of segments.slice(0, -1)) dir = await dir.getDirectoryHandle(s, { create: !!options.create });
    return { dir, name: segments[segments.length - 1] };
  } catch (e) {
    throw opfsError(`open ${path}`, e);
  }
}

/** One open OPFS file, synchronously. */
export class SyncFile {
  readonly label: string;
  readonly writable: boolean;
  /** True when the browser granted a 'readwrite-unsafe' handle (other stores may hold the file too). */
  readonly shared: boolean;
  #handle: SyncAccessHandle;
  #closed = false;

  private constructor(label: string, handle: SyncAccessHandle, writable: boolean) {
    this.label = label;
    this.#handle = handle;
    this.writable = writable;
    this.shared = handle.mode === 'readwrite-unsafe';
  }

  /** Open a sync access handle on `file`; `create` truncates it to zero bytes. */
  static async open(file: FileSystemFileHandle, options: { writable?: boolean; create?: boolean; shared?: boolean; label?: string } = {}): Promise<SyncFile> {
    const label = options.label ?? file.name;
    const writable = !!(options.writable || options.create);
    let handle: SyncAccessHandle;
    try {
      // 'read-only' handles may be shared (several readers of one delta); 'readwrite-unsafe' ones
      // too, readers and writers alike (runners in several workers). Older browsers ignore the
      // mode and hand out an exclusive read-write handle, which works the same for one user.
      const mode = options.shared ? 'readwrite-unsafe' : writable ? 'readwrite' : 'read-only';
      handle = await (file as SyncCapableHandle).createSyncAccessHandle({ mode });
    } catch (e) {
      throw opfsError(`open ${label}`, e);
    }
    const f = new SyncFile(label, handle, writable);
    if (options.create) f.truncate(0);
    return f;
  }

  size(): number {
    this.#open('size');
    return this.#handle.getSize();
  }

  read(offset: number, into: Uint8Array): number {
    this.#open('read');
    try {
      // Sync handles accept views on SharedArrayBuffer (the WASM memory) directly. The caller's
      // view goes to the handle as it is; only a short read (never seen from OPFS in practice,
      // but allowed) makes views for the rest.
      let done = this.#handle.read(into, { at: offset });
      while (done > 0 && done < into.length) {
        const n = this.#handle.read(into.subarray(done), { at: offset + done });
        if (n <= 0) break;
        done += n;
      }
      return done;
    } catch (e) {
      throw opfsError(`read ${this.label} at ${offset}`, e);
    }
  }

  write(offset: number, data: Uint8Array): void {
    this.#open('write');
    this.#writable('write');
    try {
      let done = this.#handle.write(data, { at: offset });
      while (done < data.length) {
        const n = this.#handle.write(data.subarray(done), { at: offset + done });
        if (n <= 0) throw new Error(`wrote ${n} bytes`);
        done += n;
      }
    } catch (e) {
      throw opfsError(`write ${data.length} bytes to ${this.label} at ${offset}`, e);
    }
  }

  flush(): void {
    this.#open('flush');
    if (!this.writable) return;
    try {
      this.#handle.flush();
    } catch (e) {
      throw opfsError(`flush ${this.label}`, e);
    }
  }

  truncate(size: number): void {
    this.#open('truncate');
    this.#writable('truncate');
    try {
      this.#handle.truncate(size);
    } catch (e) {
      throw opfsError(`truncate ${this.label} to ${size}`, e);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
  }

  #open(operation: string): void {
    if (this.#closed) throw new PloopError('ECLOSED', `opfs: ${operation} on ${this.label} refused, the store is closed`);
  }

  #writable(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `opfs: ${operation} on ${this.label} refused, the file was opened read-only`, { store: this.label, operation });
  }
}

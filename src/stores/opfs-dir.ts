// SPDX-License-Identifier: MIT
// DeltaDirectory on an OPFS folder, so that disk folders (DiskDescriptor.xml + delta files) and
// overlays live in the browser: initStack / snapshotStack / openStackDir work on it as on a Node
// folder. Delta files open as OpfsStores; DiskDescriptor.xml is replaced through
// createWritable(), whose writes go to a swap file that replaces the target only on close() —
// a crash leaves the old text or the new one.

import type { DeltaDirectory, FolderLock } from './directory.js';
import { OpfsStore, removeEntry } from './opfs.js';
import { lockFolder, folderWriterWarning, FOLDER_LOCK_FILE } from './web-lock.js';
import { opfsError, opfsSegments } from './opfs-sync.js';
import { PloopError } from '../errors.js';

export class OpfsDirectory implements DeltaDirectory {
  readonly name: string;
  readonly handle: FileSystemDirectoryHandle;

  constructor(handle: FileSystemDirectoryHandle, name = `opfs:${handle.name}`) {
    this.handle = handle;
    this.name = name;
  }

  /** The folder at `path` under the OPFS root ('disks/vm1'); created (with parents) by default. */
  static async open(path: string, options: { create?: boolean } = {}): Promise<OpfsDirectory> {
    const create = options.create ?? true;
    try {
      let dir = await navigator.storage.getDirectory();
      for (const s of opfsSegments(path)) dir = await dir.getDirectoryHandle(s, { create });
      return new OpfsDirectory(dir, `opfs:${path}`);
    } catch (e) {
      throw opfsError(`open folder ${path}`, e);
    }
  }

  /** Delete the folder at `path` and everything in it (no error when it does not exist). */
  static async remove(path: string): Promise<void> {
    const segments = opfsSegments(path);
    let dir: FileSystemDirectoryHandle;
    try {
      dir = await navigator.storage.getDirectory();
      for (const s of segments.slice(0, -1)) dir = await dir.getDirectoryHandle(s);
    } catch (e) {
      if ((e as { name?: string })?.name === 'NotFoundError') return;
      throw opfsError(`remove folder ${path}`, e);
    }
    await removeEntry(dir, segments[segments.length - 1], path, true);
  }

  async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<OpfsStore> {
    let handle: FileSystemFileHandle;
    try {
      handle = await this.handle.getFileHandle(checkName(file), { create: !!options.create });
    } catch (e) {
      throw opfsError(`open ${this.name}/${file}`, e);
    }
    return OpfsStore.openHandle(handle, { ...options, label: `${this.name.replace(/^opfs:/, '')}/${file}` });
  }

  async readText(file: string): Promise<string | null> {
    try {
      const handle = await this.handle.getFileHandle(checkName(file));
      return await (await handle.getFile()).text();
    } catch (e) {
      if ((e as { name?: string })?.name === 'NotFoundError') return null;
      throw opfsError(`read ${this.name}/${file}`, e);
    }
  }

  async writeTextAtomic(file: string, text: string): Promise<void> {
    try {
      const handle = await this.handle.getFileHandle(checkName(file), { create: true });
      const out = await handle.createWritable({ keepExistingData: false });
      try {
        await out.write(text);
      } catch (e) {
        await out.abort().catch(() => {});
        throw e;
      }
      await out.close();
    } catch (e) {
      throw opfsError(`replace ${this.name}/${file}`, e);
    }
  }

  async remove(file: string): Promise<void> {
    await removeEntry(this.handle, checkName(file), `${this.name}/${file}`);
  }

  /** One writer at a time: the Web Lock named after the folder's descriptor. */
  async lockForWriting(): Promise<FolderLock> {
    return lockFolder(await this.#lockName(), this.name);
  }

  async writerWarning(): Promise<string | null> {
    return folderWriterWarning(await this.#lockName(), this.name);
  }

  /** Named by the folder's path under the OPFS root, however the folder was reached. */
  async #lockName(): Promise<string> {
    let path = this.name.replace(/^opfs:/, '');
    try {
      path = (await (await navigator.storage.getDirectory()).resolve(this.handle))?.join('/') ?? path;
    } catch {
      // not under the OPFS root: named by its label
    }
    return `ploop-wasm:opfs:${path}/${FOLDER_LOCK_FILE}`;
  }

  /** The names of the files in the folder. */
  async list(): Promise<string[]> {
    const names: string[] = [];
    for await (const [name, entry] of (this.handle as unknown as AsyncIterable<[string, FileSystemHandle]>)) {
      if (entry.kind === 'file') names.push(name);
    }
    return names.sort();
  }
}

/** Descriptor file names are plain names in the folder (ploop writes them that way). */
function checkName(file: string): string {
  opfsSegments(file);
  if (file.includes('/')) throw new PloopError('EINVAL', `opfs: file name ${JSON.stringify(file)} has a '/', expected a file directly in the folder`, { file });
  return file;
}

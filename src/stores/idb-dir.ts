// SPDX-License-Identifier: MIT
// DeltaDirectory in IndexedDB: the files of a disk folder are IdbStores under '<folder>/<file>'
// in one database, and texts (DiskDescriptor.xml, overlay.json) are single records, so replacing
// one is atomic (one IndexedDB put).

import { getMany, set, promisifyRequest } from 'idb-keyval';
import type { DeltaDirectory, FolderLock } from './directory.js';
import { lockFolder, folderWriterWarning, FOLDER_LOCK_FILE } from './web-lock.js';
import { IdbStore, IDB_DEFAULT_DB, IDB_DEFAULT_STORE, type IdbOpenOptions } from './idb.js';
import { idbStore } from './idb-db.js';
import { PloopError, ioError } from '../errors.js';

export class IdbDirectory implements DeltaDirectory {
  readonly name: string;
  readonly path: string;
  readonly #options: IdbOpenOptions;

  private constructor(path: string, options: IdbOpenOptions) {
    this.path = path;
    this.name = `idb:${path}`;
    this.#options = options;
  }

  /** The folder `path` (e.g. 'disks/vm1') in database `db` / object store `store`. */
  static async open(path: string, options: Pick<IdbOpenOptions, 'db' | 'store' | 'chunkBytes' | 'maxDirtyBytes' | 'durability'> = {}): Promise<IdbDirectory> {
    if (typeof path !== 'string' || path === '' || path.endsWith('/')) throw new PloopError('EINVAL', `idb: folder ${JSON.stringify(path)} is not a name like "disks/vm1"`);
    return new IdbDirectory(path, options);
  }

  /** Delete the folder and every file in it (no error when it does not exist). */
  static async remove(path: string, options: { db?: string; store?: string } = {}): Promise<void> {
    const use = idbStore(options.db ?? IDB_DEFAULT_DB, options.store ?? IDB_DEFAULT_STORE);
    try {
      await use('readwrite', (s) => {
        // Keys are [file path, index | 'meta' | 'text']; every file path of the folder starts with "path/".
        s.delete(IDBKeyRange.bound([`${path}/`], [`${path}/\uffff`]));
        return promisifyRequest(s.transaction);
      });
    } catch (e) {
      throw ioError(`idb: remove folder ${path}`, e);
    }
  }

  #file(file: string): string {
    if (file === '' || file.includes('/')) throw new PloopError('EINVAL', `idb: file name ${JSON.stringify(file)} must be a plain name in the folder`, { file });
    return `${this.path}/${file}`;
  }

  openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<IdbStore> {
    return IdbStore.open(this.#file(file), { ...this.#options, ...options });
  }

  async readText(file: string): Promise<string | null> {
    try {
      const [text] = await getMany<string>([[this.#file(file), 'text']], this.#use());
      return typeof text === 'string' ? text : null;
    } catch (e) {
      throw ioError(`idb: read ${this.path}/${file}`, e);
    }
  }

  async writeTextAtomic(file: string, text: string): Promise<void> {
    try {
      await set([this.#file(file), 'text'], text, this.#use());
    } catch (e) {
      throw ioError(`idb: replace ${this.path}/${file}`, e);
    }
  }

  async remove(file: string): Promise<void> {
    await IdbStore.remove(this.#file(file), this.#options);
  }

  /** One writer at a time: the Web Lock named after the folder's descriptor (as IdbStore names its images). */
  lockForWriting(): Promise<FolderLock> {
    return lockFolder(this.#lockName(), this.name);
  }

  writerWarning(): Promise<string | null> {
    return folderWriterWarning(this.#lockName(), this.name);
  }

  #lockName(): string {
    return `ploop-wasm:idb:${this.#options.db ?? IDB_DEFAULT_DB}/${this.#options.store ?? IDB_DEFAULT_STORE}/${this.path}/${FOLDER_LOCK_FILE}`;
  }

  /** The names of the files in the folder (images and texts). */
  async list(): Promise<string[]> {
    const prefix = `${this.path}/`;
    let keys: IDBValidKey[];
    try {
      keys = await this.#use()('readonly', (s) => promisifyRequest(s.getAllKeys(IDBKeyRange.bound([prefix], [`${prefix}\uffff`]))));
    } catch (e) {
      throw ioError(`idb: list ${this.path}`, e);
    }
    const names = new Set<string>();
    for (const k of keys as Array<[string, number | string]>) {
      const name = k[0].slice(prefix.length);
      // Only the folder's own files: 'meta' marks an image, 'text' a text file.
      if (!name.includes('/') && (k[1] === 'meta' || k[1] === 'text')) names.add(name);
    }
    return [...names].sort();
  }

  #use() {
    return idbStore(this.#options.db ?? IDB_DEFAULT_DB, this.#options.store ?? IDB_DEFAULT_STORE, this.#options.durability);
  }
}

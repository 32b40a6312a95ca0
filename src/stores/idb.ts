// SPDX-License-Identifier: MIT
// A store in IndexedDB through idb-keyval: the image as fixed-size chunks (32 KiB by default)
// keyed [path, index], plus a metadata record [path, 'meta'] = { size, chunkBytes }. Writes
// land in a buffer of dirty chunks and are committed together (one transaction: the chunks and
// the metadata, so size and data never disagree) on flush() or when the buffer grows past its
// bound; reads take dirty chunks first, the rest in one getMany. Chunks never written are not
// stored and read as zeros; truncate drops the chunks past the end.

import { getMany, setMany, promisifyRequest, type UseStore } from 'idb-keyval';
import { idbStore } from './idb-db.js';
import type { BlockStore } from './block-store.js';
import { PloopError, ioError } from '../errors.js';
import { holdWebLock, webLockHeld, webLockHolder } from './web-lock.js';
import { writerActive, writerRefused } from './in-use.js';

export const IDB_DEFAULT_DB = 'ploop-wasm';
export const IDB_DEFAULT_STORE = 'images';
// 32 KiB, not 64: Chromium stores a value whose serialized form is larger than 64 KiB
// (Blink's IDBValueWrapper threshold) as a Blob in a file of its own, and a 64 KiB chunk is
// 65564 bytes serialized. Every 64 KiB chunk was a file to create, write (and with strict
// durability fsync) and later delete; 32 KiB chunks stay inside the database's log. Images keep
// the chunk size they were created with (recorded in their metadata).
const DEFAULT_CHUNK_BYTES = 32 << 10;
const DEFAULT_DIRTY_BYTES = 8 << 20;
const DEFAULT_CACHE_BYTES = 8 << 20;

export interface IdbOpenOptions {
  writable?: boolean;
  /** Create the image (empty), or empty it when it exists. */
  create?: boolean;
  /** Database and object store (default 'ploop-wasm' / 'images'). */
  db?: string;
  store?: string;
  /**
   * Chunk size of a new image (default 32 KiB); an existing image keeps its own. Above 65508
   * bytes Chromium keeps each chunk in a file of its own, which costs more than it saves.
   */
  chunkBytes?: number;
  /** Dirty bytes kept before a commit starts by itself (default 8 MiB). */
  maxDirtyBytes?: number;
  /**
   * Clean chunks kept in memory after a read or commit (default 8 MiB, 0 = none), so that small
   * neighbouring reads do not each cost an IndexedDB transaction.
   */
  cacheBytes?: number;
  /**
   * IndexedDB durability of commits: 'strict' (default) makes flush() wait until the data is on
   * disk; 'relaxed' (Chromium's default since 121) only until the browser has it.
   */
  durability?: 'strict' | 'relaxed' | 'default';
  /** Name in messages (default: the path). */
  label?: string;
}

interface Meta {
  version: 1;
  size: number;
  chunkBytes: number;
}

type Key = [string, number | string];

/** Every key of `path` (its chunks, meta and text records). */
function pathRange(path: string): IDBKeyRange {
  return IDBKeyRange.bound([path, -Infinity], [path, []]);
}

function chunkRange(path: string, from: number): IDBKeyRange {
  return IDBKeyRange.bound([path, from], [path, Infinity]);
}

export class IdbStore implements BlockStore {
  /** Chunk size of new images. */
  static readonly DEFAULT_CHUNK_BYTES = DEFAULT_CHUNK_BYTES;
  readonly name: string;
  readonly writable: boolean;
  readonly path: string;
  readonly chunkBytes: number;
  /** A writer holding the image's Web Lock while this store opened read-only. */
  readonly openWarnings: readonly string[];
  readonly #use: UseStore;
  readonly #maxDirtyBytes: number;
  readonly #cacheBytes: number;
  /** Clean chunks, least recently used first (Map order). */
  readonly #clean = new Map<number, Uint8Array>();
  /** Counts chunks made dirty: a fetch that saw it change must not cache what it read. */
  #dirtied = 0;
  #size: number;
  /** Chunks changed since the last commit began (full chunkBytes buffers). */
  #dirty = new Map<number, Uint8Array>();
  /** Chunks of the commit in flight; read from here until it completes. */
  #committing: Map<number, Uint8Array> | null = null;
  /** Stored chunks from this index on are dropped by the next commit (after a shrink). */
  #dropFrom = Infinity;
  #committingDropFrom = Infinity;
  #metaDirty = false;
  /** Commits run one after another. */
  #commits: Promise<void> = Promise.resolve();
  /** Writes and truncates run one after another (they may load a chunk first). */
  #writes: Promise<void> = Promise.resolve();
  #failure: unknown = null;
  #release: (() => void) | null;
  #closed = false;

  private constructor(path: string, use: UseStore, meta: Meta, writable: boolean, options: IdbOpenOptions, release: (() => void) | null, openWarnings: string[]) {
    this.path = path;
    this.openWarnings = openWarnings;
    this.name = `idb:${options.label ?? path}`;
    this.#use = use;
    this.chunkBytes = meta.chunkBytes;
    this.#size = meta.size;
    this.writable = writable;
    this.#maxDirtyBytes = options.maxDirtyBytes ?? DEFAULT_DIRTY_BYTES;
    this.#cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.#release = release;
  }

  /** Open the image stored under `path` (any string, e.g. 'disks/vm1.hds'). */
  static async open(path: string, options: IdbOpenOptions = {}): Promise<IdbStore> {
    if (typeof path !== 'string' || path === '') throw new PloopError('EINVAL', `idb: path ${JSON.stringify(path)} is not a non-empty string`);
    const label = options.label ?? path;
    const writable = !!(options.writable || options.create);
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunkBytes) || chunkBytes < 512 || chunkBytes > 64 << 20) {
      throw new PloopError('EINVAL', `idb: chunkBytes ${chunkBytes} is out of range, expected an integer from 512 to ${64 << 20}`);
    }
    const use = idbStore(options.db ?? IDB_DEFAULT_DB, options.store ?? IDB_DEFAULT_STORE, options.durability);
    // Two stores with separate buffers must not write one image (here, in another tab or a
    // worker); a reader is told when a writer has it.
    const lockName = `ploop-wasm:idb:${options.db ?? IDB_DEFAULT_DB}/${options.store ?? IDB_DEFAULT_STORE}/${path}`;
    const release = writable
      ? await holdWebLock(lockName, () => writerRefused('image', `idb:${label}`, webLockHolder(lockName), { lock: lockName }))
      : null;
    const warnings = !writable && (await webLockHeld(lockName)) ? [writerActive('image', `idb:${label}`, webLockHolder(lockName))] : [];
    try {
      let meta: Meta;
      if (options.create) {
        meta = { version: 1, size: 0, chunkBytes };
        await use('readwrite', (s) => {
          s.delete(pathRange(path));
          s.put(meta, [path, 'meta']);
          return promisifyRequest(s.transaction);
        });
      } else {
        const [found] = await getMany<Meta>([[path, 'meta']], use);
        if (!found) throw new PloopError('EIO', `idb: open ${label} failed: no such file`);
        if (found.version !== 1 || !Number.isSafeInteger(found.size) || !Number.isInteger(found.chunkBytes) || found.chunkBytes <= 0) {
          throw new PloopError('ECORRUPT', `idb: ${label}: metadata ${JSON.stringify(found)} is not { version: 1, size, chunkBytes }`);
        }
        meta = found;
      }
      return new IdbStore(path, use, meta, writable, options, release, warnings);
    } catch (e) {
      release?.();
      throw ioError(`idb: open ${label}`, e);
    }
  }

  /** Delete the image stored under `path` (no error when there is none). */
  static async remove(path: string, options: { db?: string; store?: string } = {}): Promise<void> {
    const use = idbStore(options.db ?? IDB_DEFAULT_DB, options.store ?? IDB_DEFAULT_STORE);
    try {
      await use('readwrite', (s) => {
        s.delete(pathRange(path));
        return promisifyRequest(s.transaction);
      });
    } catch (e) {
      throw ioError(`idb: remove ${path}`, e);
    }
  }

  async size(): Promise<number> {
    this.#check('size');
    return this.#size;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    this.#check('read');
    const end = Math.min(this.#size, offset + into.length);
    if (end <= offset) return 0;
    const first = Math.floor(offset / this.chunkBytes);
    const last = Math.floor((end - 1) / this.chunkBytes);
    const chunks = await this.#chunks(first, last);
    for (let i = first; i <= last; i++) {
      const chunkStart = i * this.chunkBytes;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(end, chunkStart + this.chunkBytes);
      const c = chunks.get(i);
      if (c) into.set(c.subarray(from - chunkStart, to - chunkStart), from - offset);
      else into.fill(0, from - offset, to - offset);
    }
    return end - offset;
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write');
    this.#writable('write');
    return this.#serialized(async () => {
      const end = offset + data.length;
      if (data.length === 0) return;
      const first = Math.floor(offset / this.chunkBytes);
      const last = Math.floor((end - 1) / this.chunkBytes);
      // Chunks only partly covered keep their other bytes: load those (one getMany) first.
      const partial: number[] = [];
      if (offset % this.chunkBytes !== 0) partial.push(first);
      if (end % this.chunkBytes !== 0 && end < this.#size && !partial.includes(last)) partial.push(last);
      const loaded = partial.length ? await this.#chunks(Math.min(...partial), Math.max(...partial), partial) : new Map<number, Uint8Array>();
      // From here on synchronous: no commit can take a chunk between "get" and "modify".
      for (let i = first; i <= last; i++) {
        const chunkStart = i * this.chunkBytes;
        const from = Math.max(offset, chunkStart);
        const to = Math.min(end, chunkStart + this.chunkBytes);
        const chunk = this.#dirtyChunk(i, loaded);
        // A copy, never the caller's view: it may be on a SharedArrayBuffer, which IDB refuses.
        chunk.set(data.subarray(from - offset, to - offset), from - chunkStart);
      }
      if (end > this.#size) {
        this.#size = end;
        this.#metaDirty = true;
      }
      if (this.#dirty.size * this.chunkBytes >= this.#maxDirtyBytes) void this.#commit(true).catch(() => {});
    });
  }

  async flush(): Promise<void> {
    this.#check('flush');
    if (!this.writable) return;
    await this.#writes;
    await this.#commit();
  }

  truncate(size: number): Promise<void> {
    this.#check('truncate');
    this.#writable('truncate');
    if (!Number.isSafeInteger(size) || size < 0) return Promise.reject(new PloopError('EINVAL', `${this.name}: truncate to ${size} refused, expected a byte count >= 0`));
    return this.#serialized(async () => {
      if (size < this.#size) {
        const keep = Math.ceil(size / this.chunkBytes);
        for (const i of this.#dirty.keys()) if (i >= keep) this.#dirty.delete(i);
        for (const i of this.#clean.keys()) if (i >= keep) this.#clean.delete(i);
        this.#dropFrom = Math.min(this.#dropFrom, keep);
        // The last kept chunk's tail must read as zeros if the store grows again.
        if (size % this.chunkBytes !== 0) {
          const i = keep - 1;
          const loaded = await this.#chunks(i, i);
          this.#dirtyChunk(i, loaded).fill(0, size % this.chunkBytes);
        }
      }
      if (size !== this.#size) {
        this.#size = size;
        this.#metaDirty = true;
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.writable) await this.flush();
    } finally {
      this.#closed = true;
      this.#clean.clear();
      this.#release?.();
      this.#release = null;
    }
  }

  /** Chunks first..last (or only `only`) as they are now: dirty, committing, else stored; absent = zeros. */
  async #chunks(first: number, last: number, only?: number[]): Promise<Map<number, Uint8Array>> {
    const out = new Map<number, Uint8Array>();
    const fetch: number[] = [];
    const dropFrom = Math.min(this.#dropFrom, this.#committingDropFrom);
    for (const i of only ?? range(first, last)) {
      const c = this.#dirty.get(i) ?? this.#inCommit(i) ?? this.#cached(i);
      if (c) out.set(i, c);
      else if (i < dropFrom) fetch.push(i);
    }
    if (fetch.length > 0) {
      const dirtied = this.#dirtied;
      let values: Array<Uint8Array | undefined>;
      try {
        values = await getMany<Uint8Array>(fetch.map((i): Key => [this.path, i]), this.#use);
      } catch (e) {
        throw ioError(`${this.name}: read chunks ${fetch[0]}..${fetch[fetch.length - 1]}`, e);
      }
      fetch.forEach((i, k) => {
        const v = values[k];
        // A dirty version that appeared while we waited is newer than the stored one.
        const now = this.#dirty.get(i) ?? this.#inCommit(i);
        if (now) out.set(i, now);
        else if (v) {
          const chunk = v instanceof Uint8Array ? v : new Uint8Array(v as ArrayBuffer);
          out.set(i, chunk);
          if (this.#dirtied === dirtied) this.#cache(i, chunk);
        }
      });
    }
    return out;
  }

  /** Chunk i of the commit in flight, unless a shrink since dropped it. */
  #inCommit(i: number): Uint8Array | undefined {
    return i < this.#dropFrom ? this.#committing?.get(i) : undefined;
  }

  /** The dirty buffer of chunk i, made from the committing or loaded version if needed. */
  #dirtyChunk(i: number, loaded: Map<number, Uint8Array>): Uint8Array {
    let c = this.#dirty.get(i);
    if (c) return c;
    this.#dirtied++;
    this.#clean.delete(i);
    const base = this.#inCommit(i) ?? loaded.get(i);
    c = new Uint8Array(this.chunkBytes);
    if (base) c.set(base.subarray(0, this.chunkBytes));
    this.#dirty.set(i, c);
    return c;
  }

  #cached(i: number): Uint8Array | undefined {
    const c = this.#clean.get(i);
    if (c) {
      this.#clean.delete(i);
      this.#clean.set(i, c);
    }
    return c;
  }

  #cache(i: number, chunk: Uint8Array): void {
    if (this.#cacheBytes < this.chunkBytes) return;
    this.#clean.delete(i);
    this.#clean.set(i, chunk);
    for (const k of this.#clean.keys()) {
      if (this.#clean.size * this.chunkBytes <= this.#cacheBytes) break;
      this.#clean.delete(k);
    }
  }

  #serialized(fn: () => Promise<void>): Promise<void> {
    const run = this.#writes.then(fn);
    this.#writes = run.catch(() => {});
    return run;
  }

  /**
   * Commit what is dirty now (after the commits before it); rejects with a failed commit's error.
   * A background commit's failure stays recorded and is thrown by the next flush.
   */
  #commit(background = false): Promise<void> {
    const run = this.#commits.then(async () => {
      if (this.#failure) {
        const f = this.#failure;
        this.#failure = null;
        throw f;
      }
      if (this.#dirty.size === 0 && !this.#metaDirty && this.#dropFrom === Infinity) return;
      const chunks = this.#dirty;
      const dropFrom = this.#dropFrom;
      const meta: Meta = { version: 1, size: this.#size, chunkBytes: this.chunkBytes };
      this.#committing = chunks;
      this.#committingDropFrom = dropFrom;
      this.#dirty = new Map();
      this.#dropFrom = Infinity;
      this.#metaDirty = false;
      const entries: Array<[Key, unknown]> = [...chunks].map(([i, c]): [Key, unknown] => [[this.path, i], c]);
      entries.push([[this.path, 'meta'], meta]);
      try {
        if (dropFrom === Infinity) {
          await setMany(entries, this.#use);
        } else {
          // A shrink: drop the chunks past the end and write the rest in the same transaction.
          await this.#use('readwrite', (s) => {
            s.delete(chunkRange(this.path, dropFrom));
            for (const [k, v] of entries) s.put(v, k);
            return promisifyRequest(s.transaction);
          });
        }
      } catch (e) {
        // Keep the data: what was not rewritten since goes back to dirty for the next flush.
        for (const [i, c] of chunks) if (!this.#dirty.has(i) && i < this.#dropFrom) this.#dirty.set(i, c);
        this.#dropFrom = Math.min(this.#dropFrom, dropFrom);
        this.#metaDirty = true;
        throw ioError(`${this.name}: commit ${chunks.size} chunks`, e);
      } finally {
        this.#committing = null;
        this.#committingDropFrom = Infinity;
      }
      // Committed chunks are the stored version now (their buffers are never written again).
      for (const [i, c] of chunks) if (!this.#dirty.has(i) && i < this.#dropFrom) this.#cache(i, c);
    });
    this.#commits = run.catch((e) => {
      if (background) this.#failure ??= e;
    });
    return run;
  }

  #check(operation: string): void {
    if (this.#closed) throw new PloopError('ECLOSED', `${this.name}: ${operation} refused, the store is closed`);
  }

  #writable(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `${this.name}: ${operation} refused, the store is read-only`, { store: this.name, operation });
  }
}

function range(first: number, last: number): number[] {
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(i);
  return out;
}

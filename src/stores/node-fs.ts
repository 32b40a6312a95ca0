// SPDX-License-Identifier: MIT
// A store on a file through Node's fs. flush() is fdatasync.

import { open, type FileHandle } from 'node:fs/promises';
import type { BlockStore } from './block-store.js';
import { PloopError, ioError } from '../errors.js';

export class NodeFileStore implements BlockStore {
  readonly name = 'node-fs';
  readonly writable: boolean;
  readonly path: string;
  #fh: FileHandle;
  #size: number;

  private constructor(path: string, fh: FileHandle, size: number, writable: boolean) {
    this.path = path;
    this.#fh = fh;
    this.#size = size;
    this.writable = writable;
  }

  /** Open an existing file (or create it with `create: true`). */
  static async open(path: string, options: { writable?: boolean; create?: boolean } = {}): Promise<NodeFileStore> {
    const writable = options.writable ?? false;
    const flags = options.create ? 'w+' : writable ? 'r+' : 'r';
    let fh: FileHandle;
    try {
      fh = await open(path, flags);
    } catch (e) {
      throw ioError(`open ${path}`, e);
    }
    const { size } = await fh.stat();
    return new NodeFileStore(path, fh, size, writable || !!options.create);
  }

  async size(): Promise<number> {
    return this.#size;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    let done = 0;
    try {
      while (done < into.length) {
        const { bytesRead } = await this.#fh.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (e) {
      throw ioError(`read ${this.path} at ${offset}`, e);
    }
    return done;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write');
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.#fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw ioError(`write ${this.path} at ${offset}`, e);
    }
    this.#size = Math.max(this.#size, offset + data.length);
  }

  async flush(): Promise<void> {
    if (!this.writable) return;
    try {
      await this.#fh.datasync();
    } catch (e) {
      throw ioError(`flush ${this.path}`, e);
    }
  }

  async truncate(size: number): Promise<void> {
    this.#check('truncate');
    try {
      await this.#fh.truncate(size);
    } catch (e) {
      throw ioError(`truncate ${this.path} to ${size}`, e);
    }
    this.#size = size;
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }

  #check(operation: string): void {
    if (!this.writable) throw new PloopError('EREADONLY', `${this.path}: ${operation} refused, the file was opened read-only`);
  }
}

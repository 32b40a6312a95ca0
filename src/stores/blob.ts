// SPDX-License-Identifier: MIT
// A read-only store over a File or Blob (a dropped or picked file, a fetched body). Reads slice
// the Blob, so only the bytes asked for are read from disk; nothing is kept in memory.

import type { StoreSpec } from '../runners/protocol.js';
import type { BlockStore } from './block-store.js';
import { PloopError, ioError } from '../errors.js';

export class BlobStore implements BlockStore {
  readonly name: string;
  readonly writable = false;
  readonly blob: Blob;

  /** `name` defaults to the File's name, else 'blob'. */
  /** A Blob or File crosses to a worker by reference. */
  spec(): StoreSpec {
    return { kind: 'blob', blob: this.blob, name: this.name };
  }

  constructor(blob: Blob, options: { name?: string } = {}) {
    this.blob = blob;
    this.name = options.name ?? ((blob as Partial<File>).name || 'blob');
  }

  async size(): Promise<number> {
    return this.blob.size;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const end = Math.min(this.blob.size, offset + into.length);
    if (end <= offset) return 0;
    let bytes: ArrayBuffer;
    try {
      bytes = await this.blob.slice(offset, end).arrayBuffer();
    } catch (e) {
      // A picked File whose file on disk changed or vanished fails here (NotReadableError).
      throw ioError(`${this.name}: read ${end - offset} bytes at ${offset}`, e);
    }
    into.set(new Uint8Array(bytes));
    return bytes.byteLength;
  }

  async write(_offset: number, _data: Uint8Array): Promise<void> {
    throw readOnly(this.name, 'write');
  }

  async truncate(_size: number): Promise<void> {
    throw readOnly(this.name, 'truncate');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}

/** The error every read-only store gives for write/truncate. */
export function readOnly(store: string, operation: string): PloopError {
  return new PloopError('EREADONLY', `${store}: ${operation} refused, the store is read-only`, { store, operation });
}

// SPDX-License-Identifier: MIT
// DeltaDirectory in memory: files are MemoryStores kept by name (tests, browser scratch disks).

import type { DeltaDirectory } from './directory.js';
import { MemoryStore } from './memory.js';
import { PloopError } from '../errors.js';

/** A store view that ignores close(), so the directory keeps the bytes. */
class KeptStore extends MemoryStore {
  override async close(): Promise<void> {}
}

export class MemoryDirectory implements DeltaDirectory {
  readonly name: string;
  readonly files = new Map<string, MemoryStore>();
  readonly texts = new Map<string, string>();

  constructor(name = 'memory') {
    this.name = name;
  }

  async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<MemoryStore> {
    let store = this.files.get(file);
    if (!store || options.create) {
      if (!options.create) throw new PloopError('EIO', `open ${this.name}/${file} failed: no such file`);
      store = new KeptStore();
      this.files.set(file, store);
    }
    // One MemoryStore per file; read-only openers get a read-only view of the same bytes.
    if (options.writable || options.create) return store;
    const view = new KeptStore(store.bytes(), { writable: false });
    return view;
  }

  async readText(file: string): Promise<string | null> {
    return this.texts.get(file) ?? null;
  }

  async writeTextAtomic(file: string, text: string): Promise<void> {
    this.texts.set(file, text);
  }

  async remove(file: string): Promise<void> {
    this.files.delete(file);
    this.texts.delete(file);
  }
}

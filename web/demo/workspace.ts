// SPDX-License-Identifier: MIT
// The page's disk folder: a DeltaDirectory whose files are any BlockStores (a read-only Blob or
// HTTP range store for the base, memory stores for deltas the page creates), so that the
// library's stack operations (snapshot, open) run on it unchanged.

import {
  MemoryStore, PloopError, openStackDir, readDescriptor, descriptorChain, PloopImage, newDescriptor, serializeDescriptor, parseHeader, DESCRIPTOR_FILE,
  type BlockStore, type DeltaDirectory,
} from '../../src/browser.js';

/** A view of a store whose close() does nothing: the workspace owns the store, images come and go. */
function kept(store: BlockStore): BlockStore {
  return {
    name: store.name,
    writable: store.writable,
    size: () => store.size(),
    read: (o, b) => store.read(o, b),
    write: (o, d) => store.write(o, d),
    flush: () => store.flush(),
    truncate: (s) => store.truncate(s),
    close: async () => {},
  };
}

export class Workspace implements DeltaDirectory {
  readonly name: string;
  readonly files = new Map<string, BlockStore>();
  readonly texts = new Map<string, string>();

  constructor(name: string) {
    this.name = name;
  }

  /** A workspace holding one image file (no descriptor). */
  static single(name: string, store: BlockStore): Workspace {
    const ws = new Workspace(name);
    ws.files.set(name, store);
    return ws;
  }

  async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<BlockStore> {
    if (options.create) {
      const store = new MemoryStore();
      this.files.set(file, store);
      return kept(store);
    }
    const store = this.files.get(file);
    if (!store) throw new PloopError('EIO', `open ${this.name}/${file} failed: no such file in the workspace`);
    if (options.writable && !store.writable) throw new PloopError('EREADONLY', `${this.name}/${file} is read-only (${store.name}); take a snapshot to get a writable top delta`);
    return kept(store);
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

  get hasDescriptor(): boolean {
    return this.texts.has(DESCRIPTOR_FILE);
  }

  /** The only image file of a workspace without a descriptor. */
  get singleFile(): string {
    return [...this.files.keys()][0];
  }

  /** Give a single-file workspace a descriptor, so that it can take snapshots. */
  async describeSingle(): Promise<void> {
    if (this.hasDescriptor) return;
    const file = this.singleFile;
    const store = this.files.get(file)!;
    const head = new Uint8Array(64);
    await store.read(0, head);
    const header = parseHeader(head);
    this.texts.set(DESCRIPTOR_FILE, serializeDescriptor(newDescriptor({ sizeSectors: header.nbSectors, blocksizeSectors: header.tracks, file })));
  }

  /** Open the image: the stack named by the descriptor, or the single file; writable when the top store is. */
  async open(onWarning: (m: string) => void): Promise<PloopImage> {
    if (this.hasDescriptor) {
      const chain = descriptorChain(await readDescriptor(this));
      const top = this.files.get(chain[chain.length - 1].file);
      return openStackDir(this, { writable: !!top?.writable, onWarning });
    }
    const store = this.files.get(this.singleFile)!;
    return PloopImage.open(kept(store), { writable: store.writable, onWarning });
  }
}

// SPDX-License-Identifier: MIT
// The page's disk folder: a DeltaDirectory whose files are any BlockStores (a read-only Blob or
// HTTP range store for the base, memory stores for deltas the page creates), so that the
// library's stack operations (snapshot, open) run on it unchanged. A workspace reopened from
// OPFS or IndexedDB has that folder as its `backing`: new deltas and the descriptor are written
// through to it, so every change persists in place.

import {
  MemoryStore, PloopError, openStackDir, readDescriptor, descriptorChain, parseDescriptor, PloopImage, newDescriptor, serializeDescriptor, parseHeader, DESCRIPTOR_FILE,
  keptOpen, type BlockStore, type DeltaDirectory,
} from '../../src/browser.js';


export class Workspace implements DeltaDirectory {
  readonly name: string;
  readonly files = new Map<string, BlockStore>();
  readonly texts = new Map<string, string>();
  readonly backing: DeltaDirectory | null;

  constructor(name: string, backing: DeltaDirectory | null = null) {
    this.name = name;
    this.backing = backing;
  }

  /** Open the disk folder `dir` (descriptor + deltas) with its stores: the top writable, the rest read-only. */
  static async fromDirectory(name: string, dir: DeltaDirectory): Promise<Workspace> {
    const ws = new Workspace(name, dir);
    const text = await dir.readText(DESCRIPTOR_FILE);
    if (text === null) throw new PloopError('EIO', `${dir.name}: no ${DESCRIPTOR_FILE}; the stored image is incomplete`);
    ws.texts.set(DESCRIPTOR_FILE, text);
    const chain = descriptorChain(parseDescriptor(text));
    try {
      for (let level = 0; level < chain.length; level++) {
        ws.files.set(chain[level].file, await dir.openStore(chain[level].file, { writable: level === chain.length - 1 }));
      }
    } catch (e) {
      await ws.dispose();
      throw e;
    }
    return ws;
  }

  /** Close every store (a stored image's writable top holds an exclusive handle or lock until then). */
  async dispose(): Promise<void> {
    for (const store of this.files.values()) await store.close().catch(() => {});
  }

  /** A workspace holding one image file (no descriptor). */
  static single(name: string, store: BlockStore): Workspace {
    const ws = new Workspace(name);
    ws.files.set(name, store);
    return ws;
  }

  async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<BlockStore> {
    if (options.create) {
      const store = this.backing ? await this.backing.openStore(file, { create: true }) : new MemoryStore();
      await this.files.get(file)?.close();
      this.files.set(file, store);
      return keptOpen(store);
    }
    const store = this.files.get(file);
    if (!store) throw new PloopError('EIO', `open ${this.name}/${file} failed: no such file in the workspace`);
    if (options.writable && !store.writable) throw new PloopError('EREADONLY', `${this.name}/${file} is read-only (${store.name}); take a snapshot to get a writable top delta`);
    return keptOpen(store);
  }

  async readText(file: string): Promise<string | null> {
    return this.texts.get(file) ?? null;
  }

  async writeTextAtomic(file: string, text: string): Promise<void> {
    await this.backing?.writeTextAtomic(file, text);
    this.texts.set(file, text);
  }

  async remove(file: string): Promise<void> {
    await this.files.get(file)?.close();
    await this.backing?.remove(file);
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
    await this.writeTextAtomic(DESCRIPTOR_FILE, serializeDescriptor(newDescriptor({ sizeSectors: header.nbSectors, blocksizeSectors: header.tracks, file })));
  }

  /** Open the image: the stack named by the descriptor, or the single file; writable when the top store is. */
  async open(onWarning: (m: string) => void): Promise<PloopImage> {
    if (this.hasDescriptor) {
      const chain = descriptorChain(await readDescriptor(this));
      const top = this.files.get(chain[chain.length - 1].file);
      return openStackDir(this, { writable: !!top?.writable, onWarning });
    }
    const store = this.files.get(this.singleFile)!;
    return PloopImage.open(keptOpen(store), { writable: store.writable, onWarning });
  }
}

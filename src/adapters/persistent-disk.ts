// SPDX-License-Identifier: MIT
// An emulator disk whose writes survive a reload: a read-only base (File/Blob, HTTP range, an
// OPFS file…; one image or a disk folder's chain) under a writable ploop delta kept in a DeltaDirectory (an OPFS folder in the
// browser; IndexedDB or memory work the same). Adds what an emulator page needs on top of
// openOverlay: a generation counter (bumped by "reset to base", part of saved machine states),
// exports, and the flush policy.
//
// Flush policy: writes reach the delta as soon as the emulator issues them (they are in the
// OPFS file, not in a memory cache); flush() additionally makes them durable and writes pending
// BAT pages. It runs on an explicit call, every `flushIntervalMs` while there were writes,
// and when the page is hidden or unloaded (visibilitychange / pagehide / beforeunload).

import { keptOpen, type BlockStore } from '../stores/block-store.js';
import type { DeltaDirectory } from '../stores/directory.js';
import { openOverlay, OVERLAY_FILE } from '../engine/overlay.js';
import type { DeltaSource, PloopImage } from '../engine/image.js';
import { PloopError } from '../errors.js';
import { imageBlockDevice, type BlockDevice } from './block-device.js';
import { exportBlob, type ExportKind } from './export.js';
import { V86Disk, type V86DiskOptions } from './v86/disk.js';
import type { DiskBase } from './disk-source.js';

const GENERATION_FILE = 'generation.json';
const TOP_FILE = 'top.hds';

export interface PersistentDiskOptions {
  /** The read-only base: one image, or a stack's levels bottom first (see `openBase`). */
  base: BlockStore | DeltaSource[];
  /** Of a single-store base: 'ploop' (default) or 'raw'. */
  baseKind?: 'ploop' | 'raw';
  /** Where the top delta lives; one folder per base image. */
  dir: DeltaDirectory;
  /** Names the base (its URL or file name and size); a folder made over another base is refused. */
  baseId: string;
  /** Where the base came from, when opened with openPersistentDisk (label, HTTP traffic). */
  source?: DiskBase;
  /** Cluster size of a new delta over a raw base (default 64 KiB: small guest writes stay small). */
  clusterSize?: number;
  onWarning?: (message: string) => void;
}

/** Something with addEventListener, e.g. `window` (kept structural so Node can test it). */
export interface FlushEvents {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

export class PersistentDisk {
  readonly options: PersistentDiskOptions;
  #image: PloopImage;
  #generation: number;
  #writesSinceFlush = 0;
  #closed = false;

  private constructor(options: PersistentDiskOptions, image: PloopImage, generation: number) {
    this.options = options;
    this.#image = image;
    this.#generation = generation;
  }

  /** Open (or create) the delta over `base`. Once open, the disk owns `base`: close() closes it. */
  static async open(options: PersistentDiskOptions): Promise<PersistentDisk> {
    const generation = await readGeneration(options.dir);
    return new PersistentDisk(options, await openTop(options), generation);
  }

  /** The whole stack (base + delta), writable. */
  get image(): PloopImage {
    return this.#image;
  }

  /** Writes since the last flush (the flush policy flushes while this is above 0). */
  get unflushedWrites(): number {
    return this.#writesSinceFlush;
  }

  /** How many times the disk was reset to its base. */
  get generation(): number {
    return this.#generation;
  }

  get imageId(): string {
    return this.options.baseId;
  }

  /** The stack as a block device; counts writes for the periodic flush. */
  get device(): BlockDevice {
    const inner = imageBlockDevice(this.#image);
    return {
      sizeBytes: inner.sizeBytes,
      read: (offset, length) => inner.read(offset, length),
      write: (offset, data) => {
        this.#writesSinceFlush++;
        return inner.write(offset, data);
      },
      flush: () => this.flush(),
    };
  }

  /** A v86 `hda` on this disk, exporting the merged stack through get_as_file. */
  v86Disk(options: V86DiskOptions = {}): V86Disk {
    return new V86Disk(this.device, {
      imageId: this.imageId, generation: this.#generation, exportFile: () => this.export('merged'), ...options,
    });
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    // Only the writes before the flush are covered by it; those landing meanwhile stay counted.
    const covered = this.#writesSinceFlush;
    await this.#image.flush();
    this.#writesSinceFlush = Math.max(0, this.#writesSinceFlush - covered);
  }

  /** The merged stack, the delta alone, or the raw disk. */
  export(kind: ExportKind): Promise<Blob> {
    this.#checkOpen();
    return exportBlob(this.#image, kind);
  }

  /**
   * Drop every change: the delta is deleted and a new empty one created, and the generation goes
   * up, so machine states saved before cannot be restored onto the reset disk. Stop the
   * emulator first and make a new adapter afterwards (`v86Disk()`).
   */
  async resetToBase(): Promise<void> {
    this.#checkOpen();
    await this.#image.close();
    const { dir } = this.options;
    // overlay.json first: without it the delta is recreated on open even if removing the file fails.
    await dir.remove(OVERLAY_FILE);
    await dir.remove(TOP_FILE);
    this.#generation++;
    await dir.writeTextAtomic(GENERATION_FILE, JSON.stringify({ generation: this.#generation }) + '\n');
    this.#image = await openTop(this.options);
    this.#writesSinceFlush = 0;
  }

  /**
   * Flush every `intervalMs` while writes happened, and when `events` (the window) reports the
   * page hidden or going away. Returns a function that removes the policy.
   */
  installFlushPolicy(events: FlushEvents | null, intervalMs = 2000): () => void {
    const flushIfNeeded = () => {
      if (this.#closed || this.#writesSinceFlush === 0) return;
      this.flush().catch((e) => this.options.onWarning?.(`periodic flush failed: ${(e as Error).message}`));
    };
    const timer = setInterval(flushIfNeeded, intervalMs);
    const types = ['visibilitychange', 'pagehide', 'beforeunload'];
    for (const t of types) events?.addEventListener(t, flushIfNeeded);
    return () => {
      clearInterval(timer);
      for (const t of types) events?.removeEventListener(t, flushIfNeeded);
    };
  }

  /** Close the stack, then the base store (a reset keeps the base open). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#image.close();
    } finally {
      for (const store of baseStores(this.options.base)) await store.close();
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new PloopError('ECLOSED', `persistent disk ${this.options.baseId}: already closed`);
  }
}

function baseStores(base: BlockStore | DeltaSource[]): BlockStore[] {
  return Array.isArray(base) ? base.map((l) => l.store) : [base];
}

function openTop(options: PersistentDiskOptions): Promise<PloopImage> {
  // The stack closes what it opened; the base stays open across a reset (close() closes it).
  const base = Array.isArray(options.base) ? options.base.map((l) => ({ ...l, store: keptOpen(l.store) })) : keptOpen(options.base);
  return openOverlay({
    base, baseKind: options.baseKind, top: options.dir, topFile: TOP_FILE, baseId: options.baseId,
    clusterSize: options.clusterSize ?? 64 << 10, writable: true, onWarning: options.onWarning,
  });
}

async function readGeneration(dir: DeltaDirectory): Promise<number> {
  const text = await dir.readText(GENERATION_FILE);
  if (text === null) return 0;
  let value: unknown;
  try {
    value = (JSON.parse(text) as { generation?: unknown }).generation;
  } catch {
    value = undefined;
  }
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new PloopError('ECORRUPT', `persistent disk: ${dir.name}/${GENERATION_FILE} should hold {"generation": N} with N >= 0, got ${JSON.stringify(text.slice(0, 80))}`);
  }
  return value as number;
}

// SPDX-License-Identifier: MIT
// The page's exports as Blob parts: the whole stack merged into one ploop image, the top delta's
// file, or the raw disk. Chunked, so that they report progress and stop when cancelled (the
// library's adapters/export.ts does the same without those two).

import { createImage, MemoryStore, PloopImage, type BlockStore } from '../../src/browser.js';
import { HOLE } from './bat-canvas.js';

export type Progress = (done: number, total: number) => void;
const CHUNK_BYTES = 1 << 20;

/** Yield to the event loop (progress paints, Cancel stays clickable), then stop if cancelled. */
export async function checkpoint(signal: AbortSignal): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  signal.throwIfAborted();
}

/** Every cluster some level maps, copied into a new image of the same geometry. */
export async function mergedParts(image: PloopImage, signal: AbortSignal, progress: Progress): Promise<BlobPart[]> {
  const g = image.geometry;
  const out = new MemoryStore();
  await createImage(out, { size: g.virtualSize, clusterSize: g.clusterBytes, format: g.format });
  const merged = await PloopImage.open(out, { writable: true, keepStoreOpen: true });
  try {
    const extents = image.map().filter((e) => e.level !== HOLE);
    const total = extents.reduce((s, e) => s + e.length, 0);
    let done = 0;
    for (const e of extents) {
      for (let pos = 0; pos < e.length; pos += CHUNK_BYTES) {
        await checkpoint(signal);
        const n = Math.min(CHUNK_BYTES, e.length - pos);
        await merged.write(e.offset + pos, await image.read(e.offset + pos, n));
        progress((done += n), total);
      }
    }
  } finally {
    await merged.close();
  }
  return [out.bytes().slice() as Uint8Array<ArrayBuffer>];
}

/** A store's bytes, as they are (the top delta's file). */
export async function storeParts(store: BlockStore, signal: AbortSignal, progress: Progress): Promise<BlobPart[]> {
  const size = await store.size();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (let pos = 0; pos < size; pos += CHUNK_BYTES) {
    await checkpoint(signal);
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, size - pos));
    await store.read(pos, chunk);
    parts.push(chunk);
    progress(pos + chunk.length, size);
  }
  return parts;
}

/** Anything that reads the virtual disk: a PloopImage, or a ParallelImage whose runners read. */
export interface DiskReader {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** The virtual disk, byte for byte (holes as zeros). */
export async function rawParts(image: DiskReader, signal: AbortSignal, progress: Progress): Promise<BlobPart[]> {
  const size = image.size;
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (let pos = 0; pos < size; pos += CHUNK_BYTES) {
    await checkpoint(signal);
    parts.push((await image.read(pos, Math.min(CHUNK_BYTES, size - pos))) as Uint8Array<ArrayBuffer>);
    progress(Math.min(size, pos + CHUNK_BYTES), size);
  }
  return parts;
}

/** Offer `parts` as a download named `name`. */
export function download(parts: BlobPart[], name: string): void {
  offerBlob(new Blob(parts, { type: 'application/octet-stream' }), name);
}

/** Offer a Blob (or a File, which OPFS backs with disk) as a download named `name`. */
export function offerBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later, not at once: the browser may still be reading the Blob for the download.
  setTimeout(() => URL.revokeObjectURL(url), 10 * 60_000);
}

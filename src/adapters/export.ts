// SPDX-License-Identifier: MIT
// Exporting what an emulator's disk holds: the whole stack merged into one ploop image, the top
// delta alone, or the flattened raw disk. Each comes out as Blob parts (a Blob in the browser,
// a file in Node) and can be checked with qemu-img.

import type { PloopImage } from '../engine/image.js';
import { createImage } from '../engine/create.js';
import { PloopImage as ImageClass } from '../engine/image.js';
import type { Image } from '../engine/image-interface.js';
import { MemoryStore } from '../stores/memory.js';
import { LEVEL_NONE } from '../core/bat-map.js';
import { isAllZero } from '../engine/zero.js';
import { CIF_EMPTY } from '../format/header.js';

const CHUNK_BYTES = 1 << 20;
/** Byte offsets of the in-use and flags fields of the ploop header (docs/format.md, 'The header'). */
const INUSE_OFFSET = 0x2c;
const FLAGS_OFFSET = 0x34;

export type ExportKind = 'merged' | 'delta' | 'raw';

/**
 * The stack merged into one ploop image of the same geometry (a PloopImage: it walks the map of
 * every level, which only the engine has): every cluster some level maps
 * (and that is not all zeros) is copied, so the result needs no other file.
 */
export async function exportMerged(image: PloopImage): Promise<Uint8Array> {
  const store = new MemoryStore();
  await createImage(store, { size: image.size, clusterSize: image.clusterSize, format: image.geometry.format });
  const out = await ImageClass.open(store, { writable: true, keepStoreOpen: true });
  try {
    for (const e of image.map()) {
      if (e.level === LEVEL_NONE) continue;
      for (let pos = 0; pos < e.length; pos += CHUNK_BYTES) {
        const chunk = await image.read(e.offset + pos, Math.min(CHUNK_BYTES, e.length - pos));
        if (!isAllZero(chunk)) await out.write(e.offset + pos, chunk);
      }
    }
  } finally {
    await out.close();
  }
  return store.bytes().slice();
}

/**
 * The top delta's file as it is after a flush, with the in-use flag cleared and CIF_Empty set
 * right in the copy and without the unused tail (preallocation, clusters freed at the end), as
 * close() would leave it: the flush made every BAT entry point at written data, so the copy is a
 * cleanly closed image.
 */
export async function exportDelta(image: PloopImage): Promise<Uint8Array> {
  if (image.writable) await image.flush();
  const bytes = new Uint8Array(Math.min(await image.store.size(), image.usedEndBytes()));
  await image.store.read(0, bytes);
  const header = new DataView(bytes.buffer, bytes.byteOffset);
  header.setUint32(INUSE_OFFSET, 0, true);
  const flags = header.getUint32(FLAGS_OFFSET, true);
  header.setUint32(FLAGS_OFFSET, image.allocatedClusters() === 0 ? flags | CIF_EMPTY : flags & ~CIF_EMPTY, true);
  return bytes;
}

/** The flattened disk, as Blob parts of at most 1 MiB (holes come out as zeros); any image (PloopImage, ParallelImage). */
export async function exportRaw(image: Image): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  for (let pos = 0; pos < image.size; pos += CHUNK_BYTES) parts.push(await image.read(pos, Math.min(CHUNK_BYTES, image.size - pos)));
  return parts;
}

/** One of the three exports as a Blob (the browser's download; Node 20 has Blob too). */
export async function exportBlob(image: PloopImage, kind: ExportKind): Promise<Blob> {
  const parts = kind === 'merged' ? [await exportMerged(image)] : kind === 'delta' ? [await exportDelta(image)] : await exportRaw(image);
  return new Blob(parts as BlobPart[], { type: 'application/octet-stream' });
}

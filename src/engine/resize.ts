// SPDX-License-Identifier: MIT
// Resizing one ploop image offline (docs/format.md, 'Resize'). Growing may need more BAT than
// data_off leaves room for: the data clusters that sit where the new BAT goes are copied to the end
// of the file first, their entries repointed, and only then is that area zeroed and the header
// switched. Every step is flushed before the next, so a crash at any point leaves an image that
// reads the same under the old header or the new one.

import {
  serializeHeader, minDataOffSectors, newHeader, deriveGeometry, HEADER_BYTES, SECTOR_BYTES, MAX_BAT_ENTRIES, CLOSED_V21_MAGIC, CIF_EMPTY, type PloopHeader,
} from '../format/header.js';
import type { BlockStore } from '../stores/block-store.js';
import { readFully } from '../stores/block-store.js';
import { PloopError, ioError } from '../errors.js';
import { PloopImage } from './image.js';

export interface ResizeOptions {
  /** Shrink even when clusters past the new end hold data (they are dropped). */
  force?: boolean;
}

export interface ResizeResult {
  oldSize: number;
  newSize: number;
  clustersRelocated: number;
  clustersDropped: number;
}

/** Grow or shrink the image on `store` (which stays open) to `newSize` bytes (rounded up to 512). */
export async function resizeImage(target: BlockStore, newSize: number, options: ResizeOptions = {}): Promise<ResizeResult> {
  const store = namingFailures(target);
  // Open once strictly: resizing an inconsistent image would spread the damage.
  const image = await PloopImage.open(store, { writable: false, keepStoreOpen: true, onWarning: () => {} });
  const header = image.header;
  const g = image.geometry;
  await image.close();
  if (header.inUse !== 0 && header.inUse !== CLOSED_V21_MAGIC) {
    throw new PloopError('EINVAL', 'resize: the image is in use or was not closed cleanly; run check --repair first', { field: 'inuse' });
  }
  const sized = newHeader({ size: newSize, clusterBytes: g.clusterBytes, format: g.format });
  const result: ResizeResult = { oldSize: g.virtualSize, newSize: sized.nbSectors * SECTOR_BYTES, clustersRelocated: 0, clustersDropped: 0 };
  if (sized.batEntries > MAX_BAT_ENTRIES) throw new PloopError('EINVAL', `resize: ${newSize} bytes needs ${sized.batEntries} BAT entries, at most ${MAX_BAT_ENTRIES}`);
  const bat = new Uint32Array((await readFully(store, HEADER_BYTES, 4 * header.batEntries)).buffer.slice(0));
  const shrinking = sized.batEntries < header.batEntries;
  if (shrinking && !options.force) {
    for (let i = sized.batEntries; i < bat.length; i++) {
      if (bat[i] !== 0) throw new PloopError('ERANGE', `resize: cluster ${i} (virtual byte ${i * g.clusterBytes}) holds data past the new end at ${sized.nbSectors * SECTOR_BYTES}; use --force to drop it`, { clusterIndex: i });
    }
  }
  // A format extension (dirty bitmaps) describes the disk at its old size, and its clusters are
  // not in the BAT: relocation would zero it under the grown BAT and trimming could cut it off,
  // leaving an ext_off neither QEMU nor we can open. Drop it first (ext_off 0, the V21 mark back
  // to 0), as ploop does with a bitmap it cannot keep; its clusters are trimmed off at the end.
  const droppedExtension = header.extOff !== 0;
  if (droppedExtension) {
    header.extOff = 0;
    if (header.inUse === CLOSED_V21_MAGIC) header.inUse = 0;
    await store.write(0, serializeHeader(header));
    await store.flush();
  }
  const next: PloopHeader = { ...header, nbSectors: sized.nbSectors, nbSectorsHigh: 0, batEntries: sized.batEntries, cylinders: sized.cylinders };
  if (!shrinking) {
    result.clustersRelocated = await grow(store, header, next, bat, g.firstSlotByte, g.clusterBytes, g.unitBytes);
  } else {
    result.clustersDropped = await shrink(store, header, next, bat, g.firstSlotByte, g.unitBytes, g.clusterBytes);
  }
  // The last cluster may hold bytes past the smaller of the two sizes (left there by an earlier
  // shrink to a size inside that cluster); once the disk grows over them they must read as
  // zeros. Zeroed before the header switch: past the old end they are not visible until then.
  if (await zeroClusterTail(store, bat, Math.min(g.virtualSize, result.newSize), g.clusterBytes, g.unitBytes)) await store.flush();
  // A forced shrink may have dropped the last cluster: CIF_Empty says whether any is left.
  if (bat.subarray(0, next.batEntries).some((v) => v !== 0)) next.flags &= ~CIF_EMPTY;
  else next.flags |= CIF_EMPTY;
  await store.write(0, serializeHeader(next));
  await store.flush();
  if (droppedExtension) {
    // The extension's clusters, now unreferenced, may be the end of the file: trim them like a clean close does.
    const fileBytes = await store.size();
    let end = deriveGeometry(next, fileBytes).firstSlotByte;
    for (let i = 0; i < next.batEntries; i++) if (bat[i] !== 0) end = Math.max(end, bat[i] * g.unitBytes + g.clusterBytes);
    if (fileBytes > end) {
      await store.truncate(end);
      await store.flush();
    }
  }
  return result;
}

/** `store`, whose failures (any error a store outside this library throws) become PloopErrors naming the resize step. */
function namingFailures(store: BlockStore): BlockStore {
  const named = <T>(p: Promise<T>, operation: string) => p.catch((e: unknown) => {
    throw ioError(`resize: ${operation}`, e);
  });
  return {
    name: store.name,
    get writable() {
      return store.writable;
    },
    size: () => store.size(),
    read: (offset, into) => named(store.read(offset, into), `read of ${into.length} bytes at byte ${offset}`),
    write: (offset, data) => named(store.write(offset, data), `write of ${data.length} bytes at byte ${offset}`),
    flush: () => named(store.flush(), 'flush'),
    truncate: (size) => named(store.truncate(size), `truncate to ${size} bytes`),
    close: () => store.close(),
  };
}

/** Zero the part of the cluster holding byte `size - 1` that lies past `size`; false when there is none. */
async function zeroClusterTail(store: BlockStore, bat: Uint32Array, size: number, clusterBytes: number, unitBytes: number): Promise<boolean> {
  const used = size % clusterBytes;
  const index = Math.floor(size / clusterBytes);
  if (used === 0 || index >= bat.length || bat[index] === 0) return false;
  await zero(store, bat[index] * unitBytes + used, clusterBytes - used);
  return true;
}

async function grow(store: BlockStore, old: PloopHeader, next: PloopHeader, bat: Uint32Array, firstSlotByte: number, clusterBytes: number, unitBytes: number): Promise<number> {
  // The data area moves up by whole clusters so that every entry stays on the cluster grid.
  const minBytes = minDataOffSectors(next.batEntries, next.tracks) * SECTOR_BYTES;
  const shift = Math.max(0, Math.ceil((minBytes - firstSlotByte) / clusterBytes)) * clusterBytes;
  const newFirstSlotByte = firstSlotByte + shift;
  next.dataOff = old.format === 'v1' && old.dataOff === 0 && shift === 0 ? 0 : newFirstSlotByte / SECTOR_BYTES;
  let relocated = 0;
  if (shift > 0) {
    // 1. Copy the clusters in the way to the end of the used area.
    let usedEnd = newFirstSlotByte;
    for (const value of bat) if (value !== 0) usedEnd = Math.max(usedEnd, value * unitBytes + clusterBytes);
    const moves: Array<{ index: number; value: number }> = [];
    const buffer = new Uint8Array(clusterBytes);
    for (let i = 0; i < bat.length; i++) {
      const host = bat[i] * unitBytes;
      if (bat[i] === 0 || host >= newFirstSlotByte) continue;
      const n = await store.read(host, buffer);
      buffer.fill(0, n);
      await store.write(usedEnd, buffer);
      moves.push({ index: i, value: usedEnd / unitBytes });
      usedEnd += clusterBytes;
    }
    await store.flush();
    // 2. Repoint the entries (old header still in force: both copies hold the same data).
    for (const m of moves) bat[m.index] = m.value;
    if (moves.length) await store.write(HEADER_BYTES, new Uint8Array(bat.buffer));
    await store.flush();
    relocated = moves.length;
  }
  // 3. Zero everything that becomes BAT: the new entries and the old clusters under them.
  const zeroFrom = HEADER_BYTES + 4 * old.batEntries;
  await zero(store, zeroFrom, Math.max(0, newFirstSlotByte - zeroFrom));
  if ((await store.size()) < newFirstSlotByte) await store.truncate(newFirstSlotByte);
  await store.flush();
  return relocated;
}

async function shrink(store: BlockStore, old: PloopHeader, next: PloopHeader, bat: Uint32Array, firstSlotByte: number, unitBytes: number, clusterBytes: number): Promise<number> {
  // Data past the new end was refused (without force) before anything was written.
  let dropped = 0;
  for (let i = next.batEntries; i < bat.length; i++) if (bat[i] !== 0) dropped++;
  // Entries past the new end are zeroed so that a later grow does not bring them back.
  await zero(store, HEADER_BYTES + 4 * next.batEntries, 4 * (old.batEntries - next.batEntries));
  await store.flush();
  // Trim clusters no entry uses any more at the end of the file.
  let usedEnd = firstSlotByte;
  for (let i = 0; i < next.batEntries; i++) if (bat[i] !== 0) usedEnd = Math.max(usedEnd, bat[i] * unitBytes + clusterBytes);
  next.dataOff = old.dataOff;
  if (dropped && (await store.size()) > usedEnd) await store.truncate(usedEnd);
  return dropped;
}

async function zero(store: BlockStore, offset: number, length: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(length, 1 << 20));
  for (let pos = 0; pos < length; pos += chunk.length) await store.write(offset + pos, chunk.subarray(0, Math.min(chunk.length, length - pos)));
}

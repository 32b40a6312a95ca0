// SPDX-License-Identifier: MIT
// The classic "read-only disk, my changes persist" setup: a read-only base (File/Blob, HTTP
// range, anything; one image or a disk folder's whole chain) under a writable top delta kept in
// OPFS, IndexedDB or any other store. The top is an ordinary ploop delta; reads fall through to
// the base, writes copy-on-write into it.

import type { BlockStore } from '../stores/block-store.js';
import { readFully } from '../stores/block-store.js';
import type { DeltaDirectory } from '../stores/directory.js';
import { HEADER_BYTES, parseHeader, deriveGeometry, SECTOR_BYTES, type PloopFormat } from '../format/header.js';
import { createImage } from './create.js';
import { PloopImage, type DeltaSource, type OpenOptions } from './image.js';
import { PloopError } from '../errors.js';

/** Written next to the top delta in a DeltaDirectory: which base the delta was made over. */
export const OVERLAY_FILE = 'overlay.json';

export interface OverlayOptions extends OpenOptions {
  /**
   * The read-only base image (a BlobStore, HttpRangeStore, …), or the read-only levels of a
   * stack, bottom first (a disk folder's chain: a raw or ploop base, ploop deltas above it).
   */
  base: BlockStore | DeltaSource[];
  /** 'ploop' (default) when the base is a ploop image, 'raw' for a plain disk image (a single store only). */
  baseKind?: 'ploop' | 'raw';
  /**
   * Where the changes live: a DeltaDirectory (the top delta is the file `topFile` in it, with
   * overlay.json recording the base), or a writable BlockStore (empty = create the delta).
   */
  top: DeltaDirectory | BlockStore;
  /** File name of the top delta in a DeltaDirectory (default 'top.hds'). */
  topFile?: string;
  /** Cluster size of a new top over a raw base (default 1 MiB); over a ploop base its own is used. */
  clusterSize?: number;
  /** Recorded in overlay.json and compared on reopen, e.g. the base's URL or file name. */
  baseId?: string;
}

interface OverlayRecord {
  version: 1;
  topFile: string;
  baseKind: 'ploop' | 'raw';
  baseBytes: number;
  baseId?: string;
}

function isDirectory(top: DeltaDirectory | BlockStore): top is DeltaDirectory {
  return typeof (top as DeltaDirectory).openStore === 'function';
}

/** The base as levels, bottom first. */
function baseLevels(base: BlockStore | DeltaSource[], kind: 'ploop' | 'raw'): DeltaSource[] {
  if (!Array.isArray(base)) return [{ store: base, kind, name: base.name }];
  if (base.length === 0) throw new PloopError('EINVAL', 'overlay: the base stack has no levels');
  return base.map((l) => ({ ...l, kind: l.kind ?? 'ploop', name: l.name ?? l.store.name }));
}

/** The top's geometry, taken from the base's top level: same virtual size, same cluster size. */
async function baseGeometry(base: BlockStore, kind: 'ploop' | 'raw', clusterSize: number | undefined): Promise<{ size: number; clusterSize: number; format: PloopFormat }> {
  const bytes = await base.size();
  if (kind === 'raw') {
    const size = Math.ceil(bytes / SECTOR_BYTES) * SECTOR_BYTES;
    if (size === 0) throw new PloopError('EINVAL', `overlay: the raw base ${base.name} is empty`);
    return { size, clusterSize: clusterSize ?? 1 << 20, format: 'v2' };
  }
  let header;
  try {
    header = parseHeader(await readFully(base, 0, Math.min(HEADER_BYTES, bytes)));
  } catch (e) {
    if (e instanceof PloopError) throw new PloopError(e.code, `overlay: base ${base.name}: ${e.message} (use baseKind: 'raw' for a plain disk image)`, e.data);
    throw e;
  }
  const g = deriveGeometry(header, bytes);
  return { size: g.virtualSize, clusterSize: g.clusterBytes, format: g.format };
}

/**
 * Open `base` (read-only) with a writable ploop delta on top, creating the delta when it does not
 * exist yet. Returns a writable PloopImage of the whole stack; closing it closes both stores.
 *
 * ```ts
 * const base = await HttpRangeStore.open('https://example.org/disk.hds');
 * const image = await openOverlay({ base, top: await OpfsDirectory.open('my-disk'), baseId: base.url });
 * await image.write(0, bytes);  // lands in OPFS; the base is never written
 * ```
 *
 * With a DeltaDirectory, overlay.json records the base's kind and size (and `baseId`); reopening
 * over a different base is refused, since the delta's clusters only make sense over its own base.
 */
export async function openOverlay(options: OverlayOptions): Promise<PloopImage> {
  const { base: _base, top, baseKind: _baseKind, topFile: _topFile, clusterSize: _clusterSize, baseId: _baseId, ...rest } = options;
  const openOptions: OpenOptions = { ...rest, writable: options.writable ?? true };
  const levels = baseLevels(options.base, options.baseKind ?? 'ploop');
  // What the delta's geometry comes from, and what overlay.json records: the level just below it.
  const below = levels[levels.length - 1];
  const base = below.store;
  const baseKind = below.kind!;
  let topStore: BlockStore;
  let topName: string;
  if (isDirectory(top)) {
    const topFile = options.topFile ?? 'top.hds';
    topName = `${top.name}/${topFile}`;
    const text = await top.readText(OVERLAY_FILE);
    const baseBytes = await base.size();
    if (text === null) {
      if (!openOptions.writable) throw new PloopError('EINVAL', `overlay: ${top.name} holds no overlay yet (no ${OVERLAY_FILE}); open it writable once to create the top delta`);
      const geometry = await baseGeometry(base, baseKind, options.clusterSize);
      const store = await top.openStore(topFile, { create: true });
      try {
        await createImage(store, geometry);
      } finally {
        await store.close();
      }
      // Only a complete delta gets recorded: a crash before this line recreates it next time.
      const record: OverlayRecord = { version: 1, topFile, baseKind, baseBytes, ...(options.baseId !== undefined ? { baseId: options.baseId } : {}) };
      await top.writeTextAtomic(OVERLAY_FILE, JSON.stringify(record, null, 2) + '\n');
    } else {
      checkRecord(parseRecord(text, top.name), { topFile, baseKind, baseBytes, baseId: options.baseId, dir: top.name });
    }
    topStore = await top.openStore(topFile, { writable: openOptions.writable });
  } else {
    topStore = top;
    topName = top.name;
    if ((await top.size()) === 0) {
      if (!top.writable) throw new PloopError('EREADONLY', `overlay: the top store ${top.name} is empty and read-only, cannot create the delta`);
      await createImage(top, await baseGeometry(base, baseKind, options.clusterSize));
    }
  }
  try {
    return await PloopImage.openStack([...levels, { store: topStore, kind: 'ploop', name: topName }], openOptions);
  } catch (e) {
    if (isDirectory(top)) await topStore.close();
    throw e;
  }
}

function parseRecord(text: string, dir: string): OverlayRecord {
  let r: Partial<OverlayRecord>;
  try {
    r = JSON.parse(text) as Partial<OverlayRecord>;
  } catch {
    throw new PloopError('ECORRUPT', `overlay: ${dir}/${OVERLAY_FILE} is not valid JSON`);
  }
  if (r?.version !== 1 || typeof r.topFile !== 'string' || (r.baseKind !== 'ploop' && r.baseKind !== 'raw') || typeof r.baseBytes !== 'number') {
    throw new PloopError('ECORRUPT', `overlay: ${dir}/${OVERLAY_FILE} lacks version 1, topFile, baseKind or baseBytes`);
  }
  return r as OverlayRecord;
}

function checkRecord(r: OverlayRecord, now: { topFile: string; baseKind: string; baseBytes: number; baseId?: string; dir: string }): void {
  const mismatch = (what: string, was: unknown, is: unknown) =>
    new PloopError('EINVAL', `overlay: ${now.dir} holds changes made over a base with ${what} ${JSON.stringify(was)}, but this base has ${JSON.stringify(is)}; use another directory for another base`, { field: what, expected: was, value: is });
  if (r.topFile !== now.topFile) throw mismatch('topFile', r.topFile, now.topFile);
  if (r.baseKind !== now.baseKind) throw mismatch('baseKind', r.baseKind, now.baseKind);
  if (r.baseBytes !== now.baseBytes) throw mismatch('size in bytes', r.baseBytes, now.baseBytes);
  if (r.baseId !== undefined && now.baseId !== undefined && r.baseId !== now.baseId) throw mismatch('baseId', r.baseId, now.baseId);
}

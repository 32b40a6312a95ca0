// SPDX-License-Identifier: MIT
// Delta stacks laid out as the ploop tools do (docs/format.md, 'Deltas and stacks' and
// 'DiskDescriptor.xml'): a folder with DiskDescriptor.xml and one file per delta. init, open,
// snapshot, merge and resize, each crash-safe: a new delta file is complete before the descriptor
// names it, the descriptor is replaced atomically, and a merge copies data into the lower delta
// before the descriptor forgets the upper one, so every crash point leaves a stack that reads the
// same data.

import { serializeDescriptor, descriptorChain, randomGuid, type DiskDescriptor } from '../format/descriptor.js';
import { parseDescriptor } from '../format/descriptor-parse.js';
import { newDescriptor, addSnapshot, mergeIntoParent } from '../format/descriptor-edits.js';
import { newHeader, SECTOR_BYTES, INUSE_MAGIC, type PloopFormat } from '../format/header.js';
import type { DeltaDirectory, FolderLock } from '../stores/directory.js';
import { LEVEL_NONE } from '../core/bat-map.js';
import { PloopError } from '../errors.js';
import { createImage } from './create.js';
import { PloopImage, type OpenOptions } from './image.js';
import { resizeImage, type ResizeOptions, type ResizeResult } from './resize.js';

export const DESCRIPTOR_FILE = 'DiskDescriptor.xml';
const COPY_CHUNK_BYTES = 1 << 20;
const MERGE_WRITES_IN_FLIGHT = 16;

/** Read and validate the folder's DiskDescriptor.xml. */
export async function readDescriptor(dir: DeltaDirectory): Promise<DiskDescriptor> {
  const text = await dir.readText(DESCRIPTOR_FILE);
  if (text === null) throw new PloopError('EINVAL', `${dir.name}: no ${DESCRIPTOR_FILE} (not a ploop disk folder)`);
  return parseDescriptor(text);
}

async function writeDescriptor(dir: DeltaDirectory, d: DiskDescriptor): Promise<void> {
  await dir.writeTextAtomic(DESCRIPTOR_FILE, serializeDescriptor(d));
}

const warnOnConsole = (m: string) => console.warn(`ploop-wasm: ${m}`);

/** The folder's writer lock (null where the folder has none); its warning goes to `warn`. */
async function lockFolder(dir: DeltaDirectory, warn: (m: string) => void = warnOnConsole): Promise<FolderLock | null> {
  const lock = (await dir.lockForWriting?.()) ?? null;
  if (lock?.warning) warn(lock.warning);
  return lock;
}

/**
 * Run `fn` holding the folder's writer lock, from before it reads the descriptor until after it
 * has written it: another writer (ploop's tools included) cannot change the stack in between.
 */
async function underFolderLock<T>(dir: DeltaDirectory, fn: () => Promise<T>): Promise<T> {
  const lock = await lockFolder(dir);
  try {
    return await fn();
  } finally {
    await lock?.release();
  }
}

/** Create a folder layout like `ploop init`: DiskDescriptor.xml and an empty root.hds. */
export async function initStack(dir: DeltaDirectory, options: { size: number; clusterSize?: number; format?: PloopFormat }): Promise<DiskDescriptor> {
  // ploop init rounds the size up to whole clusters; image and descriptor then agree.
  const clusterSize = options.clusterSize ?? 1 << 20;
  const size = Math.ceil(options.size / clusterSize) * clusterSize;
  // Build (and so validate) the descriptor before creating any file (the lock's included): a
  // cluster size the descriptor cannot name (Blocksize below 64 sectors, …) leaves nothing behind.
  const header = newHeader({ size, clusterBytes: clusterSize, format: options.format });
  const d = newDescriptor({ sizeSectors: header.nbSectors, blocksizeSectors: header.tracks, file: 'root.hds' });
  return underFolderLock(dir, async () => {
    if ((await dir.readText(DESCRIPTOR_FILE)) !== null) throw new PloopError('EINVAL', `${dir.name}: ${DESCRIPTOR_FILE} already exists`);
    const store = await dir.openStore('root.hds', { create: true });
    try {
      await createImage(store, { size, clusterSize, format: options.format });
    } finally {
      await store.close();
    }
    await writeDescriptor(dir, d);
    return d;
  });
}

/**
 * Open the folder's delta stack; only the top may be writable. A writable stack holds the
 * folder's writer lock until it closes; a read-only one is warned when another writer has it.
 */
export async function openStackDir(dir: DeltaDirectory, options: OpenOptions = {}): Promise<PloopImage> {
  const warn = options.onWarning ?? warnOnConsole;
  const lock = options.writable ? await lockFolder(dir, warn) : null;
  const folderWriter = options.writable ? null : await dir.writerWarning?.();
  if (folderWriter) warn(folderWriter);
  const sources = [];
  try {
    const chain = descriptorChain(await readDescriptor(dir));
    for (let level = 0; level < chain.length; level++) {
      const top = level === chain.length - 1;
      const store = await dir.openStore(chain[level].file, { writable: top && !!options.writable });
      sources.push({ store, kind: chain[level].type === 'Plain' ? 'raw' as const : 'ploop' as const, name: chain[level].file });
    }
    const onClose = async () => {
      try {
        await options.onClose?.();
      } finally {
        await lock?.release();
      }
    };
    // The folder's warning named the writer already: its lock on the top file is not told again.
    const told = new Set(folderWriter ? sources.flatMap((s) => s.store.openWarnings ?? []) : []);
    const onWarning = (m: string) => {
      if (!told.has(m)) warn(m);
    };
    return await PloopImage.openStack(sources, { ...options, onWarning, onClose });
  } catch (e) {
    for (const s of sources) await s.store.close();
    await lock?.release();
    throw e;
  }
}

/**
 * Freeze the current top and put a new empty delta of the same geometry on it. The old top must
 * be closed cleanly. Returns the new snapshot's GUID (now naming the frozen delta) and the new file.
 */
export function snapshotStack(dir: DeltaDirectory): Promise<{ guid: string; file: string }> {
  return underFolderLock(dir, () => snapshotUnlocked(dir));
}

async function snapshotUnlocked(dir: DeltaDirectory): Promise<{ guid: string; file: string }> {
  const d = await readDescriptor(dir);
  const chain = descriptorChain(d);
  const top = chain[chain.length - 1];
  const topImage = await PloopImage.open(await dir.openStore(top.file), { onWarning: () => {} });
  const { format, clusterBytes, virtualSize } = topImage.geometry;
  const inUse = topImage.header.inUse === INUSE_MAGIC;
  await topImage.close();
  if (inUse) throw new PloopError('EINVAL', `snapshot: the top delta ${top.file} is in use or was not closed cleanly; run check --repair first`);
  const file = `${chain[0].file}.${randomGuid()}`;
  const store = await dir.openStore(file, { create: true });
  try {
    await createImage(store, { size: virtualSize, clusterSize: clusterBytes, format });
  } finally {
    await store.close();
  }
  const guid = randomGuid();
  await writeDescriptor(dir, addSnapshot(d, { newFile: file, snapshotGuid: guid }));
  return { guid, file };
}

/**
 * Merge the delta at `upperLevel` (default: the top) into the one below it. The lower delta
 * receives every cluster the upper one maps (copy-on-write from deeper levels where needed);
 * then the descriptor drops the upper file, and the file is removed.
 */
export function mergeStack(dir: DeltaDirectory, options: { upperLevel?: number } = {}): Promise<{ merged: string; into: string; clustersCopied: number }> {
  return underFolderLock(dir, () => mergeUnlocked(dir, options));
}

async function mergeUnlocked(dir: DeltaDirectory, options: { upperLevel?: number }): Promise<{ merged: string; into: string; clustersCopied: number }> {
  const d = await readDescriptor(dir);
  const chain = descriptorChain(d);
  if (chain.length < 2) throw new PloopError('EINVAL', `merge: ${dir.name} has a single delta, nothing to merge`);
  const upper = options.upperLevel ?? chain.length - 1;
  if (!Number.isInteger(upper) || upper < 1 || upper >= chain.length) {
    throw new PloopError('EINVAL', `merge: level ${upper} does not exist or has nothing below it (levels 1..${chain.length - 1})`);
  }
  const lower = chain[upper - 1];
  if (lower.type === 'Plain') throw new PloopError('ENOTSUP', `merge: the delta below (${lower.file}) is a raw image; merging into raw is not supported`);
  const source = await PloopImage.open(await dir.openStore(chain[upper].file), { onWarning: () => {} });
  let target: PloopImage | null = null;
  let copied = 0;
  try {
    // resizeStack grows only the top delta, so the upper delta may be larger than the lower one.
    // Grow the lower delta first, as ploop's merge does: that alone changes nothing the stack
    // reads (the new area is unmapped there and the upper delta lies above it), and resizeImage
    // is crash-safe by itself.
    await growDelta(dir, lower.file, source.size);
    // The stack below, with the lower delta as its writable top.
    target = await openSubStack(dir, chain.slice(0, upper));
    if (source.size > target.size) throw new PloopError('EINVAL', `merge: ${chain[upper].file} (${source.size} bytes) is larger than ${lower.file} (${target.size} bytes); resize first`);
    // Several chunks in flight, so that their BAT updates share writeback cycles (one flush
    // and one BAT write per md page for many clusters) instead of one cycle per chunk.
    const inFlight = new Set<Promise<void>>();
    let failure: unknown = null;
    for (const e of source.map()) {
      if (e.level === LEVEL_NONE) continue;
      for (let pos = 0; pos < e.length && !failure; pos += COPY_CHUNK_BYTES) {
        const chunk = new Uint8Array(Math.min(COPY_CHUNK_BYTES, e.length - pos));
        const n = await source.store.read(e.hostOffset + pos, chunk);
        chunk.fill(0, n);
        const p: Promise<void> = target.write(e.offset + pos, chunk).catch((err) => { failure ??= err; }).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= MERGE_WRITES_IN_FLIGHT) await Promise.race(inFlight);
      }
      copied += Math.ceil(e.length / source.clusterSize);
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    await target.flush();
  } finally {
    await source.close();
    await target?.close();
  }
  // Only now may the descriptor forget the upper delta.
  // The parent's file survives under the upper delta's GUID; the upper file goes (as ploop does).
  const edit = mergeIntoParent(d, chain[upper].guid);
  await writeDescriptor(dir, edit.descriptor);
  await dir.remove(chain[upper].file);
  return { merged: chain[upper].file, into: lower.file, clustersCopied: copied };
}

/**
 * Delete snapshot `guid` (a delta below the top), as `ploop snapshot-delete` does: the delta
 * above it is merged into it, so the snapshot's own state is gone and the data of every later
 * state survives. The top cannot be deleted.
 */
export function deleteSnapshotStack(dir: DeltaDirectory, guid: string): Promise<{ merged: string; into: string; clustersCopied: number }> {
  return underFolderLock(dir, async () => {
    const chain = descriptorChain(await readDescriptor(dir));
    const level = chain.findIndex((d) => d.guid.toLowerCase() === guid.toLowerCase());
    if (level < 0) throw new PloopError('EINVAL', `delete: no snapshot ${guid} in ${dir.name} (its GUIDs: ${chain.map((d) => d.guid).join(', ')})`, { guid });
    if (level === chain.length - 1) throw new PloopError('EINVAL', `delete: ${guid} is the top delta, not a snapshot; merge instead`, { guid });
    return mergeUnlocked(dir, { upperLevel: level + 1 });
  });
}

/** Merge everything into the base: repeated top merges until one delta is left. */
export function mergeAll(dir: DeltaDirectory): Promise<number> {
  return underFolderLock(dir, async () => {
    let merges = 0;
    while (descriptorChain(await readDescriptor(dir)).length > 1) {
      await mergeUnlocked(dir, {});
      merges++;
    }
    return merges;
  });
}

/** Grow (or shrink, single delta only) the stack: the top delta's BAT and the descriptor's size. */
export function resizeStack(dir: DeltaDirectory, newSize: number, options: ResizeOptions = {}): Promise<ResizeResult> {
  return underFolderLock(dir, () => resizeUnlocked(dir, newSize, options));
}

async function resizeUnlocked(dir: DeltaDirectory, newSize: number, options: ResizeOptions): Promise<ResizeResult> {
  const d = await readDescriptor(dir);
  const chain = descriptorChain(d);
  const top = chain[chain.length - 1];
  const sized = newHeader({ size: newSize, clusterBytes: d.blocksizeSectors * SECTOR_BYTES });
  if (sized.nbSectors < d.diskSizeSectors && chain.length > 1) {
    throw new PloopError('ENOTSUP', `resize: shrinking a stack of ${chain.length} deltas is not supported; merge it down first`);
  }
  const store = await dir.openStore(top.file, { writable: true });
  let result: ResizeResult;
  try {
    result = await resizeImage(store, newSize, options);
  } finally {
    await store.close();
  }
  const cylinders = Math.floor(sized.nbSectors / (d.heads * d.sectors || 512));
  await writeDescriptor(dir, { ...d, diskSizeSectors: sized.nbSectors, cylinders });
  return result;
}

/** Grow the ploop delta `file` to `size` bytes if it is smaller. */
async function growDelta(dir: DeltaDirectory, file: string, size: number): Promise<void> {
  const store = await dir.openStore(file, { writable: true });
  try {
    const image = await PloopImage.open(store, { keepStoreOpen: true, onWarning: () => {} });
    const current = image.size;
    await image.close();
    if (current < size) await resizeImage(store, size);
  } finally {
    await store.close();
  }
}

async function openSubStack(dir: DeltaDirectory, chain: Array<{ file: string; type: string }>): Promise<PloopImage> {
  const sources = [];
  for (let level = 0; level < chain.length; level++) {
    const writable = level === chain.length - 1;
    sources.push({ store: await dir.openStore(chain[level].file, { writable }), kind: chain[level].type === 'Plain' ? 'raw' as const : 'ploop' as const, name: chain[level].file });
  }
  return PloopImage.openStack(sources, { writable: true, onWarning: () => {} });
}

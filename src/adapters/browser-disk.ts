// SPDX-License-Identifier: MIT
// One call from a URL (or dropped files, or a stored folder) to an emulator disk whose writes
// stay in the visitor's browser: the base is read-only (HTTP ranges fetch only what the guest
// reads), the writes go to a ploop delta in OPFS, or IndexedDB where OPFS is missing, in a
// folder named after the base's identity — the same disk comes back with its changes after a
// reload or a browser restart, and a new version of the disk starts clean.

import { PersistentDisk } from './persistent-disk.js';
import { openBaseFiles, openBaseUrl, type DiskBase, type UrlBaseOptions } from './disk-source.js';
import type { DeltaDirectory } from '../stores/directory.js';
import { MemoryDirectory } from '../stores/memory-dir.js';
import { OpfsDirectory } from '../stores/opfs-dir.js';
import { IdbDirectory } from '../stores/idb-dir.js';
import { PloopError } from '../errors.js';

export type DeltaStoreKind = 'opfs' | 'idb' | 'memory';

export interface OpenPersistentDiskOptions extends UrlBaseOptions {
  /** Where the delta lives (default: OPFS, IndexedDB where OPFS is missing), or a DeltaDirectory of your own. */
  store?: DeltaStoreKind | DeltaDirectory;
  /** The folder under which each base gets its own delta folder (default 'ploop-wasm/disks'). */
  folder?: string;
  onWarning?: (message: string) => void;
}

/** OPFS when the browser has it, else IndexedDB (Firefox private windows, old Safari…). */
export function defaultDeltaStore(): DeltaStoreKind {
  if (typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function') return 'opfs';
  if (typeof indexedDB !== 'undefined') return 'idb';
  return 'memory';
}

/** A folder name for `base`: readable (from its label) and unique (a hash of its id). */
export async function deltaFolderName(base: Pick<DiskBase, 'id' | 'label'>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(base.id)));
  const hash = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
  const last = base.label.replace(/\/+$/, '').split('/').pop() ?? '';
  const slug = last.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 40) || 'disk';
  return `${slug}-${hash}`;
}

async function deltaDirectory(kind: DeltaStoreKind | DeltaDirectory, path: string): Promise<DeltaDirectory> {
  if (typeof kind !== 'string') return kind;
  if (kind === 'opfs') return OpfsDirectory.open(path);
  if (kind === 'idb') return IdbDirectory.open(path);
  if (kind === 'memory') return new MemoryDirectory(path);
  throw new PloopError('EINVAL', `store: "${String(kind)}" is not opfs, idb, memory or a DeltaDirectory`, { store: kind });
}

/**
 * Open a disk for an emulator with persistent changes:
 *
 * ```ts
 * const disk = await openPersistentDisk('https://example.org/disks/linux/');  // or …/disk.hds, …/disk.img
 * disk.installFlushPolicy(window);
 * new V86({ hda: disk.v86Disk(), ... });
 * ```
 *
 * `source` is a URL (ploop image, disk folder as `…/` or `…/DiskDescriptor.xml`, raw image),
 * the files of a picker or a drop (one image, or a folder's files), or a base opened with the
 * `openBase*` functions. The disk owns the base: `disk.close()` closes it.
 */
export async function openPersistentDisk(source: string | URL | File[] | DiskBase, options: OpenPersistentDiskOptions = {}): Promise<PersistentDisk> {
  const base = typeof source === 'string' || source instanceof URL ? await openBaseUrl(source, options)
    : Array.isArray(source) ? await openBaseFiles(source)
    : source;
  try {
    const path = `${options.folder ?? 'ploop-wasm/disks'}/${await deltaFolderName(base)}`;
    const dir = await deltaDirectory(options.store ?? defaultDeltaStore(), path);
    return await PersistentDisk.open({ base: base.levels, dir, baseId: base.id, source: base, onWarning: options.onWarning });
  } catch (e) {
    await base.close();
    throw e;
  }
}

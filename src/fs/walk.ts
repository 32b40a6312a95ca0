// SPDX-License-Identifier: MIT
// Walking a whole tree (ls --recursive, extract, a folder's zip): directory by directory,
// entries sorted by name, never through symlinks, and never into a directory twice — a directory that shows up
// again (a hard-linked directory: a cycle in a corrupt filesystem) is reported, not walked, so
// a hostile image cannot make a walk endless.

import { PloopError } from '../errors.js';
import type { Filesystem, FsEntry } from './types.js';

export interface WalkOptions {
  /** A directory that cannot be listed (corrupt, or a cycle): called, and the walk goes on. Default: throw. */
  onError?: (error: PloopError, entry: FsEntry) => void;
  signal?: AbortSignal;
}

/** Names in byte order, as `LC_ALL=C ls` sorts them. */
export function byName(a: FsEntry, b: FsEntry): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The directories at and below `top`, each with its entries sorted by name, in the order
 * `ls -R` lists them: a directory, then each of its subdirectories with everything below it.
 */
export async function* walkTree(fs: Filesystem, top: FsEntry, options: WalkOptions = {}): AsyncGenerator<{ dir: FsEntry; entries: FsEntry[] }> {
  const seen = new Map<number, string>([[top.inode, top.path]]);
  const todo: FsEntry[] = [top];
  while (todo.length > 0) {
    options.signal?.throwIfAborted();
    const dir = todo.pop() as FsEntry;
    const entries = await list(fs, dir, options);
    yield { dir, entries };
    const subdirs: FsEntry[] = [];
    for (const entry of entries) {
      if (entry.type !== 'dir') continue;
      const earlier = seen.get(entry.inode);
      if (earlier !== undefined) {
        fail(new PloopError('ECORRUPT', `${entry.path}: directory inode ${entry.inode} was already walked as ${earlier} (a directory cycle); not descending`, { path: entry.path, inode: entry.inode }), entry, options);
        continue;
      }
      seen.set(entry.inode, entry.path);
      subdirs.push(entry);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) todo.push(subdirs[i]);
  }
}

async function list(fs: Filesystem, dir: FsEntry, options: WalkOptions): Promise<FsEntry[]> {
  try {
    return (await fs.readdir(dir)).sort(byName);
  } catch (e) {
    if (!(e instanceof PloopError)) throw e;
    fail(e, dir, options);
    return [];
  }
}

function fail(error: PloopError, entry: FsEntry, options: WalkOptions): void {
  if (!options.onError) throw error;
  options.onError(error, entry);
}

/** The bytes of file data at and below `top` (for a progress bar); unreadable directories count 0. */
export async function treeBytes(fs: Filesystem, top: FsEntry, signal?: AbortSignal): Promise<number> {
  if (top.type === 'file') return top.size;
  if (top.type !== 'dir') return 0;
  let total = 0;
  for await (const { entries } of walkTree(fs, top, { onError: () => {}, signal })) {
    for (const e of entries) if (e.type === 'file') total += e.size;
  }
  return total;
}

// SPDX-License-Identifier: MIT
// The disk the file commands (ls, cat, extract) browse: a ploop image, a disk folder (its
// whole stack) or a raw image file, opened read-only, and the filesystem on it.

import { NodeFileStore } from '../stores/node-fs.js';
import { openFilesystem, diskOfStore, type DiskReader, type OpenedFilesystem } from '../fs/index.js';
import { openImageFile, isPloopFile } from './open.js';
import { parseCount } from './args.js';

export interface OpenedDisk {
  disk: DiskReader;
  close(): Promise<void>;
}

/** Open IMG|DIR read-only: ploop when it has a ploop signature or is a disk folder, else raw. */
export async function openDisk(path: string): Promise<OpenedDisk> {
  if (await isPloopFile(path)) {
    const image = await openImageFile(path);
    return { disk: image, close: () => image.close() };
  }
  const store = await NodeFileStore.open(path);
  return { disk: await diskOfStore(store), close: () => store.close() };
}

/** The filesystem on IMG|DIR (`--partition N` as given on the command line, or the only one). */
export async function openDiskFilesystem(path: string, partition: string | undefined): Promise<{ fs: OpenedFilesystem; close(): Promise<void> }> {
  const number = partition === undefined ? undefined : parseCount(partition, '--partition');
  const opened = await openDisk(path);
  try {
    return { fs: await openFilesystem(opened.disk, { partition: number }), close: () => opened.close() };
  } catch (e) {
    await opened.close();
    throw e;
  }
}

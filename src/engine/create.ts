// SPDX-License-Identifier: MIT
// Creating an empty image the way `qemu-img create -f parallels` does (docs/format.md, 'What create
// writes'): the header, then zeros up to data_off. The result is byte-identical to qemu-img's but
// for the header's CIF_Empty flag, which ploop's own init sets (qemu-img leaves it 0).

import { newHeader, serializeHeader, SECTOR_BYTES, type PloopFormat, type PloopHeader } from '../format/header.js';
import type { BlockStore } from '../stores/block-store.js';
import { PloopError } from '../errors.js';
import { writeZeros } from './zero.js';

export interface CreateOptions {
  /** Virtual size in bytes (rounded up to 512). */
  size: number;
  /** Cluster size in bytes (multiple of 512); default 1 MiB. */
  clusterSize?: number;
  /** 'v2' (default) or 'v1'. */
  format?: PloopFormat;
}

/** Write a new empty image to an empty (or to-be-overwritten) store; returns its header. */
export async function createImage(store: BlockStore, options: CreateOptions): Promise<PloopHeader> {
  if (!store.writable) throw new PloopError('EREADONLY', `create: store ${store.name} is read-only`);
  const header = newHeader({ size: options.size, clusterBytes: options.clusterSize, format: options.format });
  await store.truncate(0);
  const headerBytes = serializeHeader(header);
  const end = header.dataOff * SECTOR_BYTES;
  if (store.sparse) {
    // A file: the BAT area must be real zeros, not a hole (the ploop tools refuse sparse images).
    await store.write(0, headerBytes);
    await writeZeros(store, headerBytes.length, end - headerBytes.length);
  } else {
    // The BAT area up to data_off is zeros: grow the store rather than writing them.
    await store.write(0, headerBytes);
    await store.truncate(end);
  }
  await store.flush();
  return header;
}

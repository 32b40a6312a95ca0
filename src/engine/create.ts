// SPDX-License-Identifier: MIT
// Creating an empty image the way `qemu-img create -f parallels` does (docs/format.md, 'What create
// writes'): the header, then zeros up to data_off. The result is byte-identical to qemu-img's.

import { newHeader, serializeHeader, SECTOR_BYTES, type PloopFormat, type PloopHeader } from '../format/header.js';
import type { BlockStore } from '../stores/block-store.js';
import { PloopError } from '../errors.js';

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
  await store.write(0, serializeHeader(header));
  // The BAT area up to data_off is zeros: grow the store rather than writing them.
  await store.truncate(header.dataOff * SECTOR_BYTES);
  await store.flush();
  return header;
}

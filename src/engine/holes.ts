// SPDX-License-Identifier: MIT
// Holes in an image file: ranges inside it that no disk block backs. They read as zeros, so QEMU
// and our reader do not mind, but the ploop tools refuse such an image ("image is sparse"; the
// old ploop kernel driver mapped file extents directly) and `ploop check -S` fills them with
// zeros. A crash can leave them: an allocation writes its payload and the zeros around it
// without a flush in between (the cluster was a hole everywhere, so either reads as before).
//
// Node has no SEEK_HOLE/SEEK_DATA and no FIEMAP. What it has is fstat: fewer allocated blocks
// than the file's size proves holes, and then every hole lies in an all-zero range (a hole
// reads zeros). Rewriting those ranges with zeros changes no byte that exists, and backs them.

import type { BlockStore } from '../stores/block-store.js';
import { isAllZero, writeZeros } from './zero.js';

/** Bytes read at a time while looking for all-zero ranges. */
const SCAN_BYTES = 1 << 20;

/** A range of the file that reads zeros (a whole number of file-system blocks). */
export interface ZeroRange {
  offset: number;
  length: number;
}

/**
 * Bytes of [0, end) that are holes at least, as far as fstat tells (0 when the store cannot
 * tell, or when the blocks it has cover the range). The file's part past `end` (a leaked tail,
 * which may be a hole by design) is counted as if it were all holes, so that it never makes the
 * range before it look unbacked.
 */
export async function unbackedBytesAtLeast(store: BlockStore, end: number): Promise<number> {
  if (!store.sparse || !store.backing) return 0;
  const size = await store.size();
  const { allocatedBytes, blockBytes } = await store.backing();
  const rounded = (n: number) => Math.ceil(n / blockBytes) * blockBytes;
  const tail = Math.max(0, rounded(size) - rounded(Math.min(end, size)));
  return Math.max(0, rounded(size) - tail - allocatedBytes);
}

/**
 * Every all-zero range of [0, end), in the store's blocks (file-system blocks, or 4 KiB), in
 * order; `visit` may write zeros over each as it comes (the scan has read past it already).
 */
export async function scanZeroRanges(store: BlockStore, end: number, visit: (r: ZeroRange) => Promise<void> | void): Promise<void> {
  const blockBytes = store.backing ? (await store.backing()).blockBytes : 4096;
  const chunkBytes = Math.max(blockBytes, Math.floor(SCAN_BYTES / blockBytes) * blockBytes);
  const buffer = new Uint8Array(chunkBytes);
  let run: ZeroRange | null = null;
  for (let at = 0; at < end; at += chunkBytes) {
    const length = Math.min(chunkBytes, end - at);
    const n = await store.read(at, buffer.subarray(0, length));
    buffer.fill(0, n, length);
    for (let b = 0; b < length; b += blockBytes) {
      const blockEnd = Math.min(b + blockBytes, length);
      if (isAllZero(buffer.subarray(b, blockEnd))) {
        if (run && run.offset + run.length === at + b) run.length += blockEnd - b;
        else {
          if (run) await visit(run);
          run = { offset: at + b, length: blockEnd - b };
        }
      }
    }
  }
  if (run) await visit(run);
}

/** Write zeros over every all-zero range of [0, end): returns the ranges written (first `keep` of them) and their total. */
export async function fillZeroRanges(store: BlockStore, end: number, keep = 8): Promise<{ ranges: ZeroRange[]; bytes: number; count: number }> {
  const ranges: ZeroRange[] = [];
  let bytes = 0;
  let count = 0;
  await scanZeroRanges(store, end, async (r) => {
    await writeZeros(store, r.offset, r.length);
    if (ranges.length < keep) ranges.push(r);
    bytes += r.length;
    count++;
  });
  return { ranges, bytes, count };
}

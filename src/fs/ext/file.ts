// SPDX-License-Identifier: MIT
// A file's bytes: inline data from the inode, or its runs of blocks read straight from the
// volume (one read per run, around the metadata cache), holes and unwritten extents as zeros.

import { mapBlocks } from './blockmap.js';
import type { ExtContext } from './context.js';
import { inlineFileBytes } from './inline.js';
import { INLINE_DATA_FL, type Inode } from './inode.js';

/** Reads of one request in flight at once (a fragmented file over HTTP). */
const PARALLEL_RUNS = 8;

/** Bytes [offset, offset + length) of `inode`'s data; the caller clips the range to the file's size. */
export async function readData(ctx: ExtContext, inode: Inode, offset: number, length: number): Promise<Uint8Array> {
  if (inode.flags & INLINE_DATA_FL) return inlineFileBytes(inode).slice(offset, offset + length);
  const bs = ctx.sb.blockBytes;
  const end = offset + length;
  const first = Math.floor(offset / bs);
  const runs = (await mapBlocks(ctx, inode, first, Math.ceil(end / bs) - first)).filter((r) => r.physical >= 0);
  // One run that covers the whole request (a contiguous file): the volume's bytes are the answer, with no copy.
  if (runs.length === 1 && runs[0].logical * bs <= offset && (runs[0].logical + runs[0].count) * bs >= end) {
    const r = runs[0];
    return ctx.volume.read(r.physical * bs + (offset - r.logical * bs), length, `inode ${inode.ino}: data at byte ${offset}`);
  }
  const out = new Uint8Array(length);
  const readRun = async (i: number) => {
    const r = runs[i];
    const from = Math.max(offset, r.logical * bs);
    const to = Math.min(end, (r.logical + r.count) * bs);
    const bytes = await ctx.volume.read(r.physical * bs + (from - r.logical * bs), to - from, `inode ${inode.ino}: data at byte ${from}`);
    out.set(bytes, from - offset);
  };
  for (let i = 0; i < runs.length; i += PARALLEL_RUNS) {
    await Promise.all(runs.slice(i, i + PARALLEL_RUNS).map((_, j) => readRun(i + j)));
  }
  return out;
}

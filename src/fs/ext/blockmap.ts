// SPDX-License-Identifier: MIT
// From a file's logical blocks to the volume's blocks: the extent tree (ext4) or the direct and
// single/double/triple indirect pointers (ext2/3). Both walk only the parts of the tree that
// cover the range asked for, so a read or a lookup touches a handful of metadata blocks, and a
// hostile tree costs at most a few block reads per logical block asked for: each level covers
// strictly increasing, non-overlapping logical ranges, and depths only go down.

import { u16, u32 } from '../../inspect/bytes.js';
import { crc32c } from './checksum.js';
import type { ExtContext } from './context.js';
import { EXTENTS_FL, type Inode } from './inode.js';
import { corrupt } from './superblock.js';

/** A run of logical blocks: mapped to `physical` onward, or a hole / unwritten extent (physical -1) that reads as zeros. */
export interface Run {
  logical: number;
  count: number;
  physical: number;
}

const EXTENT_MAGIC = 0xf30a;
/** The kernel's EXT4_MAX_EXTENT_DEPTH. */
const MAX_EXTENT_DEPTH = 5;
/** An extent of more blocks than this is unwritten (preallocated): it reads as zeros. */
const INIT_MAX_LEN = 32768;

/** The runs that cover logical blocks [first, first + count) of `inode`, in order and without gaps. */
export async function mapBlocks(ctx: ExtContext, inode: Inode, first: number, count: number): Promise<Run[]> {
  const runs: Run[] = [];
  const emit = (logical: number, n: number, physical: number) => {
    if (n <= 0) return;
    const last = runs[runs.length - 1];
    if (last && last.logical + last.count === logical && (physical < 0 ? last.physical < 0 : last.physical >= 0 && last.physical + last.count === physical)) {
      last.count += n;
      return;
    }
    runs.push({ logical, count: n, physical });
  };
  const end = first + count;
  if (inode.flags & EXTENTS_FL) {
    await walkExtents(ctx, inode, inode.iBlock, -1, -1, first, end, 0, 2 ** 32, emit);
  } else {
    await walkIndirect(ctx, inode, first, end, emit);
  }
  // What no extent or pointer covers is a hole.
  const filled: Run[] = [];
  let pos = first;
  for (const r of runs) {
    if (r.logical > pos) filled.push({ logical: pos, count: r.logical - pos, physical: -1 });
    filled.push(r);
    pos = r.logical + r.count;
  }
  if (pos < end) filled.push({ logical: pos, count: end - pos, physical: -1 });
  return filled;
}

type Emit = (logical: number, count: number, physical: number) => void;

/**
 * One node of the extent tree (`node`: i_block for the root, else a block read from `block`),
 * expected at `depth` (-1 for the root: any up to MAX_EXTENT_DEPTH), covering logical blocks
 * [lo, hi); emits what intersects [first, end).
 */
async function walkExtents(ctx: ExtContext, inode: Inode, node: Uint8Array, block: number, depth: number, first: number, end: number, lo: number, hi: number, emit: Emit): Promise<void> {
  const where = block < 0 ? `inode ${inode.ino}: extent tree root` : `inode ${inode.ino}: extent tree block ${block}`;
  const magic = u16(node, 0);
  const entries = u16(node, 2);
  const max = u16(node, 4);
  const nodeDepth = u16(node, 6);
  if (magic !== EXTENT_MAGIC) throw corrupt(`${where}: header magic 0x${magic.toString(16)} (expected 0xf30a)`, { inode: inode.ino, block, field: 'eh_magic', value: magic });
  const capacity = Math.floor((node.length - 12) / 12);
  if (max > capacity || entries > max) {
    throw corrupt(`${where}: eh_entries ${entries}, eh_max ${max} (expected entries ≤ max ≤ ${capacity})`, { inode: inode.ino, block, field: 'eh_entries', value: entries });
  }
  if (depth < 0 ? nodeDepth > MAX_EXTENT_DEPTH : nodeDepth !== depth) {
    throw corrupt(`${where}: eh_depth ${nodeDepth} (expected ${depth < 0 ? `at most ${MAX_EXTENT_DEPTH}` : depth})`, { inode: inode.ino, block, field: 'eh_depth', value: nodeDepth });
  }
  if (block >= 0 && ctx.sb.metadataCsum) {
    const tail = 12 + 12 * max;
    if (tail + 4 <= node.length) ctx.checkCsum(u32(node, tail), crc32c(ctx.inodeSeed(inode.ino, inode.generation), node, 0, tail), `extent tree block ${block} of inode ${inode.ino}`);
  }
  let prevEnd = lo;
  for (let i = 0; i < entries; i++) {
    const e = 12 + 12 * i;
    const start = u32(node, e);
    if (start < prevEnd || start >= hi) {
      throw corrupt(`${where}: entry ${i} starts at logical block ${start} (expected ${prevEnd}..${hi - 1}, after the entry before it)`, { inode: inode.ino, block, entry: i, value: start });
    }
    if (nodeDepth === 0) {
      const rawLen = u16(node, e + 4);
      const unwritten = rawLen > INIT_MAX_LEN;
      const len = unwritten ? rawLen - INIT_MAX_LEN : rawLen;
      const physical = u16(node, e + 6) * 2 ** 32 + u32(node, e + 8);
      if (len === 0 || start + len > hi) {
        throw corrupt(`${where}: extent ${i} of ${len} blocks at logical ${start} (expected 1 or more blocks, ending by ${hi})`, { inode: inode.ino, block, entry: i, value: len });
      }
      prevEnd = start + len;
      if (prevEnd <= first || start >= end) continue;
      ctx.checkBlocks(physical, len, `inode ${inode.ino}: extent ${i} (logical ${start})`);
      const from = Math.max(start, first);
      const to = Math.min(prevEnd, end);
      emit(from, to - from, unwritten ? -1 : physical + (from - start));
      continue;
    }
    // An index entry covers from its start to the next entry's start (or the node's end).
    const next = i + 1 < entries ? u32(node, e + 12) : hi;
    prevEnd = start + 1;
    const childHi = Math.min(next > start ? next : hi, hi);
    if (childHi <= first || start >= end) continue;
    const child = u16(node, e + 8) * 2 ** 32 + u32(node, e + 4);
    const bytes = await ctx.metaBlock(child, `inode ${inode.ino}: extent tree block (index ${i} of ${where})`);
    await walkExtents(ctx, inode, bytes, child, nodeDepth - 1, first, end, start, childHi, emit);
  }
}

async function walkIndirect(ctx: ExtContext, inode: Inode, first: number, end: number, emit: Emit): Promise<void> {
  const perBlock = ctx.sb.blockBytes / 4;
  // Direct pointers, then one tree of each depth: [start, span) of the logical blocks each covers.
  let start = 0;
  for (let slot = 0; slot < 15 && start < end; slot++) {
    const level = slot < 12 ? 0 : slot - 11;
    const span = perBlock ** level;
    if (start + span > first) await walkPointer(ctx, inode, u32(inode.iBlock, slot * 4), level, start, first, end, emit);
    start += span;
  }
}

async function walkPointer(ctx: ExtContext, inode: Inode, pointer: number, level: number, start: number, first: number, end: number, emit: Emit): Promise<void> {
  if (pointer === 0) return;
  if (level === 0) {
    ctx.checkBlocks(pointer, 1, `inode ${inode.ino}: block pointer for logical block ${start}`);
    emit(start, 1, pointer);
    return;
  }
  const table = await ctx.metaBlock(pointer, `inode ${inode.ino}: ${['', 'single', 'double', 'triple'][level]} indirect block for logical block ${start}`);
  const perBlock = table.length / 4;
  const span = perBlock ** (level - 1);
  const from = Math.max(0, Math.floor((first - start) / span));
  const to = Math.min(perBlock, Math.ceil((end - start) / span));
  for (let i = from; i < to; i++) await walkPointer(ctx, inode, u32(table, i * 4), level - 1, start + i * span, first, end, emit);
}

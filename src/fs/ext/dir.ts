// SPDX-License-Identifier: MIT
// Directories: linear entry blocks, inline directories, and the hashed index (htree) that lets a
// lookup read the root, at most two index nodes and one leaf instead of every block
// (Documentation/filesystems/ext4/directory.rst). Listing reads every block in large runs; the
// index nodes look like empty entries to it, so a linear pass lists an indexed directory too.

import { u16, u32 } from '../../inspect/bytes.js';
import { mapBlocks } from './blockmap.js';
import { crc32c } from './checksum.js';
import type { ExtContext } from './context.js';
import { dirHash, HASH_TEA, HASH_UNSIGNED_OFFSET } from './hash.js';
import { systemData } from './inline.js';
import { I_BLOCK_BYTES, INDEX_FL, INLINE_DATA_FL, type Inode } from './inode.js';
import { COMPAT_DIR_INDEX, INCOMPAT_FILETYPE, INCOMPAT_LARGEDIR, corrupt } from './superblock.js';

export interface RawEntry {
  name: Uint8Array;
  ino: number;
}

/** Entries are visited in on-disk order; a visitor that returns true stops the walk. */
type Visit = (entry: RawEntry) => boolean | void;

/** Large directories are read in pieces of at most this many bytes. */
const READ_CHUNK_BYTES = 1 << 20;
/** Runs of at most this many blocks go through the metadata cache (small directories, read again on every walk). */
const CACHED_RUN_BLOCKS = 4;

/** Every entry of `dir` (`.` and `..` included), in on-disk order. */
export async function readEntries(ctx: ExtContext, dir: Inode, visit: Visit): Promise<void> {
  if (dir.flags & INLINE_DATA_FL) {
    // i_block: the parent's inode number, then entries; system.data: more entries.
    if (parseEntries(ctx, dir, dir.iBlock, 4, I_BLOCK_BYTES, 'inline data', visit)) return;
    const extra = systemData(dir);
    if (extra.length > 0) parseEntries(ctx, dir, extra, 0, extra.length, 'inline data (system.data)', visit);
    return;
  }
  const bs = ctx.sb.blockBytes;
  for (const run of await mapBlocks(ctx, dir, 0, Math.ceil(dir.size / bs))) {
    if (run.physical < 0) continue;
    const perChunk = run.count <= CACHED_RUN_BLOCKS ? 1 : Math.max(1, READ_CHUNK_BYTES / bs);
    for (let done = 0; done < run.count; done += perChunk) {
      const n = Math.min(perChunk, run.count - done);
      const where = `directory inode ${dir.ino}, block ${run.physical + done}`;
      ctx.checkBlocks(run.physical + done, n, where);
      const bytes = n === 1 ? await ctx.cache.get(run.physical + done, where) : await ctx.volume.read((run.physical + done) * bs, n * bs, where);
      for (let i = 0; i < n; i++) {
        // A block from the cache is the same object each time: verified once.
        const block = n === 1 ? bytes : bytes.subarray(i * bs, (i + 1) * bs);
        verifyDirBlock(ctx, dir, block, run.logical + done + i);
        if (parseEntries(ctx, dir, block, 0, bs, `logical block ${run.logical + done + i}`, visit)) return;
      }
    }
  }
}

/** The inode number of entry `name` in `dir`, or null. */
export async function findEntry(ctx: ExtContext, dir: Inode, name: Uint8Array): Promise<number | null> {
  if (isIndexed(ctx, dir)) {
    try {
      return await dxFind(ctx, dir, name);
    } catch (e) {
      if (!(e instanceof IndexProblem)) throw e;
      // As the kernel does: a broken index is reported and the directory searched linearly.
      ctx.warn(`directory inode ${dir.ino}: ${e.message}; searched without the index`);
    }
  }
  let found: number | null = null;
  await readEntries(ctx, dir, (e) => {
    if (!sameBytes(e.name, name)) return false;
    found = e.ino;
    return true;
  });
  return found;
}

function isIndexed(ctx: ExtContext, dir: Inode): boolean {
  return (dir.flags & INDEX_FL) !== 0 && (ctx.sb.compat & COMPAT_DIR_INDEX) !== 0 && !(dir.flags & INLINE_DATA_FL);
}

/** A record length as stored: 64 KiB blocks keep the top bits in the low two. */
function recLen(ctx: ExtContext, raw: number): number {
  if (ctx.sb.blockBytes < 65536) return raw;
  return raw === 65535 || raw === 0 ? ctx.sb.blockBytes : (raw & 65532) | ((raw & 3) << 16);
}

/** Visit the entries in bytes [start, end) of `b`; true when the visitor stopped the walk. */
function parseEntries(ctx: ExtContext, dir: Inode, b: Uint8Array, start: number, end: number, where: string, visit: Visit): boolean {
  const fileType = (ctx.sb.incompat & INCOMPAT_FILETYPE) !== 0;
  for (let pos = start; pos < end;) {
    const at = `directory inode ${dir.ino}, ${where}, entry at byte ${pos - start}`;
    if (pos + 8 > end) throw corrupt(`${at}: entry header runs past the end (${end - start} bytes)`, { inode: dir.ino, offset: pos - start });
    const ino = u32(b, pos);
    const len = recLen(ctx, u16(b, pos + 4));
    const nameLen = fileType ? b[pos + 6] : u16(b, pos + 6);
    if (len < 8 || len % 4 !== 0 || pos + len > end) {
      throw corrupt(`${at}: rec_len ${len} (expected a multiple of 4, at least 8, ending by byte ${end - start})`, { inode: dir.ino, field: 'rec_len', value: len });
    }
    if (nameLen + 8 > len) throw corrupt(`${at}: name_len ${nameLen} does not fit in rec_len ${len}`, { inode: dir.ino, field: 'name_len', value: nameLen });
    if (ino !== 0) {
      if (nameLen === 0) throw corrupt(`${at}: an entry for inode ${ino} with an empty name`, { inode: dir.ino, field: 'name_len', value: 0 });
      if (ino > ctx.sb.inodesCount) throw corrupt(`${at}: inode ${ino} (expected 1..${ctx.sb.inodesCount})`, { inode: dir.ino, field: 'inode', value: ino });
      const name = b.subarray(pos + 8, pos + 8 + nameLen);
      if (name.includes(0x2f) || name.includes(0)) throw corrupt(`${at}: name contains "/" or a NUL byte`, { inode: dir.ino, field: 'name' });
      if (visit({ name, ino })) return true;
    }
    pos += len;
  }
  return false;
}

/** Verified blocks (the cache hands out the same bytes again): each is checked once. */
const verified = new WeakSet<Uint8Array>();

/** With metadata_csum: a leaf block ends in a checksum entry; an index node has a tail after its entries. */
function verifyDirBlock(ctx: ExtContext, dir: Inode, b: Uint8Array, logical: number): void {
  if (!ctx.sb.metadataCsum || verified.has(b)) return;
  verified.add(b);
  const bs = b.length;
  const seed = ctx.inodeSeed(dir.ino, dir.generation);
  const what = `directory block ${logical} of inode ${dir.ino}`;
  if (u32(b, bs - 12) === 0 && u16(b, bs - 8) === 12 && b[bs - 6] === 0 && b[bs - 5] === 0xde) {
    ctx.checkCsum(u32(b, bs - 4), crc32c(seed, b, 0, bs - 12), what);
    return;
  }
  const countAt = dxCountOffset(ctx, b);
  if (countAt !== null) {
    const limit = u16(b, countAt);
    const count = u16(b, countAt + 2);
    const tail = countAt + limit * 8;
    if (count <= limit && tail + 8 <= bs) {
      let c = crc32c(seed, b, 0, countAt + count * 8);
      c = crc32c(c, b, tail, tail + 4);
      c = crc32c(c, new Uint8Array(4));
      ctx.checkCsum(u32(b, tail + 4), c, `htree node (${what})`);
      return;
    }
  }
  ctx.warn(`${what} has no checksum (metadata_csum)`);
}

/** Where the limit/count pair of an index block is: 32 in the root, 8 in other nodes; null when it is no index block. */
function dxCountOffset(ctx: ExtContext, b: Uint8Array): number | null {
  const bs = b.length;
  if (recLen(ctx, u16(b, 4)) === bs && b[6] === 0 && u32(b, 0) === 0) return 8;
  if (u16(b, 4) === 12 && recLen(ctx, u16(b, 16)) === bs - 12 && u32(b, 24) === 0 && b[29] === 8) return 32;
  return null;
}

/** The index is unusable (bad levels, limits, counts, hash version): findEntry falls back to a linear search. */
class IndexProblem extends Error {}

async function dirBlock(ctx: ExtContext, dir: Inode, logical: number): Promise<Uint8Array> {
  const blocks = Math.ceil(dir.size / ctx.sb.blockBytes);
  if (logical >= blocks) throw new IndexProblem(`htree points at block ${logical}, past the directory's ${blocks} blocks`);
  const [run] = await mapBlocks(ctx, dir, logical, 1);
  if (run.physical < 0) throw new IndexProblem(`htree points at block ${logical}, a hole`);
  const b = await ctx.metaBlock(run.physical, `directory inode ${dir.ino}, block ${logical}`);
  verifyDirBlock(ctx, dir, b, logical);
  return b;
}

interface Level {
  b: Uint8Array;
  /** Byte of the limit/count pair; entry i is 8 bytes at countAt + 8 i (entry 0 has no hash). */
  countAt: number;
  count: number;
  at: number;
}

async function dxFind(ctx: ExtContext, dir: Inode, name: Uint8Array): Promise<number | null> {
  const bs = ctx.sb.blockBytes;
  const tailBytes = ctx.sb.metadataCsum ? 8 : 0;
  const root = await dirBlock(ctx, dir, 0);
  if (dxCountOffset(ctx, root) !== 32) throw new IndexProblem('htree root block has no dx_root (bad "." / ".." entries or root info)');
  const version = root[28];
  const levels = root[30];
  const maxLevels = ctx.sb.incompat & INCOMPAT_LARGEDIR ? 3 : 2;
  if (version > HASH_TEA) throw new IndexProblem(`htree hash version ${version} (expected 0-2: legacy, half_md4, tea)`);
  if (levels >= maxLevels) throw new IndexProblem(`htree indirect_levels ${levels} (expected below ${maxLevels})`);
  const hash = dirHash(name, version + (ctx.sb.hashUnsigned ? HASH_UNSIGNED_OFFSET : 0), ctx.sb.hashSeed);
  const level = (b: Uint8Array, countAt: number, depth: number, leftmost = false): Level => {
    const limit = u16(b, countAt);
    const count = u16(b, countAt + 2);
    const expected = (bs - countAt - tailBytes) / 8;
    if (limit !== expected || count === 0 || count > limit) {
      throw new IndexProblem(`htree node at level ${depth}: limit ${limit}, count ${count} (expected limit ${expected} and count 1..limit)`);
    }
    if (leftmost) return { b, countAt, count, at: 0 };
    // The last entry whose hash is at most ours (entry 0 stands for every hash below entry 1's).
    let lo = 1;
    let hi = count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (u32(b, countAt + 8 * mid) > hash) hi = mid - 1;
      else lo = mid + 1;
    }
    return { b, countAt, count, at: lo - 1 };
  };
  const child = (l: Level) => u32(l.b, l.countAt + 8 * l.at + 4) & 0x0fffffff;
  const descend = async (path: Level[], leftmost: boolean) => {
    while (path.length <= levels) {
      const node = await dirBlock(ctx, dir, child(path[path.length - 1]));
      if (dxCountOffset(ctx, node) !== 8) throw new IndexProblem(`htree index node (block ${child(path[path.length - 1])}) has no empty entry header`);
      path.push(level(node, 8, path.length, leftmost));
    }
  };
  const path: Level[] = [level(root, 32, 0)];
  await descend(path, false);
  const blocks = Math.ceil(dir.size / bs);
  for (let leaves = 0; leaves < blocks; leaves++) {
    const leafNo = child(path[path.length - 1]);
    const leaf = await dirBlock(ctx, dir, leafNo);
    let found: number | null = null;
    parseEntries(ctx, dir, leaf, 0, bs, `logical block ${leafNo}`, (e) => {
      if (!sameBytes(e.name, name)) return false;
      found = e.ino;
      return true;
    });
    if (found !== null) return found;
    // Names with the same hash may go on in the next leaf: its index entry then has our hash, with the collision bit.
    let d = path.length - 1;
    while (d >= 0 && path[d].at + 1 >= path[d].count) d--;
    if (d < 0) return null;
    path[d].at++;
    if ((u32(path[d].b, path[d].countAt + 8 * path[d].at) & ~1) >>> 0 !== hash) return null;
    path.length = d + 1;
    await descend(path, true);
  }
  return null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

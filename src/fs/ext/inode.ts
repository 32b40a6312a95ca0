// SPDX-License-Identifier: MIT
// Inodes: where one lies (group, inode table, index), its fields (mode, owner, size, times with
// the extra nanosecond and epoch bits, flags, i_block), its checksum, and what a valid one looks
// like. Offsets: the kernel's Documentation/filesystems/ext4/inodes.rst.

import { PloopError } from '../../errors.js';
import { u16, u32 } from '../../inspect/bytes.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, typeOfMode, type FsStat } from '../types.js';
import { crc32c } from './checksum.js';
import { BG_INODE_UNINIT, type ExtContext } from './context.js';
import { INCOMPAT_CASEFOLD, INCOMPAT_COMPRESSION, INCOMPAT_ENCRYPT, corrupt } from './superblock.js';

export const ROOT_INO = 2;
/** i_block: 15 block pointers, an extent tree root, a fast symlink or inline data (60 bytes). */
export const I_BLOCK_BYTES = 60;

// i_flags (ext2_fs.h).
const COMPR_FL = 0x4;
const COMPRBLK_FL = 0x200;
const ENCRYPT_FL = 0x800;
export const INDEX_FL = 0x1000;
export const EXTENTS_FL = 0x80000;
export const INLINE_DATA_FL = 0x10000000;
const CASEFOLD_FL = 0x40000000;

const VALID_TYPES = new Set([S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO]);

export interface Inode {
  ino: number;
  mode: number;
  size: number;
  flags: number;
  generation: number;
  /** i_blocks in 512-byte units (or filesystem blocks with huge_file's HUGE_FILE_FL). */
  blocks: number;
  /** Block of the inode's extended attributes (0: none). */
  fileAcl: number;
  /** The 60 bytes of i_block. */
  iBlock: Uint8Array;
  /** The whole on-disk inode, kept only where inline data needs its extended attributes. */
  raw: Uint8Array | null;
  stat: FsStat;
}

/** Read inode `ino`, checked; `what` says who refers to it (for errors). */
export async function readInode(ctx: ExtContext, ino: number, what = 'a directory entry'): Promise<Inode> {
  const { sb } = ctx;
  if (!Number.isSafeInteger(ino) || ino < 1 || ino > sb.inodesCount) {
    throw corrupt(`${what} refers to inode ${ino} (expected 1..${sb.inodesCount})`, { inode: ino });
  }
  const group = Math.floor((ino - 1) / sb.inodesPerGroup);
  const desc = await ctx.group(group);
  if (desc.flags & BG_INODE_UNINIT) {
    throw corrupt(`inode ${ino} (referred to by ${what}) lies in group ${group}, whose inode table is not initialized (INODE_UNINIT)`, { inode: ino, group });
  }
  const byteInTable = ((ino - 1) % sb.inodesPerGroup) * sb.inodeBytes;
  const block = desc.inodeTable + Math.floor(byteInTable / sb.blockBytes);
  const tableBlock = await ctx.metaBlock(block, `inode table of group ${group}`);
  const off = byteInTable % sb.blockBytes;
  return parseInode(ctx, ino, tableBlock.subarray(off, off + sb.inodeBytes), what);
}

function parseInode(ctx: ExtContext, ino: number, b: Uint8Array, what: string): Inode {
  const { sb } = ctx;
  const extraBytes = sb.inodeBytes > 128 ? u16(b, 0x80) : 0;
  if (extraBytes > sb.inodeBytes - 128 || extraBytes % 4 !== 0) {
    throw corrupt(`inode ${ino}: i_extra_isize ${extraBytes} (expected a multiple of 4 up to ${sb.inodeBytes - 128})`, { inode: ino, field: 'i_extra_isize', value: extraBytes });
  }
  if (sb.metadataCsum) verifyChecksum(ctx, ino, b, extraBytes);
  const mode = u16(b, 0x0);
  const links = u16(b, 0x1a);
  if (mode === 0) throw corrupt(`inode ${ino} (referred to by ${what}) is not in use (i_mode 0)`, { inode: ino, field: 'i_mode', value: 0 });
  if (!VALID_TYPES.has(mode & S_IFMT)) {
    throw corrupt(`inode ${ino}: i_mode 0o${mode.toString(8)} has no valid file type (expected a regular file, directory, symlink, device, FIFO or socket)`, { inode: ino, field: 'i_mode', value: mode });
  }
  if (links === 0) throw corrupt(`inode ${ino} (referred to by ${what}) is deleted (i_links_count 0)`, { inode: ino, field: 'i_links_count', value: 0 });
  const flags = u32(b, 0x20);
  const size = u32(b, 0x4) + u32(b, 0x6c) * 2 ** 32;
  const type = typeOfMode(mode);
  // Beyond 2^48 bytes no block map can reach (2^32 blocks of at most 64 KiB).
  if (size > 2 ** 32 * sb.blockBytes) {
    throw corrupt(`inode ${ino}: i_size ${size} is more than any ${sb.blockBytes}-byte-block file can hold (${2 ** 32 * sb.blockBytes})`, { inode: ino, field: 'i_size', value: size });
  }
  const has = (end: number) => extraBytes >= end - 0x80;
  const time = (at: number, extraAt: number): number => {
    const seconds = u32(b, at) | 0;
    if (!has(extraAt + 4)) return seconds;
    const extra = u32(b, extraAt);
    // Low two bits: epoch bits above the 32-bit seconds (dates past 2038); the rest: nanoseconds.
    return seconds + (extra & 3) * 2 ** 32 + (extra >>> 2) / 1e9;
  };
  const iBlock = b.slice(0x28, 0x28 + I_BLOCK_BYTES);
  let rdev = 0;
  if (type === 'other' && ((mode & S_IFMT) === S_IFCHR || (mode & S_IFMT) === S_IFBLK)) {
    const old = u32(iBlock, 0);
    const dev = old !== 0 ? old : u32(iBlock, 4);
    const major = old !== 0 ? (old >>> 8) & 0xff : (dev & 0xfff00) >>> 8;
    const minor = old !== 0 ? old & 0xff : (dev & 0xff) | ((dev >>> 12) & 0xfff00);
    rdev = (major << 8) | minor;
  }
  const stat: FsStat = {
    type, mode, size,
    uid: u16(b, 0x2) + u16(b, 0x78) * 0x10000,
    gid: u16(b, 0x18) + u16(b, 0x7a) * 0x10000,
    nlink: links,
    inode: ino,
    atime: time(0x08, 0x8c),
    ctime: time(0x0c, 0x84),
    mtime: time(0x10, 0x88),
    birthtime: has(0x94) ? time(0x90, 0x94) : null,
    rdev,
  };
  return {
    ino, mode, size, flags, generation: u32(b, 0x64), blocks: u32(b, 0x1c) + u16(b, 0x74) * 2 ** 32, fileAcl: u32(b, 0x68) + u16(b, 0x76) * 2 ** 32, iBlock,
    raw: flags & INLINE_DATA_FL ? b.slice() : null, stat,
  };
}

function verifyChecksum(ctx: ExtContext, ino: number, b: Uint8Array, extraBytes: number): void {
  const hasHi = extraBytes >= 4;
  const copy = b.slice();
  copy[0x7c] = copy[0x7d] = 0;
  if (hasHi) copy[0x82] = copy[0x83] = 0;
  let computed = crc32c(ctx.inodeSeed(ino, u32(b, 0x64)), copy);
  let stored = u16(b, 0x7c);
  if (hasHi) stored = (stored | (u16(b, 0x82) << 16)) >>> 0;
  else computed &= 0xffff;
  if (stored !== computed && b.subarray(0, 128).some((x) => x !== 0)) ctx.checkCsum(stored, computed, `inode ${ino}`);
}

/** Refuse, with ENOTSUP, what this reader cannot decode: encrypted, casefolded and compressed inodes. */
export function checkSupported(ctx: ExtContext, inode: Inode, operation: string): void {
  const { incompat } = ctx.sb;
  const refuse = (why: string) => new PloopError('ENOTSUP', `ext: ${operation} inode ${inode.ino}: ${why}, which ploop-wasm cannot read`, { inode: inode.ino });
  if (incompat & INCOMPAT_ENCRYPT && inode.flags & ENCRYPT_FL) throw refuse('it is encrypted (fscrypt)');
  if (incompat & INCOMPAT_CASEFOLD && inode.flags & CASEFOLD_FL) throw refuse('it is a case-insensitive (casefold) directory');
  if (incompat & INCOMPAT_COMPRESSION && inode.flags & (COMPR_FL | COMPRBLK_FL)) throw refuse('it is compressed (ext2 compression)');
}

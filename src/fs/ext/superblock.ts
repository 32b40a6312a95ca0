// SPDX-License-Identifier: MIT
// The ext2/3/4 superblock (1024 bytes at byte 1024 of the volume): geometry, features, the
// directory hash settings and the checksum seed, each field checked against what the format
// allows before anything else trusts it. Offsets and flags: the kernel's
// Documentation/filesystems/ext4/super.rst and e2fsprogs' lib/ext2fs/ext2_fs.h.

import { PloopError } from '../../errors.js';
import { u16, u32 } from '../../inspect/bytes.js';
import { crc32c } from './checksum.js';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_BYTES = 1024;
const MAGIC = 0xef53;

// Feature flags (ext2_fs.h): only those the reader looks at.
export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_DIR_INDEX = 0x20;
export const COMPAT_SPARSE_SUPER2 = 0x200;
export const INCOMPAT_COMPRESSION = 0x1;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_RECOVER = 0x4;
export const INCOMPAT_JOURNAL_DEV = 0x8;
export const INCOMPAT_META_BG = 0x10;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_CSUM_SEED = 0x2000;
export const INCOMPAT_LARGEDIR = 0x4000;
export const INCOMPAT_INLINE_DATA = 0x8000;
export const INCOMPAT_ENCRYPT = 0x10000;
export const INCOMPAT_CASEFOLD = 0x20000;
/** Every incompat feature this reader knows how to read (or to refuse per inode with ENOTSUP). */
const INCOMPAT_KNOWN = INCOMPAT_COMPRESSION | INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG | INCOMPAT_EXTENTS |
  INCOMPAT_64BIT | 0x100 /* mmp */ | 0x200 /* flex_bg */ | 0x400 /* ea_inode */ | 0x1000 /* dirdata */ | INCOMPAT_CSUM_SEED |
  INCOMPAT_LARGEDIR | INCOMPAT_INLINE_DATA | INCOMPAT_ENCRYPT | INCOMPAT_CASEFOLD;
export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_GDT_CSUM = 0x10;
export const RO_COMPAT_METADATA_CSUM = 0x400;

const FLAGS_UNSIGNED_HASH = 0x2;
const STATE_VALID = 0x1;
const STATE_ERRORS = 0x2;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  firstDataBlock: number;
  blockBytes: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  inodeBytes: number;
  /** Bytes of one group descriptor (32, or s_desc_size with 64bit). */
  descBytes: number;
  groupCount: number;
  compat: number;
  incompat: number;
  roCompat: number;
  /** The 16 UUID bytes (the gdt_csum checksum covers them). */
  uuidBytes: Uint8Array;
  /** The four words of s_hash_seed (all zero: the hash functions use their default seed). */
  hashSeed: number[];
  /** Directory hashes use unsigned chars (s_flags); hash versions 0-2 then become 3-5. */
  hashUnsigned: boolean;
  firstMetaBg: number;
  /** s_backup_bgs (sparse_super2): the two groups that keep superblock backups. */
  backupGroups: [number, number];
  /** Seed of every metadata_csum checksum but the superblock's own, or null without metadata_csum. */
  csumSeed: number | null;
  /** metadata_csum present and of the one known type (crc32c). */
  metadataCsum: boolean;
  gdtCsum: boolean;
  /** Things noticed that do not stop reading. */
  warnings: string[];
}

export function corrupt(message: string, data: Record<string, unknown> = {}): PloopError {
  return new PloopError('ECORRUPT', `ext: ${message}`, data);
}

/** Parse and check the superblock bytes (1024 of them, from byte 1024 of the volume). */
export function parseSuperblock(sb: Uint8Array, volumeBytes: number): Superblock {
  const magic = u16(sb, 0x38);
  if (magic !== MAGIC) throw corrupt(`superblock magic 0x${magic.toString(16)} (expected 0xef53): not an ext2/3/4 filesystem`, { field: 's_magic', value: magic });
  const warnings: string[] = [];
  const compat = u32(sb, 0x5c);
  const incompat = u32(sb, 0x60);
  const roCompat = u32(sb, 0x64);
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  if (incompat & INCOMPAT_JOURNAL_DEV) throw new PloopError('ENOTSUP', 'ext: this volume is an external journal device, not a filesystem with files', { incompat });
  const unknown = incompat & ~INCOMPAT_KNOWN;
  if (unknown) throw new PloopError('ENOTSUP', `ext: incompatible features 0x${unknown.toString(16)} that ploop-wasm does not know (s_feature_incompat 0x${incompat.toString(16)})`, { incompat });

  const logBlock = u32(sb, 0x18);
  if (logBlock > 6) throw corrupt(`superblock s_log_block_size ${logBlock} (expected 0-6: blocks of 1 to 64 KiB)`, { field: 's_log_block_size', value: logBlock });
  const blockBytes = 1024 << logBlock;
  const revLevel = u32(sb, 0x4c);
  const inodeBytes = revLevel === 0 ? 128 : u16(sb, 0x58);
  if (inodeBytes < 128 || inodeBytes > blockBytes || (inodeBytes & (inodeBytes - 1)) !== 0) {
    throw corrupt(`superblock s_inode_size ${inodeBytes} (expected a power of two from 128 to the block size ${blockBytes})`, { field: 's_inode_size', value: inodeBytes });
  }
  const blocksCount = u32(sb, 0x4) + (is64 ? u32(sb, 0x150) * 2 ** 32 : 0);
  const firstDataBlock = u32(sb, 0x14);
  if (firstDataBlock > 1 || blocksCount <= firstDataBlock + 1) {
    throw corrupt(`superblock s_blocks_count ${blocksCount} with s_first_data_block ${firstDataBlock} (expected first data block 0 or 1 and more blocks than that)`, { field: 's_blocks_count', value: blocksCount });
  }
  const blocksPerGroup = u32(sb, 0x20);
  const inodesPerGroup = u32(sb, 0x28);
  const inodesCount = u32(sb, 0x0);
  if (blocksPerGroup === 0 || blocksPerGroup > 8 * blockBytes) {
    throw corrupt(`superblock s_blocks_per_group ${blocksPerGroup} (expected 1 to ${8 * blockBytes}, the bits of one bitmap block)`, { field: 's_blocks_per_group', value: blocksPerGroup });
  }
  if (inodesPerGroup === 0 || inodesPerGroup > 8 * blockBytes) {
    throw corrupt(`superblock s_inodes_per_group ${inodesPerGroup} (expected 1 to ${8 * blockBytes})`, { field: 's_inodes_per_group', value: inodesPerGroup });
  }
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  if (inodesCount < 11 || inodesCount > groupCount * inodesPerGroup) {
    throw corrupt(`superblock s_inodes_count ${inodesCount} (expected 11 to ${groupCount * inodesPerGroup}: ${groupCount} groups of ${inodesPerGroup})`, { field: 's_inodes_count', value: inodesCount });
  }
  const descBytes = is64 ? u16(sb, 0xfe) : 32;
  if (descBytes < 32 || descBytes > 1024 || (descBytes & (descBytes - 1)) !== 0) {
    throw corrupt(`superblock s_desc_size ${descBytes} (expected a power of two from 32 to 1024)`, { field: 's_desc_size', value: descBytes });
  }
  if (blocksCount * blockBytes > volumeBytes) {
    warnings.push(`the filesystem says it holds ${blocksCount * blockBytes} bytes but the volume has ${volumeBytes}: what lies past the volume's end cannot be read`);
  }

  const metadataCsumFeature = (roCompat & RO_COMPAT_METADATA_CSUM) !== 0;
  const checksumType = sb[0x175];
  const metadataCsum = metadataCsumFeature && checksumType === 1;
  if (metadataCsumFeature && checksumType !== 1) warnings.push(`superblock s_checksum_type ${checksumType} is not crc32c (1): checksums are not verified`);
  if (metadataCsum) {
    const stored = u32(sb, 0x3fc);
    const computed = crc32c(0xffffffff, sb, 0, 0x3fc);
    if (stored !== computed) warnings.push(`checksum mismatch: superblock (stored 0x${hex(stored)}, computed 0x${hex(computed)})`);
  }
  const uuidBytes = sb.slice(0x68, 0x78);
  const csumSeed = !metadataCsum ? null : incompat & INCOMPAT_CSUM_SEED ? u32(sb, 0x270) : crc32c(0xffffffff, uuidBytes);
  if (incompat & INCOMPAT_RECOVER) {
    warnings.push('the journal needs recovery (the filesystem was not unmounted cleanly): ploop-wasm reads the filesystem as it is on disk, without replaying the journal, so the most recent changes may be missing');
  }
  const state = u16(sb, 0x3a);
  if (!(state & STATE_VALID) && !(incompat & INCOMPAT_RECOVER)) warnings.push('the filesystem was not cleanly unmounted (s_state)');
  if (state & STATE_ERRORS) warnings.push('the filesystem is marked as having errors (s_state): run e2fsck on it');

  return {
    inodesCount, blocksCount, firstDataBlock, blockBytes, blocksPerGroup, inodesPerGroup, inodeBytes, descBytes, groupCount,
    compat, incompat, roCompat, uuidBytes,
    hashSeed: [u32(sb, 0xec), u32(sb, 0xf0), u32(sb, 0xf4), u32(sb, 0xf8)],
    hashUnsigned: (u32(sb, 0x160) & FLAGS_UNSIGNED_HASH) !== 0,
    firstMetaBg: u32(sb, 0x104),
    backupGroups: [u32(sb, 0x24c), u32(sb, 0x250)],
    csumSeed, metadataCsum,
    gdtCsum: !metadataCsumFeature && (roCompat & RO_COMPAT_GDT_CSUM) !== 0,
    warnings,
  };
}

export function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

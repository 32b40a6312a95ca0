// SPDX-License-Identifier: MIT
// What every part of the ext reader shares: the volume, the metadata block cache, the
// superblock, the warnings list, and the group descriptors (read one descriptor block at a
// time, when an inode of that group is first needed, and checked once).

import type { VolumeReader } from '../types.js';
import { BlockCache } from '../volume.js';
import { u16, u32 } from '../../inspect/bytes.js';
import { crc16, crc32c, crc32cU32 } from './checksum.js';
import { COMPAT_SPARSE_SUPER2, INCOMPAT_META_BG, RO_COMPAT_SPARSE_SUPER, corrupt, hex, type Superblock } from './superblock.js';

/** At most this many warnings are kept; the last one says how many more there were. */
const MAX_WARNINGS = 100;
/** Group descriptor flag: the group's inode table was never initialized. */
export const BG_INODE_UNINIT = 0x1;

export interface GroupDesc {
  inodeTable: number;
  flags: number;
}

export class ExtContext {
  readonly volume: VolumeReader;
  readonly sb: Superblock;
  readonly cache: BlockCache;
  readonly warnings: string[] = [];
  readonly #warned = new Set<string>();
  #dropped = 0;
  readonly #groups = new Map<number, GroupDesc>();
  readonly inodeTableBlocks: number;

  constructor(volume: VolumeReader, sb: Superblock) {
    this.volume = volume;
    this.sb = sb;
    this.cache = new BlockCache(volume, sb.blockBytes);
    this.inodeTableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeBytes) / sb.blockBytes);
    for (const w of sb.warnings) this.warn(w);
  }

  /** Record a warning once (the same text again is dropped), at most MAX_WARNINGS of them. */
  warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    if (this.warnings.length < MAX_WARNINGS - 1) {
      this.warnings.push(message);
      return;
    }
    this.#dropped++;
    this.warnings[MAX_WARNINGS - 1] = `… and ${this.#dropped} more warnings`;
  }

  /** Compare a stored checksum with the computed one; a mismatch is a warning naming `what`. */
  checkCsum(stored: number, computed: number, what: string): void {
    if (stored >>> 0 !== computed >>> 0) this.warn(`checksum mismatch: ${what} (stored 0x${hex(stored)}, computed 0x${hex(computed)})`);
  }

  /** Block `block` of the volume through the metadata cache, after a range check naming `what`. */
  metaBlock(block: number, what: string): Promise<Uint8Array> {
    this.checkBlocks(block, 1, what);
    return this.cache.get(block, what);
  }

  /** Blocks [first, first + count) must lie inside the filesystem (block 0 never holds file data). */
  checkBlocks(first: number, count: number, what: string): void {
    if (!Number.isSafeInteger(first) || first < 1 || first + count > this.sb.blocksCount) {
      throw corrupt(`${what}: block ${first}${count > 1 ? `..${first + count - 1}` : ''} lies outside the filesystem (blocks 1..${this.sb.blocksCount - 1})`, { block: first, count });
    }
  }

  /** Metadata checksums of structures that belong to an inode start from this seed. */
  inodeSeed(ino: number, generation: number): number {
    return crc32cU32(crc32cU32(this.sb.csumSeed ?? 0, ino), generation);
  }

  async group(g: number): Promise<GroupDesc> {
    const known = this.#groups.get(g);
    if (known) return known;
    const { sb } = this;
    const perBlock = sb.blockBytes / sb.descBytes;
    const block = this.#descriptorBlock(Math.floor(g / perBlock));
    const bytes = await this.metaBlock(block, `group descriptors of group ${g}`);
    const off = (g % perBlock) * sb.descBytes;
    const d = bytes.subarray(off, off + sb.descBytes);
    const wide = sb.descBytes >= 64;
    if (sb.metadataCsum) {
      const zeroed = d.slice();
      zeroed[0x1e] = 0;
      zeroed[0x1f] = 0;
      this.checkCsum(u16(d, 0x1e), crc32c(crc32cU32(sb.csumSeed ?? 0, g), zeroed) & 0xffff, `group descriptor ${g}`);
    } else if (sb.gdtCsum) {
      let c = crc16(0xffff, sb.uuidBytes);
      c = crc16(c, new Uint8Array(new Uint32Array([g]).buffer));
      c = crc16(c, d, 0, 0x1e);
      c = crc16(c, d, 0x20, sb.descBytes);
      this.checkCsum(u16(d, 0x1e), c, `group descriptor ${g}`);
    }
    const inodeTable = u32(d, 0x8) + (wide ? u32(d, 0x28) * 2 ** 32 : 0);
    if (inodeTable < 1 || inodeTable + this.inodeTableBlocks > sb.blocksCount) {
      throw corrupt(`group descriptor ${g}: inode table at block ${inodeTable} (${this.inodeTableBlocks} blocks) lies outside the filesystem (${sb.blocksCount} blocks)`, { group: g, field: 'bg_inode_table', value: inodeTable });
    }
    const desc = { inodeTable, flags: sb.gdtCsum || sb.metadataCsum ? u16(d, 0x12) : 0 };
    this.#groups.set(g, desc);
    return desc;
  }

  /** Where descriptor block `i` lies: after the superblock, or with meta_bg in the first group of its meta group. */
  #descriptorBlock(i: number): number {
    const { sb } = this;
    const superBlock = sb.blockBytes === 1024 ? 1 : 0;
    if (!(sb.incompat & INCOMPAT_META_BG) || i < sb.firstMetaBg) return superBlock + 1 + i;
    const first = i * (sb.blockBytes / sb.descBytes);
    return sb.firstDataBlock + first * sb.blocksPerGroup + (this.#hasSuper(first) ? 1 : 0);
  }

  #hasSuper(g: number): boolean {
    const { sb } = this;
    if (g === 0) return true;
    if (sb.compat & COMPAT_SPARSE_SUPER2) return g === sb.backupGroups[0] || g === sb.backupGroups[1];
    if (g === 1 || !(sb.roCompat & RO_COMPAT_SPARSE_SUPER)) return true;
    for (const base of [3, 5, 7]) {
      let p = base;
      while (p < g) p *= base;
      if (p === g) return true;
    }
    return false;
  }
}

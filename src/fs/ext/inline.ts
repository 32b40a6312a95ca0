// SPDX-License-Identifier: MIT
// Inline data (incompat inline_data): a small file's or directory's bytes kept in the inode, the
// first 60 in i_block and the rest in the value of the in-inode extended attribute
// "system.data" (Documentation/filesystems/ext4/inlinedata.rst and attributes.rst).

import { PloopError } from '../../errors.js';
import { u16, u32 } from '../../inspect/bytes.js';
import { I_BLOCK_BYTES, type Inode } from './inode.js';
import { corrupt } from './superblock.js';

const XATTR_MAGIC = 0xea020000;
/** Name index of "system." attributes. */
const XATTR_INDEX_SYSTEM = 7;

/** The value of the in-inode attribute system.data (empty when there is none). */
export function systemData(inode: Inode): Uint8Array {
  const raw = inode.raw;
  if (!raw || raw.length <= 128) return new Uint8Array(0);
  const start = 128 + u16(raw, 0x80);
  if (start + 4 > raw.length || u32(raw, start) !== XATTR_MAGIC) return new Uint8Array(0);
  const first = start + 4;
  for (let pos = first; pos + 16 <= raw.length && u32(raw, pos) !== 0;) {
    const nameLen = raw[pos];
    const index = raw[pos + 1];
    const valueOffset = u16(raw, pos + 2);
    const valueInode = u32(raw, pos + 4);
    const valueSize = u32(raw, pos + 8);
    if (pos + 16 + nameLen > raw.length) throw corrupt(`inode ${inode.ino}: extended attribute name at byte ${pos} runs past the inode`, { inode: inode.ino });
    const isData = index === XATTR_INDEX_SYSTEM && nameLen === 4 && String.fromCharCode(...raw.subarray(pos + 16, pos + 20)) === 'data';
    if (isData) {
      if (valueInode !== 0) throw new PloopError('ENOTSUP', `ext: inode ${inode.ino}: inline data kept in another inode (ea_inode ${valueInode})`, { inode: inode.ino });
      if (first + valueOffset + valueSize > raw.length) {
        throw corrupt(`inode ${inode.ino}: system.data value of ${valueSize} bytes at offset ${valueOffset} runs past the inode (${raw.length} bytes)`, { inode: inode.ino, field: 'e_value_size', value: valueSize });
      }
      return raw.subarray(first + valueOffset, first + valueOffset + valueSize);
    }
    pos += (16 + nameLen + 3) & ~3;
  }
  return new Uint8Array(0);
}

/** A file's inline bytes: i_block then system.data, `size` of them. */
export function inlineFileBytes(inode: Inode): Uint8Array {
  const extra = systemData(inode);
  if (inode.size > I_BLOCK_BYTES + extra.length) {
    throw corrupt(`inode ${inode.ino}: i_size ${inode.size} is more than its inline data holds (${I_BLOCK_BYTES + extra.length} bytes)`, { inode: inode.ino, field: 'i_size', value: inode.size });
  }
  const out = new Uint8Array(inode.size);
  out.set(inode.iBlock.subarray(0, Math.min(inode.size, I_BLOCK_BYTES)));
  if (inode.size > I_BLOCK_BYTES) out.set(extra.subarray(0, inode.size - I_BLOCK_BYTES), I_BLOCK_BYTES);
  return out;
}

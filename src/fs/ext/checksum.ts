// SPDX-License-Identifier: MIT
// The two checksums ext4 keeps: CRC32C (Castagnoli, metadata_csum) and the ANSI CRC16
// (gdt_csum, group descriptors only). Both are raw updates, no pre- or post-inversion: the
// on-disk values chain them from a seed (~0, or the filesystem's checksum seed).

const CRC32C_TABLE = makeTable(0x82f63b78);
const CRC16_TABLE = makeTable(0xa001);

function makeTable(reflectedPoly: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ reflectedPoly : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** CRC32C of bytes [start, end) of `b`, continuing from `crc`. */
export function crc32c(crc: number, b: Uint8Array, start = 0, end = b.length): number {
  let c = crc >>> 0;
  for (let i = start; i < end; i++) c = CRC32C_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** CRC32C of a little-endian u32 (inode numbers, generations, group numbers), continuing from `crc`. */
export function crc32cU32(crc: number, value: number): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  return crc32c(crc, b);
}

/** CRC16 (ANSI, reflected 0xA001) of bytes [start, end) of `b`, continuing from `crc`. */
export function crc16(crc: number, b: Uint8Array, start = 0, end = b.length): number {
  let c = crc & 0xffff;
  for (let i = start; i < end; i++) c = (c >>> 8) ^ CRC16_TABLE[(c ^ b[i]) & 0xff];
  return c & 0xffff;
}

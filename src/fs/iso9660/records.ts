// SPDX-License-Identifier: MIT
// ECMA-119 structures: the volume descriptors from sector 16 (2048-byte sectors) and the
// directory records that make up every directory. Numbers are stored both-endian; the
// little-endian half is read.

import { PloopError } from '../../errors.js';
import { ascii, u16, u32, textField } from '../../inspect/bytes.js';

export const DESCRIPTOR_BYTES = 2048;
const FIRST_DESCRIPTOR = 16;
/** Descriptors read before giving up on a terminator (a hostile set could go on to the end). */
const MAX_DESCRIPTORS = 64;
/** A directory record is at least 33 bytes plus a 1-byte name. */
export const MIN_RECORD_BYTES = 34;

export const FLAG_HIDDEN = 0x01;
export const FLAG_DIRECTORY = 0x02;
export const FLAG_ASSOCIATED = 0x04;
export const FLAG_MULTI_EXTENT = 0x80;

export interface DirRecord {
  /** Byte offset of the record on the volume (unique: it serves as the inode number). */
  offsetBytes: number;
  extentBlock: number;
  dataBytes: number;
  /** Seconds since the epoch (UTC), from the 7-byte recording date. */
  recorded: number;
  flags: number;
  /** The identifier's raw bytes (0x00 is ".", 0x01 is ".."). */
  name: Uint8Array;
  /** The system use area (Rock Ridge lives here). */
  systemUse: Uint8Array;
}

export interface VolumeDescriptors {
  blockBytes: number;
  volumeBlocks: number;
  label: string | null;
  /** The primary descriptor's root record (Rock Ridge is read from this tree). */
  primaryRoot: DirRecord;
  /** The Joliet supplementary descriptor's root record, if there is one. */
  jolietRoot: DirRecord | null;
}

function corrupt(structure: string, message: string, data: Record<string, unknown> = {}): PloopError {
  return new PloopError('ECORRUPT', `${structure}: ${message}`, { structure, ...data });
}

/** The 7-byte date of a directory record: years since 1900 … seconds, then the zone in 15-minute steps. */
export function recordDate(b: Uint8Array, off: number): number {
  if (b[off] === 0 && b[off + 1] === 0 && b[off + 2] === 0) return 0;
  const zone = (b[off + 6] << 24) >> 24;
  const local = Date.UTC(1900 + b[off], Math.max(1, b[off + 1]) - 1, Math.max(1, b[off + 2]), b[off + 3], b[off + 4], b[off + 5]);
  return local / 1000 - zone * 900;
}

/** The 17-byte date ("YYYYMMDDHHMMSScc" and a zone byte); null when it is unset or not digits. */
export function longDate(b: Uint8Array, off: number): number | null {
  const digits = ascii(b, off, 16);
  if (!/^\d{16}$/.test(digits) || digits.startsWith('0000')) return null;
  const n = (from: number, length: number) => Number(digits.slice(from, from + length));
  const zone = (b[off + 16] << 24) >> 24;
  const local = Date.UTC(n(0, 4), Math.max(1, n(4, 2)) - 1, Math.max(1, n(6, 2)), n(8, 2), n(10, 2), n(12, 2)) / 1000 + n(14, 2) / 100;
  return local - zone * 900;
}

/**
 * The record at `off` of `b` (a directory block), or null at a 0 length byte (the rest of the
 * block is padding). `where` is the block's volume offset, `what` names the directory.
 */
export function parseRecord(b: Uint8Array, off: number, where: number, what: string): DirRecord | null {
  const length = b[off];
  if (length === 0) return null;
  const at = where + off;
  if (length < MIN_RECORD_BYTES || off + length > b.length) {
    throw corrupt('ISO 9660 directory record', `${what}, record at byte ${at}: length ${length} does not fit (expected ${MIN_RECORD_BYTES} to ${b.length - off}, within its block)`, { offset: at, length });
  }
  const nameBytes = b[off + 32];
  if (nameBytes === 0 || 33 + nameBytes > length) {
    throw corrupt('ISO 9660 directory record', `${what}, record at byte ${at}: identifier length ${nameBytes} does not fit its record of ${length} bytes`, { offset: at, nameBytes });
  }
  const suStart = 33 + nameBytes + (nameBytes % 2 === 0 ? 1 : 0);
  return {
    offsetBytes: at,
    extentBlock: u32(b, off + 2) + b[off + 1], // an extended attribute record comes first
    dataBytes: u32(b, off + 10),
    recorded: recordDate(b, off + 18),
    flags: b[off + 25],
    name: b.subarray(off + 33, off + 33 + nameBytes),
    systemUse: b.subarray(off + Math.min(suStart, length), off + length),
  };
}

/** Read the volume descriptors from sector 16 on. */
export async function readDescriptors(read: (offset: number, length: number, what: string) => Promise<Uint8Array>, volumeBytes: number): Promise<VolumeDescriptors> {
  let primary: Uint8Array | null = null;
  let primaryAt = 0;
  let joliet: { vd: Uint8Array; at: number } | null = null;
  for (let n = FIRST_DESCRIPTOR; n < FIRST_DESCRIPTOR + MAX_DESCRIPTORS; n++) {
    const at = n * DESCRIPTOR_BYTES;
    if (at + DESCRIPTOR_BYTES > volumeBytes) break;
    const vd = await read(at, DESCRIPTOR_BYTES, `ISO 9660 volume descriptor ${n}`);
    if (ascii(vd, 1, 5) !== 'CD001') {
      throw corrupt('ISO 9660 volume descriptor', `sector ${n}: standard identifier is "${ascii(vd, 1, 5).replace(/[^\x20-\x7e]/g, '?')}", expected "CD001" (the set ends without a terminator)`, { sector: n });
    }
    const type = vd[0];
    if (type === 255) break;
    if (type === 1 && primary === null) {
      primary = vd;
      primaryAt = at;
    }
    // A supplementary descriptor with a UCS-2 escape sequence (%/@, %/C, %/E) is Joliet.
    if (type === 2 && joliet === null && vd[88] === 0x25 && vd[89] === 0x2f && [0x40, 0x43, 0x45].includes(vd[90])) joliet = { vd, at };
  }
  if (primary === null) throw corrupt('ISO 9660 volume descriptors', 'no primary volume descriptor (type 1) before the terminator');
  const blockBytes = u16(primary, 128);
  if (![512, 1024, 2048].includes(blockBytes)) {
    throw corrupt('ISO 9660 primary volume descriptor', `logical block size is ${blockBytes}, expected 512, 1024 or 2048`, { field: 'logical block size', value: blockBytes });
  }
  const volumeBlocks = u32(primary, 80);
  const root = (vd: Uint8Array, at: number, what: string) => {
    const rec = parseRecord(vd.subarray(156, 190), 0, at + 156, what);
    if (rec === null || !(rec.flags & FLAG_DIRECTORY)) throw corrupt('ISO 9660 volume descriptor', `${what}: the root directory record is missing or not a directory`);
    return rec;
  };
  return {
    blockBytes,
    volumeBlocks,
    label: textField(primary, 40, 32),
    primaryRoot: root(primary, primaryAt, 'primary volume descriptor'),
    jolietRoot: joliet ? root(joliet.vd, joliet.at, 'Joliet supplementary volume descriptor') : null,
  };
}

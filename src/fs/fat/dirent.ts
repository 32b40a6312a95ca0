// SPDX-License-Identifier: MIT
// Directory entries: 32-byte short (8.3) entries, each possibly preceded by VFAT long-name
// entries that hold its name in UTF-16, 13 code units apiece, last part first, tied to the short
// entry by a checksum of its 11-byte name. A long name whose sequence is broken or whose
// checksum does not match is dropped and the 8.3 name is used, as Windows and Linux do.

import { u16, u32 } from '../../inspect/bytes.js';
import { nameProblem, wellFormed } from '../names.js';

export const ENTRY_BYTES = 32;

export const ATTR_READ_ONLY = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYSTEM = 0x04;
export const ATTR_VOLUME_ID = 0x08;
export const ATTR_DIRECTORY = 0x10;
export const ATTR_ARCHIVE = 0x20;
/** Long-name entries carry exactly these attribute bits (of the low six). */
const ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;
const ATTR_LONG_NAME_MASK = 0x3f;

/** First name byte of a deleted entry; 0x05 stands for a real 0xE5 (a Kanji lead byte). */
const DELETED = 0xe5;
const LAST_LONG_ENTRY = 0x40;
/** 255 UTF-16 units need 20 long-name entries of 13. */
const MAX_LONG_ENTRIES = 20;

/** NT reserved byte (DIR_NTRes) flags set by Windows, Linux and mtools for all-lowercase 8.3 parts. */
const NT_LOWERCASE_BASE = 0x08;
const NT_LOWERCASE_EXT = 0x10;

/** OEM code page 437 (Linux's default for FAT short names), bytes 0x80-0xFF. */
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐' +
  '└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

/** One short entry with the name it goes by. */
export interface DirEntry {
  /** The long name when a valid one precedes the entry, else the 8.3 name (lowercase flags applied). */
  name: string;
  /** The 8.3 name as stored (e.g. "README.TXT"), for lookups by alias. */
  shortName: string;
  attributes: number;
  /** First cluster (FAT32: high word included). */
  firstCluster: number;
  sizeBytes: number;
  /** Byte offset of the short entry on the volume: unique, so it serves as the inode number. */
  offsetBytes: number;
  /** Seconds since the epoch; FAT stores local time, taken here as UTC. */
  mtime: number;
  atime: number;
  birthtime: number | null;
  /** True when the entry had a long name. */
  hasLongName: boolean;
}

/** An entry that cannot be listed under any name (noted as a warning, not fatal). */
export interface SkippedEntry {
  offsetBytes: number;
  reason: string;
}

/** The VFAT checksum of an 11-byte short name (Microsoft's ChkSum). */
export function shortNameChecksum(entry: Uint8Array, off: number): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >>> 1) + entry[off + i]) & 0xff;
  return sum;
}

function oemChar(byte: number): string {
  return byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH[byte - 0x80];
}

function shortPart(b: Uint8Array, off: number, length: number, lower: boolean, first: boolean): string {
  let end = off + length;
  while (end > off && b[end - 1] === 0x20) end--;
  let s = '';
  for (let i = off; i < end; i++) {
    let c = b[i];
    if (first && i === off && c === 0x05) c = DELETED;
    const ch = oemChar(c);
    s += lower && c >= 0x41 && c <= 0x5a ? ch.toLowerCase() : ch;
  }
  return s;
}

/** "NAME.EXT" of a short entry; with `ntFlags`, the lowercase flags of byte 12 applied. */
export function shortName(b: Uint8Array, off: number, ntFlags = false): string {
  const nt = ntFlags ? b[off + 12] : 0;
  const base = shortPart(b, off, 8, (nt & NT_LOWERCASE_BASE) !== 0, true);
  const ext = shortPart(b, off + 8, 3, (nt & NT_LOWERCASE_EXT) !== 0, false);
  return ext ? `${base}.${ext}` : base;
}

/** FAT date and time (2-second steps) as seconds since the epoch, as UTC; null when both are 0. */
export function fatTime(date: number, time: number, hundredths = 0): number | null {
  if (date === 0 && time === 0) return null;
  // Linux (fat_time_fat2unix) reads month and day 0 as 1; out-of-range fields carry over.
  const year = 1980 + (date >>> 9);
  const month = Math.max(1, (date >>> 5) & 0x0f);
  const day = Math.max(1, date & 0x1f);
  const ms = Date.UTC(year, month - 1, day, time >>> 11, (time >>> 5) & 0x3f, (time & 0x1f) * 2);
  return ms / 1000 + Math.min(hundredths, 199) / 100;
}


/**
 * Reads one directory's entries from its bytes, fed in order (cluster by cluster, or the fixed
 * FAT12/16 root at once). Long-name parts are carried across chunk boundaries.
 */
export class DirectoryParser {
  readonly entries: DirEntry[] = [];
  readonly skipped: SkippedEntry[] = [];
  /** Set at the end-of-directory mark (an entry whose first byte is 0): nothing after it counts. */
  ended = false;
  // The long name being gathered: its parts by sequence number (1-based), the checksum they carry.
  #parts: string[] = [];
  #expect = 0;
  #checksum = -1;

  /** Parse `bytes`, the directory's entries found at volume offset `offsetBytes`. */
  push(bytes: Uint8Array, offsetBytes: number): void {
    for (let off = 0; off + ENTRY_BYTES <= bytes.length && !this.ended; off += ENTRY_BYTES) {
      this.#entry(bytes, off, offsetBytes + off);
    }
  }

  #reset(): void {
    this.#parts = [];
    this.#expect = 0;
    this.#checksum = -1;
  }

  #entry(b: Uint8Array, off: number, at: number): void {
    const first = b[off];
    if (first === 0) {
      this.ended = true;
      return;
    }
    if (first === DELETED) {
      this.#reset();
      return;
    }
    const attributes = b[off + 11];
    if ((attributes & ATTR_LONG_NAME_MASK) === ATTR_LONG_NAME) {
      this.#longEntry(b, off);
      return;
    }

    // A short entry: it ends whatever long name was gathered, used or not.
    const longName = this.#expect === 1 && this.#checksum === shortNameChecksum(b, off) ? this.#parts.join('') : null;
    this.#reset();
    if (attributes & ATTR_VOLUME_ID) return; // the volume label
    const raw = shortName(b, off);
    if (raw === '.' || raw === '..') return;
    const short = shortName(b, off, true);
    let name = short;
    let hasLongName = false;
    if (longName !== null) {
      const clean = wellFormed(longName);
      if (nameProblem(clean) === null) {
        name = clean;
        hasLongName = true;
      }
    }
    const problem = nameProblem(name);
    if (problem !== null) {
      this.skipped.push({ offsetBytes: at, reason: `${problem} (8.3 bytes ${hexBytes(b, off, 11)})` });
      return;
    }
    const fat32High = u16(b, off + 20);
    this.entries.push({
      name,
      shortName: raw,
      attributes,
      firstCluster: ((fat32High << 16) | u16(b, off + 26)) >>> 0,
      sizeBytes: u32(b, off + 28),
      offsetBytes: at,
      mtime: fatTime(u16(b, off + 24), u16(b, off + 22)) ?? 0,
      atime: fatTime(u16(b, off + 18), 0) ?? 0,
      birthtime: fatTime(u16(b, off + 16), u16(b, off + 14), b[off + 13]),
      hasLongName,
    });
  }

  #longEntry(b: Uint8Array, off: number): void {
    const ord = b[off];
    const seq = ord & ~LAST_LONG_ENTRY;
    const checksum = b[off + 13];
    const valid = seq >= 1 && seq <= MAX_LONG_ENTRIES && b[off + 12] === 0 && u16(b, off + 26) === 0;
    if (!valid) {
      this.#reset();
      return;
    }
    if (ord & LAST_LONG_ENTRY) {
      // The physically first entry holds the name's last part and says how many parts follow.
      this.#reset();
      this.#expect = seq;
      this.#checksum = checksum;
    } else if (seq !== this.#expect - 1 || checksum !== this.#checksum) {
      // Out of sequence or from another name: an orphan, dropped.
      this.#reset();
      return;
    } else {
      this.#expect = seq;
    }
    this.#parts[seq - 1] = longPart(b, off);
  }
}

/** The up-to-13 UTF-16 units of one long-name entry, up to its NUL terminator. */
function longPart(b: Uint8Array, off: number): string {
  let s = '';
  for (const [from, count] of [[1, 5], [14, 6], [28, 2]] as const) {
    for (let i = 0; i < count; i++) {
      const unit = u16(b, off + from + 2 * i);
      if (unit === 0) return s;
      s += String.fromCharCode(unit);
    }
  }
  return s;
}

function hexBytes(b: Uint8Array, off: number, length: number): string {
  return Array.from(b.subarray(off, off + length), (x) => x.toString(16).padStart(2, '0')).join(' ');
}


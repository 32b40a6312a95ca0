// SPDX-License-Identifier: MIT
// Rock Ridge (RRIP) over the System Use Sharing Protocol (SUSP): POSIX names (NM), modes, link
// counts, owners (PX), times (TF), device numbers (PN), symlinks (SL) and relocated deep
// directories (CL, RE), gathered from a record's system use area and its CE continuations.
// CE chains are bounded: a hostile image cannot make one record read without end.

import { PloopError } from '../../errors.js';
import { ascii, u32 } from '../../inspect/bytes.js';
import { MAX_TARGET_BYTES } from '../tree.js';
import { longDate, recordDate } from './records.js';

/** Continuation areas followed for one record, and their bytes in all. */
const MAX_CONTINUATIONS = 16;
const MAX_SYSTEM_USE_BYTES = 64 << 10;
/** Longest name NM may give (Linux: NAME_MAX is 255 bytes; leave room for UTF-8). */
const MAX_NAME_CHARS = 1024;

export interface RockRidge {
  name: string | null;
  mode: number | null;
  nlink: number | null;
  uid: number | null;
  gid: number | null;
  mtime: number | null;
  atime: number | null;
  ctime: number | null;
  birthtime: number | null;
  rdev: number | null;
  symlink: string | null;
  /** CL: this entry is a directory relocated to this block. */
  childBlock: number | null;
  /** RE: this directory was relocated here; its real entry is a CL elsewhere. */
  relocated: boolean;
}

export type ReadBlock = (block: number, what: string) => Promise<Uint8Array>;

function corrupt(what: string, message: string, data: Record<string, unknown> = {}): PloopError {
  return new PloopError('ECORRUPT', `${what}: Rock Ridge ${message}`, { structure: 'Rock Ridge system use area', ...data });
}

/** LEN_SKP of SUSP's SP entry when the system use area (of the root's ".") starts with one, else null. */
export function suspSkip(systemUse: Uint8Array): number | null {
  if (systemUse.length >= 7 && ascii(systemUse, 0, 2) === 'SP' && systemUse[4] === 0xbe && systemUse[5] === 0xef) return systemUse[6];
  return null;
}

/**
 * Every SUSP entry of a record's system use area (after `skip` bytes) and its continuations, in
 * order, as [signature, entry bytes].
 */
async function entries(systemUse: Uint8Array, skip: number, readBlock: ReadBlock, blockBytes: number, what: string): Promise<Array<[string, Uint8Array]>> {
  const out: Array<[string, Uint8Array]> = [];
  let area = systemUse.subarray(Math.min(skip, systemUse.length));
  let hops = 0;
  let total = area.length;
  for (;;) {
    let next: { block: number; offset: number; length: number } | null = null;
    for (let off = 0; off + 4 <= area.length; ) {
      const sig = ascii(area, off, 2);
      const length = area[off + 2];
      if (length < 4 || off + length > area.length) break; // padding, or the end of what is valid
      const entry = area.subarray(off, off + length);
      if (sig === 'ST') break;
      if (sig === 'CE' && length >= 28) next = { block: u32(entry, 4), offset: u32(entry, 12), length: u32(entry, 20) };
      else out.push([sig, entry]);
      off += length;
    }
    if (next === null) return out;
    if (++hops > MAX_CONTINUATIONS) throw corrupt(what, `continuation (CE) chain is longer than ${MAX_CONTINUATIONS} areas (a loop?)`, { block: next.block });
    total += next.length;
    if (next.length > MAX_SYSTEM_USE_BYTES || total > MAX_SYSTEM_USE_BYTES || next.offset + next.length > blockBytes) {
      throw corrupt(what, `continuation (CE) area at block ${next.block}, offset ${next.offset}, of ${next.length} bytes does not fit one ${blockBytes}-byte block (or passes ${MAX_SYSTEM_USE_BYTES} bytes in all)`, { block: next.block, offset: next.offset, length: next.length });
    }
    const block = await readBlock(next.block, `${what}, Rock Ridge continuation area`);
    area = block.subarray(next.offset, next.offset + next.length);
  }
}

/** The Rock Ridge fields of one directory record (all null when it has none). */
export async function readRockRidge(systemUse: Uint8Array, skip: number, readBlock: ReadBlock, blockBytes: number, what: string): Promise<RockRidge> {
  const rr: RockRidge = {
    name: null, mode: null, nlink: null, uid: null, gid: null, mtime: null, atime: null, ctime: null, birthtime: null,
    rdev: null, symlink: null, childBlock: null, relocated: false,
  };
  let name: string | null = null;
  let link: SymlinkParts | null = null;
  for (const [sig, e] of await entries(systemUse, skip, readBlock, blockBytes, what)) {
    switch (sig) {
      case 'PX':
        if (e.length >= 36) {
          rr.mode = u32(e, 4);
          rr.nlink = u32(e, 12);
          rr.uid = u32(e, 20);
          rr.gid = u32(e, 28);
        }
        break;
      case 'PN':
        // The low 32 bits of the device number, as mkisofs and xorriso store Linux's dev_t.
        if (e.length >= 20) rr.rdev = u32(e, 12);
        break;
      case 'NM': {
        const flags = e[4];
        if (flags & 0x06) break; // "." or "..": not a name
        name = (name ?? '') + new TextDecoder('utf-8').decode(e.subarray(5));
        if (name.length > MAX_NAME_CHARS) throw corrupt(what, `name (NM) is longer than ${MAX_NAME_CHARS} characters`);
        break;
      }
      case 'SL':
        link ??= { parts: [], component: null };
        symlinkParts(e, link, what);
        break;
      case 'TF':
        times(e, rr);
        break;
      case 'CL':
        if (e.length >= 12) rr.childBlock = u32(e, 4);
        break;
      case 'RE':
        rr.relocated = true;
        break;
    }
  }
  rr.name = name;
  if (link !== null) {
    const parts = link.component !== null ? [...link.parts, link.component] : link.parts;
    // A leading root component gives "" and so a leading "/".
    rr.symlink = parts.length === 1 && parts[0] === '' ? '/' : parts.join('/');
  }
  return rr;
}

/** A symlink target being read from SL entries: its finished components, and one continued in the next entry. */
interface SymlinkParts {
  parts: string[];
  component: string | null;
}

/** The components of one SL entry, added to `link`. */
function symlinkParts(e: Uint8Array, link: SymlinkParts, what: string): void {
  for (let off = 5; off + 2 <= e.length; ) {
    const cflags = e[off];
    const clen = e[off + 1];
    if (off + 2 + clen > e.length) throw corrupt(what, `symlink (SL) component of ${clen} bytes runs past its entry`);
    let text: string;
    if (cflags & 0x02) text = '.';
    else if (cflags & 0x04) text = '..';
    else if (cflags & 0x08) text = '';
    else text = new TextDecoder('utf-8').decode(e.subarray(off + 2, off + 2 + clen));
    if (link.component !== null) {
      link.component += text;
    } else {
      link.component = text;
      if (cflags & 0x08) link.parts.length = 0; // root: an absolute target starts here
    }
    if (!(cflags & 0x01)) {
      link.parts.push(link.component);
      link.component = null;
    }
    off += 2 + clen;
  }
  if (link.parts.join('/').length > MAX_TARGET_BYTES) throw corrupt(what, `symlink target (SL) is longer than ${MAX_TARGET_BYTES} bytes`);
}

/** The times of a TF entry (7-byte record dates, or 17-byte long ones), in its flag order. */
function times(e: Uint8Array, rr: RockRidge): void {
  const flags = e[4];
  const size = flags & 0x80 ? 17 : 7;
  let off = 5;
  const take = (bit: number): number | null => {
    if (!(flags & bit)) return null;
    if (off + size > e.length) return null;
    const t = size === 17 ? longDate(e, off) : recordDate(e, off);
    off += size;
    return t;
  };
  rr.birthtime = take(0x01);
  rr.mtime = take(0x02);
  rr.atime = take(0x04);
  rr.ctime = take(0x08);
}

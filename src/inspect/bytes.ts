// SPDX-License-Identifier: MIT
// Little helpers for reading on-disk structures: every inspector reads through a
// `read(offset, length)` callback so that it works on a ploop image, a raw file or a Blob alike.

/** Read `length` bytes at byte `offset` of the disk (zeros past its end). */
export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

export function u16(b: Uint8Array, off: number): number {
  return b[off] | (b[off + 1] << 8);
}

export function u32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** A 64-bit little-endian value as a number (exact below 2^53, which covers every disk offset). */
export function u64(b: Uint8Array, off: number): number {
  return u32(b, off) + u32(b, off + 4) * 2 ** 32;
}

export function ascii(b: Uint8Array, off: number, length: number): string {
  let s = '';
  for (let i = off; i < off + length && i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** A fixed-size text field: NUL-terminated, then trailing spaces dropped; null when empty. */
export function textField(b: Uint8Array, off: number, length: number, encoding: 'latin1' | 'utf-8' = 'latin1'): string | null {
  let end = off;
  while (end < off + length && b[end] !== 0) end++;
  const raw = encoding === 'utf-8' ? new TextDecoder('utf-8').decode(b.subarray(off, end)) : ascii(b, off, end - off);
  const text = raw.replace(/[\s]+$/u, '');
  return text.length > 0 ? text : null;
}

/** UTF-16LE text of `chars` code units, stopping at a NUL. */
export function utf16le(b: Uint8Array, off: number, chars: number): string {
  let s = '';
  for (let i = 0; i < chars; i++) {
    const c = u16(b, off + 2 * i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

function hex(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += b[i].toString(16).padStart(2, '0');
  return s;
}

/** A UUID stored big-endian (ext, XFS, Btrfs, swap): bytes in order. */
export function uuidBigEndian(b: Uint8Array, off: number): string {
  const h = hex(b, off, off + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A GUID stored the Microsoft way (GPT): the first three fields little-endian. */
export function guidMixedEndian(b: Uint8Array, off: number): string {
  const rev = (from: number, to: number) => {
    let s = '';
    for (let i = to - 1; i >= from; i--) s += b[off + i].toString(16).padStart(2, '0');
    return s;
  };
  return `${rev(0, 4)}-${rev(4, 6)}-${rev(6, 8)}-${hex(b, off + 8, off + 10)}-${hex(b, off + 10, off + 16)}`.toUpperCase();
}

export function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

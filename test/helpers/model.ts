// The in-memory model of a virtual disk: what every byte must read back as.

import assert from 'node:assert/strict';

export class DiskModel {
  readonly bytes: Uint8Array;

  /** An all-zero disk of `size` bytes, or a copy of `contents`. */
  constructor(sizeOrContents: number | Uint8Array) {
    this.bytes = typeof sizeOrContents === 'number' ? new Uint8Array(sizeOrContents) : sizeOrContents.slice();
  }

  get size(): number {
    return this.bytes.length;
  }

  write(offset: number, data: Uint8Array): void {
    this.bytes.set(data, offset);
  }

  /** Discard, like the engine: the range reads as zeros afterwards. */
  discard(offset: number, length: number): void {
    this.bytes.fill(0, offset, offset + length);
  }

  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}

/** Index of the first differing byte, or -1 when both are equal (length included). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  // Compare in big blocks with Buffer.compare (memcmp), then narrow down.
  const block = 1 << 16;
  for (let start = 0; start < n; start += block) {
    const end = Math.min(n, start + block);
    const x = Buffer.from(a.buffer, a.byteOffset + start, end - start);
    const y = Buffer.from(b.buffer, b.byteOffset + start, end - start);
    if (x.compare(y) !== 0) {
      for (let i = start; i < end; i++) if (a[i] !== b[i]) return i;
    }
  }
  return a.length === b.length ? -1 : n;
}

function hexAround(bytes: Uint8Array, at: number): string {
  const from = Math.max(0, at - 4);
  return [...bytes.subarray(from, at + 12)].map((v, i) => (from + i === at ? `[${v.toString(16).padStart(2, '0')}]` : v.toString(16).padStart(2, '0'))).join(' ');
}

/** Assert byte equality with a short message naming the first difference (never a huge dump). */
export function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  if (at === -1) return;
  if (actual.length !== expected.length && at === Math.min(actual.length, expected.length)) {
    assert.fail(`${what}: lengths differ, ${actual.length} bytes vs ${expected.length} expected`);
  }
  assert.fail(`${what}: first difference at byte ${at} (0x${at.toString(16)}): actual ${hexAround(actual, at)} / expected ${hexAround(expected, at)}` +
    (actual.length !== expected.length ? `; lengths ${actual.length} vs ${expected.length}` : ''));
}

/** Assert every byte is zero; names the first non-zero byte. */
export function assertAllZero(bytes: Uint8Array, what: string): void {
  const zeros = new Uint8Array(Math.min(bytes.length, 1 << 20));
  for (let at = 0; at < bytes.length; at += zeros.length) {
    const part = bytes.subarray(at, Math.min(bytes.length, at + zeros.length));
    const i = firstDifference(part, zeros.subarray(0, part.length));
    if (i !== -1) assert.fail(`${what}: byte ${at + i} is 0x${part[i].toString(16)}, expected 0`);
  }
}

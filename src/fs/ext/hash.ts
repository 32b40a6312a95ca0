// SPDX-License-Identifier: MIT
// The directory index (htree) hashes of file names: legacy, half MD4 and TEA, each with signed
// or unsigned chars (the superblock's s_flags says which this filesystem was made with), as the
// kernel's Documentation/filesystems/ext4/directory.rst describes them. Only the major hash is
// needed: it orders the index; its lowest bit is the collision flag, so it is cleared.

export const HASH_LEGACY = 0;
export const HASH_HALF_MD4 = 1;
export const HASH_TEA = 2;
/** Versions 0-2 plus this: the same with unsigned chars. */
export const HASH_UNSIGNED_OFFSET = 3;

const DEFAULT_SEED = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
/** The last hash value (EXT4_HTREE_EOF_32BIT << 1) is reserved: a name that hashes to it moves one step down. */
const EOF_HASH = 0x7fffffff * 2;

/** The major hash of `name` under hash `version` (0-5) and `seed` (four words; all zero: the default). */
export function dirHash(name: Uint8Array, version: number, seed: readonly number[]): number {
  const unsigned = version >= HASH_UNSIGNED_OFFSET;
  const char = unsigned ? (i: number) => name[i] : (i: number) => (name[i] << 24) >> 24;
  const buf = seed.some((w) => w !== 0) ? [...seed] : [...DEFAULT_SEED];
  let hash: number;
  switch (version % HASH_UNSIGNED_OFFSET) {
    case HASH_LEGACY:
      hash = legacy(name.length, char);
      break;
    case HASH_HALF_MD4:
      for (let p = 0; p < name.length; p += 32) halfMd4(buf, words(name, p, 8, char));
      hash = buf[1];
      break;
    default:
      for (let p = 0; p < name.length; p += 16) tea(buf, words(name, p, 4, char));
      hash = buf[0];
  }
  hash = (hash & ~1) >>> 0;
  return hash === EOF_HASH ? EOF_HASH - 2 : hash;
}

function legacy(length: number, char: (i: number) => number): number {
  let h0 = 0x12a3fe2d;
  let h1 = 0x37abe8f9;
  for (let i = 0; i < length; i++) {
    let h = (h1 + (h0 ^ Math.imul(char(i), 7152373))) >>> 0;
    if (h & 0x80000000) h = (h - 0x7fffffff) >>> 0;
    h1 = h0;
    h0 = h;
  }
  return (h0 << 1) >>> 0;
}

/**
 * `count` words from the name's bytes at `from`: four chars a word, the first in the high byte,
 * each word started from a pad made of the remaining length; the word after the name's last
 * full one, and any after it, are that pad (the kernel's str2hashbuf).
 */
function words(name: Uint8Array, from: number, count: number, char: (i: number) => number): number[] {
  const remaining = name.length - from;
  let pad = (remaining | (remaining << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  const out: number[] = [];
  const n = Math.min(remaining, count * 4);
  let val = pad;
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) val = pad;
    val = (char(from + i) + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out.push(val);
      val = pad;
    }
  }
  if (out.length < count) out.push(val);
  while (out.length < count) out.push(pad);
  return out;
}

function rotl(x: number, s: number): number {
  return ((x << s) | (x >>> (32 - s))) >>> 0;
}

/** MD4 cut down to three rounds of eight steps, 32 bits kept: the kernel's half_md4_transform. */
function halfMd4(buf: number[], x: number[]): void {
  let [a, b, c, d] = buf;
  const F = (x1: number, y: number, z: number) => z ^ (x1 & (y ^ z));
  const G = (x1: number, y: number, z: number) => ((x1 & y) + ((x1 ^ y) & z)) >>> 0;
  const H = (x1: number, y: number, z: number) => x1 ^ y ^ z;
  const K2 = 0x5a827999;
  const K3 = 0x6ed9eba1;
  const round = (f: typeof F, k: number, order: number[], shifts: number[]) => {
    for (let i = 0; i < 8; i++) {
      const s = shifts[i % 4];
      const v = (f(b, c, d) + x[order[i]] + k) >>> 0;
      // The four registers rotate roles each step: a, d, c, b.
      const t = rotl((a + v) >>> 0, s);
      a = d;
      d = c;
      c = b;
      b = t;
    }
  };
  round(F, 0, [0, 1, 2, 3, 4, 5, 6, 7], [3, 7, 11, 19]);
  round(G, K2, [1, 3, 5, 7, 0, 2, 4, 6], [3, 5, 9, 13]);
  round(H, K3, [3, 7, 2, 6, 1, 5, 0, 4], [3, 9, 11, 15]);
  buf[0] = (buf[0] + a) >>> 0;
  buf[1] = (buf[1] + b) >>> 0;
  buf[2] = (buf[2] + c) >>> 0;
  buf[3] = (buf[3] + d) >>> 0;
}

function tea(buf: number[], x: number[]): void {
  let sum = 0;
  let b0 = buf[0];
  let b1 = buf[1];
  const [a, b, c, d] = x;
  for (let n = 0; n < 16; n++) {
    sum = (sum + 0x9e3779b9) >>> 0;
    b0 = (b0 + ((((b1 << 4) >>> 0) + a) ^ (b1 + sum) ^ ((b1 >>> 5) + b))) >>> 0;
    b1 = (b1 + ((((b0 << 4) >>> 0) + c) ^ (b0 + sum) ^ ((b0 >>> 5) + d))) >>> 0;
  }
  buf[0] = (buf[0] + b0) >>> 0;
  buf[1] = (buf[1] + b1) >>> 0;
}

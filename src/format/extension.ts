// SPDX-License-Identifier: MIT
// The format extension cluster (docs/format.md, 'Format extension'): a magic, then the MD5 of
// the rest of the cluster, then its features (dirty bitmaps). QEMU refuses an image whose
// extension has a wrong magic or checksum; we say what is wrong (open warns or refuses, check
// reports it and its repair drops the extension).

import { md5 } from './md5.js';

export const FORMAT_EXTENSION_MAGIC = 0xab234cef23dcea87n;
/** Bytes before the checksummed part: the u64 magic and the 16-byte MD5. */
const EXTENSION_HEADER_BYTES = 24;
/** Largest cluster whose checksum is verified (ploop's largest cluster): a lying cluster size must not cost more. */
export const MAX_VERIFIED_EXTENSION_BYTES = 64 << 20;

/** What is wrong with the extension cluster `cluster` (read at file byte `offset`), or null when its magic and MD5 are right. */
export function extensionProblem(cluster: Uint8Array, offset: number): string | null {
  const view = new DataView(cluster.buffer, cluster.byteOffset, cluster.byteLength);
  const magic = view.getBigUint64(0, true);
  if (magic !== FORMAT_EXTENSION_MAGIC) {
    return `format extension at byte ${offset}: magic is 0x${magic.toString(16).padStart(16, '0')}, expected 0x${FORMAT_EXTENSION_MAGIC.toString(16)}`;
  }
  const stored = cluster.subarray(8, EXTENSION_HEADER_BYTES);
  const actual = md5(cluster.subarray(EXTENSION_HEADER_BYTES));
  if (stored.every((b, i) => b === actual[i])) return null;
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `format extension at byte ${offset}: its MD5 is ${hex(stored)}, but the cluster's bytes 24 to its end hash to ${hex(actual)}`;
}

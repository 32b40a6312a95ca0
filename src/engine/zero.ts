// SPDX-License-Identifier: MIT
// All-zero test for payloads: a write of zeros to an unallocated cluster allocates nothing.

/** True when every byte of `bytes` is 0. Checks 8 bytes at a time where alignment allows. */
export function isAllZero(bytes: Uint8Array): boolean {
  let i = 0;
  const n = bytes.length;
  const head = (8 - (bytes.byteOffset % 8)) % 8;
  for (; i < Math.min(head, n); i++) if (bytes[i] !== 0) return false;
  const words = Math.floor((n - i) / 8);
  if (words > 0) {
    const view = new BigUint64Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let w = 0; w < words; w++) if (view[w] !== 0n) return false;
    i += words * 8;
  }
  for (; i < n; i++) if (bytes[i] !== 0) return false;
  return true;
}

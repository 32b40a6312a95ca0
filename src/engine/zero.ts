// SPDX-License-Identifier: MIT
// Zeros: the all-zero test for payloads (a write of zeros to an unallocated cluster allocates
// nothing), and writing real zeros where a sparse store would otherwise keep a hole.

import type { BlockStore } from '../stores/block-store.js';

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

/** Bytes per zero write where the store has no writeZeros: one shared buffer, never written into. */
const ZERO_PIECE_BYTES = 256 << 10;
let zeroPiece: Uint8Array | null = null;

/** A view of `length` (at most ZERO_PIECE_BYTES) zero bytes; stores may keep it, nobody writes into it. */
function zeros(length: number): Uint8Array {
  zeroPiece ??= new Uint8Array(ZERO_PIECE_BYTES);
  return zeroPiece.subarray(0, length);
}

/**
 * Write real zeros over [offset, offset + length) of `store`: on a sparse store this backs the
 * range with disk blocks (the ploop tools refuse holes), where a truncate or a write past it
 * would leave a hole. Through the store's writeZeros where it has one (NodeFileStore hands the
 * range to its I/O thread in one request), else in pieces of a shared buffer of zeros.
 */
export async function writeZeros(store: Pick<BlockStore, 'write' | 'writeZeros'>, offset: number, length: number): Promise<void> {
  if (length === 0) return;
  if (store.writeZeros) return store.writeZeros(offset, length);
  for (let done = 0; done < length;) {
    const n = Math.min(ZERO_PIECE_BYTES, length - done);
    await store.write(offset + done, zeros(n));
    done += n;
  }
}

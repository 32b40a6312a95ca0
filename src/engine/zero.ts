// SPDX-License-Identifier: MIT
// Zeros: the all-zero test for payloads (a write of zeros to an unallocated cluster allocates
// nothing), and writing real zeros where a sparse store would otherwise keep a hole.

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

/**
 * Bytes per zero write: one shared buffer of zeros, never written into. 64 KiB pieces, four in
 * flight, go through NodeFileStore's I/O thread; backing 1 GiB of fresh 1 MiB clusters this way
 * measured faster than 256 KiB or 1 MiB pieces on libuv's pool (docs/performance.md).
 */
const ZERO_PIECE_BYTES = 64 << 10;
let zeroPiece: Uint8Array | null = null;

/** A view of `length` (at most ZERO_PIECE_BYTES) zero bytes; stores may keep it, nobody writes into it. */
function zeros(length: number): Uint8Array {
  zeroPiece ??= new Uint8Array(ZERO_PIECE_BYTES);
  return zeroPiece.subarray(0, length);
}

/**
 * Write real zeros over [offset, offset + length) of `store`, in pieces of at most 64 KiB with up
 * to `inFlight` of them at a time: on a sparse store this backs the range with disk blocks
 * (the ploop tools refuse holes), where a truncate or a write past it would leave a hole.
 */
export async function writeZeros(store: { write(offset: number, data: Uint8Array): Promise<void> }, offset: number, length: number, inFlight = 4): Promise<void> {
  const end = offset + length;
  let next = offset;
  const lane = async () => {
    while (next < end) {
      const at = next;
      const n = Math.min(ZERO_PIECE_BYTES, end - at);
      next += n;
      await store.write(at, zeros(n));
    }
  };
  const lanes = [];
  for (let i = 0; i < Math.max(1, inFlight) && i * ZERO_PIECE_BYTES < length; i++) lanes.push(lane());
  const results = await Promise.allSettled(lanes);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

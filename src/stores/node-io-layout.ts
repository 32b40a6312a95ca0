// SPDX-License-Identifier: MIT
// The shared memory between a JS thread and its I/O thread (node-io-thread.ts, node-io-worker.ts):
// where each word lives. Both sides import this module, and only this, to agree on it.
//
//   control words (Int32)   SUBMITTED: requests put in the submission ring (caller writes)
//                           SLEEPING:  1 while the worker is (about to be) in Atomics.wait
//                           COMPLETED: requests put in the completion ring (worker writes)
//                           READY:     1 once the worker runs
//                           WAITING:   1 while the caller waits (waitAsync) for COMPLETED to move
//   submission ring         SLOT_COUNT slot numbers, index = request number % SLOT_COUNT
//   completion ring         SLOT_COUNT slot numbers, likewise
//   slot headers            per slot: op, fd, length, result, error length (Int32), position (f64)
//   slot data               per slot: SLOT_BYTES of data (none for OP_ZERO), or on error the JSON of {code, errno, syscall, message}
//
// Each ring holds at most SLOT_COUNT entries because a slot is in flight at most once: neither
// can overflow, so neither side ever waits for room.

export const SLOT_COUNT = 64;
/** The largest request the I/O thread serves; larger ones go to libuv's pool. */
export const SLOT_BYTES = 64 << 10;
export const RING_MASK = SLOT_COUNT - 1;

/** Int32 indices of the control words. */
export const SUBMITTED = 0;
export const SLEEPING = 1;
export const COMPLETED = 2;
/** Set to 1 by the worker once it runs and looks at the ring. */
export const READY = 3;
/**
 * 1 from just before the caller's waitAsync on COMPLETED until its wake-up ran (or the wait
 * returned at once). The worker notifies only while it is 1: an Atomics.notify takes V8's
 * waiter-list lock and, with a waiter, posts a task to the caller's loop — 3–5 µs per
 * completion here, half a 4 KiB write. Only the caller clears it: a worker that cleared it
 * could consume the 1 stored for the caller's next wait, before that wait is registered, and
 * the wait would then never be woken.
 */
export const WAITING = 4;

export const SUBMIT_RING_BYTES = 64;
export const COMPLETE_RING_BYTES = SUBMIT_RING_BYTES + SLOT_COUNT * 4;
export const HEADERS_BYTES = COMPLETE_RING_BYTES + SLOT_COUNT * 4;
/** Bytes per slot header: 4 Int32 + error length + pad, then the f64 position at +24. */
export const HEADER_BYTES = 32;
export const DATA_BYTES = 4096;
export const TOTAL_BYTES = DATA_BYTES + SLOT_COUNT * SLOT_BYTES;

/** Int32 offsets inside a slot header. */
export const H_OP = 0;
export const H_FD = 1;
export const H_LENGTH = 2;
/** Bytes read or written (≥ 0), or -1 with the error's JSON in the slot's data. */
export const H_RESULT = 3;
export const H_ERROR_BYTES = 4;
/** Float64 offset of the position inside a slot header (byte 24). */
export const H_POSITION_F64 = 3;

export const OP_READ = 1;
export const OP_WRITE = 2;
/**
 * Write `length` zero bytes at the position, from the worker's own buffer of zeros: no data in
 * the slot, so one request backs a whole cluster (at most ZERO_MAX_BYTES) without copying it.
 */
export const OP_ZERO = 3;
/** The most zero bytes one OP_ZERO request writes (its length is an Int32). */
export const ZERO_MAX_BYTES = 1 << 30;

/**
 * Watch control word `index` for up to `ms` milliseconds while it still holds `value`; returns
 * what it holds then (≠ `value`: it moved). Both sides spin this way before they sleep, as a
 * wake-up costs more than the few µs the other side usually takes. Timed, not counted: an
 * Atomics.load takes 1–6 ns depending on the machine's load; the clock is read every 64 loads.
 */
export function watchWord(control: Int32Array, index: number, value: number, ms: number): number {
  const until = performance.now() + ms;
  let now = value;
  do {
    for (let i = 0; i < 64 && now === value; i++) now = Atomics.load(control, index);
  } while (now === value && performance.now() < until);
  return now;
}

/** Int32 index of a slot header's first word. */
export const headerIndex = (slot: number): number => (HEADERS_BYTES + slot * HEADER_BYTES) >> 2;
/** Byte offset of a slot's data. */
export const dataOffset = (slot: number): number => DATA_BYTES + slot * SLOT_BYTES;

if (HEADERS_BYTES + SLOT_COUNT * HEADER_BYTES > DATA_BYTES) throw new Error('node-io-layout: headers overlap the data');

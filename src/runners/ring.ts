// SPDX-License-Identifier: MIT
// A request ring per runner in the shared WebAssembly memory: its layout and what both ends
// share. The coordinator's end is ring-caller.ts, the runner's ring-server.ts.
//
// A comlink call per request costs a structured-clone round trip (60-110 µs measured), more
// than a 4 KiB read itself, so requests skip it: the coordinator writes a slot (op, offset,
// length, payload address) and publishes its index with an atomic store; the runner publishes
// the finished slot back the same way. Either side sleeps on the other's tail word with
// Atomics.waitAsync (which leaves its event loop free) and is woken by Atomics.notify only when
// it said it was sleeping, so a busy ring costs no wake-ups at all. Each side is the only writer
// of its own tail, so no lock is needed.
// A sleeping flag (RUNNER_IDLE, the bell's) is cleared only by the side that sleeps, once its
// wait is over: a waker that cleared it (exchange to 0, then notify) could take the 1 stored
// for the sleeper's next wait in the instant before that wait registered, and the sleeper then
// slept through every later completion until WAIT_TIMEOUT_MS (a 20 ms stall, the lateWakeups
// once put down to Node). So wakers only look at the flag and notify while it is 1.
//
// Layout (bytes from the ring's address; all words little-endian i32 unless noted):
//   0  SUB_TAIL       submissions published by the coordinator (a counter)
//   4  COMP_TAIL      completions published by the runner (a counter)
//   8  RUNNER_IDLE    1 while the runner sleeps on SUB_TAIL
//   12 (unused)
//   16 STOP           1 once the coordinator closes the ring
//   20 SLOT_COUNT
//   24 BELL           address of the pool's doorbell: a counter every runner bumps on each
//                     completion, and the coordinator's sleeping flag (RingBell)
//   64 submission ring: SLOT_COUNT slot numbers
//   .. completion ring: SLOT_COUNT slot numbers
//   .. slots: SLOT_COUNT × 32 bytes: op, length, buffer address, status, offset (f64 at 16),
//                     wave counter address (at 24; 0: none, see RingCaller.enqueue)
//   .. error texts: SLOT_COUNT × ERROR_BYTES (a failed request's PloopError as JSON)
// A slot is owned by one side at a time (free → coordinator fills → runner serves → coordinator
// reads the result), so at most SLOT_COUNT entries are ever in either ring: no overflow check.

import type { WasmCore } from '../core/wasm.js';
import { PloopError } from '../errors.js';

export const OP_READ = 1;
export const OP_WRITE = 2;
export const OP_DISCARD = 3;
/**
 * Flag on a slot's op: ring the coordinator's bell when this request completes. Single requests
 * carry it; of a batch only the last piece each ring gets does, so a batch wakes the
 * coordinator about once per ring instead of on its first completion. A runner also rings the
 * bell whenever it has nothing left in flight, so a flagged piece that finished before the
 * others of its batch (an asynchronous store) cannot leave the coordinator asleep.
 */
export const OP_NOTIFY = 0x100;

/** i32 words of the header (see the layout above). */
export const SUB_TAIL = 0;
export const COMP_TAIL = 1;
export const RUNNER_IDLE = 2;
export const STOP = 4;
const SLOT_COUNT = 5;
/** Byte address of the coordinator's doorbell (RingBell): one place to sleep for all rings. */
const BELL = 6;
const HEADER_BYTES = 64;
export const SLOT_BYTES = 32;
export const ERROR_BYTES = 1024;
/** Bytes of a doorbell (see RingBell): its counter, then the coordinator's sleeping flag. */
export const BELL_BYTES = 8;
/**
 * Longest sleep on the other side's tail before looking again. A notify should always wake the
 * sleeper; late wake-ups were seen (rarely, under heavy CPU contention) while wakers still
 * cleared the sleeping flag themselves (see the top of this file). The re-check stays as a
 * bound on any stall instead of a hang. Such late wake-ups are counted (lateWakeups).
 */
export const WAIT_TIMEOUT_MS = 20;
/** Slots per runner: enough for a deep queue; more requests wait in the coordinator. */
export const DEFAULT_RING_SLOTS = 512;

/** Bytes a ring of `slots` slots takes. */
export function ringBytes(slots: number): number {
  return HEADER_BYTES + 8 * slots + (SLOT_BYTES + ERROR_BYTES) * slots;
}

/** Lay out a new ring in zeroed memory at `base` (the coordinator's allocation). */
export function initRing(core: WasmCore, base: number, bellAddress: number, slots = DEFAULT_RING_SLOTS): void {
  if (slots < 1 || (slots & (slots - 1)) !== 0) throw new PloopError('EINVAL', `ring: ${slots} slots, expected a power of two`, { field: 'slots', value: slots });
  Atomics.store(core.i32, (base >>> 2) + SLOT_COUNT, slots);
  Atomics.store(core.i32, (base >>> 2) + BELL, bellAddress);
}

/** What the two ends of one ring share: its geometry and views of the memory it lies in. */
export class RingEnd {
  /**
   * Views of the shared memory made once: the ring lies in memory that existed when it was
   * made, and a shared memory's old buffers stay valid after it grows (they only do not cover
   * the new part), so no request pays for memory.buffer (a call into the engine) to re-check.
   */
  protected readonly i32: Int32Array;
  protected readonly f64: Float64Array;
  protected readonly u8: Uint8Array;
  /** i32 index of the ring's header. */
  protected readonly h: number;
  protected readonly slots: number;
  protected readonly mask: number;
  /** i32 index of the submission ring. */
  protected readonly sub: number;
  /** i32 index of the completion ring. */
  protected readonly comp: number;
  /** byte address of slot 0. */
  protected readonly slotBase: number;
  /** byte address of slot 0's error text. */
  protected readonly errorBase: number;
  /** byte address of the pool's doorbell. */
  protected readonly bellAddress: number;

  constructor(core: WasmCore, base: number) {
    this.i32 = core.i32;
    this.f64 = core.f64;
    this.u8 = core.u8;
    this.h = base >>> 2;
    this.slots = Atomics.load(this.i32, this.h + SLOT_COUNT);
    this.mask = this.slots - 1;
    this.sub = (base + HEADER_BYTES) >>> 2;
    this.comp = this.sub + this.slots;
    this.slotBase = base + HEADER_BYTES + 8 * this.slots;
    this.errorBase = this.slotBase + SLOT_BYTES * this.slots;
    this.bellAddress = Atomics.load(this.i32, this.h + BELL);
  }

  /** i32 index of `slot`'s first word (op; then length, buffer, status, offset, counter). */
  protected slotWord(slot: number): number {
    return (this.slotBase + slot * SLOT_BYTES) >>> 2;
  }
}

/**
 * A function that runs `fn` after the current task and its microtasks (setImmediate in Node, a
 * MessageChannel message in browsers). Wake-ups go through this so that every request a burst
 * of promise continuations submits (or completes) is published before the other side is woken
 * once.
 */
export function makeDeferrer(fn: () => void): () => void {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  if (immediate) return () => void immediate(fn);
  const channel = new MessageChannel();
  channel.port1.onmessage = fn;
  return () => channel.port2.postMessage(0);
}

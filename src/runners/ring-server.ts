// SPDX-License-Identifier: MIT
// The runner's end of its request ring (ring.ts): take the submitted slots, serve each request
// (the synchronous fast path first, else the handler's promise), publish its completion and
// ring the coordinator's bell when that matters.

import type { WasmCore } from '../core/wasm.js';
import { PloopError } from '../errors.js';
import { RingEnd, makeDeferrer, OP_NOTIFY, SUB_TAIL, COMP_TAIL, RUNNER_IDLE, STOP, ERROR_BYTES, WAIT_TIMEOUT_MS } from './ring.js';

/** How long an idle runner blocks before it looks at its event loop (control messages). */
const IDLE_BLOCK_MS = 50;

/** What a runner does with one request. */
export type RingHandler = (op: number, offset: number, length: number, buffer: number) => Promise<void>;
/**
 * A runner's synchronous fast path (fast-path.ts): true when it served the request already,
 * false to hand it to the RingHandler, throws the request's error. The completion is written at
 * once: no promise, no closure.
 */
export type RingFastHandler = (op: number, offset: number, length: number, buffer: number) => boolean;

/** A function that resolves after the current task and its microtasks (see makeDeferrer). */
function macrotaskYield(): () => Promise<void> {
  const waiting: Array<() => void> = [];
  const run = makeDeferrer(() => {
    for (const r of waiting.splice(0)) r();
  });
  return () => new Promise<void>((resolve) => {
    if (waiting.push(resolve) === 1) run();
  });
}

/** The runner's end: serve requests until the coordinator stops the ring. */
export class RingServer extends RingEnd {
  readonly #handle: RingHandler;
  readonly #fast: RingFastHandler | null;
  /** i32 index of the coordinator's doorbell. */
  readonly #bell: number;
  #subHead = 0;
  #compTail = 0;
  requests = 0;
  /** Wake-ups that came by the re-check timeout instead of a notify (see WAIT_TIMEOUT_MS). */
  lateWakeups = 0;
  /** Times the runner went to sleep (blocking or not) waiting for submissions. */
  sleeps = 0;
  /** Requests started and not completed. */
  #outstanding = 0;
  readonly #yield: () => Promise<void>;
  /** Per slot, made once: its completion callbacks (no closures per request) and its notify flag. */
  readonly #onDone: Array<() => void>;
  readonly #onFail: Array<(e: unknown) => void>;
  readonly #notify: Uint8Array;

  constructor(core: WasmCore, base: number, handle: RingHandler, fast: RingFastHandler | null = null) {
    super(core, base);
    this.#bell = this.bellAddress >>> 2;
    this.#handle = handle;
    this.#fast = fast;
    this.#yield = macrotaskYield();
    const slots = this.slots;
    this.#notify = new Uint8Array(slots);
    this.#onDone = Array.from({ length: slots }, (_, slot) => () => this.#complete(slot, 0));
    this.#onFail = Array.from({ length: slots }, (_, slot) => (e: unknown) => this.#complete(slot, this.#encodeError(slot, e)));
  }

  /** Serve until STOP; resolves then (requests still running complete on their own). */
  async serve(): Promise<void> {
    const h = this.h;
    const i32 = this.i32;
    for (;;) {
      const tail = Atomics.load(i32, h + SUB_TAIL);
      while (this.#subHead !== tail) {
        const slot = i32[this.sub + (this.#subHead & this.mask)];
        this.#subHead = (this.#subHead + 1) | 0;
        this.#start(slot);
      }
      if (Atomics.load(i32, h + STOP) === 1) return;
      // Let the batch's promise continuations run: requests on synchronous stores finish here.
      if (this.#outstanding > 0) await this.#yield();
      if (Atomics.load(i32, h + SUB_TAIL) !== tail) continue;
      // Say we sleep, then look once more: a submission that raced with us either sees the
      // flag (and notifies) or is seen here.
      Atomics.store(i32, h + RUNNER_IDLE, 1);
      if (Atomics.load(i32, h + SUB_TAIL) !== tail || Atomics.load(i32, h + STOP) === 1) {
        Atomics.store(i32, h + RUNNER_IDLE, 0);
        continue;
      }
      this.sleeps++;
      if (this.#outstanding > 0) {
        // Requests wait for I/O or their BAT page: sleep without blocking the event loop.
        const w = Atomics.waitAsync(i32, h + SUB_TAIL, tail, WAIT_TIMEOUT_MS);
        if (w.async && (await w.value) === 'timed-out' && Atomics.load(i32, h + SUB_TAIL) !== tail) this.lateWakeups++;
        Atomics.store(i32, h + RUNNER_IDLE, 0);
      } else {
        // Nothing in flight: block the thread itself (Atomics.wait wakes at once and reliably;
        // Node's waitAsync continuation was seen to stall in workers). Control messages
        // (stats, close) come through the event loop, so look there on every empty wake-up.
        Atomics.wait(i32, h + SUB_TAIL, tail, IDLE_BLOCK_MS);
        Atomics.store(i32, h + RUNNER_IDLE, 0);
        if (Atomics.load(i32, h + SUB_TAIL) === tail) await this.#yield();
      }
    }
  }

  #start(slot: number): void {
    const i32 = this.i32;
    const s = this.slotWord(slot);
    const op = i32[s] & ~OP_NOTIFY;
    this.#notify[slot] = i32[s] & OP_NOTIFY ? 1 : 0;
    const length = i32[s + 1];
    const buffer = i32[s + 2] >>> 0;
    const offset = this.f64[(s + 4) >>> 1];
    this.requests++;
    this.#outstanding++;
    if (this.#fast !== null) {
      let served: boolean;
      try {
        served = this.#fast(op, offset, length, buffer);
      } catch (e) {
        this.#complete(slot, this.#encodeError(slot, e), true);
        return;
      }
      if (served) {
        this.#complete(slot, 0, true);
        return;
      }
    }
    let work: Promise<void>;
    try {
      work = this.#handle(op, offset, length, buffer);
    } catch (e) {
      work = Promise.reject(e);
    }
    work.then(this.#onDone[slot], this.#onFail[slot]);
  }

  /**
   * Publish the completion of `slot`. `inOrder`: the fast path completed it before looking at
   * the next submission, so the pieces of a batch complete in order and its flagged last piece
   * rings the bell; the "nothing left in flight" rule (for asynchronous completions, which may
   * finish the flagged piece first) would ring it after every such request.
   */
  #complete(slot: number, status: number, inOrder = false): void {
    const i32 = this.i32;
    this.#outstanding--;
    const s = this.slotWord(slot);
    // Read before publishing: once published, the slot is the coordinator's to reuse.
    const counter = i32[s + 6] >>> 2;
    i32[s + 3] = status;
    i32[this.comp + (this.#compTail & this.mask)] = slot;
    this.#compTail = (this.#compTail + 1) | 0;
    Atomics.store(i32, this.h + COMP_TAIL, this.#compTail);
    // After publishing: whoever brings the wave counter to zero rings, and the coordinator then
    // finds every piece of the wave published, on every ring.
    const waveDone = counter !== 0 && Atomics.sub(i32, counter, 1) === 1;
    if (!waveDone && this.#notify[slot] === 0 && (inOrder || this.#outstanding > 0)) return;
    // Ring the bell; only the first ring after the coordinator went to sleep notifies, and it
    // then takes every completion (of every ring) published by the time it runs.
    const bell = this.#bell;
    Atomics.add(i32, bell, 1);
    if (Atomics.load(i32, bell + 1) === 1) Atomics.notify(i32, bell);
  }

  /** Write the error as JSON into the slot's error text; returns its length (the status). */
  #encodeError(slot: number, e: unknown): number {
    const err = e instanceof PloopError ? e : new PloopError('EIO', e instanceof Error ? e.message : String(e));
    const at = this.errorBase + slot * ERROR_BYTES;
    const encoder = new TextEncoder();
    let text: string;
    try {
      text = JSON.stringify(err.toJSON());
    } catch {
      // Data that JSON cannot carry (a BigInt, a cycle): the slot must complete all the same.
      text = JSON.stringify({ code: err.code, message: err.message });
    }
    let bytes = encoder.encode(text);
    // Too long for the slot: keep the code and the start of the message, drop the data.
    if (bytes.length > ERROR_BYTES) bytes = encoder.encode(JSON.stringify({ code: err.code, message: err.message.slice(0, ERROR_BYTES / 4) }));
    this.u8.set(bytes, at);
    return Math.max(1, bytes.length);
  }
}

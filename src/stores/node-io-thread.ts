// SPDX-License-Identifier: MIT
// One I/O thread per JS thread that uses it: small positioned reads and writes without libuv's
// thread-pool round trip. The caller copies its bytes into (or out of) a request slot of a
// SharedArrayBuffer, puts the slot number in a submission ring and bumps a counter; the worker
// (node-io-worker.ts) runs readSync/writeSync and puts the slot in a completion ring.
//
// Why: through the pool each request costs a hop to a pool thread and a callback back through
// the event loop (~30 µs here), which caps 4 KiB page-cache reads at depth 1 near 31 k/s. Here
// the syscall runs on the other thread and the event loop is never blocked by the kernel; while
// requests are in flight the caller looks at the completion counter for a few µs (the worker,
// itself spinning between requests, usually answers in that time) before it falls back to
// Atomics.waitAsync. Requests in flight together share one waitAsync on the completion
// counter, which resolves every finished slot at each wake-up.
//
// Start: a thread costs a start (≈ 90 ms of CPU and wall time here: its own V8 isolate) and
// 4 MiB of shared memory, which pays off only for many small requests. NodeFileStore therefore asks
// ioThreadReady() per request: the thread starts after WARMUP_REQUESTS of them in this JS
// thread, and requests go to libuv's pool until it runs. A command that reads a header and a
// BAT page never starts it (nor loads worker_threads). pread/pwrite here start it at once.
//
// Lifetime: the worker is unref()ed while nothing is in flight (a process that is done exits),
// and ref()ed while a waitAsync is pending — a pending waitAsync alone does not keep Node's
// loop alive, so a process whose last work is a request here would otherwise exit under it.

import type { Worker } from 'node:worker_threads';
import { startNodeWorker } from '../node-worker.js';
import {
  SUBMITTED, SLEEPING, COMPLETED, READY, WAITING, RING_MASK, SUBMIT_RING_BYTES, COMPLETE_RING_BYTES, SLOT_COUNT, SLOT_BYTES,
  TOTAL_BYTES, H_OP, H_FD, H_LENGTH, H_RESULT, H_ERROR_BYTES, H_POSITION_F64, OP_READ, OP_WRITE, OP_ZERO, ZERO_MAX_BYTES,
  headerIndex, dataOffset, watchWord,
} from './node-io-layout.js';

export { SLOT_BYTES as IO_THREAD_MAX_BYTES, ZERO_MAX_BYTES as IO_THREAD_MAX_ZERO_BYTES };

/**
 * How long the caller, with requests in flight, watches the completion counter before it
 * waits asynchronously. A 4 KiB page-cache read turned round by a spinning worker takes a few
 * µs; a waitAsync wake-up costs 30 µs and more (docs/performance.md has the sweep).
 */
const CALLER_SPIN_MS = 0.010;
/** How long the worker watches the submission counter after its ring ran empty before it sleeps. */
const WORKER_SPIN_MS = 0.030;
/** Small NodeFileStore requests in a JS thread before its I/O thread starts (see above). */
const WARMUP_REQUESTS = 128;

interface Request {
  op: number;
  fd: number;
  data: Uint8Array;
  /** Bytes to move: data.length, or for OP_ZERO the zeros to write (data is empty). */
  length: number;
  position: number;
  resolve: (n: number) => void;
  reject: (e: Error) => void;
}

class IoThread {
  readonly #worker: Worker;
  readonly #control: Int32Array;
  readonly #submitRing: Int32Array;
  readonly #completeRing: Int32Array;
  readonly #f64: Float64Array;
  readonly #bytes: Uint8Array;
  readonly #free: number[] = [];
  readonly #inSlot: Array<Request | null> = new Array(SLOT_COUNT).fill(null);
  /** Requests that found every slot taken, in order. */
  readonly #queue: Request[] = [];
  #queueHead = 0;
  #submitted = 0;
  #seen = 0;
  #inFlight = 0;
  #waiting = false;
  /** A #settle microtask is queued. */
  #settling = false;
  #referenced = false;
  #dead: Error | null = null;
  /** Resolves when the thread fails (#fail). */
  readonly #died: Promise<void>;
  #onDeath!: () => void;
  #ready = false;
  /** Requests the thread finished (for tests and diagnostics). */
  served = 0;
  readonly #onWake = () => {
    this.#waiting = false;
    Atomics.store(this.#control, WAITING, 0);
    this.#drain();
    this.#wait();
  };

  constructor() {
    const buffer = new SharedArrayBuffer(TOTAL_BYTES);
    this.#control = new Int32Array(buffer);
    this.#submitRing = new Int32Array(buffer, SUBMIT_RING_BYTES, SLOT_COUNT);
    this.#completeRing = new Int32Array(buffer, COMPLETE_RING_BYTES, SLOT_COUNT);
    this.#f64 = new Float64Array(buffer);
    this.#bytes = new Uint8Array(buffer);
    for (let slot = SLOT_COUNT - 1; slot >= 0; slot--) this.#free.push(slot);
    this.#died = new Promise<void>((resolve) => (this.#onDeath = resolve));
    this.#worker = spawnIoWorker({ buffer, spinMs: WORKER_SPIN_MS });
    this.#worker.unref();
    // A worker that dies (out of memory, killed) would leave its requests waiting forever.
    const fail = (why: Error) => this.#fail(why);
    this.#worker.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
    this.#worker.on('exit', (code) => fail(new Error(`the I/O thread exited (code ${code})`)));
  }

  /** Requests in slots or waiting for one. */
  get pending(): number {
    return this.#inFlight + this.waitingForSlot;
  }

  /** Requests that found every slot taken and wait in JS for one. */
  get waitingForSlot(): number {
    return this.#queue.length - this.#queueHead;
  }

  /** True once the worker runs (it sets READY when it first looks at the ring). */
  ready(): boolean {
    return this.#ready || (this.#ready = Atomics.load(this.#control, READY) === 1);
  }

  /**
   * Resolves true once the worker runs (it notifies READY), false if it failed first or did
   * not start within `timeoutMs`. The worker is ref()ed meanwhile: a pending waitAsync alone
   * does not keep Node's loop alive.
   */
  async whenReady(timeoutMs: number): Promise<boolean> {
    if (this.ready()) return true;
    if (this.#dead) return false;
    const wait = Atomics.waitAsync(this.#control, READY, 0, timeoutMs);
    if (!wait.async) return this.ready();
    this.#worker.ref();
    try {
      await Promise.race([wait.value, this.#died]);
    } finally {
      if (!this.#referenced) this.#worker.unref();
    }
    return !this.#dead && this.ready();
  }

  submit(op: number, fd: number, data: Uint8Array, position: number, length = data.length): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.#dead) return reject(this.#dead);
      const request: Request = { op, fd, data, length, position, resolve, reject };
      const slot = this.#free.pop();
      if (slot === undefined) {
        this.#queue.push(request);
        return;
      }
      this.#start(slot, request);
      if (this.#settling) return;
      // Decided after the caller's synchronous code (and the microtasks before ours) ran: a
      // caller that puts 32 requests in flight at once must not wait out each one in turn.
      this.#settling = true;
      queueMicrotask(this.#settle);
    });
  }

  /**
   * Watch the completion counter for a few µs, then wait asynchronously for whatever is left.
   * Also while a waitAsync is pending: a busy worker finishes a request every few µs, and each
   * completion caught here is one wake-up (a posted task, ~10 µs of this thread's time and more
   * of latency) not paid. Without it, depth-32 writes ran in lockstep: the caller woke once the
   * whole window had completed, refilled it while the worker slept, and the worker woke late.
   */
  readonly #settle = () => {
    this.#settling = false;
    if (this.#inFlight >= 1 && watchWord(this.#control, COMPLETED, this.#seen, CALLER_SPIN_MS) !== this.#seen) this.#drain();
    this.#wait();
  };

  #start(slot: number, request: Request): void {
    const h = headerIndex(slot);
    this.#control[h + H_OP] = request.op;
    this.#control[h + H_FD] = request.fd;
    this.#control[h + H_LENGTH] = request.length;
    this.#f64[(h >> 1) + H_POSITION_F64] = request.position;
    if (request.op === OP_WRITE) this.#bytes.set(request.data, dataOffset(slot));
    this.#inSlot[slot] = request;
    this.#inFlight++;
    this.#submitRing[this.#submitted & RING_MASK] = slot;
    this.#submitted = (this.#submitted + 1) | 0;
    Atomics.store(this.#control, SUBMITTED, this.#submitted);
    if (Atomics.load(this.#control, SLEEPING) !== 0) Atomics.notify(this.#control, SUBMITTED);
  }

  /** Settle every completed slot, then hand freed slots to queued requests. */
  #drain(): void {
    const completed = Atomics.load(this.#control, COMPLETED);
    while (this.#seen !== completed) {
      const slot = this.#completeRing[this.#seen & RING_MASK];
      this.#seen = (this.#seen + 1) | 0;
      this.#finish(slot);
    }
    while (this.#queueHead < this.#queue.length && this.#free.length > 0) {
      const request = this.#queue[this.#queueHead];
      this.#queue[this.#queueHead++] = undefined as unknown as Request;
      this.#start(this.#free.pop()!, request);
    }
    if (this.#queueHead === this.#queue.length && this.#queueHead > 0) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    }
  }

  #finish(slot: number): void {
    const request = this.#inSlot[slot]!;
    this.#inSlot[slot] = null;
    this.#inFlight--;
    this.served++;
    const h = headerIndex(slot);
    const result = this.#control[h + H_RESULT];
    if (result >= 0) {
      if (request.op === OP_READ) request.data.set(this.#bytes.subarray(dataOffset(slot), dataOffset(slot) + result));
      this.#free.push(slot);
      request.resolve(result);
    } else {
      const at = dataOffset(slot);
      const json = new TextDecoder().decode(this.#bytes.slice(at, at + this.#control[h + H_ERROR_BYTES]));
      this.#free.push(slot);
      request.reject(rebuildError(json));
    }
  }

  /** One waitAsync on the completion counter while anything is in flight; ref()ed meanwhile. */
  #wait(): void {
    if (this.#waiting) return;
    while (this.#inFlight > 0) {
      // Before the check inside waitAsync: see WAITING in node-io-layout.ts.
      Atomics.store(this.#control, WAITING, 1);
      const result = Atomics.waitAsync(this.#control, COMPLETED, this.#seen);
      if (result.async) {
        this.#waiting = true;
        if (!this.#referenced) {
          this.#referenced = true;
          this.#worker.ref();
        }
        void result.value.then(this.#onWake);
        return;
      }
      Atomics.store(this.#control, WAITING, 0);
      this.#drain();
    }
    if (this.#referenced) {
      this.#referenced = false;
      this.#worker.unref();
    }
  }

  #fail(why: Error): void {
    if (this.#dead) return;
    this.#dead = why;
    this.#onDeath();
    if (current === this) {
      current = null;
      warmup = 0;
      // A worker that never ran will not run on a second try either (its file is missing, or
      // workers are not allowed here): small requests stay on libuv's pool from now on.
      if (!this.ready()) {
        startFailed = true;
        process.emitWarning(`ploop-wasm: the I/O thread did not start (${why.message}); small file requests stay on libuv's thread pool`);
      }
    }
    const pending = [...this.#inSlot.filter((r): r is Request => r !== null), ...this.#queue.slice(this.#queueHead)];
    this.#inSlot.fill(null);
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#inFlight = 0;
    for (const request of pending) request.reject(Object.assign(new Error(`I/O thread failed: ${why.message}`, { cause: why }), { code: 'EIO' }));
  }
}

function rebuildError(json: string): Error {
  let parsed: { code?: string; errno?: number; syscall?: string; message?: string };
  try {
    parsed = JSON.parse(json);
  } catch {
    parsed = { message: json };
  }
  const error = new Error(parsed.message ?? 'I/O error') as NodeJS.ErrnoException;
  if (parsed.code !== undefined) error.code = parsed.code;
  if (parsed.errno !== undefined) error.errno = parsed.errno;
  if (parsed.syscall !== undefined) error.syscall = parsed.syscall;
  return error;
}

let current: IoThread | null = null;
/** Small requests counted toward WARMUP_REQUESTS. */
let warmup = 0;
let startFailed = false;

function thread(): IoThread {
  return (current ??= new IoThread());
}

/**
 * Whether this JS thread's I/O thread runs, for a store deciding where a small request goes;
 * each call counts toward starting it. False: use libuv's pool for this request.
 */
export function ioThreadReady(): boolean {
  if (current) return current.ready();
  if (++warmup >= WARMUP_REQUESTS && !startFailed) thread();
  return false;
}

/**
 * Start this JS thread's I/O thread now rather than after WARMUP_REQUESTS small requests, and
 * resolve when it runs (true) or could not start (false: small requests stay on libuv's pool).
 * For a process that knows many small requests are coming: `bench` starts it before its clock,
 * as it opens the image before it.
 */
export async function startIoThread(timeoutMs = 10_000): Promise<boolean> {
  if (startFailed) return false;
  return thread().whenReady(timeoutMs);
}

/** This JS thread's I/O thread: whether it runs, requests it finished, in flight, and waiting for a slot. */
export function ioThreadStats(): { running: boolean; served: number; pending: number; waitingForSlot: number } {
  return { running: current?.ready() ?? false, served: current?.served ?? 0, pending: current?.pending ?? 0, waitingForSlot: current?.waitingForSlot ?? 0 };
}

function checkRequest(what: string, fd: number, bytes: Uint8Array, position: number): void {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new RangeError(`${what}: fd ${fd} is not a file descriptor (an integer ≥ 0)`);
  if (bytes.length > SLOT_BYTES) throw new RangeError(`${what}: ${bytes.length} bytes is more than the I/O thread's ${SLOT_BYTES}-byte slot; larger requests belong on libuv's pool`);
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`${what}: position ${position} is not a byte offset ≥ 0`);
}

/**
 * Read `into.length` bytes (at most IO_THREAD_MAX_BYTES) at `position` of `fd` on this
 * thread's I/O thread. Resolves to the bytes read: fewer only at the end of the file. Rejects
 * with Node's own error (its code, errno, syscall and message).
 */
export function pread(fd: number, into: Uint8Array, position: number): Promise<number> {
  return request(OP_READ, 'pread', fd, into, position);
}

/** Write all of `data` (at most IO_THREAD_MAX_BYTES) at `position` of `fd`; resolves to its length. */
export function pwrite(fd: number, data: Uint8Array, position: number): Promise<number> {
  return request(OP_WRITE, 'pwrite', fd, data, position);
}

/** Write `length` zero bytes (at most IO_THREAD_MAX_ZERO_BYTES) at `position` of `fd`, from the I/O thread's own zeros; resolves to `length`. */
export function pwriteZeros(fd: number, length: number, position: number): Promise<number> {
  try {
    checkRequest('pwriteZeros', fd, new Uint8Array(0), position);
    if (!Number.isInteger(length) || length < 0 || length > ZERO_MAX_BYTES) throw new RangeError(`pwriteZeros: length ${length} is not a byte count from 0 to ${ZERO_MAX_BYTES}`);
  } catch (e) {
    return Promise.reject(e);
  }
  return thread().submit(OP_ZERO, fd, new Uint8Array(0), position, length);
}

function request(op: number, what: string, fd: number, bytes: Uint8Array, position: number): Promise<number> {
  try {
    checkRequest(what, fd, bytes, position);
  } catch (e) {
    return Promise.reject(e);
  }
  return thread().submit(op, fd, bytes, position);
}

function spawnIoWorker(workerData: { buffer: SharedArrayBuffer; spinMs: number }): Worker {
  return startNodeWorker('node-io-worker', import.meta.url, { workerData, name: 'ploop-io' });
}

// SPDX-License-Identifier: MIT
// A request ring per runner in the shared WebAssembly memory. A comlink call per request costs a
// structured-clone round trip (60-110 µs measured), more than a 4 KiB read itself, so requests
// skip it: the coordinator writes a slot (op, offset, length, payload address) and publishes its
// index with an atomic store; the runner publishes the finished slot back the same way. Either
// side sleeps on the other's tail word with Atomics.waitAsync (which leaves its event loop free)
// and is woken by Atomics.notify only when it said it was sleeping, so a busy ring costs no
// wake-ups at all. Each side is the only writer of its own tail, so no lock is needed.
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
import { PloopError, type PloopErrorCode } from '../errors.js';

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

const SUB_TAIL = 0;
const COMP_TAIL = 1;
const RUNNER_IDLE = 2;
const STOP = 4;
const SLOT_COUNT = 5;
/** Byte address of the coordinator's doorbell (RingBell): one place to sleep for all rings. */
const BELL = 6;
const HEADER_BYTES = 64;
const SLOT_BYTES = 32;
const ERROR_BYTES = 1024;
/**
 * Longest sleep on the other side's tail before looking again. A notify should always wake the
 * sleeper; late wake-ups were seen (rarely, under heavy CPU contention) while wakers still
 * cleared the sleeping flag themselves (see the top of this file). The re-check stays as a
 * bound on any stall instead of a hang. Such late wake-ups are counted (lateWakeups).
 */
const WAIT_TIMEOUT_MS = 20;
/** How long an idle runner blocks before it looks at its event loop (control messages). */
const IDLE_BLOCK_MS = 50;
/** Numbers per piece in a RingCaller's backlog. */
const BACKLOG_FIELDS = 6;
/** Slots per runner: enough for a deep queue; more requests wait in the coordinator. */
export const DEFAULT_RING_SLOTS = 512;

interface Layout {
  base: number;
  slots: number;
  mask: number;
  /** i32 index of the submission ring. */
  sub: number;
  /** i32 index of the completion ring. */
  comp: number;
  /** byte address of slot 0. */
  slotBase: number;
  /** byte address of slot 0's error text. */
  errorBase: number;
}

function layout(base: number, slots: number): Layout {
  const sub = (base + HEADER_BYTES) >>> 2;
  const comp = sub + slots;
  const slotBase = base + HEADER_BYTES + 8 * slots;
  return { base, slots, mask: slots - 1, sub, comp, slotBase, errorBase: slotBase + SLOT_BYTES * slots };
}

/** Bytes a ring of `slots` slots takes. */
export function ringBytes(slots: number): number {
  return HEADER_BYTES + 8 * slots + (SLOT_BYTES + ERROR_BYTES) * slots;
}

/** Lay out a new ring in zeroed memory at `base` (the coordinator's allocation). */
export function initRing(core: WasmCore, base: number, bell: RingBell, slots = DEFAULT_RING_SLOTS): void {
  if (slots < 1 || (slots & (slots - 1)) !== 0) throw new PloopError('EINVAL', `ring: ${slots} slots, expected a power of two`, { field: 'slots', value: slots });
  Atomics.store(core.i32, (base >>> 2) + SLOT_COUNT, slots);
  Atomics.store(core.i32, (base >>> 2) + BELL, bell.address);
}

/** Bytes of a doorbell (see RingBell). */
export const BELL_BYTES = 8;

/**
 * The coordinator's side of the doorbell: one loop collects the completions of every ring of
 * the pool and sleeps on one word, so N runners cost one wake-up per burst, not N.
 */
export class RingBell {
  readonly address: number;
  readonly #core: WasmCore;
  /**
   * Views of the shared memory made once: the ring lies in memory that existed when it was
   * made, and a shared memory's old buffers stay valid after it grows (they only do not cover
   * the new part), so no request pays for memory.buffer (a call into the engine) to re-check.
   */
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Uint8Array;
  readonly #b: number;
  readonly #rings: RingCaller[] = [];
  #reaping = false;
  /** Wake-ups that came by the re-check timeout instead of a notify (see WAIT_TIMEOUT_MS). */
  lateWakeups = 0;
  /** Times the coordinator went to sleep waiting for completions. */
  sleeps = 0;

  /** `address`: BELL_BYTES of zeroed shared memory. */
  constructor(core: WasmCore, address: number) {
    this.#core = core;
    this.#i32 = core.i32;
    this.#f64 = core.f64;
    this.#u8 = core.u8;
    this.address = address;
    this.#b = address >>> 2;
  }

  add(ring: RingCaller): void {
    this.#rings.push(ring);
  }

  /** A request was submitted: make sure the collecting loop runs. */
  started(): void {
    if (this.#reaping) return;
    this.#reaping = true;
    void this.#reap();
  }

  async #reap(): Promise<void> {
    const b = this.#b;
    try {
      for (;;) {
        if (!this.#rings.some((r) => r.inflight > 0)) return;
        // Read the bell before collecting: a completion published after the collection bumps
        // it afterwards, so the wait below returns at once instead of missing it.
        const seen = Atomics.load(this.#i32, b);
        for (const r of this.#rings) r.collect();
        // Sleep until the bell rings again, even after collecting something: every completion
        // that matters rings it (a batch's last piece on each ring, the piece that fills a ring
        // to half, single requests, a runner left with nothing in flight), so looking again
        // before then would only spin beside the runners — one collect per completion, each
        // a few loads, was most of this thread's CPU once runners served 4 KiB in 1-2 µs. The
        // wait also lets the continuations of the batches just completed submit the next ones.
        if (!this.#rings.some((r) => r.inflight > 0)) return;
        const i32 = this.#i32;
        Atomics.store(i32, b + 1, 1);
        this.sleeps++;
        const w = Atomics.waitAsync(i32, b, seen, WAIT_TIMEOUT_MS);
        if (w.async && (await w.value) === 'timed-out' && Atomics.load(this.#i32, b) !== seen) this.lateWakeups++;
        Atomics.store(this.#i32, b + 1, 0);
      }
    } finally {
      this.#reaping = false;
    }
  }
}

type Waiter = () => void;

/** A batch of ring requests (RingCaller.enqueue): told about each piece as it completes. */
export interface RingBatch {
  pieceDone(tag: number, error: PloopError | null): void;
}

/**
 * Run `fn` after the current task and its microtasks (setImmediate in Node, a MessageChannel
 * message in browsers). Wake-ups go through this so that every request a burst of promise
 * continuations submits (or completes) is published before the other side is woken once.
 */
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

function makeDeferrer(fn: () => void): () => void {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  if (immediate) return () => void immediate(fn);
  const channel = new MessageChannel();
  channel.port1.onmessage = fn;
  return () => channel.port2.postMessage(0);
}

/** The coordinator's end: submit requests, get each one's outcome as a promise. */
export class RingCaller {
  readonly #core: WasmCore;
  /**
   * Views of the shared memory made once: the ring lies in memory that existed when it was
   * made, and a shared memory's old buffers stay valid after it grows (they only do not cover
   * the new part), so no request pays for memory.buffer (a call into the engine) to re-check.
   */
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Uint8Array;
  readonly #l: Layout;
  readonly #h: number;
  readonly #free: number[] = [];
  readonly #queued: Waiter[] = [];
  readonly #resolve: Array<(() => void) | null>;
  readonly #reject: Array<((e: unknown) => void) | null>;
  /** The batch a slot's request belongs to (enqueue), and the tag it reports back. */
  readonly #batchOf: Array<RingBatch | null>;
  readonly #tagOf: Int32Array;
  /** Batch pieces waiting for a free slot: op, offset, length, buffer, tag, counter per entry (BACKLOG_FIELDS). */
  #backlog: number[] = [];
  #backlogBatch: RingBatch[] = [];
  #backlogHead = 0;
  /** The submission tail the runner has been shown (publish). */
  #published = 0;
  #subTail = 0;
  #compHead = 0;
  #inflight = 0;
  readonly #bell: RingBell;
  #kickScheduled = false;
  readonly #kickLater = makeDeferrer(() => {
    this.#kickScheduled = false;
    const i32 = this.#i32;
    if (Atomics.load(i32, this.#h + RUNNER_IDLE) === 1) Atomics.notify(i32, this.#h + SUB_TAIL);
  });

  constructor(core: WasmCore, base: number, bell: RingBell) {
    this.#core = core;
    this.#i32 = core.i32;
    this.#f64 = core.f64;
    this.#u8 = core.u8;
    this.#bell = bell;
    bell.add(this);
    const slots = Atomics.load(core.i32, (base >>> 2) + SLOT_COUNT);
    this.#l = layout(base, slots);
    this.#h = base >>> 2;
    for (let i = slots - 1; i >= 0; i--) this.#free.push(i);
    this.#resolve = new Array(slots).fill(null);
    this.#reject = new Array(slots).fill(null);
    this.#batchOf = new Array(slots).fill(null);
    this.#tagOf = new Int32Array(slots);
  }

  /** Requests submitted and not yet completed (for tests and stats). */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * Pieces the runner has not completed yet: in its slots (less those it completed that the
   * coordinator has not collected) and in the backlog. Reads go to the ring with the fewest.
   */
  get outstanding(): number {
    const completed = (Atomics.load(this.#i32, this.#h + COMP_TAIL) - this.#compHead) | 0;
    return this.#inflight - completed + (this.#backlog.length - this.#backlogHead) / BACKLOG_FIELDS;
  }

  /**
   * Queue one piece of a batch: into a free slot if there is one (not yet visible to the
   * runner: publish() shows every queued piece at once), else into the backlog, which fills
   * slots as completions free them. No promise, closure or object per piece: the completion
   * calls batch.pieceDone(tag, error).
   */
  enqueue(op: number, offset: number, length: number, buffer: number, batch: RingBatch, tag: number, counter = 0): void {
    this.#lastEnqueued = -1;
    if (this.#backlogHead === this.#backlog.length) {
      const slot = this.#free.pop();
      if (slot !== undefined) {
        // The piece that fills the ring to half rings the bell too: if the batch goes on into
        // the backlog, the coordinator refills the ring while the runner serves the other half.
        this.#fill(slot, this.#free.length === this.#l.slots >> 1 ? op | OP_NOTIFY : op, offset, length, buffer, counter);
        this.#batchOf[slot] = batch;
        this.#tagOf[slot] = tag;
        this.#lastEnqueued = slot;
        return;
      }
    }
    this.#backlog.push(op, offset, length, buffer, tag, counter);
    this.#backlogBatch.push(batch);
  }

  /** Slot of the last piece enqueue() put straight into a slot (-1: none, or it went to the backlog). */
  #lastEnqueued = -1;

  /**
   * Show the runner every slot queued since the last publish, and wake it if it sleeps: at once
   * with `now` (a batch: one wake-up for many requests), else after the current task (single
   * requests: every request that task's continuations submit goes with one wake-up).
   */
  publish(now = false, flagLast = true): void {
    if (this.#published === this.#subTail) return;
    const i32 = this.#i32;
    // The last piece published rings the bell when done (backlog pieces flag their own last one).
    // Not for a batch whose pieces count down a wave counter: the piece that brings it to zero
    // rings the bell, once for all rings instead of once per ring.
    if (now && flagLast && this.#lastEnqueued >= 0 && this.#backlogHead === this.#backlog.length) {
      i32[(this.#l.slotBase + this.#lastEnqueued * SLOT_BYTES) >>> 2] |= OP_NOTIFY;
    }
    this.#lastEnqueued = -1;
    this.#published = this.#subTail;
    Atomics.store(i32, this.#h + SUB_TAIL, this.#subTail);
    if (Atomics.load(i32, this.#h + RUNNER_IDLE) === 1) {
      if (now) {
        Atomics.notify(i32, this.#h + SUB_TAIL);
      } else if (!this.#kickScheduled) {
        this.#kickScheduled = true;
        this.#kickLater();
      }
    }
    this.#bell.started();
  }

  /** Write a request into `slot` and append it to the submission ring (unpublished). */
  #fill(slot: number, op: number, offset: number, length: number, buffer: number, counter: number): void {
    const l = this.#l;
    const i32 = this.#i32;
    const s = (l.slotBase + slot * SLOT_BYTES) >>> 2;
    i32[s] = op;
    i32[s + 1] = length;
    i32[s + 2] = buffer;
    i32[s + 3] = 0;
    this.#f64[(s + 4) >>> 1] = offset;
    i32[s + 6] = counter;
    i32[l.sub + (this.#subTail & l.mask)] = slot;
    this.#subTail = (this.#subTail + 1) | 0;
    this.#inflight++;
  }

  /** Move backlog pieces into free slots (after completions freed some). */
  #refill(): void {
    const b = this.#backlog;
    while (this.#backlogHead < b.length && this.#free.length > 0) {
      const slot = this.#free.pop()!;
      const k = this.#backlogHead;
      // As in enqueue: the piece that fills the ring to half rings the bell, and so does the
      // last one of this refill (the last of the batch, or the one that fills the ring).
      const notify = k + BACKLOG_FIELDS === b.length || this.#free.length === 0 || this.#free.length === this.#l.slots >> 1 ? OP_NOTIFY : 0;
      this.#fill(slot, b[k] | notify, b[k + 1], b[k + 2], b[k + 3], b[k + 5]);
      this.#batchOf[slot] = this.#backlogBatch[k / BACKLOG_FIELDS];
      this.#tagOf[slot] = b[k + 4];
      this.#backlogHead = k + BACKLOG_FIELDS;
    }
    if (this.#backlogHead === b.length && b.length > 0) {
      this.#backlog = [];
      this.#backlogBatch = [];
      this.#backlogHead = 0;
    }
  }

  /** Hand one request to the runner; resolves when it is done, rejects with its PloopError. */
  submit(op: number, offset: number, length: number, buffer: number): Promise<void> {
    const slot = this.#free.pop();
    if (slot === undefined) {
      // Every slot is in use: wait for one (FIFO), then submit.
      return new Promise<void>((r) => this.#queued.push(r)).then(() => this.submit(op, offset, length, buffer));
    }
    this.#fill(slot, op | OP_NOTIFY, offset, length, buffer, 0);
    const promise = new Promise<void>((resolve, reject) => {
      this.#resolve[slot] = resolve;
      this.#reject[slot] = reject;
    });
    // A busy runner sees the new tail on its next turn; an idle one is woken once per burst.
    this.publish();
    return promise;
  }

  /** Wake an idle runner so that it looks at its event loop (before a control call). */
  poke(): void {
    Atomics.notify(this.#i32, this.#h + SUB_TAIL);
  }

  /** Tell the runner to stop serving (after the last request completed). */
  stop(): void {
    const i32 = this.#i32;
    Atomics.store(i32, this.#h + STOP, 1);
    Atomics.store(i32, this.#h + RUNNER_IDLE, 0);
    Atomics.notify(i32, this.#h + SUB_TAIL);
  }

  /** Finish every request the runner has completed; true if there was any. */
  collect(): boolean {
    const l = this.#l;
    let i32 = this.#i32;
    const tail = Atomics.load(i32, this.#h + COMP_TAIL);
    if (tail === this.#compHead) return false;
    while (this.#compHead !== tail) {
      const slot = i32[l.comp + (this.#compHead & l.mask)];
      this.#compHead = (this.#compHead + 1) | 0;
      this.#finish(slot, i32[((l.slotBase + slot * SLOT_BYTES) >>> 2) + 3]);
      i32 = this.#i32;
    }
    if (this.#backlogHead < this.#backlog.length) {
      this.#refill();
      this.publish(true);
    }
    return true;
  }

  #finish(slot: number, status: number): void {
    const batch = this.#batchOf[slot];
    if (batch !== null) {
      this.#batchOf[slot] = null;
      this.#inflight--;
      this.#free.push(slot);
      const next = this.#queued.shift();
      if (next) next();
      batch.pieceDone(this.#tagOf[slot], status === 0 ? null : this.#decodeError(slot, status));
      return;
    }
    const resolve = this.#resolve[slot]!;
    const reject = this.#reject[slot]!;
    this.#resolve[slot] = null;
    this.#reject[slot] = null;
    const error = status === 0 ? null : this.#decodeError(slot, status);
    this.#inflight--;
    this.#free.push(slot);
    const next = this.#queued.shift();
    if (next) next();
    if (error) reject(error);
    else resolve();
  }

  #decodeError(slot: number, length: number): PloopError {
    const at = this.#l.errorBase + slot * ERROR_BYTES;
    // TextDecoder refuses views of shared memory: decode a private copy.
    const text = new TextDecoder().decode(this.#u8.slice(at, at + Math.min(length, ERROR_BYTES)));
    try {
      const e = JSON.parse(text) as { code: PloopErrorCode; message: string; data?: Record<string, unknown> };
      return new PloopError(e.code, e.message, e.data ?? {});
    } catch {
      return new PloopError('EIO', `runner failed with an unreadable error: ${text}`);
    }
  }
}

/** What a runner does with one request. */
export type RingHandler = (op: number, offset: number, length: number, buffer: number) => Promise<void>;
/**
 * A runner's synchronous fast path (fast-path.ts): true when it served the request already,
 * false to hand it to the RingHandler, throws the request's error. The completion is written at
 * once: no promise, no closure.
 */
export type RingFastHandler = (op: number, offset: number, length: number, buffer: number) => boolean;

/** The runner's end: serve requests until the coordinator stops the ring. */
export class RingServer {
  readonly #core: WasmCore;
  /**
   * Views of the shared memory made once: the ring lies in memory that existed when it was
   * made, and a shared memory's old buffers stay valid after it grows (they only do not cover
   * the new part), so no request pays for memory.buffer (a call into the engine) to re-check.
   */
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Uint8Array;
  readonly #l: Layout;
  readonly #h: number;
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
    this.#core = core;
    this.#i32 = core.i32;
    this.#f64 = core.f64;
    this.#u8 = core.u8;
    this.#l = layout(base, Atomics.load(core.i32, (base >>> 2) + SLOT_COUNT));
    this.#h = base >>> 2;
    this.#bell = Atomics.load(core.i32, this.#h + BELL) >>> 2;
    this.#handle = handle;
    this.#fast = fast;
    this.#yield = macrotaskYield();
    const slots = this.#l.slots;
    this.#notify = new Uint8Array(slots);
    this.#onDone = Array.from({ length: slots }, (_, slot) => () => this.#complete(slot, 0));
    this.#onFail = Array.from({ length: slots }, (_, slot) => (e: unknown) => this.#complete(slot, this.#encodeError(slot, e)));
  }

  /** Serve until STOP; resolves then (requests still running complete on their own). */
  async serve(): Promise<void> {
    const l = this.#l;
    const h = this.#h;
    for (;;) {
      let i32 = this.#i32;
      const tail = Atomics.load(i32, h + SUB_TAIL);
      while (this.#subHead !== tail) {
        const slot = i32[l.sub + (this.#subHead & l.mask)];
        this.#subHead = (this.#subHead + 1) | 0;
        this.#start(slot);
        i32 = this.#i32;
      }
      if (Atomics.load(i32, h + STOP) === 1) return;
      // Let the batch's promise continuations run: requests on synchronous stores finish here.
      if (this.#outstanding > 0) await this.#yield();
      i32 = this.#i32;
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
        if (w.async && (await w.value) === 'timed-out' && Atomics.load(this.#i32, h + SUB_TAIL) !== tail) this.lateWakeups++;
        Atomics.store(this.#i32, h + RUNNER_IDLE, 0);
      } else {
        // Nothing in flight: block the thread itself (Atomics.wait wakes at once and reliably;
        // Node's waitAsync continuation was seen to stall in workers). Control messages
        // (stats, close) come through the event loop, so look there on every empty wake-up.
        Atomics.wait(i32, h + SUB_TAIL, tail, IDLE_BLOCK_MS);
        Atomics.store(this.#i32, h + RUNNER_IDLE, 0);
        if (Atomics.load(this.#i32, h + SUB_TAIL) === tail) await this.#yield();
      }
    }
  }

  #start(slot: number): void {
    const at = this.#l.slotBase + slot * SLOT_BYTES;
    const i32 = this.#i32;
    const s = at >>> 2;
    const op = i32[s] & ~OP_NOTIFY;
    this.#notify[slot] = i32[s] & OP_NOTIFY ? 1 : 0;
    const length = i32[s + 1];
    const buffer = i32[s + 2] >>> 0;
    const offset = this.#f64[(at + 16) >>> 3];
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
    const l = this.#l;
    const h = this.#h;
    const i32 = this.#i32;
    this.#outstanding--;
    const s = (l.slotBase + slot * SLOT_BYTES) >>> 2;
    // Read before publishing: once published, the slot is the coordinator's to reuse.
    const counter = i32[s + 6] >>> 2;
    i32[s + 3] = status;
    i32[l.comp + (this.#compTail & l.mask)] = slot;
    this.#compTail = (this.#compTail + 1) | 0;
    Atomics.store(i32, h + COMP_TAIL, this.#compTail);
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
    const at = this.#l.errorBase + slot * ERROR_BYTES;
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
    this.#u8.set(bytes, at);
    return Math.max(1, bytes.length);
  }
}

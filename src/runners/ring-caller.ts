// SPDX-License-Identifier: MIT
// The coordinator's end of the request rings (ring.ts): RingCaller submits requests to one
// runner's ring and gets each one's outcome back; RingBell is the one loop that collects the
// completions of every ring of a pool.

import type { WasmCore } from '../core/wasm.js';
import { PloopError, type PloopErrorCode } from '../errors.js';
import {
  RingEnd, makeDeferrer, OP_NOTIFY, SUB_TAIL, COMP_TAIL, RUNNER_IDLE, STOP, ERROR_BYTES, WAIT_TIMEOUT_MS,
} from './ring.js';

/** Numbers per piece in a RingCaller's backlog. */
const BACKLOG_FIELDS = 6;

/**
 * The coordinator's side of the doorbell: one loop collects the completions of every ring of
 * the pool and sleeps on one word, so N runners cost one wake-up per burst, not N.
 */
export class RingBell {
  readonly address: number;
  /** A view of the shared memory made once (see RingEnd). */
  readonly #i32: Int32Array;
  readonly #b: number;
  readonly #rings: RingCaller[] = [];
  #reaping = false;
  /** Wake-ups that came by the re-check timeout instead of a notify (see WAIT_TIMEOUT_MS). */
  lateWakeups = 0;
  /** Times the coordinator went to sleep waiting for completions. */
  sleeps = 0;

  /** `address`: BELL_BYTES of zeroed shared memory. */
  constructor(core: WasmCore, address: number) {
    this.#i32 = core.i32;
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
    const i32 = this.#i32;
    try {
      for (;;) {
        if (!this.#rings.some((r) => r.inflight > 0)) return;
        // Read the bell before collecting: a completion published after the collection bumps
        // it afterwards, so the wait below returns at once instead of missing it.
        const seen = Atomics.load(i32, b);
        for (const r of this.#rings) r.collect();
        // Sleep until the bell rings again, even after collecting something: every completion
        // that matters rings it (a batch's last piece on each ring, the piece that fills a ring
        // to half, single requests, a runner left with nothing in flight), so looking again
        // before then would only spin beside the runners — one collect per completion, each
        // a few loads, was most of this thread's CPU once runners served 4 KiB in 1-2 µs. The
        // wait also lets the continuations of the batches just completed submit the next ones.
        if (!this.#rings.some((r) => r.inflight > 0)) return;
        Atomics.store(i32, b + 1, 1);
        this.sleeps++;
        const w = Atomics.waitAsync(i32, b, seen, WAIT_TIMEOUT_MS);
        if (w.async && (await w.value) === 'timed-out' && Atomics.load(i32, b) !== seen) this.lateWakeups++;
        Atomics.store(i32, b + 1, 0);
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

/** The coordinator's end: submit requests, get each one's outcome as a promise. */
export class RingCaller extends RingEnd {
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
  /** Waiting for #inflight to reach 0 (idle()). */
  #idle: Array<() => void> = [];
  readonly #bell: RingBell;
  #kickScheduled = false;
  readonly #kickLater = makeDeferrer(() => {
    this.#kickScheduled = false;
    const i32 = this.i32;
    if (Atomics.load(i32, this.h + RUNNER_IDLE) === 1) Atomics.notify(i32, this.h + SUB_TAIL);
  });

  constructor(core: WasmCore, base: number, bell: RingBell) {
    super(core, base);
    this.#bell = bell;
    bell.add(this);
    const slots = this.slots;
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

  /** Resolves once no request is in flight (at once if none is). */
  idle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  /**
   * Pieces the runner has not completed yet: in its slots (less those it completed that the
   * coordinator has not collected) and in the backlog. Reads go to the ring with the fewest.
   */
  get outstanding(): number {
    const completed = (Atomics.load(this.i32, this.h + COMP_TAIL) - this.#compHead) | 0;
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
        this.#fill(slot, this.#free.length === this.slots >> 1 ? op | OP_NOTIFY : op, offset, length, buffer, counter);
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
    const i32 = this.i32;
    // The last piece published rings the bell when done (backlog pieces flag their own last one).
    // Not for a batch whose pieces count down a wave counter: the piece that brings it to zero
    // rings the bell, once for all rings instead of once per ring.
    if (now && flagLast && this.#lastEnqueued >= 0 && this.#backlogHead === this.#backlog.length) {
      i32[this.slotWord(this.#lastEnqueued)] |= OP_NOTIFY;
    }
    this.#lastEnqueued = -1;
    this.#published = this.#subTail;
    Atomics.store(i32, this.h + SUB_TAIL, this.#subTail);
    if (Atomics.load(i32, this.h + RUNNER_IDLE) === 1) {
      if (now) {
        Atomics.notify(i32, this.h + SUB_TAIL);
      } else if (!this.#kickScheduled) {
        this.#kickScheduled = true;
        this.#kickLater();
      }
    }
    this.#bell.started();
  }

  /** Write a request into `slot` and append it to the submission ring (unpublished). */
  #fill(slot: number, op: number, offset: number, length: number, buffer: number, counter: number): void {
    const i32 = this.i32;
    const s = this.slotWord(slot);
    i32[s] = op;
    i32[s + 1] = length;
    i32[s + 2] = buffer;
    i32[s + 3] = 0;
    this.f64[(s + 4) >>> 1] = offset;
    i32[s + 6] = counter;
    i32[this.sub + (this.#subTail & this.mask)] = slot;
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
      const notify = k + BACKLOG_FIELDS === b.length || this.#free.length === 0 || this.#free.length === this.slots >> 1 ? OP_NOTIFY : 0;
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
    Atomics.notify(this.i32, this.h + SUB_TAIL);
  }

  /** Tell the runner to stop serving (after the last request completed). */
  stop(): void {
    const i32 = this.i32;
    Atomics.store(i32, this.h + STOP, 1);
    Atomics.store(i32, this.h + RUNNER_IDLE, 0);
    Atomics.notify(i32, this.h + SUB_TAIL);
  }

  /** Finish every request the runner has completed; true if there was any. */
  collect(): boolean {
    const i32 = this.i32;
    const tail = Atomics.load(i32, this.h + COMP_TAIL);
    if (tail === this.#compHead) return false;
    while (this.#compHead !== tail) {
      const slot = i32[this.comp + (this.#compHead & this.mask)];
      this.#compHead = (this.#compHead + 1) | 0;
      this.#finish(slot, i32[this.slotWord(slot) + 3]);
    }
    if (this.#backlogHead < this.#backlog.length) {
      this.#refill();
      this.publish(true);
    }
    return true;
  }

  #finish(slot: number, status: number): void {
    const batch = this.#batchOf[slot];
    const error = status === 0 ? null : this.#decodeError(slot, status);
    this.#inflight--;
    this.#free.push(slot);
    const next = this.#queued.shift();
    if (next) next();
    if (this.#inflight === 0 && this.#idle.length > 0) for (const r of this.#idle.splice(0)) r();
    if (batch !== null) {
      this.#batchOf[slot] = null;
      batch.pieceDone(this.#tagOf[slot], error);
      return;
    }
    const resolve = this.#resolve[slot]!;
    const reject = this.#reject[slot]!;
    this.#resolve[slot] = null;
    this.#reject[slot] = null;
    if (error) reject(error);
    else resolve();
  }

  #decodeError(slot: number, length: number): PloopError {
    const at = this.errorBase + slot * ERROR_BYTES;
    // TextDecoder refuses views of shared memory: decode a private copy.
    const text = new TextDecoder().decode(this.u8.slice(at, at + Math.min(length, ERROR_BYTES)));
    try {
      const e = JSON.parse(text) as { code: PloopErrorCode; message: string; data?: Record<string, unknown> };
      return new PloopError(e.code, e.message, e.data ?? {});
    } catch {
      return new PloopError('EIO', `runner failed with an unreadable error: ${text}`);
    }
  }
}

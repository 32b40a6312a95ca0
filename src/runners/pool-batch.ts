// SPDX-License-Identifier: MIT
// Batched requests through the runners' rings (ParallelImage.readMany / writeMany). The
// per-request path is what the coordinator pays for every request, so it allocates nothing per
// request: each piece (a request cut at cluster boundaries, cluster c → runner c mod N) is
// written straight into a ring slot with the batch and the request index as its tag; every
// touched ring is published once (one atomic store and at most one wake-up per ring per
// batch); each completion decrements one counter, and the batch's single promise settles when
// it reaches zero. The runners count the wave down too, in a word of the shared memory (the
// wave counter): the one that brings it to zero rings the coordinator's bell, so a wave spread
// over N rings wakes the coordinator once, not once per ring. A request whose buffer already lies in the shared WebAssembly memory (see
// ParallelImage.allocShared) is served in place, so a read costs the coordinator no copy at all;
// other buffers are staged through one pooled region per batch. Overlapping writes run in
// waves (batch.ts) so that a later request wins.

import type { WasmCore } from '../core/wasm.js';
import type { PloopError } from '../errors.js';
import { BatchFailures, waveEnds, type BatchOperation, type ReadRequest, type WriteRequest } from '../engine/batch.js';
import { OP_READ, OP_WRITE } from './ring.js';
import type { RingBatch, RingCaller } from './ring-caller.js';

/** Staging regions up to this size are kept for the next batch (per power-of-two size class). */
const MAX_POOLED_STAGING_BYTES = 4 << 20;
const STAGING_PER_CLASS = 4;
const MIN_STAGING_BYTES = 64 << 10;

/** What a batch needs of its pool. */
export interface BatchContext {
  core: WasmCore;
  rings: readonly RingCaller[];
  clusterBytes: number;
  /** True when `bytes` lies in the shared memory the runners see (served in place). */
  isShared(bytes: Uint8Array): boolean;
  staging: StagingPool;
  counters: WaveCounters;
}

/** Words of the shared memory that runners count waves down in (see RingCaller.enqueue). */
export class WaveCounters {
  readonly #core: WasmCore;
  readonly #free: number[] = [];
  /** Counters of settled waves that a runner may still decrement: reused once they read zero. */
  #settling: number[] = [];
  readonly #chunks: number[] = [];

  constructor(core: WasmCore) {
    this.#core = core;
  }

  take(): number {
    if (this.#free.length === 0 && this.#settling.length > 0) {
      // A runner decrements after publishing its completion, so a wave can settle here a
      // moment before the last decrement lands: such a word is not reused until it reads 0.
      const i32 = this.#core.i32;
      const still: number[] = [];
      for (const a of this.#settling) (Atomics.load(i32, a >>> 2) === 0 ? this.#free : still).push(a);
      this.#settling = still;
    }
    if (this.#free.length === 0) {
      const chunk = this.#core.alloc(64 * 4, 64);
      this.#chunks.push(chunk);
      for (let i = 63; i >= 0; i--) this.#free.push(chunk + i * 4);
    }
    return this.#free.pop()!;
  }

  give(address: number): void {
    if (Atomics.load(this.#core.i32, address >>> 2) === 0) this.#free.push(address);
    else this.#settling.push(address);
  }

  dispose(): void {
    for (const c of this.#chunks) this.#core.free(c);
    this.#chunks.length = 0;
    this.#free.length = 0;
    this.#settling = [];
  }
}

/** Regions of the shared memory for staging batches, pooled by power-of-two size. */
export class StagingPool {
  readonly #core: WasmCore;
  readonly #free = new Map<number, number[]>();

  constructor(core: WasmCore) {
    this.#core = core;
  }

  /** A region of at least `bytes`; returns [address, size class]. */
  take(bytes: number): [number, number] {
    let size = MIN_STAGING_BYTES;
    while (size < bytes) size *= 2;
    const region = size <= MAX_POOLED_STAGING_BYTES ? this.#free.get(size)?.pop() : undefined;
    return [region ?? this.#core.alloc(size, 16), size];
  }

  give(address: number, size: number): void {
    const list = this.#free.get(size) ?? [];
    if (size <= MAX_POOLED_STAGING_BYTES && list.length < STAGING_PER_CLASS) {
      list.push(address);
      this.#free.set(size, list);
    } else {
      this.#core.free(address);
    }
  }

  /** Free every pooled region (close). */
  dispose(): void {
    for (const list of this.#free.values()) for (const a of list) this.#core.free(a);
    this.#free.clear();
  }
}

/** One wave of a batch in flight: counts its pieces down and settles once. */
class Wave implements RingBatch {
  remaining = 0;
  readonly failures: BatchFailures;
  resolve: () => void = () => {};

  constructor(failures: BatchFailures) {
    this.failures = failures;
  }

  pieceDone(tag: number, error: PloopError | null): void {
    if (error !== null) this.failures.add(tag, error);
    if (--this.remaining === 0) this.resolve();
  }
}

/**
 * Serve a checked, non-empty batch through the rings; rejects with the batch error when some
 * requests failed (after all of them settled).
 */
export async function runPoolBatch(ctx: BatchContext, operation: BatchOperation, requests: readonly (ReadRequest | WriteRequest)[]): Promise<void> {
  const writing = operation === 'writeMany';
  const n = requests.length;
  // Staging addresses of buffers outside the shared memory (-1: served in place).
  let staged: Float64Array | null = null;
  let stagingBytes = 0;
  for (let i = 0; i < n; i++) {
    const bytes = writing ? (requests[i] as WriteRequest).data : (requests[i] as ReadRequest).into;
    if (bytes.length === 0 || ctx.isShared(bytes)) continue;
    staged ??= new Float64Array(n).fill(-1);
    staged[i] = stagingBytes;
    stagingBytes += (bytes.length + 15) & ~15;
  }
  let region = 0;
  let regionSize = 0;
  if (staged !== null) {
    [region, regionSize] = ctx.staging.take(stagingBytes);
    for (let i = 0; i < n; i++) if (staged[i] >= 0) staged[i] += region;
  }
  const failures = new BatchFailures();
  try {
    if (writing && staged !== null) {
      const u8 = ctx.core.u8;
      for (let i = 0; i < n; i++) if (staged[i] >= 0) u8.set((requests[i] as WriteRequest).data, staged[i]);
    }
    const ends = writing ? waveEnds(requests as readonly WriteRequest[]) : [n];
    let from = 0;
    for (const to of ends) {
      await submitWave(ctx, writing ? OP_WRITE : OP_READ, requests, from, to, staged, failures);
      from = to;
    }
    if (!writing && staged !== null) {
      const u8 = ctx.core.u8;
      for (let i = 0; i < n; i++) {
        const at = staged[i];
        if (at >= 0) {
          const into = (requests[i] as ReadRequest).into;
          into.set(u8.subarray(at, at + into.length));
        }
      }
    }
  } finally {
    if (staged !== null) ctx.staging.give(region, regionSize);
  }
  const error = failures.error(operation, requests);
  if (error) throw error;
}

function submitWave(ctx: BatchContext, op: number, requests: readonly (ReadRequest | WriteRequest)[], from: number, to: number,
  staged: Float64Array | null, failures: BatchFailures): Promise<void> {
  const wave = new Wave(failures);
  const counter = ctx.counters.take();
  const rings = ctx.rings;
  const count = rings.length;
  const cluster = ctx.clusterBytes;
  const writing = op === OP_WRITE;
  // Writes go to runner c mod N: one runner owns a cluster's allocation, so writes to one cluster
  // never race across threads. Reads take no lock and may go anywhere: each piece goes to the
  // runner with the fewest pieces not yet done, so that a runner that fell behind (preempted by
  // another thread on a busy core) gets less of the next batch instead of making the whole
  // batch wait for it while the other runner sleeps.
  const loads = !writing && count > 1 ? rings.map((ring) => ring.outstanding) : null;
  const pick = (c: number): number => {
    if (loads === null) return c % count;
    let best = 0;
    for (let k = 1; k < count; k++) if (loads[k] < loads[best]) best = k;
    loads[best]++;
    return best;
  };
  for (let i = from; i < to; i++) {
    const r = requests[i];
    const bytes = writing ? (r as WriteRequest).data : (r as ReadRequest).into;
    const length = bytes.length;
    if (length === 0) continue;
    const offset = r.offset;
    const buffer = staged !== null && staged[i] >= 0 ? staged[i] : bytes.byteOffset;
    const first = Math.floor(offset / cluster);
    const end = offset + length;
    if (count === 1 || end <= (first + 1) * cluster) {
      // The usual request: one cluster (or one runner), one piece.
      wave.remaining++;
      rings[pick(first)].enqueue(op, offset, length, buffer, wave, i, counter);
      continue;
    }
    for (let pos = offset; pos < end;) {
      const c = Math.floor(pos / cluster);
      const pieceEnd = Math.min((c + 1) * cluster, end);
      wave.remaining++;
      rings[pick(c)].enqueue(op, pos, pieceEnd - pos, buffer + (pos - offset), wave, i, counter);
      pos = pieceEnd;
    }
  }
  if (wave.remaining === 0) {
    ctx.counters.give(counter);
    return Promise.resolve();
  }
  const done = new Promise<void>((resolve) => {
    wave.resolve = () => {
      ctx.counters.give(counter);
      resolve();
    };
  });
  // Before any piece is visible to a runner (publish): the count it will bring down to zero.
  Atomics.store(ctx.core.i32, counter >>> 2, wave.remaining);
  for (const ring of rings) ring.publish(true, false);
  return done;
}

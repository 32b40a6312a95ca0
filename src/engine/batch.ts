// SPDX-License-Identifier: MIT
// Batched requests (readMany / writeMany), the readv/io_uring way: one call and one promise for
// many requests, so that a caller pays a small fixed cost per request and the runners do the
// work. The rules are the same for the in-thread image (PloopImage) and the runner pool
// (ParallelImage), and live here so that both say the same thing:
//
// - Arguments are checked before anything is done: a bad request rejects the whole batch with an
//   error naming its index, and no request of it runs.
// - Every request of a valid batch is attempted. If some fail, the batch rejects with one
//   PloopError naming the operation, how many requests failed and the first failing one (index,
//   offset, length, cause); the others completed.
// - Writes of one batch that overlap take effect in request order (a later request wins), as if
//   each had been issued after the previous one completed. Requests that do not overlap run
//   together: the batch is cut into *waves* of consecutive requests without overlaps, and a wave
//   starts when the one before it has completed.

import { PloopError } from '../errors.js';

export interface ReadRequest {
  /** Virtual byte offset. */
  offset: number;
  /** Receives `into.length` bytes. */
  into: Uint8Array;
}

export interface WriteRequest {
  /** Virtual byte offset. */
  offset: number;
  /** The bytes to write there. */
  data: Uint8Array;
}

export type BatchOperation = 'readMany' | 'writeMany';

/** The bytes of request `r` (its `into` for reads, its `data` for writes). */
export function requestBytes(r: ReadRequest | WriteRequest, writing: boolean): Uint8Array {
  return writing ? (r as WriteRequest).data : (r as ReadRequest).into;
}

/** Throw a PloopError naming the first bad request (its index, field and value), or the batch itself. */
export function checkBatch(operation: BatchOperation, requests: readonly (ReadRequest | WriteRequest)[], diskBytes: number): void {
  const writing = operation === 'writeMany';
  const field = writing ? 'data' : 'into';
  if (!Array.isArray(requests)) {
    throw new PloopError('EINVAL', `${operation}: expected an array of requests, got ${requests === null ? 'null' : typeof requests}`, { operation });
  }
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i] as Partial<ReadRequest & WriteRequest> | null | undefined;
    if (r === null || typeof r !== 'object') {
      throw new PloopError('EINVAL', `${operation}: request ${i} is ${r === null ? 'null' : typeof r}, expected { offset, ${field} }`, { operation, index: i });
    }
    const bytes = writing ? r.data : r.into;
    if (!(bytes instanceof Uint8Array)) {
      throw new PloopError('EINVAL', `${operation}: request ${i}: ${field} is ${describe(bytes)}, expected a Uint8Array`, { operation, index: i, field });
    }
    const offset = r.offset as number;
    const length = bytes.length;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > diskBytes) {
      throw new PloopError('ERANGE', `${operation}: request ${i}: range ${offset}+${length} is outside the virtual disk (0..${diskBytes} bytes)`,
        { operation, index: i, offset, length, size: diskBytes });
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'an object';
}

/**
 * Where the waves of a write batch end: consecutive index ranges [0, ends[0]), [ends[0],
 * ends[1]), … in which no two requests overlap. One range (the whole batch) when nothing
 * overlaps, which is checked first with one sort, so the usual batch costs no pairwise tests.
 */
export function waveEnds(requests: readonly WriteRequest[]): number[] {
  const n = requests.length;
  if (n < 2 || !anyOverlap(requests)) return [n];
  const ends: number[] = [];
  // Greedy in request order: a request that overlaps one of the current wave starts the next,
  // so any two overlapping requests land in different waves, the earlier one first.
  let starts: number[] = [];
  let stops: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = requests[i].offset;
    const b = a + requests[i].data.length;
    if (b === a) continue;
    let clash = false;
    for (let k = 0; k < starts.length; k++) {
      if (a < stops[k] && starts[k] < b) {
        clash = true;
        break;
      }
    }
    if (clash) {
      ends.push(i);
      starts = [];
      stops = [];
    }
    starts.push(a);
    stops.push(b);
  }
  ends.push(n);
  return ends;
}

function anyOverlap(requests: readonly WriteRequest[]): boolean {
  // Quick and sufficient: starts sorted natively (a typed array, no comparator) lie at least the
  // longest length apart, so nothing overlaps. The usual batch (same-sized requests at random
  // places) is settled here without the comparator sort below.
  const starts = new Float64Array(requests.length);
  let longest = 0;
  let k = 0;
  for (const r of requests) {
    if (r.data.length === 0) continue;
    starts[k++] = r.offset;
    if (r.data.length > longest) longest = r.data.length;
  }
  const sorted = starts.subarray(0, k).sort();
  let apart = true;
  for (let i = 1; i < k; i++) {
    if (sorted[i] - sorted[i - 1] < longest) {
      apart = false;
      break;
    }
  }
  if (apart) return false;
  const order = Array.from({ length: requests.length }, (_, i) => i).filter((i) => requests[i].data.length > 0);
  order.sort((x, y) => requests[x].offset - requests[y].offset);
  let reach = -1;
  for (const i of order) {
    if (requests[i].offset < reach) return true;
    reach = Math.max(reach, requests[i].offset + requests[i].data.length);
  }
  return false;
}

/**
 * Failures of one batch: how many requests failed and which came first (lowest index). A
 * request served in several pieces (one per runner) that fail counts once.
 */
export class BatchFailures {
  count = 0;
  firstIndex = -1;
  firstError: unknown = null;
  #failed: Set<number> | null = null;

  add(index: number, error: unknown): void {
    this.#failed ??= new Set();
    if (this.#failed.has(index)) return;
    this.#failed.add(index);
    this.count++;
    if (this.firstIndex === -1 || index < this.firstIndex) {
      this.firstIndex = index;
      this.firstError = error;
    }
  }

  /** The batch's error (null when every request completed). */
  error(operation: BatchOperation, requests: readonly (ReadRequest | WriteRequest)[]): PloopError | null {
    if (this.count === 0) return null;
    const i = this.firstIndex;
    const r = requests[i];
    const length = requestBytes(r, operation === 'writeMany').length;
    const cause = this.firstError;
    const why = cause instanceof Error ? cause.message : String(cause);
    const code = cause instanceof PloopError ? cause.code : 'EIO';
    return new PloopError(code,
      `${operation}: ${this.count} of ${requests.length} request${requests.length === 1 ? '' : 's'} failed (the others completed); first: request ${i} (offset ${r.offset}, length ${length}): ${why}`,
      { operation, failed: this.count, total: requests.length, index: i, offset: r.offset, length, causeCode: code }, { cause });
  }
}

/**
 * Run a batch in this thread: `run(i)` serves request i. Waves for writes (see waveEnds); all
 * requests are attempted; rejects with the batch error of BatchFailures.
 */
export async function runBatchInThread<R extends ReadRequest | WriteRequest>(operation: BatchOperation, requests: readonly R[], run: (r: R) => Promise<void>): Promise<void> {
  const failures = new BatchFailures();
  const ends = operation === 'writeMany' ? waveEnds(requests as readonly WriteRequest[]) : [requests.length];
  let from = 0;
  for (const to of ends) {
    const tasks: Promise<void>[] = [];
    for (let i = from; i < to; i++) {
      const r = requests[i];
      if (requestBytes(r, operation === 'writeMany').length === 0) continue;
      let p: Promise<void>;
      try {
        p = run(r);
      } catch (e) {
        p = Promise.reject(e);
      }
      tasks.push(p.catch((e: unknown) => failures.add(i, e)));
    }
    await Promise.all(tasks);
    from = to;
  }
  const error = failures.error(operation, requests);
  if (error) throw error;
}

// Power cuts for I/O this thread cannot see: the runner pool's workers write data through their
// own file handles. What every thread's writes share is the coordinator's store flush (the
// writeback barrier, explicit flushes, the in-use flag), so the recorder wraps that one
// NodeFileStore's flush: it copies the whole file when a flush is called (settled: no sector
// caught halfway through a write, see settledCopy), before passing the call on. Copy i is what flush i makes durable (a superset: a write still in flight may be in
// it). Between two copies the file changed in some set of sectors, written in an order nobody
// logged; a power cut in that interval leaves copy i plus ANY subset of those sectors — every
// ordering, loss and sector-granular tear of the interval's writes, and more.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { NodeFileStore } from '../../src/node.ts';
import { MemoryDirectory, MemoryStore } from '../../src/index.ts';
import type { NewRequest, PcRequest, RequestRecorder } from './power-cut.ts';
import type { Prng } from './prng.ts';

const SECTOR = 512;
const PIECE = 4096;

interface FileCopy {
  bytes: Uint8Array;
  /** Sequence number of the flush call it was taken at. */
  callSeq: number;
}

export interface FileCut {
  /** Flush interval: after flush `interval` completed, before flush `interval + 1` was called. */
  interval: number;
  /** Which of the interval's changed sector runs reached the medium. */
  kept: (run: number) => boolean;
}

export class FlushSnapshots implements RequestRecorder {
  seq = 0;
  readonly requests: PcRequest[] = [];
  readonly copies: FileCopy[] = [];
  readonly path: string;
  #final: Uint8Array | null = null;

  constructor(path: string) {
    this.path = path;
  }

  /** Copy the file at every flush call of `store` (the coordinator's store of `path`). */
  attach(store: NodeFileStore): void {
    const flush = store.flush.bind(store);
    store.flush = async () => {
      const callSeq = this.seq++;
      // Read synchronously: flushes may be called while another is in flight (the writeback's
      // barrier, a preallocation, an explicit flush), and copy i must be the file at call i —
      // an asynchronous read could finish after a later call's and land out of order.
      this.copies.push({ bytes: settledCopy(this.path), callSeq });
      await flush();
    };
  }

  /** Take the file as the workload left it (after close): the end of the last interval. */
  async finish(): Promise<void> {
    this.#final = new Uint8Array(await readFile(this.path));
  }

  issue(request: NewRequest): PcRequest {
    const r = { ...request, id: this.requests.length, issuedSeq: this.seq++ } as PcRequest;
    this.requests.push(r);
    return r;
  }

  acked(r: PcRequest): void {
    r.ackedSeq = this.seq++;
  }

  #end(interval: number): Uint8Array {
    return interval + 1 < this.copies.length ? this.copies[interval + 1].bytes : this.#final!;
  }

  /**
   * Runs of consecutive sectors that differ between copy `interval` and the next one, cut into
   * pieces of at most 4 KiB (a page: each may land or not on its own).
   */
  changedRuns(interval: number): Array<[number, number]> {
    const a = this.copies[interval].bytes;
    const b = this.#end(interval);
    const runs: Array<[number, number]> = [];
    const n = Math.max(a.length, b.length);
    const sector = (bytes: Uint8Array, at: number) => Buffer.from(bytes.buffer, bytes.byteOffset + Math.min(at, bytes.length), Math.max(0, Math.min(SECTOR, bytes.length - at)));
    for (let at = 0; at < n; at += SECTOR) {
      if (Buffer.compare(sector(a, at), sector(b, at)) === 0) continue;
      const end = Math.min(n, at + SECTOR);
      const last = runs[runs.length - 1];
      if (last && last[1] === at && end - last[0] <= PIECE) last[1] = end;
      else runs.push([at, end]);
    }
    return runs;
  }

  /** Requests durable in the interval: acknowledged before the call of its opening flush. */
  durableRequests(interval: number): Set<number> {
    const call = this.copies[interval].callSeq;
    return new Set(this.requests.filter((r) => r.ackedSeq !== undefined && r.ackedSeq < call).map((r) => r.id));
  }

  /** Requests issued before the interval ended. */
  issuedRequests(interval: number): PcRequest[] {
    const end = interval + 1 < this.copies.length ? this.copies[interval + 1].callSeq : this.seq;
    return this.requests.filter((r) => r.issuedSeq < end);
  }

  #buffer: ArrayBuffer | null = null;

  /** The file after a cut: the interval's opening copy plus the kept runs (a reused buffer, valid until the next call). */
  fileAfter(cut: FileCut, runs: Array<[number, number]>): Uint8Array {
    const base = this.copies[cut.interval].bytes;
    const next = this.#end(cut.interval);
    let size = base.length;
    const kept = runs.filter((_, i) => cut.kept(i));
    // The file grows to the end of a kept run past it; a shrink (the trim at close) is kept only
    // with every run (it comes last).
    for (const [, hi] of kept) if (hi > size) size = Math.min(hi, next.length);
    if (kept.length === runs.length) size = next.length;
    if (!this.#buffer || this.#buffer.byteLength < size) this.#buffer = new ArrayBuffer(size * 2);
    const out = new Uint8Array(this.#buffer, 0, size);
    out.fill(0);
    out.set(base.subarray(0, size));
    for (const [lo, hi] of kept) if (lo < size) out.set(next.subarray(lo, Math.min(hi, size)), lo);
    return out;
  }
}

/** Block this thread for `ms` milliseconds (the copy below must not yield to the event loop). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The file with no sector caught in the middle of a write. A read of the page cache does not wait
 * for a write another thread is copying into the same page (the runners write through their own
 * descriptors meanwhile), so one read can hold a sector that is part old, part new at any byte —
 * a state no disk shows after a power cut. The 3-runner test failed so about once in 20 runs:
 * "content no request could have left", a sector whose first 320 bytes were the last durable
 * write's and the other 192 a write then in flight. The file is read twice, SETTLE_MS apart,
 * and every sector that differs is read again until two reads SETTLE_MS apart agree: a tear
 * would need a write to stall mid-copy for that long.
 */
const SETTLE_MS = 2;
function settledCopy(path: string): Uint8Array {
  const first = new Uint8Array(readFileSync(path));
  pause(SETTLE_MS);
  const bytes = new Uint8Array(readFileSync(path));
  let unsettled: number[] = [];
  for (let at = 0; at < bytes.length; at += SECTOR) {
    if (at >= first.length || Buffer.compare(first.subarray(at, at + SECTOR), bytes.subarray(at, at + SECTOR)) !== 0) unsettled.push(at);
  }
  const fd = openSync(path, 'r');
  try {
    const sector = new Uint8Array(SECTOR);
    for (let round = 0; unsettled.length > 0; round++) {
      if (round === 100) throw new Error(`power-cut-files: ${unsettled.length} sectors of ${path} kept changing for ${100 * SETTLE_MS} ms`);
      pause(SETTLE_MS);
      const still: number[] = [];
      for (const at of unsettled) {
        const n = readSync(fd, sector, 0, Math.min(SECTOR, bytes.length - at), at);
        const now = sector.subarray(0, n);
        if (Buffer.compare(now, bytes.subarray(at, at + n)) !== 0) {
          bytes.set(now, at);
          still.push(at);
        }
      }
      unsettled = still;
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** A random subset of the interval's pieces: each kept with probability 1/2. */
export function randomKept(rng: Prng, count: number): (run: number) => boolean {
  const keep = Array.from({ length: count }, () => rng.chance(0.5));
  return (run) => keep[run];
}

/** A folder holding one delta's bytes and its descriptor, for the checker. */
export function folderOf(file: string, bytes: Uint8Array, descriptor: string): MemoryDirectory {
  const dir = new MemoryDirectory('power-cut');
  dir.files.set(file, new MemoryStore(bytes));
  dir.texts.set('DiskDescriptor.xml', descriptor);
  return dir;
}

// SPDX-License-Identifier: MIT
// Parallel runners for one image, the part that is the same in Node and in the browser: N
// workers over the image's shared WebAssembly memory. The coordinator (this thread) owns the
// image: it loaded the BAT, and it runs the writeback (batch list, BAT writes, completion).
// Requests are split at cluster boundaries and cluster c goes to runner c mod N, so one
// cluster's allocating writes and discards are always ordered by one runner's cluster locks.
// Requests travel through a ring per runner in the shared memory (ring.ts); comlink carries
// only control (init, stats, close; pool-runner.ts). How a worker is started and how a store is
// opened from its spec is the platform's part (pool-node.ts for Node, pool-browser.ts for the
// browser).

import { PloopImage, type OpenOptions, type ImageStats, type DeltaSource } from '../engine/image.js';
import { PloopError } from '../errors.js';
import type { RunnerCounters, StoreSpec } from './protocol.js';
import type { Image } from '../engine/image-interface.js';
import { BELL_BYTES, DEFAULT_RING_SLOTS, OP_READ, OP_WRITE, OP_DISCARD } from './ring.js';
import { RingBell } from './ring-caller.js';
import { control, startRunner, stopRunner, type PoolPlatform, type Runner } from './pool-runner.js';
import { specCrossesThreads } from './store-spec.js';
import { checkBatch, type ReadRequest, type WriteRequest } from '../engine/batch.js';
import { runPoolBatch, StagingPool, WaveCounters, type BatchContext } from './pool-batch.js';

export type { PoolPlatform, RunnerLink } from './pool-runner.js';

export interface ParallelOpenOptions extends Omit<OpenOptions, 'keepStoreOpen' | 'lenient'> {
  /** Number of runners (workers); 0 runs everything in this thread. Default 2. */
  runners?: number;
  /** Ring slots per runner (a power of two; default 512). More requests wait in the coordinator. */
  ringSlots?: number;
  /**
   * Runners serve plain reads and in-place writes on synchronous stores (shared memory, Node
   * files) by address, without ClusterIo's promises (runners/fast-path.ts). Default true; false
   * sends every request through ClusterIo (to compare, in benches and tests).
   */
  fastPath?: boolean;
}

/** Requests up to this size use a pooled region of the shared memory (no alloc/free each). */
const POOLED_BUFFER_BYTES = 64 << 10;
const MAX_POOLED_BUFFERS = 256;
/** How long close() lets reads still in flight finish before it stops the rings. */
const CLOSE_WAIT_MS = 10_000;

let warnedNoShared = false;

/** True when this environment can share memory between threads. */
export function sharedMemoryAvailable(): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && (typeof globalThis.crossOriginIsolated === 'undefined' || globalThis.crossOriginIsolated);
}

/** An image served by parallel runners: the same API as PloopImage. */
export class ParallelImage implements Image {
  readonly image: PloopImage;
  readonly runnerCount: number;
  readonly #runners: Runner[];
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #buffers: number[] = [];
  readonly #clusterBytes: number;
  readonly #batch: BatchContext;
  /** Buffer objects of the shared memory handed out by allocShared (it changes when the memory grows). */
  readonly #sharedBuffers = new Set<ArrayBufferLike>();
  #closed = false;

  protected constructor(image: PloopImage, runners: Runner[]) {
    this.image = image;
    this.#runners = runners;
    this.runnerCount = runners.length;
    this.#clusterBytes = image.clusterSize;
    const core = image.bat.core;
    let lastShared: ArrayBufferLike | null = null;
    this.#batch = {
      core, rings: runners.map((r) => r.ring), clusterBytes: image.clusterSize, staging: new StagingPool(core), counters: new WaveCounters(core),
      // Only buffers from allocShared: comparing with core.memory.buffer would cost a call into
      // the engine per request. The buffer seen last is compared first (a batch's requests
      // usually share one).
      isShared: (bytes) => {
        const buffer = bytes.buffer;
        if (buffer === lastShared) return true;
        if (!this.#sharedBuffers.has(buffer)) return false;
        lastShared = buffer;
        return true;
      },
    };
  }

  /**
   * Open the deltas named by `specs` (base first, top last) with `options.runners` workers
   * started by `platform`. Without shared memory it falls back to one in-thread runner (and
   * says so once, through options.onWarning, default console.warn).
   */
  protected static async prepare(platform: PoolPlatform, specs: StoreSpec[], options: ParallelOpenOptions = {}): Promise<[PloopImage, Runner[]]> {
    let count = options.runners ?? 2;
    if (!Number.isSafeInteger(count) || count < 0 || count > 64) {
      throw new PloopError('EINVAL', `ParallelImage.open: runners ${count}, expected a whole number from 0 to 64`, { field: 'runners', value: count });
    }
    if (specs.length === 0) throw new PloopError('EINVAL', 'ParallelImage.open: no deltas given');
    const ringSlots = options.ringSlots ?? DEFAULT_RING_SLOTS;
    if (!Number.isSafeInteger(ringSlots) || ringSlots < 1 || ringSlots > 65536 || (ringSlots & (ringSlots - 1)) !== 0) {
      throw new PloopError('EINVAL', `ParallelImage.open: ringSlots ${ringSlots}, expected a power of two from 1 to 65536`, { field: 'ringSlots', value: ringSlots });
    }
    if (count > 0 && (!sharedMemoryAvailable() || !specs.every(specCrossesThreads))) {
      if (!warnedNoShared) {
        const lone = specs.find((s) => !specCrossesThreads(s));
        const why = !sharedMemoryAvailable() ? 'SharedArrayBuffer is unavailable (page not cross-origin isolated)'
          : `store ${lone ? specName(lone) : ''} (${lone?.kind}) cannot be shared with runner threads`;
        (options.onWarning ?? console.warn)(`ploop-wasm: ${why}; using one in-thread runner instead of ${count}`);
      }
      warnedNoShared = true;
      count = 0;
    }
    const writableTop = !!options.writable;
    const sources: DeltaSource[] = [];
    try {
      for (let i = 0; i < specs.length; i++) {
        const spec = i === specs.length - 1 || !('writable' in specs[i]) ? specs[i] : { ...specs[i], writable: false } as StoreSpec;
        sources.push({ store: await platform.openStore(spec), name: specName(spec) });
      }
    } catch (e) {
      for (const s of sources) await s.store.close().catch(() => {});
      throw e;
    }
    const image = await PloopImage.openStack(sources, { ...options, keepStoreOpen: false });
    // Runners open only the top writable, and only if the image is.
    const runnerSpecs = specs.map((s, i) => ('writable' in s ? { ...s, writable: writableTop && i === specs.length - 1 } : s) as StoreSpec);
    const runners: Runner[] = [];
    const bell = count > 0 ? new RingBell(image.bat.core, image.bat.core.alloc(BELL_BYTES, 64)) : null;
    try {
      for (let i = 0; i < count; i++) runners.push(await startRunner(platform, image, runnerSpecs, bell!, ringSlots, options.fastPath ?? true));
    } catch (e) {
      for (const r of runners) await r.link.terminate();
      if (bell) image.bat.core.free(bell.address);
      await image.close();
      throw e;
    }
    return [image, runners];
  }

  get size(): number {
    return this.image.size;
  }
  get clusterSize(): number {
    return this.image.clusterSize;
  }
  get writable(): boolean {
    return this.image.writable;
  }

  /** Read `length` bytes at `offset`. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.#check('read', offset, length, false);
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  readInto(offset: number, into: Uint8Array): Promise<void> {
    if (this.runnerCount === 0) return this.image.readInto(offset, into);
    try {
      this.#check('read', offset, into.length, false);
    } catch (e) {
      return Promise.reject(e);
    }
    const length = into.length;
    if (length === 0) return Promise.resolve();
    // The hot path of small reads: no async function, one promise from the ring and one here.
    const buffer = this.#takeBuffer(length);
    return this.#dispatch(OP_READ, offset, length, buffer).then(() => {
      into.set(this.image.bat.core.u8.subarray(buffer, buffer + length));
      this.#releaseBuffer(buffer, length);
    }, (e: unknown) => {
      this.#releaseBuffer(buffer, length);
      throw e;
    });
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.runnerCount === 0) return this.image.write(offset, data);
    this.#check('write', offset, data.length, true);
    if (data.length === 0) return;
    // Tracked from the start: a flush issued meanwhile waits for it while it sets the in-use flag.
    await this.#track(this.image.ensureInUse().then(async () => {
      const buffer = this.#takeBuffer(data.length);
      try {
        new Uint8Array(this.image.bat.core.memory.buffer, buffer, data.length).set(data);
        await this.#dispatch(OP_WRITE, offset, data.length, buffer);
      } finally {
        this.#releaseBuffer(buffer, data.length);
      }
    }));
  }

  /**
   * Read many requests with one call and one promise (rules in engine/batch.ts): every request
   * is attempted; if some fail, rejects with one PloopError naming how many and the first one.
   * Buffers from allocShared() are filled in place by the runners (no copy in this thread).
   */
  readMany(requests: readonly ReadRequest[]): Promise<void> {
    if (this.runnerCount === 0) return this.image.readMany(requests);
    try {
      if (this.#closed) throw new PloopError('ECLOSED', 'the image is closed');
      checkBatch('readMany', requests, this.size);
    } catch (e) {
      return Promise.reject(e);
    }
    if (requests.length === 0) return Promise.resolve();
    return runPoolBatch(this.#batch, 'readMany', requests);
  }

  /**
   * Write many requests with one call; each completes like write() (data and BAT page written);
   * overlapping requests take effect in request order (a later one wins). Failures as readMany.
   */
  async writeMany(requests: readonly WriteRequest[]): Promise<void> {
    if (this.runnerCount === 0) return this.image.writeMany(requests);
    if (this.#closed) throw new PloopError('ECLOSED', 'the image is closed');
    if (!this.image.writable) throw new PloopError('EREADONLY', 'writeMany: the image was opened read-only');
    checkBatch('writeMany', requests, this.size);
    if (requests.length === 0) return;
    await this.#track(this.image.ensureInUse().then(() => runPoolBatch(this.#batch, 'writeMany', requests)));
  }

  /**
   * `bytes` of zeroed memory the runners can see (in the image's shared WebAssembly memory):
   * readMany/writeMany serve requests whose buffers lie there without copying them. Give it
   * back with freeShared() before close. Without runners it is an ordinary Uint8Array.
   */
  allocShared(bytes: number): Uint8Array {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new PloopError('EINVAL', `allocShared: ${bytes} bytes, expected a whole number ≥ 0`, { field: 'bytes', value: bytes });
    if (this.#closed) throw new PloopError('ECLOSED', 'the image is closed');
    if (this.runnerCount === 0) return new Uint8Array(bytes);
    const core = this.image.bat.core;
    const address = core.alloc(Math.max(bytes, 1), 16);
    core.u8.fill(0, address, address + bytes);
    this.#sharedBuffers.add(core.memory.buffer);
    const view = new Uint8Array(core.memory.buffer, address, bytes);
    this.#sharedRegions.add(address);
    return view;
  }

  /** Give back a buffer from allocShared() (the whole of it, as returned). */
  freeShared(view: Uint8Array): void {
    if (this.runnerCount === 0 || this.#closed) return;
    if (!this.#sharedRegions.delete(view.byteOffset) || !this.#batch.isShared(view)) {
      throw new PloopError('EINVAL', `freeShared: the view at byte ${view.byteOffset} (${view.length} bytes) was not returned by allocShared or was freed already`, { field: 'view' });
    }
    this.image.bat.core.free(view.byteOffset);
  }

  readonly #sharedRegions = new Set<number>();

  async discard(offset: number, length: number): Promise<void> {
    if (this.runnerCount === 0) return this.image.discard(offset, length);
    this.#check('discard', offset, length, true);
    if (length === 0) return;
    await this.#track(this.image.ensureInUse().then(() => this.#dispatch(OP_DISCARD, offset, length, 0)));
  }

  /** Wait for every request issued before, write pending BAT pages and make everything durable. */
  async flush(): Promise<void> {
    // The runners' requests may be waiting for their BAT page: write pages back meanwhile
    // instead of letting the flush wait for submitDelayMs.
    await this.image.writeback.drain(Promise.allSettled([...this.#inflight]));
    await this.image.flush();
  }

  /** Counters of the coordinator and every runner together. */
  async stats(): Promise<ImageStats & { runnerRequests: number[]; runnerFastRequests: number[]; lateWakeups: number; coordinatorSleeps: number; runnerSleeps: number[] }> {
    const s = {
      ...this.image.stats, runnerRequests: [] as number[], runnerFastRequests: [] as number[], lateWakeups: this.#runners[0]?.bell.lateWakeups ?? 0,
      coordinatorSleeps: this.#runners[0]?.bell.sleeps ?? 0, runnerSleeps: [] as number[],
    };
    for (const rs of this.#runnerStats ?? await Promise.all(this.#runners.map((r) => control(r, () => r.link.api.stats())))) {
      s.dataWrites += rs.dataWrites;
      s.clustersAllocated += rs.clustersAllocated;
      s.clustersCopied += rs.clustersCopied;
      s.virginAllocations += rs.virginAllocations;
      s.runnerRequests.push(rs.requests);
      s.runnerFastRequests.push(rs.fastRequests);
      s.lateWakeups += rs.lateWakeups;
      s.runnerSleeps.push(rs.sleeps);
    }
    return s;
  }

  /** The runners' counters as they were at close (the workers are gone by then). */
  #runnerStats: RunnerCounters[] | null = null;

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
      // Reads are not tracked by flush: let the last ones finish before the rings stop.
      const deadline = Date.now() + CLOSE_WAIT_MS;
      while (this.#runners.some((r) => r.ring.inflight > 0) && Date.now() < deadline) {
        await settledWithin(Promise.all(this.#runners.map((r) => r.ring.idle())), deadline - Date.now());
      }
    } finally {
      const core = this.image.bat.core;
      try {
        this.#runnerStats = await Promise.all(this.#runners.map((r) => control(r, () => r.link.api.stats())));
        for (const r of this.#runners) await stopRunner(core, r);
      } finally {
        if (this.#runners.length > 0) core.free(this.#runners[0].bell.address);
        for (const b of this.#buffers.splice(0)) core.free(b);
        this.#batch.staging.dispose();
        this.#batch.counters.dispose();
        for (const a of this.#sharedRegions) core.free(a);
        this.#sharedRegions.clear();
        await this.image.close();
      }
    }
  }

  #takeBuffer(length: number): number {
    if (length <= POOLED_BUFFER_BYTES) return this.#buffers.pop() ?? this.image.bat.core.alloc(POOLED_BUFFER_BYTES);
    return this.image.bat.core.alloc(length);
  }

  #releaseBuffer(buffer: number, length: number): void {
    if (length <= POOLED_BUFFER_BYTES && this.#buffers.length < MAX_POOLED_BUFFERS) this.#buffers.push(buffer);
    else this.image.bat.core.free(buffer);
  }

  #check(operation: string, offset: number, length: number, writing: boolean): void {
    if (this.#closed) throw new PloopError('ECLOSED', 'the image is closed');
    if (writing && !this.image.writable) throw new PloopError('EREADONLY', `${operation}: the image was opened read-only`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new PloopError('ERANGE', `${operation}: range ${offset}+${length} is outside the virtual disk (0..${this.size} bytes)`, { operation, offset, length, size: this.size });
    }
  }

  /** Split at cluster boundaries and route cluster c to runner c mod N; one ring entry per piece. */
  #dispatch(op: number, offset: number, length: number, buffer: number): Promise<void> {
    const cluster = this.#clusterBytes;
    const n = this.#runners.length;
    const first = Math.floor(offset / cluster);
    const end = offset + length;
    // The common case, one cluster: no arrays, no extra promise.
    if (end <= (first + 1) * cluster) return this.#runners[first % n].ring.submit(op, offset, length, buffer);
    const tasks: Promise<void>[] = [];
    for (let pos = offset; pos < end;) {
      const clusterIndex = Math.floor(pos / cluster);
      // One runner serves neighbouring clusters in one piece (N = 1: the whole request).
      let pieceEnd = Math.min((clusterIndex + 1) * cluster, end);
      if (n === 1) pieceEnd = end;
      tasks.push(this.#runners[clusterIndex % n].ring.submit(op, pos, pieceEnd - pos, buffer ? buffer + (pos - offset) : 0));
      pos = pieceEnd;
    }
    return settleAll(tasks);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    // The coordinator's writeback sees it coming (it gathers a burst's BAT updates).
    return this.image.trackRequest(p);
  }
}

/** Resolve when `p` settles or after `ms`, whichever comes first. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  try {
    await Promise.race([p.then(() => {}, () => {}), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Wait for all; throw the first failure after every piece has settled. */
async function settleAll(tasks: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(tasks);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

function specName(spec: StoreSpec): string {
  switch (spec.kind) {
    case 'node-fs':
    case 'opfs':
      return spec.path;
    case 'http':
      return spec.url;
    case 'blob':
      return spec.name ?? ((spec.blob as Partial<File>).name || 'blob');
    case 'shared-memory':
      return 'shared-memory';
  }
}

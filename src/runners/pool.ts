// SPDX-License-Identifier: MIT
// Parallel runners for one image: N workers over the image's shared WebAssembly memory. The
// coordinator (this thread) owns the image: it loaded the BAT, and it runs the writeback (batch
// list, BAT writes, completion). Requests are split at cluster boundaries and cluster c goes to
// runner c mod N, so one cluster's allocating writes and discards are always ordered by one
// runner's cluster locks. Control is comlink; payloads stay in shared memory.

import * as Comlink from 'comlink';
import { Worker } from 'node:worker_threads';
import { MessageChannel } from 'node:worker_threads';
import { PloopImage, type OpenOptions, type ImageStats } from '../engine/image.js';
import { BatMap } from '../core/bat-map.js';
import { PloopError, type PloopErrorCode } from '../errors.js';
import { NodeFileStore } from '../stores/node-fs.js';
import type { Attachment } from '../engine/writeback.js';
import type { AttachMessage, Piece, RunnerApi, RunnerOutcome, StoreSpec } from './protocol.js';
import { nodeEndpoint } from './node-endpoint.js';

export interface ParallelOpenOptions extends Omit<OpenOptions, 'keepStoreOpen' | 'lenient'> {
  /** Number of runners (workers); 0 runs everything in this thread. Default 2. */
  runners?: number;
}

interface Runner {
  worker: Worker;
  api: Comlink.Remote<RunnerApi>;
  scratch: number;
}

let warnedNoShared = false;

/** True when this environment can share memory between threads. */
export function sharedMemoryAvailable(): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && (typeof globalThis.crossOriginIsolated === 'undefined' || globalThis.crossOriginIsolated);
}

/** An image served by parallel runners: the same API as PloopImage. */
export class ParallelImage {
  readonly image: PloopImage;
  readonly runnerCount: number;
  readonly #runners: Runner[];
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(image: PloopImage, runners: Runner[]) {
    this.image = image;
    this.#runners = runners;
    this.runnerCount = runners.length;
  }

  /**
   * Open the image files `paths` (base first, top last) with `runners` workers. Without shared
   * memory it falls back to one in-thread runner (and says so once).
   */
  static async open(paths: string[], options: ParallelOpenOptions = {}): Promise<ParallelImage> {
    let count = options.runners ?? 2;
    if (count > 0 && !sharedMemoryAvailable()) {
      if (!warnedNoShared) (options.onWarning ?? console.warn)('ploop-wasm: SharedArrayBuffer is unavailable (page not cross-origin isolated); using one in-thread runner');
      warnedNoShared = true;
      count = 0;
    }
    const sources = [];
    for (let i = 0; i < paths.length; i++) {
      const top = i === paths.length - 1;
      sources.push({ store: await NodeFileStore.open(paths[i], { writable: top && !!options.writable }), name: paths[i] });
    }
    const image = await PloopImage.openStack(sources, { ...options, keepStoreOpen: false });
    const specs: StoreSpec[] = paths.map((path, i) => ({ kind: 'node-fs', path, writable: i === paths.length - 1 && !!options.writable }));
    const runners: Runner[] = [];
    try {
      for (let i = 0; i < count; i++) runners.push(await startRunner(image, specs));
    } catch (e) {
      for (const r of runners) await r.worker.terminate();
      await image.close();
      throw e;
    }
    return new ParallelImage(image, runners);
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
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    if (this.runnerCount === 0) return this.image.readInto(offset, into);
    this.#check('read', offset, into.length, false);
    if (into.length === 0) return;
    await this.#dispatch('read', offset, into.length, (buffer) => null, (buffer) => into.set(this.#view(buffer, into.length)));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.runnerCount === 0) return this.image.write(offset, data);
    this.#check('write', offset, data.length, true);
    if (data.length === 0) return;
    // Tracked from the start: a flush issued meanwhile waits for it while it sets the in-use flag.
    await this.#track(this.image.ensureInUse().then(() => this.#dispatch('write', offset, data.length, (buffer) => this.#view(buffer, data.length).set(data), () => {})));
  }

  async discard(offset: number, length: number): Promise<void> {
    if (this.runnerCount === 0) return this.image.discard(offset, length);
    this.#check('discard', offset, length, true);
    if (length === 0) return;
    await this.#track(this.image.ensureInUse().then(() => this.#dispatch('discard', offset, length, null, () => {})));
  }

  /** Wait for every request issued before, write pending BAT pages and make everything durable. */
  async flush(): Promise<void> {
    // The runners' requests may be waiting for their BAT page: write pages back meanwhile
    // instead of letting the flush wait for submitDelayMs.
    await this.image.writeback.drain(Promise.allSettled([...this.#inflight]));
    await this.image.flush();
  }

  /** Counters of the coordinator and every runner together. */
  async stats(): Promise<ImageStats> {
    const s = { ...this.image.stats };
    for (const rs of this.#runnerStats ?? await Promise.all(this.#runners.map((r) => r.api.stats()))) {
      s.dataWrites += rs.dataWrites;
      s.clustersAllocated += rs.clustersAllocated;
      s.clustersCopied += rs.clustersCopied;
    }
    return s;
  }

  /** The runners' counters as they were at close (the workers are gone by then). */
  #runnerStats: Array<{ dataWrites: number; clustersAllocated: number; clustersCopied: number }> | null = null;

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      this.#runnerStats = await Promise.all(this.#runners.map((r) => r.api.stats()));
      for (const r of this.#runners) {
        await r.api.close();
        r.api[Comlink.releaseProxy]();
        await r.worker.terminate();
        this.image.bat.core.free(r.scratch);
      }
      await this.image.close();
    }
  }

  #view(buffer: number, length: number): Uint8Array {
    return new Uint8Array(this.image.bat.core.memory.buffer, buffer, length);
  }

  #check(operation: string, offset: number, length: number, writing: boolean): void {
    if (this.#closed) throw new PloopError('ECLOSED', 'the image is closed');
    if (writing && !this.image.writable) throw new PloopError('EREADONLY', `${operation}: the image was opened read-only`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new PloopError('ERANGE', `${operation}: range ${offset}+${length} is outside the virtual disk (0..${this.size} bytes)`, { operation, offset, length, size: this.size });
    }
  }

  /** Split at cluster boundaries, route cluster c to runner c mod N, one call per runner. */
  async #dispatch(op: 'read' | 'write' | 'discard', offset: number, length: number, fill: ((buffer: number) => unknown) | null, drain: (buffer: number) => void): Promise<void> {
    const core = this.image.bat.core;
    const buffer = fill ? core.alloc(length) : 0;
    try {
      if (fill) fill(buffer);
      const perRunner: Piece[][] = this.#runners.map(() => []);
      const cluster = this.clusterSize;
      for (let pos = offset; pos < offset + length;) {
        const clusterIndex = Math.floor(pos / cluster);
        const end = Math.min((clusterIndex + 1) * cluster, offset + length);
        const list = perRunner[clusterIndex % this.#runners.length];
        const last = list[list.length - 1];
        // Neighbouring clusters of one runner (N = 1) merge into one piece.
        if (last && last.offset + last.length === pos) last.length += end - pos;
        else list.push({ offset: pos, length: end - pos, bufferOffset: pos - offset });
        pos = end;
      }
      const results = await Promise.all(perRunner.map((pieces, i) => {
        if (pieces.length === 0) return {} as RunnerOutcome;
        const api = this.#runners[i].api;
        return op === 'discard' ? api.discard(pieces) : api[op](pieces, buffer);
      }));
      for (const r of results) if (r.error) throw new PloopError(r.error.code as PloopErrorCode, r.error.message, r.error.data ?? {});
      drain(buffer);
    } finally {
      if (buffer) core.free(buffer);
    }
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    // The coordinator's writeback sees it coming (it gathers a burst's BAT updates).
    return this.image.trackRequest(p);
  }
}

/**
 * The built library starts dist/src/runners/runner-worker.js. Run from sources (tests under
 * tsx) it starts the .ts file through tsx's loader, which workers do not inherit.
 */
function spawnRunnerWorker(): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./runner-worker.js', self));
  const entry = new URL('./runner-worker.ts', self).href;
  const api = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true });
}

async function startRunner(image: PloopImage, stores: StoreSpec[]): Promise<Runner> {
  const worker = spawnRunnerWorker();
  const api = Comlink.wrap<RunnerApi>(nodeEndpoint(worker));
  const core = image.bat.core;
  const scratch = core.alloc(BatMap.EXTENT_SCRATCH_BYTES);
  const { port1, port2 } = new MessageChannel();
  // Attachments from this runner go to the image's writeback; completion goes back by id.
  port1.on('message', (m: AttachMessage) => {
    image.writeback.register(m.attachment as Attachment).then(
      () => port1.postMessage({ id: m.id }),
      (e: unknown) => {
        const err = e instanceof PloopError ? e : new PloopError('EIO', String(e));
        port1.postMessage({ id: m.id, error: err.toJSON() });
      },
    );
  });
  port1.unref();
  await api.init(Comlink.transfer({
    module: core.module, memory: core.memory, ctx: image.bat.ctx, scratch, size: image.size,
    topUnitBytes: image.geometry.unitBytes, stores, attachPort: port2 as unknown as MessagePort,
  }, [port2 as unknown as Transferable]));
  return { worker, api, scratch };
}

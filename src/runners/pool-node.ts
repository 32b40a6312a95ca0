// SPDX-License-Identifier: MIT
// The runner pool in Node: runners are worker_threads (comlink over node-endpoint.ts), and an
// image file is named by its path (a 'node-fs' spec) or given as any other StoreSpec.

import { wrap } from 'comlink';
import { startNodeWorker } from '../node-worker.js';
import { NodeFileStore } from '../stores/node-fs.js';
import { PloopError } from '../errors.js';
import type { RunnerApi, StoreSpec } from './protocol.js';
import { nodeEndpoint } from './node-endpoint.js';
import { openPortableStore } from './store-spec.js';
import { ParallelImage as ParallelImageCore, type ParallelOpenOptions, type PoolPlatform } from './pool-shared.js';

export { sharedMemoryAvailable, type ParallelOpenOptions } from './pool-shared.js';

/**
 * Runners read and write files of up to this many bytes per request with blocking
 * pread/pwrite: a runner's thread does nothing else, and a synchronous request completes
 * before the runner goes back to sleep, instead of a thread-pool hop and an event-loop wake-up.
 */
const RUNNER_SYNC_IO_BYTES = 64 << 10;

const nodePlatform: PoolPlatform = {
  spawn() {
    const worker = startNodeWorker('runner-node-worker', import.meta.url);
    const failure = new Promise<never>((_, reject) => {
      const fail = (why: string) => reject(new PloopError('EIO', `the runner worker ${why}`));
      worker.once('error', (e) => fail(`failed: ${e instanceof Error ? e.message : String(e)}`));
      worker.once('exit', (code) => fail(`exited (code ${code})`));
    });
    // Looked at only while the runner starts (startRunner).
    failure.catch(() => {});
    return { api: wrap<RunnerApi>(nodeEndpoint(worker)), terminate: () => worker.terminate(), failure };
  },
  // The coordinator's own handle stays asynchronous: its thread serves the caller.
  openStore: (spec) => (spec.kind === 'node-fs' ? NodeFileStore.open(spec.path, { writable: spec.writable }) : openPortableStore(spec)),
};

/** An image served by parallel runners (worker_threads): the same API as PloopImage. */
export class ParallelImage extends ParallelImageCore {
  /**
   * Open the deltas `sources` (base first, top last): file paths or StoreSpecs (e.g. a
   * SharedMemoryStore's spec()), with `options.runners` workers (default 2).
   */
  static async open(sources: Array<string | StoreSpec>, options: ParallelOpenOptions = {}): Promise<ParallelImage> {
    const specs = sources.map((s): StoreSpec => (typeof s === 'string' ? { kind: 'node-fs', path: s, writable: !!options.writable, syncMaxBytes: RUNNER_SYNC_IO_BYTES } : s));
    const [image, runners] = await ParallelImage.prepare(nodePlatform, specs, options);
    return new ParallelImage(image, runners);
  }
}

// SPDX-License-Identifier: MIT
// The runner pool in the browser: runners are module Web Workers (dist/web/runner.worker.js,
// beside this bundle), comlink talks to them directly, and each delta is a StoreSpec the
// runners open themselves (a SharedMemoryStore's spec() is shared, not copied).

import { wrap } from 'comlink';
import type { RunnerApi, StoreSpec } from './protocol.js';
import { openPortableStore } from './store-spec.js';
import { ParallelImage as ParallelImageCore, type ParallelOpenOptions, type PoolPlatform } from './pool-core.js';

export { sharedMemoryAvailable, type ParallelOpenOptions } from './pool-core.js';

let runnerUrl: URL | null = null;

/** Start runners from `url` instead of ./runner.worker.js beside the bundle. */
export function setRunnerWorkerUrl(url: string | URL): void {
  runnerUrl = new URL(url, location.href);
}

const browserPlatform: PoolPlatform = {
  spawn() {
    const worker = runnerUrl
      ? new Worker(runnerUrl, { type: 'module', name: 'ploop-runner' })
      : new Worker(new URL('./runner.worker.js', import.meta.url), { type: 'module', name: 'ploop-runner' });
    return { api: wrap<RunnerApi>(worker), terminate: () => worker.terminate() };
  },
  openStore: openPortableStore,
};

/** An image served by parallel runners (Web Workers): the same API as PloopImage. */
export class ParallelImage extends ParallelImageCore {
  /** Open the deltas `specs` (base first, top last) with `options.runners` workers (default 2). */
  static async open(specs: StoreSpec[], options: ParallelOpenOptions = {}): Promise<ParallelImage> {
    const [image, runners] = await ParallelImage.prepare(browserPlatform, specs, options);
    return new ParallelImage(image, runners);
  }
}

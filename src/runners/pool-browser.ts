// SPDX-License-Identifier: MIT
// The runner pool in the browser: runners are module Web Workers (dist/web/runner.worker.js,
// beside this bundle), comlink talks to them directly, and each delta is a StoreSpec the
// runners open themselves (a SharedMemoryStore's spec() is shared, not copied; a writable OPFS
// file is opened with 'readwrite-unsafe' handles by the coordinator and every runner).

import { wrap } from 'comlink';
import type { RunnerApi, StoreSpec } from './protocol.js';
import { openPortableStore, shareWritableOpfs } from './store-spec.js';
import { OpfsStore } from '../stores/opfs.js';
import { ParallelImage as ParallelImageCore, sharedMemoryAvailable, type ParallelOpenOptions as CoreOpenOptions, type PoolPlatform } from './pool-shared.js';

export { sharedMemoryAvailable } from './pool-shared.js';

export interface ParallelOpenOptions extends CoreOpenOptions {
  /**
   * Whether this browser grants OPFS 'readwrite-unsafe' handles (default: asked of the browser).
   * false serves a writable OPFS image in this thread, as a browser without them does.
   */
  opfsSharedHandles?: boolean;
}

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
  // This thread is the coordinator: it holds a shared OPFS file's Web Lock for the image's life.
  openStore: (spec) => openPortableStore(spec, 'coordinator'),
};

/** An image served by parallel runners (Web Workers): the same API as PloopImage. */
export class ParallelImage extends ParallelImageCore {
  /** Open the deltas `specs` (base first, top last) with `options.runners` workers (default 2). */
  static async open(specs: StoreSpec[], options: ParallelOpenOptions = {}): Promise<ParallelImage> {
    const [image, runners] = await ParallelImage.prepare(browserPlatform, await shareOpfs(specs, options), options);
    return new ParallelImage(image, runners);
  }
}

/** Writable OPFS specs become shared when runners will serve them and the browser can. */
async function shareOpfs(specs: StoreSpec[], options: ParallelOpenOptions): Promise<StoreSpec[]> {
  const wanted = (options.runners ?? 2) > 0 && sharedMemoryAvailable() && specs.some((s) => s.kind === 'opfs' && s.writable && s.shared === undefined);
  if (!wanted) return specs;
  return shareWritableOpfs(specs, options.opfsSharedHandles ?? await OpfsStore.sharedHandlesSupported());
}

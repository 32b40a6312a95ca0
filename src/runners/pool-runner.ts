// SPDX-License-Identifier: MIT
// One runner of a pool, from the coordinator's side: start it (its ring, its scratch region,
// the port its BAT changes come back through), talk to it, stop it. How its worker is started
// is the platform's part (PoolPlatform: pool-node.ts, pool-browser.ts).

import type * as Comlink from 'comlink';
import { transfer, releaseProxy } from 'comlink';
import type { PloopImage } from '../engine/image.js';
import type { WasmCore } from '../core/wasm.js';
import { BatMap } from '../core/bat-map.js';
import { PloopError } from '../errors.js';
import type { Attachment } from '../engine/writeback.js';
import type { BlockStore } from '../stores/block-store.js';
import type { AttachMessage, RunnerApi, StoreSpec } from './protocol.js';
import { initRing, ringBytes } from './ring.js';
import { RingCaller, type RingBell } from './ring-caller.js';

/** One started worker, as the platform hands it over. */
export interface RunnerLink {
  api: Comlink.Remote<RunnerApi>;
  terminate(): Promise<unknown> | void;
  /** Rejects if the worker fails to load or exits (where the platform can tell). */
  failure?: Promise<never>;
}

/** What differs between Node and the browser. */
export interface PoolPlatform {
  /** Start one runner worker. */
  spawn(): RunnerLink;
  /** Open a store from its spec in this thread (the coordinator's own handle). */
  openStore(spec: StoreSpec): Promise<BlockStore>;
}

/** A started runner as the pool keeps it (internal). */
export interface Runner {
  link: RunnerLink;
  ring: RingCaller;
  ringAddress: number;
  /** The pool's doorbell (the same for every runner). */
  bell: RingBell;
  scratch: number;
  port: MessagePort;
}

/** A comlink call to a runner: an idle runner blocks in Atomics.wait, so wake it to listen. */
export function control<T>(r: Runner, call: () => Promise<T>): Promise<T> {
  const p = call();
  r.ring.poke();
  return p;
}

/** Start a runner of `image` serving `stores` through a ring of `slots` slots. */
export async function startRunner(platform: PoolPlatform, image: PloopImage, stores: StoreSpec[], bell: RingBell, slots: number, fastPath: boolean): Promise<Runner> {
  const core = image.bat.core;
  const link = platform.spawn();
  const scratch = core.alloc(BatMap.EXTENT_SCRATCH_BYTES);
  const ringAddress = core.alloc(ringBytes(slots), 64);
  initRing(core, ringAddress, bell.address, slots);
  const { port1, port2 } = new MessageChannel();
  // Attachments from this runner go to the image's writeback; completion goes back by id.
  port1.onmessage = (event: MessageEvent<AttachMessage>) => {
    const m = event.data;
    image.writeback.register(m.attachment as Attachment).then(
      () => port1.postMessage({ id: m.id }),
      (e: unknown) => {
        const err = e instanceof PloopError ? e : new PloopError('EIO', String(e));
        port1.postMessage({ id: m.id, error: err.toJSON() });
      },
    );
  };
  // Node: the port must not keep the process alive on its own (the worker does while open).
  (port1 as unknown as { unref?(): void }).unref?.();
  try {
    const init = link.api.init(transfer({
      module: core.module, memory: core.memory, ctx: image.bat.ctx, scratch, ring: ringAddress, size: image.size,
      topUnitBytes: image.geometry.unitBytes, stores, attachPort: port2, noFastPath: !fastPath,
    }, [port2]));
    // A worker that dies before it answers would leave the call waiting forever.
    await (link.failure ? Promise.race([init, link.failure]) : init);
  } catch (e) {
    await link.terminate();
    port1.close();
    core.free(scratch);
    core.free(ringAddress);
    throw e;
  }
  return { link, ring: new RingCaller(core, ringAddress, bell), ringAddress, bell, scratch, port: port1 };
}

/** Stop a runner whose ring has nothing in flight, and free its regions of the memory. */
export async function stopRunner(core: WasmCore, r: Runner): Promise<void> {
  r.ring.stop();
  await r.link.api.close();
  r.link.api[releaseProxy]();
  await r.link.terminate();
  r.port.close();
  core.free(r.scratch);
  core.free(r.ringAddress);
}

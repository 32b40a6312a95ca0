// SPDX-License-Identifier: MIT
// The body of a runner, the same in a Node worker_thread and a Web Worker: it instantiates the
// WebAssembly core over the shared memory, opens its own stores from their specs, serves its
// request ring (ring-server.ts) with ClusterIo, and sends its BAT changes to the coordinator's writeback
// as attachments over a MessagePort. Only the store opener differs per platform.

import { WasmCore } from '../core/wasm.js';
import { BatMap } from '../core/bat-map.js';
import { ClusterIo } from '../engine/cluster-io.js';
import { PloopError, type PloopErrorCode } from '../errors.js';
import type { Attachment } from '../engine/writeback.js';
import type { BlockStore } from '../stores/block-store.js';
import type { AttachDone, RunnerApi, RunnerInit, StoreSpec } from './protocol.js';
import { OP_READ, OP_WRITE, OP_DISCARD } from './ring.js';
import { RingServer, type RingFastHandler } from './ring-server.js';
import { FastPath, portableSyncAccess, type SyncAccess } from './fast-path.js';

export type StoreOpener = (spec: StoreSpec) => Promise<BlockStore>;
/** Synchronous access to an opened store for the fast path (null: the generic path serves it). */
export type SyncAccessOpener = (spec: StoreSpec, store: BlockStore) => SyncAccess | null;

/**
 * A runner's API (to expose with comlink on the worker's endpoint). `syncAccess` gives the
 * fast path its synchronous stores (default: the portable ones, a SharedMemoryStore).
 */
export function createRunner(openStore: StoreOpener, syncAccess: SyncAccessOpener = (_spec, store) => portableSyncAccess(store)): RunnerApi {
  let core: WasmCore;
  let io: ClusterIo;
  let ring: RingServer | null = null;
  let serving: Promise<void> = Promise.resolve();
  let stores: BlockStore[] = [];
  let access: Array<SyncAccess | null> = [];
  let fastPath: FastPath | null = null;
  let attachPort: MessagePort;
  let nextId = 0;
  const pending = new Map<number, { resolve(): void; reject(e: unknown): void }>();

  const attach = (attachment: Attachment): Promise<void> => {
    const id = nextId++;
    const done = new Promise<void>((resolve, reject) => pending.set(id, { resolve, reject }));
    attachPort.postMessage({ id, attachment });
    return done;
  };
  // The coordinator may have grown the memory since (a new, longer buffer object): look again
  // only when the region lies past the buffer seen last (memory.buffer is a call into the engine).
  let memoryBuffer: ArrayBufferLike | null = null;
  const view = (buffer: number, length: number) => {
    if (memoryBuffer === null || buffer + length > memoryBuffer.byteLength) memoryBuffer = core.memory.buffer;
    return new Uint8Array(memoryBuffer, buffer, length);
  };

  return {
    async init(init: RunnerInit) {
      core = await WasmCore.instantiate(init.module, init.memory);
      const bat = BatMap.attach(core, init.ctx, init.scratch);
      stores = [];
      try {
        for (const s of init.stores) stores.push(await openStore(s));
      } catch (e) {
        for (const s of stores) await s.close().catch(() => {});
        throw e;
      }
      attachPort = init.attachPort;
      attachPort.onmessage = (event: MessageEvent<AttachDone>) => {
        const m = event.data;
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (m.error) p.reject(new PloopError(m.error.code as PloopErrorCode, m.error.message, m.error.data));
        else p.resolve();
      };
      io = new ClusterIo({ bat, stores, size: init.size, topUnitBytes: init.topUnitBytes, attach });
      access = init.stores.map((spec, i) => syncAccess(spec, stores[i]));
      const fp = new FastPath({ core, ctx: init.ctx, scratch: init.scratch, topLevel: bat.topLevel, access, stats: io.stats });
      fastPath = fp.useful && !init.noFastPath ? fp : null;
      const fast: RingFastHandler | null = fastPath === null ? null : (op, offset, length, buffer) =>
        op === OP_READ ? fp.read(offset, length, buffer) : op === OP_WRITE ? fp.write(offset, length, buffer) : false;
      ring = new RingServer(core, init.ring, (op, offset, length, buffer) => {
        if (op === OP_READ) return io.read(offset, view(buffer, length));
        if (op === OP_WRITE) return io.write(offset, view(buffer, length));
        if (op === OP_DISCARD) return io.discard(offset, length);
        return Promise.reject(new PloopError('EINVAL', `runner: unknown ring op ${op}`, { op }));
      }, fast);
      serving = ring.serve();
    },
    stats() {
      return { ...io.stats, requests: ring?.requests ?? 0, fastRequests: fastPath?.served ?? 0, lateWakeups: ring?.lateWakeups ?? 0, sleeps: ring?.sleeps ?? 0 };
    },
    async close() {
      // The coordinator stopped the ring after its last request completed.
      await serving;
      for (const a of access) a?.close?.();
      access = [];
      for (const s of stores) await s.close();
      stores = [];
      attachPort.close();
    },
  };
}

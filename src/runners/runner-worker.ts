// SPDX-License-Identifier: MIT
// A runner: a worker (worker_threads in Node) that instantiates the WebAssembly core over the
// shared memory, opens its own handles on the image's files and does the request work
// (ClusterIo) for the clusters the coordinator routes to it. Its BAT changes go back to the
// coordinator's writeback as attachments.

import * as Comlink from 'comlink';
import { parentPort } from 'node:worker_threads';
import { WasmCore } from '../core/wasm.js';
import { BatMap } from '../core/bat-map.js';
import { ClusterIo, settleAll } from '../engine/cluster-io.js';
import { NodeFileStore } from '../stores/node-fs.js';
import { PloopError, type PloopErrorCode } from '../errors.js';
import type { Attachment } from '../engine/writeback.js';
import type { BlockStore } from '../stores/block-store.js';
import type { AttachDone, Piece, RunnerApi, RunnerInit, RunnerOutcome } from './protocol.js';
import { nodeEndpoint } from './node-endpoint.js';

let core: WasmCore;
let io: ClusterIo;
let stores: BlockStore[] = [];
let attachPort: MessagePort;
let nextId = 0;
const pending = new Map<number, { resolve(): void; reject(e: unknown): void }>();

function attach(attachment: Attachment): Promise<void> {
  const id = nextId++;
  const done = new Promise<void>((resolve, reject) => pending.set(id, { resolve, reject }));
  attachPort.postMessage({ id, attachment });
  return done;
}

function view(buffer: number, p: Piece): Uint8Array {
  // A fresh view each time: the memory may have grown (a new buffer object) since the last one.
  return new Uint8Array(core.memory.buffer, buffer + p.bufferOffset, p.length);
}

/** Errors cross the thread boundary as data, so the coordinator rebuilds the same PloopError. */
async function outcome(work: Promise<void>): Promise<RunnerOutcome> {
  try {
    await work;
    return {};
  } catch (e) {
    const err = e instanceof PloopError ? e : new PloopError('EIO', e instanceof Error ? e.message : String(e));
    return { error: err.toJSON() };
  }
}

const api: RunnerApi = {
  async init(init: RunnerInit) {
    core = await WasmCore.instantiate(init.module, init.memory);
    const bat = BatMap.attach(core, init.ctx, init.scratch);
    stores = [];
    for (const s of init.stores) stores.push(await NodeFileStore.open(s.path, { writable: s.writable }));
    attachPort = init.attachPort;
    (attachPort as unknown as { on(e: string, f: (m: AttachDone) => void): void }).on('message', (m: AttachDone) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error) p.reject(new PloopError(m.error.code as PloopErrorCode, m.error.message, m.error.data));
      else p.resolve();
    });
    io = new ClusterIo({ bat, stores, size: init.size, topUnitBytes: init.topUnitBytes, attach });
  },
  read: (pieces, buffer) => outcome(settleAll(pieces.map((p) => io.read(p.offset, view(buffer, p))))),
  write: (pieces, buffer) => outcome(settleAll(pieces.map((p) => io.write(p.offset, view(buffer, p))))),
  discard: (pieces) => outcome(settleAll(pieces.map((p) => io.discard(p.offset, p.length)))),
  stats() {
    return { ...io.stats };
  },
  async close() {
    for (const s of stores) await s.close();
    stores = [];
    attachPort.close();
  },
};

Comlink.expose(api, nodeEndpoint(parentPort!));

// SPDX-License-Identifier: MIT
// Opening a store from its StoreSpec, for the kinds every platform has (browser-safe). The
// Node runner adds 'node-fs' on top (runner-node-worker.ts, pool-node.ts).

import type { BlockStore } from '../stores/block-store.js';
import { SharedMemoryStore } from '../stores/shared-memory.js';
import { BlobStore } from '../stores/blob.js';
import { HttpRangeStore } from '../stores/http-range.js';
import { OpfsStore } from '../stores/opfs.js';
import { PloopError } from '../errors.js';
import type { StoreSpec } from './protocol.js';

/**
 * Open `spec` in this thread. `role` 'coordinator' is the thread that opened the image: for a
 * shared writable OPFS file it holds the file's Web Lock for the image's life, and its runners
 * ('runner', the default) open their handles under that lock.
 */
export async function openPortableStore(spec: StoreSpec, role: 'coordinator' | 'runner' = 'runner'): Promise<BlockStore> {
  switch (spec.kind) {
    case 'shared-memory':
      return SharedMemoryStore.attach(spec);
    case 'blob':
      return new BlobStore(spec.blob, { name: spec.name });
    case 'http':
      return HttpRangeStore.open(spec.url, spec.options);
    case 'opfs': {
      // A writable file is opened by the coordinator and every runner only with shared
      // ('readwrite-unsafe') handles: an exclusive one would refuse the others, and so would a
      // 'read-only' one (a runner of an image opened read-only from a writable spec).
      const shared = !!spec.shared;
      const store = await OpfsStore.open(spec.path, { writable: spec.writable, shared, lock: role === 'coordinator' });
      if (shared && !store.shared) {
        await store.close();
        throw new PloopError('ENOTSUP', `opfs: ${spec.path} cannot be shared by runners: this browser granted an exclusive handle instead of a 'readwrite-unsafe' one`, { field: 'shared', value: true });
      }
      return store;
    }
    default:
      throw new PloopError('ENOTSUP', `store spec kind "${(spec as { kind: string }).kind}" cannot be opened here (kinds: shared-memory, blob, http, opfs${typeof process !== 'undefined' && process.versions?.node ? ', node-fs' : ''})`, { field: 'kind', value: (spec as { kind: string }).kind });
  }
}

/**
 * True when runners in other threads can open `spec` beside the coordinator and see its
 * writes: not a shared-memory store that fell back to a private ArrayBuffer, not a writable
 * OPFS file without `shared` (its sync handle would be exclusive; see shareWritableOpfs).
 */
export function specCrossesThreads(spec: StoreSpec): boolean {
  if (spec.kind === 'shared-memory') return typeof SharedArrayBuffer !== 'undefined' && spec.buffer instanceof SharedArrayBuffer;
  if (spec.kind === 'opfs') return !spec.writable || !!spec.shared;
  return true;
}

/**
 * Mark writable OPFS specs `shared` where the browser grants 'readwrite-unsafe' handles
 * (`supported`), so that runners can write them; a spec that says `shared` itself is left alone.
 * Where it does not, they stay exclusive and the pool serves them in this thread.
 */
export function shareWritableOpfs(specs: StoreSpec[], supported: boolean): StoreSpec[] {
  return specs.map((s) => (s.kind === 'opfs' && s.writable && s.shared === undefined ? { ...s, shared: supported } : s));
}

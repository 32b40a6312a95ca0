// SPDX-License-Identifier: MIT
// Opening a store from its StoreSpec, for the kinds every platform has (browser-safe). The
// Node runner adds 'node-fs' on top (runner-worker.ts, pool.ts).

import type { BlockStore } from '../stores/block-store.js';
import { SharedMemoryStore } from '../stores/shared-memory.js';
import { PloopError } from '../errors.js';
import type { StoreSpec } from './protocol.js';

export async function openPortableStore(spec: StoreSpec): Promise<BlockStore> {
  switch (spec.kind) {
    case 'shared-memory':
      return SharedMemoryStore.attach(spec);
    default:
      throw new PloopError('ENOTSUP', `store spec kind "${spec.kind}" cannot be opened here (supported: shared-memory${typeof process !== 'undefined' && process.versions?.node ? ', node-fs' : ''})`, { field: 'kind', value: spec.kind });
  }
}

/** True when a runner in another thread can open `spec` and see the coordinator's writes. */
export function specCrossesThreads(spec: StoreSpec): boolean {
  if (spec.kind === 'shared-memory') return typeof SharedArrayBuffer !== 'undefined' && spec.buffer instanceof SharedArrayBuffer;
  return true;
}

// SPDX-License-Identifier: MIT
// Opening a store from its StoreSpec, for the kinds every platform has (browser-safe). The
// Node runner adds 'node-fs' on top (runner-worker.ts, pool.ts).

import type { BlockStore } from '../stores/block-store.js';
import { SharedMemoryStore } from '../stores/shared-memory.js';
import { BlobStore } from '../stores/blob.js';
import { HttpRangeStore } from '../stores/http-range.js';
import { OpfsStore } from '../stores/opfs.js';
import { PloopError } from '../errors.js';
import type { StoreSpec } from './protocol.js';

export async function openPortableStore(spec: StoreSpec): Promise<BlockStore> {
  switch (spec.kind) {
    case 'shared-memory':
      return SharedMemoryStore.attach(spec);
    case 'blob':
      return new BlobStore(spec.blob, { name: spec.name });
    case 'http':
      return HttpRangeStore.open(spec.url);
    case 'opfs':
      // OpfsStore holds an exclusive handle when writable, so only the read-only kind can be
      // opened by the coordinator and every runner at once (see specCrossesThreads).
      return OpfsStore.open(spec.path, { writable: spec.writable });
    default:
      throw new PloopError('ENOTSUP', `store spec kind "${(spec as { kind: string }).kind}" cannot be opened here (kinds: shared-memory, blob, http, opfs${typeof process !== 'undefined' && process.versions?.node ? ', node-fs' : ''})`, { field: 'kind', value: (spec as { kind: string }).kind });
  }
}

/**
 * True when runners in other threads can open `spec` beside the coordinator and see its
 * writes: not a shared-memory store that fell back to a private ArrayBuffer, not a writable
 * OPFS file (its sync handle is exclusive).
 */
export function specCrossesThreads(spec: StoreSpec): boolean {
  if (spec.kind === 'shared-memory') return typeof SharedArrayBuffer !== 'undefined' && spec.buffer instanceof SharedArrayBuffer;
  if (spec.kind === 'opfs') return !spec.writable;
  return true;
}

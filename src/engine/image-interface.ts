// SPDX-License-Identifier: MIT
// What every image offers its users, whether one runner serves it (PloopImage) or a pool of
// runner workers does (ParallelImage): the block-device facade, the v86 adapter, the raw export,
// inspection and the file browser take this, so they work over either.

import type { ReadRequest, WriteRequest } from './batch.js';

export interface Image {
  /** Virtual disk size in bytes. */
  readonly size: number;
  /** Cluster size in bytes (the unit of allocation and discard). */
  readonly clusterSize: number;
  readonly writable: boolean;
  read(offset: number, length: number): Promise<Uint8Array>;
  readInto(offset: number, into: Uint8Array): Promise<void>;
  /** Resolves once the data and the BAT page that maps it are written (durable after flush). */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Many reads in one call (each request's own buffer); rejects with the first failure after all settled. */
  readMany(requests: readonly ReadRequest[]): Promise<void>;
  writeMany(requests: readonly WriteRequest[]): Promise<void>;
  /** Unmap the whole clusters inside the range (they read zeros). */
  discard(offset: number, length: number): Promise<void>;
  /** Make every write that resolved before the call durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

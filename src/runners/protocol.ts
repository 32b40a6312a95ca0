// SPDX-License-Identifier: MIT
// Types exchanged between the coordinator (ParallelImage) and its runners. Control (init, stats,
// close) goes through comlink; requests go through a ring per runner in the shared WebAssembly
// memory (ring.ts), and their payloads stay in that memory, so no data is copied through
// structured clone.

import type { HttpRangeOptions } from '../stores/http-range.js';
import type { Attachment } from '../engine/writeback.js';
import type { SharedMemorySpec } from '../stores/shared-memory.js';

/**
 * How a runner opens one delta's store itself. Every kind crosses to a worker by structured
 * clone: a path (Node), a SharedArrayBuffer (shared, not copied), a Blob/File (cloned by
 * reference), a URL, an OPFS path.
 */
export type HttpSpecOptions = Omit<HttpRangeOptions, 'fetch'>;

export type StoreSpec =
  /** syncMaxBytes: a runner serves requests up to this size with blocking pread/pwrite (its thread has nothing else to do). */
  | { kind: 'node-fs'; path: string; writable: boolean; syncMaxBytes?: number }
  | SharedMemorySpec
  | { kind: 'blob'; blob: Blob; name?: string }
  /** options: HttpRangeStore's, less `fetch` (a function does not cross to a worker). */
  | { kind: 'http'; url: string; options?: HttpSpecOptions }
  /** shared: writable by the coordinator and every runner at once ('readwrite-unsafe' handles; store-spec.ts). */
  | { kind: 'opfs'; path: string; writable: boolean; shared?: boolean };

export interface RunnerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The image's BAT map context in the shared memory. */
  ctx: number;
  /** This runner's own scratch region (BatMap.EXTENT_SCRATCH_BYTES). */
  scratch: number;
  /** This runner's request ring in the shared memory (ring.ts). */
  ring: number;
  size: number;
  topUnitBytes: number;
  /** Stores of every level, base first. */
  stores: StoreSpec[];
  /** Port on which the runner sends attachments and receives their completion. */
  attachPort: MessagePort;
  /** Serve every request through ClusterIo (ParallelOpenOptions.fastPath false: benches, tests). */
  noFastPath?: boolean;
}

export interface RunnerCounters {
  dataWrites: number;
  clustersAllocated: number;
  clustersCopied: number;
  /** Allocations into virgin slots (no flush before their BAT write). */
  virginAllocations: number;
  /** Requests served from the ring. */
  requests: number;
  /** Of those, requests the synchronous fast path served (fast-path.ts). */
  fastRequests: number;
  /** Times the runner woke by its re-check timeout although a request was waiting (ring.ts). */
  lateWakeups: number;
  /** Times the runner went to sleep waiting for submissions (wake-ups cost more than requests). */
  sleeps: number;
}

export interface RunnerApi {
  init(init: RunnerInit): Promise<void>;
  stats(): RunnerCounters;
  /** Stop serving the ring (the coordinator set its stop word) and close the stores. */
  close(): Promise<void>;
}

/** runner → coordinator */
export interface AttachMessage {
  id: number;
  attachment: Attachment;
}

/** coordinator → runner */
export interface AttachDone {
  id: number;
  error?: { code: string; message: string; data?: Record<string, unknown> };
}

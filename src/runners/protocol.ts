// SPDX-License-Identifier: MIT
// Types exchanged between the coordinator (RunnerPool / ParallelImage) and its runners. Control
// goes through comlink; request payloads stay in the shared WebAssembly memory (a region the
// coordinator allocates per request), so no data is copied through structured clone.

import type { Attachment } from '../engine/writeback.js';

/** How a runner opens one delta's store itself. */
export type StoreSpec = { kind: 'node-fs'; path: string; writable: boolean };

export interface RunnerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The image's BAT map context in the shared memory. */
  ctx: number;
  /** This runner's own scratch region (BatMap.EXTENT_SCRATCH_BYTES). */
  scratch: number;
  size: number;
  topUnitBytes: number;
  /** Stores of every level, base first. */
  stores: StoreSpec[];
  /** Port on which the runner sends attachments and receives their completion. */
  attachPort: MessagePort;
}

/** One piece of a request: bytes [offset, offset + length) of the disk, at `bufferOffset` of the request's region. */
export interface Piece {
  offset: number;
  length: number;
  bufferOffset: number;
}

/** A request's result: errors travel as PloopError JSON. */
export interface RunnerOutcome {
  error?: { code: string; message: string; data?: Record<string, unknown> };
}

export interface RunnerApi {
  init(init: RunnerInit): Promise<void>;
  read(pieces: Piece[], buffer: number): Promise<RunnerOutcome>;
  write(pieces: Piece[], buffer: number): Promise<RunnerOutcome>;
  discard(pieces: Piece[]): Promise<RunnerOutcome>;
  stats(): { dataWrites: number; clustersAllocated: number; clustersCopied: number };
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

// SPDX-License-Identifier: MIT
// The runner pool for the page's long reads: when the page is cross-origin isolated and every
// delta can be opened by a worker too (a File/Blob or an HTTP URL), a ParallelImage of module
// Web Workers over the shared WASM memory serves the reads; otherwise the open image does, in
// the page's thread (the single-runner fallback).

import { ParallelImage, sharedMemoryAvailable, type BlockStore, type StoreSpec } from '../../src/browser.js';

/** Runners the page starts: the cores there are, at most 4. */
export const RUNNERS = Math.max(1, Math.min(4, globalThis.navigator?.hardwareConcurrency || 2));

export function describeMode(): string {
  return sharedMemoryAvailable() ? `${RUNNERS} runners (shared memory)` : 'single in-thread runner';
}


/** A read-only runner pool over `deltas` (base first), or null when runners cannot open them here. */
export async function openRunnerPool(deltas: BlockStore[]): Promise<ParallelImage | null> {
  if (!sharedMemoryAvailable()) return null;
  // Each store says how a worker opens it (BlockStore.spec): a File/Blob, an HTTP URL with its options.
  const specs = deltas.map((d) => d.spec?.() ?? null);
  if (specs.some((s) => s === null)) return null;
  return ParallelImage.open(specs as StoreSpec[], { runners: RUNNERS, onWarning: () => {} });
}

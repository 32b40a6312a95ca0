// Small tools for tests that force interleavings between runners and the writeback
// coordinator: observe whether a request has settled, wait for a state with a deadline (a
// broken rule must fail the test, never hang it), and read BAT entries straight from a file.

import { readFile } from 'node:fs/promises';
import { createImage, type PloopFormat } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A request whose outcome the test can look at without awaiting it. */
export interface Tracked<T = void> {
  readonly promise: Promise<T>;
  readonly settled: boolean;
  readonly resolved: boolean;
  readonly error: unknown;
}

export function track<T>(p: Promise<T>): Tracked<T> {
  const t = { promise: p, settled: false, resolved: false, error: undefined as unknown };
  p.then(() => {
    t.settled = true;
    t.resolved = true;
  }, (e: unknown) => {
    t.settled = true;
    t.error = e;
  });
  return t;
}

/** Resolve with `p`, or fail naming `what` after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `condition` every 2 ms until it holds; fail naming `what` after `ms`. */
export async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms`);
    await sleep(2);
  }
}

/** BAT entries 0..count-1 as they are in the file now. */
export async function fileBatEntries(path: string, count: number): Promise<number[]> {
  const bytes = await readFile(path);
  return Array.from({ length: count }, (_, i) => bytes.readUInt32LE(64 + 4 * i));
}

/** An empty image file made by our createImage (byte-identical to qemu-img create). */
export async function createImageFile(path: string, size: number, clusterSize: number, format: PloopFormat = 'v2'): Promise<void> {
  const store = await NodeFileStore.open(path, { create: true });
  try {
    await createImage(store, { size, clusterSize, format });
  } finally {
    await store.close();
  }
}

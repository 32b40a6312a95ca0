// Opening images for tests and reading whole virtual disks.

import { PloopImage, checkImage, type OpenOptions, type CheckReport } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';

/** Open an image file through NodeFileStore (read-only unless `writable`). */
export async function openFile(path: string, options: OpenOptions = {}): Promise<PloopImage> {
  const store = await NodeFileStore.open(path, { writable: !!options.writable });
  try {
    return await PloopImage.open(store, { onWarning: () => {}, ...options });
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** The whole virtual disk as our engine reads it, in 8 MiB requests. */
export async function readWhole(image: PloopImage): Promise<Uint8Array> {
  const out = new Uint8Array(image.size);
  const step = 8 << 20;
  for (let at = 0; at < image.size; at += step) {
    await image.readInto(at, out.subarray(at, Math.min(image.size, at + step)));
  }
  return out;
}

/** Read an image file read-only and return its whole virtual disk. */
export async function readFileImage(path: string): Promise<Uint8Array> {
  const image = await openFile(path);
  try {
    return await readWhole(image);
  } finally {
    await image.close();
  }
}

/** Our check of an image file (read-only store unless repairing). */
export async function checkFile(path: string, repair = false): Promise<CheckReport> {
  const store = await NodeFileStore.open(path, { writable: repair });
  try {
    return await checkImage(store, { repair });
  } finally {
    await store.close();
  }
}

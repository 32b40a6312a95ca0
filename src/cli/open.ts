// SPDX-License-Identifier: MIT
// Opening image files for the CLI: the file store, and detecting ploop vs raw by signature.

import { NodeFileStore } from '../stores/node-fs.js';
import { PloopImage, type OpenOptions } from '../engine/image.js';
import { SIGNATURE_V1, SIGNATURE_V2 } from '../format/header.js';

/** Open a ploop image file. */
export async function openImageFile(path: string, options: OpenOptions = {}): Promise<PloopImage> {
  const store = await NodeFileStore.open(path, { writable: !!options.writable });
  try {
    return await PloopImage.open(store, { onWarning: (m) => process.stderr.write(`ploop-wasm: warning: ${m}\n`), ...options });
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** True when the file starts with a ploop signature. */
export async function isPloopFile(path: string): Promise<boolean> {
  const store = await NodeFileStore.open(path);
  try {
    const head = new Uint8Array(16);
    const n = await store.read(0, head);
    const sig = String.fromCharCode(...head.subarray(0, n));
    return sig === SIGNATURE_V1 || sig === SIGNATURE_V2;
  } finally {
    await store.close();
  }
}

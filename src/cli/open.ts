// SPDX-License-Identifier: MIT
// Opening what the CLI is given: an image file, or a ploop disk folder (or its
// DiskDescriptor.xml) whose whole delta stack is opened; and telling ploop from raw input.

import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { NodeFileStore } from '../stores/node-fs.js';
import { NodeDirectory } from '../stores/node-dir.js';
import { PloopImage, type OpenOptions } from '../engine/image.js';
import { openStackDir, DESCRIPTOR_FILE } from '../engine/stack.js';
import { SIGNATURE_V1, SIGNATURE_V2 } from '../format/header.js';

const warnOnStderr = (m: string) => process.stderr.write(`ploop-wasm: warning: ${m}\n`);

/** The disk folder `path` names (a folder, or its DiskDescriptor.xml), or null for a plain file. */
export async function stackDirOf(path: string): Promise<NodeDirectory | null> {
  if (basename(path) === DESCRIPTOR_FILE) return new NodeDirectory(dirname(path));
  try {
    if ((await stat(path)).isDirectory()) return new NodeDirectory(path);
  } catch {
    // a missing path is reported by the open that follows, with its name
  }
  return null;
}

/** Open a ploop image file, or a disk folder's whole stack (its top is the writable delta). */
export async function openImageFile(path: string, options: OpenOptions = {}): Promise<PloopImage> {
  const opts = { onWarning: warnOnStderr, ...options };
  const dir = await stackDirOf(path);
  if (dir) return openStackDir(dir, opts);
  const store = await NodeFileStore.open(path, { writable: !!options.writable });
  try {
    return await PloopImage.open(store, opts);
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** True when `path` is a ploop image (it starts with a ploop signature) or a disk folder. */
export async function isPloopFile(path: string): Promise<boolean> {
  if (await stackDirOf(path)) return true;
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

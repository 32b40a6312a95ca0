// SPDX-License-Identifier: MIT
// Opening what the CLI is given: an image file, or a ploop disk folder (or its
// DiskDescriptor.xml) whose whole delta stack is opened; and telling ploop from raw input.

import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { NodeFileStore } from '../stores/node-fs.js';
import { NodeDirectory } from '../stores/node-dir.js';
import { PloopImage, type OpenOptions } from '../engine/image.js';
import { SIGNATURE_V1, SIGNATURE_V2 } from '../format/header.js';

/**
 * engine/stack.ts's DESCRIPTOR_FILE, not imported from there: that module brings the
 * descriptor's XML parser (195 KiB of fast-xml-parser), which a start that opens a plain image
 * file should not read and compile. Disk folders import it when they are opened.
 */
const DESCRIPTOR_FILE = 'DiskDescriptor.xml';

export const warnOnStderr = (m: string) => process.stderr.write(`ploop-wasm: warning: ${m}\n`);

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

/**
 * A disk folder's descriptor and its delta chain (base first), importing the XML parser only
 * now (see DESCRIPTOR_FILE).
 */
export async function readStackDescriptor(dir: NodeDirectory) {
  const [{ readDescriptor }, { descriptorChain }] = await Promise.all([import('../engine/stack.js'), import('../format/descriptor.js')]);
  const descriptor = await readDescriptor(dir);
  return { descriptor, chain: descriptorChain(descriptor) };
}

/** Open a ploop image file, or a disk folder's whole stack (its top is the writable delta). */
export async function openImageFile(path: string, options: OpenOptions = {}): Promise<PloopImage> {
  const opts = { onWarning: warnOnStderr, ...options };
  const dir = await stackDirOf(path);
  if (dir) {
    const { openStackDir } = await import('../engine/stack.js');
    return openStackDir(dir, opts);
  }
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

/** What the I/O commands need of an image, served in this thread or by runners. */
export interface CliImage {
  readonly size: number;
  readInto(offset: number, into: Uint8Array): Promise<void>;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
  counters(): Promise<{ dataWrites: number; batPageWrites: number; clustersAllocated: number; clustersReleased: number }>;
}

/**
 * Open for the I/O commands: with `runners` undefined in this thread, otherwise with that many
 * runner workers (0 = the in-thread fallback of the runner pool).
 */
export async function openForIo(path: string, options: { writable?: boolean; runners?: number }): Promise<CliImage> {
  if (options.runners === undefined) {
    const image = await openImageFile(path, { writable: options.writable });
    return Object.assign(image, { counters: async () => image.stats });
  }
  const dir = await stackDirOf(path);
  let paths = [path];
  // A disk folder is locked as openStackDir locks it: the runners open its files by path.
  const lock = dir && options.writable ? await dir.lockForWriting() : null;
  if (lock?.warning) warnOnStderr(lock.warning);
  try {
    if (dir) {
      if (!options.writable) {
        const writer = await dir.writerWarning();
        if (writer) warnOnStderr(writer);
      }
      const [{ readDescriptor }, { descriptorChain }] = await Promise.all([import('../engine/stack.js'), import('../format/descriptor.js')]);
      paths = descriptorChain(await readDescriptor(dir)).map((d) => dir.path(d.file));
    }
    // Imported here, not at the top: the runner pool brings worker_threads and its own modules,
    // which the commands that never start runners should not load at start-up.
    const { ParallelImage } = await import('../runners/pool-node.js');
    const image = await ParallelImage.open(paths, { writable: options.writable, runners: options.runners, onWarning: warnOnStderr });
    const close = image.close.bind(image);
    return Object.assign(image, {
      counters: () => image.stats(),
      close: async () => {
        try {
          await close();
        } finally {
          await lock?.release();
        }
      },
    });
  } catch (e) {
    await lock?.release();
    throw e;
  }
}

// SPDX-License-Identifier: MIT
// Saving a stream as a download without holding it in memory: the bytes go into a file of the
// origin-private file system first (a File from it is backed by disk, so a 4 GiB file costs
// no memory), and that file is offered as the download. Without OPFS the chunks become a Blob,
// which Chromium pages out to disk past its memory limit.

import { offerBlob } from '../demo/export.js';

const DOWNLOADS_DIR = 'ploop-wasm-downloads';
/** A finished download file is removed after this long (the browser reads it meanwhile). */
const KEEP_MS = 10 * 60_000;

export async function saveStream(name: string, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<void> {
  const opfs = await opfsTarget(name);
  if (!opfs) {
    const parts: Uint8Array<ArrayBuffer>[] = [];
    for await (const chunk of chunks) {
      signal.throwIfAborted();
      parts.push(chunk as Uint8Array<ArrayBuffer>);
    }
    offerBlob(new Blob(parts, { type: 'application/octet-stream' }), name);
    return;
  }
  const { dir, entry, handle } = opfs;
  const writable = await handle.createWritable();
  try {
    for await (const chunk of chunks) {
      signal.throwIfAborted();
      await writable.write(chunk as Uint8Array<ArrayBuffer>);
    }
    await writable.close();
  } catch (e) {
    await writable.abort().catch(() => {});
    await dir.removeEntry(entry).catch(() => {});
    throw e;
  }
  offerBlob(await handle.getFile(), name);
  setTimeout(() => void dir.removeEntry(entry).catch(() => {}), KEEP_MS);
}

async function opfsTarget(name: string): Promise<{ dir: FileSystemDirectoryHandle; entry: string; handle: FileSystemFileHandle } | null> {
  try {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle(DOWNLOADS_DIR, { create: true });
    const entry = `${Date.now()}-${Math.random().toString(36).slice(2)}-${name.replace(/[^\w.-]+/g, '_')}`;
    const handle = await dir.getFileHandle(entry, { create: true });
    if (typeof handle.createWritable !== 'function') return null;
    return { dir, entry, handle };
  } catch {
    return null;
  }
}

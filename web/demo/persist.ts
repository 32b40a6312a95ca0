// SPDX-License-Identifier: MIT
// Saving the page's disk folder in the browser and reopening it after a reload: every file of
// the workspace (deltas and DiskDescriptor.xml) under images/NAME/ in the origin-private file
// system, or as Blobs keyed "NAME/FILE" in an IndexedDB store (idb-keyval). Copies are chunked
// so that they report progress and stop when cancelled.

import { createStore, set, get, keys, delMany, type UseStore } from 'idb-keyval';
import { MemoryStore, PloopError } from '../../src/browser.js';
import { Workspace } from './workspace.js';

export type Backend = 'opfs' | 'idb';
export interface StoredImage {
  backend: Backend;
  name: string;
  files: string[];
}
export type Progress = (done: number, total: number) => void;

const CHUNK_BYTES = 4 << 20;
const TEXT_PREFIX = 'text:';
let idbStore: UseStore | null = null;
const idb = () => (idbStore ??= createStore('ploop-demo', 'images'));

interface DirectoryEntries {
  keys(): AsyncIterable<string>;
}

async function opfsRoot(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  if (!navigator.storage?.getDirectory) throw new PloopError('ENOTSUP', 'this browser has no origin-private file system (navigator.storage.getDirectory)');
  const root = await navigator.storage.getDirectory();
  try {
    return await root.getDirectoryHandle('images', { create });
  } catch (e) {
    if (!create && (e as DOMException).name === 'NotFoundError') return null;
    throw e;
  }
}

export function checkName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name.startsWith('.')) {
    throw new PloopError('EINVAL', `stored image name ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_' or '-' (not starting with '.')`, { name });
  }
  return name;
}

/** Read a workspace file whole, chunk by chunk. */
async function fileBytes(ws: Workspace, file: string, signal: AbortSignal, tick: (n: number) => void): Promise<Uint8Array> {
  const store = ws.files.get(file)!;
  const out = new Uint8Array(await store.size());
  for (let pos = 0; pos < out.length; pos += CHUNK_BYTES) {
    signal.throwIfAborted();
    const n = Math.min(CHUNK_BYTES, out.length - pos);
    await store.read(pos, out.subarray(pos, pos + n));
    tick(n);
  }
  return out;
}

/** Save every file of `ws` as `name` in `backend`, replacing a previous copy. */
export async function saveWorkspace(ws: Workspace, backend: Backend, name: string, signal: AbortSignal, progress: Progress): Promise<void> {
  checkName(name);
  let total = 0;
  for (const s of ws.files.values()) total += await s.size();
  let done = 0;
  const tick = (n: number) => progress((done += n), total);
  await removeStored(backend, name);
  if (backend === 'opfs') {
    const dir = await (await opfsRoot(true))!.getDirectoryHandle(name, { create: true });
    const put = async (file: string, data: Uint8Array | string) => {
      const w = await (await dir.getFileHandle(file, { create: true })).createWritable();
      await w.write(typeof data === 'string' ? data : new Blob([data as Uint8Array<ArrayBuffer>]));
      await w.close();
    };
    for (const file of ws.files.keys()) await put(file, await fileBytes(ws, file, signal, tick));
    for (const [file, text] of ws.texts) await put(TEXT_PREFIX + file, text);
  } else {
    for (const file of ws.files.keys()) await set(`${name}/${file}`, new Blob([(await fileBytes(ws, file, signal, tick)) as Uint8Array<ArrayBuffer>]), idb());
    for (const [file, text] of ws.texts) await set(`${name}/${TEXT_PREFIX}${file}`, text, idb());
  }
}

/** Load a stored image into a fresh workspace (memory stores: writable, fast). */
export async function loadWorkspace(backend: Backend, name: string): Promise<Workspace> {
  const ws = new Workspace(`${backend}:${name}`);
  const put = async (entry: string, blob: Blob | string) => {
    if (entry.startsWith(TEXT_PREFIX)) ws.texts.set(entry.slice(TEXT_PREFIX.length), typeof blob === 'string' ? blob : await blob.text());
    else ws.files.set(entry, new MemoryStore(new Uint8Array(await (blob as Blob).arrayBuffer())));
  };
  if (backend === 'opfs') {
    const root = await opfsRoot(false);
    const dir = root && (await root.getDirectoryHandle(name).catch(() => null));
    if (!dir) throw new PloopError('EIO', `no image named ${name} in the origin-private file system`);
    for await (const entry of (dir as unknown as DirectoryEntries).keys()) await put(entry, await (await dir.getFileHandle(entry)).getFile());
  } else {
    const mine = (await keys(idb())).map(String).filter((k) => k.startsWith(`${name}/`));
    if (mine.length === 0) throw new PloopError('EIO', `no image named ${name} in IndexedDB`);
    for (const key of mine) await put(key.slice(name.length + 1), (await get(key, idb())) as Blob | string);
  }
  return ws;
}

export async function listStored(): Promise<StoredImage[]> {
  const out: StoredImage[] = [];
  try {
    const root = await opfsRoot(false);
    if (root) {
      for await (const name of (root as unknown as DirectoryEntries).keys()) {
        const dir = await root.getDirectoryHandle(name);
        const files: string[] = [];
        for await (const f of (dir as unknown as DirectoryEntries).keys()) if (!f.startsWith(TEXT_PREFIX)) files.push(f);
        out.push({ backend: 'opfs', name, files: files.sort() });
      }
    }
  } catch {
    // No OPFS here: list IndexedDB only.
  }
  const byName = new Map<string, string[]>();
  for (const key of (await keys(idb())).map(String)) {
    const slash = key.indexOf('/');
    const name = key.slice(0, slash);
    const file = key.slice(slash + 1);
    if (!byName.has(name)) byName.set(name, []);
    if (!file.startsWith(TEXT_PREFIX)) byName.get(name)!.push(file);
  }
  for (const [name, files] of byName) out.push({ backend: 'idb', name, files: files.sort() });
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.backend.localeCompare(b.backend));
}

export async function removeStored(backend: Backend, name: string): Promise<void> {
  if (backend === 'opfs') {
    const root = await opfsRoot(false);
    await root?.removeEntry(name, { recursive: true }).catch((e: DOMException) => {
      if (e.name !== 'NotFoundError') throw e;
    });
  } else {
    await delMany((await keys(idb())).map(String).filter((k) => k.startsWith(`${name}/`)), idb());
  }
}

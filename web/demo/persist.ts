// SPDX-License-Identifier: MIT
// Keeping the page's disk folder in the browser: every file (deltas and DiskDescriptor.xml) is
// copied into a disk folder of the library's OPFS or IndexedDB stores (OpfsDirectory,
// IdbDirectory) under ploop-demo/NAME, and an index of the saved names is kept next to them.
// Reopening opens that folder directly, so later changes are written there in place.

import { OpfsDirectory, IdbDirectory, PloopError, DESCRIPTOR_FILE, type DeltaDirectory } from '../../src/browser.js';
import { Workspace } from './workspace.js';

export type Backend = 'opfs' | 'idb';
export interface StoredImage {
  backend: Backend;
  name: string;
  files: string[];
}
export type Progress = (done: number, total: number) => void;

const ROOT = 'ploop-demo';
const INDEX_FILE = 'index.json';
const CHUNK_BYTES = 4 << 20;

export const backendLabel = (b: Backend) => (b === 'opfs' ? 'OPFS' : 'IndexedDB');

function folder(backend: Backend, path: string): Promise<DeltaDirectory> {
  return backend === 'opfs' ? OpfsDirectory.open(path) : IdbDirectory.open(path);
}

export function checkName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name.startsWith('.')) {
    throw new PloopError('EINVAL', `stored image name ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_' or '-' (not starting with '.')`, { name });
  }
  return name;
}

async function readIndex(backend: Backend): Promise<StoredImage[]> {
  const text = await (await folder(backend, ROOT)).readText(INDEX_FILE);
  if (!text) return [];
  try {
    return (JSON.parse(text) as StoredImage[]).filter((s) => s.backend === backend);
  } catch {
    throw new PloopError('EIO', `${backendLabel(backend)}: ${ROOT}/${INDEX_FILE} is not valid JSON; delete the site's data to start over`);
  }
}

async function writeIndex(backend: Backend, list: StoredImage[]): Promise<void> {
  await (await folder(backend, ROOT)).writeTextAtomic(INDEX_FILE, JSON.stringify(list));
}

/** Copy every file of `ws` into `backend` as `name`, replacing a previous copy. */
export async function saveWorkspace(ws: Workspace, backend: Backend, name: string, signal: AbortSignal, progress: Progress): Promise<void> {
  checkName(name);
  const path = `${ROOT}/${name}`;
  if (ws.backing?.name.endsWith(path) && ws.name.startsWith(backend)) {
    throw new PloopError('EINVAL', `${name} is open from ${backendLabel(backend)}: its changes are already saved there`);
  }
  let total = 0;
  for (const s of ws.files.values()) total += await s.size();
  let done = 0;
  await removeStored(backend, name);
  const dir = await folder(backend, path);
  for (const [file, source] of ws.files) {
    const target = await dir.openStore(file, { create: true });
    try {
      const size = await source.size();
      for (let pos = 0; pos < size; pos += CHUNK_BYTES) {
        signal.throwIfAborted();
        const chunk = new Uint8Array(Math.min(CHUNK_BYTES, size - pos));
        await source.read(pos, chunk);
        await target.write(pos, chunk);
        progress((done += chunk.length), total);
      }
      await target.truncate(size);
      await target.flush();
    } finally {
      await target.close();
    }
  }
  // The descriptor last: a folder without it is an unfinished copy and is not listed.
  for (const [file, text] of ws.texts) await dir.writeTextAtomic(file, text);
  if (!ws.texts.has(DESCRIPTOR_FILE)) throw new PloopError('EINVAL', 'save: the workspace has no DiskDescriptor.xml');
  const list = (await readIndex(backend)).filter((s) => s.name !== name);
  list.push({ backend, name, files: [...ws.files.keys()] });
  await writeIndex(backend, list);
}

/** The disk folder of a stored image (the v86 page boots it as a read-only base). */
export async function storedFolder(backend: Backend, name: string): Promise<DeltaDirectory> {
  checkName(name);
  if (!(await readIndex(backend)).some((s) => s.name === name)) throw new PloopError('EIO', `no image named ${name} in ${backendLabel(backend)}`);
  return folder(backend, `${ROOT}/${name}`);
}

/** Open a stored image in place (its top delta writable). */
export async function loadWorkspace(backend: Backend, name: string): Promise<Workspace> {
  return Workspace.fromDirectory(`${backend}:${name}`, await storedFolder(backend, name));
}

export async function listStored(): Promise<StoredImage[]> {
  const out: StoredImage[] = [];
  for (const backend of ['opfs', 'idb'] as const) {
    try {
      out.push(...(await readIndex(backend)));
    } catch (e) {
      // A browser without OPFS still lists its IndexedDB images (and the other way round).
      if (!(e instanceof PloopError) || e.code !== 'EIO' || !/not valid JSON/.test(e.message)) continue;
      throw e;
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.backend.localeCompare(b.backend));
}

export async function removeStored(backend: Backend, name: string): Promise<void> {
  checkName(name);
  if (backend === 'opfs') await OpfsDirectory.remove(`${ROOT}/${name}`);
  else await IdbDirectory.remove(`${ROOT}/${name}`);
  const list = await readIndex(backend);
  if (list.some((s) => s.name === name)) await writeIndex(backend, list.filter((s) => s.name !== name));
}

// SPDX-License-Identifier: MIT
// Where an emulator's read-only base disk comes from: a URL (a ploop image, a disk folder given
// by its DiskDescriptor.xml or its "…/" URL, or a raw image, all read lazily with HTTP ranges),
// files a user picked or dropped (one image, or every file of a disk folder), or a disk folder in
// any DeltaDirectory (a folder stored in OPFS or IndexedDB). Each becomes the levels of a stack,
// bottom first, plus an identity string: a delta made over one base is never opened over another.

import type { DeltaSource } from '../engine/image.js';
import { DESCRIPTOR_FILE, readDescriptor } from '../engine/stack.js';
import { descriptorChain, type ChainEntry } from '../format/descriptor.js';
import { parseDescriptor } from '../format/descriptor-parse.js';
import { SIGNATURE_V1, SIGNATURE_V2 } from '../format/header.js';
import { BlobStore } from '../stores/blob.js';
import type { BlockStore } from '../stores/block-store.js';
import type { DeltaDirectory } from '../stores/directory.js';
import { HttpRangeStore, type HttpRangeOptions } from '../stores/http-range.js';
import { PloopError } from '../errors.js';

/** A read-only base disk, opened. */
export interface DiskBase {
  /** The read-only levels, bottom first (one for a single image). */
  levels: DeltaSource[];
  /**
   * Names the contents: the URL or file names with sizes, the server's ETag / Last-Modified
   * when it sends them, a folder's top snapshot GUID. A new version of the disk gets a new id.
   */
  id: string;
  /** For people: the URL, the file name, or the folder's name. */
  label: string;
  /** 'ploop' (one image), 'folder' (a DiskDescriptor.xml chain) or 'raw'. */
  kind: 'ploop' | 'folder' | 'raw';
  /** Virtual disk size in bytes is known once the stack is open; here: the levels' file bytes. */
  fileBytes: number;
  /** Requests made and body bytes fetched so far by the levels read over HTTP (zeros otherwise). */
  fetched(): { requests: number; bytes: number };
  /** Close every level. */
  close(): Promise<void>;
}

/** True when the store starts with a ploop signature (v1 or v2). */
export async function hasPloopSignature(store: BlockStore): Promise<boolean> {
  const head = new Uint8Array(16);
  const n = await store.read(0, head);
  const sig = String.fromCharCode(...head.subarray(0, n));
  return sig === SIGNATURE_V1 || sig === SIGNATURE_V2;
}

function makeBase(levels: DeltaSource[], fields: { id: string; label: string; kind: DiskBase['kind']; fileBytes: number }): DiskBase {
  return {
    levels,
    ...fields,
    fetched() {
      let requests = 0;
      let bytes = 0;
      for (const l of levels) {
        if (l.store instanceof HttpRangeStore) {
          requests += l.store.stats.requests;
          bytes += l.store.stats.bytesFetched;
        }
      }
      return { requests, bytes };
    },
    async close() {
      for (const l of levels) await l.store.close();
    },
  };
}

/** Open every file of a chain with `open`; closes what it opened when one fails. */
async function openChain(chain: ChainEntry[], open: (file: string) => Promise<BlockStore>): Promise<DeltaSource[]> {
  const levels: DeltaSource[] = [];
  try {
    for (const c of chain) levels.push({ store: await open(c.file), kind: c.type === 'Plain' ? 'raw' : 'ploop', name: c.file });
    return levels;
  } catch (e) {
    for (const l of levels) await l.store.close();
    throw e;
  }
}

/**
 * One image in any store as a base: ploop or raw by its signature. `id` names its contents (the
 * file size is added to it); the base owns the store (closed with it, or here on a failure).
 */
export async function openBaseStore(store: BlockStore, id: string, label = store.name): Promise<DiskBase> {
  try {
    const kind = (await hasPloopSignature(store)) ? 'ploop' : 'raw';
    const fileBytes = await store.size();
    return makeBase([{ store, kind, name: store.name }], { id: `${id}:${fileBytes}`, label, kind, fileBytes });
  } catch (e) {
    await store.close();
    throw e;
  }
}

/**
 * A disk folder's levels as a base. Its id lists each delta's GUID and size: a new snapshot (a
 * new GUID below the top) or a changed delta is another disk.
 */
async function folderBase(chain: ChainEntry[], levels: DeltaSource[], where: string, label: string): Promise<DiskBase> {
  const bytes = await Promise.all(levels.map((l) => l.store.size()));
  const id = `${where}#${chain.map((c, i) => `${c.guid}:${bytes[i]}`).join(',')}`;
  return makeBase(levels, { id, label, kind: 'folder', fileBytes: bytes.reduce((a, b) => a + b, 0) });
}

export interface UrlBaseOptions {
  /** Passed to every HttpRangeStore (block size, cache, headers, credentials, fetch…). */
  http?: HttpRangeOptions;
}

/** A URL naming a disk folder: its DiskDescriptor.xml, or the folder itself ("…/"). */
function descriptorUrl(url: URL): URL | null {
  if (url.pathname.endsWith('/')) return new URL(DESCRIPTOR_FILE, url);
  if (/\.xml$/i.test(url.pathname)) return url;
  return null;
}

/** The server's validators (ETag, Last-Modified) of `url`, from a HEAD request; '' without them. */
async function validators(url: URL, options: UrlBaseOptions): Promise<string> {
  try {
    const r = await (options.http?.fetch ?? fetch)(url, { method: 'HEAD', headers: options.http?.headers, credentials: options.http?.credentials });
    return r.ok ? [r.headers.get('etag'), r.headers.get('last-modified')].filter(Boolean).join(' ') : '';
  } catch {
    return '';
  }
}

/**
 * A base read over HTTP with Range requests: a ploop image, a raw image, or a disk folder given
 * as `…/DiskDescriptor.xml` or `…/` (its deltas are fetched next to the descriptor).
 */
export async function openBaseUrl(url: string | URL, options: UrlBaseOptions = {}): Promise<DiskBase> {
  const target = new URL(url, typeof location !== 'undefined' ? location.href : undefined);
  const descriptor = descriptorUrl(target);
  if (!descriptor) {
    const store = await HttpRangeStore.open(target.href, options.http);
    return openBaseStore(store, `${target.href}#${await validators(target, options)}`, target.href);
  }
  const fetchText = options.http?.fetch ?? fetch;
  let text: string;
  try {
    const r = await fetchText(descriptor, { headers: options.http?.headers, credentials: options.http?.credentials });
    if (!r.ok) throw new PloopError('EIO', `${descriptor.href}: HTTP ${r.status} ${r.statusText}`.trim(), { url: descriptor.href, status: r.status });
    text = await r.text();
  } catch (e) {
    if (e instanceof PloopError) throw e;
    throw new PloopError('EIO', `${descriptor.href} could not be fetched (${(e as Error).message})`, { url: descriptor.href });
  }
  const chain = descriptorChain(parseDescriptor(text));
  const levels = await openChain(chain, (file) => HttpRangeStore.open(new URL(encodeURIComponent(file), descriptor).href, options.http));
  const folder = new URL('./', descriptor).href;
  return folderBase(chain, levels, folder, folder);
}

/**
 * A base from files the user picked or dropped: one image (ploop or raw), or every file of a disk
 * folder (DiskDescriptor.xml and the deltas it names).
 */
export async function openBaseFiles(files: File[]): Promise<DiskBase> {
  if (files.length === 0) throw new PloopError('EINVAL', 'no file given');
  const descriptor = files.find((f) => f.name === DESCRIPTOR_FILE);
  if (!descriptor) {
    if (files.length > 1) throw new PloopError('EINVAL', `${files.length} files given without a ${DESCRIPTOR_FILE}: give one image, or every file of a disk folder`);
    const f = files[0];
    return openBaseStore(new BlobStore(f), `file:${f.name}:${f.lastModified}`, f.name);
  }
  const text = await descriptor.text();
  const chain = descriptorChain(parseDescriptor(text));
  const missing = chain.filter((c) => !files.some((f) => f.name === c.file)).map((c) => c.file);
  if (missing.length) throw new PloopError('EINVAL', `${DESCRIPTOR_FILE} names ${missing.join(', ')}, which ${missing.length > 1 ? 'were' : 'was'} not among the files given; give every file of the folder`);
  const levels = await openChain(chain, async (file) => new BlobStore(files.find((f) => f.name === file)!));
  return folderBase(chain, levels, 'files', `dropped disk folder (${chain.length} deltas)`);
}

/** A base from a disk folder in a DeltaDirectory (e.g. one stored in OPFS or IndexedDB), read-only. */
export async function openBaseDirectory(dir: DeltaDirectory, label = dir.name): Promise<DiskBase> {
  const chain = descriptorChain(await readDescriptor(dir));
  const levels = await openChain(chain, (file) => dir.openStore(file, { writable: false }));
  return folderBase(chain, levels, `dir:${dir.name}`, label);
}

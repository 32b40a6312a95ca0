// SPDX-License-Identifier: MIT
// Read-only stores for the page's sources: a File/Blob, and a URL read lazily with HTTP Range
// requests (aligned blocks, a bounded cache, neighbouring missing blocks fetched in one request).
// Kept small here for the demo; the library's own browser stores replace them as they land.

import { PloopError, type BlockStore } from '../../src/browser.js';

function readOnly(name: string, operation: string): PloopError {
  return new PloopError('EREADONLY', `${name}: ${operation} refused, the store is read-only`);
}

export class FileBlobStore implements BlockStore {
  readonly name: string;
  readonly writable = false;
  constructor(readonly blob: Blob, name?: string) {
    this.name = name ?? ((blob as Partial<File>).name || 'blob');
  }
  async size(): Promise<number> {
    return this.blob.size;
  }
  async read(offset: number, into: Uint8Array): Promise<number> {
    const end = Math.min(this.blob.size, offset + into.length);
    if (end <= offset) return 0;
    const bytes = new Uint8Array(await this.blob.slice(offset, end).arrayBuffer());
    into.set(bytes);
    return bytes.length;
  }
  async write(): Promise<void> {
    throw readOnly(this.name, 'write');
  }
  async flush(): Promise<void> {}
  async truncate(): Promise<void> {
    throw readOnly(this.name, 'truncate');
  }
  async close(): Promise<void> {}
}

const BLOCK_BYTES = 64 << 10;
const CACHE_BLOCKS = 256; // 16 MiB

export class UrlRangeStore implements BlockStore {
  readonly name: string;
  readonly writable = false;
  /** Bytes received from the server (for the page's counters). */
  fetchedBytes = 0;
  readonly #cache = new Map<number, Uint8Array>();

  private constructor(readonly url: string, readonly bytes: number) {
    this.name = url;
  }

  /** Probe the size with a one-byte range request; refuses servers that ignore Range. */
  static async open(url: string, signal?: AbortSignal): Promise<UrlRangeStore> {
    const r = await fetch(url, { headers: { Range: 'bytes=0-0' }, signal });
    if (r.status === 404) throw new PloopError('EIO', `${url}: not found (HTTP 404)`);
    if (r.status !== 206) {
      await r.body?.cancel();
      throw new PloopError('ENOTSUP', `${url}: the server answered a Range request with HTTP ${r.status}, expected 206 Partial Content; it cannot serve an image lazily`, { status: r.status });
    }
    const range = r.headers.get('Content-Range') ?? '';
    await r.arrayBuffer();
    const m = /\/(\d+)$/.exec(range);
    if (!m) throw new PloopError('EIO', `${url}: Content-Range ${JSON.stringify(range)} does not give the size (expected "bytes 0-0/SIZE")`);
    return new UrlRangeStore(url, Number(m[1]));
  }

  async size(): Promise<number> {
    return this.bytes;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const end = Math.min(this.bytes, offset + into.length);
    if (end <= offset) return 0;
    const first = Math.floor(offset / BLOCK_BYTES);
    const last = Math.floor((end - 1) / BLOCK_BYTES);
    // Fetch runs of missing blocks, one request per run.
    let runStart = -1;
    for (let b = first; b <= last + 1; b++) {
      const missing = b <= last && !this.#cache.has(b);
      if (missing && runStart < 0) runStart = b;
      if (!missing && runStart >= 0) {
        await this.#fetchBlocks(runStart, b - 1);
        runStart = -1;
      }
    }
    for (let b = first; b <= last; b++) {
      const block = this.#cache.get(b)!;
      // Most recently used last: Map keeps insertion order, which makes the eviction LRU.
      this.#cache.delete(b);
      this.#cache.set(b, block);
      const blockStart = b * BLOCK_BYTES;
      const from = Math.max(offset, blockStart);
      const to = Math.min(end, blockStart + block.length);
      into.set(block.subarray(from - blockStart, to - blockStart), from - offset);
    }
    return end - offset;
  }

  async #fetchBlocks(first: number, last: number): Promise<void> {
    const start = first * BLOCK_BYTES;
    const end = Math.min(this.bytes, (last + 1) * BLOCK_BYTES) - 1;
    const r = await fetch(this.url, { headers: { Range: `bytes=${start}-${end}` } });
    if (r.status !== 206) {
      await r.body?.cancel();
      throw new PloopError('EIO', `${this.url}: range ${start}-${end} answered with HTTP ${r.status}, expected 206`, { status: r.status });
    }
    const total = /\/(\d+)$/.exec(r.headers.get('Content-Range') ?? '');
    if (total && Number(total[1]) !== this.bytes) {
      await r.body?.cancel();
      throw new PloopError('EIO', `${this.url}: the file changed size from ${this.bytes} to ${total[1]} bytes while open`);
    }
    const body = new Uint8Array(await r.arrayBuffer());
    if (body.length !== end - start + 1) throw new PloopError('EIO', `${this.url}: range ${start}-${end} returned ${body.length} bytes, expected ${end - start + 1}`);
    this.fetchedBytes += body.length;
    for (let b = first; b <= last; b++) {
      this.#cache.set(b, body.subarray((b - first) * BLOCK_BYTES, Math.min(body.length, (b - first + 1) * BLOCK_BYTES)));
      while (this.#cache.size > CACHE_BLOCKS) this.#cache.delete(this.#cache.keys().next().value!);
    }
  }

  async write(): Promise<void> {
    throw readOnly(this.name, 'write');
  }
  async flush(): Promise<void> {}
  async truncate(): Promise<void> {
    throw readOnly(this.name, 'truncate');
  }
  async close(): Promise<void> {}
}

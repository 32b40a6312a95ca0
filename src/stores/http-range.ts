// SPDX-License-Identifier: MIT
// A read-only store over HTTP(S) that fetches only what is read, with Range requests: any static
// host, CDN or object store serves ploop images this way. Bytes are fetched in aligned blocks
// (64 KiB by default) kept in an LRU cache bounded in bytes; the blocks missing in one turn of
// the event loop (one read, or many concurrent reads) are coalesced into one request per run of
// neighbouring blocks; a block already being fetched is awaited, not fetched twice. Every
// response is checked: a server that ignores Range, answers another range, or whose file
// changed (size, ETag, Last-Modified) gives an error that says so, never mixed data.

import type { StoreSpec } from '../runners/protocol.js';
import type { BlockStore } from './block-store.js';
import { PloopError } from '../errors.js';
import { readOnly } from './blob.js';

export interface HttpRangeOptions {
  /** Bytes per fetched and cached block (default 64 KiB). */
  blockBytes?: number;
  /** Bound on cached bytes (default 16 MiB); the least recently used blocks go first. */
  cacheBytes?: number;
  /** Largest single request when coalescing neighbouring blocks (default 4 MiB). */
  maxRequestBytes?: number;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** fetch's credentials mode for cross-origin hosts (default 'same-origin'). */
  credentials?: RequestCredentials;
  /** A request (answer and body) that takes longer fails after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Network failures, timeouts and 408/429/5xx answers are retried this often (default 2). */
  retries?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Name in messages (default: the URL). */
  name?: string;
}

export interface HttpRangeStats {
  /** HTTP requests made (the first one and retries included). */
  requests: number;
  /** Requests repeated after a network failure, a timeout or a 408/429/5xx answer. */
  retries: number;
  /** Body bytes received. */
  bytesFetched: number;
  /** Blocks read from the cache / fetched (or awaited in flight) for reads. */
  cacheHits: number;
  cacheMisses: number;
  /** Blocks another read was already fetching. */
  sharedFetches: number;
  cachedBytes: number;
  cachedBlocks: number;
}

interface Validators {
  etag: string | null;
  lastModified: string | null;
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
/** Answers worth asking again: timeouts, rate limits, server errors (a CDN edge restarting). */
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** For a response being read: did its timeout fire? (Names the timeout in the body's error.) */
const timedOutBody = new WeakMap<Response, () => boolean>();

export class HttpRangeStore implements BlockStore {
  readonly name: string;
  readonly writable = false;
  readonly url: string;
  readonly blockBytes: number;
  readonly #size: number;
  readonly #validators: Validators;
  readonly #options: HttpRangeOptions;
  readonly #cacheBytes: number;
  readonly #maxRunBlocks: number;
  readonly #fetch: typeof fetch;
  /** LRU: Map order is use order (a hit moves the block to the end). */
  readonly #cache = new Map<number, Uint8Array>();
  readonly #inflight = new Map<number, Promise<Uint8Array>>();
  /** Blocks wanted in this turn, fetched together by #dispatch. */
  #wanted = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }>();
  #dispatchQueued = false;
  /** Set once the file changed under us: every later read fails with it. */
  #broken: PloopError | null = null;
  #cachedBytes = 0;
  readonly #stats = { requests: 0, retries: 0, bytesFetched: 0, cacheHits: 0, cacheMisses: 0, sharedFetches: 0 };

  private constructor(url: string, size: number, validators: Validators, options: HttpRangeOptions, blockBytes: number, fetchFn: typeof fetch) {
    this.url = url;
    this.name = options.name ?? url;
    this.#size = size;
    this.#validators = validators;
    this.#options = options;
    this.blockBytes = blockBytes;
    this.#cacheBytes = options.cacheBytes ?? 16 << 20;
    this.#maxRunBlocks = Math.max(1, Math.floor((options.maxRequestBytes ?? 4 << 20) / blockBytes));
    this.#fetch = fetchFn;
  }

  /**
   * Open `url`: one ranged GET of the first block finds the size (from Content-Range), checks that
   * the server honours Range, and records ETag / Last-Modified to detect later changes.
   */
  /** A runner opens the same URL with the same headers, credentials, cache and timeouts (not a custom `fetch`). */
  spec(): StoreSpec {
    const { fetch: _custom, ...options } = this.#options;
    return { kind: 'http', url: this.url, options };
  }

  static async open(url: string | URL, options: HttpRangeOptions = {}): Promise<HttpRangeStore> {
    const blockBytes = options.blockBytes ?? 64 << 10;
    if (!Number.isInteger(blockBytes) || blockBytes < 512) throw new PloopError('EINVAL', `http: blockBytes ${blockBytes} is invalid, expected an integer >= 512`);
    if (options.cacheBytes !== undefined && !(options.cacheBytes >= 0)) throw new PloopError('EINVAL', `http: cacheBytes ${options.cacheBytes} is invalid, expected >= 0`);
    let href: string;
    try {
      href = typeof url === 'string' ? new URL(url, globalThis.location?.href).href : url.href;
    } catch {
      throw new PloopError('EINVAL', `http: URL ${JSON.stringify(String(url))} is not valid here (outside a page it must be absolute, e.g. "https://host/disk.hds")`, { url: String(url) });
    }
    const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    const name = options.name ?? href;
    const probe = new HttpRangeStore(href, 0, { etag: null, lastModified: null }, options, blockBytes, fetchFn);
    const { res, done } = await probe.#request(0, blockBytes - 1);
    try {
      if (res.status === 416) {
        // Only an empty file has no byte 0.
        await res.body?.cancel().catch(() => {});
        const total = /^bytes \*\/(\d+)$/.exec(res.headers.get('Content-Range') ?? '');
        if (total && Number(total[1]) === 0) return new HttpRangeStore(href, 0, validatorsOf(res), options, blockBytes, fetchFn);
        throw new PloopError('EIO', `http: ${name}: the server answered 416 Range Not Satisfiable for bytes=0-${blockBytes - 1}`);
      }
      const range = await checkPartial(res, name, 0, blockBytes - 1, null);
      const store = new HttpRangeStore(href, range.total, validatorsOf(res), options, blockBytes, fetchFn);
      const body = await probe.#body(res, range.start, range.end);
      Object.assign(store.#stats, probe.#stats);
      store.#remember(0, body);
      return store;
    } catch (e) {
      await res.body?.cancel().catch(() => {});
      throw e;
    } finally {
      done();
    }
  }

  get stats(): HttpRangeStats {
    return { ...this.#stats, cachedBytes: this.#cachedBytes, cachedBlocks: this.#cache.size };
  }

  async size(): Promise<number> {
    return this.#size;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    if (this.#broken) throw this.#broken;
    const end = Math.min(this.#size, offset + into.length);
    if (end <= offset) return 0;
    const first = Math.floor(offset / this.blockBytes);
    const last = Math.floor((end - 1) / this.blockBytes);
    const wanted: Array<Uint8Array | Promise<Uint8Array>> = [];
    for (let i = first; i <= last; i++) wanted.push(this.#block(i));
    // All at once: every promise gets a handler even when one of them fails.
    const blocks = await Promise.all(wanted);
    for (let i = first; i <= last; i++) {
      const block = blocks[i - first];
      const blockStart = i * this.blockBytes;
      const from = Math.max(offset, blockStart);
      const to = Math.min(end, blockStart + this.blockBytes);
      into.set(block.subarray(from - blockStart, to - blockStart), from - offset);
    }
    return end - offset;
  }

  async write(_offset: number, _data: Uint8Array): Promise<void> {
    throw readOnly(this.name, 'write');
  }

  async truncate(_size: number): Promise<void> {
    throw readOnly(this.name, 'truncate');
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.#cache.clear();
    this.#cachedBytes = 0;
  }

  /** A cached block now, or a promise of it (in flight, or wanted in this turn). */
  #block(i: number): Uint8Array | Promise<Uint8Array> {
    const cached = this.#cache.get(i);
    if (cached) {
      this.#cache.delete(i);
      this.#cache.set(i, cached);
      this.#stats.cacheHits++;
      return cached;
    }
    this.#stats.cacheMisses++;
    const inflight = this.#inflight.get(i);
    if (inflight) {
      this.#stats.sharedFetches++;
      return inflight;
    }
    const p = new Promise<Uint8Array>((resolve, reject) => this.#wanted.set(i, { resolve, reject }));
    this.#inflight.set(i, p);
    if (!this.#dispatchQueued) {
      this.#dispatchQueued = true;
      queueMicrotask(() => this.#dispatch());
    }
    return p;
  }

  /** Fetch the blocks wanted in this turn: one request per run of neighbouring blocks. */
  #dispatch(): void {
    this.#dispatchQueued = false;
    const wanted = this.#wanted;
    this.#wanted = new Map();
    const indices = [...wanted.keys()].sort((a, b) => a - b);
    for (let k = 0; k < indices.length;) {
      let n = 1;
      while (k + n < indices.length && indices[k + n] === indices[k] + n && n < this.#maxRunBlocks) n++;
      const run = indices.slice(k, k + n);
      k += n;
      void this.#fetchRun(run[0], run.length).then((blocks) => {
        run.forEach((i, j) => {
          this.#inflight.delete(i);
          this.#remember(i, blocks[j]);
          wanted.get(i)!.resolve(blocks[j]);
        });
      }, (e) => {
        for (const i of run) {
          this.#inflight.delete(i);
          wanted.get(i)!.reject(e);
        }
      });
    }
  }

  async #fetchRun(firstBlock: number, count: number): Promise<Uint8Array[]> {
    if (this.#broken) throw this.#broken;
    const start = firstBlock * this.blockBytes;
    const end = Math.min(this.#size, (firstBlock + count) * this.blockBytes) - 1;
    const { res, done } = await this.#request(start, end);
    try {
      const range = await checkPartial(res, this.name, start, end, this.#size);
      this.#checkValidators(res, start, end);
      const body = await this.#body(res, range.start, range.end);
      const blocks: Uint8Array[] = [];
      for (let j = 0; j < count; j++) blocks.push(body.subarray(j * this.blockBytes, Math.min(body.length, (j + 1) * this.blockBytes)));
      return blocks;
    } catch (e) {
      await res.body?.cancel().catch(() => {});
      // A file that changed stays failed: blocks of two versions must never be mixed.
      if (e instanceof PloopError && e.data.changed) this.#broken = e;
      throw e;
    } finally {
      done();
    }
  }

  /**
   * GET bytes start..end, retrying network failures, timeouts and 408/429/5xx answers. The
   * timeout runs until `done()` (called once the body is read), so a stalled body fails too.
   */
  async #request(start: number, end: number): Promise<{ res: Response; done: () => void }> {
    const timeoutMs = this.#options.timeoutMs ?? 30_000;
    const retries = this.#options.retries ?? 2;
    const what = `GET ${this.name} bytes=${start}-${end}`;
    for (let attempt = 0; ; attempt++) {
      this.#stats.requests++;
      if (attempt > 0) this.#stats.retries++;
      const abort = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        abort.abort();
      }, timeoutMs);
      const done = () => clearTimeout(timer);
      let failure: PloopError;
      try {
        const res = await this.#fetch(this.url, {
          headers: { ...this.#options.headers, Range: `bytes=${start}-${end}` },
          credentials: this.#options.credentials ?? 'same-origin',
          // Our cache is the cache; the HTTP cache would hide a changed file from the checks.
          cache: 'no-store',
          signal: abort.signal,
        });
        if (!RETRY_STATUS.has(res.status) || attempt >= retries) {
          timedOutBody.set(res, () => timedOut);
          return { res, done };
        }
        done();
        await res.body?.cancel().catch(() => {});
        failure = new PloopError('EIO', `http: ${what} failed: HTTP ${res.status}`);
      } catch (e) {
        done();
        const cause = (e as { cause?: { message?: string } })?.cause?.message;
        failure = new PloopError('EIO', timedOut
          ? `http: ${what} failed: no answer within ${timeoutMs} ms`
          : `http: ${what} failed: ${(e as Error)?.message ?? e}${cause ? ` (${cause})` : ''}`, { url: this.url, start, end }, { cause: e });
      }
      if (attempt >= retries) throw failure;
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }

  async #body(res: Response, start: number, end: number): Promise<Uint8Array> {
    let body: Uint8Array;
    try {
      body = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      const why = timedOutBody.get(res)?.() ? `the body was not complete within ${this.#options.timeoutMs ?? 30_000} ms` : (e as Error)?.message ?? String(e);
      throw new PloopError('EIO', `http: GET ${this.name} bytes=${start}-${end} failed while reading the body: ${why}`, { start, end }, { cause: e });
    }
    this.#stats.bytesFetched += body.length;
    if (body.length !== end - start + 1) {
      // A compressed answer: the range counts encoded bytes, the body is decoded.
      const encoding = res.headers.get('Content-Encoding');
      const hint = encoding && encoding !== 'identity' ? ` (the answer is ${encoding}-encoded: serve the image without compression)` : '';
      throw new PloopError('EIO', `http: ${this.name}: the body for bytes ${start}-${end} has ${body.length} bytes, expected ${end - start + 1}${hint}`, { start, end, bodyBytes: body.length });
    }
    return body;
  }

  #checkValidators(res: Response, start: number, end: number): void {
    const now = validatorsOf(res);
    for (const [field, header] of [['etag', 'ETag'], ['lastModified', 'Last-Modified']] as const) {
      const was = this.#validators[field];
      if (was !== null && now[field] !== null && now[field] !== was) {
        throw new PloopError('EIO', `http: ${this.name} changed while open: ${header} was ${JSON.stringify(was)}, the response for bytes ${start}-${end} has ${JSON.stringify(now[field])}; reopen it`, { changed: true, field: header, was, now: now[field] });
      }
    }
  }

  #remember(i: number, block: Uint8Array): void {
    if (this.#cacheBytes < block.length) return;
    // A block cut from a larger body would keep the whole body alive: keep a copy of its bytes.
    const own = block.byteLength === block.buffer.byteLength ? block : block.slice();
    const old = this.#cache.get(i);
    if (old) this.#cachedBytes -= old.length;
    this.#cache.delete(i);
    this.#cache.set(i, own);
    this.#cachedBytes += own.length;
    for (const [k, b] of this.#cache) {
      if (this.#cachedBytes <= this.#cacheBytes) break;
      this.#cache.delete(k);
      this.#cachedBytes -= b.length;
    }
  }
}

function validatorsOf(res: Response): Validators {
  return { etag: res.headers.get('ETag'), lastModified: res.headers.get('Last-Modified') };
}

/** Check a response to `bytes=start-end`; returns the range it holds and the file's total size. */
async function checkPartial(res: Response, name: string, start: number, end: number, knownSize: number | null): Promise<{ start: number; end: number; total: number }> {
  const asked = `bytes=${start}-${end}`;
  if (res.status === 200) {
    await res.body?.cancel().catch(() => {});
    const length = res.headers.get('Content-Length');
    throw new PloopError('ENOTSUP',
      `http: ${name}: the server ignored the Range header (${asked} was answered 200 with the whole file${length ? ` of ${length} bytes` : ''}); the HTTP range store needs a server that answers Range requests with 206 Partial Content`,
      { status: 200, range: asked });
  }
  if (res.status === 416 && knownSize !== null) {
    const total = /^bytes \*\/(\d+)$/.exec(res.headers.get('Content-Range') ?? '');
    throw new PloopError('EIO', `http: ${name} changed while open: ${asked} is not satisfiable any more${total ? `, the size is now ${total[1]} bytes instead of ${knownSize}` : ''}; reopen it`, { changed: true, status: 416 });
  }
  if (res.status === 412) throw new PloopError('EIO', `http: ${name} changed while open (412 Precondition Failed); reopen it`, { changed: true, status: 412 });
  if (res.status !== 206) {
    await res.body?.cancel().catch(() => {});
    throw new PloopError('EIO', `http: GET ${name} ${asked} failed: HTTP ${res.status} ${res.statusText}`.trimEnd(), { status: res.status, range: asked });
  }
  const header = res.headers.get('Content-Range');
  if (header === null) {
    throw new PloopError('EIO', `http: ${name}: a 206 response without a readable Content-Range header (a cross-origin server must send Access-Control-Expose-Headers: Content-Range)`, { range: asked });
  }
  const m = CONTENT_RANGE.exec(header.trim());
  if (!m) throw new PloopError('EIO', `http: ${name}: Content-Range ${JSON.stringify(header)} is not "bytes START-END/SIZE"`, { range: asked, contentRange: header });
  if (m[3] === '*') throw new PloopError('ENOTSUP', `http: ${name}: the server does not say the file's size (Content-Range ${JSON.stringify(header)})`, { contentRange: header });
  const got = { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
  if (knownSize !== null && got.total !== knownSize) {
    throw new PloopError('EIO', `http: ${name} changed while open: its size was ${knownSize} bytes, the response for ${asked} says ${got.total} (Content-Range ${header}); reopen it`, { changed: true, was: knownSize, now: got.total });
  }
  const wantEnd = Math.min(end, got.total - 1);
  if (got.start !== start || got.end !== wantEnd) {
    throw new PloopError('EIO', `http: ${name}: asked for bytes ${start}-${wantEnd}, the server answered Content-Range ${header}`, { range: asked, contentRange: header });
  }
  return got;
}

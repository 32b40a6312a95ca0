// Shared by the browser store tests: a Chromium session that also serves the page-side routines
// (stores-fixtures/ under /t/), a call helper that unwraps their results, and workloads with
// their expected contents computed in Node.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { startBrowser, type BrowserSession, type SessionOptions } from '../helpers/browser.js';
import { Prng } from '../helpers/prng.js';

export const FIXTURES = fileURLToPath(new URL('./stores-fixtures/', import.meta.url));

export function startStoreBrowser(options: SessionOptions = {}): Promise<BrowserSession> {
  return startBrowser({ ...options, mounts: { '/t/': FIXTURES, ...(options.mounts ?? {}) } });
}

/** Open the blank test page (a tiny HTML page is enough; the routines are modules). */
export async function openPage(session: BrowserSession): Promise<Page> {
  return session.open('t/blank.html');
}

type Result = { ok: true; value: unknown } | { ok: false; code?: string; message: string; stack?: string };

/** Run a routine of stores-fixtures/page.mjs on the page; returns its value or throws its error. */
export async function call<T>(page: Page, name: string, arg: unknown = {}): Promise<T> {
  const r = await page.evaluate(async ([n, a]) => {
    const m = await import('/t/page.mjs' as string);
    return m.run(n, a);
  }, [name, arg] as const) as Result;
  if (!r.ok) throw Object.assign(new Error(`${name}: ${r.code ?? ''} ${r.message}\n${r.stack ?? ''}`), { code: r.code });
  return r.value as T;
}

/** Run a routine in a module worker started by the page. */
export async function callInWorker<T>(page: Page, name: string, arg: unknown = {}): Promise<T> {
  const inner = await call<Result>(page, 'inWorker', { name, arg });
  if (!inner.ok) throw Object.assign(new Error(`${name} (worker): ${inner.code ?? ''} ${inner.message}\n${inner.stack ?? ''}`), { code: inner.code });
  return inner.value as T;
}

/**
 * A write as sent to the page: where, how long, and a tag from which both sides compute the same
 * bytes (stores-fixtures/page.mjs has the same formula). Sending the bytes themselves through
 * page.evaluate costs seconds on a busy machine.
 */
export interface Write { offset: number; length: number; tag: number }

/** The bytes of a write: depend on the tag and on the position, so misplaced data shows. */
export function writeBytes(w: Write): Uint8Array {
  const out = new Uint8Array(w.length);
  for (let j = 0; j < w.length; j++) out[j] = (w.tag * 73 + j * 7 + (j >>> 9) * 31 + (j >>> 16)) & 255;
  return out;
}

/** `count` random writes (any alignment) within `size` bytes, and the model they produce. */
export function randomWrites(seed: number, size: number, count: number, maxBytes: number, model?: Uint8Array): { writes: Write[]; model: Uint8Array } {
  const rng = new Prng(seed);
  const m = model ?? new Uint8Array(size);
  const writes: Write[] = [];
  for (let i = 0; i < count; i++) {
    const length = 1 + rng.int(maxBytes);
    const w = { offset: rng.int(size - length), length, tag: rng.int(1 << 20) };
    m.set(writeBytes(w), w.offset);
    writes.push(w);
  }
  return { writes, model: m };
}

export interface Uploads {
  /** Base URL; the page PUTs a file to `url + name`. */
  url: string;
  /** The bytes last PUT under `name` (throws when nothing arrived). */
  take(name: string): Buffer;
  close(): Promise<void>;
}

/**
 * A tiny server that receives files the page sends back (PUT, with CORS for the isolated page):
 * far faster than returning megabytes from page.evaluate.
 */
export async function startUploads(): Promise<Uploads> {
  const files = new Map<string, Buffer>();
  const server = createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Methods': 'PUT', 'Access-Control-Allow-Headers': 'Content-Type' }).end();
      return;
    }
    if (req.method !== 'PUT') {
      res.writeHead(405).end();
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      files.set(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1)), Buffer.concat(parts));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    take(name) {
      const bytes = files.get(name);
      if (!bytes) throw new Error(`no upload named ${name} (have: ${[...files.keys()].join(', ')})`);
      return bytes;
    },
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

export function assertNoMismatch(mismatches: unknown[], what: string): void {
  assert.deepEqual(mismatches, [], `${what}: bytes differ from what was written`);
}

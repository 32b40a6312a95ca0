// SPDX-License-Identifier: MIT
// A small static file server for the demo page and the browser tests. It sends the COOP/COEP
// headers that make a page cross-origin isolated (SharedArrayBuffer, shared WASM memory), and it
// honours single `Range` requests so that the HTTP range store can be tested against it.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, promises as fs } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { AddressInfo } from 'node:net';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml',
  '.map': 'application/json',
};

export interface StaticServerOptions {
  /** Directory served at `/`. */
  root: string;
  /** Send COOP/COEP (default true). False serves a page that is not cross-origin isolated. */
  isolated?: boolean;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Extra directories served under a URL prefix, e.g. `{ '/bios/': '/usr/share/seabios' }`. */
  mounts?: Record<string, string>;
  /** Called for every request with the number of body bytes sent (tests count range traffic). */
  onServed?: (info: { path: string; method: string; range: string | undefined; status: number; bodyBytes: number }) => void;
}

export interface StaticServer {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Parse `bytes=A-B`, `bytes=A-` or `bytes=-N` against `size`; null when unsatisfiable or multi-range. */
export function parseRange(header: string, size: number): { start: number; end: number } | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return null;
  return { start, end };
}

function resolveUnder(root: string, urlPath: string): string | null {
  const decoded = decodeURIComponent(urlPath);
  if (decoded.includes('\0')) return null;
  const full = resolve(join(root, normalize(decoded)));
  const base = resolve(root);
  return full === base || full.startsWith(base + sep) ? full : null;
}

export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const isolated = options.isolated ?? true;
  const mounts = Object.entries(options.mounts ?? {});
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let path = url.pathname;
    const report = (status: number, bodyBytes: number) =>
      options.onServed?.({ path, method: req.method ?? 'GET', range: req.headers.range, status, bodyBytes });
    if (isolated) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return report(405, 0);
    }
    if (path.endsWith('/')) path += 'index.html';
    let file: string | null = null;
    const mount = mounts.find(([prefix]) => path.startsWith(prefix));
    file = mount ? resolveUnder(mount[1], path.slice(mount[0].length)) : resolveUnder(options.root, path);
    let stat;
    try {
      if (!file) throw new Error('outside root');
      stat = await fs.stat(file);
      if (!stat.isFile()) throw new Error('not a file');
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(req.method === 'HEAD' ? undefined : 'not found\n');
      return report(404, 0);
    }
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.setHeader('Content-Type', type);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Last-Modified', stat.mtime.toUTCString());
    let start = 0;
    let end = stat.size - 1;
    let status = 200;
    if (req.headers.range !== undefined) {
      const range = parseRange(req.headers.range, stat.size);
      if (!range) {
        res.writeHead(416, { 'Content-Range': `bytes */${stat.size}` }).end();
        return report(416, 0);
      }
      ({ start, end } = range);
      status = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${stat.size}`);
    }
    const length = stat.size === 0 ? 0 : end - start + 1;
    res.writeHead(status, { 'Content-Length': String(length) });
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return report(status, 0);
    }
    createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
    report(status, length);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  return {
    server,
    port,
    url: `http://${host}:${port}/`,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

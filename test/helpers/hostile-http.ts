// Hostile-input helpers: the time bound every hostile case runs under, and an HTTP server that
// lies about ranges on purpose, for the HTTP range store's hostile tests. The server
// serves one file's bytes; a plan decides, request by request, whether the answer is honest
// (206 with the asked range) or one of the lies below. Every lie is one a careful client can
// notice (the store must refuse it), except 'total' which claims a larger file whose tail reads
// as zeros: that one is consistent, and what matters is that nothing proportional to the claim
// is allocated.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** `p`, or a rejection naming `what` once `ms` passed without an answer: a hang fails the case. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
    }),
  ]);
}

export type Lie =
  | 'ignore-range' // 200 with the whole file
  | 'short-body' // the asked Content-Range, fewer bytes
  | 'long-body' // the asked Content-Range, more bytes
  | 'other-range' // a Content-Range starting elsewhere
  | 'bad-content-range' // a Content-Range that does not parse
  | 'no-content-range' // 206 without Content-Range
  | 'unknown-total' // bytes a-b/*
  | 'total' // claims a file of `claimedSize` bytes (zeros past the real end)
  | 'status-500'
  | 'status-416'
  | 'reset' // the connection closes mid-body
  | 'stall' // headers and half the body, then nothing
  | 'silent'; // never answers at all

export interface HostileServer {
  url: string;
  /** Requests seen: range asked and the lie told (null: honest). */
  readonly log: Array<{ range: string | null; lie: Lie | null }>;
  close(): Promise<void>;
}

export async function startHostileServer(bytes: Uint8Array, plan: (request: number) => Lie | null, claimedSize = 2 ** 40): Promise<HostileServer> {
  const log: HostileServer['log'] = [];
  const server: Server = createServer((req, res) => {
    const n = log.length;
    const lie = plan(n);
    const range = req.headers.range ?? null;
    log.push({ range, lie });
    if (lie === 'silent') return;
    const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
    const total = lie === 'total' ? claimedSize : bytes.length;
    if (!m || lie === 'ignore-range') {
      res.writeHead(200, { 'Content-Length': bytes.length });
      res.end(Buffer.from(bytes));
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), total - 1);
    if (start >= total || lie === 'status-416') {
      res.writeHead(416, { 'Content-Range': `bytes */${total}` });
      res.end();
      return;
    }
    if (lie === 'status-500') {
      res.writeHead(500);
      res.end('hostile');
      return;
    }
    const body = new Uint8Array(end - start + 1);
    if (start < bytes.length) body.set(bytes.subarray(start, Math.min(bytes.length, end + 1)));
    const headers: Record<string, string | number> = { 'Content-Range': `bytes ${start}-${end}/${total}` };
    let out = body;
    if (lie === 'short-body') out = body.subarray(0, Math.max(0, body.length - 1 - (n % 100)));
    if (lie === 'long-body') {
      out = new Uint8Array(body.length + 1 + (n % 100));
      out.set(body);
    }
    if (lie === 'other-range') headers['Content-Range'] = `bytes ${start + 512}-${end + 512}/${total}`;
    if (lie === 'bad-content-range') headers['Content-Range'] = ['bytes 0-x/12', `bytes ${end}-${start - 1}/${total}`, 'items 0-1/2', `bytes ${start}-${end}/-1`][n % 4];
    if (lie === 'no-content-range') delete headers['Content-Range'];
    if (lie === 'unknown-total') headers['Content-Range'] = `bytes ${start}-${end}/*`;
    if (lie === 'stall') {
      res.writeHead(206, { ...headers, 'Content-Length': body.length });
      res.write(Buffer.from(body.subarray(0, body.length >> 1)));
      return;
    }
    if (lie === 'reset') {
      res.writeHead(206, { ...headers, 'Content-Length': body.length });
      res.write(Buffer.from(body.subarray(0, body.length >> 1)));
      res.destroy();
      return;
    }
    res.writeHead(206, { ...headers, 'Content-Length': out.length });
    res.end(Buffer.from(out));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/image.hds`,
    log,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

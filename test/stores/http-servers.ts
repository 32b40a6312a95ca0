// Servers for the HTTP range store tests: a real nginx (Debian's, started on a loopback port
// with everything under a temp prefix so it needs no root and touches nothing else), and tiny
// Node servers that misbehave on purpose (ignore Range, answer another range, change the file).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { makeTempDir } from '../helpers/tmp.js';

export interface Nginx {
  url: string;
  /** Requests from nginx's access log, with `$body_bytes_sent` each. */
  requests(): Promise<Array<{ range: string; status: number; bytes: number; method: string }>>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', () => ok()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/**
 * nginx serving `root` on 127.0.0.1. CORS and CORP headers let a page on another origin (the
 * cross-origin isolated test page) fetch ranges and read Content-Range, as a CDN would.
 */
export async function startNginx(root: string): Promise<Nginx> {
  const prefix = await makeTempDir('ploop-nginx-');
  const port = await freePort();
  // Worker processes run as an unprivileged user when the master is root: let them read root.
  await chmod(root, 0o755);
  await mkdir(join(prefix.dir, 'logs'));
  const conf = join(prefix.dir, 'nginx.conf');
  await writeFile(conf, `
worker_processes 1;
pid ${prefix.dir}/nginx.pid;
error_log ${prefix.dir}/logs/error.log warn;
events { worker_connections 64; }
http {
  types { application/octet-stream hds; }
  default_type application/octet-stream;
  log_format ranges '$request_method|$http_range|$status|$body_bytes_sent';
  access_log ${prefix.dir}/logs/access.log ranges;
  client_body_temp_path ${prefix.dir}/body;
  proxy_temp_path ${prefix.dir}/proxy;
  fastcgi_temp_path ${prefix.dir}/fastcgi;
  uwsgi_temp_path ${prefix.dir}/uwsgi;
  scgi_temp_path ${prefix.dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    add_header Access-Control-Allow-Origin * always;
    add_header Access-Control-Expose-Headers "Content-Range, Content-Length, ETag, Last-Modified, Accept-Ranges" always;
    add_header Cross-Origin-Resource-Policy cross-origin always;
    location / {
      if ($request_method = OPTIONS) {
        add_header Access-Control-Allow-Origin * always;
        add_header Access-Control-Allow-Headers "Range" always;
        add_header Access-Control-Allow-Methods "GET, HEAD" always;
        return 204;
      }
    }
  }
}
`);
  const child: ChildProcess = spawn('nginx', ['-p', prefix.dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}/`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${stderr}`);
    try {
      await fetch(url, { method: 'HEAD' });
      break;
    } catch {
      if (Date.now() - started > 10_000) throw new Error(`nginx did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const log = join(prefix.dir, 'logs/access.log');
  const requests = async () => {
    // nginx writes each log line as the request ends; it is unbuffered without a buffer= option.
    const text = await readFile(log, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map((line) => {
      const [method, range, status, bytes] = line.split('|');
      return { method, range, status: Number(status), bytes: Number(bytes) };
    });
  };
  return {
    url,
    requests,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
        child.kill('SIGTERM');
        await exited;
      }
      await prefix.cleanup();
    },
  };
}

export interface TinyServer {
  url: string;
  close(): Promise<void>;
}

/** A Node server whose every answer is made by `handler`. */
export async function startTinyServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TinyServer> {
  const server = createServer(handler);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

/** Answer a `bytes=A-B` request from `bytes` (as a correct server does), with extra headers. */
export function answerRange(req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, headers: Record<string, string> = {}, options: { total?: number; shift?: number } = {}): void {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) {
    res.writeHead(200, { 'Content-Length': String(bytes.length), ...headers }).end(bytes);
    return;
  }
  const start = Number(m[1]) + (options.shift ?? 0);
  const end = Math.min(Number(m[2]) + (options.shift ?? 0), bytes.length - 1);
  const body = bytes.subarray(start, end + 1);
  res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${options.total ?? bytes.length}`, 'Content-Length': String(body.length), ...headers }).end(body);
}

// SPDX-License-Identifier: MIT
// OPFS for the page's main thread: sync access handles exist only in workers, so one dedicated
// OPFS host worker (opfs.worker.ts) holds the handles and the page sends it requests. Bytes move
// by transfer: a read comes back as a fresh ArrayBuffer, a write sends a copy of the data (the
// caller's view may be on the shared WASM memory, which cannot be transferred).

import { PloopError, type PloopErrorCode } from '../errors.js';
import { SyncFile, sharedHandlesSupported } from './opfs-sync.js';

export type OpfsRequest =
  | { id: number; op: 'open'; file: FileSystemFileHandle; writable: boolean; create: boolean; shared: boolean; label: string }
  | { id: number; op: 'read'; fd: number; offset: number; length: number }
  | { id: number; op: 'write'; fd: number; offset: number; data: ArrayBuffer }
  | { id: number; op: 'truncate'; fd: number; size: number }
  | { id: number; op: 'size' | 'flush' | 'close'; fd: number }
  | { id: number; op: 'probe' };

export type OpfsReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { code: PloopErrorCode; message: string; data?: Record<string, unknown> } };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

let workerUrl: string | URL | null = null;
let host: OpfsHost | null = null;

/** Where opfs.worker.js is served (default: next to the bundle, `./opfs.worker.js`). */
export function setOpfsWorkerUrl(url: string | URL): void {
  workerUrl = url;
}

class OpfsHost {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 1;
  #failed: PloopError | null = null;

  constructor() {
    // Written out in full, `new Worker(new URL('./x.js', import.meta.url), …)`: the form that
    // bundlers (Vite, webpack, Rollup plugins) recognise and build as a worker.
    this.#worker = workerUrl
      ? new Worker(workerUrl, { type: 'module', name: 'ploop-opfs' })
      : new Worker(new URL('./opfs.worker.js', import.meta.url), { type: 'module', name: 'ploop-opfs' });
    this.#worker.addEventListener('message', (ev: MessageEvent<OpfsReply>) => {
      const reply = ev.data;
      const waiter = this.#pending.get(reply.id);
      if (!waiter) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(PloopError.fromJSON(reply.error));
    });
    // A worker that cannot load (wrong URL, bad MIME type) fails every request instead of hanging.
    this.#worker.addEventListener('error', (ev) => {
      ev.preventDefault?.();
      this.#fail(new PloopError('EIO', `opfs: the OPFS worker at ${String(workerUrl ?? './opfs.worker.js beside the bundle')} failed: ${ev.message || 'it could not be loaded'} (see setOpfsWorkerUrl)`));
    });
    this.#worker.addEventListener('messageerror', () => this.#fail(new PloopError('EIO', 'opfs: a reply from the OPFS worker could not be deserialized')));
  }

  call<T>(request: WithoutId<OpfsRequest>, transfer: Transferable[] = []): Promise<T> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      try {
        this.#worker.postMessage({ ...request, id }, transfer);
      } catch (e) {
        // E.g. a browser that cannot send file handles to a worker (DataCloneError).
        this.#pending.delete(id);
        reject(new PloopError('EIO', `opfs: ${request.op} could not be sent to the OPFS worker: ${(e as Error)?.message ?? e}`, { operation: request.op }, { cause: e }));
      }
    });
  }

  #fail(error: PloopError): void {
    this.#failed = error;
    for (const w of this.#pending.values()) w.reject(error);
    this.#pending.clear();
    if (host === this) host = null;
    this.#worker.terminate();
  }
}

/** The host's answer to 'open'. */
interface Opened {
  fd: number;
  shared: boolean;
}

/** An OPFS file held by the host worker. */
export class RemoteFile {
  readonly label: string;
  readonly writable: boolean;
  /** True when the host worker was granted a 'readwrite-unsafe' handle. */
  readonly shared: boolean;
  readonly #host: OpfsHost;
  readonly #fd: number;

  private constructor(host: OpfsHost, opened: Opened, label: string, writable: boolean) {
    this.#host = host;
    this.#fd = opened.fd;
    this.shared = opened.shared;
    this.label = label;
    this.writable = writable;
  }

  /** Whether the host worker's sync handles take modes (sharedHandlesSupported there). */
  static sharedHandlesSupported(): Promise<boolean> {
    host ??= new OpfsHost();
    return host.call<boolean>({ op: 'probe' });
  }

  static async open(file: FileSystemFileHandle, options: { writable?: boolean; create?: boolean; shared?: boolean; label?: string } = {}): Promise<RemoteFile> {
    host ??= new OpfsHost();
    const label = options.label ?? file.name;
    const writable = !!(options.writable || options.create);
    const opened = await host.call<Opened>({ op: 'open', file, writable, create: !!options.create, shared: !!options.shared, label });
    return new RemoteFile(host, opened, label, writable);
  }

  size(): Promise<number> {
    return this.#host.call({ op: 'size', fd: this.#fd });
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    const bytes = await this.#host.call<ArrayBuffer>({ op: 'read', fd: this.#fd, offset, length: into.length });
    into.set(new Uint8Array(bytes));
    return bytes.byteLength;
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    const copy = data.slice().buffer;
    return this.#host.call({ op: 'write', fd: this.#fd, offset, data: copy }, [copy]);
  }

  flush(): Promise<void> {
    return this.#host.call({ op: 'flush', fd: this.#fd });
  }

  truncate(size: number): Promise<void> {
    return this.#host.call({ op: 'truncate', fd: this.#fd, size });
  }

  close(): Promise<void> {
    return this.#host.call({ op: 'close', fd: this.#fd });
  }
}

/** The host side, run by opfs.worker.ts: answers requests on `scope` with sync access handles. */
export function serveOpfs(scope: { addEventListener(type: 'message', l: (ev: MessageEvent<OpfsRequest>) => void): void; postMessage(m: OpfsReply, transfer?: Transferable[]): void }): void {
  const files = new Map<number, SyncFile>();
  let nextFd = 1;
  const file = (fd: number): SyncFile => {
    const f = files.get(fd);
    if (!f) throw new PloopError('ECLOSED', `opfs: file descriptor ${fd} is not open (closed already?)`);
    return f;
  };
  scope.addEventListener('message', async (ev) => {
    const req = ev.data;
    try {
      let value: unknown;
      let transfer: Transferable[] = [];
      switch (req.op) {
        case 'open': {
          const f = await SyncFile.open(req.file, req);
          files.set(nextFd, f);
          value = { fd: nextFd++, shared: f.shared } satisfies Opened;
          break;
        }
        case 'probe': value = sharedHandlesSupported(); break;
        case 'read': {
          const buf = new Uint8Array(req.length);
          const n = file(req.fd).read(req.offset, buf);
          value = n === buf.length ? buf.buffer : buf.slice(0, n).buffer;
          transfer = [value as ArrayBuffer];
          break;
        }
        case 'write': file(req.fd).write(req.offset, new Uint8Array(req.data)); break;
        case 'truncate': file(req.fd).truncate(req.size); break;
        case 'size': value = file(req.fd).size(); break;
        case 'flush': file(req.fd).flush(); break;
        case 'close': files.get(req.fd)?.close(); files.delete(req.fd); break;
        default: throw new PloopError('EINVAL', `opfs: unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
      }
      scope.postMessage({ id: req.id, ok: true, value }, transfer);
    } catch (e) {
      const err = e instanceof PloopError ? e : new PloopError('EIO', `opfs: ${req.op} failed: ${(e as Error)?.message ?? String(e)}`);
      scope.postMessage({ id: req.id, ok: false, error: err.toJSON() });
    }
  });
}

// SPDX-License-Identifier: MIT
// Loads the AssemblyScript core over one shared WebAssembly.Memory, owns the typed views on it
// and a small region allocator (the memory holds no garbage-collected objects: every region is
// laid out by this file). Status codes from the core become PloopErrors here.

import { PloopError } from '../errors.js';
import {
  CORE_CONSTANTS, CORE_FUNCTION_ARITY, STATUS_RANGE, STATUS_NOSPACE, STATUS_BAD_PAGE, STATUS_BAD_SLOT, STATUS_NO_ROOM,
  type CoreExports,
} from './wasm-interface.generated.js';

const WASM_PAGE_BYTES = 65536;
const MAX_PAGES = 32768;
const STATUS_TEXT: Record<number, string> = {
  [STATUS_RANGE]: 'offset or cluster outside the virtual disk',
  [STATUS_NOSPACE]: 'no free cluster left',
  [STATUS_BAD_PAGE]: 'md page number beyond the BAT',
  [STATUS_BAD_SLOT]: 'slot number beyond the allocation bitmap',
  [STATUS_NO_ROOM]: 'output buffer too small',
};

/** Throw a PloopError for a negative status; returns the value otherwise. */
export function checkStatus(operation: string, status: number, data: Record<string, unknown> = {}): number {
  if (status >= 0) return status;
  const code = status === STATUS_RANGE ? 'ERANGE' : status === STATUS_NOSPACE ? 'ENOSPC' : 'EINVAL';
  throw new PloopError(code, `${operation}: ${STATUS_TEXT[status] ?? `status ${status}`}`, { status, ...data });
}

/**
 * What in `exports` (a module's instance exports) differs from the interface this library was
 * built with (src/core/wasm-interface.generated.ts): a constant with another value or missing, a
 * function missing or taking another number of parameters. Empty when they agree.
 */
export function interfaceMismatches(exports: WebAssembly.Exports): string[] {
  const found: string[] = [];
  for (const [name, expected] of Object.entries(CORE_CONSTANTS)) {
    const global = exports[name];
    // An i32 global reads back signed: a u32 constant past 2^31 is the same bits.
    const value = global instanceof WebAssembly.Global ? global.value : undefined;
    if (value !== expected && value !== (expected | 0)) found.push(`${name} is ${value ?? 'missing'} in the module, ${expected} here`);
  }
  for (const [name, arity] of Object.entries(CORE_FUNCTION_ARITY)) {
    const fn = exports[name];
    if (typeof fn !== 'function') found.push(`function ${name} is missing in the module`);
    else if (fn.length !== arity) found.push(`function ${name} takes ${fn.length} parameters in the module, ${arity} here`);
  }
  return found;
}

/** One instance of the core over one memory, plus the allocator for regions in it. */
export class WasmCore {
  readonly memory: WebAssembly.Memory;
  readonly exports: CoreExports;
  readonly module: WebAssembly.Module;
  #buffer: ArrayBufferLike | null = null;
  #u8!: Uint8Array;
  #u32!: Uint32Array;
  #i32!: Int32Array;
  #f64!: Float64Array;
  /** Free regions, sorted by address: [start, bytes]. */
  #free: Array<[number, number]> = [];
  #used = new Map<number, number>();
  #top: number;

  private constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, instance: WebAssembly.Instance) {
    this.module = module;
    this.memory = memory;
    // A module from another build of assembly/ would misread every record: refuse it.
    const mismatches = interfaceMismatches(instance.exports);
    if (mismatches.length > 0) {
      throw new PloopError('EINVAL', `ploop.wasm does not match this library (${mismatches.join('; ')}); rebuild with npm run build`, { mismatches });
    }
    this.exports = instance.exports as unknown as CoreExports;
    // Address 0 is kept unused so that 0 never names a region.
    this.#top = 64;
  }

  /**
   * Instantiate a module over a new shared memory, or over `memory` that another thread owns
   * (a runner): such an instance reads and changes the memory but allocates no regions in it.
   */
  static async instantiate(module: WebAssembly.Module, memory?: WebAssembly.Memory): Promise<WasmCore> {
    const mem = memory ?? new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES, shared: true });
    const instance = await WebAssembly.instantiate(module, { env: { memory: mem } });
    const core = new WasmCore(module, mem, instance);
    core.#foreign = !!memory;
    return core;
  }

  #foreign = false;

  get u8(): Uint8Array {
    this.#refresh();
    return this.#u8;
  }
  get u32(): Uint32Array {
    this.#refresh();
    return this.#u32;
  }
  get i32(): Int32Array {
    this.#refresh();
    return this.#i32;
  }
  get f64(): Float64Array {
    this.#refresh();
    return this.#f64;
  }

  /** Views are re-made after memory.grow(), which hands out a new buffer object. */
  #refresh(): void {
    const buffer = this.memory.buffer;
    if (buffer === this.#buffer) return;
    this.#buffer = buffer;
    this.#u8 = new Uint8Array(buffer);
    this.#u32 = new Uint32Array(buffer);
    this.#i32 = new Int32Array(buffer);
    this.#f64 = new Float64Array(buffer);
  }

  /**
   * Refuse early, with the error alloc() would give, a region that can never fit: callers that
   * fetch data before allocating (a BAT read over HTTP) check first, so a lying header costs
   * neither a download nor memory.
   */
  assertRoom(bytes: number): void {
    const largestFree = this.#free.reduce((most, [, length]) => Math.max(most, length), 0);
    if (bytes > MAX_PAGES * WASM_PAGE_BYTES - this.#top && bytes > largestFree) {
      throw new PloopError('ENOSPC', `WebAssembly memory: ${bytes} more bytes would pass the ${MAX_PAGES * WASM_PAGE_BYTES}-byte limit`, { bytes });
    }
  }

  /** Reserve `bytes` of zeroed memory aligned to `align` (a power of two ≥ 8); returns its address. */
  alloc(bytes: number, align = 8): number {
    if (this.#foreign) throw new PloopError('EINVAL', 'WebAssembly memory: a runner cannot allocate regions; the thread that owns the memory does');
    const size = Math.ceil(Math.max(bytes, 8) / 8) * 8;
    for (let i = 0; i < this.#free.length; i++) {
      const [start, len] = this.#free[i];
      const at = Math.ceil(start / align) * align;
      if (at + size <= start + len) {
        this.#free.splice(i, 1);
        if (at > start) this.#insertFree(start, at - start);
        if (at + size < start + len) this.#insertFree(at + size, start + len - at - size);
        this.#used.set(at, size);
        this.u8.fill(0, at, at + size);
        return at;
      }
    }
    const at = Math.ceil(this.#top / align) * align;
    const end = at + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / WASM_PAGE_BYTES);
      if (have / WASM_PAGE_BYTES + pages > MAX_PAGES) {
        throw new PloopError('ENOSPC', `WebAssembly memory: ${bytes} more bytes would pass the ${MAX_PAGES * WASM_PAGE_BYTES}-byte limit`, { bytes });
      }
      this.memory.grow(pages);
    }
    if (at > this.#top) this.#insertFree(this.#top, at - this.#top);
    this.#top = end;
    this.#used.set(at, size);
    return at;
  }

  /** Give a region back. */
  free(address: number): void {
    const size = this.#used.get(address);
    if (size === undefined) throw new PloopError('EINVAL', `WebAssembly memory: free of unknown region ${address}`);
    this.#used.delete(address);
    this.#insertFree(address, size);
  }

  /** Bytes currently handed out. */
  get usedBytes(): number {
    let n = 0;
    for (const size of this.#used.values()) n += size;
    return n;
  }

  #insertFree(start: number, len: number): void {
    let i = 0;
    while (i < this.#free.length && this.#free[i][0] < start) i++;
    this.#free.splice(i, 0, [start, len]);
    // Merge with neighbours so that large regions can be reused.
    if (i + 1 < this.#free.length && start + len === this.#free[i + 1][0]) {
      this.#free[i][1] += this.#free[i + 1][1];
      this.#free.splice(i + 1, 1);
    }
    if (i > 0 && this.#free[i - 1][0] + this.#free[i - 1][1] === start) {
      this.#free[i - 1][1] += this.#free[i][1];
      this.#free.splice(i, 1);
    }
  }
}

let shared: Promise<WasmCore> | null = null;
let wasmUrlOverride: URL | null = null;

/** Load ploop.wasm from `url` instead of beside the bundle (call before the first image opens). */
export function setWasmUrl(url: string | URL): void {
  wasmUrlOverride = new URL(url, typeof location !== 'undefined' ? location.href : undefined);
}

/**
 * Where Node finds ploop.wasm, from this module: dist/src/core/wasm.js → dist/ploop.wasm (also
 * the CLI bundle's dist/bin/cli/), src/core/wasm.ts under tsx → dist/ploop.wasm. Held in a
 * variable, not written as `new URL('…', import.meta.url)`: bundlers copy the file such a literal
 * names into a browser build, and these paths exist only in Node's layouts.
 */
const NODE_WASM_PATHS = ['../../ploop.wasm', '../../dist/ploop.wasm'];

async function loadModuleBytes(): Promise<Uint8Array> {
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  // In a page, beside the bundle (dist/web/ploop.js and its workers; a bundler that understands
  // this pattern copies the file into its own build and rewrites the URL).
  const candidates = wasmUrlOverride ? [wasmUrlOverride]
    : isNode ? NODE_WASM_PATHS.map((p) => new URL(p, import.meta.url))
    : [new URL('./ploop.wasm', import.meta.url)];
  let lastError: unknown;
  for (const url of candidates) {
    try {
      if (isNode && url.protocol === 'file:') return await readNodeFile(url);
      const response = await fetch(url);
      if (response.ok) return new Uint8Array(await response.arrayBuffer());
      lastError = new Error(`HTTP ${response.status} for ${url}`);
    } catch (e) {
      lastError = e;
    }
  }
  throw new PloopError('EIO', `cannot load ploop.wasm (run npm run build first): ${lastError instanceof Error ? lastError.message : lastError}`);
}

/**
 * Read a file in Node without an `import('node:fs/promises')` that a browser bundler would try
 * to resolve (webpack refuses the node: scheme): process.getBuiltinModule (Node ≥ 20.16), else
 * an import whose name bundlers do not see.
 */
async function readNodeFile(url: URL): Promise<Uint8Array> {
  const name = 'node:fs/promises';
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  const fs = (getBuiltin?.(name) ?? (await import(/* @vite-ignore */ /* webpackIgnore: true */ name))) as typeof import('node:fs/promises');
  return fs.readFile(url);
}

/** The process-wide core (one memory shared by every image opened here). */
export function getCore(): Promise<WasmCore> {
  shared ??= (async () => {
    const bytes = await loadModuleBytes();
    const module = await WebAssembly.compile(bytes as BufferSource);
    return WasmCore.instantiate(module);
  })();
  return shared;
}

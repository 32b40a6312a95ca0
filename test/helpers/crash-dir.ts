// A DeltaDirectory that records every mutating operation, across all of its files, in one
// global sequence, so that a test can rebuild the folder as a crash at any point would have
// left it: the initial state plus the first k operations (optionally with the last write torn
// at a sector boundary, or with some writes not yet flushed lost).

import type { BlockStore, DeltaDirectory } from '../../src/index.ts';
import { MemoryDirectory } from '../../src/index.ts';

export type CrashOp =
  | { kind: 'create'; file: string }
  | { kind: 'write'; file: string; offset: number; data: Uint8Array }
  | { kind: 'truncate'; file: string; size: number }
  | { kind: 'flush'; file: string }
  | { kind: 'writeTextAtomic'; file: string; text: string }
  | { kind: 'remove'; file: string };

/** Every file's bytes and every text file, copied. */
export interface DirState {
  files: Map<string, Uint8Array>;
  texts: Map<string, string>;
}

/** How a crash after the first k operations is applied. */
export interface CrashPoint {
  /** Operations that reached the disk: ops[0..k). */
  k: number;
  /** Apply only the sectors before `tornAt` (a 512-aligned file offset inside the write) of ops[k-1]. */
  tornAt?: number;
  /** Indices of writes (not yet flushed at the crash) that are lost. */
  lost?: ReadonlySet<number>;
}

export const SECTOR = 512;

/** A store that logs write/truncate/flush into the directory's sequence, then applies them. */
class RecordingStore implements BlockStore {
  readonly name = 'crash-recording';
  readonly #inner: BlockStore;
  readonly #file: string;
  readonly #dir: CrashDirectory;

  constructor(inner: BlockStore, file: string, dir: CrashDirectory) {
    this.#inner = inner;
    this.#file = file;
    this.#dir = dir;
  }
  get writable(): boolean {
    return this.#inner.writable;
  }
  size(): Promise<number> {
    return this.#inner.size();
  }
  read(offset: number, into: Uint8Array): Promise<number> {
    return this.#inner.read(offset, into);
  }
  // Logged when called: MemoryStore applies the change before its promise settles, in call order.
  write(offset: number, data: Uint8Array): Promise<void> {
    this.#dir.record({ kind: 'write', file: this.#file, offset, data: data.slice() });
    return this.#inner.write(offset, data);
  }
  truncate(size: number): Promise<void> {
    this.#dir.record({ kind: 'truncate', file: this.#file, size });
    return this.#inner.truncate(size);
  }
  flush(): Promise<void> {
    this.#dir.record({ kind: 'flush', file: this.#file });
    return this.#inner.flush();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

export class CrashDirectory implements DeltaDirectory {
  readonly inner: MemoryDirectory;
  readonly ops: CrashOp[] = [];
  /** Off while a test builds the initial state. */
  recording = true;

  constructor(inner = new MemoryDirectory('crash')) {
    this.inner = inner;
  }

  get name(): string {
    return this.inner.name;
  }

  record(op: CrashOp): void {
    if (this.recording) this.ops.push(op);
  }

  async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<BlockStore> {
    if (options.create) this.record({ kind: 'create', file });
    const store = await this.inner.openStore(file, options);
    return options.writable || options.create ? new RecordingStore(store, file, this) : store;
  }

  readText(file: string): Promise<string | null> {
    return this.inner.readText(file);
  }

  async writeTextAtomic(file: string, text: string): Promise<void> {
    this.record({ kind: 'writeTextAtomic', file, text });
    await this.inner.writeTextAtomic(file, text);
  }

  async remove(file: string): Promise<void> {
    this.record({ kind: 'remove', file });
    await this.inner.remove(file);
  }

  /** A copy of what the folder holds now. */
  state(): DirState {
    return copyState(this.inner);
  }
}

export function copyState(dir: MemoryDirectory): DirState {
  return {
    files: new Map([...dir.files].map(([name, store]) => [name, store.bytes().slice()])),
    texts: new Map(dir.texts),
  };
}

/** A plain MemoryDirectory holding `state`. */
export async function directoryFrom(state: DirState, name = 'crashed'): Promise<MemoryDirectory> {
  const dir = new MemoryDirectory(name);
  for (const [file, bytes] of state.files) await (await dir.openStore(file, { create: true })).write(0, bytes.slice());
  for (const [file, text] of state.texts) dir.texts.set(file, text);
  return dir;
}

/** The folder after a crash at `point`: `initial` plus the operations that reached the disk. */
export async function crashedDirectory(initial: DirState, ops: readonly CrashOp[], point: CrashPoint): Promise<MemoryDirectory> {
  const dir = await directoryFrom(initial);
  for (let i = 0; i < point.k; i++) {
    const op = ops[i];
    if (point.lost?.has(i)) continue;
    switch (op.kind) {
      case 'create':
        await dir.openStore(op.file, { create: true });
        break;
      case 'write': {
        const torn = i === point.k - 1 && point.tornAt !== undefined;
        const data = torn ? op.data.subarray(0, point.tornAt! - op.offset) : op.data;
        await (await dir.openStore(op.file, { writable: true })).write(op.offset, data);
        break;
      }
      case 'truncate':
        await (await dir.openStore(op.file, { writable: true })).truncate(op.size);
        break;
      case 'flush':
        break;
      case 'writeTextAtomic':
        await dir.writeTextAtomic(op.file, op.text);
        break;
      case 'remove':
        await dir.remove(op.file);
        break;
    }
  }
  return dir;
}

/** Where a write can tear: the middle 512-aligned file offset strictly inside it, or null. */
export function tearPoint(op: CrashOp): number | null {
  if (op.kind !== 'write') return null;
  const first = Math.floor(op.offset / SECTOR) * SECTOR + SECTOR;
  const last = Math.ceil((op.offset + op.data.length) / SECTOR) * SECTOR - SECTOR;
  if (first > last) return null;
  const n = (last - first) / SECTOR + 1;
  return first + Math.floor((n - 1) / 2) * SECTOR;
}

/** Writes among ops[0..k) that no later flush of their file (before k) made durable. */
export function unflushedWrites(ops: readonly CrashOp[], k: number): number[] {
  const out: number[] = [];
  const flushed = new Set<string>();
  for (let i = k - 1; i >= 0; i--) {
    const op = ops[i];
    if (op.kind === 'flush') flushed.add(op.file);
    else if (op.kind === 'write' && !flushed.has(op.file)) out.push(i);
    // A file created or removed after the write: the write is moot or the file is new.
    else if ((op.kind === 'create' || op.kind === 'remove') && !flushed.has(op.file)) flushed.add(op.file);
  }
  return out.reverse();
}

/** Crash points after which the folder differs from the one before (flushes change nothing). */
export function distinctCrashPoints(ops: readonly CrashOp[]): number[] {
  const ks = [0];
  for (let k = 1; k <= ops.length; k++) if (ops[k - 1].kind !== 'flush') ks.push(k);
  return ks;
}

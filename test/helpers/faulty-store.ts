// A store that fails chosen operations, as a disk or a browser store may: the Nth data write
// (offset at or past the first data byte), the Nth BAT write (below the data area, not the
// 64-byte header) or the Nth flush. A failed operation changes nothing and throws a plain
// Error, as a store outside this library would; the engine must turn it into a PloopError that
// names the operation.

import type { BlockStore } from '../../src/index.ts';

export type FaultKind = 'data-write' | 'bat-write' | 'flush';

export class FaultyStore implements BlockStore {
  readonly name = 'faulty';
  readonly inner: BlockStore;
  /** First byte of the data area (data_off * 512): writes at or past it are data writes. */
  readonly dataStart: number;
  readonly counts: Record<FaultKind, number> = { 'data-write': 0, 'bat-write': 0, flush: 0 };
  /** Operations that failed, in order. */
  readonly failures: Array<{ kind: FaultKind; offset?: number }> = [];
  #armed = new Map<FaultKind, number[]>();

  constructor(inner: BlockStore, dataStart: number) {
    this.inner = inner;
    this.dataStart = dataStart;
  }

  get writable(): boolean {
    return this.inner.writable;
  }

  /** Fail the `nth` (1-based, counted from now) operation of `kind`; may be called again to fail more. */
  failNth(kind: FaultKind, nth: number): void {
    const at = this.counts[kind] + nth;
    this.#armed.set(kind, [...(this.#armed.get(kind) ?? []), at]);
  }

  /** Counts one operation of `kind`; throws if it was chosen to fail. */
  #count(kind: FaultKind, offset?: number): void {
    const n = ++this.counts[kind];
    const armed = this.#armed.get(kind);
    const i = armed?.indexOf(n) ?? -1;
    if (i < 0) return;
    armed!.splice(i, 1);
    this.failures.push({ kind, offset });
    throw new Error(`injected ${kind} fault${offset === undefined ? '' : ` at byte ${offset}`}`);
  }

  size(): Promise<number> {
    return this.inner.size();
  }
  read(offset: number, into: Uint8Array): Promise<number> {
    return this.inner.read(offset, into);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (offset >= this.dataStart) this.#count('data-write', offset);
    else if (offset >= 64) this.#count('bat-write', offset);
    return this.inner.write(offset, data);
  }
  async flush(): Promise<void> {
    this.#count('flush');
    return this.inner.flush();
  }
  truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

// Power-cut simulation on top of crash-dir.ts: a DeltaDirectory whose stores log every write,
// truncate and flush in one global sequence, plus the requests a workload made (issued,
// acknowledged), so that a test can materialise the folder as a power cut after any prefix of
// the log left it — everything a completed flush covered is kept; each write no completed flush
// covered yet is kept, lost, or torn at a sector boundary — and judge what it reads.
//
// Unlike CrashDirectory (which logs a flush when it is called), a write here becomes durable only
// through a flush that was *called after the write completed* and has itself completed: that is
// the BlockStore contract ("every write that completed before the call"), so an engine relying on
// a write it did not wait for is caught.

import type { BlockStore } from '../../src/index.ts';
import { CrashDirectory, SECTOR, type CrashOp, type DirState } from './crash-dir.ts';
import { MemoryDirectory, MemoryStore } from '../../src/index.ts';
import type { Prng } from './prng.ts';
import type { WorkloadImage } from './workload.ts';

/** One request of the workload, as the checker needs it. */
export type PcRequest =
  | { id: number; kind: 'write'; offset: number; data: Uint8Array; file: string; issuedSeq: number; ackedSeq?: number }
  | { id: number; kind: 'discard'; offset: number; length: number; file: string; issuedSeq: number; ackedSeq?: number }
  | { id: number; kind: 'resize'; size: number; file: string; issuedSeq: number; ackedSeq?: number };

/** A request as a workload hands it in (the recorder numbers it). */
export type NewRequest = PcRequest extends infer R ? (R extends PcRequest ? Omit<R, 'id' | 'issuedSeq'> : never) : never;

interface FlushRecord {
  file: string;
  callSeq: number;
  /** Index in `ops` of the flush op logged at completion. */
  doneAt: number;
}

/** Who numbers a workload's requests: PowerCutDirectory, FlushSnapshots. */
export interface RequestRecorder {
  issue(request: NewRequest): PcRequest;
  acked(r: PcRequest): void;
}

/** `image` with its writes and discards logged as requests on `file`. */
export function trackRequests(recorder: RequestRecorder, image: WorkloadImage, file: string): WorkloadImage {
  return {
    get size() {
      return image.size;
    },
    get clusterSize() {
      return image.clusterSize;
    },
    async write(offset: number, data: Uint8Array) {
      const r = recorder.issue({ kind: 'write', offset, data: data.slice(), file });
      await image.write(offset, data);
      recorder.acked(r);
    },
    async discard(offset: number, length: number) {
      const r = recorder.issue({ kind: 'discard', offset, length, file });
      await image.discard(offset, length);
      recorder.acked(r);
    },
    flush: () => image.flush(),
    read: (offset: number, length: number) => image.read(offset, length),
  };
}

/** What happens to one write that no completed flush covered: lost, or torn (a file offset). */
export type Fate = 'lost' | { tornAt: number };

export interface PowerCut {
  /** ops[0..k) were issued to the disk before the cut. */
  k: number;
  /** Writes among them that did not (wholly) reach the medium; others are kept. */
  fates: Map<number, Fate>;
}

/** A store that logs into its PowerCutDirectory. */
class PowerCutStore implements BlockStore {
  readonly name = 'power-cut';
  readonly inner: BlockStore;
  readonly file: string;
  readonly #dir: PowerCutDirectory;

  /**
   * Present when the directory has `durableWrites` (as NodeFileStore, through O_DSYNC): the write
   * is durable, size and all, once it completed; the file's other writes are not.
   */
  readonly writeDurably?: (offset: number, data: Uint8Array) => Promise<void>;
  /** As the directory's `sparseStores` said when the store was opened (see there). */
  readonly sparse: boolean;

  constructor(inner: BlockStore, file: string, dir: PowerCutDirectory) {
    this.inner = inner;
    this.file = file;
    this.#dir = dir;
    this.sparse = dir.sparseStores;
    if (dir.durableWrites) {
      this.writeDurably = async (offset, data) => {
        this.#dir.written(this.file, offset, data.length);
        const i = this.#dir.logOp({ kind: 'write', file: this.file, offset, data: data.slice() });
        await this.inner.write(offset, data);
        if (i >= 0) this.#dir.durableAlone(this.file, i);
      };
    }
  }
  get writable(): boolean {
    return this.inner.writable;
  }
  size(): Promise<number> {
    return this.inner.size();
  }
  read(offset: number, into: Uint8Array): Promise<number> {
    return this.inner.read(offset, into);
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.#dir.written(this.file, offset, data.length);
    const i = this.#dir.logOp({ kind: 'write', file: this.file, offset, data: data.slice() });
    const p = this.inner.write(offset, data);
    // Completed writes wait for the next flush call of their file to become durable.
    if (i >= 0) p.then(() => this.#dir.completed(this.file, i), () => {});
    return p;
  }
  truncate(size: number): Promise<void> {
    this.#dir.truncated(this.file, size);
    this.#dir.logOp({ kind: 'truncate', file: this.file, size });
    return this.inner.truncate(size);
  }
  async flush(): Promise<void> {
    const call = this.#dir.flushCalled(this.file);
    await this.inner.flush();
    this.#dir.flushDone(call);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export class PowerCutDirectory extends CrashDirectory implements RequestRecorder {
  /** Global event counter: ops, request marks and flush calls are ordered by it. */
  seq = 0;
  /** Sequence number of each op in `ops`. */
  readonly opSeq: number[] = [];
  /** For a write op: the index of the flush op that made it durable (absent: never). */
  readonly durableAt = new Map<number, number>();
  readonly flushes: FlushRecord[] = [];
  readonly requests: PcRequest[] = [];
  readonly #completed = new Map<string, number[]>();

  /** Stores opened from now on have writeDurably (see PowerCutStore). */
  durableWrites = false;
  /**
   * Stores opened from now on say they are `sparse` (as NodeFileStore): the engine then writes
   * real zeros wherever a file would otherwise keep a hole, and `unwritten()` shows where it did not.
   */
  sparseStores = false;
  /** Per file: the byte ranges some write covered (recording or not), sorted and merged. */
  readonly #written = new Map<string, Array<[number, number]>>();

  /** Note that [offset, offset + length) of `file` was written. */
  written(file: string, offset: number, length: number): void {
    if (length === 0) return;
    const merged: Array<[number, number]> = [];
    let start = offset;
    let end = offset + length;
    for (const [a, b] of this.#written.get(file) ?? []) {
      if (b < start || a > end) merged.push([a, b]);
      else {
        start = Math.min(start, a);
        end = Math.max(end, b);
      }
    }
    merged.push([start, end]);
    merged.sort((x, y) => x[0] - y[0]);
    this.#written.set(file, merged);
  }

  /** A truncate cuts the written ranges (growing adds none: the new bytes are a hole). */
  truncated(file: string, size: number): void {
    const ranges = (this.#written.get(file) ?? []).filter(([a]) => a < size).map(([a, b]): [number, number] => [a, Math.min(b, size)]);
    this.#written.set(file, ranges);
  }

  /** The ranges of [0, size) of `file` that no write covered: the holes a real file would have. */
  unwritten(file: string, size: number): Array<[number, number]> {
    const holes: Array<[number, number]> = [];
    let at = 0;
    for (const [a, b] of this.#written.get(file) ?? []) {
      if (a > at) holes.push([at, Math.min(a, size)]);
      at = Math.max(at, b);
      if (at >= size) break;
    }
    if (at < size) holes.push([at, size]);
    return holes.filter(([a, b]) => b > a);
  }

  /** Log an op; returns its index, or -1 when not recording. */
  logOp(op: CrashOp): number {
    if (!this.recording) return -1;
    this.ops.push(op);
    this.opSeq.push(this.seq++);
    return this.ops.length - 1;
  }

  override record(op: CrashOp): void {
    this.logOp(op);
  }

  completed(file: string, index: number): void {
    const list = this.#completed.get(file) ?? [];
    list.push(index);
    this.#completed.set(file, list);
  }

  flushCalled(file: string): { file: string; covered: number[]; callSeq: number } {
    const covered = this.#completed.get(file) ?? [];
    this.#completed.set(file, []);
    return { file, covered, callSeq: this.seq++ };
  }

  /** Write op `index` of `file` completed durably on its own: durable from a marker op on (no flush of the file). */
  durableAlone(file: string, index: number): void {
    const at = this.logOp({ kind: 'flush', file });
    if (at >= 0) this.durableAt.set(index, at);
  }

  flushDone(call: { file: string; covered: number[]; callSeq: number }): void {
    const at = this.logOp({ kind: 'flush', file: call.file });
    if (at < 0) return;
    for (const i of call.covered) this.durableAt.set(i, at);
    this.flushes.push({ file: call.file, callSeq: call.callSeq, doneAt: at });
  }

  override async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<BlockStore> {
    if (options.create) this.logOp({ kind: 'create', file });
    const store = await this.inner.openStore(file, options);
    return options.writable || options.create ? new PowerCutStore(store, file, this) : store;
  }

  /** The file a store of this directory writes (for requests on an image's top store). */
  static fileOf(store: BlockStore): string {
    if (!(store instanceof PowerCutStore)) throw new Error(`store ${store.name} was not opened through a PowerCutDirectory`);
    return store.file;
  }

  /** Log that a request starts; call `acked` on it when it resolved. */
  issue(request: NewRequest): PcRequest {
    const r = { ...request, id: this.requests.length, issuedSeq: this.seq++ } as PcRequest;
    if (this.recording) this.requests.push(r);
    return r;
  }

  acked(r: PcRequest): void {
    r.ackedSeq = this.seq++;
  }

  /** Writes among ops[0..k) that no flush completed before the cut made durable. */
  volatileWrites(k: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < k; i++) {
      if (this.ops[i].kind !== 'write') continue;
      const at = this.durableAt.get(i);
      if (at === undefined || at >= k) out.push(i);
    }
    return out;
  }

  /** Sequence number of the cut after k ops (everything logged before op k happened before it). */
  cutSeq(k: number): number {
    return k < this.opSeq.length ? this.opSeq[k] : this.seq;
  }

  /**
   * Requests whose content must read back exactly after the cut: acknowledged before the call of
   * a flush of their file that completed before the cut.
   */
  durableRequests(k: number): Set<number> {
    const out = new Set<number>();
    const cut = this.cutSeq(k);
    for (const r of this.requests) {
      if (r.ackedSeq === undefined) continue;
      // A resize is complete once its descriptor (replaced atomically, never lost) names the size.
      if (r.kind === 'resize') {
        if (r.ackedSeq < cut) out.add(r.id);
        continue;
      }
      if (this.flushes.some((f) => f.file === r.file && f.callSeq > r.ackedSeq! && f.doneAt < k)) out.add(r.id);
    }
    return out;
  }

  /** Requests issued before the cut (their content may or may not be there). */
  issuedRequests(k: number): PcRequest[] {
    const cut = this.cutSeq(k);
    return this.requests.filter((r) => r.issuedSeq < cut);
  }

  /**
   * The folder after the power cut, built in buffers reused from one call to the next (tens of
   * thousands of states would otherwise spend most of their time faulting in fresh memory). The
   * folder returned is valid until the next call.
   */
  materialiseReusing(initial: DirState, cut: PowerCut): MemoryDirectory {
    const files = new Map<string, { bytes: Uint8Array; size: number }>();
    const open = (file: string, fresh: boolean) => {
      let f = files.get(file);
      if (!f || fresh) {
        const start = fresh ? undefined : initial.files.get(file);
        f = { bytes: this.#buffer(file, start?.length ?? 0), size: start?.length ?? 0 };
        if (start) f.bytes.set(start);
        files.set(file, f);
      }
      return f;
    };
    const resize = (f: { bytes: Uint8Array; size: number }, file: string, size: number) => {
      if (size > f.bytes.length) f.bytes = this.#buffer(file, size, f.bytes.subarray(0, f.size));
      else if (size < f.size) f.bytes.fill(0, size, f.size);
      f.size = size;
    };
    for (const file of initial.files.keys()) open(file, false);
    const texts = new Map(initial.texts);
    for (let i = 0; i < cut.k; i++) {
      const op = this.ops[i];
      const fate = cut.fates.get(i);
      if (fate === 'lost') continue;
      if (op.kind === 'create') open(op.file, true);
      else if (op.kind === 'remove') {
        files.delete(op.file);
        texts.delete(op.file);
      } else if (op.kind === 'writeTextAtomic') texts.set(op.file, op.text);
      else if (op.kind === 'truncate') resize(open(op.file, false), op.file, op.size);
      else if (op.kind === 'write') {
        const data = fate ? op.data.subarray(0, fate.tornAt - op.offset) : op.data;
        const f = open(op.file, false);
        if (op.offset + data.length > f.size) resize(f, op.file, op.offset + data.length);
        f.bytes.set(data, op.offset);
      }
    }
    const dir = new MemoryDirectory('power-cut');
    for (const [file, f] of files) dir.files.set(file, new MemoryStore(f.bytes.subarray(0, f.size)));
    for (const [file, text] of texts) dir.texts.set(file, text);
    return dir;
  }

  readonly #pool = new Map<string, ArrayBuffer>();

  /** A zeroed buffer of `size` bytes for `file` (holding `keep` at its start), from the pool. */
  #buffer(file: string, size: number, keep?: Uint8Array): Uint8Array {
    let buf = this.#pool.get(file);
    if (!buf || buf.byteLength < size) {
      buf = new ArrayBuffer(Math.max(size * 2, 1 << 20));
      this.#pool.set(file, buf);
    }
    const view = new Uint8Array(buf, 0, buf.byteLength);
    if (keep && keep.buffer !== buf) view.set(keep);
    // Past a file's size its buffer is all zeros: a write past the end leaves a zero gap.
    view.fill(0, keep?.length ?? 0);
    return view;
  }
}

/** 512-aligned file offsets strictly inside a write, where it can tear. */
export function tearPoints(op: CrashOp): number[] {
  if (op.kind !== 'write') return [];
  const out: number[] = [];
  for (let at = Math.floor(op.offset / SECTOR) * SECTOR + SECTOR; at < op.offset + op.data.length; at += SECTOR) out.push(at);
  return out;
}

/** A random fate for each volatile write: kept (absent), lost or torn, with the given odds. */
export function randomFates(rng: Prng, dir: PowerCutDirectory, volatile: number[], pLost = 0.35, pTorn = 0.25): Map<number, Fate> {
  const fates = new Map<number, Fate>();
  for (const i of volatile) {
    const r = rng.nextU32() / 0x100000000;
    if (r < pLost) fates.set(i, 'lost');
    else if (r < pLost + pTorn) {
      const points = tearPoints(dir.ops[i]);
      if (points.length > 0) fates.set(i, { tornAt: rng.pick(points) });
    }
  }
  return fates;
}

// Store faults beyond test/runners/faults.test.ts (which covers the Nth data write, BAT write
// and flush of one in-thread image): read faults (plain reads and the copy-up read of a
// copy-on-write), permanent faults (every write, flush or read fails until the store heals),
// faults under a delta stack, and faults in the middle of merge and resize. Every affected call
// rejects with a PloopError that names the operation; every call that completed survives; the
// image never maps a cluster whose data did not reach the store (reads show old or new content
// per sector, judged by power-cut-check.ts); once the fault is gone the operation can be done
// again, and the folder reopens strictly and checks clean.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PloopError, MemoryDirectory, initStack, openStackDir, snapshotStack, mergeStack, resizeStack, readDescriptor, descriptorChain, checkImage,
  type BlockStore, type DeltaDirectory, type PloopImage,
} from '../../src/index.ts';
import { FaultyStore } from '../helpers/faulty-store.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { randomOp } from '../helpers/workload.ts';
import { assertContentPlausible } from '../helpers/power-cut-check.ts';
import type { PcRequest } from '../helpers/power-cut.ts';

const C = 32 << 10;
const SIZE = 1 << 20;

type Operation = 'read' | 'write' | 'flush' | 'truncate';

/**
 * FaultyStore counting every write as a data write (dataStart 0), plus reads and truncates, and
 * permanent faults: an operation kind that is `broken` fails every time until healed.
 */
class FaultStore extends FaultyStore {
  readonly broken = new Set<Operation>();
  readonly #readFaults: number[] = [];
  reads = 0;

  constructor(inner: BlockStore) {
    super(inner, 0);
  }
  failNthRead(nth: number): void {
    this.#readFaults.push(this.reads + nth);
  }
  #fail(op: Operation, offset?: number): never {
    this.failures.push({ kind: op === 'write' ? 'data-write' : 'flush', offset });
    throw new Error(`injected ${op} fault${offset === undefined ? '' : ` at byte ${offset}`}`);
  }
  override async read(offset: number, into: Uint8Array): Promise<number> {
    this.reads++;
    const i = this.#readFaults.indexOf(this.reads);
    if (i >= 0) this.#readFaults.splice(i, 1);
    if (i >= 0 || this.broken.has('read')) this.#fail('read', offset);
    return super.read(offset, into);
  }
  override async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.broken.has('write')) this.#fail('write', offset);
    return super.write(offset, data);
  }
  override async flush(): Promise<void> {
    if (this.broken.has('flush')) this.#fail('flush');
    return super.flush();
  }
  override async truncate(size: number): Promise<void> {
    if (this.broken.has('truncate')) this.#fail('truncate', size);
    return super.truncate(size);
  }
}

/** A MemoryDirectory whose stores are FaultStores (one per file, kept), and whose descriptor writes can fail. */
class FaultDirectory implements DeltaDirectory {
  readonly inner = new MemoryDirectory('faulty');
  readonly stores = new Map<string, FaultStore>();
  failDescriptorWrites = false;
  get name(): string {
    return this.inner.name;
  }
  async openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<BlockStore> {
    const inner = await this.inner.openStore(file, options);
    if (!options.writable && !options.create) return inner;
    // One FaultStore per file (MemoryDirectory hands every writer the same store): faults armed
    // on a file apply to every handle opened on it later.
    const kept = this.stores.get(file);
    if (kept && !options.create) return kept;
    const store = new FaultStore(inner);
    this.stores.set(file, store);
    return store;
  }
  readText(file: string): Promise<string | null> {
    return this.inner.readText(file);
  }
  async writeTextAtomic(file: string, text: string): Promise<void> {
    if (this.failDescriptorWrites) throw new PloopError('EIO', `replace ${file} failed: injected descriptor fault`);
    await this.inner.writeTextAtomic(file, text);
  }
  remove(file: string): Promise<void> {
    return this.inner.remove(file);
  }
  /** Break `op` on `file` from now on (also for handles opened later), or heal everything with null. */
  async breakOp(file: string, op: Operation | null): Promise<void> {
    if (op === null) {
      for (const s of this.stores.values()) s.broken.clear();
      this.failDescriptorWrites = false;
      return;
    }
    if (!this.stores.has(file)) await (await this.openStore(file, { writable: true })).close();
    this.stores.get(file)!.broken.add(op);
  }

  /** The FaultStore of the last writable handle on `file` (opened now if there is none). */
  async storeOf(file: string): Promise<FaultStore> {
    if (!this.stores.has(file)) await (await this.openStore(file, { writable: true })).close();
    return this.stores.get(file)!;
  }
}

function assertNamed(e: unknown, op: RegExp, what: string): void {
  assert.ok(e instanceof PloopError, `${what}: rejects with a PloopError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  assert.equal(e.code, 'EIO', `${what}: code (${e.message})`);
  assert.match(e.message, op, `${what}: the message names the operation`);
}

/** Every delta of the folder checks clean (a set in-use flag is repaired first: a failed close may leave it). */
async function assertFolderClean(dir: DeltaDirectory, what: string): Promise<void> {
  for (const c of descriptorChain(await readDescriptor(dir))) {
    const store = await dir.openStore(c.file, { writable: true });
    let r = await checkImage(store);
    // A delta whose close failed (its flush did) keeps the in-use flag and, like after a crash,
    // its preallocated tail as leaked clusters: repair those two, nothing else.
    if (!r.clean && r.findings.every((f) => f.kind === 'unclean' || f.kind === 'leak')) {
      await checkImage(store, { repair: true });
      r = await checkImage(store);
    }
    assert.ok(r.clean, `${what}: ${c.file}: ${JSON.stringify(r.findings)}`);
    assert.equal(r.leakedClusters, 0, `${what}: ${c.file} leaks`);
    await store.close();
  }
}

/** Requests on an image, logged for assertContentPlausible (completed ones are durable once flushed). */
class Requests {
  readonly list: PcRequest[] = [];
  readonly done = new Set<number>();
  async run(image: PloopImage, op: { kind: 'write'; offset: number; data: Uint8Array } | { kind: 'discard'; offset: number; length: number }): Promise<unknown> {
    const r: PcRequest = op.kind === 'write'
      ? { id: this.list.length, kind: 'write', offset: op.offset, data: op.data.slice(), file: '', issuedSeq: this.list.length }
      : { id: this.list.length, kind: 'discard', offset: op.offset, length: op.length, file: '', issuedSeq: this.list.length };
    this.list.push(r);
    try {
      await (op.kind === 'write' ? image.write(op.offset, op.data) : image.discard(op.offset, op.length));
      this.done.add(r.id);
      return null;
    } catch (e) {
      return e;
    }
  }
}

for (const [op, seed] of [['write', 0xf1], ['flush', 0xf2], ['read', 0xf3]] as Array<[Operation, number]>) {
  test(`a store whose every ${op} fails for a while: each affected request rejects naming "${op}", nothing unwritten gets mapped, and after healing the image works, closes and checks clean`, { timeout: 60_000 }, async () => {
    const dir = new FaultDirectory();
    await initStack(dir, { size: SIZE, clusterSize: C });
    const rng = new Prng(seed);
    const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
    const store = dir.stores.get('root.hds')!;
    const req = new Requests();
    let failed = 0;
    let reads = 0;
    for (let round = 0; round < 60; round++) {
      const broken = round >= 20 && round < 40;
      if (broken) store.broken.add(op);
      else store.broken.clear();
      const lo = rng.int(SIZE / C - 4) * C;
      const o = randomOp(rng, lo, lo + 4 * C, C);
      if (o) {
        const e = await req.run(image, o);
        if (e) {
          failed++;
          assert.ok(broken, `round ${round}: a request failed with no fault armed: ${String(e)}`);
          assertNamed(e, new RegExp(`${op}.*injected ${op} fault`), `round ${round} (${o.kind} at ${o.offset})`);
        }
      }
      if (rng.chance(0.3)) {
        const e = await image.flush().then(() => null, (x: unknown) => x);
        if (e) {
          failed++;
          assert.ok(broken, `round ${round}: a flush failed with no fault armed: ${String(e)}`);
          assertNamed(e, new RegExp(`${op}.*injected ${op} fault`), `flush in round ${round}`);
        }
      }
      if (!broken) {
        // Reads work when the store does: completed requests read back, failed ones are old or new.
        const content = await image.read(0, SIZE);
        reads++;
        assertContentPlausible(content, { issued: req.list, durable: req.done, initial: new Uint8Array(SIZE) }, `round ${round}, while open`);
      } else if (op === 'read' && image.allocatedClusters() > 0) {
        await assert.rejects(image.read(0, SIZE), (e: unknown) => {
          assertNamed(e, /read.*injected read fault/, `read in round ${round}`);
          return true;
        });
        failed++;
      }
    }
    assert.ok(failed >= 3 && reads >= 30, `only ${failed} calls failed, ${reads} whole-disk reads while healthy`);
    store.broken.clear();
    await image.close();
    const reopened = await openStackDir(dir, { onWarning: () => {} });
    try {
      assertContentPlausible(await reopened.read(0, SIZE), { issued: req.list, durable: req.done, initial: new Uint8Array(SIZE) }, 'after reopening');
    } finally {
      await reopened.close();
    }
    await assertFolderClean(dir, `permanent ${op} faults`);
  });
}

test('read faults under a stack: a copy-on-write whose copy-up read fails rejects naming the read and maps nothing; the retry succeeds', async () => {
  const dir = new FaultDirectory();
  await initStack(dir, { size: SIZE, clusterSize: C });
  const model = new DiskModel(SIZE);
  const base = await openStackDir(dir, { writable: true, onWarning: () => {} });
  const old = new Uint8Array(C * 4).map((_, i) => (i * 7 + 1) & 0xff);
  await base.write(0, old);
  model.write(0, old);
  await base.close();
  await snapshotStack(dir);
  const top = await openStackDir(dir, { writable: true, onWarning: () => {} });
  // The base is opened read-only (a plain store, not a FaultStore): fault its reads in place.
  const lowerStore = top.lowerDeltas[0].store;
  const failingRead = lowerStore.read.bind(lowerStore);
  let failReads = true;
  lowerStore.read = async (offset: number, into: Uint8Array) => {
    if (failReads) throw new Error(`injected read fault at byte ${offset}`);
    return failingRead(offset, into);
  };
  const patch = new Uint8Array(100).fill(0xee);
  for (let i = 0; i < 4; i++) {
    await assert.rejects(top.write(i * C + 50, patch), (e: unknown) => {
      assertNamed(e, /read.*injected read fault/, `copy-up of cluster ${i}`);
      return true;
    });
    assert.notEqual(top.bat.levelOf(i), top.bat.topLevel, `cluster ${i} stays unmapped in the top after the failed copy-up`);
  }
  failReads = false;
  for (let i = 0; i < 4; i++) {
    await top.write(i * C + 50, patch);
    model.write(i * C + 50, patch);
  }
  assertBytesEqual(await top.read(0, SIZE), model.bytes, 'stack after the retries');
  await top.close();
  await assertFolderClean(dir, 'copy-up read faults');
});

/** A two-delta folder with data in both levels; returns it and the model. */
async function twoDeltas(seed: number): Promise<{ dir: FaultDirectory; model: DiskModel }> {
  const dir = new FaultDirectory();
  await initStack(dir, { size: SIZE, clusterSize: C });
  const rng = new Prng(seed);
  const model = new DiskModel(SIZE);
  for (let level = 0; level < 2; level++) {
    if (level > 0) await snapshotStack(dir);
    const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
    for (let i = 0; i < 20; i++) {
      const offset = rng.int(SIZE - 3 * C);
      const data = rng.bytes(rng.range(1, 3 * C));
      await image.write(offset, data);
      model.write(offset, data);
    }
    await image.close();
  }
  return { dir, model };
}

async function assertReads(dir: DeltaDirectory, model: Uint8Array, what: string): Promise<void> {
  const image = await openStackDir(dir, { onWarning: () => {} });
  try {
    assertBytesEqual(await image.read(0, model.length), model, what);
  } finally {
    await image.close();
  }
}

const STACK_FAULTS: Array<{ name: string; arm: (dir: FaultDirectory, n: number) => Promise<void>; message: RegExp }> = [
  { name: 'the Nth write into the lower delta', arm: async (d, n) => (await d.storeOf('root.hds')).failNth('data-write', n), message: /write.*injected data-write fault/ },
  { name: 'the Nth flush of the lower delta', arm: async (d, n) => (await d.storeOf('root.hds')).failNth('flush', n), message: /flush.*injected flush fault/ },
  { name: 'the descriptor replacement', arm: async (d) => { d.failDescriptorWrites = true; }, message: /replace DiskDescriptor\.xml failed: injected descriptor fault/ },
];

for (const [i, fault] of STACK_FAULTS.entries()) {
  test(`merge failing at ${fault.name}: rejects naming it, the folder still reads the same, and merging again after healing completes`, { timeout: 60_000 }, async (t) => {
    let points = 0;
    for (const n of fault.name.includes('descriptor') ? [1] : [1, 2, 3, 5, 8, 13]) {
      const { dir, model } = await twoDeltas(0x3e0 + i * 16 + n);
      await fault.arm(dir, n);
      const e = await mergeStack(dir).then(() => null, (x: unknown) => x);
      if (e === null) continue; // fewer operations than n: nothing failed
      points++;
      assertNamed(e, fault.message, `merge with ${fault.name} (n = ${n})`);
      await dir.breakOp('root.hds', null);
      await assertReads(dir, model.bytes, `after the failed merge (n = ${n})`);
      await assertFolderClean(dir, `after the failed merge (n = ${n})`);
      await mergeStack(dir);
      assert.equal(descriptorChain(await readDescriptor(dir)).length, 1, 'merged');
      await assertReads(dir, model.bytes, `after merging again (n = ${n})`);
      await assertFolderClean(dir, `after merging again (n = ${n})`);
    }
    assert.ok(points >= 1, 'the fault hit the merge');
    t.diagnostic(`merge fault points: ${points}`);
  });
}

for (const op of ['write', 'flush', 'truncate'] as Operation[]) {
  test(`resize whose store fails every ${op}: rejects naming "${op}", the folder reads the same at the old or the new size, and resizing again after healing completes`, async () => {
    const { dir, model } = await twoDeltas(0x5e0);
    const top = descriptorChain(await readDescriptor(dir)).at(-1)!.file;
    const grown = 48 << 20; // the BAT needs more room: clusters move
    await dir.breakOp(top, op);
    const e = await resizeStack(dir, grown).then(() => null, (x: unknown) => x);
    if (op === 'truncate' && e === null) return; // growing needs no truncate
    assertNamed(e, new RegExp(`${op}.*injected ${op} fault`), `resize with failing ${op}`);
    await dir.breakOp(top, null);
    const image = await openStackDir(dir, { onWarning: () => {} });
    try {
      assert.ok([SIZE, grown].includes(image.size), `size ${image.size}`);
      assertBytesEqual(await image.read(0, SIZE), model.bytes, 'after the failed resize');
    } finally {
      await image.close();
    }
    await resizeStack(dir, grown);
    const after = await openStackDir(dir, { onWarning: () => {} });
    try {
      assert.equal(after.size, grown);
      assertBytesEqual(await after.read(0, SIZE), model.bytes, 'after resizing again');
    } finally {
      await after.close();
    }
    await assertFolderClean(dir, `resize with failing ${op}`);
  });
}

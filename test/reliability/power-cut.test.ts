// Power cuts at every point of real workloads (issue #8): allocating writes, overwrites and
// discards on one delta (v2 and v1), and a session that snapshots, merges and resizes between
// workloads. Each run is logged once through a PowerCutDirectory; then, for every prefix of the
// log, the folder is materialised with the writes no completed flush covered all kept, all lost,
// and with random fates (kept, lost, torn at a sector boundary), and judged by the four
// properties of power-cut-check.ts. qemu-img check runs on every 150th state.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  initStack, openStackDir, snapshotStack, mergeStack, resizeStack, type PloopFormat,
} from '../../src/index.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel } from '../helpers/model.ts';
import { runWorkload } from '../helpers/workload.ts';
import { PowerCutDirectory, randomFates, trackRequests, type Fate } from '../helpers/power-cut.ts';
import { assertCrashStateSound } from '../helpers/power-cut-check.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import type { DirState } from '../helpers/crash-dir.ts';

const C = 32 << 10; // the smallest cluster a DiskDescriptor.xml names
const SIZE = 512 << 10; // 16 clusters: the workload rewrites, discards and reuses them
const QEMU_EVERY = 150;

async function session(dir: PowerCutDirectory, rng: Prng, ops: number, model: DiskModel): Promise<DiskModel> {
  // Preallocation in chunks of half the disk: the virgin-slot path is exercised without an
  // extension (a write and a flush) every other allocation multiplying the crash states;
  // power-cut-prealloc.test.ts explores small chunks.
  const image = await openStackDir(dir, { writable: true, onWarning: () => {}, preallocBytes: SIZE / 2 });
  try {
    const inUse = async () => {
      const b = new Uint8Array(4);
      await image.store.read(44, b);
      return new DataView(b.buffer).getUint32(0, true);
    };
    await runWorkload(trackRequests(dir, image, PowerCutDirectory.fileOf(image.store)), rng, ops, inUse, model);
  } finally {
    await image.close();
  }
  return model;
}

interface Totals {
  states: number;
  prefixes: number;
  withLost: number;
  withTorn: number;
  qemuChecks: number;
  pendingSectors: number;
  unclean: number;
  leaky: number;
}
const suite: Totals = { states: 0, prefixes: 0, withLost: 0, withTorn: 0, qemuChecks: 0, pendingSectors: 0, unclean: 0, leaky: 0 };

/** Every prefix of the log; per prefix all volatile writes kept, all lost, and `randomPer` random fates. */
async function explore(dir: PowerCutDirectory, initialState: DirState, initial: Uint8Array, seed: number, randomPer: number): Promise<Totals> {
  const rng = new Prng(seed);
  const t: Totals = { states: 0, prefixes: 0, withLost: 0, withTorn: 0, qemuChecks: 0, pendingSectors: 0, unclean: 0, leaky: 0 };
  const { dir: qemuDir, cleanup } = await makeTempDir('ploop-power-cut-');
  try {
    for (let k = 0; k <= dir.ops.length; k++) {
      // A flush changes nothing on the medium; the state after it is judged with k + 1.
      if (k > 0 && dir.ops[k - 1].kind === 'flush' && k < dir.ops.length) continue;
      t.prefixes++;
      const volatile = dir.volatileWrites(k);
      const plans: Array<Map<number, Fate>> = [new Map()];
      if (volatile.length > 0) {
        plans.push(new Map(volatile.map((i) => [i, 'lost' as const])));
        for (let n = 0; n < randomPer; n++) plans.push(randomFates(rng, dir, volatile));
      }
      const expectation = { issued: dir.issuedRequests(k), durable: dir.durableRequests(k), initial };
      for (const fates of plans) {
        const lost = [...fates.values()].filter((f) => f === 'lost').length;
        const torn = fates.size - lost;
        const what = `power cut after ${k}/${dir.ops.length} ops, ${volatile.length} volatile writes (${lost} lost, ${torn} torn) (seed ${seed})`;
        const crashed = dir.materialiseReusing(initialState, { k, fates });
        const withQemu = t.states % QEMU_EVERY === 0;
        const o = await assertCrashStateSound(crashed, expectation, what, withQemu ? qemuDir : undefined);
        t.states++;
        if (lost > 0) t.withLost++;
        if (torn > 0) t.withTorn++;
        if (withQemu) t.qemuChecks++;
        t.pendingSectors += o.pendingSectors;
        if (o.unclean) t.unclean++;
        if (o.leaks > 0) t.leaky++;
      }
    }
  } finally {
    await cleanup();
  }
  for (const key of Object.keys(suite) as Array<keyof Totals>) suite[key] += t[key];
  return t;
}

function describe(t: Totals, ops: number, requests: number): string {
  return `${requests} requests, ${ops} store ops logged; crash states explored: ${t.states} (${t.prefixes} prefixes, ${t.withLost} with lost writes, ${t.withTorn} with torn writes; ` +
    `${t.unclean} opened with the in-use flag, ${t.leaky} with leaks, ${t.pendingSectors} sectors held not-yet-durable data); qemu-img check on ${t.qemuChecks}; losses: 0`;
}

for (const [format, seed, requests, randomPer] of [['v2', 0x9c01, 260, 9], ['v1', 0x9c02, 160, 7]] as Array<[PloopFormat, number, number, number]>) {
  test(`power cut at every point of allocating writes, overwrites and discards on one ${format} delta: opens, no bad entry, flushed data intact, other sectors old or new, repairable`, { timeout: 120_000 }, async (t) => {
    const dir = new PowerCutDirectory();
    dir.recording = false;
    await initStack(dir, { size: SIZE, clusterSize: C, format });
    const rng = new Prng(seed);
    // Old data to overwrite and discard.
    const model = await session(dir, rng, 20, new DiskModel(SIZE));
    const initial = dir.state();
    const before = model.bytes.slice();
    dir.recording = true;
    await session(dir, rng, requests, model);
    assert.ok(dir.requests.length >= requests, 'the workload was logged');
    assert.ok(dir.requests.some((r) => r.kind === 'discard'), 'the workload discards');
    const totals = await explore(dir, initial, before, seed, randomPer);
    assert.ok(totals.states >= 8 * requests, `only ${totals.states} crash states`);
    assert.ok(totals.withTorn > 100 && totals.withLost > 100, 'torn and lost writes were explored');
    t.diagnostic(describe(totals, dir.ops.length, dir.requests.length));
  });
}

test('power cut at every point of a session that snapshots, merges and resizes between workloads', { timeout: 120_000 }, async (t) => {
  const dir = new PowerCutDirectory();
  dir.recording = false;
  await initStack(dir, { size: SIZE, clusterSize: C });
  const rng = new Prng(0x9c03);
  let model = await session(dir, rng, 20, new DiskModel(SIZE));
  const initial = dir.state();
  const before = model.bytes.slice();
  dir.recording = true;
  await snapshotStack(dir);
  model = await session(dir, rng, 25, model);
  await snapshotStack(dir);
  model = await session(dir, rng, 15, model);
  await mergeStack(dir);
  model = await session(dir, rng, 15, model);
  const grown = 2 * SIZE;
  const resize = dir.issue({ kind: 'resize', size: grown, file: 'DiskDescriptor.xml' });
  await resizeStack(dir, grown);
  dir.acked(resize);
  const bigger = new DiskModel(grown);
  bigger.write(0, model.bytes);
  await session(dir, rng, 20, bigger);
  await mergeStack(dir);
  assert.ok(dir.ops.filter((o) => o.kind === 'writeTextAtomic').length >= 5, 'snapshots, merges and the resize replaced the descriptor');
  const totals = await explore(dir, initial, before, 0x9c03, 8);
  assert.ok(totals.states >= 1000, `only ${totals.states} crash states`);
  t.diagnostic(describe(totals, dir.ops.length, dir.requests.length));
});

test('the power-cut checker itself fails a folder that lost a flushed write, and one whose BAT maps a cluster to another cluster\'s data', async () => {
  const dir = new PowerCutDirectory();
  dir.recording = false;
  await initStack(dir, { size: SIZE, clusterSize: C });
  const initial = dir.state();
  dir.recording = true;
  await session(dir, new Prng(0x9c04), 30, new DiskModel(SIZE));
  const k = dir.ops.length;
  const expectation = { issued: dir.issuedRequests(k), durable: dir.durableRequests(k), initial: new Uint8Array(SIZE) };
  assert.ok(expectation.durable.size > 10, 'the workload flushed acknowledged writes');
  await assertCrashStateSound(dir.materialiseReusing(initial, { k, fates: new Map() }), expectation, 'the real end state');
  // A disk that ignored a flush: a flushed data write lost.
  const flushedData = [...dir.durableAt.keys()].filter((i) => {
    const op = dir.ops[i];
    return op.kind === 'write' && op.offset >= 64 << 10 && op.data.some((b) => b !== 0);
  });
  assert.ok(flushedData.length > 0, 'flushed data writes were logged');
  const lostFlushed = dir.materialiseReusing(initial, { k, fates: new Map([[flushedData[flushedData.length - 1], 'lost']]) });
  await assert.rejects(assertCrashStateSound(lostFlushed, expectation, 'a flushed write lost'), assert.AssertionError);
  // Two BAT entries swapped: each cluster reads the other's bytes.
  const swapped = dir.materialiseReusing(initial, { k, fates: new Map() });
  const bytes = swapped.files.get('root.hds')!.bytes();
  const bat = new DataView(bytes.buffer, bytes.byteOffset + 64);
  const mapped = Array.from({ length: SIZE / C }, (_, i) => i).filter((i) => bat.getUint32(4 * i, true) !== 0);
  assert.ok(mapped.length >= 2, 'two clusters are mapped');
  const [a, b] = mapped;
  const va = bat.getUint32(4 * a, true);
  bat.setUint32(4 * a, bat.getUint32(4 * b, true), true);
  bat.setUint32(4 * b, va, true);
  await assert.rejects(assertCrashStateSound(swapped, expectation, 'BAT entries swapped'), /virtual sector at byte \d+: (LOST|garbage|content no request)/);
});

after(() => {
  if (suite.states > 0) console.log(`power-cut suite: ${suite.states} crash states explored, 0 losses (${suite.withLost} with lost writes, ${suite.withTorn} with torn writes, ${suite.qemuChecks} qemu-img checks)`);
});

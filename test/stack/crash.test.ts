// Crash safety of the stack operations (docs/format.md, 'Deltas and stacks' and 'Resize';
// stack.ts's design: data before metadata, a new delta complete before the descriptor names it, the
// descriptor replaced atomically after the data it describes exists). Each operation runs once on a
// recording directory; then the folder is rebuilt as a crash after every prefix of its operations
// left it, also with the last write torn at a sector boundary, and with writes that no flush
// covered yet lost (a volatile disk cache). Every such folder must open strictly, read exactly the
// data from before the operation, and after check --repair of every delta be clean and still read
// it. For merge-all and resize, running the command again on a crashed folder must finish the job.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  initStack, openStackDir, snapshotStack, mergeStack, mergeAll, resizeStack, readDescriptor, descriptorChain, checkImage,
  type DeltaDirectory,
} from '../../src/index.ts';
import { LEVEL_NONE } from '../../src/core/bat-map.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { readWhole } from '../helpers/images.ts';
import {
  CrashDirectory, crashedDirectory, distinctCrashPoints, tearPoint, unflushedWrites, type CrashOp, type CrashPoint, type DirState,
} from '../helpers/crash-dir.ts';

const SIZE = 2 << 20;
const C = 32 << 10; // the smallest cluster a DiskDescriptor.xml allows
const GROWN = 300 << 20; // 9600 entries: the top's BAT needs a second cluster

/** Three deltas with overlapping data: written, copied up, zeroed, discarded; the top's first cluster right after its BAT. */
async function buildStack(seed: number): Promise<{ dir: CrashDirectory; model: Uint8Array }> {
  const rng = new Prng(seed);
  const dir = new CrashDirectory();
  dir.recording = false;
  await initStack(dir, { size: SIZE, clusterSize: C });
  const model = new DiskModel(SIZE);
  const session = async (ops: Array<[number, Uint8Array] | [number, number]>) => {
    const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
    try {
      for (const [offset, what] of ops) {
        if (typeof what === 'number') {
          await image.discard(offset, what);
          model.discard(offset, what);
        } else {
          await image.write(offset, what);
          model.write(offset, what);
        }
      }
    } finally {
      await image.close();
    }
  };
  // Scattered writes (aligned or not, some all-zero) and discards, so that a merge copies many
  // separate runs; plus fixed ones: copy-ups, a zeroed and a discarded lower cluster, and the
  // top's first cluster right after its BAT (a grow must relocate it).
  const scattered = (n: number) => Array.from({ length: n }, (): [number, Uint8Array] | [number, number] => {
    const offset = rng.chance(0.5) ? rng.int(SIZE / C) * C : rng.int(SIZE - 1);
    const length = Math.min(SIZE - offset, rng.range(1, 2 * C));
    if (rng.chance(0.15)) return [offset, length];
    return [offset, rng.chance(0.1) ? new Uint8Array(length) : rng.bytes(length)];
  });
  await session([[0, rng.bytes(10 * C)], [20 * C + 5, rng.bytes(3000)], [40 * C, rng.bytes(2 * C)], ...scattered(20)]);
  await snapshotStack(dir);
  await session([[3 * C + 100, rng.bytes(500)], [5 * C, rng.bytes(C)], [7 * C, new Uint8Array(C)], [9 * C, C], ...scattered(16)]);
  await snapshotStack(dir);
  await session([[C + 1, rng.bytes(100)], [5 * C + 9, rng.bytes(9)], [40 * C, C], ...scattered(12)]);
  dir.recording = true;
  return { dir, model: model.bytes };
}

/** The folder opens strictly and reads `model` (a grown disk reads zeros past it). */
async function assertReadsModel(dir: DeltaDirectory, model: Uint8Array, sizes: number[], what: string): Promise<void> {
  const image = await openStackDir(dir, { onWarning: () => {} });
  try {
    assert.ok(sizes.includes(image.size), `${what}: virtual size ${image.size}, expected one of ${sizes.join(', ')}`);
    if (image.size === model.length) assertBytesEqual(await readWhole(image), model, `${what}: stack read vs model`);
    else {
      assertBytesEqual(await image.read(0, model.length), model, `${what}: stack read vs model`);
      for (const e of image.map(model.length, image.size - model.length)) assert.equal(e.level, LEVEL_NONE, `${what}: grown area mapped at ${e.offset}`);
    }
  } finally {
    await image.close();
  }
}

/** After check --repair every ploop delta of the chain is clean, and the folder still reads `model`. */
async function assertRepairable(dir: DeltaDirectory, model: Uint8Array, sizes: number[], what: string): Promise<void> {
  for (const e of descriptorChain(await readDescriptor(dir))) {
    if (e.type === 'Plain') continue;
    const store = await dir.openStore(e.file, { writable: true });
    const repaired = await checkImage(store, { repair: true });
    assert.ok(repaired.clean, `${what}: check --repair of ${e.file} left: ${JSON.stringify(repaired.findings)}`);
    const again = await checkImage(store);
    assert.ok(again.clean, `${what}: ${e.file} after repair: ${JSON.stringify(again.findings)}`);
  }
  await assertReadsModel(dir, model, sizes, `${what}, after repair`);
}

interface Explored {
  prefixes: number;
  torn: number;
  lost: number;
  /** Prefix states after which running the command again completed it (a sample). */
  recovered: number;
}

/** Every crash point of `ops` (prefixes, torn last writes, lost unflushed writes) reads `model`. */
async function exploreCrashes(initial: DirState, ops: readonly CrashOp[], model: Uint8Array, sizes: number[], seed: number, recover?: Case['recover']): Promise<Explored> {
  const rng = new Prng(seed);
  const explored: Explored = { prefixes: 0, torn: 0, lost: 0, recovered: 0 };
  const describe = (p: CrashPoint) => {
    const last = p.k > 0 ? ops[p.k - 1] : null;
    const op = last ? `${last.kind} ${last.file}${last.kind === 'write' ? ` @${last.offset}+${last.data.length}` : ''}` : 'nothing';
    return `crash after ${p.k}/${ops.length} ops (last: ${op})${p.tornAt !== undefined ? `, torn at byte ${p.tornAt}` : ''}${p.lost ? `, lost writes ${[...p.lost].join(',')}` : ''}`;
  };
  const check = async (p: CrashPoint) => {
    const what = describe(p);
    const dir = await crashedDirectory(initial, ops, p);
    await assertReadsModel(dir, model, sizes, what); // read-only: leaves the folder as the crash did
    await assertRepairable(dir, model, sizes, what);
  };
  const points = distinctCrashPoints(ops);
  for (const [n, k] of points.entries()) {
    await check({ k });
    explored.prefixes++;
    // Running again costs a whole operation: at every third crash point and the last one.
    if (recover && (n % 3 === 0 || n === points.length - 1)) {
      // The user's way out: run the command again on the folder the crash left.
      const what = `${describe({ k })}, then run again`;
      const dir = await crashedDirectory(initial, ops, { k });
      await recover.run(dir);
      assert.equal(descriptorChain(await readDescriptor(dir)).length, recover.chainAfter, `${what}: deltas`);
      await assertReadsModel(dir, model, [recover.size], what);
      explored.recovered++;
    }
    const tornAt = k > 0 ? tearPoint(ops[k - 1]) : null;
    if (tornAt !== null) {
      await check({ k, tornAt });
      explored.torn++;
    }
    // A volatile cache may lose any of the writes that no flush of their file covered yet:
    // every non-empty subset of one or two such writes; of more, all of them, all but the
    // last (typically metadata kept while the data it names is lost) and a random subset.
    const volatile = unflushedWrites(ops, k);
    if (volatile.length > 0 && ops[k - 1]?.kind !== 'flush') {
      const subsets: Array<Set<number>> = [];
      if (volatile.length <= 2) {
        for (let mask = 1; mask < 1 << volatile.length; mask++) subsets.push(new Set(volatile.filter((_, b) => mask & (1 << b))));
      } else {
        subsets.push(new Set(volatile), new Set(volatile.slice(0, -1)));
        const lost = new Set(volatile.filter(() => rng.chance(0.5)));
        if (lost.size === 0) lost.add(volatile[rng.int(volatile.length)]);
        subsets.push(lost);
      }
      for (const lost of subsets) {
        await check({ k, lost });
        explored.lost++;
      }
    }
  }
  return explored;
}

const total: Explored = { prefixes: 0, torn: 0, lost: 0, recovered: 0 };

interface Case {
  name: string;
  run: (dir: DeltaDirectory) => Promise<unknown>;
  /** Deltas in the chain once the operation completed. */
  chainAfter: number;
  sizes: number[];
  /** Fewest distinct crash points the recording must hold (it missed writes otherwise). */
  minPoints: number;
  /** Run after a crash on the folder as the crash left it (the operation again, or merge-all), it completes the job. */
  recover?: { run: (dir: DeltaDirectory) => Promise<unknown>; chainAfter: number; size: number };
}

const CASES: Case[] = [
  {
    name: 'merging the top delta into the one below (mergeStack)',
    run: (d) => mergeStack(d),
    chainAfter: 2,
    sizes: [SIZE],
    minPoints: 20,
  },
  {
    name: 'merging the middle delta into the base (mergeStack --level 1)',
    run: (d) => mergeStack(d, { upperLevel: 1 }),
    chainAfter: 2,
    sizes: [SIZE],
    minPoints: 20,
  },
  {
    name: 'merging everything into the base (mergeAll)',
    run: (d) => mergeAll(d),
    chainAfter: 1,
    sizes: [SIZE],
    minPoints: 40,
    recover: { run: (d) => mergeAll(d), chainAfter: 1, size: SIZE },
  },
  {
    name: 'growing the stack so the top delta\'s BAT needs another cluster (resizeStack)',
    run: (d) => resizeStack(d, GROWN),
    chainAfter: 3,
    // Between the header switch and the descriptor update the disk is already the new size.
    sizes: [SIZE, GROWN],
    minPoints: 5,
    recover: { run: (d) => resizeStack(d, GROWN), chainAfter: 3, size: GROWN },
  },
  { name: 'taking a snapshot (snapshotStack)', run: (d) => snapshotStack(d), chainAfter: 4, sizes: [SIZE], minPoints: 4 },
  {
    name: 'merging a grown top into a smaller delta (resizeStack, then mergeStack)',
    run: async (d) => {
      await resizeStack(d, GROWN);
      await mergeStack(d);
    },
    chainAfter: 2,
    sizes: [SIZE, GROWN],
    minPoints: 25,
  },
];

CASES.forEach((c, i) => {
  test(`a crash at any point of ${c.name} leaves a folder that opens and reads the data from before, also with a torn last write or lost unflushed writes`, async (t) => {
    const { dir, model } = await buildStack(0xc4a5 + i);
    const initial = dir.state();
    await c.run(dir);
    assert.equal(descriptorChain(await readDescriptor(dir)).length, c.chainAfter, 'deltas after the operation');
    assert.ok(dir.ops.some((o) => o.kind === 'writeTextAtomic'), 'the operation replaced the descriptor');
    const explored = await exploreCrashes(initial, dir.ops, model, c.sizes, 0x1000 + i, c.recover);
    total.prefixes += explored.prefixes;
    total.torn += explored.torn;
    total.lost += explored.lost;
    total.recovered += explored.recovered;
    assert.ok(explored.prefixes >= c.minPoints, `only ${explored.prefixes} crash points: the recording missed the operation's writes`);
    t.diagnostic(`${dir.ops.length} operations recorded; crash states explored: ${explored.prefixes} prefixes, ${explored.torn} torn writes, ${explored.lost} with lost unflushed writes; ${explored.recovered} completed by running again`);
  });
});

test('the crash simulation itself notices a folder that reads wrong (a descriptor naming a delta before it exists)', async () => {
  // The unsafe order a buggy snapshot would use: descriptor first, then the new delta's file.
  const { dir, model } = await buildStack(0xbad);
  const initial = dir.state();
  const good = new CrashDirectory();
  good.recording = false;
  for (const [f, b] of initial.files) await (await good.openStore(f, { create: true })).write(0, b);
  for (const [f, text] of initial.texts) await good.writeTextAtomic(f, text);
  await snapshotStack(good);
  const after = good.state();
  const newFile = [...after.files.keys()].find((f) => !initial.files.has(f))!;
  const ops: CrashOp[] = [
    { kind: 'writeTextAtomic', file: 'DiskDescriptor.xml', text: after.texts.get('DiskDescriptor.xml')! },
    { kind: 'create', file: newFile },
    { kind: 'write', file: newFile, offset: 0, data: after.files.get(newFile)! },
  ];
  await assert.rejects(exploreCrashes(initial, ops, model, [SIZE], 1));
});

after(() => {
  const sum = total.prefixes + total.torn + total.lost;
  if (sum > 0) console.log(`crash states explored in all: ${sum} (${total.prefixes} prefixes, ${total.torn} torn writes, ${total.lost} with lost unflushed writes); ${total.recovered} prefix states completed by running the command again`);
});

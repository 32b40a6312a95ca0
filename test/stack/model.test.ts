// Delta stacks against an in-memory model (docs/format.md, 'Deltas and stacks'): seeded random
// sequences of write sessions (writes aligned and not, crossing clusters, all-zero ones, discards
// on the top), snapshots, top merges, merges of middle deltas (--level) and merge-all, on a disk
// folder in a temp dir. After every step: our read of the whole stack equals the model, every delta
// passes qemu-img check and ploop's snapshot-list accepts the descriptor and lists the chain (each
// asked once per distinct file content: same bytes, same verdict), QEMU's backing-chain read equals
// the model, deltas the step must not touch are byte-identical, and the folder holds exactly the
// chain's files. At the end everything is merged into root.hds, which plain qemu-img convert turns
// into the model's bytes.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir, readFile } from 'node:fs/promises';
import {
  initStack, openStackDir, snapshotStack, mergeStack, mergeAll, readDescriptor, descriptorChain, type PloopFormat,
} from '../../src/index.ts';
import { NodeDirectory } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { runWorkload } from '../helpers/workload.ts';
import { readU32, OFF } from '../helpers/image-file.ts';
import {
  assertPloopListsChain, assertChecksClean, chainPaths, fileHash, qemuConvertChain, readStack,
} from '../helpers/stack.ts';
import '../helpers/source-workers.ts';

const TOPDELTA_GUID = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';

interface Scenario {
  format: PloopFormat;
  size: number;
  cluster: number;
  steps: number;
  seed: number;
}

// DiskDescriptor.xml (and ploop) take Blocksize 64..131072 sectors, so stack clusters start at
// 32 KiB; 4 KiB clusters are covered by the stack tests that open deltas directly.
const SCENARIOS: Scenario[] = [
  { format: 'v2', size: 8 << 20, cluster: 64 << 10, steps: 12, seed: 0x57ac0001 },
  { format: 'v2', size: 4 << 20, cluster: 32 << 10, steps: 12, seed: 0x57ac0002 },
  { format: 'v1', size: 4 << 20, cluster: 32 << 10, steps: 12, seed: 0x57ac0003 },
];

type StepKind = 'session' | 'snapshot' | 'merge-top' | 'merge-level' | 'merge-all';

function chooseStep(rng: Prng, depth: number, seen: Record<StepKind, number>, stepsLeft: number): StepKind {
  // In the last six steps, steer towards what the sequence has not done yet, so that every
  // seed covers sessions, snapshots, top merges and middle merges.
  if (stepsLeft <= 6) {
    if (seen.session === 0) return 'session';
    if (seen['merge-level'] === 0) return depth >= 3 ? 'merge-level' : 'snapshot';
    if (seen['merge-top'] === 0 && depth >= 2) return 'merge-top';
  }
  const options: Array<[StepKind, number]> = [['session', 45]];
  if (depth < 6) options.push(['snapshot', depth === 1 ? 40 : 20]);
  if (depth >= 2) options.push(['merge-top', 12]);
  if (depth >= 3) options.push(['merge-level', 15]);
  if (depth >= 2) options.push(['merge-all', 4]);
  let r = rng.int(options.reduce((sum, [, w]) => sum + w, 0));
  for (const [kind, w] of options) {
    if (r < w) return kind;
    r -= w;
  }
  return 'session';
}

async function hashes(paths: string[]): Promise<Map<string, string>> {
  return new Map(await Promise.all(paths.map(async (p) => [p, await fileHash(p)] as [string, string])));
}

// The scenarios run side by side: each spends much of its time waiting for qemu-img and ploop.
describe('delta stacks against a model', { concurrency: SCENARIOS.length }, () => {
  for (const s of SCENARIOS) {
    const label = `${s.format}, ${s.size >> 20} MiB, ${s.cluster >> 10} KiB clusters, seed 0x${s.seed.toString(16)}`;
    test(`a random sequence of writes, discards, snapshots and merges on a disk folder always reads like the model, in our engine, in QEMU's backing chain and after merging into one file (${label})`, async () => {
      await withTempDir(async (path) => {
        const rng = new Prng(s.seed);
        const dir = new NodeDirectory(path);
        await initStack(dir, { size: s.size, clusterSize: s.cluster, format: s.format });
        const model = new DiskModel(s.size);
        const seen: Record<StepKind, number> = { session: 0, snapshot: 0, 'merge-top': 0, 'merge-level': 0, 'merge-all': 0 };
        let zeroWrites = 0;
        let discards = 0;
        const checkedClean = new Set<string>();
        const acceptedDescriptors = new Set<string>();

        const verify = async (what: string) => {
          const paths = await chainPaths(path, dir);
          // qemu-img check only the deltas whose bytes it has not passed before, and ploop only a
          // descriptor text it has not accepted before (same input, same verdict).
          const current = await hashes(paths);
          const unchecked = paths.filter((p) => !checkedClean.has(current.get(p)!));
          const ddText = await readFile(join(path, 'DiskDescriptor.xml'), 'utf8');
          // The oracles are separate processes: run them side by side with our own read.
          const [ours, qemu, , ] = await Promise.all([
            readStack(dir),
            paths.length === 1 ? qemuConvertToRaw(paths[0], join(path, 'flat.raw')) : qemuConvertChain(paths, join(path, 'chain.raw')),
            assertChecksClean(unchecked, what),
            acceptedDescriptors.has(ddText) ? null : assertPloopListsChain(path, dir, what),
          ]);
          assertBytesEqual(ours, model.bytes, `${what}: our read of the stack vs model`);
          assertBytesEqual(qemu, model.bytes, `${what}: QEMU's read of the backing chain vs model`);
          const d = await readDescriptor(dir);
          assert.equal(d.topGuid, TOPDELTA_GUID, `${what}: TopGUID`);
          assert.equal(d.diskSizeSectors * 512, s.size, `${what}: Disk_size`);
          // Nothing left behind: no .tmp descriptor, no orphan delta.
          const files = (await readdir(path)).filter((f) => !f.endsWith('.lck')).sort();
          const expected = ['DiskDescriptor.xml', ...descriptorChain(d).map((e) => e.file)].sort();
          assert.deepEqual(files, expected, `${what}: files in the folder`);
          for (const p of unchecked) checkedClean.add(current.get(p)!);
          acceptedDescriptors.add(ddText);
        };

        await verify('after init');
        for (let step = 0; step < s.steps; step++) {
          const before = await chainPaths(path, dir);
          const beforeHashes = await hashes(before);
          const kind = chooseStep(rng, before.length, seen, s.steps - step);
          seen[kind]++;
          const what = `step ${step} (${kind}, ${before.length} deltas before)`;
          // Files the step must leave byte-identical.
          let untouched: string[];
          if (kind === 'session') {
            const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
            try {
              const top = before[before.length - 1];
              const r = await runWorkload(image, rng, rng.range(8, 40), () => readU32(top, OFF.inUse), model);
              zeroWrites += r.zeroWrites;
              discards += r.discards;
            } finally {
              await image.close();
            }
            untouched = before.slice(0, -1);
          } else if (kind === 'snapshot') {
            const { file } = await snapshotStack(dir);
            const after = await chainPaths(path, dir);
            assert.deepEqual(after, [...before, join(path, file)], `${what}: the new delta goes on top`);
            untouched = before;
          } else if (kind === 'merge-all') {
            assert.equal(await mergeAll(dir), before.length - 1, `${what}: merges done`);
            assert.deepEqual(await chainPaths(path, dir), [before[0]], `${what}: only the base is left`);
            untouched = [];
          } else {
            const upperLevel = kind === 'merge-top' ? undefined : rng.range(1, before.length - 2);
            const upper = upperLevel ?? before.length - 1;
            const r = await mergeStack(dir, { upperLevel });
            assert.equal(join(path, r.merged), before[upper], `${what}: merged file`);
            assert.equal(join(path, r.into), before[upper - 1], `${what}: merged into`);
            assert.deepEqual(await chainPaths(path, dir), before.filter((_, i) => i !== upper), `${what}: chain after the merge`);
            untouched = before.filter((_, i) => i !== upper && i !== upper - 1);
          }
          for (const p of untouched) assert.equal(await fileHash(p), beforeHashes.get(p), `${what}: ${p} must not change`);
          await verify(what);
        }
        // Whatever is left is merged into root.hds; the single file is the whole disk for qemu-img.
        await mergeAll(dir);
        await verify('after the final merge-all');
        assert.deepEqual(await chainPaths(path, dir), [join(path, 'root.hds')]);
        assertBytesEqual(await qemuConvertToRaw(join(path, 'root.hds'), join(path, 'root.raw')), model.bytes, 'plain qemu-img convert of root.hds vs model');
        // The sequence really mixed everything it is meant to test.
        for (const k of ['session', 'snapshot', 'merge-top', 'merge-level'] as const) assert.ok(seen[k] > 0, `seed ${s.seed}: no ${k} step: ${JSON.stringify(seen)}`);
        assert.ok(zeroWrites > 0 && discards > 0, `seed ${s.seed}: zero writes ${zeroWrites}, discards ${discards}`);
      });
    });
  }
});

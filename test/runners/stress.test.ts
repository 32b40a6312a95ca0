// The runner pool under load (docs/engine.md, 'Workers, one shared memory and Atomics'): N worker
// threads share one WebAssembly memory and change BAT entries of the same md pages at once, while
// the coordinator writes those pages back. Thousands of random writes and discards in concurrent
// groups of disjoint byte ranges that share clusters and md pages (a 32 MiB disk of 64 KiB clusters
// has one md page), flushes between groups; then every byte is compared with the model, again after
// reopening, and QEMU checks the file and converts it to the same bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PloopImage, type PloopFormat } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { runWorkload } from '../helpers/workload.ts';
import { readWhole, readFileImage } from '../helpers/images.ts';
import { OFF, readU32, INUSE_MAGIC } from '../helpers/image-file.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { assertChecksClean, fileHash, qemuConvertChain } from '../helpers/stack.ts';
import { createImageFile } from '../helpers/race.ts';
import '../helpers/source-workers.ts';

const C = 64 << 10;
const SIZE = 32 << 20;

/** The whole disk read through the pool (8 MiB requests, split over the runners). */
async function readAll(image: ParallelImage): Promise<Uint8Array> {
  const out = new Uint8Array(image.size);
  for (let at = 0; at < image.size; at += 8 << 20) await image.readInto(at, out.subarray(at, Math.min(image.size, at + (8 << 20))));
  return out;
}

interface StressCase {
  runners: number;
  format: PloopFormat;
  ops: number;
  seed: number;
}

const cases: StressCase[] = [
  { runners: 1, format: 'v2', ops: 2000, seed: 0x5101 },
  { runners: 2, format: 'v2', ops: 2000, seed: 0x5102 },
  { runners: 4, format: 'v2', ops: 2000, seed: 0x5104 },
  { runners: 8, format: 'v2', ops: 2000, seed: 0x5108 },
  { runners: 2, format: 'v1', ops: 1500, seed: 0x51f1 },
  // The pool's in-thread fallback (no SharedArrayBuffer) must pass the same test.
  { runners: 0, format: 'v2', ops: 2000, seed: 0x5100 },
];

for (const c of cases) {
  const who = c.runners === 0 ? 'the in-thread fallback (runners: 0)' : `${c.runners} runner${c.runners > 1 ? 's' : ''}`;
  test(`${who} on a ${c.format} image: ${c.ops} random writes and discards in concurrent groups sharing clusters and md pages read back the model, before and after reopening, and QEMU agrees (seed ${c.seed})`, { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'disk.hds');
      await createImageFile(path, SIZE, C, c.format);
      const image = await ParallelImage.open([path], { writable: true, runners: c.runners, onWarning: () => {} });
      let model: DiskModel;
      try {
        assert.equal(image.runnerCount, c.runners, 'runner count');
        const r = await runWorkload(image, new Prng(c.seed), c.ops, () => readU32(path, OFF.inUse));
        model = r.model;
        assert.ok(r.sawInUseWhileOpen, 'the in-use flag was set on disk while the image was open');
        assert.ok(r.discards > 100, `discards exercised (${r.discards})`);
        assertBytesEqual(await readAll(image), model.bytes, `whole disk through ${who} while open (seed ${c.seed})`);
        const stats = await image.stats();
        assert.ok(stats.clustersAllocated > 100 && stats.clustersReleased > 10, `clusters allocated (${stats.clustersAllocated}) and released (${stats.clustersReleased})`);
        // Many updates of the one md page left together: fewer BAT writes than allocations and discards.
        assert.ok(stats.batPageWrites < stats.clustersAllocated + stats.clustersReleased, `BAT page writes ${stats.batPageWrites} coalesce ${stats.clustersAllocated} allocations and ${stats.clustersReleased} releases`);
      } finally {
        await image.close();
      }
      assert.notEqual(await readU32(path, OFF.inUse), INUSE_MAGIC, 'in-use flag cleared by close');
      assertBytesEqual(await readFileImage(path), model.bytes, `whole disk after reopening (seed ${c.seed})`);
      await assertQemuAgrees(path, model.bytes, `${who}, ${c.format}, seed ${c.seed}`);
    });
  });
}

test('two runners write through a two-delta stack: copy-on-write from the base, discards never expose base data, the base file is unchanged, and QEMU reads the chain as the model', { timeout: 60_000 }, async () => {
  await withTempDir(async (dir) => {
    const size = 16 << 20;
    const base = join(dir, 'base.hds');
    const top = join(dir, 'top.hds');
    const rng = new Prng(0x57ac);
    const model = new DiskModel(size);
    await createImageFile(base, size, C);
    await createImageFile(top, size, C);
    // The base holds data in about half of its clusters, some of it partial.
    const baseImage = await PloopImage.open(await NodeFileStore.open(base, { writable: true }), { writable: true });
    try {
      for (let cluster = 0; cluster < size / C; cluster++) {
        if (!rng.chance(0.5)) continue;
        const offset = cluster * C + (rng.chance(0.3) ? rng.int(C / 2) : 0);
        const data = rng.bytes(Math.min(C, cluster * C + C - offset));
        await baseImage.write(offset, data);
        model.write(offset, data);
      }
    } finally {
      await baseImage.close();
    }
    const baseHash = await fileHash(base);

    const image = await ParallelImage.open([base, top], { writable: true, runners: 2, onWarning: () => {} });
    try {
      const r = await runWorkload(image, rng, 1000, () => readU32(top, OFF.inUse), model);
      assertBytesEqual(await readAll(image), model.bytes, 'whole stack through 2 runners while open');
      const stats = await image.stats();
      assert.ok(stats.clustersCopied > 20, `clusters copied up from the base by the runners (${stats.clustersCopied})`);
      assert.ok(r.discards > 50, `discards exercised (${r.discards})`);
    } finally {
      await image.close();
    }
    assert.equal(await fileHash(base), baseHash, 'the base delta is byte-identical after writing through the stack');
    const reopened = await PloopImage.openStack([{ store: await NodeFileStore.open(base) }, { store: await NodeFileStore.open(top) }], { onWarning: () => {} });
    try {
      assertBytesEqual(await readWhole(reopened), model.bytes, 'whole stack after reopening');
    } finally {
      await reopened.close();
    }
    await assertChecksClean([base, top], 'stack after 2 runners');
    assertBytesEqual(await qemuConvertChain([base, top], join(dir, 'chain.raw')), model.bytes, 'qemu-img convert of the chain vs model');
  });
});

// Power cuts under the runner pool (issue #8): ParallelImage with 2 and 3 worker runners on a
// real file, a mixed workload; the coordinator's store is wrapped to copy the file at every flush
// call (power-cut-files.ts explains why that sees what the workers wrote). For every flush
// interval the file is rebuilt with all, none and random subsets of the pieces that changed in
// it, and judged by the four properties of power-cut-check.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { initStack, openStackDir } from '../../src/index.ts';
import { NodeDirectory, ParallelImage, type NodeFileStore } from '../../src/node.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel } from '../helpers/model.ts';
import { runWorkload } from '../helpers/workload.ts';
import { trackRequests } from '../helpers/power-cut.ts';
import { FlushSnapshots, folderOf, randomKept } from '../helpers/power-cut-files.ts';
import { assertCrashStateSound } from '../helpers/power-cut-check.ts';
import { withTempDir } from '../helpers/tmp.ts';
import '../helpers/source-workers.ts';

const C = 32 << 10;
const SIZE = 512 << 10;
const RANDOM_PER_INTERVAL = 30;
const QEMU_EVERY = 150;

for (const [runners, seed, requests] of [[2, 0x9d02, 220], [3, 0x9d03, 160]] as const) {
  test(`power cut at every flush interval of ${runners} runners' mixed workload: opens, no bad entry, flushed data intact, other sectors old or new, repairable`, { timeout: 120_000 }, async (t) => {
    await withTempDir(async (tmp) => {
      const dir = new NodeDirectory(tmp);
      await initStack(dir, { size: SIZE, clusterSize: C });
      const path = join(tmp, 'root.hds');
      const rng = new Prng(seed);
      // Old data first, in-thread.
      const model = new DiskModel(SIZE);
      const old = await openStackDir(dir, { writable: true, onWarning: () => {} });
      await runWorkload(old, rng, 30, async () => 0, model);
      await old.close();
      const initial = model.bytes.slice();
      const descriptor = (await dir.readText('DiskDescriptor.xml'))!;

      const log = new FlushSnapshots(path);
      const image = await ParallelImage.open([path], { writable: true, runners, onWarning: () => {} });
      assert.equal(image.runnerCount, runners, 'runners started');
      log.attach(image.image.store as NodeFileStore);
      const inUse = async () => new DataView((await readFile(path)).buffer).getUint32(44, true);
      try {
        await runWorkload(trackRequests(log, image, 'root.hds'), rng, requests, inUse, model);
      } finally {
        await image.close();
      }
      await log.finish();
      assert.ok(log.copies.length >= 20, `only ${log.copies.length} flushes`);

      let states = 0;
      let pieces = 0;
      let qemu = 0;
      await withTempDir(async (qemuDir) => {
        for (let interval = 0; interval < log.copies.length; interval++) {
          const runs = log.changedRuns(interval);
          pieces += runs.length;
          const expectation = { issued: log.issuedRequests(interval), durable: log.durableRequests(interval), initial };
          const cuts = [() => true, () => false, ...Array.from({ length: runs.length > 1 ? RANDOM_PER_INTERVAL : 0 }, () => randomKept(rng, runs.length))];
          for (const [n, kept] of cuts.entries()) {
            const bytes = log.fileAfter({ interval, kept }, runs);
            const what = `${runners} runners, power cut after flush ${interval}/${log.copies.length} (${runs.length} pieces changed, cut ${n}) (seed ${seed})`;
            const withQemu = states % QEMU_EVERY === 0;
            await assertCrashStateSound(folderOf('root.hds', bytes, descriptor), expectation, what, withQemu ? qemuDir : undefined);
            states++;
            if (withQemu) qemu++;
          }
        }
      });
      assert.ok(states >= 500, `only ${states} crash states`);
      t.diagnostic(`${runners} runners: ${log.requests.length} requests, ${log.copies.length} flushes, ${pieces} changed pieces; crash states explored: ${states}; qemu-img check on ${qemu}; losses: 0`);
    });
  });
}

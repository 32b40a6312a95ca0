// Soak (issue #8): several runners doing the mixed workload of test/helpers/workload.ts on a real
// file for a bounded time (SOAK_SECONDS, default 8), in sessions that close and reopen the image
// and switch the runner count; reads are checked while open, and at the end our engine, qemu-img
// check and qemu-img convert all agree with the model: 0 mismatches. How much work fits in the
// time depends on the machine, so only the count is reported, never asserted as a speed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { createImage } from '../../src/index.ts';
import { NodeFileStore, ParallelImage } from '../../src/node.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { runWorkload } from '../helpers/workload.ts';
import { readFileImage } from '../helpers/images.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import '../helpers/source-workers.ts';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 8);
const SIZE = 16 << 20;
const C = 64 << 10;

test(`soak: runners (2, 3, 4) on a file for ${SECONDS} s of mixed writes, discards, flushes and reopens; the model, our reader and qemu-img agree`, { timeout: (SECONDS + 90) * 1000 }, async (t) => {
  // On tmpfs when there is one: the soak is about the engine under concurrency, and a slow
  // disk's fdatasync would leave only a few hundred requests in the time.
  const dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ploop-soak-'));
  try {
    const path = join(dir, 'soak.hds');
    const store = await NodeFileStore.open(path, { create: true });
    await createImage(store, { size: SIZE, clusterSize: C });
    await store.close();
    const rng = new Prng(0x50a4);
    const model = new DiskModel(SIZE);
    const deadline = Date.now() + SECONDS * 1000;
    let requests = 0;
    let sessions = 0;
    let discards = 0;
    const inUse = async () => new DataView((await readFile(path)).buffer).getUint32(44, true);
    while (Date.now() < deadline || sessions < 3) {
      const runners = [2, 3, 4][sessions % 3];
      const image = await ParallelImage.open([path], { writable: true, runners, onWarning: () => {} });
      try {
        assert.equal(image.runnerCount, runners, 'runners started');
        // Bursts until this session's share of the time is used up, and at least 120 requests
        // (a loaded machine still soaks every runner count).
        const sessionEnd = Math.min(deadline, Date.now() + (SECONDS * 1000) / 4);
        let inSession = 0;
        do {
          const r = await runWorkload(image, rng, 40, inUse, model);
          requests += r.ops;
          inSession += r.ops;
          discards += r.discards;
        } while (Date.now() < sessionEnd || inSession < 120);
        const at = rng.int(SIZE - (1 << 20));
        assertBytesEqual(await image.read(at, 1 << 20), model.read(at, 1 << 20), `session ${sessions}: 1 MiB at ${at} while open`);
      } finally {
        await image.close();
      }
      sessions++;
    }
    assertBytesEqual(await readFileImage(path), model.bytes, 'our reader after the soak');
    await assertQemuAgrees(path, model.bytes, 'after the soak');
    assert.ok(discards > 0, `${requests} requests, no discard`);
    t.diagnostic(`soak: ${requests} requests (${discards} discards) in ${sessions} sessions over ${SECONDS} s; mismatches: 0`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

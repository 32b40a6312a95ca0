// A runner worker that cannot start (its file missing or broken, a loader it needs not there):
// ParallelImage.open fails with EIO naming the worker's error instead of waiting forever for the
// worker's answer to init, and it closes what it opened (the image opens for writing again).

import { test } from 'node:test';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { NodeFileStore, PloopImage } from '../../src/node.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { setNodeWorkerStarter } from '../../src/node-worker.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { rejectsWith } from '../helpers/errors.ts';
import { createImageFile, within } from '../helpers/race.ts';
import '../helpers/source-workers.ts';

for (const [what, code] of [['throws while it loads', 'throw new Error("no runner here")'], ['exits at once', 'process.exit(3)']]) {
  test(`a runner worker that ${what}: open rejects with EIO naming it, without hanging, and leaves the image closed`, () => withTempDir(async (dir) => {
    const path = join(dir, 'a.hds');
    await createImageFile(path, 8 << 20, 1 << 20);
    const before = setNodeWorkerStarter((_entry, options) => new Worker(code, { ...options, eval: true }));
    try {
      await within(rejectsWith(() => ParallelImage.open([path], { runners: 2, writable: true }), 'EIO', /the runner worker/, code.startsWith('throw') ? /no runner here/ : /exited \(code 3\)/), 10_000, 'ParallelImage.open');
    } finally {
      setNodeWorkerStarter(before);
    }
    const image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true });
    await image.close();
  }));
}

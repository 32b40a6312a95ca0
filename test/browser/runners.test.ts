// The runner pool in real Chromium: Web Worker runners (dist/web/runner.worker.js) over the
// shared WebAssembly memory, the image in a SharedMemoryStore every runner attaches to. 1, 2 and
// 4 runners run random concurrent writes and discards (unaligned, crossing clusters, sharing md
// pages) against a model in the page; the disk read back equals the model, our checkImage finds
// the image clean in the page, and the image bytes, handed to Node, pass qemu-img check and
// convert to the model's bytes. The same run on a page served without COOP/COEP (no
// SharedArrayBuffer) takes the in-thread fallback, says so once, and passes the same checks.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBrowser, type BrowserSession } from '../helpers/browser.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { assertQemuAgreesOnBytes } from '../helpers/oracle.ts';
import { fileURLToPath } from 'node:url';

const FIXTURES = fileURLToPath(new URL('./runners-fixtures/', import.meta.url));

let isolated: BrowserSession;
let plain: BrowserSession;
before(async () => {
  isolated = await startBrowser({ mounts: { '/rt/': FIXTURES } });
  plain = await startBrowser({ isolated: false, mounts: { '/rt/': FIXTURES } });
});
after(async () => {
  await isolated?.close();
  await plain?.close();
});

interface PageRun {
  isolated: boolean;
  runnerCount: number;
  warnings: string[];
  firstMismatch: number;
  writes: number;
  discards: number;
  clustersAllocated: number;
  clustersReleased: number;
  batPageWrites: number;
  runnerRequests: number[];
  check: { clean: boolean; corruptions: number; leakedClusters: number };
  image: string;
  model: string;
}

async function judge(run: PageRun, what: string): Promise<void> {
  assert.equal(run.firstMismatch, -1, `${what}: the disk read back differs from the model at byte ${run.firstMismatch}`);
  assert.ok(run.writes > 200 && run.discards > 50, `${what}: workload exercised writes (${run.writes}) and discards (${run.discards})`);
  assert.ok(run.clustersAllocated > 50 && run.clustersReleased > 5, `${what}: clusters allocated (${run.clustersAllocated}) and released (${run.clustersReleased})`);
  assert.deepEqual(run.check, { clean: true, corruptions: 0, leakedClusters: 0 }, `${what}: checkImage in the page`);
  await withTempDir(async (dir) => {
    await assertQemuAgreesOnBytes(dir, Buffer.from(run.image, 'base64'), Buffer.from(run.model, 'base64'), what);
  });
}

for (const [runners, seed] of [[1, 0xb101], [2, 0xb102], [4, 0xb104]]) {
  test(`${runners} Web Worker runner${runners > 1 ? 's' : ''} on a cross-origin isolated page: random concurrent writes and discards read back the model, checkImage and qemu-img find the image clean, qemu-img reads the model (seed ${seed})`, { timeout: 90_000 }, async () => {
    const page = await isolated.open();
    const run = await page.evaluate(async (args) => (await import(String('/rt/workload.mjs'))).run(args), { runners, seed, groups: 24, opens: 1 }) as PageRun;
    await page.close();
    assert.equal(run.isolated, true, 'page is cross-origin isolated');
    assert.equal(run.runnerCount, runners, 'runner count');
    assert.deepEqual(run.warnings, [], 'no fallback warning with shared memory');
    // Every runner served requests: the work really went through the workers' rings.
    assert.equal(run.runnerRequests.length, runners);
    for (const [i, n] of run.runnerRequests.entries()) assert.ok(n > 20, `runner ${i} served ${n} requests`);
    await judge(run, `${runners} runners, seed ${seed}`);
    assert.deepEqual(isolated.errors, [], 'no console errors');
  });
}

test('without COOP/COEP (no SharedArrayBuffer) the same API runs one in-thread runner, says so once through onWarning, and passes the same checks', { timeout: 90_000 }, async () => {
  const page = await plain.open();
  const run = await page.evaluate(async (args) => (await import(String('/rt/workload.mjs'))).run(args), { runners: 2, seed: 0xb100, groups: 24, opens: 2 }) as PageRun;
  assert.equal(run.isolated, false, 'page is not cross-origin isolated');
  assert.equal(run.runnerCount, 0, 'fell back to the in-thread runner');
  assert.equal(run.warnings.length, 1, `one warning for two opens: ${JSON.stringify(run.warnings)}`);
  assert.match(run.warnings[0], /SharedArrayBuffer is unavailable .*one in-thread runner/);
  await judge(run, 'in-thread fallback');
  await page.close();
  assert.deepEqual(plain.errors, [], 'no console errors');
});

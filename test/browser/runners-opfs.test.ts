// Runners over a writable OPFS image in real Chromium: the coordinator (the page, its handle in
// the OPFS host worker) and 2 or 4 Web Worker runners each hold a 'readwrite-unsafe' handle on
// one file. Thousands of random concurrent writes and discards (unaligned, crossing clusters)
// against a model; the disk read back, after a reopen and after a page reload, equals the model;
// the file's bytes pass qemu-img check and convert to the model's bytes. The coordinator holds
// the file's Web Lock: a second page gets "the image is in use". A browser without
// 'readwrite-unsafe' handles (the opfsSharedHandles option) takes the in-thread runner.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { startBrowser, type BrowserSession } from '../helpers/browser.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { assertQemuAgreesOnBytes } from '../helpers/oracle.ts';
import { startUploads, type Uploads } from './stores-shared.ts';

const FIXTURES = fileURLToPath(new URL('./runners-fixtures/', import.meta.url));
const SIZE = 8 << 20;
const CLUSTER = 64 << 10;
/** 16 requests a group: 128 groups are 2048 requests. */
const GROUPS = 128;

let session: BrowserSession;
let uploads: Uploads;
before(async () => {
  session = await startBrowser({ mounts: { '/rt/': FIXTURES } });
  uploads = await startUploads();
});
after(async () => {
  await session?.close();
  await uploads?.close();
});

/** Run a routine of runners-fixtures/opfs.mjs on the page; returns its value or throws its error. */
async function call<T>(page: Page, name: string, arg: Record<string, unknown>): Promise<T> {
  const r = await page.evaluate(async ([n, a]) => (await import('/rt/opfs.mjs' as string)).run(n, a), [name, arg] as const) as
    { ok: true; value: T } | { ok: false; code?: string; message: string; stack?: string };
  if (!r.ok) throw new Error(`${name}: ${r.code ?? ''} ${r.message}\n${r.stack ?? ''}`);
  return r.value;
}

interface WorkloadRun {
  isolated: boolean;
  runnerCount: number;
  shared: boolean;
  warnings: string[];
  writes: number;
  discards: number;
  firstMismatch: number;
  reopenMismatch: number;
  createdBytes: number;
  usedEndBytes: number;
  coordinatorSizeBytes: number;
  fileBytes: number;
  clustersAllocated: number;
  clustersReleased: number;
  runnerRequests: number[];
  check: { clean: boolean; corruptions: number; leakedClusters: number };
  modelSha256: string;
}

/** Create the image, run the workload; check everything the page reports and QEMU's view. */
async function workload(page: Page, path: string, args: { runners: number; seed: number; groups: number; opens?: number; opfsSharedHandles?: boolean }): Promise<WorkloadRun> {
  await call(page, 'create', { path, size: SIZE, clusterSize: CLUSTER });
  const run = await call<WorkloadRun>(page, 'workload', { path, opens: 1, ...args, upload: uploads.url });
  const what = `${path}, ${run.runnerCount} runners`;
  assert.equal(run.firstMismatch, -1, `${what}: the disk read back differs from the model at byte ${run.firstMismatch}`);
  assert.equal(run.reopenMismatch, -1, `${what}: after a reopen the disk differs from the model at byte ${run.reopenMismatch}`);
  assert.ok(run.writes > 100 && run.discards > 30, `${what}: workload exercised writes (${run.writes}) and discards (${run.discards})`);
  assert.ok(run.clustersAllocated > 50 && run.clustersReleased > 5, `${what}: clusters allocated (${run.clustersAllocated}) and released (${run.clustersReleased})`);
  assert.deepEqual(run.check, { clean: true, corruptions: 0, leakedClusters: 0 }, `${what}: checkImage in the page`);
  assert.ok(run.usedEndBytes > run.createdBytes, `${what}: slots were used (${run.createdBytes} → ${run.usedEndBytes} bytes)`);
  assert.ok(run.coordinatorSizeBytes >= run.usedEndBytes, `${what}: the coordinator's handle sees the file at ${run.coordinatorSizeBytes} bytes, the used slots end at ${run.usedEndBytes}`);
  assert.equal(run.fileBytes, run.usedEndBytes, `${what}: close trimmed the file to the end of the used slots`);
  await withTempDir(async (dir) => {
    const image = uploads.take(`image-${args.runners}-${args.seed}`);
    const model = uploads.take(`model-${args.runners}-${args.seed}`);
    assert.equal(image.length, run.fileBytes);
    assert.equal(model.length, SIZE);
    await assertQemuAgreesOnBytes(dir, image, model, what);
  });
  return run;
}

for (const [runners, seed] of [[2, 0x0f52], [4, 0x0f54]]) {
  test(`${runners} Web Worker runners write one OPFS image through 'readwrite-unsafe' handles: ${GROUPS * 16} random writes and discards read back the model, after a reopen and after a page reload; qemu-img check and convert agree (seed ${seed})`, { timeout: 120_000 }, async () => {
    const page = await session.open();
    const path = `runners/disk-${runners}.hds`;
    const run = await workload(page, path, { runners, seed, groups: GROUPS });
    assert.equal(run.isolated, true, 'page is cross-origin isolated');
    assert.equal(run.runnerCount, runners, 'real runners, no fallback');
    assert.equal(run.shared, true, "the coordinator holds a 'readwrite-unsafe' handle");
    assert.deepEqual(run.warnings, [], 'no fallback warning');
    assert.equal(run.runnerRequests.length, runners);
    for (const [i, n] of run.runnerRequests.entries()) assert.ok(n > 100, `runner ${i} served ${n} requests`);
    await page.reload();
    const after = await call<{ runnerCount: number; warnings: string[]; sha256: string }>(page, 'diskSha256', { path, runners });
    assert.equal(after.runnerCount, runners);
    assert.deepEqual(after.warnings, []);
    assert.equal(after.sha256, run.modelSha256, 'after a reload the disk read through the runners equals the model');
    await page.close();
    assert.deepEqual(session.errors, [], 'no console errors');
  });
}

test('a second page cannot open an OPFS image that runners are writing: "the image is in use" (Web Lock) with runners or alone; it can once the first closes', { timeout: 60_000 }, async () => {
  const path = 'runners/busy.hds';
  const first = await session.open();
  await call(first, 'create', { path, size: SIZE, clusterSize: CLUSTER });
  assert.deepEqual(await call(first, 'hold', { path, runners: 2 }), { runnerCount: 2 });
  const second = await session.open();
  const refused = await call<{ runners: { code: string; message: string } | null; alone: { code: string; message: string } | null }>(second, 'tryOpen', { path, runners: 2 });
  const inUse = `open opfs:${path} for writing refused: the image is in use by another writer (another page or worker, which holds the Web Lock "ploop-wasm:opfs:${path}"); close it there first, or open it read-only`;
  assert.equal(refused.runners?.code, 'EBUSY');
  assert.equal(refused.runners!.message, inUse);
  assert.equal(refused.alone?.code, 'EBUSY');
  assert.equal(refused.alone!.message, inUse);
  await call(first, 'release', { path });
  assert.deepEqual(await call(second, 'tryOpen', { path, runners: 2 }), { runners: null, alone: null }, 'both open once the first page closed the image');
  await first.close();
  await second.close();
  assert.deepEqual(session.errors, [], 'no console errors');
});

test("a browser without 'readwrite-unsafe' handles (opfsSharedHandles: false) serves a writable OPFS image with one in-thread runner, says so once, and passes the same checks", { timeout: 90_000 }, async () => {
  const page = await session.open();
  const run = await workload(page, 'runners/fallback.hds', { runners: 2, seed: 0x0f50, groups: GROUPS / 4, opens: 2, opfsSharedHandles: false });
  assert.equal(run.runnerCount, 0, 'fell back to the in-thread runner');
  assert.equal(run.shared, false, 'an exclusive handle');
  assert.equal(run.warnings.length, 1, `one warning for two opens: ${JSON.stringify(run.warnings)}`);
  assert.equal(run.warnings[0], 'ploop-wasm: store runners/fallback.hds (opfs) cannot be shared with runner threads; using one in-thread runner instead of 2');
  await page.close();
  assert.deepEqual(session.errors, [], 'no console errors');
});

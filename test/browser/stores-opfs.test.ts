// OPFS stores in real Chromium: the shared persistence suite (page → OPFS host worker), plus the
// fast path in a worker (sync access handle used directly) read back by the page after a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, callInWorker, randomWrites, assertNoMismatch } from './stores-shared.js';
import { storeSuite, SIZE, CLUSTER, type Verified } from './stores-suite.js';

const ctx = storeSuite({ kind: 'opfs', pageMode: 'worker', prefix: 'opfs:', second: /^open opfs:tests\/err\.bin for writing refused: the image is in use by another writer \(another page or worker, which holds the Web Lock "ploop-wasm:opfs:tests\/err\.bin"\); close it there first, or open it read-only$/ });

test('opfs: in a worker the store holds the sync handle itself; the page reads the image after a reload', async () => {
  const { writes } = randomWrites(2, SIZE, 30, 100_000);
  const w = await callInWorker<{ mode: string }>(ctx.page, 'writeImage', { kind: 'opfs', path: 'tests/worker.hds', size: SIZE, clusterSize: CLUSTER, writes });
  assert.equal(w.mode, 'sync');
  await ctx.page.reload();
  const onPage = await call<Verified>(ctx.page, 'verifyImage', { kind: 'opfs', path: 'tests/worker.hds', writes });
  assert.equal(onPage.mode, 'worker');
  assertNoMismatch(onPage.mismatches, 'page after reload');
  const inWorker = await callInWorker<Verified>(ctx.page, 'verifyImage', { kind: 'opfs', path: 'tests/worker.hds', writes });
  assert.equal(inWorker.mode, 'sync');
  assertNoMismatch(inWorker.mismatches, 'worker after reload');
  assert.equal(inWorker.sha256, onPage.sha256, 'the worker and the page read the same file');
});

test('opfs: a page whose OPFS worker cannot be loaded gets an error naming its URL, not a hang', async () => {
  const page = await ctx.session.open('t/blank.html');
  const e = await call<{ code: string; message: string } | null>(page, 'opfsBadWorker', { url: '/no-such.worker.js' });
  assert.equal(e?.code, 'EIO');
  assert.match(e!.message, /^opfs: the OPFS worker at \/no-such\.worker\.js failed: .*\(see setOpfsWorkerUrl\)$/);
  await page.close();
});

type Refusal = { code: string; message: string } | null;

test('opfs: shared handles let the page and a worker write one file, each seeing the other; the Web Lock refuses a second writer, and a reader is told', async () => {
  const r = await call<{ modes: string[]; shared: boolean[]; worker: { ok: boolean; value: { head: number[]; size: number } }; size: number; n: number; seen: number[]; exclusive: Refusal; locked: Refusal; readerWarnings: string[] }>(ctx.page, 'opfsShared', { path: 'tests/shared.bin' });
  assert.deepEqual(r.modes, ['worker', 'sync']);
  assert.deepEqual(r.shared, [true, true], "both hold 'readwrite-unsafe' handles");
  assert.deepEqual(r.worker.value.head, [1, 2, 3, 4], 'the worker reads what the page wrote (not flushed)');
  assert.equal(r.worker.value.size, 4, 'the worker sees the size the page made (not flushed)');
  assert.equal(r.size, 100003, 'the page sees the size the worker made');
  assert.deepEqual([r.n, r.seen], [3, [5, 6, 7]]);
  // Node's words (in-use.ts), the holder being the Web Lock: for an exclusive writer as for a shared one.
  const inUse = 'open opfs:tests/shared.bin for writing refused: the image is in use by another writer (another page or worker, which holds the Web Lock "ploop-wasm:opfs:tests/shared.bin"); close it there first, or open it read-only';
  assert.equal(r.exclusive?.code, 'EBUSY');
  assert.equal(r.exclusive!.message, inUse);
  assert.equal(r.locked?.code, 'EBUSY');
  assert.equal(r.locked!.message, inUse);
  assert.deepEqual(r.readerWarnings, ['the image opfs:tests/shared.bin is open for writing by another writer (another page or worker, which holds the Web Lock "ploop-wasm:opfs:tests/shared.bin"): what this reader sees may change while it reads']);
});

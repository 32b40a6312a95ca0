// HTTP servers that lie about ranges (issue #8), against the HTTP range store under a real
// PloopImage: fast-check picks which requests lie and how (test/helpers/hostile-http.ts). Every
// read of the virtual disk either returns exactly the image's content or rejects with a
// PloopError — never other bytes, never a hang, never a non-PloopError, and a server claiming a
// huge file must not make the engine allocate in proportion to the claim.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PloopImage, MemoryStore, PloopError, createImage, HttpRangeStore } from '../../src/index.ts';
import { getCore } from '../../src/core/wasm.ts';
import { newHeader, serializeHeader } from '../../src/format/header.ts';
import { startHostileServer, withTimeout, type Lie } from '../helpers/hostile-http.ts';
import { readWhole } from '../helpers/images.ts';
import { assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';

const CASE_TIMEOUT_MS = 10_000;
const LIES: Lie[] = ['ignore-range', 'short-body', 'long-body', 'other-range', 'bad-content-range', 'no-content-range', 'unknown-total', 'total', 'status-500', 'status-416', 'reset', 'stall', 'silent'];
const tried = { cases: 0, correct: 0, recovered: 0, refused: 0, requests: 0 };

async function sampleImage(): Promise<{ file: Uint8Array; disk: Uint8Array }> {
  const store = new MemoryStore();
  await createImage(store, { size: 1 << 20, clusterSize: 4096 });
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  const rng = new Prng(0x477);
  for (let i = 0; i < 40; i++) await image.write(rng.int((1 << 20) - 9000), rng.bytes(rng.range(1, 9000)));
  await image.close();
  const file = store.bytes().slice();
  const reader = await PloopImage.open(new MemoryStore(file, { writable: false }));
  const disk = await readWhole(reader);
  await reader.close();
  return { file, disk };
}


/** Open over HTTP and read the whole disk: exactly `disk`, or a PloopError. */
async function readOver(url: string, disk: Uint8Array, what: string): Promise<'correct' | PloopError> {
  let store: HttpRangeStore | null = null;
  let image: PloopImage | null = null;
  try {
    store = await HttpRangeStore.open(url, { blockBytes: 4096, cacheBytes: 64 << 10, maxRequestBytes: 64 << 10, timeoutMs: 400, retries: 1 });
    image = await PloopImage.open(store, { onWarning: () => {} });
    assertBytesEqual(await readWhole(image), disk, `${what}: the disk read over HTTP`);
    return 'correct';
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    if (!(e instanceof PloopError)) throw new Error(`${what}: not a PloopError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
    assert.ok(e.message.length < 2000, `${what}: a ${e.message.length}-character message`);
    return e;
  } finally {
    await image?.close().catch(() => {});
    if (!image) await store?.close();
  }
}

test('an HTTP server lying at random requests (ignored Range, short and long bodies, other ranges, bad or missing Content-Range, errors, resets, stalls, silence, a huge total): the exact disk or a PloopError, never a hang', { timeout: 150_000 }, async (t) => {
  const { file, disk } = await sampleImage();
  const core = await getCore();
  const memoryBefore = core.memory.buffer.byteLength;
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat(10), fc.constantFrom(...LIES)), { minLength: 1, maxLength: 3 }),
    async (lies) => {
      const plan = new Map(lies.map(([n, lie]) => [n, lie]));
      const server = await startHostileServer(file, (n) => plan.get(n) ?? null);
      try {
        const what = `lies ${JSON.stringify(lies)}`;
        const r = await withTimeout(readOver(server.url, disk, what), CASE_TIMEOUT_MS, what);
        tried.cases++;
        tried.requests += server.log.length;
        const told = server.log.filter((l) => l.lie !== null).map((l) => l.lie);
        if (r === 'correct') {
          // The exact disk (checked in readOver): the lie was consistent ('total'), or the request
          // that got it was asked again and answered honestly.
          tried.correct++;
          if (told.some((l) => l !== 'total')) tried.recovered++;
        } else {
          tried.refused++;
          assert.ok(told.length > 0, `${what}: refused an honest server: ${r.message}`);
        }
      } finally {
        await server.close();
      }
    },
  ), { numRuns: 90, seed: 0x4177, endOnFailure: true });
  // A claimed 1 TiB file under a 1 MiB image must not reserve memory in proportion to the claim.
  const grown = core.memory.buffer.byteLength - memoryBefore;
  assert.ok(grown <= 64 << 20, `WebAssembly memory grew by ${grown} bytes`);
  t.diagnostic(`hostile HTTP cases: ${tried.cases} (${tried.correct} read correctly, ${tried.recovered} of them after a detectable lie; ${tried.refused} refused with a PloopError), ${tried.requests} requests served; memory grew ${grown} bytes`);
});

test('a server claiming a 4 PiB file under a header claiming a 2 GiB BAT: refused with a clear error before the BAT is allocated', async () => {
  const header = newHeader({ size: 2 ** 41 - 4096, clusterBytes: 4096 });
  const core = await getCore();
  const before = core.memory.buffer.byteLength;
  const server = await startHostileServer(serializeHeader(header), () => 'total', 2 ** 52);
  try {
    const r = await withTimeout(readOver(server.url, new Uint8Array(0), 'huge claims'), CASE_TIMEOUT_MS, 'huge claims');
    assert.ok(r instanceof PloopError, 'refused');
    assert.match(r.message, /WebAssembly memory: \d+ more bytes would pass the \d+-byte limit/);
    assert.equal(core.memory.buffer.byteLength - before, 0, 'nothing was allocated');
    assert.ok(server.log.length <= 2, `${server.log.length} requests: the BAT was not fetched`);
  } finally {
    await server.close();
  }
});

test('a server claiming a 1 TiB file under a 1 MiB image: reads exactly the image, and memory does not grow like the claim', async (t) => {
  const { file, disk } = await sampleImage();
  const core = await getCore();
  const before = core.memory.buffer.byteLength;
  const server = await startHostileServer(file, () => 'total', 2 ** 40);
  try {
    assert.equal(await withTimeout(readOver(server.url, disk, '1 TiB claim'), CASE_TIMEOUT_MS, '1 TiB claim'), 'correct');
  } finally {
    await server.close();
  }
  // A read-only open sizes its slot bitmap from the slots the BAT names, not from the claimed
  // file size: one bit per claimed cluster would be 32 MiB here (4 KiB clusters). What remains
  // is the image's own BAT and bitmap: a few 64 KiB pages at most, never megabytes.
  const grown = core.memory.buffer.byteLength - before;
  assert.ok(grown <= 1 << 20, `WebAssembly memory grew by ${grown} bytes (the claim would cost 32 MiB)`);
  t.diagnostic(`1 TiB claimed over a ${file.length}-byte image: WebAssembly memory grew ${grown} bytes`);
});

after(() => console.log(`hostile HTTP: ${tried.cases + 2} cases tried`));

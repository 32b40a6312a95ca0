// HttpRangeStore in Node (Node 20's fetch) against our static server and a real nginx serving a
// qemu-img image: contents equal qemu-img convert's output while only a small fraction of the
// file is fetched (counted by the servers and by the store); coalescing, in-flight sharing and
// the LRU bound; and clear errors from servers that ignore Range, answer another range, or whose
// file changes while it is open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { HttpRangeStore } from '../../src/stores/http-range.js';
import { openOverlay } from '../../src/engine/overlay.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { MemoryDirectory } from '../../src/stores/memory-dir.js';
import { PloopImage } from '../../src/engine/image.js';
import { startStaticServer, type StaticServer } from '../../src/server/static-server.js';
import { makeTempDir } from '../helpers/tmp.js';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw, runOk } from '../helpers/qemu.js';
import { rejectsWith } from '../helpers/errors.js';
import { startNginx, startTinyServer, answerRange, type Nginx } from './http-servers.js';

const VIRTUAL = 64 << 20;
let tmp: { dir: string; cleanup: () => Promise<void> };
let imagePath: string;
let imageBytes: number;
let raw: Uint8Array;
let served: Array<{ path: string; bodyBytes: number; range: string | undefined; status: number }> = [];
let server: StaticServer;
let nginx: Nginx;

before(async () => {
  tmp = await makeTempDir('ploop-http-');
  imagePath = join(tmp.dir, 'disk.hds');
  await qemuCreate(imagePath, VIRTUAL);
  // 24 MiB of data in 1 MiB pieces spread over the disk, so the file is mostly data clusters.
  const writes = [];
  for (let i = 0; i < 24; i++) writes.push(ioWrite(0x10 + i, i * (VIRTUAL / 24) - (i * (VIRTUAL / 24)) % 4096, 1 << 20));
  writes.push(ioWrite(0xee, 40 * (1 << 20) + 123, 1000));
  await qemuIo(imagePath, writes);
  imageBytes = (await stat(imagePath)).size;
  raw = await qemuConvertToRaw(imagePath, join(tmp.dir, 'disk.raw'));
  await runOk('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', imagePath, join(tmp.dir, 'plain.raw')]);
  server = await startStaticServer({ root: tmp.dir, onServed: (info) => served.push(info) });
  nginx = await startNginx(tmp.dir);
});
after(async () => {
  await server?.close();
  await nginx?.stop();
  await tmp?.cleanup();
});

/** Regions a viewer might read: the MBR, bits of data, a hole, a straddling range. */
const REGIONS: Array<[number, number]> = [[0, 512], [5 << 20, 4096], [40 * (1 << 20), 4096], [20 << 20, 8192], [(8 << 20) - 3000, 6000], [63 << 20, 512]];

async function readRegions(url: string): Promise<HttpRangeStore> {
  const store = await HttpRangeStore.open(url);
  assert.equal(await store.size(), imageBytes);
  const image = await PloopImage.open(store, { keepStoreOpen: true });
  for (const [offset, length] of REGIONS) {
    const got = await image.read(offset, length);
    assert.ok(Buffer.from(got).equals(Buffer.from(raw.subarray(offset, offset + length))), `bytes at ${offset}+${length} differ from qemu-img convert`);
  }
  await image.close();
  return store;
}

test('our static server: the image reads like qemu-img converts it, fetching a small fraction', async () => {
  served = [];
  const store = await readRegions(server.url + 'disk.hds');
  const { bytesFetched, requests } = store.stats;
  const servedBytes = served.filter((s) => s.path === '/disk.hds').reduce((a, s) => a + s.bodyBytes, 0);
  assert.equal(servedBytes, bytesFetched, 'the server sent what the store counted');
  assert.equal(served.length, requests);
  assert.ok(served.every((s) => s.status === 206 && /^bytes=\d+-\d+$/.test(s.range ?? '')), 'only ranged GETs');
  assert.ok(bytesFetched < imageBytes * 0.05, `fetched ${bytesFetched} of ${imageBytes} bytes`);
});

test('nginx: the same reads, counted in its access log', async () => {
  const store = await readRegions(nginx.url + 'disk.hds');
  // The HEAD that waited for nginx to start is in the log too; the store only sends GETs.
  const log = (await nginx.requests()).filter((r) => r.method === 'GET');
  assert.equal(log.length, store.stats.requests);
  assert.ok(log.every((r) => r.status === 206 && /^bytes=\d+-\d+$/.test(r.range)), JSON.stringify(log));
  assert.equal(log.reduce((a, r) => a + r.bytes, 0), store.stats.bytesFetched);
  assert.ok(store.stats.bytesFetched < imageBytes * 0.05, `fetched ${store.stats.bytesFetched} of ${imageBytes} bytes`);
});

test('neighbouring missing blocks go out as one request; a block in flight is fetched once', async () => {
  const url = server.url + 'disk.hds';
  const store = await HttpRangeStore.open(url, { blockBytes: 64 << 10, maxRequestBytes: 1 << 20 });
  assert.equal(store.stats.requests, 1);
  // One read over 16 blocks: one request.
  const big = new Uint8Array(1 << 20);
  await store.read(1 << 20, big);
  assert.equal(store.stats.requests, 2);
  assert.ok(Buffer.from(big).equals((await readFile(imagePath)).subarray(1 << 20, 2 << 20)));
  // Three reads of neighbouring blocks in the same turn: one request.
  const a = new Uint8Array(100), b = new Uint8Array(100), c = new Uint8Array(100);
  await Promise.all([store.read(50 << 16, a), store.read(51 << 16, b), store.read(52 << 16, c)]);
  assert.equal(store.stats.requests, 3);
  // Two reads of the same block: one fetch, the second waits for it.
  await Promise.all([store.read(60 << 16, new Uint8Array(10)), store.read((60 << 16) + 500, new Uint8Array(10))]);
  assert.equal(store.stats.requests, 4);
  assert.equal(store.stats.sharedFetches, 1);
  // Runs are cut at maxRequestBytes: 2 MiB of missing blocks = 2 requests of 1 MiB.
  await store.read(4 << 20, new Uint8Array(2 << 20));
  assert.equal(store.stats.requests, 6);
  // Cached now: no request.
  await store.read(4 << 20, new Uint8Array(2 << 20));
  assert.equal(store.stats.requests, 6);
  assert.equal(store.stats.bytesFetched, (64 << 10) + (1 << 20) + 3 * (64 << 10) + (64 << 10) + (2 << 20));
});

test('the cache stays within its byte bound and evicts the least recently used block', async () => {
  const store = await HttpRangeStore.open(server.url + 'disk.hds', { blockBytes: 4096, cacheBytes: 3 * 4096 });
  const one = new Uint8Array(1);
  for (const block of [1, 2, 3]) await store.read(block * 4096, one);
  assert.equal(store.stats.cachedBlocks, 3);
  await store.read(1 * 4096, one); // block 1 used again: block 2 is now the oldest
  assert.equal(store.stats.requests, 4, 'a hit costs no request');
  await store.read(4 * 4096, one);
  assert.equal(store.stats.cachedBytes, 3 * 4096);
  const before = store.stats.requests;
  await store.read(1 * 4096, one);
  assert.equal(store.stats.requests, before, 'block 1 stayed');
  await store.read(2 * 4096, one);
  assert.equal(store.stats.requests, before + 1, 'block 2 was evicted');
  const big = await HttpRangeStore.open(server.url + 'disk.hds', { blockBytes: 4096, cacheBytes: 64 << 10 });
  await big.read(0, new Uint8Array(1 << 20));
  assert.ok(big.stats.cachedBytes <= 64 << 10, `cached ${big.stats.cachedBytes}`);
});

test('a server that ignores Range is refused with a clear error, after one request', async () => {
  const bytes = await readFile(imagePath);
  let requests = 0;
  const s = await startTinyServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'Content-Length': String(bytes.length) }).end(bytes);
  });
  try {
    await rejectsWith(() => HttpRangeStore.open(s.url + 'disk.hds'), 'ENOTSUP',
      /ignored the Range header \(bytes=0-65535 was answered 200 with the whole file of \d+ bytes\)/, /needs a server that answers Range requests with 206 Partial Content/);
    assert.equal(requests, 1);
  } finally {
    await s.close();
  }
});

test('a server that answers another range than asked is refused', async () => {
  const bytes = await readFile(imagePath);
  const s = await startTinyServer((req, res) => answerRange(req, res, bytes, {}, { shift: 512 }));
  try {
    await rejectsWith(() => HttpRangeStore.open(s.url + 'x'), 'EIO', /asked for bytes 0-65535, the server answered Content-Range bytes 512-66047\/\d+/);
  } finally {
    await s.close();
  }
});

for (const change of [
  { what: 'size', headers: (_v: number) => ({}), total: (v: number, n: number) => (v === 1 ? n : n + 4096), error: /changed while open: its size was \d+ bytes, the response for bytes=\d+-\d+ says \d+/ },
  { what: 'ETag', headers: (v: number) => ({ ETag: `"v${v}"` }), total: (_v: number, n: number) => n, error: /changed while open: ETag was "\\"v1\\"", the response for bytes \d+-\d+ has "\\"v2\\""/ },
  { what: 'Last-Modified', headers: (v: number) => ({ 'Last-Modified': v === 1 ? 'Tue, 24 Nov 2026 10:00:00 GMT' : 'Wed, 25 Nov 2026 10:00:00 GMT' }), total: (_v: number, n: number) => n, error: /changed while open: Last-Modified was "Tue, 24 Nov 2026 10:00:00 GMT"/ },
]) {
  test(`a file whose ${change.what} changes between requests fails every later read`, async () => {
    const bytes = await readFile(imagePath);
    let version = 1;
    const s = await startTinyServer((req, res) => answerRange(req, res, bytes, change.headers(version), { total: change.total(version, bytes.length) }));
    try {
      const store = await HttpRangeStore.open(s.url + 'disk.hds');
      await store.read(100_000, new Uint8Array(10));
      version = 2;
      await rejectsWith(() => store.read(1 << 20, new Uint8Array(10)), 'EIO', change.error, /reopen it/);
      version = 1;
      // Even cached blocks and an unchanged server now: no mixing of two versions.
      await rejectsWith(() => store.read(0, new Uint8Array(10)), 'EIO', change.error);
    } finally {
      await s.close();
    }
  });
}

test('HTTP errors, a missing Content-Range, an empty file and a closed port', async () => {
  const s = await startTinyServer((req, res) => {
    if (req.url === '/missing') res.writeHead(404, 'Not Found').end('no');
    else if (req.url === '/no-range-header') res.writeHead(206, { 'Content-Length': '2' }).end('ab');
    else if (req.url === '/empty') res.writeHead(416, { 'Content-Range': 'bytes */0' }).end();
    else if (req.url === '/star') res.writeHead(206, { 'Content-Range': 'bytes 0-1/*', 'Content-Length': '2' }).end('ab');
    else if (req.url === '/gzip') {
      // Range counted on the decoded file, body compressed: fetch decodes it to another length.
      const body = gzipSync(new Uint8Array(1000));
      res.writeHead(206, { 'Content-Range': 'bytes 0-65535/1000000', 'Content-Encoding': 'gzip', 'Content-Length': String(body.length) }).end(body);
    }
  });
  try {
    await rejectsWith(() => HttpRangeStore.open(s.url + 'missing'), 'EIO', /^http: GET http:\/\/127\.0\.0\.1:\d+\/missing bytes=0-65535 failed: HTTP 404 Not Found$/);
    await rejectsWith(() => HttpRangeStore.open(s.url + 'no-range-header'), 'EIO', /206 response without a readable Content-Range header \(a cross-origin server must send Access-Control-Expose-Headers: Content-Range\)/);
    await rejectsWith(() => HttpRangeStore.open(s.url + 'star'), 'ENOTSUP', /does not say the file's size/);
    await rejectsWith(() => HttpRangeStore.open(s.url + 'gzip'), 'EIO', /the body for bytes 0-65535 has 1000 bytes, expected 65536 \(the answer is gzip-encoded: serve the image without compression\)/);
    const empty = await HttpRangeStore.open(s.url + 'empty');
    assert.equal(await empty.size(), 0);
    assert.equal(await empty.read(0, new Uint8Array(4)), 0);
  } finally {
    await s.close();
  }
  await rejectsWith(() => HttpRangeStore.open(s.url + 'gone'), 'EIO', /^http: GET .*gone bytes=0-65535 failed: fetch failed/);
  await rejectsWith(() => HttpRangeStore.open(server.url + 'disk.hds', { blockBytes: 100 }), 'EINVAL', /blockBytes 100 is invalid/);
  await rejectsWith(() => HttpRangeStore.open('disk.hds'), 'EINVAL', /^http: URL "disk\.hds" is not valid here \(outside a page it must be absolute/);
  const store = await HttpRangeStore.open(server.url + 'disk.hds', { name: 'remote disk' });
  await rejectsWith(() => store.write(0, new Uint8Array(1)), 'EREADONLY', /^remote disk: write refused, the store is read-only$/);
  await rejectsWith(() => store.truncate(0), 'EREADONLY', /^remote disk: truncate refused/);
});

test('overlay: an HTTP base (ploop or raw) with a writable top; the server only ever sees GETs', async () => {
  served = [];
  for (const [file, baseKind] of [['disk.hds', 'ploop'], ['plain.raw', 'raw']] as const) {
    const base = await HttpRangeStore.open(server.url + file);
    const top = new MemoryStore();
    let image = await openOverlay({ base, baseKind, top, clusterSize: 1 << 20 });
    const mine = new Uint8Array(70_000).fill(0x77);
    await image.write((5 << 20) + 1000, mine);
    await image.close();
    // Reopen over a fresh base connection: the changes are in the top, the rest from the base.
    image = await openOverlay({ base: await HttpRangeStore.open(server.url + file), baseKind, top, writable: false });
    const got = await image.read(5 << 20, 100_000);
    const want = raw.slice(5 << 20, (5 << 20) + 100_000);
    want.set(mine, 1000);
    assert.ok(Buffer.from(got).equals(Buffer.from(want)), `${baseKind} base: overlay reads differ`);
    assert.ok(Buffer.from(await image.read(40 << 20, 4096)).equals(Buffer.from(raw.subarray(40 << 20, (40 << 20) + 4096))));
    await image.close();
    // A directory top records the base: another base size is refused.
    const dir = new MemoryDirectory('vm');
    await rejectsWith(() => openOverlay({ base, baseKind, top: dir, writable: false }), 'EINVAL', /^overlay: vm holds no overlay yet \(no overlay\.json\); open it writable once/);
    await (await openOverlay({ base, baseKind, top: dir, baseId: file })).close();
    const other = await HttpRangeStore.open(server.url + (file === 'disk.hds' ? 'plain.raw' : 'disk.hds'));
    await rejectsWith(() => openOverlay({ base: other, baseKind, top: dir }), 'EINVAL', /vm holds changes made over a base with size in bytes \d+, but this base has \d+/);
  }
  assert.ok(served.every((s) => s.status === 206), 'only ranged reads reached the server');
});

test('a 503 or a dropped connection is retried; a server that stalls fails after timeoutMs, not never', async () => {
  const bytes = await readFile(imagePath);
  let calls = 0;
  const flaky = await startTinyServer((req, res) => {
    calls++;
    if (calls === 1) res.writeHead(503).end();
    else if (calls === 2) res.destroy();
    else answerRange(req, res, bytes);
  });
  const stalls = await startTinyServer((req, res) => {
    if (req.url === '/headers-only') return; // never answers
    // Headers and half of the body, then nothing.
    res.writeHead(206, { 'Content-Range': 'bytes 0-65535/1000000', 'Content-Length': '65536' });
    res.write(new Uint8Array(32768));
  });
  try {
    const store = await HttpRangeStore.open(flaky.url + 'disk.hds');
    assert.deepEqual([store.stats.requests, store.stats.retries], [3, 2]);
    await rejectsWith(() => HttpRangeStore.open(stalls.url + 'headers-only', { timeoutMs: 300, retries: 0 }), 'EIO', /bytes=0-65535 failed: no answer within 300 ms$/);
    await rejectsWith(() => HttpRangeStore.open(stalls.url + 'half-body', { timeoutMs: 300, retries: 0 }), 'EIO', /bytes=0-65535 failed while reading the body: the body was not complete within 300 ms$/);
    calls = 0;
    const always503 = await startTinyServer((_req, res) => {
      calls++;
      res.writeHead(503, 'Service Unavailable').end();
    });
    await rejectsWith(() => HttpRangeStore.open(always503.url + 'x', { retries: 1 }), 'EIO', /failed: HTTP 503 Service Unavailable$/);
    assert.equal(calls, 2);
    await always503.close();
  } finally {
    await flaky.close();
    await stalls.close();
  }
});

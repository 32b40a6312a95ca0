// HttpRangeStore in real Chromium: a qemu-img image served by our static server (same origin)
// and by a real nginx (another origin, with CORS headers as a CDN sends them) reads like qemu-img
// converts it while only a small fraction of the file crosses the network (counted by the
// servers and by the store); a server that ignores Range or changes the file gives the clear
// error; and an HTTP base under a top delta in OPFS / IndexedDB keeps the changes across a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Page } from 'playwright-core';
import type { BrowserSession } from '../helpers/browser.js';
import { makeTempDir } from '../helpers/tmp.js';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw } from '../helpers/qemu.js';
import { startNginx, startTinyServer, answerRange, type Nginx, type TinyServer } from '../stores/http-servers.js';
import { startStoreBrowser, openPage, call, randomWrites } from './stores-shared.js';


const VIRTUAL = 64 << 20;
let tmp: { dir: string; cleanup: () => Promise<void> };
let imageBytes: number;
let raw: Uint8Array;
let session: BrowserSession;
let page: Page;
let nginx: Nginx;
const served: Array<{ path: string; bodyBytes: number; status: number; range?: string }> = [];

before(async () => {
  tmp = await makeTempDir('ploop-http-browser-');
  const path = join(tmp.dir, 'disk.hds');
  await qemuCreate(path, VIRTUAL);
  const writes = [];
  for (let i = 0; i < 24; i++) writes.push(ioWrite(0x10 + i, i * (2 << 20) + 8192 * i, 1 << 20));
  await qemuIo(path, writes);
  imageBytes = (await stat(path)).size;
  raw = await qemuConvertToRaw(path, join(tmp.dir, 'disk.raw'));
  session = await startStoreBrowser({ mounts: { '/img/': tmp.dir }, onServed: (s) => served.push(s) });
  page = await openPage(session);
  nginx = await startNginx(tmp.dir);
});
after(async () => {
  await session?.close();
  await nginx?.stop();
  await tmp?.cleanup();
});

const REGIONS: Array<[number, number]> = [[0, 512], [3 << 20, 4096], [(10 << 20) + 5000, 70_000], [33 << 20, 4096], [60 << 20, 512]];

interface HttpRead { size: number; stats: { requests: number; bytesFetched: number; cachedBytes: number }; regions: string[] }

function assertRegions(r: HttpRead): void {
  assert.equal(r.size, imageBytes);
  REGIONS.forEach(([offset, length], i) => {
    assert.ok(Buffer.from(r.regions[i], 'base64').equals(Buffer.from(raw.subarray(offset, offset + length))), `bytes at ${offset}+${length} differ from qemu-img convert`);
  });
  assert.ok(r.stats.bytesFetched < imageBytes * 0.05, `fetched ${r.stats.bytesFetched} of ${imageBytes} bytes`);
}

test('our static server (same origin): reads equal qemu-img convert, a small fraction fetched', async () => {
  served.length = 0;
  const r = await call<HttpRead>(page, 'httpRead', { url: '/img/disk.hds', regions: REGIONS });
  assertRegions(r);
  const image = served.filter((s) => s.path === '/img/disk.hds');
  assert.equal(image.length, r.stats.requests);
  assert.ok(image.every((s) => s.status === 206), 'only ranged answers');
  assert.equal(image.reduce((a, s) => a + s.bodyBytes, 0), r.stats.bytesFetched, 'bytes the server sent = bytes the store counted');
  assert.deepEqual(session.errors, []);
});

test('a real nginx on another origin (CORS, as a CDN): the same reads, counted in its access log', async () => {
  const r = await call<HttpRead>(page, 'httpRead', { url: nginx.url + 'disk.hds', regions: REGIONS });
  assertRegions(r);
  const gets = (await nginx.requests()).filter((x) => x.method === 'GET');
  assert.equal(gets.length, r.stats.requests);
  assert.ok(gets.every((x) => x.status === 206), JSON.stringify(gets));
  assert.equal(gets.reduce((a, x) => a + x.bytes, 0), r.stats.bytesFetched);
  assert.deepEqual(session.errors, []);
});

/** CORS headers for the misbehaving servers (the page is on another origin). */
function cors(req: IncomingMessage, res: ServerResponse): boolean {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, ETag, Last-Modified');
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { 'Access-Control-Allow-Headers': 'Range', 'Access-Control-Allow-Methods': 'GET' }).end();
    return true;
  }
  return false;
}

test('in the browser too: a server that ignores Range, and a file that changes size, give clear errors', async () => {
  const bytes = await readFile(join(tmp.dir, 'disk.hds'));
  let requests = 0;
  const servers: TinyServer[] = [];
  try {
    servers.push(await startTinyServer((req, res) => {
      if (!cors(req, res)) res.writeHead(200, { 'Content-Length': String(bytes.length) }).end(bytes);
    }));
    // The file grows by a sector after the first request (the one that found its size).
    servers.push(await startTinyServer((req, res) => {
      if (!cors(req, res)) answerRange(req, res, bytes, {}, { total: requests++ === 0 ? bytes.length : bytes.length + 512 });
    }));
    await assert.rejects(call(page, 'httpRead', { url: servers[0].url + 'disk.hds', regions: [] }),
      (e: Error & { code?: string }) => e.code === 'ENOTSUP' && /ignored the Range header \(bytes=0-65535 was answered 200 with the whole file/.test(e.message));
    await assert.rejects(call(page, 'httpRead', { url: servers[1].url + 'disk.hds', regions: [[5 << 20, 512]] }),
      (e: Error & { code?: string }) => e.code === 'EIO' && new RegExp(`changed while open: its size was ${bytes.length} bytes, the response for bytes=\\d+-\\d+ says ${bytes.length + 512}`).test(e.message));
    assert.equal(requests, 2);
  } finally {
    for (const s of servers) await s.close();
  }
});

for (const kind of ['opfs', 'idb'] as const) {
  test(`an HTTP base with the top delta in ${kind}: changes survive a reload, the base is only read`, async () => {
    served.length = 0;
    const { writes, model } = randomWrites(11, VIRTUAL, 20, 100_000, new Uint8Array(raw));
    await call(page, 'httpOverlay', { url: '/img/disk.hds', kind, dir: `tests/http-${kind}`, writes, reset: true });
    await page.reload();
    const regions: Array<[number, number]> = writes.map((w) => [w.offset, w.length + 100]);
    regions.push([3 << 20, 4096]);
    const r = await call<{ regions: string[] }>(page, 'httpOverlay', { url: '/img/disk.hds', kind, dir: `tests/http-${kind}`, regions });
    regions.forEach(([offset, length], i) => {
      const want = model.subarray(offset, Math.min(VIRTUAL, offset + length));
      assert.ok(Buffer.from(r.regions[i], 'base64').equals(Buffer.from(want)), `bytes at ${offset}+${length}`);
    });
    assert.ok(served.filter((s) => s.path === '/img/disk.hds').every((s) => s.status === 206));
    assert.deepEqual(session.errors, []);
  });
}

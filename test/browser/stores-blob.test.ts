// A picked file (File from <input type=file>) as a BlobStore in real Chromium reads like qemu-img
// converts it; and the stores work on a page that is NOT cross-origin isolated (no
// SharedArrayBuffer): OPFS through its host worker, IndexedDB, a Blob base under an OPFS top.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { BrowserSession } from '../helpers/browser.js';
import { makeTempDir } from '../helpers/tmp.js';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw } from '../helpers/qemu.js';
import { startStoreBrowser, openPage, call, randomWrites, assertNoMismatch } from './stores-shared.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let isolated: BrowserSession;
let plain: BrowserSession;
let imagePath: string;
let raw: Uint8Array;

before(async () => {
  tmp = await makeTempDir('ploop-blob-');
  imagePath = join(tmp.dir, 'picked.hds');
  await qemuCreate(imagePath, 16 << 20, 64 << 10);
  await qemuIo(imagePath, [ioWrite(0x3c, 512, 200_000), ioWrite(0xc3, 12 << 20, 65536)]);
  raw = await qemuConvertToRaw(imagePath, `${imagePath}.raw`);
  isolated = await startStoreBrowser();
  plain = await startStoreBrowser({ isolated: false, mounts: { '/files/': tmp.dir } });
});
after(async () => {
  await isolated?.close();
  await plain?.close();
  await tmp?.cleanup();
});

test('a picked file reads like qemu-img convert; the store is read-only and named after the file', async () => {
  const page = await openPage(isolated);
  await page.setInputFiles('input[type=file]', imagePath);
  const regions: Array<[number, number]> = [[0, 1 << 20], [12 << 20, 70_000], [15 << 20, 4096]];
  const r = await call<{ name: string; size: number; regions: string[]; writable: boolean }>(page, 'pickedRead', { regions });
  assert.equal(r.name, 'picked.hds');
  assert.equal(r.size, (await readFile(imagePath)).length);
  assert.equal(r.writable, false);
  regions.forEach(([offset, length], i) => {
    assert.ok(Buffer.from(r.regions[i], 'base64').equals(Buffer.from(raw.subarray(offset, offset + length))), `bytes at ${offset}`);
  });
  assert.deepEqual(isolated.errors, []);
});

test('without cross-origin isolation OPFS, IndexedDB and an overlay still persist across a reload', async () => {
  const page = await openPage(plain);
  assert.deepEqual(await call(page, 'where'), { worker: false, isolated: false });
  const size = 4 << 20;
  for (const kind of ['opfs', 'idb'] as const) {
    const { writes } = randomWrites(21, size, 10, 50_000);
    await call(page, 'writeImage', { kind, path: 'plain/disk.hds', size, clusterSize: 64 << 10, writes });
    await page.reload();
    const v = await call<{ mismatches: unknown[]; clean: boolean }>(page, 'verifyImage', { kind, path: 'plain/disk.hds', writes });
    assertNoMismatch(v.mismatches, `${kind} without isolation`);
    assert.equal(v.clean, true);
  }
  const base = '/files/picked.hds';
  const { writes } = randomWrites(22, 16 << 20, 10, 50_000);
  await call(page, 'overlayWrite', { kind: 'opfs', dir: 'plain/overlay', base, baseKind: 'ploop', writes, reset: true });
  await page.reload();
  const v = await call<{ mismatches: unknown[] }>(page, 'overlayVerify', { kind: 'opfs', dir: 'plain/overlay', base, baseKind: 'ploop', writes });
  assertNoMismatch(v.mismatches, 'overlay without isolation');
  assert.deepEqual(plain.errors, []);
});

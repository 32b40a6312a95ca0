// The OpfsStore's synchronous path in a worker (it holds the sync access handle and returns
// settled promises instead of running async methods): the contract of a BlockStore still holds
// there — every outcome is a promise, errors are rejections naming the store and operation,
// reads land exactly in the caller's view (offset views, SharedArrayBuffer views), short reads
// at the end, growth seen by size(), and the bytes are in the file for a raw handle. Real
// Chromium, a real module worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BrowserSession } from '../helpers/browser.js';
import { openPage, startStoreBrowser } from './stores-shared.js';

let session: BrowserSession;
before(async () => {
  session = await startStoreBrowser();
});
after(async () => {
  await session?.close();
});

// Runs in a module worker made from a Blob (the page passes its origin so that the bundle and the
// worker code resolve); a string, so Chromium runs it exactly as written.
const WORKER = `
const lib = await import(self.origin + '/ploop.js');
const out = {};
const outcome = (fn) => {
  let value;
  try { value = fn(); } catch (e) { return { threw: e.code ?? e.name, message: e.message }; }
  if (!(value instanceof Promise)) return { notPromise: typeof value };
  return value.then((v) => ({ value: v }), (e) => ({ rejected: e.code ?? e.name, message: e.message }));
};
try {
  await lib.OpfsStore.remove('sync-path/a.bin');
  const s = await lib.OpfsStore.open('sync-path/a.bin', { create: true });
  out.mode = s.mode;
  const data = new Uint8Array(10000).map((_, i) => (i * 13 + 7) & 0xff);
  out.write = await outcome(() => s.write(5000, data));
  out.size = await s.size();
  // A view in the middle of a larger buffer: the bytes around it stay as they were.
  const big = new Uint8Array(300).fill(0xee);
  out.viewRead = await outcome(() => s.read(5100, big.subarray(100, 200)));
  out.viewOk = big.subarray(100, 200).every((b, i) => b === data[100 + i]) && big.subarray(0, 100).every((b) => b === 0xee) && big.subarray(200).every((b) => b === 0xee);
  // Short at the end, nothing past it, zeros in the gap before the first write.
  out.shortRead = await outcome(() => s.read(14990, new Uint8Array(100)));
  out.pastEnd = await outcome(() => s.read(20000, new Uint8Array(10)));
  const gap = new Uint8Array(8).fill(1);
  await s.read(10, gap);
  out.gap = Array.from(gap);
  // The shared WASM memory's kind of buffer, both ways.
  const sab = new Uint8Array(new SharedArrayBuffer(4096));
  sab.fill(0x42);
  out.sabWrite = await outcome(() => s.write(20000, sab.subarray(0, 1000)));
  const sabBack = new Uint8Array(new SharedArrayBuffer(1000));
  out.sabRead = await outcome(() => s.read(20000, sabBack));
  out.sabOk = sabBack.every((b) => b === 0x42);
  // A handle error (a negative position) is a rejection that names the read.
  out.badOffset = await outcome(() => s.read(-1, new Uint8Array(4)));
  await s.flush();
  await s.close();
  out.closedRead = await outcome(() => s.read(0, new Uint8Array(1)));
  out.closedWrite = await outcome(() => s.write(0, new Uint8Array(1)));
  const ro = await lib.OpfsStore.open('sync-path/a.bin', {});
  out.readOnlyWrite = await outcome(() => ro.write(0, new Uint8Array(1)));
  await ro.close();
  // What the store wrote is in the file, for a raw handle.
  const root = await navigator.storage.getDirectory();
  const h = await (await (await root.getDirectoryHandle('sync-path')).getFileHandle('a.bin')).createSyncAccessHandle();
  const raw = new Uint8Array(10000);
  h.read(raw, { at: 5000 });
  out.rawSize = h.getSize();
  out.rawOk = raw.every((b, i) => b === data[i]);
  h.close();
  await lib.OpfsStore.remove('sync-path/a.bin');
  self.postMessage({ ok: true, out });
} catch (e) {
  self.postMessage({ ok: false, message: String(e && e.stack || e) });
}
`;

test('opfs in a worker: the synchronous path keeps the BlockStore contract', async () => {
  const page = await openPage(session);
  const r = await page.evaluate(`(async () => {
    const url = URL.createObjectURL(new Blob(['self.origin = ' + JSON.stringify(location.origin) + ';\\n', ${JSON.stringify(WORKER)}], { type: 'text/javascript' }));
    const w = new Worker(url, { type: 'module' });
    try {
      return await new Promise((resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => reject(new Error('worker: ' + e.message));
      });
    } finally {
      w.terminate();
    }
  })()`) as { ok: boolean; message?: string; out: Record<string, unknown> };
  assert.ok(r.ok, r.message);
  // biome-ignore lint/suspicious/noExplicitAny: the page's answer, checked field by field below
  const o = r.out as Record<string, any>;
  assert.equal(o.mode, 'sync');
  assert.deepEqual(o.write, { value: undefined });
  assert.equal(o.size, 15000);
  assert.deepEqual(o.viewRead, { value: 100 });
  assert.equal(o.viewOk, true, 'a read into an offset view landed elsewhere or spilled');
  assert.deepEqual(o.shortRead, { value: 10 });
  assert.deepEqual(o.pastEnd, { value: 0 });
  assert.deepEqual(o.gap, [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(o.sabWrite, { value: undefined });
  assert.deepEqual(o.sabRead, { value: 1000 });
  assert.equal(o.sabOk, true);
  assert.equal(o.badOffset.rejected, 'EIO', JSON.stringify(o.badOffset));
  assert.match(o.badOffset.message, /^opfs: read sync-path\/a\.bin at -1/);
  assert.equal(o.closedRead.rejected, 'ECLOSED', JSON.stringify(o.closedRead));
  assert.match(o.closedRead.message, /^opfs:sync-path\/a\.bin: read refused, the store is closed/);
  assert.equal(o.closedWrite.rejected, 'ECLOSED', JSON.stringify(o.closedWrite));
  assert.equal(o.readOnlyWrite.rejected, 'EREADONLY', JSON.stringify(o.readOnlyWrite));
  assert.match(o.readOnlyWrite.message, /write refused, the store is read-only/);
  assert.equal(o.rawSize, 21000);
  assert.equal(o.rawOk, true);
  assert.deepEqual(session.errors, []);
});

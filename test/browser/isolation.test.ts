// The served page is cross-origin isolated (COOP/COEP) and the browser bundle loads its WASM core
// there; without the headers the page is not isolated. Real Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBrowser, type BrowserSession } from '../helpers/browser.js';

let isolated: BrowserSession;
let plain: BrowserSession;
before(async () => {
  isolated = await startBrowser();
  plain = await startBrowser({ isolated: false });
});
after(async () => {
  await isolated?.close();
  await plain?.close();
});

test('with COOP/COEP the page is isolated and the bundle creates and reads an image', async () => {
  const page = await isolated.open();
  const result = await page.evaluate(async () => {
    const lib = await import(String('./ploop.js'));
    const store = new lib.MemoryStore();
    await lib.createImage(store, { size: 8 << 20, clusterSize: 64 << 10 });
    const image = await lib.open(store, { writable: true });
    await image.write(4096, new Uint8Array(512).fill(0x5a));
    const back = await image.read(4096, 512);
    await image.close();
    return { isolated: crossOriginIsolated, sab: typeof SharedArrayBuffer, ok: back.every((b: number) => b === 0x5a) };
  });
  assert.deepEqual(result, { isolated: true, sab: 'function', ok: true });
  assert.deepEqual(isolated.errors, []);
});

test('without the headers the page is not isolated and the bundle still works', async () => {
  const page = await plain.open();
  const result = await page.evaluate(async () => {
    const lib = await import(String('./ploop.js'));
    const store = new lib.MemoryStore();
    await lib.createImage(store, { size: 8 << 20 });
    const image = await lib.open(store, { writable: true });
    await image.write(0, new Uint8Array(512).fill(7));
    const back = await image.read(0, 512);
    await image.close();
    return { isolated: crossOriginIsolated, ok: back[511] === 7 };
  });
  assert.deepEqual(result, { isolated: false, ok: true });
  assert.deepEqual(plain.errors, []);
});

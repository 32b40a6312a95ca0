// The v86 page in real Chromium: boots the built-in sample disk through the adapter (BIOS from
// Debian's seabios via the server's /bios/ mount), shows the serial output, keeps the guest's
// INT 13h write in an OPFS delta across a reload, resets to base, and exports images that
// qemu-img accepts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBrowser, screenshot, type BrowserSession } from '../helpers/browser.js';
import { makeTempDir } from '../helpers/tmp.js';
import { qemuConvertToRaw } from '../helpers/qemu.js';
import { assertToolsAccept } from '../helpers/ploop.js';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createImage, PloopImage } from '../../src/index.js';
import { sampleBootDisk } from '../../web/v86-sample-disk.ts';
import { NodeFileStore } from '../../src/node.js';

import { SAMPLE_FIRST_BOOT, SAMPLE_LATER_BOOT, SAMPLE_DONE, SAMPLE_TITLE, SAMPLE_WRITTEN } from '../helpers/boot-sectors.js';

// The serial text as the page shows it (<pre>, trimmed).
const FIRST_BOOT = SAMPLE_FIRST_BOOT.trim();
const LATER_BOOT = SAMPLE_LATER_BOOT.trim();

let session: BrowserSession;
let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-v86-page-');
  // A ploop image of the sample disk, served next to the page for ?image=URL.
  const store = await NodeFileStore.open(join(tmp.dir, 'sample.hds'), { create: true });
  await createImage(store, { size: 1 << 20, clusterSize: 64 << 10 });
  const image = await PloopImage.open(store, { writable: true });
  await image.write(0, sampleBootDisk().subarray(0, 4096));
  await image.close();
  session = await startBrowser({ mounts: { '/bios/': '/usr/share/seabios', '/disks/': tmp.dir } });
});
after(async () => {
  await session?.close();
  await tmp?.cleanup();
});

interface Demo {
  ready: Promise<void>;
  serial(): string;
  waitForSerial(marker: string, timeoutMs?: number): Promise<void>;
  generation(): number | null;
  flush(): Promise<void>;
  reset(): Promise<void>;
  exportBytes(kind: string): Promise<Uint8Array>;
}
declare const v86Demo: Demo;

/** An export from the page, carried out as base64 (an array of numbers is far slower). */
async function exported(page: import('playwright-core').Page, kind: string): Promise<Buffer> {
  const b64 = await page.evaluate(async (k) => {
    const bytes = await v86Demo.exportBytes(k);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }, kind);
  return Buffer.from(b64, 'base64');
}

test('the page boots the sample, the write survives a reload through OPFS, reset drops it, exports pass qemu-img', async () => {
  const page = await session.open('v86.html');
  await page.evaluate(() => v86Demo.ready);
  await page.evaluate((done) => v86Demo.waitForSerial(done), SAMPLE_DONE);
  await page.getByTestId('serial').filter({ hasText: SAMPLE_TITLE }).waitFor();
  assert.equal((await page.getByTestId('serial').textContent())?.replaceAll('\r', '').trim(), FIRST_BOOT.replaceAll('\r', ''));
  // The screen says it too (BIOS teletype), after the BIOS's own lines: a visitor who looks at
  // the screen and not the serial port sees what happened.
  const screen = page.locator('#screen_container .screen-text');
  await screen.filter({ hasText: SAMPLE_DONE }).waitFor();
  const screenText = await screen.innerText();
  for (const line of FIRST_BOOT.split('\r\n')) assert.ok(screenText.includes(line), `the screen shows "${line}":\n${screenText}`);
  assert.match(await page.getByTestId('persistence').textContent() ?? '', /^OPFS/);
  await page.evaluate(() => v86Demo.flush());
  await screenshot(page, 'v86-first-boot');

  await page.reload();
  await page.evaluate(() => v86Demo.ready);
  await page.evaluate((done) => v86Demo.waitForSerial(done), SAMPLE_DONE);
  assert.equal((await page.evaluate(() => v86Demo.serial())).trim(), LATER_BOOT);
  await page.getByTestId('serial').filter({ hasText: SAMPLE_WRITTEN }).waitFor();

  // Exports, checked by qemu-img: the merged image and the raw disk hold the guest's write.
  const merged = join(tmp.dir, 'merged.hds');
  await writeFile(merged, await exported(page, 'merged'));
  await assertToolsAccept(merged, 'the merged export');
  const raw = await qemuConvertToRaw(merged, `${merged}.raw`);
  assert.equal(Buffer.from(raw.subarray(1024, 1024 + SAMPLE_WRITTEN.length)).toString('latin1'), SAMPLE_WRITTEN);
  const delta = join(tmp.dir, 'delta.hds');
  await writeFile(delta, await exported(page, 'delta'));
  await assertToolsAccept(delta, 'the delta export');
  const rawExport = await exported(page, 'raw');
  assert.ok(rawExport.equals(Buffer.from(raw)), 'raw export equals qemu-img convert of the merged export');

  // Reset to base: the write is gone, the generation goes up, and that too survives a reload.
  await page.evaluate(() => v86Demo.reset());
  await page.evaluate((done) => v86Demo.waitForSerial(done), SAMPLE_DONE);
  assert.equal((await page.evaluate(() => v86Demo.serial())).trim(), FIRST_BOOT);
  assert.equal(await page.getByTestId('generation').textContent(), '1');
  await page.reload();
  await page.evaluate(() => v86Demo.ready);
  assert.equal(await page.evaluate(() => v86Demo.generation()), 1);
  assert.deepEqual(session.errors, []);
});

test('?image=URL boots a ploop image over HTTP ranges with the delta in IndexedDB; the write survives a reload', async () => {
  const served = join(tmp.dir, 'sample.hds');
  const hash = async () => createHash('sha256').update(await readFile(served)).digest('hex');
  const before = await hash();
  const page = await session.open('v86.html?image=/disks/sample.hds&store=idb');
  await page.evaluate(() => v86Demo.ready);
  await page.evaluate((done) => v86Demo.waitForSerial(done), SAMPLE_DONE);
  assert.equal((await page.evaluate(() => v86Demo.serial())).trim(), FIRST_BOOT);
  assert.match(await page.getByTestId('persistence').textContent() ?? '', /^IndexedDB/);
  assert.match(await page.getByTestId('disk-label').textContent() ?? '', /\/disks\/sample\.hds \(ploop, 1048576 bytes\)/);
  await page.evaluate(() => v86Demo.flush());
  await page.reload();
  await page.evaluate(() => v86Demo.ready);
  await page.evaluate((done) => v86Demo.waitForSerial(done), SAMPLE_DONE);
  assert.equal((await page.evaluate(() => v86Demo.serial())).trim(), LATER_BOOT);
  assert.equal(await hash(), before, 'the served base is never written');
  assert.deepEqual(session.errors, []);
});

test('without the BIOS mount the page says where SeaBIOS comes from', async () => {
  const page = await session.open('v86.html?bios=/no-bios/&store=memory');
  await page.evaluate(() => v86Demo.ready.catch(() => {}));
  const error = await page.getByTestId('error').textContent();
  assert.match(error ?? '', /BIOS .*\/no-bios\/bios\.bin: HTTP 404\. v86 needs SeaBIOS: install Debian's seabios \(apt-get install seabios\)/);
  session.errors.length = 0; // the 404 itself is logged by Chromium
});

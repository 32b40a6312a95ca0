// The v86 page's other disk sources and its IndexedDB fallback, in real Chromium, each booting
// the sample boot sector (cheap: about a second) whose write must come back on the next boot:
// a browser without OPFS keeps the delta in IndexedDB; a disk folder's files given to the picker
// (and a raw image dropped on the page) boot, and the same files find their delta again; an
// image the inspector page stored in OPFS boots from the "stored" list; ?disk=URL boots a raw
// image over HTTP ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { usePageSession, waitIdle } from './page-helpers.ts';
import { initStack, openStackDir, snapshotStack } from '../../src/index.ts';
import { sampleBootDisk } from '../../web/v86-sample-disk.ts';
import { NodeDirectory } from '../../src/node.ts';
import { SAMPLE_FIRST_BOOT, SAMPLE_LATER_BOOT, SAMPLE_DONE } from '../helpers/boot-sectors.ts';

const fixture = usePageSession((dir) => ({ mounts: { '/bios/': '/usr/share/seabios', '/disks/': dir } }));

interface Demo {
  ready: Promise<void>;
  serial(): string;
  waitForSerial(marker: string, timeoutMs?: number): Promise<void>;
  flush(): Promise<void>;
  restart(): Promise<void>;
}
declare const v86Demo: Demo;

/** The sample boot disk as a ploop disk folder with a snapshot (root.hds + an empty top). */
async function sampleFolder(name: string): Promise<string> {
  const dir = join(fixture.tmpDir, name);
  await mkdir(dir);
  await initStack(new NodeDirectory(dir), { size: 1 << 20, clusterSize: 64 << 10 });
  const image = await openStackDir(new NodeDirectory(dir), { writable: true });
  await image.write(0, sampleBootDisk().subarray(0, 4096));
  await image.close();
  await snapshotStack(new NodeDirectory(dir));
  return dir;
}

/** Wait for the sample to finish; its serial text (trimmed). */
async function sampleDone(page: Page): Promise<string> {
  await page.evaluate((done) => v86Demo.waitForSerial(done, 60_000), SAMPLE_DONE);
  return (await page.evaluate(() => v86Demo.serial())).trim();
}

test('without OPFS the page keeps the delta in IndexedDB, and the write comes back after a reload', async () => {
  const page = await fixture.session.context.newPage();
  // A browser without the origin-private file system (as some private windows are).
  await page.addInitScript(() => {
    delete (StorageManager.prototype as { getDirectory?: unknown }).getDirectory;
  });
  await page.goto(new URL('v86.html', fixture.session.server.url).href);
  await page.evaluate(() => v86Demo.ready);
  assert.equal(await sampleDone(page), SAMPLE_FIRST_BOOT.trim());
  assert.match(await page.getByTestId('persistence').textContent() ?? '', /^IndexedDB \(v86-disks\/built-in_sample-[0-9a-f]{16}\)$/);
  await page.evaluate(() => v86Demo.flush());
  await page.reload();
  await page.evaluate(() => v86Demo.ready);
  assert.equal(await sampleDone(page), SAMPLE_LATER_BOOT.trim());
  await page.close();
});

test('a disk folder\'s files given to the picker boot; given again, they find their delta; a dropped raw image boots', async () => {
  const dir = await sampleFolder('picked');
  const files = (await readdir(dir)).filter((f) => !f.endsWith('.lck')).map((f) => join(dir, f));
  assert.equal(files.length, 3, 'DiskDescriptor.xml, root.hds and the top delta');
  const page = await fixture.session.open('v86.html?noboot');
  await page.evaluate(() => v86Demo.ready);
  await page.getByTestId('file-input').setInputFiles(files);
  await page.getByTestId('disk-label').filter({ hasText: 'dropped disk folder (2 deltas) (folder, 1048576 bytes)' }).waitFor();
  assert.equal(await sampleDone(page), SAMPLE_FIRST_BOOT.trim());
  await page.evaluate(() => v86Demo.flush());
  await page.getByTestId('file-input').setInputFiles(files);
  await page.getByTestId('status').filter({ hasText: 'running' }).waitFor();
  assert.equal(await sampleDone(page), SAMPLE_LATER_BOOT.trim(), 'the same files find their delta again');

  // A raw image dropped on the drop zone (a DataTransfer with a File, as a real drop carries).
  const raw = Array.from(sampleBootDisk());
  const transfer = await page.evaluateHandle((bytes) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(bytes)], 'sample.img'));
    return dt;
  }, raw);
  await page.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer: transfer });
  await page.getByTestId('disk-label').filter({ hasText: 'sample.img (raw, 1048576 bytes)' }).waitFor();
  assert.equal(await sampleDone(page), SAMPLE_FIRST_BOOT.trim());
  assert.deepEqual(fixture.session.errors, []);
});

test('an image the inspector stored in OPFS boots from the page\'s stored list, its writes in a delta of their own', async () => {
  await sampleFolder('stored');
  // The inspector opens the folder by URL and keeps it in OPFS, as a visitor does.
  const inspector = await fixture.session.open(`index.html?open=${encodeURIComponent('/disks/stored/DiskDescriptor.xml')}`);
  await waitIdle(inspector, 1);
  await inspector.fill('[data-testid=save-name]', 'bootable');
  await inspector.selectOption('[data-testid=save-backend]', 'opfs');
  await inspector.click('[data-testid=save]');
  await waitIdle(inspector);
  assert.equal(await inspector.textContent('[data-testid=status]'), 'Save to OPFS: done');
  await inspector.close();

  const page = await fixture.session.open('v86.html?noboot');
  await page.evaluate(() => v86Demo.ready);
  const select = page.getByTestId('stored-select');
  await select.locator('option', { hasText: 'bootable (stored in OPFS by the image inspector)' }).waitFor({ state: 'attached' });
  await select.selectOption({ label: 'bootable (stored in OPFS by the image inspector)' });
  await page.getByTestId('stored-form').getByRole('button').click();
  await page.getByTestId('disk-label').filter({ hasText: /^bootable \(stored in OPFS by the image inspector\) \(folder, 1048576 bytes\)$/ }).waitFor();
  assert.equal(await sampleDone(page), SAMPLE_FIRST_BOOT.trim());
  await page.evaluate(() => v86Demo.restart());
  assert.equal(await sampleDone(page), SAMPLE_LATER_BOOT.trim());
  // The stored image itself is untouched: the write went to the v86 page's delta.
  const stored = await page.evaluate(async () => {
    const lib = await import('/ploop.js' as string);
    const image = await lib.openStackDir(await lib.OpfsDirectory.open('ploop-demo/bootable'), {});
    try {
      return Array.from(await image.read(1024, 16) as Uint8Array);
    } finally {
      await image.close();
    }
  });
  assert.deepEqual(stored, new Array(16).fill(0), 'sector 2 of the stored image is still empty');
  assert.deepEqual(fixture.session.errors, []);
});

test('?disk=URL boots a raw image read with HTTP ranges', async () => {
  await writeFile(join(fixture.tmpDir, 'sample.img'), sampleBootDisk());
  const page = await fixture.session.open('v86.html?disk=/disks/sample.img&store=memory');
  await page.evaluate(() => v86Demo.ready);
  assert.equal(await sampleDone(page), SAMPLE_FIRST_BOOT.trim());
  assert.match(await page.getByTestId('disk-label').textContent() ?? '', /\/disks\/sample\.img \(raw, 1048576 bytes\)$/);
  assert.equal(await page.getByTestId('persistence').textContent(), 'memory only (lost on reload)');
  await page.getByTestId('fetched').filter({ hasText: /of 1\.0 MiB \(\d+\.\d %\) in \d+ requests/ }).waitFor();
  assert.ok((await readFile(join(fixture.tmpDir, 'sample.img'))).equals(Buffer.from(sampleBootDisk())));
  assert.deepEqual(fixture.session.errors, []);
});

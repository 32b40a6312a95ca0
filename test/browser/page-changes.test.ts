// The demo page changes images: create, snapshot, test pattern, and the three exports, each
// download checked by qemu-img; long operations show progress and stop on Cancel. Real Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { screenshot } from '../helpers/browser.ts';
import { run, runOk } from '../helpers/qemu.ts';
import { assertPloopAccepts } from '../helpers/ploop.ts';
import { usePageSession, createOnPage, writePattern, waitIdle, fieldText, batPixel, legendColors } from './page-helpers.ts';

const fixture = usePageSession();

async function download(page: Page, testid: string, file: string): Promise<{ path: string; name: string }> {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${testid}]`)]);
  const path = join(fixture.tmpDir, file);
  await dl.saveAs(path);
  await waitIdle(page);
  return { path, name: dl.suggestedFilename() };
}

/** qemu-img check finds no error and ploop check accepts the file; the allocation counts qemu-img reports. */
async function checksClean(path: string): Promise<{ allocated: number; total: number }> {
  const r = await run('qemu-img', ['check', '--output=json', '-f', 'parallels', path]);
  assert.equal(r.code, 0, `qemu-img check ${path}: ${r.stdout}${r.stderr}`);
  const j = JSON.parse(r.stdout) as { 'allocated-clusters': number; 'total-clusters': number; 'check-errors': number };
  assert.equal(j['check-errors'], 0);
  await assertPloopAccepts(path, path);
  return { allocated: j['allocated-clusters'], total: j['total-clusters'] };
}

/** What the page's test pattern writes at `offset` (one 512-byte sector). */
function patternSector(offset: number): Buffer {
  const line = Buffer.from(`ploop-wasm test pattern @${offset.toString(16).padStart(12, '0')}\n`);
  return Buffer.from(Array.from({ length: 512 }, (_, i) => line[i % line.length]));
}

test('create, snapshot, write a test pattern, export merged / top delta / raw: qemu-img accepts every download', async () => {
  const page = await createOnPage(fixture.session, { size: '32M', clusterBytes: 1048576 });
  assert.equal(await page.textContent('[data-testid=image-title]'), 'New image (32 MiB)');
  const fresh = await fieldText(page);
  assert.equal(fresh['bat-entries'], '32');
  assert.equal(fresh['allocated'], '0 of 32 (0.0 %)');
  assert.equal(await page.isEnabled('[data-testid=write-pattern]'), true);

  // Write on the base, snapshot, write again: two levels in the picture.
  await writePattern(page, '0', '1M', 2);
  await page.click('[data-testid=snapshot]');
  await waitIdle(page, 3);
  assert.equal(await page.locator('[data-testid=deltas] li').count(), 2);
  await writePattern(page, '5M', '1536k', 4);
  assert.equal((await fieldText(page))['allocated'], '3 of 32 (9.4 %)');
  assert.match(await page.textContent('[data-testid=hex]') ?? '', /^00500000  70 6c 6f 6f 70 2d 77 61  73 6d 20 74 65 73 74 20  \|ploop-wasm test \|$/m);
  const colors = await legendColors(page);
  assert.deepEqual(await batPixel(page, [0, 1, 5, 6, 7]), [colors['0'], colors['hole'], colors['1'], colors['1'], colors['hole']]);
  assert.deepEqual(await page.locator('[data-testid=check] [data-clean]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.clean)), ['true', 'true']);
  await screenshot(page, 'page-changed');

  const merged = await download(page, 'export-merged', 'merged.hds');
  assert.equal(merged.name, 'root-merged.hds');
  assert.deepEqual(await checksClean(merged.path), { allocated: 3, total: 32 });
  const top = await download(page, 'export-top', 'top.hds');
  assert.match(top.name, /^root\.hds\.[0-9a-f-]{36}$/);
  assert.deepEqual(await checksClean(top.path), { allocated: 2, total: 32 });
  const raw = await download(page, 'export-raw', 'disk.img');
  assert.equal(raw.name, 'root.img');
  const bytes = readFileSync(raw.path);
  assert.equal(bytes.length, 32 << 20);
  // The merged image reads as the raw download (qemu-img's comparison), and both hold the pattern.
  const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'parallels', raw.path, merged.path]);
  assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
  for (const off of [0, 512 * 1023, 5 << 20, (5 << 20) + 1536 * 1024 - 512]) assert.ok(bytes.subarray(off, off + 512).equals(patternSector(off)), `pattern at ${off}`);
  assert.ok(bytes.subarray(1 << 20, 5 << 20).every((b) => b === 0));
  const info = await runOk('qemu-io', ['-r', '-f', 'parallels', '-c', 'read -v 5M 64', merged.path]);
  assert.match(info.stdout, /^00500000:  70 6c 6f 6f 70 2d 77 61 73 6d 20 74 65 73 74 20  ploop.wasm.test.$/m);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('a long export shows progress and stops on Cancel, without a download; a bad pattern length is refused by name', async () => {
  const page = await createOnPage(fixture.session, { size: '2G' });
  let downloads = 0;
  page.on('download', () => downloads++);
  await page.click('[data-testid=export-raw]');
  await page.waitForSelector('[data-testid=task]:not([hidden])');
  assert.equal(await page.textContent('[data-testid=task-label]'), 'Export raw disk');
  // Progress moves before the user gives up.
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('[data-testid=task]')?.dataset.done ?? 0) > 0);
  const value = await page.evaluate(() => document.querySelector<HTMLProgressElement>('[data-testid=progress]')!.value);
  assert.ok(value > 0);
  await page.click('[data-testid=cancel]');
  await waitIdle(page);
  assert.equal(await page.textContent('[data-testid=status]'), 'Export raw disk: cancelled');
  assert.equal(await page.isVisible('[data-testid=task]'), false);
  assert.equal(await page.isVisible('[data-testid=error]'), false);
  assert.equal(downloads, 0);
  // The page still works afterwards.
  await writePattern(page, '2047M', '2M');
  assert.equal(await page.textContent('[data-testid=error]'), 'test pattern 2146435072+2097152 ends past the disk (2147483648 bytes)');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('the sample is read-only until a snapshot puts a writable delta on it', async () => {
  const page = await fixture.session.open('index.html');
  await waitIdle(page, 1);
  assert.equal(await page.isEnabled('[data-testid=write-pattern]'), false);
  assert.match(await page.textContent('[data-testid=writable-note]') ?? '', /read-only: take a snapshot/);
  await page.click('[data-testid=snapshot]');
  await waitIdle(page, 2);
  assert.equal(await page.locator('[data-testid=deltas] li').count(), 3);
  assert.equal(await page.isEnabled('[data-testid=write-pattern]'), true);
  await page.click('[data-testid=write-pattern]');
  await waitIdle(page, 3);
  // The default pattern (256 KiB at 4 MiB) lands in clusters 64..67 of level 2, inside the FAT partition.
  const colors = await legendColors(page);
  assert.deepEqual(await batPixel(page, [63, 64, 67, 68]), [colors['hole'], colors['2'], colors['2'], colors['hole']]);
  assert.deepEqual(await page.locator('[data-testid=partitions] td[data-field=label]').allTextContents(), ['PLOOPSAMPLE', 'sample-swap']);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('two million clusters: the BAT picture aggregates clusters per pixel and still shows a single written cluster', async () => {
  const page = await createOnPage(fixture.session, { size: '2T', clusterBytes: 1048576 });
  assert.equal((await fieldText(page))['bat-entries'], '2097152');
  await writePattern(page, '1T', '4k', 2);
  const per = Number(await page.getAttribute('[data-testid=bat]', 'data-clusters-per-cell'));
  assert.ok(per > 1, `${per} clusters per cell`);
  const written = 1 << 20; // cluster index of virtual offset 1 TiB with 1 MiB clusters
  const colors = await legendColors(page);
  assert.deepEqual(await batPixel(page, [0, written - per, written, written + per, 2097152 - 1]),
    [colors['hole'], colors['hole'], colors['0'], colors['hole'], colors['hole']]);
  assert.equal((await fieldText(page))['allocated'], '1 of 2097152 (0.0 %)');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('a v1 image (BAT in sectors): the header says so, and its export passes qemu-img check', async () => {
  const page = await createOnPage(fixture.session, { size: '8M', clusterBytes: 65536, format: 'v1' });
  await writePattern(page, '1M', '100k', 2);
  const fields = await fieldText(page);
  assert.equal(fields['format'], 'v1 (WithoutFreeSpace, BAT in sectors)');
  assert.equal(fields['allocated'], '2 of 128 (1.6 %)');
  const merged = await download(page, 'export-merged', 'v1.hds');
  assert.equal(readFileSync(merged.path).subarray(0, 16).toString('latin1'), 'WithoutFreeSpace');
  assert.deepEqual(await checksClean(merged.path), { allocated: 2, total: 128 });
  const r = await runOk('qemu-io', ['-r', '-f', 'parallels', '-c', 'read -v 1M 32', merged.path]);
  assert.match(r.stdout, /^00100000:  70 6c 6f 6f 70 2d 77 61 73 6d 20 74 65 73 74 20/m);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

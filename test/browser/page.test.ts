// The demo page in real Chromium, cross-origin isolated: the built-in sample (header, check,
// partitions, BAT colours against qemu-img map, hex view), opening by URL and by file picker and
// drop, and the keyboard. Changes, export and persistence are in page-*.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { screenshot } from '../helpers/browser.ts';
import { qemuCreate, qemuIo, qemuConvertToRaw, runOk } from '../helpers/qemu.ts';
import { qemuChainSpec, qemuConvertChain } from '../helpers/stack.ts';
import { usePageSession, waitIdle, fieldText, batPixel, legendColors, sampleFiles } from './page-helpers.ts';

const served = new Map<string, number>();
const fixture = usePageSession((tmpDir) => ({ mounts: { '/t/': tmpDir }, onServed: ({ path, bodyBytes }) => served.set(path, (served.get(path) ?? 0) + bodyBytes) }));

async function openPage(path = 'index.html'): Promise<Page> {
  const page = await fixture.session.open(path);
  await waitIdle(page);
  return page;
}

test('the page loads isolated with the sample: header, check, partitions and runner mode, no console errors', async () => {
  const page = await openPage();
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  assert.match(await page.textContent('[data-testid=mode]') ?? '', /^\d+ runners \(shared memory\)$/);
  assert.match(await page.textContent('[data-testid=image-title]') ?? '', /Sample disk/);
  assert.deepEqual(await fieldText(page), {
    'format': 'v2 (WithouFreSpacExt, BAT in clusters)',
    'virtual-size': '32 MiB (33554432 bytes)',
    'cluster-size': '64 KiB (128 sectors)',
    'bat-entries': '512',
    'in-use': 'clear',
    'data-offset': '128 sectors (0x10000)',
    'allocated': '16 of 512 (3.1 %)',
    'damage': 'none',
  });
  const { files } = sampleFiles();
  assert.deepEqual(await page.locator('[data-testid=deltas] li').allTextContents(), [files[0], `${files[1]} (top, read-only)`]);
  assert.deepEqual(await page.locator('[data-testid=check] [data-clean]').evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.file, (e as HTMLElement).dataset.clean])),
    files.map((f) => [f, 'true']));
  assert.match(await page.textContent('[data-testid=check]') ?? '', /root\.hds: no errors16\/512 clusters allocated/);
  const rows = await page.locator('[data-testid=partitions] tr[data-partition]').evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent)));
  assert.deepEqual(rows, [
    ['1', '0x100000', '20 MiB', 'FAT16 (LBA) (0x0e)', 'FAT16', 'PLOOPSAMPLE'],
    ['2', '0x1500000', '11 MiB', 'Linux swap (0x82)', 'Linux swap', 'sample-swap'],
  ]);
  assert.equal(await page.getAttribute('[data-testid=partitions] caption', 'data-scheme'), 'mbr');
  assert.equal(await page.isVisible('[data-testid=error]'), false);
  await screenshot(page, 'page-sample');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('the BAT picture colours every cluster by the level qemu-img map reports, and hover shows the mapping', async () => {
  const page = await openPage();
  const { dir, files } = sampleFiles();
  const map = JSON.parse((await runOk('qemu-img', ['map', '--output=json', qemuChainSpec(files.map((f) => join(dir, f)))])).stdout) as
    Array<{ start: number; length: number; depth: number; present: boolean; offset?: number }>;
  const cluster = 64 << 10;
  const expected: Array<number | 'hole'> = new Array(512).fill('hole');
  for (const e of map) {
    if (!e.present) continue;
    for (let c = e.start / cluster; c < (e.start + e.length) / cluster; c++) expected[c] = files.length - 1 - e.depth;
  }
  // The sample has clusters in both levels and holes: the check below means something.
  assert.ok(expected.includes(0) && expected.includes(1) && expected.includes('hole'));
  const colors = await legendColors(page);
  const pixels = await batPixel(page, [...expected.keys()]);
  const seen = pixels.map((rgb) => Object.entries(colors).find(([, c]) => c === rgb)?.[0] ?? `unknown ${rgb}`);
  assert.deepEqual(seen, expected.map(String));
  assert.deepEqual(await page.locator('[data-testid=legend] li').allTextContents(),
    [`hole: ${expected.filter((l) => l === 'hole').length}`, `level 0 · ${files[0]}: ${expected.filter((l) => l === 0).length}`,
      `level 1 · ${files[1]}: ${expected.filter((l) => l === 1).length}`]);

  // Hover over a cluster the top delta maps: the info line names level 1 and its host offset.
  const top = expected.indexOf(1);
  const hostOffset = map.find((e) => e.depth === 0 && e.present && e.start <= top * cluster && top * cluster < e.start + e.length)!;
  await page.locator('[data-testid=bat]').scrollIntoViewIfNeeded();
  const box = (await page.locator('[data-testid=bat]').boundingBox())!;
  const geo = await page.locator('[data-testid=bat]').evaluate((c) => ({ cell: Number((c as HTMLCanvasElement).dataset.cellPx), cols: Number((c as HTMLCanvasElement).dataset.columns), width: (c as HTMLCanvasElement).width }));
  // The canvas has a 1 px CSS border around its pixels.
  const scale = (box.width - 2) / geo.width;
  await page.mouse.move(box.x + 1 + ((top % geo.cols) + 0.5) * geo.cell * scale, box.y + 1 + (Math.floor(top / geo.cols) + 0.5) * geo.cell * scale);
  const expectedHost = hostOffset.offset! + (top * cluster - hostOffset.start);
  await page.waitForFunction((t) => document.querySelector('[data-testid=bat-info]')?.textContent?.startsWith(t), `cluster ${top}:`);
  assert.equal(await page.textContent('[data-testid=bat-info]'),
    `cluster ${top}: virtual 0x${(top * cluster).toString(16)} → level 1 (${files[1]}) host offset 0x${expectedHost.toString(16)} · in partition 1 (FAT16 “PLOOPSAMPLE”)`);
  // Clicking the cell shows its bytes in the hex view.
  await page.mouse.down();
  await page.mouse.up();
  await page.waitForFunction((o) => document.querySelector<HTMLElement>('[data-testid=hex]')?.dataset.offset === String(o), top * cluster);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('the hex view shows known bytes and pages with the buttons and the offset field', async () => {
  const page = await openPage();
  const hex = () => page.textContent('[data-testid=hex]').then((t) => t ?? '');
  // Sector 0: the MBR, disk signature "oolp" (0x706c6f6f LE) at 0x1b8 and 55 aa at 0x1fe.
  assert.match(await hex(), /^000001b0  00 00 00 00 00 00 00 00  6f 6f 6c 70 00 00 80 fe  \|\.\.\.\.\.\.\.\.oolp\.\.\.\.\|$/m);
  assert.match(await hex(), /^000001f0  .* 55 aa  \|\.{14}U\.\|$/m);
  await page.fill('[data-testid=hex-offset]', '1M');
  await page.press('[data-testid=hex-offset]', 'Enter');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid=hex]')?.dataset.offset === String(1 << 20));
  // The FAT16 boot sector: OEM name, then the label and type at 43 and 54.
  assert.match(await hex(), /^00100000  eb 3c 90 50 4c 4f 4f 50  57 53 4d 00 02 04 04 00  \|\.<\.PLOOPWSM\.\.\.\.\.\|$/m);
  assert.match(await hex(), /^00100020  00 00 00 00 80 00 29 25  11 26 20 50 4c 4f 4f 50  \|\.\.\.\.\.\.\)%\.& PLOOP\|$/m);
  assert.match(await hex(), /^00100030  53 41 4d 50 4c 45 46 41  54 31 36 20 20 20 cd 18  \|SAMPLEFAT16   \.\.\|$/m);
  await page.click('[data-testid=hex-next]');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid=hex]')?.dataset.offset === String((1 << 20) + 512));
  assert.equal(await page.inputValue('[data-testid=hex-offset]'), '0x100200');
  await page.click('[data-testid=hex-prev]');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid=hex]')?.dataset.offset === String(1 << 20));
  // Bad input: a clear error naming the field and the value; nothing changes.
  await page.fill('[data-testid=hex-offset]', 'twelve');
  await page.press('[data-testid=hex-offset]', 'Enter');
  assert.equal(await page.textContent('[data-testid=error]'), 'virtual offset: "twelve" is not a byte count (expected e.g. 4096, 0x1000, 64k or 1M)');
  await page.fill('[data-testid=hex-offset]', '64M');
  await page.press('[data-testid=hex-offset]', 'Enter');
  assert.equal(await page.textContent('[data-testid=error]'), 'virtual offset 67108864 is past the end of the disk (33554432 bytes)');
  await screenshot(page, 'page-hex');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('open by URL: an image qemu-img made, served with ranges; only part of it is fetched', async () => {
  const path = join(fixture.tmpDir, 'q.hds');
  await qemuCreate(path, '256M', '64k');
  await qemuIo(path, ['write -P 0x5a 3M 64k', 'write -P 0xa5 200M 128k', 'write -P 0x33 100M 8M']);
  const size = readFileSync(path).length;
  const page = await openPage('index.html?empty');
  await page.fill('[data-testid=url-input]', '/t/q.hds');
  await page.click('[data-testid=open-url]');
  await waitIdle(page, 1);
  assert.equal(await page.textContent('[data-testid=image-title]'), '/t/q.hds');
  const fields = await fieldText(page);
  assert.equal(fields['bat-entries'], '4096');
  assert.equal(fields['allocated'], '131 of 4096 (3.2 %)');
  await page.fill('[data-testid=hex-offset]', '0x300000');
  await page.press('[data-testid=hex-offset]', 'Enter');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid=hex]')?.dataset.offset === String(3 << 20));
  assert.match((await page.textContent('[data-testid=hex]')) ?? '', /^00300000  5a 5a 5a 5a 5a 5a 5a 5a  5a 5a 5a 5a 5a 5a 5a 5a  \|ZZZZZZZZZZZZZZZZ\|$/m);
  assert.equal(await page.textContent('[data-testid=partitions] caption'), 'No partition table and no known filesystem on the disk');
  const fetched = served.get('/t/q.hds') ?? 0;
  assert.ok(fetched > 0 && fetched < size / 4, `fetched ${fetched} of ${size} bytes`);
  // A URL that does not exist: a clear error, the page stays usable.
  await page.fill('[data-testid=url-input]', '/t/missing.hds');
  await page.click('[data-testid=open-url]');
  await waitIdle(page);
  await page.waitForSelector('[data-testid=error]:not([hidden])');
  assert.match(await page.textContent('[data-testid=error]') ?? '', /^http: GET http:\/\/127\.0\.0\.1:\d+\/t\/missing\.hds bytes=0-65535 failed: HTTP 404/);
  fixture.session.errors.splice(0, fixture.session.errors.length, ...fixture.session.errors.filter((e) => !/404/.test(e)));
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('open by file picker (one .hds) and by drag and drop (a whole disk folder)', async () => {
  const path = join(fixture.tmpDir, 'picked.hds');
  await qemuCreate(path, '16M', '1M');
  await qemuIo(path, ['write -P 0x11 0 4k']);
  const page = await openPage('index.html?empty');
  await page.setInputFiles('[data-testid=file-input]', path);
  await waitIdle(page, 1);
  assert.equal(await page.textContent('[data-testid=image-title]'), 'picked.hds');
  assert.equal((await fieldText(page))['allocated'], '1 of 16 (6.3 %)');

  // A file that is no ploop image: the error names the field, and the image that was open
  // stays open and shown (its bytes still read).
  const digest = await page.evaluate(() => (globalThis as unknown as { ploopDemo: { digest(): Promise<string | null> } }).ploopDemo.digest());
  const junk = join(fixture.tmpDir, 'notes.txt');
  writeFileSync(junk, 'just some text, long enough to hold a header....................................\n');
  await page.setInputFiles('[data-testid=file-input]', junk);
  await waitIdle(page);
  assert.equal(await page.textContent('[data-testid=error]'), 'invalid ploop header: signature is "just some text, ", expected "WithoutFreeSpace" (v1) or "WithouFreSpacExt" (v2)');
  assert.equal(await page.isVisible('[data-testid=image-title]'), true);
  assert.equal(await page.textContent('[data-testid=image-title]'), 'picked.hds');
  assert.equal((await fieldText(page))['allocated'], '1 of 16 (6.3 %)');
  assert.equal(await page.evaluate(() => (globalThis as unknown as { ploopDemo: { digest(): Promise<string | null> } }).ploopDemo.digest()), digest);
  // So does a URL that fails.
  await page.fill('[data-testid=url-input]', '/t/none.hds');
  await page.click('[data-testid=open-url]');
  await waitIdle(page);
  await page.waitForSelector('[data-testid=error]:not([hidden])');
  assert.equal(await page.textContent('[data-testid=image-title]'), 'picked.hds');
  fixture.session.errors.splice(0, fixture.session.errors.length, ...fixture.session.errors.filter((e) => !/404/.test(e)));
  // An image left with its in-use flag set: the header says so and the check lists it.
  const dirty = join(fixture.tmpDir, 'dirty.hds');
  await qemuCreate(dirty, '16M', '1M');
  const bytes = readFileSync(dirty);
  bytes.writeUInt32LE(0x746f6e59, 0x2c);
  writeFileSync(dirty, bytes);
  await page.setInputFiles('[data-testid=file-input]', dirty);
  await waitIdle(page, 2);
  assert.equal((await fieldText(page))['in-use'], 'set (not closed cleanly)');
  assert.equal(await page.getAttribute('[data-testid=check] [data-file="dirty.hds"]', 'data-clean'), 'false');
  assert.match(await page.textContent('[data-testid=check]') ?? '', /dirty\.hds: 1 corruption, 0 leaked clusters.*corruption: image was not closed correctly \(in-use flag set\)/);
  // A damaged image (BAT[1] names cluster 0's slot too): it opens read-only and reads as QEMU
  // reads it; the header says what is wrong and the check names the entry.
  const damaged = join(fixture.tmpDir, 'damaged.hds');
  await qemuCreate(damaged, '16M', '1M');
  await qemuIo(damaged, ['write -P 0x5a 0 1M']);
  const dbytes = readFileSync(damaged);
  dbytes.writeUInt32LE(dbytes.readUInt32LE(64), 68);
  writeFileSync(damaged, dbytes);
  await page.setInputFiles('[data-testid=file-input]', damaged);
  await waitIdle(page, 3);
  assert.equal(await page.textContent('[data-testid=image-title]'), 'damaged.hds');
  assert.match((await fieldText(page))['damage'], /^corrupt BAT: entry 1 \(host byte 1048576\) points at a cluster another entry already uses\. Read as QEMU reads it; check --repair before writing\.$/);
  assert.match(await page.textContent('[data-testid=check]') ?? '', /damaged\.hds: 1 corruption.*duplicate offset in BAT entry 1\b/);
  const qemuDigest = createHash('sha256').update(await qemuConvertToRaw(damaged, join(fixture.tmpDir, 'damaged.raw'))).digest('hex');
  assert.equal(await page.evaluate(() => (globalThis as unknown as { ploopDemo: { digest(): Promise<string | null> } }).ploopDemo.digest()), qemuDigest, 'the page reads every byte as qemu-img convert does');

  // Drop the sample folder's three files, as a user drags them from a file manager (the page
  // fetches their bytes from the server to build the File objects).
  const { dir, files } = sampleFiles();
  const transfer = await page.evaluateHandle(async (names) => {
    const dt = new DataTransfer();
    for (const name of names) {
      const body = await (await fetch(`samples/sample/${encodeURIComponent(name)}`)).arrayBuffer();
      dt.items.add(new File([body], name));
    }
    return dt;
  }, ['DiskDescriptor.xml', ...files]);
  await page.dispatchEvent('[data-testid=drop-zone]', 'drop', { dataTransfer: transfer });
  await waitIdle(page, 4);
  assert.equal(await page.textContent('[data-testid=image-title]'), '3 dropped files');
  assert.equal((await fieldText(page))['allocated'], '16 of 512 (3.1 %)');
  assert.deepEqual(await page.locator('[data-testid=partitions] td[data-field=label]').allTextContents(), ['PLOOPSAMPLE', 'sample-swap']);
  // Dropping only the descriptor names the missing files.
  const partial = await page.evaluateHandle((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'DiskDescriptor.xml'));
    return dt;
  }, readFileSync(join(dir, 'DiskDescriptor.xml'), 'utf8'));
  await page.dispatchEvent('[data-testid=drop-zone]', 'drop', { dataTransfer: partial });
  await page.waitForSelector('[data-testid=error]:not([hidden])');
  assert.match(await page.textContent('[data-testid=error]') ?? '', /DiskDescriptor\.xml names root\.hds, root\.hds\.\{.*\}, which were not among the dropped files/);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('the raw export of the sample is read by the runner pool (Web Workers) and equals qemu-img convert of the stack', async () => {
  const page = await openPage();
  const { dir, files } = sampleFiles();
  const started: string[] = [];
  page.on('worker', (w) => started.push(w.url()));
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-raw]')]);
  const path = join(fixture.tmpDir, 'sample.img');
  await dl.saveAs(path);
  await waitIdle(page);
  const runners = Number(/^(\d+) runners/.exec(await page.textContent('[data-testid=mode]') ?? '')?.[1]);
  assert.ok(runners >= 1);
  assert.equal(await page.textContent('[data-testid=status]'), `Export raw disk: done (read by ${runners} runners)`);
  // The workers really ran: the page started one per runner (and closed them after the export).
  assert.equal(started.filter((u) => u.endsWith('/runner.worker.js')).length, runners, `workers: ${started.join(', ')}`);
  const expected = await qemuConvertChain(files.map((f) => join(dir, f)), join(fixture.tmpDir, 'sample-qemu.raw'));
  assert.ok(readFileSync(path).equals(Buffer.from(expected)), 'the raw export differs from qemu-img convert');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('keyboard: Tab reaches the controls in order, arrow keys walk the BAT picture, Enter opens the hex view', async () => {
  const page = await openPage();
  const order: string[] = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      return el.dataset.testid ?? el.tagName.toLowerCase();
    }));
  }
  assert.deepEqual(order.slice(0, 6), ['file-input', 'url-input', 'open-url', 'open-sample', 'summary', 'run-check']);
  await page.focus('[data-testid=bat]');
  await page.waitForFunction(() => document.querySelector('[data-testid=bat-info]')?.textContent?.startsWith('cluster 0:'));
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('[data-testid=bat-info]')?.textContent?.startsWith('cluster 1:'));
  const columns = Number(await page.getAttribute('[data-testid=bat]', 'data-columns'));
  await page.keyboard.press('ArrowDown');
  await page.waitForFunction((c) => document.querySelector('[data-testid=bat-info]')?.textContent?.startsWith(`cluster ${c + 1}:`), columns);
  await page.keyboard.press('Enter');
  await page.waitForFunction((o) => document.querySelector<HTMLElement>('[data-testid=hex]')?.dataset.offset === String(o), (columns + 1) * 65536);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('a narrow screen (360 px) has no horizontal scrolling', async () => {
  const page = await fixture.session.context.newPage();
  await page.setViewportSize({ width: 360, height: 780 });
  await page.goto(new URL('index.html', fixture.session.server.url).href);
  await waitIdle(page);
  const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, view: window.innerWidth }));
  assert.ok(widths.doc <= widths.view, `page is ${widths.doc} px wide in a ${widths.view} px viewport`);
  const canvas = await page.locator('[data-testid=bat]').boundingBox();
  assert.ok(canvas && canvas.x + canvas.width <= 360, 'the BAT picture fits');
  await screenshot(page, 'page-narrow');
  await page.close();
});


test('at 1400 px (and 900 px) every row of cards is full, and each label stays on the line of its field', async () => {
  const page = await fixture.session.context.newPage();
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(new URL('index.html', fixture.session.server.url).href);
  await waitIdle(page, 1);
  await page.click('summary'); // the create form, with its labels (the URL form's label has a line of its own)
  const measure = () => page.evaluate(() => {
    // (No named helper functions in here: tsx would wrap them in a __name the page lacks.)
    const grid = document.querySelector('#image .grid')!.getBoundingClientRect();
    const rows = new Map<number, Array<{ id: string; left: number; right: number }>>();
    for (const card of Array.from(document.querySelectorAll('#image .grid > .card'))) {
      const b = card.getBoundingClientRect();
      const top = Math.round(b.top);
      if (!rows.has(top)) rows.set(top, []);
      rows.get(top)!.push({ id: card.getAttribute('aria-labelledby')!, left: b.left, right: b.right });
    }
    const labels = Array.from(document.querySelectorAll<HTMLLabelElement>('form.row:not(#url-form) label[for]')).filter((l) => l.offsetParent !== null).map((l) => {
      const field = document.getElementById(l.htmlFor)!;
      const [a, b] = [l.getBoundingClientRect(), field.getBoundingClientRect()];
      return { label: l.textContent, sameLine: a.top < b.bottom && b.top < a.bottom, before: a.right <= b.left + 1 };
    });
    return { left: grid.left, right: grid.right, rows: [...rows.values()], labels };
  });
  let layout = await measure();
  const full = (l: typeof layout) => {
    for (const row of l.rows) {
      const ids = row.map((c) => c.id).join(', ');
      assert.ok(Math.abs(Math.min(...row.map((c) => c.left)) - l.left) < 2, `the row ${ids} starts at the grid's left edge`);
      assert.ok(Math.abs(Math.max(...row.map((c) => c.right)) - l.right) < 2, `the row ${ids} reaches the grid's right edge (no empty column)`);
    }
  };
  full(layout);
  assert.deepEqual(layout.rows.map((r) => r.map((c) => c.id)), [['header-h', 'check-h'], ['parts-h'], ['files-h'], ['bat-h'], ['hex-h'], ['change-h', 'export-h', 'save-h']]);
  assert.ok(layout.labels.length >= 8, `${layout.labels.length} labels`);
  for (const l of layout.labels) assert.ok(l.sameLine && l.before, `"${l.label}" is on the line of its field, before it`);
  await screenshot(page, 'page-1400');
  await page.setViewportSize({ width: 900, height: 900 });
  layout = await measure();
  full(layout);
  assert.deepEqual(layout.rows.map((r) => r.map((c) => c.id)), [['header-h', 'check-h'], ['parts-h'], ['files-h'], ['bat-h'], ['hex-h'], ['change-h', 'export-h'], ['save-h']]);
  for (const l of layout.labels) assert.ok(l.sameLine && l.before, `900 px: "${l.label}" is on the line of its field, before it`);
  await page.close();
});

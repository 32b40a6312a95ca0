// The demo page's file browser in real Chromium: a GPT disk with an ext4 (mkfs.ext4 -d) and a
// FAT32 (mkfs.fat + mcopy) partition, converted to ploop, opened by URL (HTTP ranges), by the
// file picker and from OPFS: partition choice, folders, sort, filter, text and hex preview, a
// file's download and a folder's zip compared with the source tree, and the keyboard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { screenshot } from '../helpers/browser.ts';
import { cli, describeCli } from '../helpers/cli.ts';
import { makeAwkwardTree, makePartitionedDisk, describeTree, fileSha256, sha256, sh } from '../helpers/fs-trees.ts';
import { usePageSession, waitIdle } from './page-helpers.ts';

const fixture = usePageSession((tmpDir) => ({ mounts: { '/t/': tmpDir } }));
let src: string;
let image: string;

// Made once, by the first test (the session's temporary folder exists only once its hook ran).
let made: Promise<void> | null = null;
const prepare = () => (made ??= makeDisk());

async function makeDisk(): Promise<void> {
  const dir = fixture.tmpDir;
  src = join(dir, 'src');
  makeAwkwardTree(src, { bigDirEntries: 400, depth: 8 });
  const fat = join(dir, 'fatsrc');
  mkdirSync(fat);
  sh('sh', ['-c', `printf 'Long Name' > '${fat}/A long file name.txt'`]);
  const disk = makePartitionedDisk(dir, 'gpt', [{ fs: 'ext4', tree: src, sizeMiB: 40, label: 'ctroot' }, { fs: 'fat32', tree: fat, sizeMiB: 34, label: 'ESP' }]);
  image = join(dir, 'disk.hds');
  const r = await cli(['convert', disk, image, '--to', 'ploop']);
  assert.equal(r.code, 0, describeCli(['convert'], r));
}

interface BrowserState { partition: number | null; path: string | null; names: string[]; previewing: string | null }
const state = (page: Page) => page.evaluate(() => (globalThis as unknown as { ploopDemo: { info(): { browser: BrowserState } } }).ploopDemo.info().browser);

async function openEntry(page: Page, name: string): Promise<void> {
  await page.click(`[data-testid=files-table] tr[data-name="${name}"] button.link`);
  await waitIdle(page);
}

test('by URL: the ext4 partition is listed, folders open, filter and sort work, and the page says what HTTP fetched', async () => {
  await prepare();
  const page = await fixture.session.open('index.html?open=/t/disk.hds');
  await waitIdle(page, 1);
  assert.equal(await page.isVisible('[data-testid=files]'), true);
  const options = await page.locator('[data-testid=files-partition] option').allTextContents();
  assert.deepEqual(options, ['Partition 1: ext4 “ctroot”, 40 MiB', 'Partition 2: FAT32 “ESP”, 34 MiB']);
  let s = await state(page);
  assert.equal(s.partition, 1);
  assert.equal(s.path, '/');
  // Directories first, then names in byte order.
  const want = [...describeTree(src).keys()].filter((p) => p.lastIndexOf('/') === 0).map((p) => p.slice(1));
  assert.deepEqual([...s.names].sort(), [...want, 'lost+found'].sort());
  assert.deepEqual(s.names.slice(0, 5), ['big', 'deep', 'etc', 'lost+found', 'sticky']);
  const fetched = Number(await page.getAttribute('[data-testid=files-note]', 'data-fetched-bytes'));
  const imageBytes = statSync(image).size;
  assert.ok(fetched > 0 && fetched < imageBytes / 4, `fetched ${fetched} of ${imageBytes} bytes`);
  assert.match(await page.textContent('[data-testid=files-note]') ?? '', /fetched over HTTP so far \(\d+\.\d\d % of the image\)/);

  await openEntry(page, 'big');
  s = await state(page);
  assert.equal(s.path, '/big');
  assert.equal(s.names.length, 400);
  await page.fill('[data-testid=files-filter]', 'FILE-0039');
  assert.deepEqual((await state(page)).names, ['file-00390', 'file-00391', 'file-00392', 'file-00393', 'file-00394', 'file-00395', 'file-00396', 'file-00397', 'file-00398', 'file-00399']);
  await page.click('[data-testid=files-table] button[data-sort=name]');
  assert.equal((await state(page)).names[0], 'file-00399');
  assert.equal(await page.getAttribute('[data-testid=files-table] th[aria-sort]', 'aria-sort'), 'descending');
  // The breadcrumb goes back up.
  await page.click('[data-testid=files-crumbs] button[data-path="/"]');
  await waitIdle(page);
  assert.equal((await state(page)).path, '/');
  await page.click('[data-testid=files-table] button[data-sort=size]');
  await screenshot(page, 'page-files');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

test('preview as text and hex, a symlink followed, a file downloaded byte for byte', async () => {
  await prepare();
  const page = await fixture.session.open('index.html?open=/t/disk.hds');
  await waitIdle(page, 1);
  await openEntry(page, 'etc-link');
  assert.equal((await state(page)).path, '/etc');
  await openEntry(page, 'hostname');
  assert.equal(await page.textContent('[data-testid=files-preview-body]'), 'ct101\n');
  assert.equal(await page.textContent('[data-testid=files-preview-title]'), '/etc/hostname (6 B)');
  await page.click('[data-testid=files-as-hex]');
  assert.match(await page.textContent('[data-testid=files-preview-body]') ?? '', /^00000000 {2}63 74 31 30 31 0a/);
  await page.click('[data-testid=files-crumbs] button[data-path="/"]');
  await waitIdle(page);
  await openEntry(page, 'binary.bin');
  assert.match(await page.textContent('[data-testid=files-preview-title]') ?? '', /^\/binary\.bin \(first 64 KiB of 293\.0 KiB\)$/);
  assert.equal(await page.getAttribute('[data-testid=files-as-hex]', 'aria-pressed'), 'true', 'binary bytes are shown as hex');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=files-download]')]);
  assert.equal(download.suggestedFilename(), 'binary.bin');
  const saved = join(fixture.tmpDir, 'binary.bin');
  await download.saveAs(saved);
  assert.equal(fileSha256(saved), fileSha256(join(src, 'binary.bin')));
  await page.close();
});

test('a folder downloads as a zip that unzips to the source tree: bytes, modes, symlinks', async () => {
  await prepare();
  const page = await fixture.session.open('index.html?open=/t/disk.hds');
  await waitIdle(page, 1);
  await openEntry(page, 'etc');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=files-zip]')]);
  await waitIdle(page);
  assert.equal(download.suggestedFilename(), 'etc.zip');
  const zip = join(fixture.tmpDir, 'etc.zip');
  await download.saveAs(zip);
  const out = join(fixture.tmpDir, 'unzipped');
  mkdirSync(out);
  sh('unzip', ['-q', zip, '-d', out]);
  const got = describeTree(join(out, 'etc'));
  const want = describeTree(join(src, 'etc'));
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [path, w] of want) {
    assert.equal(got.get(path)?.mode, w.mode, `${path}: mode`);
    if (w.type === 'file') assert.equal(sha256(readFileSync(join(out, 'etc', path))), fileSha256(join(src, 'etc', path)), `${path}: bytes`);
  }
  // The whole tree: every file, and the symlinks as symlinks.
  await page.click('[data-testid=files-crumbs] button[data-path="/"]');
  await waitIdle(page);
  const [all] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=files-zip]')]);
  await waitIdle(page);
  const allZip = join(fixture.tmpDir, 'root.zip');
  await all.saveAs(allZip);
  const allOut = join(fixture.tmpDir, 'all');
  mkdirSync(allOut);
  sh('unzip', ['-q', allZip, '-d', allOut]);
  const tree = describeTree(join(allOut, 'root'));
  for (const [path, w] of describeTree(src)) {
    const g = tree.get(path);
    assert.equal(g?.type, w.type, `${path}: type`);
    assert.equal(g?.target, w.target, `${path}: target`);
    if (w.type === 'file') assert.equal(g?.size, w.size, `${path}: size`);
  }
  assert.equal(fileSha256(join(allOut, 'root/sparse.img')), fileSha256(join(src, 'sparse.img')));
  await page.close();
});

test('the keyboard alone: partition choice, opening a folder and a file, and the FAT partition\'s long names', async () => {
  await prepare();
  const page = await fixture.session.open('index.html?open=/t/disk.hds');
  await waitIdle(page, 1);
  await page.focus('[data-testid=files-partition]');
  await page.selectOption('[data-testid=files-partition]', '1');
  await waitIdle(page);
  assert.deepEqual((await state(page)).names, ['A long file name.txt']);
  await page.focus('[data-testid=files-table] tr[data-name="A long file name.txt"] button.link');
  await page.keyboard.press('Enter');
  await waitIdle(page);
  assert.equal(await page.textContent('[data-testid=files-preview-body]'), 'Long Name');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'files-preview-body', 'focus moves to the preview');
  await page.selectOption('[data-testid=files-partition]', '0');
  await waitIdle(page);
  await page.focus('[data-testid=files-table] tr[data-name="etc"] button.link');
  await page.keyboard.press('Enter');
  await waitIdle(page);
  assert.equal((await state(page)).path, '/etc');
  await page.close();
});

test('a dropped file and a copy kept in OPFS browse the same files', async () => {
  await prepare();
  const page = await fixture.session.open('index.html?empty');
  await waitIdle(page);
  await page.setInputFiles('[data-testid=file-input]', image);
  await waitIdle(page, 1);
  const names = (await state(page)).names;
  assert.ok(names.includes('hello.txt') && names.includes('etc'), names.join(' '));
  assert.equal(await page.getAttribute('[data-testid=files-note]', 'data-fetched-bytes'), '', 'a dropped file is not fetched');
  await page.fill('[data-testid=save-name]', 'files-copy');
  await page.selectOption('[data-testid=save-backend]', 'opfs');
  await page.click('[data-testid=save]');
  await waitIdle(page);
  assert.equal(await page.textContent('[data-testid=status]'), 'Save to OPFS: done', await page.textContent('[data-testid=error]') ?? '');
  await page.reload();
  await waitIdle(page);
  await page.click('[data-testid=stored] li[data-name="files-copy"][data-backend=opfs] [data-testid=stored-open]');
  await waitIdle(page, 1);
  assert.deepEqual((await state(page)).names, names);
  await openEntry(page, 'hello.txt');
  assert.equal(await page.textContent('[data-testid=files-preview-body]'), 'hello, world\n');
  await page.close();
});

// The embedding examples run as written, in real Chromium: the README's v86 example (the copy in
// docs/emulators.md must be the same code) and docs/emulators.md's BlockDevice example, taken
// from the Markdown, with only the disk URL replaced by a ploop image served by nginx. The v86
// example boots the sample boot sector, whose write reaches OPFS through the flush policy and is
// read back by the next boot after a reload; the BlockDevice example's write is read back after
// a reload too. The served images are never written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, readdir, readFile, symlink, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBrowser, WEB_ROOT, type BrowserSession } from '../helpers/browser.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { startNginx, type Nginx } from '../stores/http-servers.ts';
import { createImage, PloopImage } from '../../src/index.ts';
import { sampleBootDisk } from '../../web/v86-sample-disk.ts';
import { NodeFileStore } from '../../src/node.ts';
import { SAMPLE_DONE, SAMPLE_EMPTY, SAMPLE_WRITTEN } from '../helpers/boot-sectors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PLACEHOLDER = "'https://example.org/disks/linux/'";

/** The code block that follows `<!-- example: NAME … -->` in a Markdown file. */
function example(markdown: string, name: string): string {
  const m = new RegExp(`<!-- example: ${name} [^>]*-->\\n\`\`\`js\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(markdown);
  assert.ok(m, `no "example: ${name}" block`);
  return m[1];
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let nginx: Nginx;
let session: BrowserSession;
let readme: string;
let emulators: string;

before(async () => {
  tmp = await makeTempDir('ploop-v86-embed-');
  readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  emulators = await readFile(join(ROOT, 'docs/emulators.md'), 'utf8');
  // Two ploop images of the sample disk, one per example (each gets its own delta).
  const disks = join(tmp.dir, 'disks');
  await mkdir(disks);
  for (const name of ['v86.hds', 'block.hds']) {
    const store = await NodeFileStore.open(join(disks, name), { create: true });
    await createImage(store, { size: 1 << 20, clusterSize: 64 << 10 });
    const image = await PloopImage.open(store, { writable: true });
    await image.write(0, sampleBootDisk().subarray(0, 4096));
    await image.close();
  }
  await chmod(disks, 0o755);
  for (const name of await readdir(disks)) await chmod(join(disks, name), 0o644);
  nginx = await startNginx(tmp.dir);
  // The example page sits beside the library's files, as in the example's own imports.
  const site = join(tmp.dir, 'site');
  await mkdir(site);
  for (const entry of await readdir(WEB_ROOT)) await symlink(join(WEB_ROOT, entry), join(site, entry));
  const page = (module: string) => `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<div id="screen"><div style="white-space: pre; font: 14px monospace"></div><canvas hidden></canvas></div>
<script type="module">import('./${module}').then(() => { window.exampleDone = true; }, (e) => { window.exampleFailed = String(e && e.stack || e); });</script>`;
  const withUrl = (code: string, url: string) => {
    assert.equal(code.split(PLACEHOLDER).length, 2, `the example names the disk URL ${PLACEHOLDER} once`);
    return code.replace(PLACEHOLDER, JSON.stringify(url));
  };
  await writeFile(join(site, 'v86-example.mjs'), withUrl(example(readme, 'v86-embed'), `${nginx.url}disks/v86.hds`));
  await writeFile(join(site, 'v86-example.html'), page('v86-example.mjs'));
  await writeFile(join(site, 'block-example.mjs'), withUrl(example(emulators, 'block-device'), `${nginx.url}disks/block.hds`));
  await writeFile(join(site, 'block-example.html'), page('block-example.mjs'));
  session = await startBrowser({ mounts: { '/bios/': '/usr/share/seabios', '/site/': site } });
});
after(async () => {
  await session?.close();
  await nginx?.stop();
  await tmp?.cleanup();
});

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

test('the README\'s v86 example is the one in docs/emulators.md', () => {
  assert.equal(example(emulators, 'v86-embed'), example(readme, 'v86-embed'));
});

test('the README\'s v86 example boots a ploop image from a URL; the guest\'s write survives a reload', { timeout: 180_000 }, async () => {
  const served = join(tmp.dir, 'disks/v86.hds');
  const hash = await sha256(served);
  const page = await session.open('site/v86-example.html');
  const screen = page.locator('#screen > div');
  await screen.filter({ hasText: SAMPLE_DONE }).waitFor({ timeout: 60_000 });
  assert.match(await screen.innerText(), new RegExp(SAMPLE_EMPTY.replace(/[()]/g, '\\$&')));
  assert.equal(await page.evaluate(() => (window as unknown as { exampleFailed?: string }).exampleFailed), undefined);
  // The guest's write went to the OPFS worker as it printed; give it (and one interval of the
  // example's flush policy) time to land before the page goes away.
  await page.waitForTimeout(3000);
  await page.reload();
  await screen.filter({ hasText: SAMPLE_DONE }).waitFor({ timeout: 60_000 });
  assert.match(await screen.innerText(), new RegExp(SAMPLE_WRITTEN), 'the second boot reads what the first wrote');
  assert.equal(await sha256(served), hash, 'the served image is never written');
  assert.deepEqual(session.errors, []);
});

test('docs/emulators.md\'s BlockDevice example writes through the facade; a reload reads the write back', { timeout: 120_000 }, async () => {
  const served = join(tmp.dir, 'disks/block.hds');
  const hash = await sha256(served);
  const page = await session.open('site/block-example.html');
  await page.waitForFunction(() => { const w = window as unknown as { exampleDone?: boolean; exampleFailed?: string }; return w.exampleDone || w.exampleFailed; }, null, { timeout: 60_000 });
  assert.equal(await page.evaluate(() => (window as unknown as { exampleFailed?: string }).exampleFailed), undefined);
  await page.reload();
  const url = `${nginx.url}disks/block.hds`;
  const sectors = await page.evaluate(async (u) => {
    const lib = await import('/site/ploop.js' as string);
    const disk = await lib.openPersistentDisk(u);
    try {
      return [Array.from(await disk.device.read(0, 512) as Uint8Array), Array.from(await disk.device.read(512, 512) as Uint8Array)];
    } finally {
      await disk.close();
    }
  }, url);
  assert.deepEqual(sectors[1], sectors[0], 'sector 1 holds the copy of sector 0 the example wrote');
  assert.deepEqual(sectors[0].slice(510), [0x55, 0xaa]);
  assert.equal(await sha256(served), hash, 'the served image is never written');
  assert.deepEqual(session.errors, []);
});

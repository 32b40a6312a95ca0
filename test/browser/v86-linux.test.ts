// A real Linux guest (test/helpers/linux-guest.ts: Debian's i386 kernel, busybox, an ext4 root)
// boots on the v86 page in real Chromium from a ploop disk folder with a snapshot, served by
// nginx: only the blocks the guest reads are fetched (the page's count equals nginx's access
// log). The guest writes a token to its ext4 root; the page is reloaded, then the browser is
// restarted on the same profile, and each boot finds every earlier token: the delta persists in
// OPFS. The merged export passes qemu-img check and ploop check, and its ext4 root e2fsck -fn,
// with every token in it (debugfs). The served files are never written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { startBrowser, screenshot, type BrowserSession } from '../helpers/browser.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { startNginx, type Nginx } from '../stores/http-servers.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { runOk } from '../helpers/qemu.ts';
import { GUEST, GUEST_MEMORY_BYTES, guestFolder, carveRootPartition, rootTokens, serialTokens } from '../helpers/linux-guest.ts';

/** Generous, never infinite: a boot takes 15-40 s on the shared 2-core machine. */
const BOOT_TIMEOUT_MS = 300_000;
const TOP_GREETING = 'from the snapshot top delta';

let tmp: { dir: string; cleanup: () => Promise<void> };
let nginx: Nginx;
let session: BrowserSession;
let served: string[] = [];
const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

before(async () => {
  tmp = await makeTempDir('ploop-v86-linux-');
  const dir = join(tmp.dir, 'linux');
  await guestFolder(dir, { topGreeting: TOP_GREETING });
  served = (await readdir(dir)).filter((f) => !f.endsWith('.lck')).sort();
  nginx = await startNginx(tmp.dir);
  session = await startBrowser({ mounts: { '/bios/': '/usr/share/seabios' } });
});
after(async () => {
  await session?.close();
  await nginx?.stop();
  await tmp?.cleanup();
});

interface Demo {
  ready: Promise<void>;
  serial(): string;
  waitForSerial(marker: string, timeoutMs?: number): Promise<void>;
  unflushed(): { pending: number; sinceFlush: number } | null;
  fetched(): { requests: number; bytes: number; fileBytes: number } | null;
  bootTimes(): { firstSerial: number | null; until: number | null } | null;
}
declare const v86Demo: Demo;

/** Boot on `page` until the guest is done (or says it failed); the serial text. */
async function bootDone(page: Page): Promise<string> {
  await page.evaluate(() => v86Demo.ready);
  await page.evaluate(([done, failed, ms]) => Promise.race([
    v86Demo.waitForSerial(done, ms),
    v86Demo.waitForSerial(failed, ms).then(() => { throw new Error(`the guest failed:\n${v86Demo.serial()}`); }),
  ]), [GUEST.done, GUEST.failed, BOOT_TIMEOUT_MS] as const);
  const serial = await page.evaluate(() => v86Demo.serial());
  const times = await page.evaluate(() => v86Demo.bootTimes());
  process.stderr.write(`linux guest (Chromium page): first userspace line after ${((times?.until ?? NaN) / 1000).toFixed(1)} s\n`);
  return serial;
}

const pageUrl = () => `v86.html?disk=${encodeURIComponent(`${nginx.url}linux/`)}&memory=${GUEST_MEMORY_BYTES >> 20}&until=${encodeURIComponent(GUEST.userspace)}`;

test('the Linux guest boots on the page from a disk folder over nginx; its writes survive a reload and a browser restart; the merged export passes qemu-img, ploop check and e2fsck', { timeout: 3 * BOOT_TIMEOUT_MS + 180_000 }, async () => {
  const dir = join(tmp.dir, 'linux');
  const hashes = await Promise.all(served.map((f) => sha256(join(dir, f))));
  const servedBytes = (await Promise.all(served.filter((f) => f.includes('.hds')).map(async (f) => (await stat(join(dir, f))).size))).reduce((a, b) => a + b, 0);

  // First boot: the greeting comes from the snapshot's top delta (the guest reads a stack).
  let page = await session.open(pageUrl());
  const first = serialTokens(await bootDone(page));
  assert.equal(first.greeting, TOP_GREETING);
  assert.ok(first.firstBoot, 'the first boot finds no token');
  assert.match(first.wrote ?? '', /^[0-9a-f-]{36}$/);
  assert.match(await page.getByTestId('persistence').textContent() ?? '', /^OPFS \(v86-disks\/linux-[0-9a-f]{16}\)$/);
  assert.match(await page.getByTestId('disk-label').textContent() ?? '', /\/linux\/ \(folder, 100663296 bytes\)$/);
  await page.getByTestId('boot-time').filter({ hasText: `"${GUEST.userspace}" after` }).waitFor();

  // Only what the guest read was fetched, and the page counts what nginx sent.
  const fetched = (await page.evaluate(() => v86Demo.fetched()))!;
  const log = (await nginx.requests()).filter((r) => r.method === 'GET' && r.status === 206);
  assert.equal(fetched.bytes, log.reduce((a, r) => a + r.bytes, 0), 'the page counts the bytes nginx sent for ranges');
  assert.equal(fetched.requests, log.length, 'the page counts the range requests nginx answered');
  assert.equal(fetched.fileBytes, servedBytes);
  process.stderr.write(`linux guest (Chromium page): boot fetched ${fetched.bytes} of ${servedBytes} bytes (${(100 * fetched.bytes / servedBytes).toFixed(1)} %) in ${fetched.requests} requests\n`);
  assert.ok(fetched.bytes < servedBytes / 3, `fetched ${fetched.bytes} of ${servedBytes} bytes`);
  await page.getByTestId('fetched').filter({ hasText: /\(\d+\.\d %\) in \d+ requests/ }).waitFor();

  // The flush policy flushes on its own (every 2 s while there were writes): wait for it.
  await page.waitForFunction(() => { const u = v86Demo.unflushed(); return !!u && u.pending === 0 && u.sinceFlush === 0; }, null, { timeout: 60_000, polling: 200 });
  await screenshot(page, 'v86-linux-first-boot');

  // A reload: the delta in OPFS brings the token back.
  await page.reload();
  const second = serialTokens(await bootDone(page));
  assert.deepEqual(second.found, [first.wrote]);
  assert.ok(second.wrote && second.wrote !== first.wrote);
  // Flush now (the button), then restart the browser on the same profile.
  await page.getByTestId('flush').click();
  await page.getByTestId('status').filter({ hasText: 'flushed' }).waitFor();
  await session.relaunch();
  page = await session.open(pageUrl());
  const third = serialTokens(await bootDone(page));
  assert.deepEqual(third.found, [first.wrote, second.wrote], 'after a browser restart the guest finds both earlier tokens');
  assert.ok(third.wrote);

  // Export the merged image the way a visitor does (the Export button, a download).
  await page.getByTestId('export-kind').selectOption('merged');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.getByTestId('export').click()]);
  const merged = join(tmp.dir, 'merged.hds');
  await download.saveAs(merged);
  await assertToolsAccept(merged, 'the merged export of the Linux guest');
  const raw = join(tmp.dir, 'merged.raw');
  await runOk('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', merged, raw]);
  const { tokens } = await rootTokens(await carveRootPartition(raw, join(tmp.dir, 'root.ext4')));
  assert.deepEqual(tokens, [first.wrote, second.wrote, third.wrote]);

  assert.deepEqual(await Promise.all(served.map((f) => sha256(join(dir, f)))), hashes, 'the served disk folder is never written');
  assert.deepEqual(session.errors, []);
});

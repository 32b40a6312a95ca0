// The demo page keeps images in the origin-private file system and in IndexedDB: a changed
// image saved in each survives a page reload (and a browser restart on the same profile) byte
// for byte. Real Chromium with a persistent profile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { screenshot } from '../helpers/browser.ts';
import { usePageSession, writePattern, waitIdle, fieldText } from './page-helpers.ts';

const fixture = usePageSession();

const digest = (page: Page) => page.evaluate(() => (globalThis as unknown as { ploopDemo: { digest(): Promise<string> } }).ploopDemo.digest());
const storedNames = (page: Page) => page.locator('[data-testid=stored] li[data-name]').evaluateAll((lis) =>
  lis.map((li) => `${(li as HTMLElement).dataset.backend}:${(li as HTMLElement).dataset.name}`));

async function openStored(page: Page, backend: string, name: string, opened: number): Promise<void> {
  await page.click(`[data-testid=stored] li[data-name="${name}"][data-backend=${backend}] [data-testid=stored-open]`);
  await waitIdle(page, opened);
}

test('a changed image saved to OPFS and to IndexedDB reopens after a reload and a restart, byte for byte', async () => {
  let page = await fixture.session.open('index.html');
  await waitIdle(page, 1);
  await page.click('[data-testid=snapshot]');
  await waitIdle(page, 2);
  await writePattern(page, '6M', '320k', 3);
  const before = await digest(page);
  const header = await fieldText(page);
  // 320 KiB at 6 MiB: five new 64 KiB clusters (96..100) over the sample's 16.
  assert.equal(header['allocated'], '21 of 512 (4.1 %)');

  for (const [backend, name] of [['opfs', 'opfs-copy'], ['idb', 'idb-copy']] as const) {
    await page.fill('[data-testid=save-name]', name);
    await page.selectOption('[data-testid=save-backend]', backend);
    await page.click('[data-testid=save]');
    await waitIdle(page);
    assert.equal(await page.textContent('[data-testid=status]'), `Save to ${backend === 'opfs' ? 'OPFS' : 'IndexedDB'}: done`);
  }
  assert.deepEqual(await storedNames(page), ['idb:idb-copy', 'opfs:opfs-copy']);
  // A bad name is refused with the rule.
  await page.fill('[data-testid=save-name]', '../evil');
  await page.click('[data-testid=save]');
  await waitIdle(page);
  assert.match(await page.textContent('[data-testid=error]') ?? '', /stored image name "\.\.\/evil": use 1-64 letters, digits/);

  await page.reload();
  await waitIdle(page, 1);
  assert.deepEqual(await storedNames(page), ['idb:idb-copy', 'opfs:opfs-copy']);
  let opened = 1;
  for (const [backend, name] of [['opfs', 'opfs-copy'], ['idb', 'idb-copy']] as const) {
    await openStored(page, backend, name, ++opened);
    assert.equal(await page.textContent('[data-testid=image-title]'), `${name} (${backend === 'opfs' ? 'OPFS' : 'IndexedDB'})`);
    assert.equal(await digest(page), before, `${backend}: the reopened disk differs`);
    assert.deepEqual(await fieldText(page), header);
    assert.equal(await page.locator('[data-testid=deltas] li').count(), 3);
    assert.deepEqual(await page.locator('[data-testid=check] [data-clean]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.clean)), ['true', 'true', 'true']);
  }
  await screenshot(page, 'page-stored');

  // A stored image opens in place: a change made now is written to OPFS / IndexedDB directly.
  const changed: Record<string, string> = {};
  for (const [backend, name, offset] of [['opfs', 'opfs-copy', '8M'], ['idb', 'idb-copy', '9M']] as const) {
    await openStored(page, backend, name, ++opened);
    await writePattern(page, offset, '64k', ++opened);
    assert.equal(await page.textContent('[data-testid=writable-note]'), `The top delta is writable; changes are written to ${backend === 'opfs' ? 'OPFS' : 'IndexedDB'} as you make them.`);
    changed[backend] = await digest(page);
    assert.notEqual(changed[backend], before);
  }

  // Close the browser, start it again on the same profile: still there, with those changes.
  await fixture.session.relaunch();
  page = await fixture.session.open('index.html?empty');
  await waitIdle(page);
  assert.deepEqual(await storedNames(page), ['idb:idb-copy', 'opfs:opfs-copy']);
  await openStored(page, 'opfs', 'opfs-copy', 1);
  assert.equal(await digest(page), changed.opfs);
  await openStored(page, 'idb', 'idb-copy', 2);
  assert.equal(await digest(page), changed.idb);
  assert.equal((await fieldText(page))['allocated'], '22 of 512 (4.3 %)');
  // Delete removes it from the list (and from the storage: a reload does not bring it back).
  await page.click('[data-testid=stored] li[data-name="idb-copy"] [data-testid=stored-delete]');
  await waitIdle(page);
  await page.reload();
  await waitIdle(page);
  assert.deepEqual(await storedNames(page), ['opfs:opfs-copy']);
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

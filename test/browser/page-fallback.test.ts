// The demo page served without COOP/COEP: not cross-origin isolated, so it says it runs one
// in-thread runner, and everything else works the same. Real Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot } from '../helpers/browser.ts';
import { usePageSession, waitIdle, fieldText } from './page-helpers.ts';

const fixture = usePageSession({ isolated: false });

test('without the headers the page runs with a single in-thread runner and still opens, checks and changes the sample', async () => {
  const page = await fixture.session.open('index.html');
  await waitIdle(page, 1);
  assert.equal(await page.evaluate(() => crossOriginIsolated), false);
  assert.equal(await page.textContent('[data-testid=mode]'), 'single in-thread runner');
  assert.equal((await fieldText(page))['bat-entries'], '512');
  assert.deepEqual(await page.locator('[data-testid=partitions] td[data-field=filesystem]').allTextContents(), ['FAT16', 'Linux swap']);
  assert.deepEqual(await page.locator('[data-testid=check] [data-clean]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.clean)), ['true', 'true']);
  // Without shared memory the page's own thread reads the export (the sample is read-only, so
  // runners would be used if they could be).
  const started: string[] = [];
  page.on('worker', (w) => started.push(w.url()));
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-raw]')]);
  await waitIdle(page);
  assert.equal(await page.textContent('[data-testid=status]'), 'Export raw disk: done (read by the page thread)');
  assert.equal(dl.suggestedFilename(), 'root.img');
  assert.equal(started.filter((u) => u.endsWith('/runner.worker.js')).length, 0);
  await page.click('[data-testid=snapshot]');
  await waitIdle(page, 2);
  await page.click('[data-testid=write-pattern]');
  await waitIdle(page, 3);
  // The default pattern, 256 KiB at 4 MiB: four new 64 KiB clusters over the sample's 16.
  assert.equal((await fieldText(page))['allocated'], '20 of 512 (3.9 %)');
  await screenshot(page, 'page-fallback');
  assert.deepEqual(fixture.session.errors, []);
  await page.close();
});

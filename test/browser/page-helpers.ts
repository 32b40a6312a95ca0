// Helpers for the demo page tests: the browser session of a test file, waiting for the page to
// settle, the page's create and test-pattern forms, reading its fields, the BAT canvas pixels and
// the built sample's files.
import { before, after } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { WEB_ROOT, startBrowser, type BrowserSession, type SessionOptions } from '../helpers/browser.ts';
import { makeTempDir } from '../helpers/tmp.ts';

export interface PageSession {
  readonly session: BrowserSession;
  /** A temporary folder for the file's tests (removed after them). */
  readonly tmpDir: string;
}

/**
 * Start Chromium (and a temporary folder) before the file's tests and close both after them.
 * `options` may be computed from the folder (e.g. to serve it under a mount).
 */
export function usePageSession(options: SessionOptions | ((tmpDir: string) => SessionOptions) = {}): PageSession {
  let session: BrowserSession | undefined;
  let tmp: { dir: string; cleanup: () => Promise<void> } | undefined;
  before(async () => {
    tmp = await makeTempDir('ploop-page-');
    session = await startBrowser(typeof options === 'function' ? options(tmp.dir) : options);
  });
  after(async () => {
    await session?.close();
    await tmp?.cleanup();
  });
  return {
    get session() {
      if (!session) throw new Error('the browser session starts in before()');
      return session;
    },
    get tmpDir() {
      if (!tmp) throw new Error('the temporary folder is made in before()');
      return tmp.dir;
    },
  };
}

/** Wait until the page has started and no task runs (and, if given, at least `opened` images were opened). */
export async function waitIdle(page: Page, opened = 0): Promise<void> {
  await page.waitForFunction((n) => {
    const app = document.getElementById('app')!;
    return app.dataset.started === 'true' && app.dataset.busy === 'false' && Number(app.dataset.opened ?? 0) >= n;
  }, opened, { timeout: 30_000 });
}

/**
 * Open the page without an image and create one with the "New image" form (`clusterBytes` and
 * `format` as the form's option values; the form's defaults when left out).
 */
export async function createOnPage(session: BrowserSession, image: { size: string; clusterBytes?: number; format?: string }): Promise<Page> {
  const page = await session.open('index.html?empty');
  await waitIdle(page);
  await page.click('summary');
  await page.fill('[data-testid=create-size]', image.size);
  if (image.clusterBytes !== undefined) await page.selectOption('[data-testid=create-cluster]', String(image.clusterBytes));
  if (image.format !== undefined) await page.selectOption('[data-testid=create-format]', image.format);
  await page.click('[data-testid=create]');
  await waitIdle(page, 1);
  return page;
}

/** Write the page's test pattern at `offset` for `length` (as typed) and wait for the page (`opened` images so far). */
export async function writePattern(page: Page, offset: string, length: string, opened = 0): Promise<void> {
  await page.fill('[data-testid=pattern-offset]', offset);
  await page.fill('[data-testid=pattern-length]', length);
  await page.click('[data-testid=write-pattern]');
  await waitIdle(page, opened);
}

/** The header panel as { field: text }. */
export function fieldText(page: Page): Promise<Record<string, string>> {
  return page.locator('[data-testid=header] dd').evaluateAll((dds) =>
    Object.fromEntries(dds.map((dd) => [(dd as HTMLElement).dataset.field!, dd.textContent ?? ''])));
}

/** Colour ("rgb(r, g, b)") in the middle of each cluster's cell of the BAT canvas. */
export function batPixel(page: Page, clusters: number[]): Promise<string[]> {
  return page.locator('[data-testid=bat]').evaluate((el, list) => {
    const canvas = el as HTMLCanvasElement;
    const cell = Number(canvas.dataset.cellPx);
    const cols = Number(canvas.dataset.columns);
    const per = Number(canvas.dataset.clustersPerCell);
    const ctx = canvas.getContext('2d')!;
    const all = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    return list.map((cluster) => {
      const c = Math.floor(cluster / per);
      const x = (c % cols) * cell + Math.floor(cell / 2);
      const y = Math.floor(c / cols) * cell + Math.floor(cell / 2);
      const p = (y * canvas.width + x) * 4;
      return `rgb(${all[p]}, ${all[p + 1]}, ${all[p + 2]})`;
    });
  }, clusters);
}

/** Legend colours by level ("hole", "0", "1", …). */
export function legendColors(page: Page): Promise<Record<string, string>> {
  return page.locator('[data-testid=legend] li').evaluateAll((lis) =>
    Object.fromEntries(lis.map((li) => [(li as HTMLElement).dataset.level!, (li as HTMLElement).dataset.color!])));
}

/** The built sample: its folder and delta files (base first). */
export function sampleFiles(): { dir: string; files: string[] } {
  const dir = join(WEB_ROOT, 'samples/sample');
  return { dir, files: (JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { files: string[] }).files };
}

// Helpers for the demo page tests: waiting for the page to settle, reading its fields, the
// BAT canvas pixels and the built sample's files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { WEB_ROOT } from '../helpers/browser.ts';

/** Wait until the page has started and no task runs (and, if given, at least `opened` images were opened). */
export async function waitIdle(page: Page, opened = 0): Promise<void> {
  await page.waitForFunction((n) => {
    const app = document.getElementById('app')!;
    return app.dataset.started === 'true' && app.dataset.busy === 'false' && Number(app.dataset.opened ?? 0) >= n;
  }, opened, { timeout: 30_000 });
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

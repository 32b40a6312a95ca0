// SPDX-License-Identifier: MIT
// The demo page: open a ploop image (drop, picker, URL, the built-in sample, a stored copy),
// show its header, check report, partitions, files, BAT picture and bytes; change it (snapshot,
// test pattern), export it and keep it in OPFS or IndexedDB. Every long operation is a task with
// progress and a Cancel button. The parts: demo/state.ts (the open image, tasks), demo/open.ts,
// demo/render.ts (panels), demo/actions.ts (changes, exports, storage), files/ (the browser).

import { describeMode } from './demo/runners.js';
import { $, app, page, setBusy } from './demo/state.js';
import { openFromUrl, SAMPLE_URL, SAMPLE_LABEL } from './demo/open.js';
import { renderBat, fileBrowser } from './demo/render.js';
import { renderStored } from './demo/actions.js';


/** Hooks for tests and the console: what is open, and a digest of the whole virtual disk. */
const demo = {
  info() {
    if (!page.current) return null;
    const { image, files, disk, checks } = page.current;
    return {
      label: page.current.label, files, writable: image.writable, header: image.header, geometry: image.geometry,
      allocatedByLevel: files.map((_, level) => page.current!.levels.filter((l) => l === level).length),
      partitions: disk?.partitions.map((p) => ({ number: p.number, filesystem: p.filesystem?.name ?? null, label: p.filesystem?.label ?? null })) ?? [],
      clean: checks.every((c) => c.report?.clean),
      browser: fileBrowser.state(),
      lastExportReadBy: page.lastReaders,
      warnings: [...page.warnings],
    };
  },
  /** SHA-256 (hex) of the virtual disk's bytes. */
  async digest(): Promise<string | null> {
    if (!page.current) return null;
    const bytes = await page.current.image.read(0, page.current.image.size);
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
    return Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('');
  },
};
(globalThis as unknown as { ploopDemo: typeof demo }).ploopDemo = demo;

async function start(): Promise<void> {
  $('mode').textContent = describeMode();
  setBusy(+1);
  try {
    await renderStored();
    const params = new URLSearchParams(location.search);
    const url = params.get('open');
    if (url) await openFromUrl(url);
    else if (!params.has('empty')) await openFromUrl(SAMPLE_URL, SAMPLE_LABEL);
  } finally {
    setBusy(-1);
    app.dataset.started = 'true';
  }
}

window.addEventListener('resize', () => page.current && renderBat());
void start();

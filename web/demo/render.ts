// SPDX-License-Identifier: MIT
// What the demo page shows of the open image: the header, the BAT picture (hover, keyboard), the
// hex view, the partitions with the file browser, and the check report.

import { checkImage, inspectDisk, readDescriptor, descriptorChain, PloopError, HttpRangeStore } from '../../src/browser.js';
import { INUSE_MAGIC } from '../../src/format/header.js';
import type { Workspace } from './workspace.js';
import { clusterLevels, layoutBat, drawBat, clusterAt, levelRgb, cssColor, HOLE } from './bat-canvas.js';
import { hexDump, parseOffset, formatBytes, hex0x, HEX_PAGE_BYTES } from './hex.js';
import { checkpoint } from './export.js';
import { renderPartitions, renderChecks } from './panels.js';
import { $, page, showError, task, type Current } from './state.js';
import { FileBrowser } from '../files/panel.js';


export function renderHeader(): void {
  const { image, files } = page.current!;
  const h = image.header;
  const g = image.geometry;
  const rows: Array<[string, string, string]> = [
    ['format', 'Format', `${g.format} (${g.format === 'v1' ? 'WithoutFreeSpace, BAT in sectors' : 'WithouFreSpacExt, BAT in clusters'})`],
    ['virtual-size', 'Virtual size', `${formatBytes(g.virtualSize)} (${g.virtualSize} bytes)`],
    ['cluster-size', 'Cluster size', `${formatBytes(g.clusterBytes)} (${h.tracks} sectors)`],
    ['bat-entries', 'BAT entries', String(g.batEntryCount)],
    ['in-use', 'In-use flag', h.inUse === INUSE_MAGIC ? 'set (not closed cleanly)' : 'clear'],
    ['data-offset', 'Data offset', `${h.dataOff} sectors (${hex0x(h.dataOff * 512)})`],
    ['allocated', 'Allocated clusters', allocationSummary()],
    // A damaged image opens read-only and reads as QEMU reads it; the check card lists each bad entry.
    ['damage', 'Damage', image.findings.damage.length ? `${image.findings.damage.join('; ')}. Read as QEMU reads it; check --repair before writing.` : 'none'],
  ];
  const dl = $('header');
  dl.replaceChildren();
  for (const [key, name, value] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = name;
    const dd = document.createElement('dd');
    dd.dataset.field = key;
    dd.textContent = value;
    dl.append(dt, dd);
  }
  const ol = $('deltas');
  ol.replaceChildren();
  files.forEach((f, level) => {
    const li = document.createElement('li');
    li.textContent = `${f}${level === files.length - 1 ? (image.writable ? ' (top, writable)' : ' (top, read-only)') : ''}`;
    ol.append(li);
  });
}

function allocationSummary(): string {
  const { image } = page.current!;
  const g = image.geometry;
  const levels = clusterLevels(image.map(), g.clusterBytes, g.batEntryCount);
  page.current!.levels = levels;
  let mapped = 0;
  for (const l of levels) if (l !== HOLE) mapped++;
  return `${mapped} of ${g.batEntryCount} (${((100 * mapped) / Math.max(1, g.batEntryCount)).toFixed(1)} %)`;
}

export function renderBat(): void {
  const c = page.current!;
  const canvas = $<HTMLCanvasElement>('bat');
  const width = Math.max(64, (canvas.parentElement?.clientWidth ?? 600) - 32);
  c.layout = layoutBat(c.levels.length, width, 320);
  drawBat(canvas, c.levels, c.layout);
  canvas.dataset.cellPx = String(c.layout.cellPx);
  canvas.dataset.columns = String(c.layout.columns);
  canvas.dataset.clustersPerCell = String(c.layout.clustersPerCell);
  const legend = $('legend');
  legend.replaceChildren();
  const counts = new Map<number, number>();
  for (const l of c.levels) counts.set(l, (counts.get(l) ?? 0) + 1);
  const item = (level: number, text: string) => {
    const li = document.createElement('li');
    li.dataset.level = level === HOLE ? 'hole' : String(level);
    li.dataset.color = cssColor(levelRgb(level));
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = cssColor(levelRgb(level));
    li.append(sw, `${text}: ${counts.get(level) ?? 0}`);
    legend.append(li);
  };
  item(HOLE, 'hole');
  c.files.forEach((f, level) => item(level, `level ${level} · ${f}`));
}

async function describeCluster(cluster: number): Promise<string> {
  const c = page.current!;
  const g = c.image.geometry;
  const per = c.layout.clustersPerCell;
  const from = cluster * g.clusterBytes;
  if (per > 1) {
    const last = Math.min(g.batEntryCount, cluster + per) - 1;
    const mapped = c.levels.subarray(cluster, last + 1).filter((l) => l !== HOLE).length;
    return `clusters ${cluster}–${last} (virtual ${hex0x(from)}–${hex0x((last + 1) * g.clusterBytes - 1)}): ${mapped} of ${last - cluster + 1} mapped`;
  }
  const length = Math.min(g.clusterBytes, g.virtualSize - from);
  const [e] = c.image.map(from, length);
  // Where on the guest's disk this cluster starts: which partition (and filesystem), if any.
  const part = c.disk?.partitions.find((p) => p.filesystem && p.startBytes <= from && from < p.startBytes + p.sizeBytes);
  const where = part ? ` · in partition ${part.number} (${part.filesystem!.name}${part.filesystem!.label ? ` “${part.filesystem!.label}”` : ''})` : '';
  if (!e || e.level === HOLE) return `cluster ${cluster}: virtual ${hex0x(from)} → hole (reads as zeros)${where}`;
  return `cluster ${cluster}: virtual ${hex0x(from)} → level ${e.level} (${c.files[e.level] ?? '?'}) host offset ${hex0x(e.hostOffset)}${where}`;
}

async function showCluster(cluster: number): Promise<void> {
  if (!page.current || cluster < 0) return;
  page.current.selected = cluster;
  $('bat-info').textContent = await describeCluster(cluster);
}

const canvas = $<HTMLCanvasElement>('bat');
canvas.addEventListener('mousemove', (ev) => {
  if (!page.current) return;
  const rect = canvas.getBoundingClientRect();
  const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((ev.clientY - rect.top) * canvas.height) / rect.height;
  void showCluster(clusterAt(page.current.layout, page.current.levels.length, x, y));
});
canvas.addEventListener('click', () => {
  if (page.current && page.current.selected >= 0) void renderHex(page.current.selected * page.current.image.clusterSize);
});
canvas.addEventListener('keydown', (ev) => {
  if (!page.current) return;
  const { columns, clustersPerCell } = page.current.layout;
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns, ArrowDown: columns }[ev.key];
  if (step !== undefined) {
    ev.preventDefault();
    const cell = Math.floor(Math.max(0, page.current.selected) / clustersPerCell) + (page.current.selected < 0 ? 0 : step);
    const cluster = Math.min(Math.max(0, cell * clustersPerCell), page.current.levels.length - 1);
    void showCluster(cluster - (cluster % clustersPerCell));
  } else if (ev.key === 'Enter' && page.current.selected >= 0) {
    void renderHex(page.current.selected * page.current.image.clusterSize);
  }
});
canvas.addEventListener('focus', () => {
  if (page.current && page.current.selected < 0) void showCluster(0);
});

export async function renderHex(offset: number): Promise<void> {
  if (!page.current) return;
  const size = page.current.image.size;
  const start = Math.max(0, Math.min(offset, Math.max(0, size - HEX_PAGE_BYTES)));
  const bytes = await page.current.image.read(start, Math.min(HEX_PAGE_BYTES, size - start));
  page.current.hexOffset = start;
  $<HTMLInputElement>('hex-offset').value = hex0x(start);
  const pre = $('hex');
  pre.textContent = hexDump(bytes, start);
  pre.dataset.offset = String(start);
  $<HTMLButtonElement>('hex-prev').disabled = start === 0;
  $<HTMLButtonElement>('hex-next').disabled = start + HEX_PAGE_BYTES >= size;
}

$('hex-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  try {
    const offset = parseOffset($<HTMLInputElement>('hex-offset').value, 'virtual offset');
    if (page.current && offset >= page.current.image.size) throw new PloopError('ERANGE', `virtual offset ${offset} is past the end of the disk (${page.current.image.size} bytes)`);
    $('error').hidden = true;
    void renderHex(offset).catch(showError);
  } catch (e) {
    showError(e);
  }
});
$('hex-prev').addEventListener('click', () => page.current && void renderHex(page.current.hexOffset - HEX_PAGE_BYTES).catch(showError));
$('hex-next').addEventListener('click', () => page.current && void renderHex(page.current.hexOffset + HEX_PAGE_BYTES).catch(showError));

export async function inspect(): Promise<void> {
  const c = page.current!;
  const table = $('partitions');
  try {
    c.disk = await inspectDisk((o, n) => c.image.read(o, n), c.image.size);
  } catch (e) {
    c.disk = null;
    table.textContent = `Could not read the partition table: ${(e as Error).message}`;
    fileBrowser.hide();
    return;
  }
  renderPartitions(table, c.disk, c.image.size);
  await fileBrowser.show({ disk: c.image, report: c.disk, fetched: await httpFetched(c.ws) });
}

/** For an image read over HTTP: how much of it the page fetched so far. */
async function httpFetched(ws: Workspace): Promise<(() => { bytes: number; ofBytes: number }) | undefined> {
  const http = [...ws.files.values()].filter((s): s is HttpRangeStore => s instanceof HttpRangeStore);
  if (http.length === 0) return undefined;
  const ofBytes = (await Promise.all(http.map((s) => s.size()))).reduce((a, b) => a + b, 0);
  return () => ({ bytes: http.reduce((n, s) => n + s.stats.bytesFetched, 0), ofBytes });
}

export const fileBrowser = new FileBrowser($('files'), { task });


export async function runCheck(): Promise<void> {
  if (!page.current) return;
  const c = page.current;
  await task('Check', async (signal, progress) => {
    const results: Current['checks'] = [];
    const chain = c.ws.hasDescriptor ? descriptorChain(await readDescriptor(c.ws)) : [{ file: c.ws.singleFile, type: 'Compressed' }];
    for (let i = 0; i < chain.length; i++) {
      progress(i, chain.length);
      await checkpoint(signal);
      if (chain[i].type === 'Plain') continue;
      try {
        results.push({ file: chain[i].file, report: await checkImage(await c.ws.openStore(chain[i].file), { maxListed: 20 }) });
      } catch (e) {
        results.push({ file: chain[i].file, report: null, error: (e as Error).message });
      }
    }
    progress(chain.length, chain.length);
    c.checks = results;
    renderCheck();
  });
}

function renderCheck(): void {
  renderChecks($('check'), page.current!.checks);
}

$('run-check').addEventListener('click', () => void runCheck());

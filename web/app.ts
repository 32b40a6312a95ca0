// SPDX-License-Identifier: MIT
// The demo page: open a ploop image (drop, picker, URL, the built-in sample, a stored copy),
// show its header, check report, partitions, BAT picture and bytes; change it (snapshot, test
// pattern), export it and keep it in OPFS or IndexedDB. Every long operation is a task with
// progress and a Cancel button.

import {
  initStack, snapshotStack, checkImage, inspectDisk, readDescriptor, descriptorChain, parseDescriptor,
  PloopImage, PloopError, BlobStore, HttpRangeStore, DESCRIPTOR_FILE,
  type DiskReport, type PloopFormat,
} from '../src/browser.js';
import { INUSE_MAGIC } from '../src/format/header.js';
import { Workspace } from './demo/workspace.js';
import { saveWorkspace, loadWorkspace, listStored, removeStored, checkName, backendLabel, type Backend } from './demo/persist.js';
import { clusterLevels, layoutBat, drawBat, clusterAt, levelRgb, cssColor, HOLE, type BatLayout } from './demo/bat-canvas.js';
import { hexDump, parseOffset, formatBytes, hex0x, HEX_PAGE_BYTES } from './demo/hex.js';
import { mergedParts, storeParts, rawParts, download, checkpoint } from './demo/export.js';
import { renderPartitions, renderChecks, type DeltaCheck } from './demo/panels.js';
import { describeMode, openRunnerPool } from './demo/runners.js';
import { FileBrowser } from './files/panel.js';

const SAMPLE_URL = 'samples/sample/DiskDescriptor.xml';
const COPY_CHUNK_BYTES = 1 << 20;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const app = $('app');

interface Current {
  label: string;
  ws: Workspace;
  image: PloopImage;
  /** Delta file names, level 0 first. */
  files: string[];
  levels: Uint8Array;
  layout: BatLayout;
  disk: DiskReport | null;
  checks: DeltaCheck[];
  hexOffset: number;
  selected: number;
}
let current: Current | null = null;
const warnings: string[] = [];

// ---- tasks: progress, cancel, errors ---------------------------------------------------------

let busy = 0;
let taskAbort: AbortController | null = null;

function setBusy(delta: number): void {
  busy += delta;
  app.dataset.busy = String(busy > 0);
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.action'))) el.disabled = busy > 0;
  if (busy === 0) updateWritable();
}

function showError(e: unknown): void {
  const box = $('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

function status(text: string): void {
  $('status').textContent = text;
}

type Progress = (done: number, total: number) => void;

/** Run a long operation with a progress bar and a Cancel button; errors are shown, not thrown. */
async function task<T>(label: string, fn: (signal: AbortSignal, progress: Progress) => Promise<T>): Promise<T | undefined> {
  $('error').hidden = true;
  const box = $('task');
  const bar = $<HTMLProgressElement>('task-progress');
  $('task-label').textContent = label;
  bar.removeAttribute('value');
  box.hidden = false;
  const abort = new AbortController();
  taskAbort = abort;
  setBusy(+1);
  status(`${label}…`);
  try {
    const result = await fn(abort.signal, (done, total) => {
      bar.max = Math.max(1, total);
      bar.value = done;
      box.dataset.done = String(done);
    });
    status(`${label}: done`);
    return result;
  } catch (e) {
    if (abort.signal.aborted) status(`${label}: cancelled`);
    else {
      status(`${label}: failed`);
      showError(e);
    }
    return undefined;
  } finally {
    taskAbort = null;
    box.hidden = true;
    delete box.dataset.done;
    setBusy(-1);
  }
}

$('task-cancel').addEventListener('click', () => taskAbort?.abort(new DOMException('cancelled by the user', 'AbortError')));

// ---- opening -----------------------------------------------------------------------------------

async function openWorkspace(ws: Workspace, label: string): Promise<void> {
  const previous = current;
  const same = previous?.ws === ws;
  const keepOffset = same ? previous.hexOffset : 0;
  if (same) {
    // Reopening after a change: the image is closed first (closing writes the header and trims
    // the file), and shown again once it is open.
    await closeCurrent();
    current = null;
    $('image').hidden = true;
  }
  // Another image stays open and shown until this one is open: a failed open (a file that is no
  // ploop image, a broken descriptor) leaves the image the user was looking at.
  let image: PloopImage;
  let files: string[];
  try {
    image = await ws.open((m) => warnings.push(m));
    try {
      files = ws.hasDescriptor ? descriptorChain(await readDescriptor(ws)).map((c) => c.file) : [ws.singleFile];
    } catch (e) {
      await image.close().catch(() => {});
      throw e;
    }
  } catch (e) {
    if (!same) await ws.dispose();
    throw e;
  }
  if (previous && !same) {
    // This folder replaces the previous one: release its stores (a stored image's top holds a lock).
    await previous.image.close().catch(showError);
    await previous.ws.dispose();
  }
  const clusters = image.geometry.batEntryCount;
  current = {
    label, ws, image, files,
    levels: new Uint8Array(0), layout: layoutBat(clusters, 600, 300), disk: null, checks: [], hexOffset: keepOffset, selected: -1,
  };
  $('image').hidden = false;
  $('image-title').textContent = label;
  renderHeader();
  renderBat();
  await renderHex(current.hexOffset);
  await inspect();
  updateWritable();
  app.dataset.opened = String(Number(app.dataset.opened ?? 0) + 1);
}

async function closeCurrent(): Promise<void> {
  if (!current) return;
  const image = current.image;
  await image.close().catch(showError);
}

/** Reopen the current workspace after a change (closing writes the header and trims the file). */
async function reopen(): Promise<void> {
  if (!current) return;
  await openWorkspace(current.ws, current.label);
}

async function openUrl(url: string, signal: AbortSignal): Promise<Workspace> {
  const base = new URL(url, location.href);
  if (/\.xml$/i.test(base.pathname)) {
    const r = await fetch(base, { signal });
    if (!r.ok) throw new PloopError('EIO', `${base.href}: HTTP ${r.status}`);
    const text = await r.text();
    const chain = descriptorChain(parseDescriptor(text));
    const ws = new Workspace(base.href);
    ws.texts.set(DESCRIPTOR_FILE, text);
    for (const c of chain) ws.files.set(c.file, await HttpRangeStore.open(new URL(encodeURIComponent(c.file), base).href));
    return ws;
  }
  const name = decodeURIComponent(base.pathname.split('/').pop() || 'image.hds');
  return Workspace.single(name, await HttpRangeStore.open(base.href));
}

async function openFiles(list: File[]): Promise<void> {
  if (list.length === 0) return;
  const opened = await task('Open files', async () => {
    const descriptor = list.find((f) => f.name === DESCRIPTOR_FILE);
    let ws: Workspace;
    if (descriptor) {
      const text = await descriptor.text();
      const chain = descriptorChain(parseDescriptor(text));
      const missing = chain.filter((c) => !list.some((f) => f.name === c.file)).map((c) => c.file);
      if (missing.length) throw new PloopError('EINVAL', `${DESCRIPTOR_FILE} names ${missing.join(', ')}, which ${missing.length > 1 ? 'were' : 'was'} not among the dropped files; drop every file of the folder`);
      ws = new Workspace('dropped folder');
      ws.texts.set(DESCRIPTOR_FILE, text);
      for (const c of chain) ws.files.set(c.file, new BlobStore(list.find((f) => f.name === c.file)!));
    } else {
      ws = Workspace.single(list[0].name, new BlobStore(list[0]));
    }
    await openWorkspace(ws, descriptor ? `${list.length} dropped files` : list[0].name);
    return true;
  });
  if (opened) await runCheck();
}

async function openFromUrl(url: string, label = url): Promise<void> {
  const ok = await task(`Open ${label}`, async (signal) => {
    await openWorkspace(await openUrl(url, signal), label);
    return true;
  });
  if (ok) await runCheck();
}

$('open-sample').addEventListener('click', () => void openFromUrl(SAMPLE_URL, 'Sample disk (base + snapshot delta, over HTTP ranges)'));
$('url-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void openFromUrl($<HTMLInputElement>('url-input').value.trim());
});
$<HTMLInputElement>('file-input').addEventListener('change', (ev) => {
  const input = ev.target as HTMLInputElement;
  void openFiles(Array.from(input.files ?? [])).finally(() => (input.value = ''));
});
const drop = $('drop');
for (const type of ['dragenter', 'dragover'] as const) {
  drop.addEventListener(type, (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
}
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  void openFiles(Array.from(ev.dataTransfer?.files ?? []));
});
// A file dropped anywhere else must not make the browser navigate away from the page.
window.addEventListener('dragover', (ev) => ev.preventDefault());
window.addEventListener('drop', (ev) => ev.preventDefault());

$('create-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void task('Create image', async () => {
    const size = parseOffset($<HTMLInputElement>('create-size').value, 'virtual size');
    if (size <= 0) throw new PloopError('EINVAL', `virtual size: ${size} bytes, expected more than 0`);
    const ws = new Workspace('new image');
    await initStack(ws, {
      size,
      clusterSize: Number($<HTMLSelectElement>('create-cluster').value),
      format: $<HTMLSelectElement>('create-format').value as PloopFormat,
    });
    await openWorkspace(ws, `New image (${formatBytes(size)})`);
    return true;
  }).then((ok) => (ok ? runCheck() : undefined));
});

// ---- rendering ---------------------------------------------------------------------------------

function renderHeader(): void {
  const { image, files } = current!;
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
  const { image } = current!;
  const g = image.geometry;
  const levels = clusterLevels(image.map(), g.clusterBytes, g.batEntryCount);
  current!.levels = levels;
  let mapped = 0;
  for (const l of levels) if (l !== HOLE) mapped++;
  return `${mapped} of ${g.batEntryCount} (${((100 * mapped) / Math.max(1, g.batEntryCount)).toFixed(1)} %)`;
}

function renderBat(): void {
  const c = current!;
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
  const c = current!;
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
  if (!current || cluster < 0) return;
  current.selected = cluster;
  $('bat-info').textContent = await describeCluster(cluster);
}

const canvas = $<HTMLCanvasElement>('bat');
canvas.addEventListener('mousemove', (ev) => {
  if (!current) return;
  const rect = canvas.getBoundingClientRect();
  const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((ev.clientY - rect.top) * canvas.height) / rect.height;
  void showCluster(clusterAt(current.layout, current.levels.length, x, y));
});
canvas.addEventListener('click', () => {
  if (current && current.selected >= 0) void renderHex(current.selected * current.image.clusterSize);
});
canvas.addEventListener('keydown', (ev) => {
  if (!current) return;
  const { columns, clustersPerCell } = current.layout;
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns, ArrowDown: columns }[ev.key];
  if (step !== undefined) {
    ev.preventDefault();
    const cell = Math.floor(Math.max(0, current.selected) / clustersPerCell) + (current.selected < 0 ? 0 : step);
    const cluster = Math.min(Math.max(0, cell * clustersPerCell), current.levels.length - 1);
    void showCluster(cluster - (cluster % clustersPerCell));
  } else if (ev.key === 'Enter' && current.selected >= 0) {
    void renderHex(current.selected * current.image.clusterSize);
  }
});
canvas.addEventListener('focus', () => {
  if (current && current.selected < 0) void showCluster(0);
});

async function renderHex(offset: number): Promise<void> {
  if (!current) return;
  const size = current.image.size;
  const start = Math.max(0, Math.min(offset, Math.max(0, size - HEX_PAGE_BYTES)));
  const bytes = await current.image.read(start, Math.min(HEX_PAGE_BYTES, size - start));
  current.hexOffset = start;
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
    if (current && offset >= current.image.size) throw new PloopError('ERANGE', `virtual offset ${offset} is past the end of the disk (${current.image.size} bytes)`);
    $('error').hidden = true;
    void renderHex(offset).catch(showError);
  } catch (e) {
    showError(e);
  }
});
$('hex-prev').addEventListener('click', () => current && void renderHex(current.hexOffset - HEX_PAGE_BYTES).catch(showError));
$('hex-next').addEventListener('click', () => current && void renderHex(current.hexOffset + HEX_PAGE_BYTES).catch(showError));

async function inspect(): Promise<void> {
  const c = current!;
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

const fileBrowser = new FileBrowser($('files'), { task });

// ---- check ----------------------------------------------------------------------------------

async function runCheck(): Promise<void> {
  if (!current) return;
  const c = current;
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
  renderChecks($('check'), current!.checks);
}

$('run-check').addEventListener('click', () => void runCheck());

// ---- changes ----------------------------------------------------------------------------------

function updateWritable(): void {
  const writable = !!current?.image.writable;
  const stored = current?.ws.backing ? backendLabel(current.ws.name.startsWith('opfs:') ? 'opfs' : 'idb') : null;
  $('writable-note').textContent = !current ? '' : writable
    ? (stored ? `The top delta is writable; changes are written to ${stored} as you make them.` : 'The top delta is writable (in this page\'s memory until you save it).')
    : 'The top delta is read-only: take a snapshot to write on a new in-memory delta over it.';
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.needs-writable'))) el.disabled = busy > 0 || !writable;
}

$('snapshot').addEventListener('click', () => {
  if (!current) return;
  const c = current;
  void task('Snapshot', async () => {
    await c.ws.describeSingle();
    await closeCurrent();
    let file: string;
    try {
      ({ file } = await snapshotStack(c.ws));
    } finally {
      // Reopened either way: after a failure the descriptor still names the old top.
      await openWorkspace(c.ws, c.label);
    }
    status(`Snapshot: new top delta ${file}`);
    return true;
  }).then((ok) => (ok ? runCheck() : undefined));
});

/** 512-byte sectors that say what they are: "ploop-wasm test pattern, virtual offset N". */
function patternBytes(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const enc = new TextEncoder();
  for (let pos = 0; pos < length; pos += 512) {
    const line = enc.encode(`ploop-wasm test pattern @${(offset + pos).toString(16).padStart(12, '0')}\n`);
    for (let i = 0; i < 512 && pos + i < length; i++) out[pos + i] = line[i % line.length];
  }
  return out;
}

$('pattern-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!current) return;
  const c = current;
  void task('Write test pattern', async (signal, progress) => {
    const offset = parseOffset($<HTMLInputElement>('pattern-offset').value, 'pattern offset');
    const length = parseOffset($<HTMLInputElement>('pattern-length').value, 'pattern length');
    if (offset + length > c.image.size) throw new PloopError('ERANGE', `test pattern ${offset}+${length} ends past the disk (${c.image.size} bytes)`);
    for (let pos = 0; pos < length; pos += COPY_CHUNK_BYTES) {
      await checkpoint(signal);
      const n = Math.min(COPY_CHUNK_BYTES, length - pos);
      await c.image.write(offset + pos, patternBytes(offset + pos, n));
      progress(pos + n, length);
    }
    await c.image.flush();
    await reopen();
    await renderHex(offset);
    return true;
  }).then((ok) => (ok ? runCheck() : undefined));
});

// ---- export -----------------------------------------------------------------------------------

const baseName = () => (current?.files[0] ?? 'disk').replace(/\.hds$/i, '') || 'disk';

$('export-merged').addEventListener('click', () => {
  if (!current) return;
  const c = current;
  void task('Export merged image', async (signal, progress) => download(await mergedParts(c.image, signal, progress), `${baseName()}-merged.hds`));
});

$('export-top').addEventListener('click', () => {
  if (!current) return;
  const c = current;
  void task('Export top delta', async (signal, progress) => {
    const top = c.files[c.files.length - 1];
    // Braces of a snapshot file's GUID make awkward download names; the rest of the name stays.
    download(await storeParts(await c.ws.openStore(top), signal, progress), /\.hds/i.test(top) ? top.replace(/[{}]/g, '') : `${top}.hds`);
  });
});

/** Who read the last raw export: "N runners" or "the page thread". */
let lastReaders = '';
$('export-raw').addEventListener('click', () => {
  if (!current) return;
  const c = current;
  void task('Export raw disk', async (signal, progress) => {
    // Read-only deltas a worker can open itself: the runners read, the page only collects.
    const pool = c.image.writable ? null : await openRunnerPool(c.files.map((f) => c.ws.files.get(f)!));
    try {
      download(await rawParts(pool ?? c.image, signal, progress), `${baseName()}.img`);
    } finally {
      await pool?.close();
    }
    lastReaders = pool ? `${pool.runnerCount} runners` : 'the page thread';
    return lastReaders;
  }).then((by) => by && status(`Export raw disk: done (read by ${by})`));
});

// ---- persistence ------------------------------------------------------------------------------

$('save-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!current) return;
  const c = current;
  const backend = $<HTMLSelectElement>('save-backend').value as Backend;
  const name = $<HTMLInputElement>('save-name').value.trim();
  void task(`Save to ${backendLabel(backend)}`, async (signal, progress) => {
    checkName(name);
    // A single image file is kept as a disk folder of one delta (as a snapshot makes it).
    await c.ws.describeSingle();
    // Saved closed: the copy then has a clear in-use flag and a trimmed tail.
    await closeCurrent();
    try {
      await saveWorkspace(c.ws, backend, name, signal, progress);
    } finally {
      await openWorkspace(c.ws, c.label);
    }
    await renderStored();
  });
});

/** A button of the stored-images list: its text, its accessible name, its test id, its action. */
function actionButton(text: string, ariaLabel: string, testId: string, onClick: () => void): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'action';
  button.textContent = text;
  button.setAttribute('aria-label', ariaLabel);
  button.dataset.testid = testId;
  button.addEventListener('click', onClick);
  return button;
}

async function renderStored(): Promise<void> {
  const ul = $('stored');
  ul.replaceChildren();
  const list = await listStored().catch((e) => {
    showError(e);
    return [];
  });
  if (list.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'None yet: open an image and use "Keep in this browser".';
    ul.append(li);
  }
  for (const s of list) {
    const li = document.createElement('li');
    li.dataset.name = s.name;
    li.dataset.backend = s.backend;
    const where = backendLabel(s.backend);
    const label = document.createElement('span');
    label.textContent = `${s.name} — ${where} (${s.files.join(', ')})`;
    const open = actionButton('Open', `Open ${s.name} from ${where}`, 'stored-open', () => {
      void task(`Open ${s.name}`, async () => {
        await openWorkspace(await loadWorkspace(s.backend, s.name), `${s.name} (${where})`);
        return true;
      }).then((ok) => (ok ? runCheck() : undefined));
    });
    const del = actionButton('Delete', `Delete ${s.name} from ${where}`, 'stored-delete', () => void task(`Delete ${s.name}`, async () => {
      if (current && current.ws.name === `${s.backend}:${s.name}`) {
        await closeCurrent();
        await current.ws.dispose();
        current = null;
        $('image').hidden = true;
      }
      await removeStored(s.backend, s.name);
      await renderStored();
    }));
    li.append(label, open, del);
    ul.append(li);
  }
}

// ---- start ------------------------------------------------------------------------------------

/** Hooks for tests and the console: what is open, and a digest of the whole virtual disk. */
const demo = {
  info() {
    if (!current) return null;
    const { image, files, disk, checks } = current;
    return {
      label: current.label, files, writable: image.writable, header: image.header, geometry: image.geometry,
      allocatedByLevel: files.map((_, level) => current!.levels.filter((l) => l === level).length),
      partitions: disk?.partitions.map((p) => ({ number: p.number, filesystem: p.filesystem?.name ?? null, label: p.filesystem?.label ?? null })) ?? [],
      clean: checks.every((c) => c.report?.clean),
      browser: fileBrowser.state(),
      lastExportReadBy: lastReaders,
      warnings: [...warnings],
    };
  },
  /** SHA-256 (hex) of the virtual disk's bytes. */
  async digest(): Promise<string | null> {
    if (!current) return null;
    const bytes = await current.image.read(0, current.image.size);
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
    else if (!params.has('empty')) await openFromUrl(SAMPLE_URL, 'Sample disk (base + snapshot delta, over HTTP ranges)');
  } finally {
    setBusy(-1);
    app.dataset.started = 'true';
  }
}

window.addEventListener('resize', () => current && renderBat());
void start();

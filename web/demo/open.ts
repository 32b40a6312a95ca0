// SPDX-License-Identifier: MIT
// Opening an image on the demo page: a dropped file or folder, the file picker, a URL (an image
// or a DiskDescriptor.xml, read with HTTP ranges), the built-in sample, a new empty image.

import {
  initStack, readDescriptor, descriptorChain, parseDescriptor, PloopImage, PloopError, BlobStore, HttpRangeStore, DESCRIPTOR_FILE,
  type PloopFormat,
} from '../../src/browser.js';
import { Workspace } from './workspace.js';
import { layoutBat } from './bat-canvas.js';
import { parseOffset, formatBytes } from './hex.js';
import { $, app, page, showError, task, updateWritable } from './state.js';
import { renderHeader, renderBat, renderHex, inspect, runCheck } from './render.js';
import { dropZone } from './drop-zone.js';

export const SAMPLE_URL = 'samples/sample/DiskDescriptor.xml';
export const SAMPLE_LABEL = 'Sample disk (base + snapshot delta, over HTTP ranges)';


export async function openWorkspace(ws: Workspace, label: string): Promise<void> {
  const previous = page.current;
  const same = previous?.ws === ws;
  const keepOffset = same ? previous.hexOffset : 0;
  if (same) {
    // Reopening after a change: the image is closed first (closing writes the header and trims
    // the file), and shown again once it is open.
    await closeCurrent();
    page.current = null;
    $('image').hidden = true;
  }
  // Another image stays open and shown until this one is open: a failed open (a file that is no
  // ploop image, a broken descriptor) leaves the image the user was looking at.
  let image: PloopImage;
  let files: string[];
  try {
    image = await ws.open((m) => page.warnings.push(m));
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
  page.current = {
    label, ws, image, files,
    levels: new Uint8Array(0), layout: layoutBat(clusters, 600, 300), disk: null, checks: [], hexOffset: keepOffset, selected: -1,
  };
  $('image').hidden = false;
  $('image-title').textContent = label;
  renderHeader();
  renderBat();
  await renderHex(page.current.hexOffset);
  await inspect();
  updateWritable();
  app.dataset.opened = String(Number(app.dataset.opened ?? 0) + 1);
}

export async function closeCurrent(): Promise<void> {
  if (!page.current) return;
  const image = page.current.image;
  await image.close().catch(showError);
}

/** Reopen the page.current workspace after a change (closing writes the header and trims the file). */
export async function reopen(): Promise<void> {
  if (!page.current) return;
  await openWorkspace(page.current.ws, page.current.label);
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

export async function openFromUrl(url: string, label = url): Promise<void> {
  const ok = await task(`Open ${label}`, async (signal) => {
    await openWorkspace(await openUrl(url, signal), label);
    return true;
  });
  if (ok) await runCheck();
}

$('open-sample').addEventListener('click', () => void openFromUrl(SAMPLE_URL, SAMPLE_LABEL));
$('url-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void openFromUrl($<HTMLInputElement>('url-input').value.trim());
});
$<HTMLInputElement>('file-input').addEventListener('change', (ev) => {
  const input = ev.target as HTMLInputElement;
  void openFiles(Array.from(input.files ?? [])).finally(() => (input.value = ''));
});
dropZone($('drop'), (files) => void openFiles(files));

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

// SPDX-License-Identifier: MIT
// The v86 page: boot the built-in sample disk (or the user's image) in v86, with the guest's
// writes in a ploop delta kept in OPFS, so they survive a reload. "Reset to base" drops the
// delta; "Export" downloads the merged image, the delta alone or the raw disk.
//
// Query parameters: ?bios=URL/ (folder with bios.bin and vgabios-stdvga.bin; default /bios/),
// ?image=URL (boot that image, read lazily with HTTP ranges, instead of the sample),
// ?store=opfs|idb|memory (where the delta lives; default OPFS, else IndexedDB), ?noboot.
// window.v86Demo exposes the state to tests.

import {
  BlobStore, OpfsDirectory, IdbDirectory, MemoryDirectory, PersistentDisk, startV86, PloopError,
  type BlockStore, type DeltaDirectory, type RunningV86, type V86Constructor, type V86Disk, type ExportKind,
} from '../src/browser.js';
import { HttpRangeStore } from '../src/stores/http-range.js';
import { sampleBootDisk } from './v86-sample-disk.js';

const SAMPLE_NAME = 'sample-boot.img';
const FLUSH_INTERVAL_MS = 2000;
const SIGNATURES = ['WithoutFreeSpace', 'WithouFreSpacExt'];

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const biosBase = params.get('bios') ?? '/bios/';

interface Session {
  label: string;
  disk: PersistentDisk;
  v86Disk: V86Disk;
  running: RunningV86;
  removeFlushPolicy: () => void;
}

let session: Session | null = null;
let busy: Promise<unknown> = Promise.resolve();
let roms: Promise<{ bios: ArrayBuffer; vga: ArrayBuffer }> | null = null;
let v86Module: Promise<{ V86: V86Constructor }> | null = null;

function status(text: string): void {
  $('status').textContent = text;
}

function showError(e: unknown): void {
  const el = $('error');
  el.hidden = false;
  el.textContent = e instanceof PloopError ? `${e.message} [${e.code}]` : e instanceof Error ? e.message : String(e);
  status('');
}

/** Run one action at a time (boot, reset, export…), showing its failure. */
function task<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const run = busy.then(async () => {
    $('error').hidden = true;
    status(`${what}…`);
    try {
      const result = await fn();
      return result;
    } catch (e) {
      showError(e);
      throw e;
    }
  });
  busy = run.catch(() => {});
  return run;
}

async function fetchRom(file: string): Promise<ArrayBuffer> {
  const url = new URL(file, new URL(biosBase, location.href)).href;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new PloopError('EIO', `BIOS ${url} could not be fetched (${(e as Error).message})`);
  }
  if (!response.ok) {
    throw new PloopError('EIO', `BIOS ${url}: HTTP ${response.status}. v86 needs SeaBIOS: install Debian's seabios (apt-get install seabios) and run "ploop-wasm serve", which serves /usr/share/seabios at /bios/, or pass ?bios=URL/ to a folder with bios.bin and vgabios-stdvga.bin`);
  }
  return response.arrayBuffer();
}

function loadRoms() {
  roms ??= Promise.all([fetchRom('bios.bin'), fetchRom('vgabios-stdvga.bin')]).then(([bios, vga]) => ({ bios, vga }));
  roms.catch(() => (roms = null));
  return roms;
}

function loadV86() {
  // Loaded by URL at run time (not bundled): libv86.mjs and v86.wasm sit in ./v86/ of the build.
  const url = new URL('./v86/libv86.mjs', import.meta.url).href;
  v86Module ??= import(/* @vite-ignore */ url) as Promise<{ V86: V86Constructor }>;
  return v86Module;
}

/** Where the delta for `baseId` lives: OPFS (preferred), IndexedDB, or memory (lost on reload). */
async function deltaDirectory(baseId: string): Promise<{ dir: DeltaDirectory; where: string }> {
  const folder = `v86-disks/${baseId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const wanted = params.get('store') ?? (typeof navigator.storage?.getDirectory === 'function' ? 'opfs' : 'idb');
  if (wanted === 'opfs') return { dir: await OpfsDirectory.open(folder), where: `OPFS (${folder})` };
  if (wanted === 'idb' && typeof indexedDB !== 'undefined') return { dir: await IdbDirectory.open(folder), where: `IndexedDB (${folder})` };
  if (wanted !== 'memory' && wanted !== 'idb') throw new PloopError('EINVAL', `?store=${wanted}: expected opfs, idb or memory`);
  return { dir: new MemoryDirectory(folder), where: 'memory only (lost on reload)' };
}

async function isPloop(store: BlockStore): Promise<boolean> {
  const head = new Uint8Array(16);
  const n = await store.read(0, head);
  return SIGNATURES.includes(String.fromCharCode(...head.subarray(0, n)));
}

async function stopSession(): Promise<void> {
  if (!session) return;
  const s = session;
  session = null;
  s.removeFlushPolicy();
  await s.running.stop();
  await s.disk.close();
}

/** Boot `base` with its delta; the delta folder is chosen by `baseId`. */
async function open(label: string, base: BlockStore, baseId: string): Promise<void> {
  await stopSession();
  const baseKind = (await isPloop(base)) ? 'ploop' : 'raw';
  const { dir, where } = await deltaDirectory(baseId);
  const disk = await PersistentDisk.open({ base, baseKind, dir, baseId, onWarning: (m) => console.warn(`ploop-wasm: ${m}`) });
  try {
    $('disk-label').textContent = `${label} (${baseKind}, ${disk.image.size} bytes)`;
    $('persistence').textContent = where;
    await boot(label, disk);
  } catch (e) {
    await disk.close();
    throw e;
  }
}

async function boot(label: string, disk: PersistentDisk): Promise<void> {
  const [{ bios, vga }, { V86 }] = await Promise.all([loadRoms(), loadV86()]);
  const serial = $('serial');
  serial.textContent = '';
  const v86Disk = disk.v86Disk({ onError: showError });
  const running = startV86({
    V86, disk: v86Disk,
    bios: { buffer: bios.slice(0) }, vgaBios: { buffer: vga.slice(0) },
    wasmPath: new URL('./v86/v86.wasm', import.meta.url).href,
    onSerialByte: (b) => serial.append(String.fromCharCode(b)),
    extra: { screen_container: $('screen_container') },
  });
  session = { label, disk, v86Disk, running, removeFlushPolicy: disk.installFlushPolicy(window, FLUSH_INTERVAL_MS) };
  $('generation').textContent = String(disk.generation);
  for (const id of ['restart', 'flush', 'reset', 'export']) ($(id) as HTMLButtonElement).disabled = false;
  status(`${label}: running`);
}

function bootSample(): Promise<void> {
  const bytes = sampleBootDisk();
  return open('built-in sample', new BlobStore(new Blob([bytes as BlobPart]), { name: SAMPLE_NAME }), `${SAMPLE_NAME}:${bytes.length}`);
}

function current(): Session {
  if (!session) throw new PloopError('EINVAL', 'no disk is running: boot the sample or an image first');
  return session;
}

async function restart(): Promise<void> {
  const s = current();
  s.removeFlushPolicy();
  await s.running.stop();
  session = null;
  await boot(s.label, s.disk);
}

async function resetToBase(): Promise<void> {
  const s = current();
  s.removeFlushPolicy();
  await s.running.stop();
  session = null;
  await s.disk.resetToBase();
  await boot(s.label, s.disk);
  status(`${s.label}: reset to base (generation ${s.disk.generation}), running`);
}

async function exportDisk(kind: ExportKind): Promise<Blob> {
  const s = current();
  await s.v86Disk.settled();
  const blob = await s.disk.export(kind);
  const a = $<HTMLAnchorElement>('download');
  if (a.href) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(blob);
  a.download = `${s.label.replace(/[^A-Za-z0-9._-]/g, '_')}-${kind}.${kind === 'raw' ? 'img' : 'hds'}`;
  a.textContent = `${a.download} (${blob.size} bytes)`;
  a.hidden = false;
  a.click();
  status(`exported ${a.download}`);
  return blob;
}

async function flushNow(): Promise<void> {
  const s = current();
  await s.v86Disk.flush();
  status(`${s.label}: flushed`);
}

$('boot-sample').addEventListener('click', () => void task('booting the sample', bootSample));
$('file-input').addEventListener('change', () => {
  const file = $<HTMLInputElement>('file-input').files?.[0];
  if (file) void task(`booting ${file.name}`, () => open(file.name, new BlobStore(file), `${file.name}:${file.size}:${file.lastModified}`));
});
$('restart').addEventListener('click', () => void task('restarting', restart));
$('flush').addEventListener('click', () => void task('flushing', flushNow));
$('reset').addEventListener('click', () => void task('resetting to base', resetToBase));
$('export').addEventListener('click', () => void task('exporting', () => exportDisk($<HTMLSelectElement>('export-kind').value as ExportKind)));
setInterval(() => {
  const c = session?.v86Disk.counters;
  if (c) $('io').textContent = `${c.reads} reads (${c.bytesRead} bytes) / ${c.writes} writes (${c.bytesWritten} bytes), ${session!.v86Disk.pendingWrites} pending`;
}, 500);

async function bootUrl(url: string): Promise<void> {
  const base = await HttpRangeStore.open(new URL(url, location.href));
  const size = await base.size();
  await open(url, base, `${url}:${size}`);
}

const imageUrl = params.get('image');
const ready = params.has('noboot') ? Promise.resolve()
  : imageUrl ? task(`booting ${imageUrl}`, () => bootUrl(imageUrl))
  : task('booting the sample', bootSample);

/** For tests and the console. */
(window as unknown as { v86Demo: unknown }).v86Demo = {
  ready,
  serial: () => session?.running.serial.text ?? '',
  waitForSerial: (marker: string, timeoutMs = 30_000) => current().running.serial.waitFor(marker, timeoutMs),
  generation: () => session?.disk.generation ?? null,
  flush: () => task('flushing', flushNow),
  reset: () => task('resetting to base', resetToBase),
  restart: () => task('restarting', restart),
  exportBytes: async (kind: ExportKind) => new Uint8Array(await (await task('exporting', () => exportDisk(kind))).arrayBuffer()),
  bootSample: () => task('booting the sample', bootSample),
};

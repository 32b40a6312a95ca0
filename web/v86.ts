// SPDX-License-Identifier: MIT
// The v86 page: boot a disk in v86 — the built-in sample, a URL (?disk=URL: a ploop image, a disk
// folder, or raw, read with HTTP ranges), picked or dropped files, or an image stored by the
// inspector — over a read-only base, with the guest's writes in a ploop delta kept in OPFS
// (IndexedDB where OPFS is missing) under a folder named after the disk's identity, so the same
// disk comes back with its changes after a reload or a browser restart. Restart, flush, reset to
// base, export (merged / delta / raw), serial console, screen, boot time.
//
// Query parameters: ?disk=URL (?image=URL, its older name), ?store=opfs|idb|memory,
// ?bios=URL/ (folder with bios.bin and vgabios-stdvga.bin; default /bios/), ?memory=MIB
// (default 64), ?until=TEXT (the serial text that ends the boot time), ?noboot.
// window.v86Demo exposes the state to tests.

import { openPersistentDisk, defaultDeltaStore, PloopError, type DiskBase, type DeltaStoreKind, type ExportKind, type PersistentDisk } from '../src/browser.js';
import { $, status, showError, task, idle, formatBytes, formatSeconds } from './v86/ui.js';
import { sampleBase, urlBase, filesBase, storedImages, storedBase, storedLabel, type StoredImage } from './v86/sources.js';
import { Session } from './v86/session.js';
import { dropZone } from './demo/drop-zone.js';

const params = new URLSearchParams(location.search);
const biosBase = params.get('bios') ?? '/bios/';
const DELTA_FOLDER = 'v86-disks';

function memoryBytes(): number {
  const mib = Number(params.get('memory') ?? 64);
  if (!Number.isInteger(mib) || mib < 16 || mib > 2048) throw new PloopError('EINVAL', `?memory=${params.get('memory')}: expected whole MiB from 16 to 2048`);
  return mib << 20;
}

function storeKind(): DeltaStoreKind {
  const wanted = params.get('store') ?? defaultDeltaStore();
  if (wanted !== 'opfs' && wanted !== 'idb' && wanted !== 'memory') throw new PloopError('EINVAL', `?store=${wanted}: expected opfs, idb or memory`);
  return wanted;
}

const WHERE: Record<DeltaStoreKind, string> = { opfs: 'OPFS', idb: 'IndexedDB', memory: 'memory only (lost on reload)' };

let session: Session | null = null;
let base: DiskBase | null = null;

/** Stop the running emulator and close its disk (and base). */
async function closeDisk(): Promise<void> {
  const s = session;
  session = null;
  base = null;
  if (!s) return;
  await s.stop();
  await s.disk.close();
}

/** Boot `next` with its delta; the delta folder is chosen by the base's identity. */
async function open(next: DiskBase): Promise<void> {
  await closeDisk();
  const kind = storeKind();
  let disk: PersistentDisk;
  try {
    disk = await openPersistentDisk(next, { store: kind, folder: DELTA_FOLDER, onWarning: (m) => console.warn(`ploop-wasm: ${m}`) });
  } catch (e) {
    await next.close();
    throw e;
  }
  try {
    base = next;
    $('disk-label').textContent = `${next.label} (${next.kind}, ${disk.image.size} bytes)`;
    $('persistence').textContent = kind === 'memory' ? WHERE.memory : `${WHERE[kind]} (${disk.options.dir.name.replace(/^\w+:/, '')})`;
    $('base').textContent = `${next.kind === 'folder' ? `disk folder, ${next.levels.length} deltas` : `${next.kind} image`}, ${formatBytes(next.fileBytes)} in ${next.levels.length} file${next.levels.length > 1 ? 's' : ''}; virtual disk ${formatBytes(disk.image.size)}`;
    await boot(next.label, disk);
  } catch (e) {
    base = null;
    await disk.close();
    throw e;
  }
}

async function boot(label: string, disk: PersistentDisk): Promise<void> {
  const serial = $('serial');
  serial.textContent = '';
  session = await Session.boot(label, disk, {
    biosBase, memoryBytes: memoryBytes(), until: params.get('until'), screen: $('screen_container'), onError: showError,
    onSerialByte: (b) => serial.append(String.fromCharCode(b)),
  });
  $('generation').textContent = String(disk.generation);
  for (const id of ['restart', 'flush', 'reset', 'export', 'serial-send']) ($(id) as HTMLButtonElement).disabled = false;
  status(`${label}: running`);
}

function current(): Session {
  if (!session) throw new PloopError('EINVAL', 'no disk is running: boot the sample or an image first');
  return session;
}

async function restart(): Promise<void> {
  const s = current();
  await s.stop();
  session = null;
  await boot(s.label, s.disk);
}

async function resetToBase(): Promise<void> {
  const s = current();
  await s.stop();
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
  a.download = `${s.label.replace(/\/+$/, '').split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_') || 'disk'}-${kind}.${kind === 'raw' ? 'img' : 'hds'}`;
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

const bootSample = () => task('booting the sample', async () => open(await sampleBase()));
const bootUrl = (url: string) => task(`booting ${url}`, async () => open(await urlBase(url)));
const bootFiles = (files: File[]) => task(`booting ${files.map((f) => f.name).join(', ')}`, async () => open(await filesBase(files)));
const bootStored = (s: StoredImage) => task(`booting ${storedLabel(s)}`, async () => open(await storedBase(s)));

$('boot-sample').addEventListener('click', () => void bootSample());
$<HTMLInputElement>('file-input').addEventListener('change', (ev) => {
  const input = ev.target as HTMLInputElement;
  const files = Array.from(input.files ?? []);
  if (files.length) void bootFiles(files).finally(() => (input.value = ''));
});
dropZone($('drop'), (files) => {
  if (files.length) void bootFiles(files);
});
$('url-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const url = $<HTMLInputElement>('url-input').value.trim();
  if (url) void bootUrl(url);
});
let stored: StoredImage[] = [];
$('stored-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const s = stored[Number($<HTMLSelectElement>('stored-select').value)];
  if (s) void bootStored(s);
});
$('restart').addEventListener('click', () => void task('restarting', restart));
$('flush').addEventListener('click', () => void task('flushing', flushNow));
$('reset').addEventListener('click', () => void task('resetting to base', resetToBase));
$('export').addEventListener('click', () => void task('exporting', () => exportDisk($<HTMLSelectElement>('export-kind').value as ExportKind)));
$('serial-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('serial-input');
  session?.send(`${input.value}\n`);
  input.value = '';
});

/** Images the inspector stored in this browser, offered as bases. */
async function listStored(): Promise<void> {
  stored = await storedImages().catch(() => []);
  const select = $<HTMLSelectElement>('stored-select');
  select.replaceChildren(...stored.map((s, i) => new Option(storedLabel(s), String(i))));
  $('stored-form').hidden = stored.length === 0;
}

function refresh(): void {
  const s = session;
  if (!s || !base) return;
  const c = s.v86Disk.counters;
  $('io').textContent = `${c.reads} reads (${formatBytes(c.bytesRead)}) / ${c.writes} writes (${formatBytes(c.bytesWritten)})`;
  const f = base.fetched();
  $('fetched').textContent = f.requests === 0 ? 'nothing (the base is not on a web server)'
    : `${formatBytes(f.bytes)} of ${formatBytes(base.fileBytes)} (${((100 * f.bytes) / base.fileBytes).toFixed(1)} %) in ${f.requests} requests`;
  $('unflushed').textContent = `${s.v86Disk.pendingWrites} writes on their way, ${s.disk.unflushedWrites} written since the last flush`;
  const t = s.times;
  const now = performance.now();
  $('boot-time').textContent = [
    `running for ${formatSeconds(now - t.started)}`,
    t.firstSerial !== null ? `first serial output after ${formatSeconds(t.firstSerial - t.started)}` : 'no serial output yet',
    s.until ? (t.until !== null ? `"${s.until}" after ${formatSeconds(t.until - t.started)}` : `waiting for "${s.until}"`) : '',
  ].filter(Boolean).join('; ');
}
setInterval(refresh, 500);

const diskUrl = params.get('disk') ?? params.get('image');
void listStored();
const ready = params.has('noboot') ? Promise.resolve() : diskUrl ? bootUrl(diskUrl) : bootSample();

/** For tests and the console. */
(window as unknown as { v86Demo: unknown }).v86Demo = {
  ready,
  serial: () => session?.running.serial.text ?? '',
  /** Waits for the actions started so far (a boot…), then for `marker` on the running guest's COM1. */
  waitForSerial: async (marker: string, timeoutMs = 30_000) => {
    await idle();
    return current().running.serial.waitFor(marker, timeoutMs);
  },
  generation: () => session?.disk.generation ?? null,
  /** Writes v86 issued that are not in the delta yet, and writes since the last flush. */
  unflushed: () => (session ? { pending: session.v86Disk.pendingWrites, sinceFlush: session.disk.unflushedWrites } : null),
  /** The base's HTTP traffic so far and its files' size. */
  fetched: () => (base ? { ...base.fetched(), fileBytes: base.fileBytes } : null),
  /** Milliseconds from the start to the first serial byte and to ?until=TEXT (null: not yet). */
  bootTimes: () => {
    const t = session?.times;
    return t ? { firstSerial: t.firstSerial === null ? null : t.firstSerial - t.started, until: t.until === null ? null : t.until - t.started } : null;
  },
  send: (text: string) => current().send(text),
  flush: () => task('flushing', flushNow),
  reset: () => task('resetting to base', resetToBase),
  restart: () => task('restarting', restart),
  exportBytes: async (kind: ExportKind) => new Uint8Array(await (await task('exporting', () => exportDisk(kind))).arrayBuffer()),
  bootSample,
  bootUrl,
  listStored: async () => {
    await listStored();
    return stored.map(storedLabel);
  },
};

// SPDX-License-Identifier: MIT
// The file browser panel: pick a partition, walk its folders (breadcrumb), list them (sort,
// filter), preview a file as text or hex, download a file (streamed) or a folder as a zip
// (streamed). It reads the disk the page has open, whatever it comes from; over HTTP it says
// how many bytes the browsing fetched.

import {
  openFilesystem, listVolumes, treeBytes, PloopError,
  type DiskReader, type DiskReport, type FsEntry, type OpenedFilesystem, type VolumeChoice,
} from '../../src/browser.js';
import { formatBytes } from '../demo/hex.js';
import { entryRow, filterEntries, headRow, sortEntries, type SortKey, type SortOrder } from './listing.js';
import { looksLikeText, previewText, PREVIEW_BYTES } from './preview.js';
import { saveStream } from './save.js';
import { zipFolder } from './zip.js';

type Progress = (done: number, total: number) => void;

export interface PanelHost {
  task<T>(label: string, fn: (signal: AbortSignal, progress: Progress) => Promise<T>): Promise<T | undefined>;
}

export interface DiskSource {
  disk: DiskReader;
  report: DiskReport;
  /** Bytes fetched over HTTP so far and the image's size in bytes, when the image is read over HTTP. */
  fetched?: () => { bytes: number; ofBytes: number } | null;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export class FileBrowser {
  readonly #host: PanelHost;
  readonly #card: HTMLElement;
  readonly #partition = el('select', { id: 'files-partition', 'data-testid': 'files-partition' });
  readonly #filter = el('input', { id: 'files-filter', type: 'search', 'data-testid': 'files-filter', placeholder: 'name contains…' });
  readonly #zip = el('button', { type: 'button', class: 'action', 'data-testid': 'files-zip' }, 'Download folder as .zip');
  readonly #crumbs = el('ol', { class: 'crumbs', 'data-testid': 'files-crumbs' });
  readonly #note = el('p', { class: 'note', 'data-testid': 'files-note', 'aria-live': 'polite' });
  readonly #table = el('table', { 'data-testid': 'files-table' });
  readonly #preview = el('section', { class: 'preview', 'data-testid': 'files-preview', 'aria-labelledby': 'files-preview-title' });
  readonly #previewTitle = el('h4', { id: 'files-preview-title', 'data-testid': 'files-preview-title' });
  readonly #previewBody = el('pre', { class: 'hex', tabindex: '0', 'data-testid': 'files-preview-body' });
  readonly #asText = el('button', { type: 'button', 'data-testid': 'files-as-text', 'aria-pressed': 'true' }, 'Text');
  readonly #asHex = el('button', { type: 'button', 'data-testid': 'files-as-hex', 'aria-pressed': 'false' }, 'Hex');
  readonly #download = el('button', { type: 'button', class: 'action', 'data-testid': 'files-download' }, 'Download file');
  #source: DiskSource | null = null;
  #volumes: VolumeChoice[] = [];
  #fs: OpenedFilesystem | null = null;
  #dir: FsEntry | null = null;
  #entries: FsEntry[] = [];
  #order: SortOrder = { key: 'name', ascending: true };
  #previewed: { entry: FsEntry; bytes: Uint8Array; text: boolean } | null = null;
  /** Bumped on every show(): a slow open of an earlier disk must not paint over a newer one. */
  #generation = 0;

  constructor(card: HTMLElement, host: PanelHost) {
    this.#card = card;
    this.#host = host;
    const controls = el('div', { class: 'row' });
    controls.append(el('label', { for: 'files-partition' }, 'Partition'), this.#partition, el('label', { for: 'files-filter' }, 'Filter'), this.#filter, this.#zip);
    const scroll = el('div', { class: 'scroll files-list' });
    scroll.append(this.#table);
    const previewButtons = el('div', { class: 'row', role: 'group', 'aria-label': 'Preview as' });
    previewButtons.append(this.#asText, this.#asHex, this.#download);
    this.#preview.append(this.#previewTitle, previewButtons, this.#previewBody);
    this.#preview.hidden = true;
    const nav = el('nav', { 'aria-label': 'Folder path' });
    nav.append(this.#crumbs);
    card.append(controls, nav, this.#note, scroll, this.#preview);
    this.#partition.addEventListener('change', () => void this.#openVolume(Number(this.#partition.value)));
    this.#filter.addEventListener('input', () => this.#renderList());
    this.#zip.addEventListener('click', () => void this.#downloadZip());
    this.#asText.addEventListener('click', () => this.#renderPreview(true));
    this.#asHex.addEventListener('click', () => this.#renderPreview(false));
    this.#download.addEventListener('click', () => void this.#downloadFile());
  }

  /** What tests and the console see: the partition, folder and the names listed. */
  state(): { partition: number | null; path: string | null; names: string[]; previewing: string | null; warnings: readonly string[] } {
    return {
      partition: this.#fs?.partition ?? null, path: this.#dir?.path ?? null, names: this.#visible().map((e) => e.name),
      previewing: this.#previewed?.entry.path ?? null, warnings: this.#fs?.warnings ?? [],
    };
  }

  /** Browse the filesystems of a newly opened disk (the first browsable one is opened). */
  async show(source: DiskSource): Promise<void> {
    const generation = ++this.#generation;
    this.#source = source;
    this.#fs = null;
    this.#dir = null;
    this.#volumes = await listVolumes(source.disk, source.report);
    if (generation !== this.#generation) return;
    const browsable = this.#volumes.filter((v) => v.browsable);
    this.#card.hidden = false;
    this.#partition.replaceChildren(...this.#volumes.map((v, i) => {
      const fs = v.filesystem ? `${v.filesystem.name}${v.filesystem.label ? ` “${v.filesystem.label}”` : ''}` : 'no filesystem';
      const option = el('option', { value: String(i) }, `${v.partition === null ? 'Whole disk' : `Partition ${v.partition}`}: ${fs}, ${formatBytes(v.sizeBytes)}`);
      option.disabled = !v.browsable;
      return option;
    }));
    if (browsable.length === 0) {
      this.#clearListing('No partition holds a filesystem this page can browse (ext2/3/4, FAT12/16/32, ISO 9660).');
      return;
    }
    const first = this.#volumes.indexOf(browsable[0]);
    this.#partition.value = String(first);
    // Part of the page's open: a filesystem that cannot be read is said here, and the image
    // stays open for everything else.
    try {
      await this.#openVolumeNow(first, generation);
    } catch (e) {
      this.#clearListing(`Could not open the filesystem: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  hide(): void {
    this.#generation++;
    this.#source = null;
    this.#fs = null;
    this.#card.hidden = true;
  }

  async #openVolume(index: number): Promise<void> {
    const volume = this.#volumes[index];
    if (!volume) return;
    const generation = this.#generation;
    await this.#host.task(`Open ${volume.partition === null ? 'the filesystem' : `partition ${volume.partition}`}`, () => this.#openVolumeNow(index, generation));
  }

  async #openVolumeNow(index: number, generation: number): Promise<void> {
    const source = this.#source;
    const volume = this.#volumes[index];
    if (!source || !volume) return;
    this.#fs = null;
    const fs = await openFilesystem(source.disk, { partition: volume.partition ?? undefined, report: source.report });
    if (generation !== this.#generation) return;
    this.#fs = fs;
    await this.#go(await fs.stat('/'));
  }

  async #go(dir: FsEntry): Promise<void> {
    const fs = this.#fs as OpenedFilesystem;
    this.#entries = await fs.readdir(dir);
    this.#dir = dir;
    this.#filter.value = '';
    this.#previewed = null;
    this.#preview.hidden = true;
    this.#renderCrumbs();
    this.#renderList();
  }

  #open(entry: FsEntry): void {
    void this.#host.task(`Open ${entry.path}`, async () => {
      const fs = this.#fs as OpenedFilesystem;
      const target = entry.type === 'symlink' ? await fs.stat(entry.path) : entry;
      if (target.type === 'dir') await this.#go(target);
      else if (target.type === 'file') await this.#showFile(target);
      else throw new PloopError('EINVAL', `${entry.path}: a ${target.type} has no contents to show`);
    });
  }

  async #showFile(entry: FsEntry): Promise<void> {
    const bytes = await (this.#fs as OpenedFilesystem).read(entry, 0, PREVIEW_BYTES);
    this.#previewed = { entry, bytes, text: looksLikeText(bytes) };
    this.#renderPreview(this.#previewed.text);
    this.#preview.hidden = false;
    this.#previewBody.focus();
  }

  #visible(): FsEntry[] {
    return sortEntries(filterEntries(this.#entries, this.#filter.value), this.#order);
  }

  #renderCrumbs(): void {
    const path = (this.#dir as FsEntry).path;
    const parts = path === '/' ? [] : path.slice(1).split('/');
    const items = [['/', '/'], ...parts.map((p, i) => [p, '/' + parts.slice(0, i + 1).join('/')])];
    this.#crumbs.replaceChildren(...items.map(([label, target], i) => {
      const li = el('li');
      if (i === items.length - 1) {
        li.append(el('span', { 'aria-current': 'location' }, label));
      } else {
        const b = el('button', { type: 'button', class: 'link', 'data-path': target }, label);
        b.addEventListener('click', () => void this.#host.task(`Open ${target}`, async () => this.#go(await (this.#fs as OpenedFilesystem).stat(target))));
        li.append(b);
      }
      return li;
    }));
  }

  #renderList(): void {
    const visible = this.#visible();
    this.#table.replaceChildren(headRow(this.#order, (key) => this.#sortBy(key)), ...visible.map((e) => entryRow(e, (x) => this.#open(x))));
    const hidden = this.#entries.length - visible.length;
    const fetched = this.#source?.fetched?.();
    this.#note.textContent = [
      `${this.#entries.length} entries${hidden ? `, ${visible.length} match the filter` : ''}`,
      fetched ? `${formatBytes(fetched.bytes)} fetched over HTTP so far (${((100 * fetched.bytes) / Math.max(1, fetched.ofBytes)).toFixed(2)} % of the image)` : '',
      ...(this.#fs?.warnings ?? []),
    ].filter(Boolean).join(' · ');
    this.#note.dataset.fetchedBytes = fetched ? String(fetched.bytes) : '';
  }

  #sortBy(key: SortKey): void {
    this.#order = { key, ascending: this.#order.key === key ? !this.#order.ascending : true };
    this.#renderList();
    this.#table.querySelector<HTMLButtonElement>(`button[data-sort="${key}"]`)?.focus();
  }

  #renderPreview(asText: boolean): void {
    const p = this.#previewed;
    if (!p) return;
    p.text = asText;
    this.#asText.setAttribute('aria-pressed', String(asText));
    this.#asHex.setAttribute('aria-pressed', String(!asText));
    const shown = p.bytes.length < p.entry.size ? `first ${formatBytes(p.bytes.length)} of ${formatBytes(p.entry.size)}` : formatBytes(p.entry.size);
    this.#previewTitle.textContent = `${p.entry.path} (${shown})`;
    this.#previewBody.textContent = previewText(p.bytes, asText);
    this.#previewBody.classList.toggle('text', asText);
  }

  async #downloadFile(): Promise<void> {
    const p = this.#previewed;
    const fs = this.#fs;
    if (!p || !fs) return;
    await this.#host.task(`Download ${p.entry.name}`, async (signal, progress) => {
      let done = 0;
      const chunks = async function* () {
        for await (const chunk of fs.stream(p.entry, { signal })) {
          progress((done += chunk.length), p.entry.size);
          yield chunk;
        }
      };
      await saveStream(p.entry.name, chunks(), signal);
    });
  }

  async #downloadZip(): Promise<void> {
    const fs = this.#fs;
    const dir = this.#dir;
    if (!fs || !dir) return;
    const skipped: string[] = [];
    await this.#host.task(`Zip ${dir.path}`, async (signal, progress) => {
      const total = await treeBytes(fs, dir, signal);
      const zip = zipFolder(fs, dir, signal, (p) => progress(p.bytes, total), (m) => skipped.push(m));
      await saveStream(`${dir.path === '/' ? 'root' : dir.name}.zip`, zip, signal);
    });
    if (skipped.length) this.#note.textContent = `Left out of the zip: ${skipped.join('; ')}`;
  }

  #clearListing(message: string): void {
    this.#table.replaceChildren();
    this.#crumbs.replaceChildren();
    this.#preview.hidden = true;
    this.#note.textContent = message;
  }
}

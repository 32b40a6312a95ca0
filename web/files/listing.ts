// SPDX-License-Identifier: MIT
// The listing table: sorting by a column (directories first, as file managers do) and the name
// filter, as pure functions over entries, and the rows as DOM.

import { modeString, timeString, type FsEntry } from '../../src/browser.js';
import { formatBytes } from '../demo/hex.js';

export type SortKey = 'name' | 'size' | 'mode' | 'mtime';
export interface SortOrder {
  key: SortKey;
  ascending: boolean;
}

export function sortEntries(entries: FsEntry[], order: SortOrder): FsEntry[] {
  const sign = order.ascending ? 1 : -1;
  const byKey = (a: FsEntry, b: FsEntry): number => {
    switch (order.key) {
      case 'size': return a.size - b.size;
      case 'mode': return (a.mode & 0o7777) - (b.mode & 0o7777);
      case 'mtime': return a.mtime - b.mtime;
      default: return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    }
  };
  return [...entries].sort((a, b) => Number(b.type === 'dir') - Number(a.type === 'dir') || sign * byKey(a, b) || (a.name < b.name ? -1 : 1));
}

/** Entries whose name contains `filter` (case-insensitive). */
export function filterEntries(entries: FsEntry[], filter: string): FsEntry[] {
  const f = filter.trim().toLowerCase();
  return f ? entries.filter((e) => e.name.toLowerCase().includes(f)) : entries;
}

const COLUMNS: Array<[SortKey, string]> = [['name', 'Name'], ['size', 'Size'], ['mode', 'Mode'], ['mtime', 'Modified (UTC)']];

/** The table head: one sort button per column, aria-sort on the sorted one. */
export function headRow(order: SortOrder, onSort: (key: SortKey) => void): HTMLTableRowElement {
  const tr = document.createElement('tr');
  for (const [key, label] of COLUMNS) {
    const th = document.createElement('th');
    th.scope = 'col';
    if (key === order.key) th.setAttribute('aria-sort', order.ascending ? 'ascending' : 'descending');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'sort';
    button.dataset.sort = key;
    button.textContent = label + (key === order.key ? (order.ascending ? ' ▲' : ' ▼') : '');
    button.addEventListener('click', () => onSort(key));
    th.append(button);
    tr.append(th);
  }
  return tr;
}

/** One row; the name is a button (open a directory, preview a file, follow a symlink). */
export function entryRow(e: FsEntry, onOpen: (e: FsEntry) => void): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.name = e.name;
  tr.dataset.type = e.type;
  const name = document.createElement('td');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = `link ${e.type}`;
  // A trailing slash marks a folder, as `ls -F` does (no icon font is needed).
  button.textContent = e.type === 'dir' ? `${e.name}/` : e.name;
  button.setAttribute('aria-label', `${e.type === 'dir' ? 'Open folder' : e.type === 'symlink' ? 'Follow link' : 'Show file'} ${e.name}`);
  button.addEventListener('click', () => onOpen(e));
  name.append(button);
  if (e.type === 'symlink') name.append(` → ${e.target ?? ''}`);
  if (e.error !== undefined) {
    // Listed by name, but not readable: say why instead of showing zeros as facts.
    button.disabled = true;
    const why = document.createElement('span');
    why.className = 'dirty';
    why.dataset.testid = 'files-entry-error';
    why.textContent = ` ⚠ ${e.error}`;
    name.append(why);
    tr.dataset.error = 'true';
    tr.append(name);
    return tr;
  }
  const cells: Array<[string, string]> = [['size', e.type === 'dir' ? '' : formatBytes(e.size)], ['mode', modeString(e.mode)], ['mtime', timeString(e.mtime)]];
  tr.append(name);
  for (const [field, text] of cells) {
    const td = document.createElement('td');
    td.dataset.field = field;
    td.textContent = text;
    if (field === 'size') td.title = `${e.size} bytes`;
    tr.append(td);
  }
  return tr;
}

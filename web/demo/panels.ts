// SPDX-License-Identifier: MIT
// DOM for the partitions table and the check report (pure builders: data in, elements out).

import type { CheckReport, DiskReport } from '../../src/browser.js';
import { formatBytes, hex0x } from './hex.js';

export interface DeltaCheck {
  file: string;
  report: CheckReport | null;
  error?: string;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

/** Fill `table` with the disk's partitions (or its whole-disk filesystem). */
export function renderPartitions(table: HTMLElement, d: DiskReport, diskBytes: number): void {
  table.replaceChildren();
  const caption = el('caption', d.scheme === 'none' ? 'No partition table' : `${d.scheme.toUpperCase()} partition table (disk id ${d.diskId})`);
  caption.dataset.scheme = d.scheme;
  table.append(caption);
  const rows = d.scheme === 'none'
    ? (d.filesystem ? [{ number: 0, startBytes: 0, sizeBytes: diskBytes, typeName: 'whole disk', typeId: '', name: '', filesystem: d.filesystem }] : [])
    : d.partitions;
  if (rows.length === 0) {
    caption.textContent = 'No partition table and no known filesystem on the disk';
    return;
  }
  const head = el('tr');
  for (const t of ['#', 'Start', 'Size', 'Type', 'Filesystem', 'Label']) {
    const th = el('th', t);
    th.scope = 'col';
    head.append(th);
  }
  table.append(head);
  for (const p of rows) {
    const tr = el('tr');
    tr.dataset.partition = String(p.number);
    // GPT types are GUIDs (shown in lower case), MBR types a byte ("0x0e").
    const type = p.name ? `${p.typeName} “${p.name}”` : p.typeId ? `${p.typeName} (${p.typeId.length > 4 ? p.typeId.toLowerCase() : p.typeId})` : p.typeName;
    for (const [key, text] of [['number', p.number ? String(p.number) : '–'], ['start', hex0x(p.startBytes)], ['size', formatBytes(p.sizeBytes)], ['type', type],
      ['filesystem', p.filesystem?.name ?? '—'], ['label', p.filesystem?.label ?? '—']] as const) {
      const td = el('td', text);
      td.dataset.field = key;
      tr.append(td);
    }
    table.append(tr);
  }
}

/** Fill `box` with one block per checked delta. */
export function renderChecks(box: HTMLElement, checks: DeltaCheck[]): void {
  box.replaceChildren();
  for (const { file, report, error } of checks) {
    const div = el('div');
    div.dataset.file = file;
    div.dataset.clean = String(!!report?.clean);
    const title = el('p');
    if (!report) {
      title.append(`${file}: `, el('span', 'cannot be checked', 'dirty'), ` — ${error}`);
      div.append(title);
      box.append(div);
      continue;
    }
    title.append(`${file}: `, el('span', report.clean ? 'no errors' : `${count(report.corruptions, 'corruption')}, ${count(report.leakedClusters, 'leaked cluster')}`, report.clean ? 'clean' : 'dirty'));
    const facts = el('p', `${report.allocatedClusters}/${report.totalClusters} clusters allocated, ${report.fragmentedClusters} fragmented; image end ${report.imageEndOffset} of ${report.fileSize} bytes`, 'note');
    div.append(title, facts);
    if (report.findings.length) {
      const ul = el('ul');
      for (const f of report.findings) ul.append(el('li', `${f.severity}: ${f.message}`));
      div.append(ul);
    }
    box.append(div);
  }
}

/** "1 corruption", "2 corruptions". */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

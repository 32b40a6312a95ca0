// SPDX-License-Identifier: MIT
// What the demo page does to the open image: a snapshot, a test pattern, the three exports, and
// keeping it in OPFS or IndexedDB (with the list of stored images).

import { snapshotStack, PloopError } from '../../src/browser.js';
import { saveWorkspace, loadWorkspace, listStored, removeStored, checkName, backendLabel, type Backend } from './persist.js';
import { parseOffset } from './hex.js';
import { mergedParts, storeParts, rawParts, download, checkpoint } from './export.js';
import { openRunnerPool } from './runners.js';
import { $, page, showError, status, task } from './state.js';
import { openWorkspace, closeCurrent, reopen } from './open.js';
import { renderHex, runCheck } from './render.js';

const COPY_CHUNK_BYTES = 1 << 20;


$('snapshot').addEventListener('click', () => {
  if (!page.current) return;
  const c = page.current;
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
  if (!page.current) return;
  const c = page.current;
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


const baseName = () => (page.current?.files[0] ?? 'disk').replace(/\.hds$/i, '') || 'disk';

$('export-merged').addEventListener('click', () => {
  if (!page.current) return;
  const c = page.current;
  void task('Export merged image', async (signal, progress) => download(await mergedParts(c.image, signal, progress), `${baseName()}-merged.hds`));
});

$('export-top').addEventListener('click', () => {
  if (!page.current) return;
  const c = page.current;
  void task('Export top delta', async (signal, progress) => {
    const top = c.files[c.files.length - 1];
    // Braces of a snapshot file's GUID make awkward download names; the rest of the name stays.
    download(await storeParts(await c.ws.openStore(top), signal, progress), /\.hds/i.test(top) ? top.replace(/[{}]/g, '') : `${top}.hds`);
  });
});

$('export-raw').addEventListener('click', () => {
  if (!page.current) return;
  const c = page.current;
  void task('Export raw disk', async (signal, progress) => {
    // Read-only deltas a worker can open itself: the runners read, the page only collects.
    const pool = c.image.writable ? null : await openRunnerPool(c.files.map((f) => c.ws.files.get(f)!));
    try {
      download(await rawParts(pool ?? c.image, signal, progress), `${baseName()}.img`);
    } finally {
      await pool?.close();
    }
    page.lastReaders = pool ? `${pool.runnerCount} runners` : 'the page thread';
    return page.lastReaders;
  }).then((by) => by && status(`Export raw disk: done (read by ${by})`));
});


$('save-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!page.current) return;
  const c = page.current;
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

export async function renderStored(): Promise<void> {
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
      if (page.current && page.current.ws.name === `${s.backend}:${s.name}`) {
        await closeCurrent();
        await page.current.ws.dispose();
        page.current = null;
        $('image').hidden = true;
      }
      await removeStored(s.backend, s.name);
      await renderStored();
    }));
    li.append(label, open, del);
    ul.append(li);
  }
}

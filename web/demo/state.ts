// SPDX-License-Identifier: MIT
// The demo page's state: the image that is open (one at a time), and tasks — long operations
// with a progress bar, a Cancel button and their errors shown, never thrown.

import type { DiskReport, PloopImage } from '../../src/browser.js';
import type { Workspace } from './workspace.js';
import type { BatLayout } from './bat-canvas.js';
import type { DeltaCheck } from './panels.js';
import { backendLabel } from './persist.js';

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
export const app = $('app');

export interface Current {
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

export const page = {
  current: null as Current | null,
  /** Warnings of every open so far (the console hook shows them). */
  warnings: [] as string[],
  /** Who read the last raw export: "N runners" or "the page thread". */
  lastReaders: '',
};

// ---- tasks: progress, cancel, errors ---------------------------------------------------------

let busy = 0;
let taskAbort: AbortController | null = null;

export function setBusy(delta: number): void {
  busy += delta;
  app.dataset.busy = String(busy > 0);
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.action'))) el.disabled = busy > 0;
  if (busy === 0) updateWritable();
}

export function showError(e: unknown): void {
  const box = $('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

export function status(text: string): void {
  $('status').textContent = text;
}

export type Progress = (done: number, total: number) => void;

/** Run a long operation with a progress bar and a Cancel button; errors are shown, not thrown. */
export async function task<T>(label: string, fn: (signal: AbortSignal, progress: Progress) => Promise<T>): Promise<T | undefined> {
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

export function updateWritable(): void {
  const writable = !!page.current?.image.writable;
  const stored = page.current?.ws.backing ? backendLabel(page.current.ws.name.startsWith('opfs:') ? 'opfs' : 'idb') : null;
  $('writable-note').textContent = !page.current ? '' : writable
    ? (stored ? `The top delta is writable; changes are written to ${stored} as you make them.` : 'The top delta is writable (in this page\'s memory until you save it).')
    : 'The top delta is read-only: take a snapshot to write on a new in-memory delta over it.';
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('button.needs-writable'))) el.disabled = busy > 0 || !writable;
}


// SPDX-License-Identifier: MIT
// The v86 page's small UI helpers: element lookup, the status line, errors, one action at a time.

import { PloopError } from '../../src/browser.js';

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export function status(text: string): void {
  $('status').textContent = text;
}

export function showError(e: unknown): void {
  const el = $('error');
  el.hidden = false;
  el.textContent = e instanceof PloopError ? `${e.message} [${e.code}]` : e instanceof Error ? e.message : String(e);
  status('');
}

let busy: Promise<unknown> = Promise.resolve();

/** Run one action at a time (boot, reset, export…), showing its failure. */
export function task<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const run = busy.then(async () => {
    $('error').hidden = true;
    status(`${what}…`);
    try {
      return await fn();
    } catch (e) {
      showError(e);
      throw e;
    }
  });
  busy = run.catch(() => {});
  return run;
}

/** Resolves once every action started so far has finished (failed ones included). */
export function idle(): Promise<void> {
  return busy.then(() => {});
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

export const formatSeconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

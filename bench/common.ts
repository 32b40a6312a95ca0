// SPDX-License-Identifier: MIT
// Shared by the bench modules: one row of the table, medians, and running a module alone.

import { fileURLToPath } from 'node:url';

export interface Row {
  name: string;
  ours: number;
  theirs: number;
  unit: string;
  ratio: number;
  against: string;
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** True when the module at `url` is the script node was started with. */
export const isMain = (url: string): boolean => !!process.argv[1] && fileURLToPath(url) === process.argv[1];

/** A module run alone prints its rows as JSON (bench/run.ts reads them). */
export function printRows(rows: Row[]): void {
  process.stdout.write(JSON.stringify(rows) + '\n');
}

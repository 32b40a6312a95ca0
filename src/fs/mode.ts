// SPDX-License-Identifier: MIT
// st_mode as `ls -l` writes it ("drwxr-sr-t"), for the CLI listing and the page's.

import { S_IFMT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFSOCK } from './types.js';

const TYPE_CHAR: Record<number, string> = { [S_IFDIR]: 'd', [S_IFLNK]: 'l', [S_IFCHR]: 'c', [S_IFBLK]: 'b', [S_IFIFO]: 'p', [S_IFSOCK]: 's' };

export function modeString(mode: number): string {
  const rwx = (shift: number, special: number, on: string, off: string) => {
    const bits = (mode >> shift) & 7;
    const x = bits & 1 ? (mode & special ? on : 'x') : mode & special ? off : '-';
    return (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + x;
  };
  return (TYPE_CHAR[mode & S_IFMT] ?? '-') + rwx(6, 0o4000, 's', 'S') + rwx(3, 0o2000, 's', 'S') + rwx(0, 0o1000, 't', 'T');
}

/** "2026-12-05 00:57" in UTC (ls --time-style=long-iso, with TZ=UTC). */
export function timeString(seconds: number): string {
  const d = new Date(Math.floor(seconds) * 1000);
  if (Number.isNaN(d.getTime())) return '????-??-?? ??:??';
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

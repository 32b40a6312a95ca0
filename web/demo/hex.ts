// SPDX-License-Identifier: MIT
// Hex dump lines (offset, 16 bytes, ASCII) and parsing of the offsets users type.

import { PloopError } from '../../src/browser.js';

export const HEX_PAGE_BYTES = 512;

export function hexDump(bytes: Uint8Array, baseOffset: number): string {
  const lines: string[] = [];
  const width = Math.max(8, (baseOffset + bytes.length).toString(16).length);
  for (let row = 0; row < bytes.length; row += 16) {
    const chunk = bytes.subarray(row, row + 16);
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const text = Array.from(chunk, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(baseOffset + row).toString(16).padStart(width, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${text}|`);
  }
  return lines.join('\n');
}

/** "4096", "0x1000", "4k", "1M", "1MiB": a byte offset. */
export function parseOffset(text: string, field: string): number {
  const t = text.trim();
  let value: number;
  const unit = /^(\d+(?:\.\d+)?)\s*([kmgt])(?:i?b)?$/i.exec(t);
  if (/^0x[0-9a-f]+$/i.test(t)) value = parseInt(t.slice(2), 16);
  else if (/^\d+$/.test(t)) value = Number(t);
  else if (unit) value = Number(unit[1]) * 1024 ** ('kmgt'.indexOf(unit[2].toLowerCase()) + 1);
  else throw new PloopError('EINVAL', `${field}: ${JSON.stringify(text)} is not a byte count (expected e.g. 4096, 0x1000, 64k or 1M)`, { field, value: text });
  if (!Number.isSafeInteger(value)) throw new PloopError('EINVAL', `${field}: ${JSON.stringify(text)} is not a whole number of bytes`, { field, value: text });
  return value;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export const hex0x = (n: number) => '0x' + n.toString(16);

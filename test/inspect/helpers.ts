// Disk bytes for the inspector tests: files made by real tools, read back as a read callback.
import { readFileSync } from 'node:fs';
import type { ReadAt } from '../../src/index.ts';

export function readerOf(bytes: Uint8Array): ReadAt {
  return async (offset, length) => {
    const out = new Uint8Array(length);
    if (offset < bytes.length) out.set(bytes.subarray(offset, Math.min(bytes.length, offset + length)));
    return out;
  };
}

export function fileBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

// SPDX-License-Identifier: MIT
// A file's first bytes as text (when they decode as UTF-8 without NULs) or as a hex dump.

import { hexDump } from '../demo/hex.js';

export const PREVIEW_BYTES = 64 << 10;

/** True when `bytes` read as UTF-8 text: valid UTF-8 (a sequence cut at the end is fine) and no NUL. */
export function looksLikeText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  // The preview may end inside a multi-byte character: leave up to 3 bytes of it out of the test.
  for (let cut = 0; cut <= Math.min(3, bytes.length); cut++) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, bytes.length - cut));
      return true;
    } catch {
      // try a shorter prefix
    }
  }
  return false;
}

export function previewText(bytes: Uint8Array, asText: boolean): string {
  return asText ? new TextDecoder('utf-8').decode(bytes) : hexDump(bytes, 0);
}

// SPDX-License-Identifier: MIT
// Positioned synchronous file I/O to the end of a request: what NodeFileStore's syncMaxBytes
// mode, the runners' fast path and the I/O thread all run. A pread/pwrite may move fewer bytes
// than asked; these loop until the request is done (or, reading, the file ends).

import { readSync, writeSync } from 'node:fs';

/** Read `length` bytes at `position` of `fd` into `buffer` from index `at`; fewer only at the end of the file. Returns the bytes read. */
export function preadFully(fd: number, buffer: Uint8Array, at: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, at + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Write `length` bytes of `buffer` from index `at` to `position` of `fd`. */
export function pwriteFully(fd: number, buffer: Uint8Array, at: number, length: number, position: number): void {
  let done = 0;
  while (done < length) done += writeSync(fd, buffer, at + done, length - done, position + done);
}

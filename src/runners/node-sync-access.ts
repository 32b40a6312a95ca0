// SPDX-License-Identifier: MIT
// The fast path's synchronous access to a file (Node runners, fast-path.ts): a descriptor of its
// own, read and written by address in the shared memory with positioned readSync/writeSync, so a
// request makes no view of its payload. The runner's NodeFileStore keeps its own descriptor for
// the generic path; both see the same page cache.

import { openSync, readSync, writeSync, closeSync } from 'node:fs';
import type { SyncAccess } from './fast-path.js';

/** Positioned reads and writes on a descriptor of `path`, straight into or out of the shared memory. */
export function nodeFileAccess(path: string, writable: boolean, maxBytes: number): SyncAccess {
  const fd = openSync(path, writable ? 'r+' : 'r');
  let closed = false;
  return {
    name: path,
    maxBytes,
    read(mem, at, length, position) {
      let done = 0;
      while (done < length) {
        const n = readSync(fd, mem, at + done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    write(mem, at, length, position) {
      let done = 0;
      while (done < length) done += writeSync(fd, mem, at + done, length - done, position + done);
      return true;
    },
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

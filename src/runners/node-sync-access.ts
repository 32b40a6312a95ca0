// SPDX-License-Identifier: MIT
// The fast path's synchronous access to a file (Node runners, fast-path.ts): a descriptor of its
// own, read and written by address in the shared memory with positioned readSync/writeSync, so a
// request makes no view of its payload. The runner's NodeFileStore keeps its own descriptor for
// the generic path; both see the same page cache.

import { openSync, closeSync } from 'node:fs';
import { preadFully, pwriteFully } from '../stores/node-sync-io.js';
import type { SyncAccess } from './fast-path.js';

/** Positioned reads and writes on a descriptor of `path`, straight into or out of the shared memory. */
export function nodeFileAccess(path: string, writable: boolean, maxBytes: number): SyncAccess {
  const fd = openSync(path, writable ? 'r+' : 'r');
  let closed = false;
  return {
    name: path,
    maxBytes,
    read: (mem, at, length, position) => preadFully(fd, mem, at, length, position),
    write(mem, at, length, position) {
      pwriteFully(fd, mem, at, length, position);
      return true;
    },
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

// SPDX-License-Identifier: MIT
// One writer at a time, readers allowed, in Node and in the browser alike: the words a store or
// a disk folder uses when it refuses a second writer, and when it tells a reader that a writer
// is active. Node names the holder from its kernel lock (node-lock.ts), the browser from the
// Web Lock it holds (web-lock.ts); the sentences are the same.

import { PloopError } from '../errors.js';

/** 'image' for a file or store, 'disk folder' for DiskDescriptor.xml and its deltas. */
export type LockedThing = 'image' | 'disk folder';

/** The EBUSY error of a second writer: `holder` says who has `label` open for writing. */
export function writerRefused(what: LockedThing, label: string, holder: string, data: Record<string, unknown> = {}): PloopError {
  return new PloopError(
    'EBUSY',
    `open ${label} for writing refused: the ${what} is in use by another writer (${holder}); close it there first, or open it read-only`,
    { operation: 'open', path: label, holder, ...data },
  );
}

/** The warning a reader gets while `holder` has `label` open for writing. */
export function writerActive(what: LockedThing, label: string, holder: string): string {
  return `the ${what} ${label} is open for writing by another writer (${holder}): what this reader sees may change while it reads`;
}

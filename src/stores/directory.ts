// SPDX-License-Identifier: MIT
// A folder of delta files plus DiskDescriptor.xml, as the ploop tools lay a disk out. The stack
// operations (snapshot, merge) work through this so that they run on Node folders, in memory
// and (later) on browser storage alike.

import type { BlockStore } from './block-store.js';

export interface DeltaDirectory {
  /** For messages: the folder's path or a label. */
  readonly name: string;
  /** Open (or with `create`, create empty / truncate) a file as a store. */
  openStore(file: string, options?: { writable?: boolean; create?: boolean }): Promise<BlockStore>;
  /** The text of a file, or null when it does not exist. */
  readText(file: string): Promise<string | null>;
  /** Replace a file atomically: a crash leaves either the old text or the new one. */
  writeTextAtomic(file: string, text: string): Promise<void>;
  /** Remove a file (no error when it is already gone). */
  remove(file: string): Promise<void>;
  /**
   * Optional: keep other writers out of the folder (its descriptor and every delta) until
   * `release()`, or throw EBUSY naming the one who is in. `warning` says when no lock could be
   * taken. Folders without it (memory) are not locked.
   */
  lockForWriting?(): Promise<FolderLock>;
  /** Optional: the warning for a reader while another writer has the folder, or null. */
  writerWarning?(): Promise<string | null>;
}

export interface FolderLock {
  release(): Promise<void>;
  warning?: string;
}

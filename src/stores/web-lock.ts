// SPDX-License-Identifier: MIT
// One writer per image across tabs, pages and workers, readers allowed: a Web Lock named after
// the image, held for as long as the store that writes it is open (the browser's counterpart of
// node-lock.ts; the words are in-use.ts's). A reader is not locked out; it is told when the lock
// is held. Without Web Locks (old browsers, Node) there is no lock, no refusal and no warning.

import type { PloopError } from '../errors.js';
import type { FolderLock } from './directory.js';
import { writerActive, writerRefused } from './in-use.js';

/** Folders are locked by the name of their descriptor (node-dir.ts locks DiskDescriptor.xml.lck). */
export const FOLDER_LOCK_FILE = 'DiskDescriptor.xml';

/** Who holds `lockName`, in the words of a refusal or a warning (in-use.ts). */
export function webLockHolder(lockName: string): string {
  return `another page or worker, which holds the Web Lock "${lockName}"`;
}

/**
 * Take the Web Lock `lockName` if nobody holds it, and keep it until the returned function is
 * called. When another holder has it, throw `refused()` (a message naming the image).
 * Returns null where Web Locks do not exist.
 */
export async function holdWebLock(lockName: string, refused: () => PloopError): Promise<(() => void) | null> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) return null;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const granted = await new Promise<boolean>((resolve, reject) => {
    locks.request(lockName, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock ? held : undefined;
    }).catch(reject);
  });
  if (!granted) throw refused();
  return release;
}

/** Whether some page or worker of this origin holds the Web Lock `lockName` now. */
export async function webLockHeld(lockName: string): Promise<boolean> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) return false;
  const { held = [] } = await locks.query();
  return held.some((l) => l.name === lockName);
}

/**
 * A disk folder's writer lock (DeltaDirectory.lockForWriting) as the Web Lock `lockName`,
 * refused in in-use.ts's words.
 */
export async function lockFolder(lockName: string, label: string): Promise<FolderLock> {
  const release = await holdWebLock(lockName, () => writerRefused('disk folder', label, webLockHolder(lockName), { lock: lockName }));
  return { release: async () => release?.() };
}

/** DeltaDirectory.writerWarning for the folder whose lock is `lockName`. */
export async function folderWriterWarning(lockName: string, label: string): Promise<string | null> {
  return (await webLockHeld(lockName)) ? writerActive('disk folder', label, webLockHolder(lockName)) : null;
}

// SPDX-License-Identifier: MIT
// One writer per image across tabs, pages and workers: a Web Lock named after the image, held
// for as long as the store that writes it is open. Used where the storage itself does not keep
// a second writer out (IndexedDB records, OPFS files opened with shared 'readwrite-unsafe'
// handles). Without Web Locks (old browsers, Node) there is no lock and no refusal.

import type { PloopError } from '../errors.js';

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

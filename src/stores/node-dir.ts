// SPDX-License-Identifier: MIT
// DeltaDirectory on a Node folder. Atomic replace = write FILE.tmp, fsync, rename, fsync the folder.
// The writer lock is the one Debian's ploop 1.15 takes: a flock on DiskDescriptor.xml.lck.

import { open, readFile, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { DeltaDirectory, FolderLock } from './directory.js';
import { NodeFileStore } from './node-fs.js';
import { lockForWriting, writerOf } from './node-lock.js';
import { writerActive } from './in-use.js';
import { ioError } from '../errors.js';

/**
 * Beside DiskDescriptor.xml, as ploop names it (engine/stack.ts's DESCRIPTOR_FILE is not
 * imported: that module brings the XML parser, see cli/open.ts).
 */
const LOCK_FILE = 'DiskDescriptor.xml.lck';

export class NodeDirectory implements DeltaDirectory {
  readonly name: string;

  constructor(path: string) {
    this.name = path;
  }

  /** Paths in a descriptor are relative to its folder unless absolute. */
  path(file: string): string {
    return isAbsolute(file) ? file : join(this.name, file);
  }

  openStore(file: string, options: { writable?: boolean; create?: boolean } = {}): Promise<NodeFileStore> {
    return NodeFileStore.open(this.path(file), options);
  }

  async readText(file: string): Promise<string | null> {
    try {
      return await readFile(this.path(file), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw ioError(`read ${this.path(file)}`, e);
    }
  }

  async writeTextAtomic(file: string, text: string): Promise<void> {
    const target = this.path(file);
    const tmp = `${target}.tmp`;
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, target);
      const dir = await open(this.name, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (e) {
      throw ioError(`replace ${target}`, e);
    }
  }

  async remove(file: string): Promise<void> {
    await rm(this.path(file), { force: true });
  }

  /**
   * Flock DiskDescriptor.xml.lck (created if missing, as ploop does, and never removed: a
   * process may be waiting on the file that a removal would orphan).
   */
  async lockForWriting(): Promise<FolderLock> {
    const path = this.path(LOCK_FILE);
    let handle;
    try {
      handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    } catch {
      try {
        // flock needs no write access: another user's lock file (ploop runs as root) still serves.
        handle = await open(path, 'r');
      } catch (e) {
        return { release: async () => {}, warning: `${this.name} is opened for writing without a lock (${ioError(`open ${path}`, e).message}): a second writer is not kept out` };
      }
    }
    try {
      const warning = await lockForWriting(handle.fd, 'disk folder', this.name);
      return { release: () => handle.close(), ...(warning ? { warning } : {}) };
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async writerWarning(): Promise<string | null> {
    const writer = await writerOf(this.path(LOCK_FILE));
    return writer ? writerActive('disk folder', this.name, writer) : null;
  }
}

// SPDX-License-Identifier: MIT
// DeltaDirectory on a Node folder. Atomic replace = write FILE.tmp, fsync, rename, fsync the folder.

import { open, readFile, rename, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { DeltaDirectory } from './directory.js';
import { NodeFileStore } from './node-fs.js';
import { ioError } from '../errors.js';

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
}

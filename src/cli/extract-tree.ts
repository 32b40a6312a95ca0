// SPDX-License-Identifier: MIT
// extract: copy a file or a directory tree out of a filesystem into a local folder, as
// virt-copy-out does: PATH lands as OUTDIR/its-name, and "/" lands as OUTDIR's contents.
// Contents, types, permission bits, mtimes (symlinks' too), targets and hard links are kept;
// owners too when running as root (as tar does). Files are written sparse: all-zero chunks
// (holes, mostly) are skipped and the length set at the end. Nothing that exists is
// overwritten without `force`, and a new file is created exclusively, so a symlink made
// earlier in the same extraction can never redirect a write outside OUTDIR.

import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, rm, stat, symlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PloopError } from '../errors.js';
import type { Filesystem, FsEntry } from '../fs/index.js';
import { walkTree } from '../fs/walk.js';
import { isAllZero } from '../engine/zero.js';

export interface ExtractOptions {
  /** Replace files that exist in OUTDIR (default: refuse). */
  force?: boolean;
  /** Give files their owners from the image (default: when running as root). */
  owners?: boolean;
  /** Bytes of file data copied so far, of `totalBytes` when it was counted. */
  onProgress?: (doneBytes: number) => void;
  /** Something skipped or that failed; the extraction goes on. */
  onWarning?: (message: string) => void;
}

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  hardLinks: number;
  bytes: number;
  skipped: number;
  /** Problems reported through onWarning (unreadable directories, special files). */
  warnings: number;
}

const CHUNK_BYTES = 1 << 20;
/** Runs of zeros this long (and aligned) are left as holes in the extracted file. */
const HOLE_BYTES = 64 << 10;

/** Write `chunk` at `pos`, skipping its all-zero aligned pieces (the file's length is set at the end). */
async function writeSparse(fh: FileHandle, chunk: Uint8Array, pos: number): Promise<void> {
  let start = -1;
  for (let at = 0; ; at += HOLE_BYTES) {
    const data = at < chunk.length && !isAllZero(chunk.subarray(at, at + HOLE_BYTES));
    if (data && start < 0) start = at;
    if (!data && start >= 0) {
      await fh.write(chunk, start, Math.min(at, chunk.length) - start, pos + start);
      start = -1;
    }
    if (at >= chunk.length) return;
  }
}

export async function extractTree(fs: Filesystem, top: FsEntry, outDir: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const out = await stat(outDir).catch(() => null);
  if (!out?.isDirectory()) throw new PloopError('ENOENT', `extract: OUTDIR ${outDir} is not an existing directory`, { outDir });
  const copier = new Copier(fs, options);
  if (top.type !== 'dir') {
    await copier.entry(top, join(outDir, safeName(top)));
    return copier.result;
  }
  // Directories get their modes and times after their contents are in (a read-only directory
  // could not take its files, and every file written would bump its mtime).
  const dirs: Array<[FsEntry, string]> = [];
  const destOf = new Map<string, string>([[top.path, top.path === '/' ? outDir : join(outDir, safeName(top))]]);
  if (top.path !== '/') {
    await copier.directory(destOf.get(top.path) as string);
    dirs.push([top, destOf.get(top.path) as string]);
  }
  const onError = (e: PloopError) => copier.warn(e.message);
  for await (const { dir, entries } of walkTree(fs, top, { onError })) {
    const base = destOf.get(dir.path) as string;
    destOf.delete(dir.path);
    for (const entry of entries) {
      let name: string;
      try {
        name = safeName(entry);
      } catch (e) {
        copier.warn((e as Error).message);
        continue;
      }
      const dest = join(base, name);
      if (entry.type === 'dir') {
        await copier.directory(dest);
        destOf.set(entry.path, dest);
        dirs.push([entry, dest]);
      } else {
        await copier.entry(entry, dest);
      }
    }
  }
  for (let i = dirs.length - 1; i >= 0; i--) await copier.attributes(dirs[i][0], dirs[i][1]);
  return copier.result;
}

/** A name that can be a single path component here (a corrupt image could hold "..", "a/b" or NUL). */
function safeName(entry: FsEntry): string {
  const name = entry.path === '/' ? '' : entry.name;
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new PloopError('EINVAL', `extract: ${JSON.stringify(entry.path)}: the name ${JSON.stringify(name)} cannot be a file name here; skipped`, { path: entry.path });
  }
  return name;
}

class Copier {
  readonly result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardLinks: 0, bytes: 0, skipped: 0, warnings: 0 };
  readonly #fs: Filesystem;
  readonly #options: ExtractOptions;
  readonly #owners: boolean;
  /** Inode → where its first link was written, for files with more than one link. */
  readonly #linked = new Map<number, string>();

  constructor(fs: Filesystem, options: ExtractOptions) {
    this.#fs = fs;
    this.#options = options;
    this.#owners = options.owners ?? process.getuid?.() === 0;
  }

  warn(message: string): void {
    this.result.warnings++;
    this.#options.onWarning?.(message);
  }

  async directory(dest: string): Promise<void> {
    try {
      await mkdir(dest, { mode: 0o700 });
    } catch (e) {
      const exists = (e as NodeJS.ErrnoException).code === 'EEXIST';
      if (!exists || !this.#options.force || !(await lstat(dest)).isDirectory()) throw refused(dest, e);
    }
    this.result.directories++;
  }

  async entry(entry: FsEntry, dest: string): Promise<void> {
    if (entry.error !== undefined) {
      this.result.skipped++;
      this.warn(`extract: ${entry.path}: cannot be read, skipped: ${entry.error}`);
      return;
    }
    switch (entry.type) {
      case 'file': return this.#file(entry, dest);
      case 'symlink': return this.#symlink(entry, dest);
      case 'dir':
        await this.directory(dest);
        return this.attributes(entry, dest);
      default:
        this.result.skipped++;
        this.warn(`extract: ${entry.path}: special file (mode ${entry.mode.toString(8)}) skipped: devices, FIFOs and sockets are not created`);
    }
  }

  async #file(entry: FsEntry, dest: string): Promise<void> {
    const first = entry.nlink > 1 ? this.#linked.get(entry.inode) : undefined;
    if (first !== undefined) {
      await this.#replaceable(dest, () => link(first, dest));
      this.result.hardLinks++;
      return;
    }
    const fh = await this.#replaceable(dest, () => open(dest, 'wx', 0o600));
    try {
      let pos = 0;
      for await (const chunk of this.#fs.stream(entry, { chunkBytes: CHUNK_BYTES })) {
        await writeSparse(fh, chunk, pos);
        pos += chunk.length;
        this.result.bytes += chunk.length;
        this.#options.onProgress?.(this.result.bytes);
      }
      await fh.truncate(pos);
    } finally {
      await fh.close();
    }
    this.result.files++;
    if (entry.nlink > 1) this.#linked.set(entry.inode, dest);
    await this.attributes(entry, dest);
  }

  async #symlink(entry: FsEntry, dest: string): Promise<void> {
    await this.#replaceable(dest, () => symlink(entry.target ?? '', dest));
    this.result.symlinks++;
    if (this.#owners) await lchown(dest, entry.uid, entry.gid);
    await lutimes(dest, entry.atime, entry.mtime);
  }

  /** Owner, permission bits and times; chown first, since it clears the setuid and setgid bits. */
  async attributes(entry: FsEntry, dest: string): Promise<void> {
    if (this.#owners) await chown(dest, entry.uid, entry.gid);
    await chmod(dest, entry.mode & 0o7777);
    await utimes(dest, entry.atime, entry.mtime);
  }

  /** Run `create`; with `force`, a file in the way is removed first (never a directory). */
  async #replaceable<T>(dest: string, create: () => Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !this.#options.force) throw refused(dest, e);
      if ((await lstat(dest).catch(() => null))?.isDirectory()) throw refused(dest, e);
      await rm(dest, { force: true });
      return create();
    }
  }
}

function refused(dest: string, cause: unknown): Error {
  if ((cause as NodeJS.ErrnoException).code === 'EEXIST') {
    return new PloopError('EINVAL', `extract: ${dest} exists; extract never overwrites (use --force to replace files)`, { dest });
  }
  return cause as Error;
}

// SPDX-License-Identifier: MIT
// Paths over a driver: the walk from the root with `..` and symlinks (at most MAX_SYMLINKS
// followed per walk, as Linux's ELOOP limit), ENOENT/ENOTDIR/EISDIR errors that name the path,
// and streaming. Entries handed out remember their node, so a caller that walks a tree with
// readdir and then reads its files (extract) never walks a path twice.

import { PloopError } from '../errors.js';
import type { Filesystem, FsDriver, FsEntry, FsKind, FsNode, StreamOptions, VolumeReader } from './types.js';

/** Symlinks followed in one path walk before ELOOP (Linux: 40). */
export const MAX_SYMLINKS = 40;
/** A symlink target longer than this is corrupt (Linux: PATH_MAX). */
export const MAX_TARGET_BYTES = 4096;
const DEFAULT_CHUNK_BYTES = 1 << 20;

interface Step<N> {
  name: string;
  node: N;
}

export class FileTree<N extends FsNode = FsNode> implements Filesystem {
  readonly #driver: FsDriver<N>;
  readonly sizeBytes: number;
  readonly #nodes = new WeakMap<FsEntry, N>();

  constructor(driver: FsDriver<N>, volume: VolumeReader) {
    this.#driver = driver;
    this.sizeBytes = volume.sizeBytes;
  }

  get kind(): FsKind {
    return this.#driver.kind;
  }
  get label(): string | null {
    return this.#driver.label;
  }
  get uuid(): string | null {
    return this.#driver.uuid;
  }
  get blockBytes(): number {
    return this.#driver.blockBytes;
  }
  get warnings(): readonly string[] {
    return this.#driver.warnings;
  }

  async lstat(path: string | FsEntry): Promise<FsEntry> {
    if (typeof path !== 'string') return path;
    const steps = await this.#walk(path, false);
    return this.#entry(steps);
  }

  async stat(path: string | FsEntry): Promise<FsEntry> {
    if (typeof path !== 'string') {
      if (path.type !== 'symlink') return path;
      path = path.path;
    }
    return this.#entry(await this.#walk(path, true));
  }

  async readdir(path: string | FsEntry): Promise<FsEntry[]> {
    const [dirPath, dir] = await this.#resolve(path, 'readdir');
    if (dir.stat.type !== 'dir') throw notDir('readdir', dirPath);
    const prefix = dirPath === '/' ? '/' : dirPath + '/';
    const entries: FsEntry[] = [];
    for (const listed of await this.#driver.list(dir)) {
      if ('error' in listed) entries.push(unreadable(prefix + listed.name, listed.name, listed.inode, listed.error));
      else entries.push(await this.#entryOf(prefix + listed.name, listed.name, listed.node, true));
    }
    return entries;
  }

  async readlink(path: string | FsEntry): Promise<string> {
    const entry = await this.lstat(path);
    if (entry.type !== 'symlink') throw new PloopError('EINVAL', `readlink ${entry.path}: not a symlink (it is a ${entry.type})`, { path: entry.path });
    return entry.target ?? this.#driver.readlink(this.#node(entry));
  }

  async read(path: string | FsEntry, offset: number, length: number): Promise<Uint8Array> {
    const [filePath, node] = await this.#resolve(path, 'read');
    checkFile('read', filePath, node);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new PloopError('EINVAL', `read ${filePath}: offset ${offset} and length ${length} must be whole numbers ≥ 0`, { path: filePath, offset, length });
    }
    const end = Math.min(node.stat.size, offset + length);
    return end <= offset ? new Uint8Array(0) : this.#driver.read(node, offset, end - offset);
  }

  async *stream(path: string | FsEntry, options: StreamOptions = {}): AsyncIterable<Uint8Array> {
    const [filePath, node] = await this.#resolve(path, 'stream');
    checkFile('stream', filePath, node);
    const chunk = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const end = Math.min(options.end ?? node.stat.size, node.stat.size);
    for (let pos = options.start ?? 0; pos < end; pos += chunk) {
      options.signal?.throwIfAborted();
      yield await this.#driver.read(node, pos, Math.min(chunk, end - pos));
    }
  }

  /** The node behind a path (symlinks followed) or an entry handed out earlier. */
  async #resolve(path: string | FsEntry, operation: string): Promise<[string, N]> {
    if (typeof path !== 'string' && path.type !== 'symlink') return [path.path, this.#node(path)];
    const steps = await this.#walk(typeof path === 'string' ? path : path.path, true, operation);
    return [pathOf(steps), steps[steps.length - 1].node];
  }

  #node(entry: FsEntry): N {
    const node = this.#nodes.get(entry);
    if (!node) throw new PloopError('EINVAL', `${entry.path}: this entry was not listed by this filesystem`, { path: entry.path });
    return node;
  }

  async #entry(steps: Array<Step<N>>): Promise<FsEntry> {
    const last = steps[steps.length - 1];
    return this.#entryOf(pathOf(steps), steps.length === 1 ? '/' : last.name, last.node);
  }

  /** The entry for `node`; in a listing (`listed`), a symlink whose target cannot be read keeps the error instead of failing the listing. */
  async #entryOf(path: string, name: string, node: N, listed = false): Promise<FsEntry> {
    const entry: FsEntry = { ...node.stat, name, path };
    if (node.stat.type === 'symlink') {
      try {
        entry.target = await this.#driver.readlink(node);
      } catch (e) {
        if (!listed || !(e instanceof PloopError)) throw e;
        entry.error = e.message;
      }
    }
    this.#nodes.set(entry, node);
    return entry;
  }

  /**
   * The chain of nodes from the root to `path`. Intermediate symlinks are always followed, the
   * last one only with `followLast`; `..` goes up the chain walked so far (as the kernel does).
   */
  async #walk(path: string, followLast: boolean, operation = 'stat'): Promise<Array<Step<N>>> {
    const root = await this.#driver.root();
    let steps: Array<Step<N>> = [{ name: '', node: root }];
    const todo = components(path);
    let followed = 0;
    while (todo.length > 0) {
      const name = todo.shift() as string;
      if (name === '..') {
        if (steps.length > 1) steps.pop();
        continue;
      }
      const dir = steps[steps.length - 1];
      if (dir.node.stat.type !== 'dir') throw notDir(operation, pathOf(steps), path);
      const node = await this.#driver.lookup(dir.node, name);
      if (!node) {
        throw new PloopError('ENOENT', `${operation} ${path}: no such file or directory (${pathOf(steps)} has no entry "${name}")`, { path, missing: name });
      }
      if (node.stat.type === 'symlink' && (todo.length > 0 || followLast)) {
        if (++followed > MAX_SYMLINKS) {
          throw new PloopError('ELOOP', `${operation} ${path}: more than ${MAX_SYMLINKS} symlinks followed (a symlink loop?)`, { path });
        }
        const target = await this.#driver.readlink(node);
        if (target.length === 0) throw new PloopError('ENOENT', `${operation} ${path}: the symlink ${pathOf([...steps, { name, node }])} has an empty target`, { path });
        if (target.startsWith('/')) steps = [steps[0]];
        todo.unshift(...components(target));
        continue;
      }
      steps.push({ name, node });
    }
    return steps;
  }
}

/** A listed name whose entry could not be read. */
function unreadable(path: string, name: string, inode: number, error: Error): FsEntry {
  return { type: 'other', mode: 0, size: 0, uid: 0, gid: 0, nlink: 0, inode, mtime: 0, atime: 0, ctime: 0, birthtime: null, rdev: 0, name, path, error: error.message };
}

function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

function pathOf<N>(steps: Array<Step<N>>): string {
  return steps.length === 1 ? '/' : steps.slice(1).map((s) => '/' + s.name).join('');
}

function notDir(operation: string, dirPath: string, path = dirPath): PloopError {
  return new PloopError('ENOTDIR', `${operation} ${path}: ${dirPath} is not a directory`, { path });
}

function checkFile(operation: string, path: string, node: FsNode): void {
  if (node.stat.type === 'dir') throw new PloopError('EISDIR', `${operation} ${path}: is a directory`, { path });
  if (node.stat.type !== 'file') throw new PloopError('EINVAL', `${operation} ${path}: not a regular file (it is a ${node.stat.type})`, { path });
}

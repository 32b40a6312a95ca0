// SPDX-License-Identifier: MIT
// ISO 9660 (ECMA-119), read-only, with Rock Ridge and Joliet. Names come from Rock Ridge when the
// image has it (POSIX names, modes, owners, times, symlinks), else from the Joliet tree (UTF-16),
// else from the plain identifiers with their ";1" version stripped. Without Rock Ridge the medium
// says nothing of modes: directories get 0o40555, files 0o100444 (it is read-only), owner 0.

import { PloopError } from '../../errors.js';
import { S_IFDIR, S_IFMT, S_IFREG, typeOfMode, type FsDriver, type FsNode, type FsStat, type VolumeReader } from '../types.js';
import { nameProblem, wellFormed } from '../names.js';
import { BlockCache } from '../volume.js';
import { FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_MULTI_EXTENT, parseRecord, readDescriptors, type DirRecord } from './records.js';
import { readRockRidge, suspSkip, type RockRidge } from './rockridge.js';

/** A directory larger than this is taken as corrupt (real ones hold far fewer entries). */
const MAX_DIR_BYTES = 64 << 20;
/** Extents of one multi-extent file (each up to 4 GiB). */
const MAX_EXTENTS = 4096;
const MAX_WARNINGS = 100;
/** Parsed directory entries kept for lookups. */
const DIR_CACHE_ENTRIES = 100_000;

interface Extent {
  block: number;
  bytes: number;
}

export interface IsoNode extends FsNode {
  readonly stat: FsStat;
  readonly extents: Extent[];
  /** A directory's own extent (its "." record), for cycle checks and listing. */
  readonly dirBlock: number;
  readonly dirBytes: number;
  readonly parent: IsoNode | null;
  readonly name: string;
  readonly target: string | null;
}

type Tree = 'rockridge' | 'joliet' | 'plain';

/** One parsed entry of a directory; nodes are made from it for each parent that lists it. */
interface Listed {
  name: string;
  record: DirRecord;
  extents: Extent[];
  rr: RockRidge | null;
  inode: number;
}

/** Open the ISO 9660 filesystem on `volume`. */
export async function openIso9660(volume: VolumeReader): Promise<FsDriver<IsoNode>> {
  const vds = await readDescriptors((o, l, w) => volume.read(o, l, w), volume.sizeBytes);
  const driver = new IsoDriver(volume, vds.blockBytes, vds.volumeBlocks, vds.label);
  await driver.init(vds.primaryRoot, vds.jolietRoot);
  return driver;
}

function pathOf(node: IsoNode): string {
  const names: string[] = [];
  for (let n: IsoNode | null = node; n?.parent; n = n.parent) names.push(n.name);
  return '/' + names.reverse().join('/');
}


class IsoDriver implements FsDriver<IsoNode> {
  readonly kind = 'iso9660' as const;
  readonly label: string | null;
  readonly uuid: string | null = null;
  readonly blockBytes: number;
  readonly warnings: string[] = [];
  readonly #volume: VolumeReader;
  readonly #blocks: BlockCache;
  readonly #volumeBlocks: number;
  #tree: Tree = 'plain';
  #skip = 0;
  #root!: IsoNode;
  readonly #warned = new Set<string>();
  readonly #listings = new Map<number, Listed[]>();
  #listedEntries = 0;

  constructor(volume: VolumeReader, blockBytes: number, volumeBlocks: number, label: string | null) {
    this.#volume = volume;
    this.blockBytes = blockBytes;
    this.#volumeBlocks = volumeBlocks;
    this.label = label;
    this.#blocks = new BlockCache(volume, blockBytes);
  }

  async init(primaryRoot: DirRecord, jolietRoot: DirRecord | null): Promise<void> {
    // Rock Ridge announces itself with SUSP's SP entry in the root's "." record.
    const first = await this.#block(primaryRoot.extentBlock, 'root directory');
    const dot = parseRecord(first, 0, primaryRoot.extentBlock * this.blockBytes, 'root directory');
    const skip = dot ? suspSkip(dot.systemUse) : null;
    let root = primaryRoot;
    if (skip !== null) {
      this.#tree = 'rockridge';
      this.#skip = skip;
    } else if (jolietRoot) {
      this.#tree = 'joliet';
      root = jolietRoot;
    }
    const rr = this.#tree === 'rockridge' && dot ? await this.#rockRidge(dot, '/') : null;
    this.#root = this.#node(null, '', root, [{ block: root.extentBlock, bytes: root.dataBytes }], rr, 1);
  }

  async root(): Promise<IsoNode> {
    return this.#root;
  }

  async lookup(dir: IsoNode, name: string): Promise<IsoNode | null> {
    const found = (await this.#listing(dir)).find((e) => e.name === name);
    return found ? this.#node(dir, found.name, found.record, found.extents, found.rr, found.inode) : null;
  }

  async list(dir: IsoNode): Promise<Array<{ name: string; node: IsoNode }>> {
    return (await this.#listing(dir)).map((e) => ({ name: e.name, node: this.#node(dir, e.name, e.record, e.extents, e.rr, e.inode) }));
  }

  /** The entries of `dir`, from the cache of parsed directories (a path walk reads each again) or read now. */
  async #listing(dir: IsoNode): Promise<Listed[]> {
    this.#checkCycle(dir, pathOf(dir));
    const cached = this.#listings.get(dir.dirBlock);
    if (cached) {
      this.#listings.delete(dir.dirBlock);
      this.#listings.set(dir.dirBlock, cached);
      return cached;
    }
    const listed = await this.#readDir(dir);
    this.#listings.set(dir.dirBlock, listed);
    this.#listedEntries += listed.length;
    while (this.#listedEntries > DIR_CACHE_ENTRIES && this.#listings.size > 1) {
      const [oldest, old] = this.#listings.entries().next().value as [number, Listed[]];
      this.#listings.delete(oldest);
      this.#listedEntries -= old.length;
    }
    return listed;
  }

  async #readDir(dir: IsoNode): Promise<Listed[]> {
    const path = pathOf(dir);
    const what = `directory ${path}`;
    if (dir.dirBytes > MAX_DIR_BYTES) {
      throw new PloopError('ECORRUPT', `${what}: its data length is ${dir.dirBytes} bytes, more than the ${MAX_DIR_BYTES} a directory may have here`, { structure: 'ISO 9660 directory record', path, value: dir.dirBytes });
    }
    const out: Listed[] = [];
    let pending: { records: DirRecord[] } | null = null;
    const blocks = Math.ceil(dir.dirBytes / this.blockBytes);
    for (let i = 0; i < blocks; i++) {
      const blockNo = dir.dirBlock + i;
      const bytes = await this.#block(blockNo, what);
      const end = Math.min(this.blockBytes, dir.dirBytes - i * this.blockBytes);
      for (let off = 0; off < end; ) {
        const rec = parseRecord(bytes.subarray(0, end), off, blockNo * this.blockBytes, what);
        if (rec === null) break;
        off += bytes[off];
        if (rec.name.length === 1 && rec.name[0] <= 1) continue; // "." and ".."
        if (rec.flags & FLAG_ASSOCIATED) continue;
        // A multi-extent file: every record but the last has the flag, all with one name.
        pending ??= { records: [] };
        pending.records.push(rec);
        if (pending.records.length > MAX_EXTENTS) {
          throw new PloopError('ECORRUPT', `${what}: a file of more than ${MAX_EXTENTS} extents (multi-extent flag on every record)`, { structure: 'ISO 9660 directory record', path });
        }
        if (rec.flags & FLAG_MULTI_EXTENT) continue;
        const records = pending.records;
        pending = null;
        const entry = await this.#entry(records, path);
        if (entry) out.push(entry);
      }
    }
    if (pending) {
      const entry = await this.#entry(pending.records, path);
      if (entry) out.push(entry);
    }
    return out;
  }

  async readlink(node: IsoNode): Promise<string> {
    if (node.target === null) throw new PloopError('EINVAL', `readlink ${pathOf(node)}: not a symlink`, { path: pathOf(node) });
    return node.target;
  }

  async read(node: IsoNode, offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(node.stat.size, offset + length);
    if (end <= offset) return new Uint8Array(0);
    const out = new Uint8Array(end - offset);
    const what = `file ${pathOf(node)}`;
    let pos = 0;
    const reads: Array<Promise<void>> = [];
    for (const x of node.extents) {
      const from = Math.max(offset, pos);
      const to = Math.min(end, pos + x.bytes);
      if (to > from) {
        const at = x.block * this.blockBytes + (from - pos);
        if (Math.ceil((at + (to - from)) / this.blockBytes) > this.#volumeBlocks) {
          throw new PloopError('ECORRUPT', `${what}: its extent at block ${x.block} of ${x.bytes} bytes runs past the volume's ${this.#volumeBlocks} blocks`, { structure: 'ISO 9660 directory record', block: x.block, bytes: x.bytes });
        }
        const into = from - offset;
        reads.push(this.#volume.read(at, to - from, what).then((b) => out.set(b, into)));
      }
      pos += x.bytes;
      if (pos >= end) break;
    }
    await Promise.all(reads);
    return out;
  }

  async #block(block: number, what: string): Promise<Uint8Array> {
    if (block >= this.#volumeBlocks) {
      throw new PloopError('ECORRUPT', `${what}: block ${block} lies past the volume's ${this.#volumeBlocks} blocks`, { structure: 'ISO 9660 directory record', block });
    }
    return this.#blocks.get(block, `${what}, block ${block}`);
  }

  #rockRidge(rec: DirRecord, what: string): Promise<RockRidge> {
    return readRockRidge(rec.systemUse, this.#skip, (b, w) => this.#block(b, w), this.blockBytes, what);
  }

  /** The entry for one file's records (several for a multi-extent file), or null when it is skipped. */
  async #entry(records: DirRecord[], dirPath: string): Promise<Listed | null> {
    const rec = records[records.length - 1];
    const first = records[0];
    let name: string;
    let rr: RockRidge | null = null;
    if (this.#tree === 'rockridge') {
      rr = await this.#rockRidge(first, `${dirPath === '/' ? '' : dirPath}/${plainName(first.name)}`);
      if (rr.relocated) return null; // shown where its CL entry is
      name = rr.name ?? plainName(first.name);
    } else if (this.#tree === 'joliet') {
      name = stripVersion(utf16be(first.name));
    } else {
      name = plainName(first.name);
    }
    const problem = nameProblem(name);
    if (problem !== null) {
      this.#warn(`directory ${dirPath}: the record at byte ${first.offsetBytes} of the volume is skipped: ${problem}`);
      return null;
    }
    let extents = records.map((r) => ({ block: r.extentBlock, bytes: r.dataBytes }));
    let dirRecord = rec;
    if (rr?.childBlock != null) {
      // A relocated deep directory: CL points at its real extent, whose "." record gives its size.
      const block = await this.#block(rr.childBlock, `directory ${dirPath}/${name} (relocated)`);
      const dot = parseRecord(block, 0, rr.childBlock * this.blockBytes, `directory ${dirPath}/${name}`);
      if (dot === null || !(dot.flags & FLAG_DIRECTORY)) {
        throw new PloopError('ECORRUPT', `directory ${dirPath}/${name}: its Rock Ridge CL entry points to block ${rr.childBlock}, which holds no directory`, { structure: 'Rock Ridge CL entry', block: rr.childBlock });
      }
      dirRecord = { ...dot, flags: dot.flags | FLAG_DIRECTORY };
      extents = [{ block: dot.extentBlock, bytes: dot.dataBytes }];
    }
    return { name, record: dirRecord, extents, rr, inode: first.offsetBytes };
  }

  #node(parent: IsoNode | null, name: string, rec: DirRecord, extents: Extent[], rr: RockRidge | null, inode: number): IsoNode {
    const isDir = (rec.flags & FLAG_DIRECTORY) !== 0;
    let mode = isDir ? S_IFDIR | 0o555 : S_IFREG | 0o444;
    // Rock Ridge's mode wins, unless its type contradicts the record (a directory must stay one to be walked).
    if (rr?.mode != null && ((rr.mode & S_IFMT) === S_IFDIR) === isDir) mode = rr.mode;
    if (rr?.symlink != null && !isDir) mode = (mode & ~S_IFMT) | 0o120000;
    const type = typeOfMode(mode);
    const target = type === 'symlink' ? (rr?.symlink ?? '') : null;
    const dataBytes = extents.reduce((sum, x) => sum + x.bytes, 0);
    const recorded = rec.recorded;
    return {
      stat: {
        type,
        mode,
        size: type === 'symlink' ? new TextEncoder().encode(target as string).length : dataBytes,
        uid: rr?.uid ?? 0,
        gid: rr?.gid ?? 0,
        nlink: rr?.nlink ?? (isDir ? 2 : 1),
        inode,
        mtime: rr?.mtime ?? recorded,
        atime: rr?.atime ?? rr?.mtime ?? recorded,
        ctime: rr?.ctime ?? rr?.mtime ?? recorded,
        birthtime: rr?.birthtime ?? null,
        rdev: type === 'other' ? (rr?.rdev ?? 0) : 0,
      },
      extents: type === 'file' ? extents : [],
      dirBlock: isDir ? extents[0].block : 0,
      dirBytes: isDir ? extents[0].bytes : 0,
      parent,
      name,
      target,
    };
  }

  /** A directory whose extent is an ancestor's would make the tree endless. */
  #checkCycle(dir: IsoNode, path: string): void {
    for (let up = dir.parent; up !== null; up = up.parent) {
      if (up.dirBlock === dir.dirBlock) {
        throw new PloopError('ECORRUPT', `directory ${path}: its extent (block ${dir.dirBlock}) is that of ${up.parent === null ? 'the root directory' : `its ancestor ${pathOf(up)}`} (a directory cycle)`, {
          structure: 'ISO 9660 directory record', path, block: dir.dirBlock,
        });
      }
    }
  }

  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(message);
  }
}

/** A plain ISO 9660 identifier: d-characters, ";1" version and a bare trailing "." dropped. */
function plainName(raw: Uint8Array): string {
  let s = '';
  for (const b of raw) s += String.fromCharCode(b);
  return stripVersion(s);
}

function stripVersion(s: string): string {
  const semi = s.lastIndexOf(';');
  if (semi >= 0 && /^\d*$/.test(s.slice(semi + 1))) s = s.slice(0, semi);
  return s.endsWith('.') && !s.slice(0, -1).includes('.') ? s.slice(0, -1) : s;
}

function utf16be(raw: Uint8Array): string {
  let s = '';
  for (let i = 0; i + 1 < raw.length; i += 2) s += String.fromCharCode((raw[i] << 8) | raw[i + 1]);
  return wellFormed(s);
}

// SPDX-License-Identifier: MIT
// FAT12/16/32 with VFAT long names, read-only, after Microsoft's "FAT: General Overview of
// On-Disk Format". FAT keeps no owners or modes: directories get 0o40755, files 0o100644
// (0o100444 with the read-only attribute), uid and gid 0. Times are stored in local time with
// no zone; they are taken as UTC, as mtools and Linux (mounted with tz=UTC) show them.
// Only the FAT windows and directory clusters an operation needs are read (through caches);
// file data is read around them, one read per run of contiguous clusters.

import { PloopError } from '../../errors.js';
import { u32 } from '../../inspect/bytes.js';
import { S_IFDIR, S_IFREG, type FsDriver, type FsNode, type FsStat, type VolumeReader } from '../types.js';
import { BlockCache } from '../volume.js';
import { parseBootSector, type FatGeometry, type FatKind } from './bpb.js';
import { ClusterChain } from './chain.js';
import { ATTR_DIRECTORY, ATTR_READ_ONLY, DirectoryParser, ENTRY_BYTES, type DirEntry } from './dirent.js';
import { FatTable, regionOf } from './table.js';

/** A directory holds at most 65 536 entries (its entry index is 16 bits; Linux and mtools agree). */
const MAX_DIR_BYTES = 65536 * ENTRY_BYTES;
/** Parsed directories kept for lookups (a path walk reads each directory on it again). */
const DIR_CACHE_ENTRIES = 200_000;
/** Warnings kept; past this one line says how many more there were. */
const MAX_WARNINGS = 100;

/** One directory's entries, indexed for lookups. */
interface Listing {
  entries: DirEntry[];
  byName: Map<string, DirEntry>;
  byUpperName: Map<string, DirEntry>;
  byShortName: Map<string, DirEntry>;
}

export interface FatNode extends FsNode {
  readonly stat: FsStat;
  /** First cluster (0 for the FAT12/16 root and for empty files). */
  readonly firstCluster: number;
  readonly isRoot: boolean;
  /** The directory this node was found in (null for the root): errors name paths, cycles are caught. */
  readonly parent: FatNode | null;
  readonly name: string;
  /** The node's cluster chain, once it was needed. */
  chain?: ClusterChain;
}

/** Open the FAT filesystem on `volume`. */
export async function openFat(volume: VolumeReader): Promise<FsDriver<FatNode>> {
  if (volume.sizeBytes < 512) {
    throw new PloopError('ECORRUPT', `FAT boot sector: the volume has ${volume.sizeBytes} bytes, too few for a boot sector (512)`, { volumeBytes: volume.sizeBytes });
  }
  const boot = await volume.read(0, 512, 'FAT boot sector');
  const geometry = parseBootSector(boot);
  const driver = new FatDriver(volume, geometry);
  await driver.checkFsInfo();
  return driver;
}

function pathOf(node: FatNode | null): string {
  if (node === null || node.isRoot) return '/';
  const names: string[] = [];
  for (let n: FatNode | null = node; n && !n.isRoot; n = n.parent) names.push(n.name);
  return '/' + names.reverse().join('/');
}

class FatDriver implements FsDriver<FatNode> {
  readonly kind: FatKind;
  readonly label: string | null;
  readonly uuid: string | null;
  readonly blockBytes: number;
  readonly warnings: string[] = [];
  readonly #volume: VolumeReader;
  readonly #geometry: FatGeometry;
  readonly #table: FatTable;
  /** Directory clusters (cluster n is block n - 2 of the data region). */
  readonly #clusters: BlockCache;
  readonly #root: FatNode;
  #rootRegion: Promise<Uint8Array> | null = null;
  readonly #warned = new Set<string>();
  readonly #listings = new Map<number, Listing>();
  #listedEntries = 0;
  #dropped = 0;

  constructor(volume: VolumeReader, geometry: FatGeometry) {
    this.#volume = volume;
    this.#geometry = geometry;
    this.kind = geometry.kind;
    this.label = geometry.label;
    this.uuid = geometry.serial;
    this.blockBytes = geometry.clusterBytes;
    this.#table = new FatTable(volume, geometry);
    const dataBytes = geometry.countClusters * geometry.clusterBytes;
    this.#clusters = new BlockCache(regionOf(volume, geometry.dataOffsetBytes, dataBytes, 'FAT directory cluster'), geometry.clusterBytes);
    if (geometry.sizeBytes > volume.sizeBytes) {
      this.#warn(`the FAT boot sector says the volume has ${geometry.sizeBytes} bytes, but it has only ${volume.sizeBytes}: files past its end cannot be read`);
    }
    this.#root = {
      stat: { type: 'dir', mode: S_IFDIR | 0o755, size: 0, uid: 0, gid: 0, nlink: 2, inode: 1, mtime: 0, atime: 0, ctime: 0, birthtime: null, rdev: 0 },
      firstCluster: geometry.kind === 'fat32' ? geometry.rootCluster : 0,
      isRoot: true,
      parent: null,
      name: '',
    };
  }

  /** FAT32's FSInfo sector only holds hints (free count, next free cluster): a bad one is a warning. */
  async checkFsInfo(): Promise<void> {
    const g = this.#geometry;
    if (g.kind !== 'fat32' || g.fsInfoSector === 0) return;
    const sector = await this.#volume.read(g.fsInfoSector * g.bytesPerSector, 512, 'FAT32 FSInfo sector');
    if (u32(sector, 0) !== 0x41615252 || u32(sector, 484) !== 0x61417272 || u32(sector, 508) !== 0xaa550000) {
      this.#warn(`the FAT32 FSInfo sector (sector ${g.fsInfoSector}) lacks its signatures; its free-cluster hints are ignored (they are not needed for reading)`);
    }
  }

  async root(): Promise<FatNode> {
    return this.#root;
  }

  async lookup(dir: FatNode, name: string): Promise<FatNode | null> {
    const listing = await this.#listing(dir);
    // As Windows and Linux: names match without regard to case, and the 8.3 alias matches too;
    // an exact match wins over a case-insensitive one.
    const upper = name.toUpperCase();
    const found = listing.byName.get(name) ?? listing.byUpperName.get(upper) ?? listing.byShortName.get(upper);
    return found ? this.#node(dir, found) : null;
  }

  async list(dir: FatNode): Promise<Array<{ name: string; node: FatNode }>> {
    const { entries } = await this.#listing(dir);
    return entries.map((e) => ({ name: e.name, node: this.#node(dir, e) }));
  }

  /** The entries of `dir`, from the cache of parsed directories or read now. */
  async #listing(dir: FatNode): Promise<Listing> {
    if (!dir.isRoot) this.#checkCycle(dir);
    // Keyed by first cluster: two entries naming one cluster name the same bytes.
    const key = dir.isRoot ? -1 : dir.firstCluster;
    const cached = this.#listings.get(key);
    if (cached) {
      this.#listings.delete(key);
      this.#listings.set(key, cached);
      return cached;
    }
    const entries = await this.#read(dir);
    const listing: Listing = { entries, byName: new Map(), byUpperName: new Map(), byShortName: new Map() };
    // The first of equal names wins, as a linear search would find it.
    for (const e of entries) {
      if (!listing.byName.has(e.name)) listing.byName.set(e.name, e);
      const upper = e.name.toUpperCase();
      if (!listing.byUpperName.has(upper)) listing.byUpperName.set(upper, e);
      if (!listing.byShortName.has(e.shortName)) listing.byShortName.set(e.shortName, e);
    }
    this.#listings.set(key, listing);
    this.#listedEntries += entries.length;
    while (this.#listedEntries > DIR_CACHE_ENTRIES && this.#listings.size > 1) {
      const [oldest, old] = this.#listings.entries().next().value as [number, Listing];
      this.#listings.delete(oldest);
      this.#listedEntries -= old.entries.length;
    }
    return listing;
  }

  async readlink(node: FatNode): Promise<string> {
    throw new PloopError('EINVAL', `readlink ${pathOf(node)}: FAT has no symlinks`, { path: pathOf(node) });
  }

  async read(node: FatNode, offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(node.stat.size, offset + length);
    if (end <= offset) return new Uint8Array(0);
    const what = `file ${pathOf(node)}`;
    const chain = this.#chainOf(node, what);
    const cb = this.#geometry.clusterBytes;
    const firstIndex = Math.floor(offset / cb);
    const endIndex = Math.ceil(end / cb);
    const known = await chain.ensure(endIndex);
    if (known < endIndex) throw this.#shortChain(what, node, known);
    // Reading up to the file's last cluster: its chain must end there.
    if (endIndex === chain.limit) await chain.ensureEndsAtLimit();
    const out = new Uint8Array(end - offset);
    const pieces = chain.runs(firstIndex, endIndex).map(async (run) => {
      const runStart = run.index * cb;
      const from = Math.max(offset, runStart);
      const to = Math.min(end, runStart + run.count * cb);
      const at = this.#geometry.dataOffsetBytes + (run.cluster - 2) * cb + (from - runStart);
      out.set(await this.#volume.read(at, to - from, `${what}, clusters ${run.cluster}..${run.cluster + run.count - 1}`), from - offset);
    });
    await Promise.all(pieces);
    return out;
  }

  #chainOf(node: FatNode, what: string): ClusterChain {
    if (node.chain) return node.chain;
    const cb = this.#geometry.clusterBytes;
    const first = node.firstCluster;
    if (!this.#table.isValidCluster(first)) {
      throw new PloopError('ECORRUPT', `${what}: its directory entry names first cluster ${first}, expected 2 to ${this.#table.maxCluster}${node.stat.type === 'file' ? ` for a file of ${node.stat.size} bytes` : ''}`, {
        structure: 'directory entry', field: 'first cluster', value: first, path: pathOf(node),
      });
    }
    let limit: number;
    let why: string;
    if (node.stat.type === 'dir') {
      limit = Math.ceil(MAX_DIR_BYTES / cb);
      why = `the most a directory may have (${MAX_DIR_BYTES / ENTRY_BYTES} entries)`;
    } else {
      limit = Math.ceil(node.stat.size / cb);
      why = `its size of ${node.stat.size} bytes needs`;
      if (limit > this.#geometry.countClusters) {
        throw new PloopError('ECORRUPT', `${what}: its size of ${node.stat.size} bytes needs ${limit} clusters, but the volume has only ${this.#geometry.countClusters}`, {
          structure: 'directory entry', field: 'file size', value: node.stat.size, path: pathOf(node),
        });
      }
    }
    node.chain = new ClusterChain(this.#table, first, what, limit, why);
    return node.chain;
  }

  #shortChain(what: string, node: FatNode, known: number): PloopError {
    const cb = this.#geometry.clusterBytes;
    return new PloopError('ECORRUPT', `${what}: the cluster chain ends after ${known} cluster(s) (${known * cb} bytes), but the file's size is ${node.stat.size} bytes`, {
      structure: 'cluster chain', clusters: known, sizeBytes: node.stat.size, path: pathOf(node),
    });
  }

  /** Every entry of directory `dir`, read up to its end mark. */
  async #read(dir: FatNode): Promise<DirEntry[]> {
    const parser = new DirectoryParser();
    const path = pathOf(dir);
    if (dir.isRoot && this.#geometry.kind !== 'fat32') {
      this.#rootRegion ??= this.#volume.read(this.#geometry.rootDirOffsetBytes, this.#geometry.rootDirEntries * ENTRY_BYTES, 'FAT root directory region');
      parser.push(await this.#rootRegion, this.#geometry.rootDirOffsetBytes);
    } else {
      const what = `directory ${path}`;
      const chain = this.#chainOf(dir, what);
      const cb = this.#geometry.clusterBytes;
      for (let index = 0; !parser.ended; index++) {
        if ((await chain.ensure(index + 1)) <= index) break;
        const cluster = chain.clusterAt(index);
        const bytes = await this.#clusters.get(cluster - 2, `${what}, cluster ${cluster}`);
        parser.push(bytes, this.#geometry.dataOffsetBytes + (cluster - 2) * cb);
      }
    }
    for (const s of parser.skipped) this.#warn(`directory ${path}: the entry at byte ${s.offsetBytes} of the volume is skipped: ${s.reason}`);
    return parser.entries;
  }

  /** A directory whose first cluster is its own or an ancestor's would make the tree endless. */
  #checkCycle(dir: FatNode): void {
    for (let up = dir.parent; up !== null; up = up.parent) {
      if (up.firstCluster === dir.firstCluster && !(up.isRoot && this.#geometry.kind !== 'fat32')) {
        throw new PloopError('ECORRUPT', `directory ${pathOf(dir)}: its first cluster ${dir.firstCluster} is that of ${up.isRoot ? 'the root directory' : `its ancestor ${pathOf(up)}`} (a directory cycle)`, {
          structure: 'directory entry', field: 'first cluster', value: dir.firstCluster, path: pathOf(dir),
        });
      }
    }
  }

  #node(parent: FatNode, e: DirEntry): FatNode {
    const isDir = (e.attributes & ATTR_DIRECTORY) !== 0;
    const mode = isDir ? S_IFDIR | 0o755 : S_IFREG | (e.attributes & ATTR_READ_ONLY ? 0o444 : 0o644);
    return {
      stat: {
        type: isDir ? 'dir' : 'file',
        mode,
        // FAT stores no size for a directory (Windows shows none; its chain is walked only when listed).
        size: isDir ? 0 : e.sizeBytes,
        uid: 0,
        gid: 0,
        nlink: isDir ? 2 : 1,
        inode: e.offsetBytes,
        mtime: e.mtime,
        atime: e.atime,
        ctime: e.mtime,
        birthtime: e.birthtime,
        rdev: 0,
      },
      firstCluster: e.firstCluster,
      isRoot: false,
      parent,
      name: e.name,
    };
  }

  /** Note a warning once (a directory is read again for each lookup in it). */
  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(message);
    else this.warnings[MAX_WARNINGS] = `… and ${++this.#dropped} more warnings`;
  }
}

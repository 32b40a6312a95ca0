// FAT images made by the oracles (dosfstools' mkfs.fat, mtools' mcopy), source trees to copy in,
// and the comparison of what our reader lists with the source tree and with mtools' own listing.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openFat } from '../../src/fs/fat/index.ts';
import { FileTree } from '../../src/fs/tree.ts';
import type { FsEntry, Filesystem } from '../../src/fs/types.ts';
import { volumeOf, type DiskReader } from '../../src/fs/volume.ts';

/** mtools reads a config and checks the geometry of a bare image; times are stored as UTC. */
export const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1', TZ: 'UTC', LC_ALL: 'C.UTF-8' };

export function run(program: string, args: string[], env: NodeJS.ProcessEnv = MTOOLS_ENV): string {
  return execFileSync(program, args, { env, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface MkfsOptions {
  fat: 12 | 16 | 32;
  sizeBytes: number;
  /** Logical sector size (-S). */
  sectorBytes?: number;
  /** Sectors per cluster (-s). */
  clusterSectors?: number;
  label?: string;
  /** Volume serial (-i), 8 hex digits. */
  serial?: string;
}

/** A fresh FAT filesystem in the file `path` (sparse), made by mkfs.fat. */
export function mkfsFat(path: string, o: MkfsOptions): string {
  run('truncate', ['-s', String(o.sizeBytes), path]);
  const args = ['-F', String(o.fat)];
  if (o.sectorBytes) args.push('-S', String(o.sectorBytes));
  if (o.clusterSectors) args.push('-s', String(o.clusterSectors));
  if (o.label) args.push('-n', o.label);
  args.push('-i', o.serial ?? '1234abcd', path);
  run('mkfs.fat', args);
  return path;
}

/** Copy every entry of directory `src` into the root of the FAT image (`mcopy -s -m`, mtimes kept). */
export function mcopyTree(image: string, src: string, extra: string[] = []): void {
  const names = readdirSync(src).map((n) => join(src, n));
  if (names.length > 0) run('mcopy', ['-s', '-m', ...extra, '-i', image, ...names, '::/']);
}

/** Every path mtools sees in the image (`mdir -/ -b`), directories without their trailing '/'. */
export function mdirPaths(image: string): string[] {
  return run('mdir', ['-/', '-b', '-i', image, '::/'])
    .split('\n')
    .filter((l) => l.startsWith('::/'))
    .map((l) => l.slice(2).replace(/\/$/, ''))
    .sort();
}

export { fileDisk } from '../helpers/fs-trees.ts';

/** Bytes in memory as a disk. */
export function memoryDisk(bytes: Uint8Array): DiskReader & { bytesRead: number } {
  const disk = {
    size: bytes.length,
    bytesRead: 0,
    async read(offset: number, length: number) {
      disk.bytesRead += length;
      return bytes.slice(offset, offset + length);
    },
  };
  return disk;
}

/** `base` with `patch` (offset → byte) laid over it, without copying the image: fuzz cases. */
export function overlayDisk(base: Uint8Array, patch: Map<number, number>): DiskReader {
  return {
    size: base.length,
    async read(offset, length) {
      const out = base.slice(offset, offset + length);
      for (const [at, value] of patch) if (at >= offset && at < offset + length) out[at - offset] = value;
      return out;
    },
  };
}

/** Our FAT reader on a whole disk. */
export async function openFatDisk(disk: DiskReader): Promise<FileTree> {
  const volume = volumeOf(disk, 0, disk.size);
  return new FileTree(await openFat(volume), volume);
}

export interface SeenEntry {
  type: FsEntry['type'];
  size: number;
  mtime: number;
  sha256?: string;
  entry?: FsEntry;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every entry below the root with its type, size, mtime and (files) the sha256 of its streamed bytes. */
export async function walkFs(fs: Filesystem, dir = '/', out = new Map<string, SeenEntry>()): Promise<Map<string, SeenEntry>> {
  for (const e of await fs.readdir(dir)) {
    const seen: SeenEntry = { type: e.type, size: e.size, mtime: e.mtime, entry: e };
    out.set(e.path, seen);
    if (e.type === 'dir') await walkFs(fs, e.path, out);
    else if (e.type === 'file') {
      const h = createHash('sha256');
      for await (const chunk of fs.stream(e.path, { chunkBytes: 100_000 })) h.update(chunk);
      seen.sha256 = h.digest('hex');
    }
  }
  return out;
}

/** The same for a directory on the host. */
export function walkSource(dir: string, prefix = '', out = new Map<string, SeenEntry>()): Map<string, SeenEntry> {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = lstatSync(full);
    const path = `${prefix}/${name}`;
    if (st.isDirectory()) {
      out.set(path, { type: 'dir', size: 0, mtime: st.mtimeMs / 1000 });
      walkSource(full, path, out);
    } else {
      out.set(path, { type: 'file', size: st.size, mtime: st.mtimeMs / 1000, sha256: sha256(readFileSync(full)) });
    }
  }
  return out;
}

/**
 * What our reader lists equals the source tree: the same paths, types and sizes, the same bytes,
 * and file mtimes within FAT's 2-second steps.
 */
export function assertSameTree(seen: Map<string, SeenEntry>, source: Map<string, SeenEntry>, what: string): void {
  assert.deepEqual([...seen.keys()].sort(), [...source.keys()].sort(), `${what}: paths`);
  for (const [path, want] of source) {
    const got = seen.get(path) as SeenEntry;
    assert.equal(got.type, want.type, `${what}: type of ${path}`);
    if (want.type !== 'file') continue;
    assert.equal(got.size, want.size, `${what}: size of ${path}`);
    assert.equal(got.sha256, want.sha256, `${what}: bytes of ${path}`);
    const late = want.mtime - got.mtime;
    assert.ok(late >= 0 && late < 2, `${what}: mtime of ${path}: ${got.mtime} for ${want.mtime} (FAT keeps 2-second steps)`);
  }
}

/** Where things are in an image, from its BPB (read independently of the reader under test). */
export class Layout {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly bits: 12 | 16 | 32;
  constructor(bytes: Uint8Array, bits: 12 | 16 | 32) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bits = bits;
  }
  get bytesPerSector() { return this.view.getUint16(11, true); }
  get sectorsPerCluster() { return this.bytes[13]; }
  get reserved() { return this.view.getUint16(14, true); }
  get fats() { return this.bytes[16]; }
  get rootEntries() { return this.view.getUint16(17, true); }
  get fatSectors() { return this.view.getUint16(22, true) || this.view.getUint32(36, true); }
  get clusterBytes() { return this.bytesPerSector * this.sectorsPerCluster; }
  get dataOffset() {
    return (this.reserved + this.fats * this.fatSectors) * this.bytesPerSector + Math.ceil((this.rootEntries * 32) / this.bytesPerSector) * this.bytesPerSector;
  }
  clusterOffset(c: number) { return this.dataOffset + (c - 2) * this.clusterBytes; }
  /** Set the FAT entry of cluster `c` in every FAT. */
  setFat(c: number, value: number) {
    for (let f = 0; f < this.fats; f++) {
      const base = (this.reserved + f * this.fatSectors) * this.bytesPerSector;
      if (this.bits === 16) this.view.setUint16(base + 2 * c, value, true);
      else if (this.bits === 32) this.view.setUint32(base + 4 * c, value, true);
      else {
        const at = base + c + (c >> 1);
        const pair = this.view.getUint16(at, true);
        this.view.setUint16(at, c & 1 ? (pair & 0x000f) | (value << 4) : (pair & 0xf000) | value, true);
      }
    }
  }
  getFat(c: number): number {
    const base = this.reserved * this.bytesPerSector;
    if (this.bits === 16) return this.view.getUint16(base + 2 * c, true);
    if (this.bits === 32) return this.view.getUint32(base + 4 * c, true) & 0x0fffffff;
    const pair = this.view.getUint16(base + c + (c >> 1), true);
    return c & 1 ? pair >> 4 : pair & 0xfff;
  }
  /** Byte offset of the short entry with this 11-byte name (it must be unique). */
  entry(name83: string): number {
    const needle = Buffer.from(name83, 'latin1');
    const buf = Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    const at = buf.indexOf(needle);
    assert.ok(at >= 0 && buf.indexOf(needle, at + 1) < 0, `one entry named ${name83}`);
    return at;
  }
  firstCluster(entryAt: number) { return (this.view.getUint16(entryAt + 20, true) << 16) | this.view.getUint16(entryAt + 26, true); }
  setFirstCluster(entryAt: number, c: number) {
    this.view.setUint16(entryAt + 26, c & 0xffff, true);
    if (this.bits === 32) this.view.setUint16(entryAt + 20, c >>> 16, true);
  }
  /** The clusters of the chain from `c`. */
  chain(c: number): number[] {
    const out = [c];
    for (let n = this.getFat(c); n >= 2 && n < (this.bits === 12 ? 0xff8 : this.bits === 16 ? 0xfff8 : 0x0ffffff8); n = this.getFat(n)) out.push(n);
    return out;
  }
}


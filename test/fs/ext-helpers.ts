// Shared by the ext reader's tests: an awkward source tree, filesystems made from it by
// e2fsprogs (mkfs.ext4 -d, e2fsck -fyD, debugfs), a DiskReader over an image file that counts
// what it reads, and the comparison of a whole filesystem against `find -printf` on the source.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lutimesSync, mkdirSync, openSync, readSync, symlinkSync, utimesSync, linkSync, writeFileSync, writeSync, chmodSync, chownSync, lchownSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../helpers/prng.ts';
import { volumeOf } from '../../src/fs/volume.ts';
import { openExt, type ExtNode } from '../../src/fs/ext/index.ts';
import { FileTree } from '../../src/fs/tree.ts';
import type { FsEntry, VolumeReader } from '../../src/fs/types.ts';

export { fileDisk, type CountingDisk } from '../helpers/fs-trees.ts';
import { fileDisk, type CountingDisk } from '../helpers/fs-trees.ts';

export const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });

export interface OpenedExt {
  tree: FileTree<ExtNode>;
  disk: CountingDisk;
  volume: VolumeReader;
}

export async function openImage(path: string): Promise<OpenedExt> {
  const disk = fileDisk(path);
  const volume = volumeOf(disk, 0, disk.size);
  const driver = await openExt(volume);
  return { tree: new FileTree(driver, volume), disk, volume };
}

const GiB = 2 ** 30;
/** Files of the source tree larger than this are compared in windows, not whole (a sparse 5 GiB file). */
const WHOLE_READ_LIMIT = 64 << 20;

/** Where the big sparse file has bytes (the rest is a hole). */
export const BIG_SPARSE_OFFSETS = [0, 2 ** 32 - 3, 5 * GiB - 10];

/** A source tree with what makes a reader stumble. */
export function makeSourceTree(root: string): void {
  const rng = new Prng(0xe4f5);
  mkdirSync(root, { recursive: true });
  const file = (rel: string | Buffer, bytes: Uint8Array | string) => writeFileSync(typeof rel === 'string' ? join(root, rel) : Buffer.concat([Buffer.from(root + '/'), rel]), bytes);
  // Sizes around the inline limit (60 bytes in i_block) and block edges.
  mkdirSync(join(root, 'sizes'));
  for (const n of [0, 1, 59, 60, 61, 150, 1000, 4095, 4096, 4097, 65537, 1_500_000]) file(`sizes/f${n}`, rng.bytes(n));
  // Names: 255 bytes of ASCII, 255 bytes of UTF-8, emoji, spaces and a newline, a byte that is not UTF-8.
  mkdirSync(join(root, 'names'));
  file(`names/${'L'.repeat(255)}`, 'long');
  file(`names/${'é'.repeat(127)}x`, 'utf8 long');
  file('names/日本語 🐧 ünïcødé', 'utf8');
  file('names/with space\nand newline', 'odd');
  file(Buffer.from([...Buffer.from('names/latin1-'), 0xe9, 0x74, 0xe9]), 'not utf-8');
  // A directory of 1200 entries: e2fsck -fyD indexes it (htree).
  mkdirSync(join(root, 'many'));
  for (let i = 0; i < 1200; i++) file(`many/entry-${i.toString().padStart(5, '0')}-${'m'.repeat(i % 50)}`, `${i}`);
  // 100 levels deep.
  let deep = join(root, 'deep');
  for (let i = 0; i < 100; i++) deep = join(deep, 'n');
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'bottom'), 'the bottom');
  // Symlinks: fast (< 60 bytes), slow, long (1000 bytes: mkfs takes no target of a block or more), to a directory, dangling, absolute.
  mkdirSync(join(root, 'links'));
  symlinkSync('../sizes/f1', join(root, 'links/fast'));
  symlinkSync(`../sizes/${'/.'.repeat(40)}/f4096`, join(root, 'links/slow'));
  symlinkSync('x'.repeat(1000), join(root, 'links/long-dangling'));
  symlinkSync('../deep', join(root, 'links/to-dir'));
  symlinkSync('/sizes/f60', join(root, 'links/absolute'));
  symlinkSync('nowhere', join(root, 'links/dangling'));
  // Hard links across directories.
  file('links/hard-a', 'three names, one inode');
  linkSync(join(root, 'links/hard-a'), join(root, 'links/hard-b'));
  linkSync(join(root, 'links/hard-a'), join(root, 'sizes/hard-c'));
  // Sparse: a 5 GiB file with bytes at three places, and one of 400 data runs between holes
  // (one extent each: an extent tree of depth 1 with 4 KiB blocks, 2 with 1 KiB).
  mkdirSync(join(root, 'sparse'));
  const big = openSync(join(root, 'sparse/five-gib'), 'w');
  for (const at of BIG_SPARSE_OFFSETS) writeSync(big, rng.bytes(10), 0, 10, at);
  closeSync(big);
  const runs = openSync(join(root, 'sparse/runs'), 'w');
  for (let i = 0; i < 400; i++) writeSync(runs, rng.bytes(4096), 0, 4096, i * 8192);
  closeSync(runs);
  // Modes, owners, times.
  mkdirSync(join(root, 'modes'));
  const modes: Array<[string, number]> = [['setuid', 0o4755], ['none', 0o000], ['all', 0o7777], ['private', 0o600]];
  for (const [name, mode] of modes) {
    file(`modes/${name}`, name);
    chmodSync(join(root, `modes/${name}`), mode);
  }
  mkdirSync(join(root, 'modes/sticky'));
  chmodSync(join(root, 'modes/sticky'), 0o1777);
  mkdirSync(join(root, 'modes/setgid-dir'));
  chmodSync(join(root, 'modes/setgid-dir'), 0o2750);
  mkdirSync(join(root, 'modes/empty-dir'));
  file('modes/owned', 'owned');
  chownSync(join(root, 'modes/owned'), 1000, 1000);
  file('modes/owned-high', 'uid above 65535');
  chownSync(join(root, 'modes/owned-high'), 70000, 70001);
  lchownSync(join(root, 'links/fast'), 1234, 5678);
  mkdirSync(join(root, 'times'));
  for (const [name, t] of [['epoch', 0], ['before-1970', -1e9], ['y2001', 1e9], ['y2038', 2 ** 31 - 1]] as const) {
    file(`times/${name}`, name);
    utimesSync(join(root, `times/${name}`), t, t);
  }
  lutimesSync(join(root, 'links/fast'), 123456789, 123456789);
  // Special files.
  mkdirSync(join(root, 'special'));
  run('mknod', [join(root, 'special/fifo'), 'p']);
  run('mknod', [join(root, 'special/tty'), 'c', '4', '5']);
  run('mknod', [join(root, 'special/disk'), 'b', '8', '17']);
  run('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(root, 'special/socket')]);
  utimesSync(join(root, 'sizes'), 1_600_000_000, 1_600_000_000);
}

/** mkfs.ext4 -d SRC with `options`, then e2fsck -fyD (indexes big directories); returns the image path. */
export function makeImage(path: string, src: string, options: string[], sizeMiB: number): string {
  run('mkfs.ext4', ['-q', '-F', '-E', 'root_owner=0:0', ...options, '-d', src, path, `${sizeMiB}M`]);
  e2fsck(path, ['-fyD']);
  return path;
}

/** e2fsck, where exit code 1 (errors corrected) counts as success. */
export function e2fsck(path: string, args: string[]): void {
  try {
    execFileSync('e2fsck', [...args, path], { stdio: 'ignore' });
  } catch (e) {
    if ((e as { status?: number }).status !== 1) throw e;
  }
}

export interface SourceEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtime: number;
  nlink: number;
  target: string;
  inode: number;
  /** The path's bytes below the source root, as find printed them. */
  rawPath: Buffer;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
/** Names as the reader decodes them: UTF-8, else Latin-1. */
export function decodeName(b: Uint8Array): string {
  try {
    return decoder.decode(b);
  } catch {
    return String.fromCharCode(...b);
  }
}

/** Every entry below `root` as find -printf sees it (NUL-separated: names may hold newlines). */
export function findTree(root: string): SourceEntry[] {
  const out = execFileSync('find', [root, '-mindepth', '1', '-printf', '%P\\0%y\\0%m\\0%s\\0%U\\0%G\\0%T@\\0%n\\0%l\\0%i\\0'], { maxBuffer: 64 << 20 });
  const fields: Buffer[] = [];
  for (let at = 0; at < out.length;) {
    const end = out.indexOf(0, at);
    fields.push(out.subarray(at, end));
    at = end + 1;
  }
  const entries: SourceEntry[] = [];
  for (let i = 0; i + 10 <= fields.length; i += 10) {
    const f = fields.slice(i, i + 10);
    const y = f[1].toString();
    const type = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : 'other';
    const typeBits = { f: 0o100000, d: 0o040000, l: 0o120000, p: 0o010000, c: 0o020000, b: 0o060000, s: 0o140000 }[y] ?? 0;
    entries.push({
      path: '/' + f[0].toString('latin1').split('/').map((c) => decodeName(Buffer.from(c, 'latin1'))).join('/'),
      type, mode: typeBits | parseInt(f[2].toString(), 8), size: Number(f[3].toString()), uid: Number(f[4].toString()), gid: Number(f[5].toString()),
      mtime: Math.floor(Number(f[6].toString())), nlink: Number(f[7].toString()), target: decodeName(f[8]), inode: Number(f[9].toString()), rawPath: f[0],
    });
  }
  return entries;
}

/** Every entry of the filesystem below `/` (lost+found left out), walked with readdir, with the inode numbers seen on the way. */
export async function walkAll(tree: FileTree<ExtNode>): Promise<FsEntry[]> {
  const all: FsEntry[] = [];
  const seenDirs = new Set<number>();
  const walk = async (dir: string) => {
    for (const e of await tree.readdir(dir)) {
      if (e.path === '/lost+found') continue;
      all.push(e);
      if (e.type === 'dir') {
        assert.ok(!seenDirs.has(e.inode), `directory cycle at ${e.path}`);
        seenDirs.add(e.inode);
        await walk(e.path);
      }
    }
  };
  await walk('/');
  return all;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function readWhole(tree: FileTree<ExtNode>, entry: FsEntry): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of tree.stream(entry)) parts.push(chunk);
  return Buffer.concat(parts);
}

/** A window of the source file. */
function sourceBytes(path: Buffer, offset: number, length: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const b = new Uint8Array(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

export interface CompareOptions {
  /** Compare mtimes (not for filesystems that cannot keep them, e.g. 128-byte inodes past 2038). */
  mtimes?: boolean;
}

/** Every entry of the filesystem matches the source tree: type, mode, size, owner, mtime, links, target, hard-link groups, bytes. */
export async function compareWithSource(tree: FileTree<ExtNode>, src: string, what: string, options: CompareOptions = {}): Promise<number> {
  const expected = findTree(src);
  const got = await walkAll(tree);
  const byPath = new Map(got.map((e) => [e.path, e]));
  assert.deepEqual([...byPath.keys()].sort(), expected.map((e) => e.path).sort(), `${what}: the same paths`);
  const inodeOf = new Map<number, number>();
  for (const want of expected) {
    const e = byPath.get(want.path)!;
    const at = `${what}: ${JSON.stringify(want.path)}`;
    assert.equal(e.type, want.type, `${at}: type`);
    // A path lookup (through the htree index where there is one) finds the inode the listing found.
    assert.equal((await tree.lstat(want.path)).inode, e.inode, `${at}: lookup finds the listed inode`);
    assert.equal(e.mode, want.mode, `${at}: mode 0o${e.mode.toString(8)} vs 0o${want.mode.toString(8)}`);
    assert.equal(e.uid, want.uid, `${at}: uid`);
    assert.equal(e.gid, want.gid, `${at}: gid`);
    assert.equal(e.nlink, want.nlink, `${at}: nlink`);
    if (options.mtimes !== false) assert.equal(Math.floor(e.mtime), want.mtime, `${at}: mtime`);
    if (want.type !== 'dir') assert.equal(e.size, want.size, `${at}: size`);
    if (want.type === 'symlink') assert.equal(e.target, want.target, `${at}: target`);
    // Hard links: one source inode, one filesystem inode, both ways.
    const mapped = inodeOf.get(want.inode);
    if (mapped === undefined) inodeOf.set(want.inode, e.inode);
    else assert.equal(e.inode, mapped, `${at}: hard link to the same inode`);
    if (want.type === 'file') {
      const path = Buffer.concat([Buffer.from(src + '/'), want.rawPath]);
      if (want.size <= WHOLE_READ_LIMIT) {
        assert.equal(sha256(await readWhole(tree, e)), sha256(sourceBytes(path, 0, want.size)), `${at}: sha256 of the bytes`);
      } else {
        for (const offset of [...BIG_SPARSE_OFFSETS, 2 ** 32 - 65536, want.size - 65536, GiB + 12345]) {
          assert.deepEqual(await tree.read(e, offset, 65536), sourceBytes(path, offset, Math.min(65536, want.size - offset)), `${at}: bytes at ${offset}`);
        }
      }
    }
  }
  assert.equal(new Set(inodeOf.values()).size, inodeOf.size, `${what}: distinct source inodes stay distinct`);
  return expected.length;
}

export { GiB };

// Source trees and disks for the file browser's tests, made by the real tools only: a tree on
// the local filesystem, `mkfs.ext4 -d` / `mkfs.fat` + `mcopy` to turn it into a filesystem,
// `sfdisk` for the partition table, `find -printf` and sha256 to describe what must come back.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, readFileSync, symlinkSync, utimesSync, writeFileSync, writeSync, chmodSync, lutimesSync, ftruncateSync } from 'node:fs';
import { preadFully } from '../../src/stores/node-sync-io.ts';
import type { DiskReader } from '../../src/fs/volume.ts';
import { join } from 'node:path';

export function sh(command: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, maxBuffer: 256 << 20 });
}

/**
 * An awkward tree: long and UTF-8 names, a directory of `bigDirEntries` files, deep nesting,
 * fast and slow symlinks, hard links, a sparse file, odd modes and old mtimes.
 */
export function makeAwkwardTree(root: string, options: { bigDirEntries?: number; depth?: number } = {}): void {
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'hello.txt'), 'hello, world\n');
  mkdirSync(join(root, 'etc/nginx'), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'ct101\n');
  writeFileSync(join(root, 'etc/nginx/nginx.conf'), 'worker_processes 1;\n'.repeat(500));
  writeFileSync(join(root, 'empty'), '');
  // Bytes that are not text, across several blocks.
  const binary = Buffer.alloc(300_000);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 2654435761) >>> 24;
  writeFileSync(join(root, 'binary.bin'), binary);
  writeFileSync(join(root, 'ünïcødé – 日本語 🚀.txt'), 'utf-8 name\n');
  writeFileSync(join(root, 'n'.repeat(255)), 'longest name\n');
  mkdirSync(join(root, 'big'));
  for (let i = 0; i < (options.bigDirEntries ?? 3000); i++) writeFileSync(join(root, 'big', `file-${String(i).padStart(5, '0')}`), `${i}\n`);
  let deep = join(root, 'deep');
  for (let i = 0; i < (options.depth ?? 40); i++) deep = join(deep, `d${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'bottom.txt'), 'bottom\n');
  symlinkSync('hello.txt', join(root, 'fast-link'));
  symlinkSync('/' + 'x'.repeat(40) + '/' + 'y'.repeat(120), join(root, 'slow-link'));
  symlinkSync('etc', join(root, 'etc-link'));
  symlinkSync('missing', join(root, 'dangling'));
  linkSync(join(root, 'hello.txt'), join(root, 'hard-link'));
  // Sparse: 8 MiB with bytes at its start, middle and end.
  const fd = openSync(join(root, 'sparse.img'), 'w');
  writeSync(fd, Buffer.from('start'), 0, 5, 0);
  writeSync(fd, Buffer.from('middle'), 0, 6, 4 << 20);
  writeSync(fd, Buffer.from('end'), 0, 3, (8 << 20) - 3);
  ftruncateSync(fd, 8 << 20);
  closeSync(fd);
  writeFileSync(join(root, 'setuid'), '#!/bin/sh\n');
  chmodSync(join(root, 'setuid'), 0o4755);
  writeFileSync(join(root, 'private'), 'secret\n');
  chmodSync(join(root, 'private'), 0o600);
  mkdirSync(join(root, 'sticky'));
  chmodSync(join(root, 'sticky'), 0o1777);
  utimesSync(join(root, 'hello.txt'), 86400 * 365, 86400 * 365);
  utimesSync(join(root, 'etc/hostname'), 1_000_000_000, 1_000_000_000);
  lutimesSync(join(root, 'fast-link'), 1_500_000_000, 1_500_000_000);
}

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  size: number;
  mtime: number;
  target?: string;
  inode: number;
  nlink: number;
}

/** Every entry under `root` as find sees it, keyed by absolute path from `root` ('/etc/hostname'). */
export function describeTree(root: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const lines = sh('find', [root, '-mindepth', '1', '-printf', '%P\\0%y\\0%m\\0%s\\0%T@\\0%l\\0%i\\0%n\\0\\n']).split('\n').filter(Boolean);
  for (const line of lines) {
    const [path, y, mode, size, mtime, target, inode, nlink] = line.split('\0');
    const type = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : 'other';
    const e: TreeEntry = { path: '/' + path, type, mode: Number.parseInt(mode, 8), size: Number(size), mtime: Math.floor(Number(mtime)), inode: Number(inode), nlink: Number(nlink) };
    if (type === 'symlink') e.target = target;
    out.set(e.path, e);
  }
  return out;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function fileSha256(path: string): string {
  return sha256(readFileSync(path));
}

export interface PartitionSpec {
  /** What goes in: an ext4 made from `tree`, a FAT32 made from `tree`, or nothing. */
  fs: 'ext4' | 'fat32' | 'none';
  tree?: string;
  sizeMiB: number;
  label?: string;
}

/**
 * A raw disk with a partition table and the filesystems `partitions` describe, the first at
 * 1 MiB. Returns the disk's path; partition N is `partitions[N - 1]`.
 */
export function makePartitionedDisk(dir: string, scheme: 'gpt' | 'mbr', partitions: PartitionSpec[]): string {
  const disk = join(dir, `disk-${scheme}.raw`);
  const totalMiB = 2 + partitions.reduce((n, p) => n + p.sizeMiB, 0);
  sh('truncate', ['-s', `${totalMiB}M`, disk]);
  const type = (p: PartitionSpec) => (scheme === 'gpt' ? (p.fs === 'fat32' ? 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7' : '0FC63DAF-8483-4772-8E79-3D69D8477DE4') : p.fs === 'fat32' ? 'c' : '83');
  let startMiB = 1;
  const table = [`label: ${scheme === 'gpt' ? 'gpt' : 'dos'}`];
  for (const p of partitions) {
    table.push(`start=${startMiB * 2048}, size=${p.sizeMiB * 2048}, type=${type(p)}`);
    startMiB += p.sizeMiB;
  }
  execFileSync('sfdisk', ['--quiet', disk], { input: table.join('\n') + '\n' });
  startMiB = 1;
  for (const p of partitions) {
    const part = join(dir, `part-${startMiB}.img`);
    if (p.fs === 'ext4') {
      sh('mkfs.ext4', ['-q', '-F', '-d', p.tree as string, '-L', p.label ?? 'ctroot', '-E', 'root_owner=0:0', part, `${p.sizeMiB}M`]);
    } else if (p.fs === 'fat32') {
      sh('truncate', ['-s', `${p.sizeMiB}M`, part]);
      sh('mkfs.fat', ['-F', '32', '-n', p.label ?? 'BOOT', part]);
      if (p.tree) sh('mcopy', ['-s', '-m', '-i', part, ...sh('ls', ['-A', p.tree]).split('\n').filter(Boolean).map((n) => join(p.tree as string, n)), '::/'], { MTOOLS_SKIP_CHECK: '1' });
    }
    if (p.fs !== 'none') sh('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', `seek=${startMiB}`, 'conv=notrunc,sparse', 'status=none']);
    startMiB += p.sizeMiB;
  }
  return disk;
}

/** A DiskReader over a file (a raw disk or one filesystem), counting the reads and bytes asked for. */
export interface CountingDisk extends DiskReader {
  reads: number;
  bytesRead: number;
  close(): void;
}

export function fileDisk(path: string): CountingDisk {
  const fd = openSync(path, 'r');
  const disk: CountingDisk = {
    size: fstatSync(fd).size,
    reads: 0,
    bytesRead: 0,
    async read(offset, length) {
      disk.reads++;
      disk.bytesRead += length;
      const out = new Uint8Array(length);
      preadFully(fd, out, 0, length, offset);
      return out;
    },
    close: () => closeSync(fd),
  };
  return disk;
}

// What mkfs -d cannot make, set up with debugfs and by patching bytes where debugfs recomputes
// checksums: a journal that needs recovery, checksum mismatches in each structure (warnings,
// reading goes on), unwritten extents over stale bytes, times past 2038 with nanoseconds,
// encrypted, casefolded and compressed inodes (ENOTSUP), hostile fields (ECORRUPT naming what is
// wrong), a directory cycle and a symlink loop; and the whole chain from a ploop image of a GPT
// disk through openFilesystem.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, openSync, writeFileSync, writeSync, closeSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { makeTempDir } from '../helpers/tmp.ts';
import { makeImage, openImage, run } from './ext-helpers.ts';
import { PloopImage } from '../../src/engine/image.ts';
import { NodeFileStore } from '../../src/stores/node-fs.ts';
import { openFilesystem } from '../../src/fs/open.ts';
import { PloopError } from '../../src/errors.ts';

let dir: string;
let cleanup: () => Promise<void>;
let src: string;
let base: string;
let n = 0;

before(async () => {
  ({ dir, cleanup } = await makeTempDir('ploop-ext-special-'));
  src = join(dir, 'src');
  mkdirSync(join(src, 'd/sub'), { recursive: true });
  writeFileSync(join(src, 'd/small'), 'small file');
  writeFileSync(join(src, 'd/block'), Buffer.alloc(5000, 7));
  mkdirSync(join(src, 'many'));
  for (let i = 0; i < 600; i++) writeFileSync(join(src, 'many', `entry-${i}-${'x'.repeat(i % 30)}`), `${i}`);
  const runs = openSync(join(src, 'runs'), 'w');
  for (let i = 0; i < 20; i++) writeSync(runs, Buffer.alloc(4096, i + 1), 0, 4096, i * 8192);
  closeSync(runs);
  symlinkSync('y'.repeat(300), join(src, 'slow-link'));
  base = makeImage(join(dir, 'base.img'), src, ['-b', '4096'], 32);
});
after(() => cleanup());

/** A fresh copy of the base image (or of `from`). */
function copy(from = base): string {
  const p = join(dir, `c${n++}.img`);
  copyFileSync(from, p);
  return p;
}
const debugfs = (image: string, ...commands: string[]) => { for (const c of commands) run('debugfs', ['-w', '-R', c, image]); };
function patch(image: string, offset: number, bytes: number[]): void {
  const fd = openSync(image, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}
/** Byte offset of inode `path` in the image (debugfs imap). */
function inodeOffset(image: string, path: string): number {
  const m = /located at block (\d+), offset (0x[0-9a-f]+)/.exec(run('debugfs', ['-R', `imap ${path}`, image]))!;
  return Number(m[1]) * 4096 + Number(m[2]);
}
/** Physical block of logical block 0 of `path` (debugfs bmap). */
const firstBlock = (image: string, path: string) => Number(run('debugfs', ['-R', `bmap ${path} 0`, image]).trim());

async function withTree<T>(image: string, fn: (t: Awaited<ReturnType<typeof openImage>>['tree']) => Promise<T>): Promise<T> {
  const { tree, disk } = await openImage(image);
  try {
    return await fn(tree);
  } finally {
    disk.close();
  }
}
async function readAll(image: string): Promise<string[]> {
  return withTree(image, async (tree) => {
    assert.equal(new TextDecoder().decode(await tree.read('/d/small', 0, 100)), 'small file');
    assert.deepEqual(await tree.read('/runs', 19 * 8192, 4096), new Uint8Array(4096).fill(20));
    assert.equal((await tree.readdir('/many')).length, 600);
    assert.equal((await tree.lstat('/many/entry-599-' + 'x'.repeat(29))).type, 'file');
    return [...tree.warnings];
  });
}

test('a journal that needs recovery: read as it is, with a warning', async () => {
  const image = copy();
  debugfs(image, 'feature needs_recovery');
  const warnings = await readAll(image);
  assert.ok(warnings.some((w) => /journal needs recovery/.test(w) && /without replaying/.test(w)), warnings.join('\n'));
});

test('checksum mismatches in the superblock, a group descriptor, an inode, a directory block, an htree node and an extent block are warnings naming each', async () => {
  const image = copy();
  assert.deepEqual(await readAll(image), []);
  // Find every place first: debugfs itself stops trusting a filesystem with a bad superblock checksum.
  const ino = Number(/Inode: (\d+)/.exec(run('debugfs', ['-R', 'stat /d/small', image]))![1]);
  const inodeAt = inodeOffset(image, '/d/small');
  const dirBlock = firstBlock(image, '/d');
  const manyIno = Number(/Inode: (\d+)/.exec(run('debugfs', ['-R', 'stat /many', image]))![1]);
  const manyRoot = firstBlock(image, '/many');
  const extentBlock = Number(/^\s*0\/\s*1\s+1\/\s*1\s+\d+\s*-\s*\d+\s+(\d+)/m.exec(run('debugfs', ['-R', 'ex /runs', image]))![1]);
  patch(image, 1024 + 0x34, [0x77]); // s_mnt_count
  patch(image, 4096 + 0x0e, [0x01]); // group 0: bg_free_inodes_count
  patch(image, inodeAt + 0x08, [0x55]); // i_atime
  patch(image, dirBlock * 4096 + 4096 - 100, [0x99]); // slack after the last entry
  patch(image, manyRoot * 4096 + 0x16, [0x01]); // the padding after the ".." name
  patch(image, extentBlock * 4096 + 4000, [0x66]); // past the entries, before the tail
  const warnings = await readAll(image);
  const expect = ['superblock', 'group descriptor 0', `inode ${ino}`, `directory block 0 of inode`, `htree node (directory block 0 of inode ${manyIno})`, `extent tree block ${extentBlock}`];
  for (const what of expect) assert.ok(warnings.some((w) => w.startsWith(`checksum mismatch: ${what}`)), `${what}: ${warnings.join('\n')}`);
});

test('gdt_csum (crc16) group descriptor checksums', async () => {
  const image = makeImage(join(dir, 'gdt.img'), src, ['-b', '4096', '-O', '^metadata_csum,uninit_bg'], 32);
  assert.deepEqual(await readAll(image), []);
  patch(image, 4096 + 0x0e, [0x01]);
  const warnings = await readAll(image);
  assert.ok(warnings.some((w) => w.startsWith('checksum mismatch: group descriptor 0')), warnings.join('\n'));
});

test('unwritten (preallocated) extents read as zeros, whatever their blocks hold', async () => {
  const image = copy();
  debugfs(image, 'write /dev/null prealloc', 'fallocate /prealloc 0 15', 'sif /prealloc size 65536');
  assert.match(run('debugfs', ['-R', 'ex /prealloc', image]), /Uninit/);
  const block = Number(/\s(\d+)\s*-\s*\d+\s+\d+\s+Uninit/.exec(run('debugfs', ['-R', 'ex /prealloc', image]))![1]);
  patch(image, block * 4096, [...Buffer.alloc(4096, 0xab)]);
  await withTree(image, async (tree) => {
    assert.deepEqual(await tree.read('/prealloc', 0, 65536), new Uint8Array(65536));
  });
});

test('times past 2038 with nanoseconds and creation times, as debugfs stat shows them', async () => {
  const image = copy();
  debugfs(image, 'sif /d/small mtime @5000000000', 'sif /d/small mtime_extra 0x12345679', 'sif /d/small atime @-100000', 'sif /d/small crtime_extra 0x00000100');
  const stat = run('debugfs', ['-R', 'stat /d/small', image]);
  const field = (name: string) => {
    const m = new RegExp(`${name}: 0x([0-9a-f]+):([0-9a-f]+)`).exec(stat)!;
    const extra = parseInt(m[2], 16);
    return (parseInt(m[1], 16) | 0) + (extra & 3) * 2 ** 32 + (extra >>> 2) / 1e9;
  };
  await withTree(image, async (tree) => {
    const e = await tree.lstat('/d/small');
    assert.equal(Math.floor(e.mtime), 5000000000);
    assert.equal(e.mtime, field(' mtime'));
    assert.equal(e.atime, field(' atime'));
    assert.equal(e.atime, -100000);
    assert.equal(e.ctime, field(' ctime'));
    assert.equal(e.birthtime, field('crtime'));
  });
});

test('encrypted and casefolded directories and compressed files: ENOTSUP when reached', async () => {
  const image = copy();
  // (debugfs opens no filesystem with the compression feature: set it last.)
  debugfs(image, 'feature encrypt', 'sif /d/sub flags 0x800', 'sif /d/block flags 0x80004', 'feature compression');
  await withTree(image, async (tree) => {
    await assert.rejects(tree.readdir('/d/sub'), (e: PloopError) => e.code === 'ENOTSUP' && /encrypted/.test(e.message));
    await assert.rejects(tree.read('/d/block', 0, 10), (e: PloopError) => e.code === 'ENOTSUP' && /compressed/.test(e.message));
    assert.equal(new TextDecoder().decode(await tree.read('/d/small', 0, 100)), 'small file');
  });
  const cf = copy();
  debugfs(cf, 'ssv encoding utf8', 'feature casefold', 'sif /d/sub flags 0x40000000');
  await withTree(cf, async (tree) => {
    await assert.rejects(tree.lstat('/d/sub/x'), (e: PloopError) => e.code === 'ENOTSUP' && /casefold/.test(e.message));
  });
});

/** Set up `image` with `setup`, then `operation` fails with ECORRUPT and a message matching `message`. */
async function corrupt(name: string, setup: (image: string) => void, operation: (tree: Awaited<ReturnType<typeof openImage>>['tree']) => Promise<unknown>, message: RegExp, from = base): Promise<void> {
  const image = copy(from);
  setup(image);
  let error: unknown = null;
  try {
    await withTree(image, async (tree) => operation(tree));
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof PloopError, `${name}: expected a PloopError, got ${error}`);
  assert.equal(error.code, 'ECORRUPT', `${name}: ${error.message}`);
  assert.match(error.message, message, name);
}

test('hostile fields: each an ECORRUPT naming the structure, the field and the value', async () => {
  const list = (p: string) => (t: Awaited<ReturnType<typeof openImage>>['tree']) => t.readdir(p);
  const read = (p: string) => (t: Awaited<ReturnType<typeof openImage>>['tree']) => t.read(p, 0, 1 << 20);
  // A bad inode does not fail its directory's listing: the entry carries the error (thrown here
  // to check its words), and a lookup of its path fails with it.
  const listedError = (p: string) => async (t: Awaited<ReturnType<typeof openImage>>['tree']) => {
    const bad = (await t.readdir(p)).filter((e) => e.error !== undefined);
    assert.equal(bad.length, 1, `one unreadable entry in ${p}`);
    await assert.rejects(t.lstat(bad[0].path), (e: unknown) => e instanceof PloopError && e.message === bad[0].error);
    throw new PloopError('ECORRUPT', bad[0].error as string);
  };
  await corrupt('bad magic', (i) => patch(i, 1024 + 0x38, [0, 0]), list('/'), /superblock magic 0x0/);
  await corrupt('block size', (i) => patch(i, 1024 + 0x18, [9]), list('/'), /s_log_block_size 9/);
  await corrupt('inodes per group', (i) => patch(i, 1024 + 0x28, [0, 0, 0, 0]), list('/'), /s_inodes_per_group 0/);
  await corrupt('inode table outside', (i) => debugfs(i, 'set_bg 0 inode_table 9999999', 'set_bg 0 checksum calc'), list('/'), /group descriptor 0: inode table at block 9999999/);
  await corrupt('extent magic', (i) => debugfs(i, 'sif /d/block block[0] 0x1234'), read('/d/block'), /extent tree root: header magic 0x1234/);
  await corrupt('extent depth', (i) => debugfs(i, 'sif /d/block block[1] 0x70004'), read('/d/block'), /eh_depth 7 \(expected at most 5\)/);
  await corrupt('extent out of range', (i) => debugfs(i, 'sif /d/block block[5] 99999999'), read('/d/block'), /block 99999999.* lies outside the filesystem/);
  await corrupt('extent entries', (i) => debugfs(i, 'sif /d/block block[0] 0x0009f30a'), read('/d/block'), /eh_entries 9, eh_max 4/);
  await corrupt('rec_len 0', (i) => patch(i, firstBlock(i, '/d') * 4096 + 4, [0, 0]), list('/d'), /rec_len 0 /);
  await corrupt('rec_len past the block', (i) => patch(i, firstBlock(i, '/d') * 4096 + 12 + 4, [0xf0, 0x1f]), list('/d'), /rec_len 8176 /);
  await corrupt('name_len past rec_len', (i) => patch(i, firstBlock(i, '/d') * 4096 + 6, [200]), list('/d'), /name_len 200 does not fit in rec_len 12/);
  await corrupt('entry inode out of range', (i) => patch(i, firstBlock(i, '/d') * 4096 + 24, [0xff, 0xff, 0xff, 0x0f]), listedError('/d'), /inode 268435455 \(expected 1\.\./);
  await corrupt('bad mode', (i) => debugfs(i, 'sif /d/small mode 0170644'), listedError('/d'), /i_mode 0o170644 has no valid file type/);
  await corrupt('size that lies', (i) => debugfs(i, 'sif /d/small size_hi 0xffffffff'), listedError('/d'), /i_size \d+ is more than any 4096-byte-block file can hold/);
  await corrupt('deleted inode', (i) => debugfs(i, 'sif /d/small links_count 0'), listedError('/d'), /is deleted \(i_links_count 0\)/);
  await corrupt('symlink target too long', (i) => debugfs(i, 'sif /slow-link size 5000'), listedError('/'), /symlink target of 5000 bytes \(expected at most 4096\)/);
  const ext2 = makeImage(join(dir, 'ext2.img'), src, ['-t', 'ext2', '-b', '4096'], 32);
  await corrupt('indirect pointer', (i) => debugfs(i, 'sif /d/block block[1] 99999999'), read('/d/block'), /block pointer for logical block 1: block 99999999 lies outside/, ext2);
});

test('a broken htree index is reported and the directory searched without it', async () => {
  const image = copy();
  patch(image, firstBlock(image, '/many') * 4096 + 30, [7]); // indirect_levels
  await withTree(image, async (tree) => {
    assert.equal((await tree.lstat('/many/entry-17-' + 'x'.repeat(17))).type, 'file');
    assert.ok(tree.warnings.some((w) => /htree indirect_levels 7 \(expected below 2\); searched without the index/.test(w)), tree.warnings.join('\n'));
  });
});

test('a directory cycle shows as a repeated inode number; a symlink loop is ELOOP', async () => {
  const image = copy();
  debugfs(image, 'ln /d /d/sub/up', 'symlink /loop-a /loop-b', 'symlink /loop-b /loop-a');
  await withTree(image, async (tree) => {
    const d = await tree.lstat('/d');
    assert.equal((await tree.lstat('/d/sub/up')).inode, d.inode);
    assert.equal((await tree.lstat('/d/sub/up/sub/up/sub/up/small')).size, 10);
    await assert.rejects(tree.stat('/loop-a'), { code: 'ELOOP' });
  });
});

test('the whole chain: an ext4 partition of a GPT disk in a ploop image (qemu-img convert), through openFilesystem', async () => {
  const raw = join(dir, 'disk.raw');
  run('truncate', ['-s', '40M', raw]);
  execFileSync('sfdisk', ['-q', raw], { input: 'label: gpt\nstart=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' });
  // The base filesystem (32 MiB) at 1 MiB into the disk.
  execFileSync('dd', [`if=${base}`, `of=${raw}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  const hds = join(dir, 'disk.hds');
  run('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', raw, hds]);
  const image = await PloopImage.open(await NodeFileStore.open(hds, { writable: false }));
  try {
    const fs = await openFilesystem({ size: image.size, read: (o, l) => image.read(o, l) });
    assert.equal(fs.kind, 'ext4');
    assert.equal(fs.partition, 1);
    assert.equal(fs.startBytes, 1 << 20);
    assert.equal(new TextDecoder().decode(await fs.read('/d/small', 0, 100)), 'small file');
    assert.equal((await fs.readdir('/many')).length, 600);
    assert.equal(await fs.readlink('/slow-link'), 'y'.repeat(300));
  } finally {
    await image.close();
  }
});

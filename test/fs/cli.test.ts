// ls, cat, extract and info on real disks: a GPT disk with an ext4 made by mkfs.ext4 -d and a
// FAT32 made by mkfs.fat + mcopy, turned into ploop by our convert and by qemu-img, and a disk
// folder whose snapshot delta holds a later version of the filesystem. Every entry and every
// byte is compared with the source tree (find -printf, sha256).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cli, describeCli } from '../helpers/cli.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { makeAwkwardTree, describeTree, makePartitionedDisk, fileSha256, sha256, sh, type TreeEntry } from '../helpers/fs-trees.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
let src: string;
let fatSrc: string;
let disk: string;
let ploop: string;
let qemuPloop: string;
let expected: Map<string, TreeEntry>;

before(async () => {
  tmp = await makeTempDir('ploop-fs-cli-');
  src = join(tmp.dir, 'src');
  makeAwkwardTree(src, { bigDirEntries: 3000, depth: 40 });
  fatSrc = join(tmp.dir, 'fatsrc');
  mkdirSync(join(fatSrc, 'EFI/BOOT'), { recursive: true });
  sh('sh', ['-c', `printf 'boot loader' > '${fatSrc}/EFI/BOOT/BOOTX64.EFI'; printf 'Long Name' > '${fatSrc}/A long file name.txt'`]);
  disk = makePartitionedDisk(tmp.dir, 'gpt', [{ fs: 'ext4', tree: src, sizeMiB: 48, label: 'ctroot' }, { fs: 'fat32', tree: fatSrc, sizeMiB: 40, label: 'ESP' }]);
  ploop = join(tmp.dir, 'disk.hds');
  const r = await cli(['convert', disk, ploop, '--to', 'ploop']);
  assert.equal(r.code, 0, describeCli(['convert'], r));
  qemuPloop = join(tmp.dir, 'qemu.hds');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', disk, qemuPloop]);
  expected = describeTree(src);
});

after(() => tmp.cleanup());

async function ok(args: string[]): Promise<Buffer> {
  const r = await cli(args);
  assert.equal(r.code, 0, describeCli(args, r));
  return r.stdout;
}

interface JsonEntry { path: string; name: string; type: string; size: number; mode: number; mtime: number; target?: string }

function assertSameEntries(actual: JsonEntry[], want: Map<string, TreeEntry>, what: string): void {
  const got = new Map(actual.map((e) => [e.path, e]));
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${what}: the same paths`);
  for (const [path, w] of want) {
    const e = got.get(path) as JsonEntry;
    assert.equal(e.name, path.slice(path.lastIndexOf('/') + 1), `${path}: name`);
    assert.equal(e.type, w.type, `${path}: type`);
    assert.equal(e.mode & 0o7777, w.mode, `${path}: permission bits`);
    assert.equal(e.mtime, w.mtime, `${path}: mtime`);
    if (w.type === 'file' || w.type === 'symlink') assert.equal(e.size, w.size, `${path}: size`);
    assert.equal(e.target, w.target, `${path}: target`);
    assert.deepEqual(Object.keys(e).sort(), ['mode', 'mtime', 'name', 'path', 'size', 'type', ...(w.type === 'symlink' ? ['target'] : [])].sort(), `${path}: the JSON keys`);
  }
}

test('ls --recursive --json lists every entry of the ext4 partition as find sees the source tree, in our convert and in qemu-img\'s', async () => {
  for (const image of [ploop, qemuPloop, disk]) {
    const out = await ok(['ls', image, '/', '--partition', '1', '--recursive', '--json']);
    // mkfs.ext4 adds lost+found to the tree's own entries.
    const entries = (JSON.parse(out.toString()) as JsonEntry[]).filter((e) => e.path !== '/lost+found');
    assertSameEntries(entries, expected, image);
  }
});

test('ls prints an ls -l listing; a path below a symlink is followed; a symlink itself is shown', async () => {
  const text = (await ok(['ls', ploop, '/etc', '--partition', '1'])).toString();
  assert.match(text, /^-rw-r--r-- +1 +0 +0 +6 2001-09-09 01:46 hostname$/m);
  assert.match(text, /^drwxr-xr-x +2 +0 +0 +\d+ \d{4}-\d\d-\d\d \d\d:\d\d nginx$/m);
  const link = (await ok(['ls', ploop, '/fast-link', '--partition', '1'])).toString();
  assert.match(link, /^lrwxrwxrwx +1 +0 +0 +9 2017-07-14 02:40 fast-link -> hello.txt\n$/);
  const through = (await ok(['ls', ploop, '/etc-link/nginx', '--partition', '1'])).toString();
  assert.match(through, / nginx\.conf\n$/);
  const modes = (await ok(['ls', ploop, '/', '--partition', '1'])).toString();
  assert.match(modes, /^-rwsr-xr-x .* setuid$/m);
  assert.match(modes, /^drwxrwxrwt .* sticky$/m);
  assert.match(modes, /^-rw------- .* private$/m);
});

test('cat writes each file\'s bytes, through symlinks too', async () => {
  for (const path of ['/hello.txt', '/binary.bin', '/etc/nginx/nginx.conf', '/sparse.img', '/ünïcødé – 日本語 🚀.txt', '/' + 'n'.repeat(255), '/empty', '/big/file-02999', '/fast-link', '/hard-link']) {
    const out = await ok(['cat', ploop, path, '--partition', '1']);
    assert.equal(sha256(out), fileSha256(join(src, path)), path);
  }
});

test('extract / lands as OUTDIR\'s contents with types, modes, mtimes, targets, hard links and bytes', async () => {
  const out = join(tmp.dir, 'out-root');
  mkdirSync(out);
  await ok(['extract', ploop, '/', out, '--partition', '1']);
  const got = describeTree(out);
  got.delete('/lost+found');
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
  for (const [path, w] of expected) {
    const g = got.get(path) as TreeEntry;
    assert.equal(g.type, w.type, `${path}: type`);
    assert.equal(g.mode, w.mode, `${path}: mode`);
    assert.equal(g.mtime, w.mtime, `${path}: mtime`);
    assert.equal(g.target, w.target, `${path}: target`);
    if (w.type === 'file') {
      assert.equal(g.size, w.size, `${path}: size`);
      assert.equal(fileSha256(join(out, path)), fileSha256(join(src, path)), `${path}: bytes`);
    }
  }
  assert.equal(lstatSync(join(out, 'hello.txt')).ino, lstatSync(join(out, 'hard-link')).ino, 'hard links stay linked');
  // Written sparse: the 8 MiB file with 14 bytes of data takes a few blocks.
  assert.ok(statSync(join(out, 'sparse.img')).blocks * 512 < 1 << 20, 'sparse.img is written sparse');
});

test('extract of a file or a directory lands as OUTDIR/its-name and refuses to overwrite without --force', async () => {
  const out = join(tmp.dir, 'out-one');
  mkdirSync(out);
  await ok(['extract', ploop, '/etc/nginx/nginx.conf', out, '--partition', '1']);
  assert.deepEqual(readdirSync(out), ['nginx.conf']);
  await ok(['extract', ploop, '/etc', out, '--partition', '1']);
  assert.deepEqual(readdirSync(out).sort(), ['etc', 'nginx.conf']);
  assert.equal(readFileSync(join(out, 'etc/hostname'), 'utf8'), 'ct101\n');
  const again = await cli(['extract', ploop, '/etc', out, '--partition', '1']);
  assert.equal(again.code, 1, describeCli(['extract again'], again));
  assert.match(again.stderr, /exists; extract never overwrites \(use --force/);
  await ok(['extract', ploop, '/etc', out, '--partition', '1', '--force']);
  const missing = await cli(['extract', ploop, '/etc', join(tmp.dir, 'nowhere'), '--partition', '1']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /OUTDIR .*nowhere is not an existing directory/);
});

test('the FAT32 partition: long names, and ls without --partition lists the partitions', async () => {
  const out = JSON.parse((await ok(['ls', ploop, '/', '--partition', '2', '--recursive', '--json'])).toString()) as JsonEntry[];
  assert.deepEqual(out.map((e) => e.path).sort(), ['/A long file name.txt', '/EFI', '/EFI/BOOT', '/EFI/BOOT/BOOTX64.EFI']);
  assert.equal((await ok(['cat', ploop, '/A long file name.txt', '--partition', '2'])).toString(), 'Long Name');
  const r = await cli(['ls', ploop]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the disk has 2 partitions and 2 of them hold filesystems: choose one/);
  assert.match(r.stderr, /partition 1: 48\.0 MiB Linux filesystem, ext4 "ctroot"/);
  assert.match(r.stderr, /partition 2: 40\.0 MiB Microsoft basic data, FAT32 "ESP"/);
  const bad = await cli(['ls', ploop, '/', '--partition', '7']);
  assert.match(bad.stderr, /partition 7: no such partition \(the disk has partitions 1, 2\)/);
});

test('errors name the path: a missing file, a directory to cat, a file as a directory', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['cat', ploop, '/etc/nope', '--partition', '1'], /\/etc\/nope: no such file or directory \(\/etc has no entry "nope"\)/],
    [['cat', ploop, '/etc', '--partition', '1'], /\/etc: is a directory/],
    [['ls', ploop, '/hello.txt/x', '--partition', '1'], /\/hello\.txt is not a directory/],
    [['cat', ploop, '/dangling', '--partition', '1'], /no such file or directory/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 1, describeCli(args, r));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('info lists the partitions with their filesystems, labels and sizes', async () => {
  const json = JSON.parse((await ok(['info', ploop, '--json'])).toString());
  assert.equal(json.partitionTable, 'gpt');
  assert.deepEqual(json.partitions.map((p: Record<string, unknown>) => [p.number, p.start, p.size, p.filesystem, p.label, p.browsable]), [
    [1, 1 << 20, 48 << 20, 'ext4', 'ctroot', true],
    [2, 49 << 20, 40 << 20, 'fat32', 'ESP', true],
  ]);
  const raw = JSON.parse((await ok(['info', disk, '--json'])).toString());
  assert.equal(raw.format, 'raw');
  assert.deepEqual(raw.partitions.map((p: Record<string, unknown>) => p.filesystem), ['ext4', 'fat32'], 'a raw disk image gets its partitions too');
  const text = (await ok(['info', ploop])).toString();
  assert.match(text, /partitions \(GPT, disk id [0-9A-F-]+\):\n {2}1: 48 MiB at byte 1048576, Linux filesystem: ext4 "ctroot"\n {2}2: 40 MiB at byte 51380224, Microsoft basic data: FAT32 "ESP"/);
});

test('a disk folder: the snapshot delta holds a later version of the filesystem, and ls/cat read through the stack', async () => {
  const folder = join(tmp.dir, 'vm');
  await ok(['init', folder, '--size', '90M']);
  // The base holds the disk as it was; the top delta gets only the bytes that changed after.
  await ok(['convert', disk, join(tmp.dir, 'base.hds'), '--to', 'ploop']);
  rmSync(join(folder, 'root.hds'));
  sh('cp', [join(tmp.dir, 'base.hds'), join(folder, 'root.hds')]);
  await ok(['snapshot', folder]);
  const later = join(tmp.dir, 'later.raw');
  sh('cp', ['--sparse=always', disk, later]);
  // debugfs writes into the ext4 at partition 1: carve it out, change it, put it back.
  const part = join(tmp.dir, 'p1.img');
  sh('dd', [`if=${later}`, `of=${part}`, 'bs=1M', 'skip=1', 'count=48', 'status=none']);
  sh('debugfs', ['-w', '-R', `write ${join(src, 'etc/hostname')} renamed-hostname`, part]);
  sh('debugfs', ['-w', '-R', 'rm hello.txt', part]);
  sh('dd', [`if=${part}`, `of=${later}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  const before = readFileSync(disk);
  const after = readFileSync(later);
  const CLUSTER = 1 << 20;
  for (let off = 0; off < after.length; off += CLUSTER) {
    const a = after.subarray(off, off + CLUSTER);
    if (!a.equals(before.subarray(off, off + CLUSTER))) await ok2(['write', folder, '--offset', String(off)], a);
  }
  const names = JSON.parse((await ok(['ls', folder, '/', '--partition', '1', '--json'])).toString()).map((e: JsonEntry) => e.name);
  assert.ok(names.includes('renamed-hostname') && !names.includes('hello.txt'), names.join(' '));
  assert.equal((await ok(['cat', folder, '/renamed-hostname', '--partition', '1'])).toString(), 'ct101\n');
  assert.equal(sha256(await ok(['cat', join(folder, 'DiskDescriptor.xml'), '/binary.bin', '--partition', '1'])), fileSha256(join(src, 'binary.bin')));
});

async function ok2(args: string[], stdin: Uint8Array): Promise<void> {
  const r = await cli(args, stdin);
  assert.equal(r.code, 0, describeCli(args, r));
}

test('an entry whose inode is corrupt is listed as unreadable; ls, cat and extract go on with the rest and exit 1', async () => {
  const part = join(tmp.dir, 'bad-part.img');
  sh('mkfs.ext4', ['-q', '-F', '-d', join(src, 'etc'), part, '8M']);
  // File type bits 0o17 name no type at all.
  sh('debugfs', ['-w', '-R', 'sif /hostname mode 0170644', part]);
  const listing = await cli(['ls', part, '/']);
  assert.equal(listing.code, 1, describeCli(['ls'], listing));
  assert.match(listing.stdout.toString(), /^\?{10} +\? +\? +\? +\? \? +hostname$/m);
  assert.match(listing.stdout.toString(), / nginx$/m);
  assert.match(listing.stderr, /cannot access \/hostname: .*inode \d+/);
  const json = JSON.parse((await cli(['ls', part, '/', '--json'])).stdout.toString()) as Array<JsonEntry & { error?: string }>;
  assert.equal(json.find((e) => e.name === 'hostname')?.type, 'other');
  assert.match(json.find((e) => e.name === 'hostname')?.error ?? '', /mode/);
  const out = join(tmp.dir, 'out-bad');
  mkdirSync(out);
  const r = await cli(['extract', part, '/', out]);
  assert.equal(r.code, 1, describeCli(['extract'], r));
  assert.match(r.stderr, /\/hostname: cannot be read, skipped/);
  assert.equal(readFileSync(join(out, 'nginx/nginx.conf'), 'utf8'), readFileSync(join(src, 'etc/nginx/nginx.conf'), 'utf8'));
});

// The FAT reader against the oracles: trees copied in by mtools (mcopy -s -m) onto filesystems
// made by mkfs.fat, compared entry by entry with the source tree (names, types, sizes, mtimes,
// sha256 of every file) and with mtools' own listing (mdir -/ -b).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, utimesSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../helpers/prng.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { PloopError } from '../../src/errors.ts';
import {
  assertSameTree, fileDisk, mcopyTree, mdirPaths, memoryDisk, mkfsFat, openFatDisk, run, walkFs, walkSource, type MkfsOptions,
} from './fat-images.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-fat-');
});
after(async () => {
  await tmp.cleanup();
});

/** Write `files` (path → byte count or bytes) under `root`, each with an mtime of its own. */
function writeTree(root: string, files: Record<string, number | Uint8Array>, prng = new Prng(1)): void {
  mkdirSync(root, { recursive: true });
  let t = Date.UTC(1995, 5, 17, 8, 30, 1) / 1000;
  for (const [path, content] of Object.entries(files)) {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, typeof content === 'number' ? prng.bytes(content) : content);
    t += 86_400 * 3 + 3_607; // odd seconds too: FAT keeps 2-second steps
    utimesSync(full, t, t);
  }
}

/** A tree of the awkward names and sizes that every FAT variant gets. */
function awkwardFiles(clusterBytes: number): Record<string, number> {
  return {
    'readme.txt': 100, // 8.3 in lowercase: mcopy sets the NT lowercase flags, no long name
    'UPPER.TXT': 10,
    'lower.TXT': 11, // lowercase base, uppercase extension: one flag of two
    'MiXed.Txt': 12, // mixed case needs a long name
    'A long file name with spaces.txt': 1000,
    'ünïcødé – ελληνικά – 日本語.txt': 33,
    'dots.in.the.name.tar.gz': 44,
    'empty': 0,
    'one-cluster': clusterBytes,
    'one-cluster-and-a-byte': clusterBytes + 1,
    'many clusters.bin': 40 * clusterBytes + 123,
    ['L'.repeat(251) + '.txt']: 5, // 255 UTF-16 units, the longest name
    'sub/inner file.txt': 77,
    'sub/deeper/and deeper/x.bin': 2 * clusterBytes,
    'sub/empty dir/.keep': 0,
  };
}

interface Variant extends Omit<MkfsOptions, 'sizeBytes'> {
  name: string;
  sizeBytes: number;
  kind: 'fat12' | 'fat16' | 'fat32';
  clusterBytes: number;
}

const VARIANTS: Variant[] = [
  { name: 'FAT12 floppy (1.44 MB)', fat: 12, sizeBytes: 1_474_560, kind: 'fat12', clusterBytes: 512 },
  { name: 'FAT12, 4096-byte sectors', fat: 12, sizeBytes: 8 << 20, sectorBytes: 4096, clusterSectors: 1, kind: 'fat12', clusterBytes: 4096 },
  { name: 'FAT16, 512-byte clusters', fat: 16, sizeBytes: 16 << 20, clusterSectors: 1, kind: 'fat16', clusterBytes: 512 },
  { name: 'FAT16, 32 KiB clusters', fat: 16, sizeBytes: 200 << 20, clusterSectors: 64, kind: 'fat16', clusterBytes: 32768 },
  { name: 'FAT32, 512-byte clusters', fat: 32, sizeBytes: 40 << 20, clusterSectors: 1, kind: 'fat32', clusterBytes: 512 },
  { name: 'FAT32, 4096-byte sectors', fat: 32, sizeBytes: 300 << 20, sectorBytes: 4096, clusterSectors: 1, kind: 'fat32', clusterBytes: 4096 },
  { name: 'FAT32, 8 KiB clusters', fat: 32, sizeBytes: 600 << 20, clusterSectors: 16, kind: 'fat32', clusterBytes: 8192 },
];

describe('FAT variants: an awkward tree copied in by mcopy reads back as the source', () => {
  for (const v of VARIANTS) {
    test(v.name, async () => {
      const src = join(tmp.dir, `src-${v.fat}-${v.clusterBytes}-${v.sectorBytes ?? 512}`);
      writeTree(src, awkwardFiles(v.clusterBytes));
      const image = mkfsFat(join(tmp.dir, `${v.fat}-${v.clusterBytes}-${v.sectorBytes ?? 512}.img`), { ...v, label: 'PLOOPTEST', serial: 'c0ffee42' });
      mcopyTree(image, src);
      const disk = fileDisk(image);
      try {
        const fs = await openFatDisk(disk);
        assert.equal(fs.kind, v.kind);
        assert.equal(fs.blockBytes, v.clusterBytes);
        assert.equal(fs.label, 'PLOOPTEST');
        assert.equal(fs.uuid, 'C0FF-EE42');
        const seen = await walkFs(fs);
        assertSameTree(seen, walkSource(src), v.name);
        assert.deepEqual([...seen.keys()].sort(), mdirPaths(image), `${v.name}: paths as mdir lists them`);
        assert.deepEqual(fs.warnings, []);
        // Synthesized modes and owners; inodes unique.
        const inodes = new Set<number>();
        for (const { entry } of seen.values()) {
          assert.equal(entry!.mode, entry!.type === 'dir' ? 0o40755 : 0o100644, entry!.path);
          assert.equal(entry!.uid, 0);
          inodes.add(entry!.inode);
        }
        assert.equal(inodes.size, seen.size, 'inode numbers are unique');
        assert.equal((await fs.stat('/')).inode, 1);
      } finally {
        disk.close();
      }
    });
  }
});

test('byte ranges across cluster boundaries read as the source bytes', async () => {
  const src = join(tmp.dir, 'ranges');
  const prng = new Prng(7);
  const data = prng.bytes(70_000);
  writeTree(src, { 'data.bin': data });
  const image = mkfsFat(join(tmp.dir, 'ranges.img'), { fat: 16, sizeBytes: 8 << 20, clusterSectors: 2 });
  mcopyTree(image, src);
  const fs = await openFatDisk(memoryDisk(readFileSync(image)));
  for (let i = 0; i < 200; i++) {
    const offset = prng.int(data.length + 100);
    const length = prng.int(5000);
    const got = await fs.read('/data.bin', offset, length);
    assert.deepEqual(got, data.subarray(offset, Math.min(data.length, offset + length)), `read ${offset}+${length}`);
  }
});

test('a fragmented file (interleaved writes, deletions, then a big file into the holes) reads back whole', async () => {
  const src = join(tmp.dir, 'frag');
  const prng = new Prng(11);
  const small: Record<string, Uint8Array> = {};
  for (let i = 0; i < 12; i++) small[`s${i}.bin`] = prng.bytes(3 * 1024 + i);
  writeTree(src, { ...small, 'big.bin': prng.bytes(150_000) }, prng);
  const image = mkfsFat(join(tmp.dir, 'frag.img'), { fat: 12, sizeBytes: 1_474_560 });
  for (let i = 0; i < 12; i++) run('mcopy', ['-m', '-i', image, join(src, `s${i}.bin`), '::/']);
  for (let i = 0; i < 12; i += 2) run('mdel', ['-i', image, `::/s${i}.bin`]);
  run('mcopy', ['-m', '-i', image, join(src, 'big.bin'), '::/']);
  // mshowfat prints the file's clusters as <first-last> runs: the big file must have several.
  const runs = run('mshowfat', ['-i', image, '::/big.bin']).match(/<\d+-\d+>/g) ?? [];
  assert.ok(runs.length >= 4, `big.bin is fragmented: ${runs.join('')}`);
  const fs = await openFatDisk(memoryDisk(readFileSync(image)));
  const seen = await walkFs(fs);
  const source = walkSource(src);
  for (let i = 0; i < 12; i += 2) source.delete(`/s${i}.bin`);
  assertSameTree(seen, source, 'fragmented');
});

test('2 500 entries in one directory; deep nesting (40 levels)', async () => {
  const src = join(tmp.dir, 'many');
  const files: Record<string, number> = {};
  // Distinct first characters keep mtools' 8.3 aliases apart (its alias search is quadratic).
  for (let i = 1000; i < 3500; i++) files[`big dir/${i} with a long name.txt`] = i % 7;
  files[Array.from({ length: 40 }, (_, i) => `level ${i}`).join('/') + '/bottom.txt'] = 9;
  writeTree(src, files);
  const image = mkfsFat(join(tmp.dir, 'many.img'), { fat: 32, sizeBytes: 40 << 20, clusterSectors: 1 });
  mcopyTree(image, src);
  const disk = memoryDisk(readFileSync(image));
  const fs = await openFatDisk(disk);
  const seen = await walkFs(fs);
  assertSameTree(seen, walkSource(src), 'many');
  assert.equal((await fs.readdir('/big dir')).length, 2500);
  assert.equal((await fs.stat('/big dir/2718 with a long name.txt')).size, 2718 % 7);
});

test('names that differ only in case: mcopy renames the clash; lookups ignore case, exact names first, 8.3 aliases match', async () => {
  const src = join(tmp.dir, 'case');
  writeTree(src, { 'README': 1, 'Makefile': 2, 'lower.TXT': 3 });
  const src2 = join(tmp.dir, 'case2');
  writeTree(src2, { 'readme': 4, 'MAKEFILE': 5 });
  const image = mkfsFat(join(tmp.dir, 'case.img'), { fat: 12, sizeBytes: 1_474_560 });
  mcopyTree(image, src);
  mcopyTree(image, src2, ['-D', 'a']); // autorename on a clash
  const fs = await openFatDisk(memoryDisk(readFileSync(image)));
  const names = (await fs.readdir('/')).map((e) => e.path).sort();
  assert.deepEqual(names, mdirPaths(image));
  assert.equal(names.length, 5, names.join(' '));
  assert.equal((await fs.stat('/README')).size, 1);
  assert.equal((await fs.stat('/readme')).size, 1, 'case-insensitive lookup');
  assert.equal((await fs.stat('/LOWER.txt')).size, 3);
  assert.equal((await fs.stat('/makefile')).size, 2);
  await assert.rejects(fs.stat('/nosuch'), (e: unknown) => e instanceof PloopError && e.code === 'ENOENT');
});

test('an 8.3 alias finds a file with a long name', async () => {
  const src = join(tmp.dir, 'alias');
  writeTree(src, { 'A long file name.txt': 5 });
  const image = mkfsFat(join(tmp.dir, 'alias.img'), { fat: 16, sizeBytes: 16 << 20, clusterSectors: 1 });
  mcopyTree(image, src);
  const alias = run('mdir', ['-i', image, '::/']).match(/^(\S+)\s+(\S+)\s+5 /m);
  assert.ok(alias, 'mdir shows the alias');
  const fs = await openFatDisk(memoryDisk(readFileSync(image)));
  assert.equal((await fs.stat(`/${alias[1]}.${alias[2]}`)).size, 5);
});

test('deleted entries, the volume label entry and the read-only attribute', async () => {
  const src = join(tmp.dir, 'attrs');
  writeTree(src, { 'keep.txt': 3, 'gone.txt': 4, 'locked.txt': 5, 'gone dir/x': 1 });
  const image = mkfsFat(join(tmp.dir, 'attrs.img'), { fat: 16, sizeBytes: 16 << 20, clusterSectors: 1, label: 'MYLABEL' });
  mcopyTree(image, src);
  run('mdel', ['-i', image, '::/gone.txt']);
  run('mdeltree', ['-i', image, '::/gone dir']);
  run('mattrib', ['-i', image, '+r', '::/locked.txt']);
  const fs = await openFatDisk(memoryDisk(readFileSync(image)));
  const entries = await fs.readdir('/');
  assert.deepEqual(entries.map((e) => e.name).sort(), ['keep.txt', 'locked.txt']);
  assert.equal(entries.find((e) => e.name === 'locked.txt')!.mode, 0o100444);
  assert.equal(fs.label, 'MYLABEL');
});

test('times: mtime from the write date and time, atime from the access date, birthtime with its 10 ms field', async () => {
  const src = join(tmp.dir, 'times');
  writeTree(src, { 'f.txt': 1 });
  const mtime = Date.UTC(2003, 1, 28, 23, 59, 59) / 1000;
  utimesSync(join(src, 'f.txt'), mtime, mtime);
  const image = mkfsFat(join(tmp.dir, 'times.img'), { fat: 12, sizeBytes: 1_474_560 });
  mcopyTree(image, src);
  const bytes = new Uint8Array(readFileSync(image));
  const fs = await openFatDisk(memoryDisk(bytes));
  const e = await fs.stat('/f.txt');
  assert.equal(e.mtime, mtime - 1, '23:59:59 is stored as 23:59:58');
  assert.equal(e.ctime, e.mtime);
  // mtools writes the access date and the creation date and time; the days match its listing.
  assert.equal(e.atime % 86_400, 0, 'an access date has no time');
  assert.ok(e.birthtime !== null);
  // Patch the creation time's 10 ms field (byte 13 of the short entry) and read it back.
  const entryAt = e.inode;
  bytes[entryAt + 13] = 150; // +1.5 s
  const fs2 = await openFatDisk(memoryDisk(bytes));
  const e2 = await fs2.stat('/f.txt');
  assert.equal(e2.birthtime, (e.birthtime as number) + 1.5);
});

test('a name outside the Basic Multilingual Plane (a surrogate pair in the long name)', async () => {
  // mtools 4.0.32 drops characters beyond U+FFFF from the names it writes, so the image gets a
  // stand-in name from mcopy and the two UTF-16 units of "ЖЖ" in its long-name entry are then
  // overwritten with the surrogate pair of U+1F600; the checksum covers the 8.3 name only.
  const src = join(tmp.dir, 'emoji');
  writeTree(src, { 'emoji-ЖЖ.txt': 9 });
  const image = mkfsFat(join(tmp.dir, 'emoji.img'), { fat: 16, sizeBytes: 16 << 20, clusterSectors: 1 });
  mcopyTree(image, src);
  const bytes = new Uint8Array(readFileSync(image));
  const needle = Buffer.from('ЖЖ', 'utf16le');
  const at = Buffer.from(bytes).indexOf(needle);
  assert.ok(at > 0);
  bytes.set(Buffer.from('😀', 'utf16le'), at);
  const fs = await openFatDisk(memoryDisk(bytes));
  assert.deepEqual((await fs.readdir('/')).map((e) => e.name), ['emoji-😀.txt']);
  assert.equal((await fs.stat('/emoji-😀.txt')).size, 9);
  // A lone high surrogate reads as U+FFFD rather than as a string no UTF-8 can hold.
  bytes.set(Buffer.from('\ud83dX', 'utf16le'), at);
  const fs2 = await openFatDisk(memoryDisk(bytes));
  assert.deepEqual((await fs2.readdir('/')).map((e) => e.name), ['emoji-\ufffdX.txt']);
});

test('listing the root of a 600 MiB FAT32 reads a few KiB, and reading a file reads it in runs', async () => {
  const src = join(tmp.dir, 'sparse');
  writeTree(src, { 'a.txt': 10, 'b dir/c.bin': 300_000 });
  const image = mkfsFat(join(tmp.dir, 'sparse.img'), { fat: 32, sizeBytes: 600 << 20, clusterSectors: 8 });
  mcopyTree(image, src);
  const disk = fileDisk(image);
  try {
    const fs = await openFatDisk(disk);
    await fs.readdir('/');
    assert.ok(disk.bytesRead < 64 << 10, `listing / read ${disk.bytesRead} bytes`);
    const before = disk.bytesRead;
    await fs.read('/b dir/c.bin', 0, 300_000);
    assert.ok(disk.bytesRead - before < 300_000 + (80 << 10), `reading 300 000 bytes read ${disk.bytesRead - before}`);
  } finally {
    disk.close();
  }
});

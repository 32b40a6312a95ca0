// Hostile FAT images: real images from mkfs.fat + mcopy with one structure broken by hand. Each
// must give a PloopError('ECORRUPT') that names the structure, the field and the value, quickly,
// or (a broken long name, an impossible name) a listing that falls back or skips with a warning.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../helpers/prng.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { PloopError } from '../../src/errors.ts';
import type { Filesystem } from '../../src/fs/types.ts';
import { Layout, mcopyTree, memoryDisk, mkfsFat, openFatDisk, walkFs } from './fat-images.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
const bases = new Map<number, Uint8Array>();

before(async () => {
  tmp = await makeTempDir('ploop-fat-hostile-');
  const src = join(tmp.dir, 'src');
  const prng = new Prng(3);
  mkdirSync(join(src, 'sub', 'inner'), { recursive: true });
  writeFileSync(join(src, 'BIG.BIN'), prng.bytes(20_000));
  writeFileSync(join(src, 'SMALL.TXT'), prng.bytes(100));
  writeFileSync(join(src, 'sub', 'FILE.TXT'), prng.bytes(10));
  writeFileSync(join(src, 'sub', 'inner', 'DEEP.TXT'), prng.bytes(10));
  writeFileSync(join(src, 'A long name.txt'), prng.bytes(10));
  for (const bits of [12, 16, 32] as const) {
    const image = mkfsFat(join(tmp.dir, `base${bits}.img`), { fat: bits, sizeBytes: bits === 32 ? 40 << 20 : bits === 16 ? 16 << 20 : 1_474_560, clusterSectors: 1 });
    mcopyTree(image, src);
    bases.set(bits, new Uint8Array(readFileSync(image)));
  }
});
after(async () => {
  await tmp.cleanup();
});

function copyOf(bits: 12 | 16 | 32): Layout {
  return new Layout((bases.get(bits) as Uint8Array).slice(), bits);
}

async function open(l: Layout): Promise<Filesystem> {
  return openFatDisk(memoryDisk(l.bytes));
}

/** `fn` fails with ECORRUPT whose message matches every pattern, within two seconds. */
async function assertCorrupt(fn: () => Promise<unknown>, ...patterns: RegExp[]): Promise<PloopError> {
  const started = performance.now();
  let caught: unknown = null;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  const ms = performance.now() - started;
  assert.ok(caught instanceof PloopError, `expected a PloopError, got ${caught === null ? 'success' : String(caught)}`);
  assert.equal(caught.code, 'ECORRUPT', caught.message);
  for (const p of patterns) assert.match(caught.message, p);
  assert.ok(ms < 2000, `took ${ms} ms`);
  return caught;
}

const readAll = (fs: Filesystem, path: string) => fs.read(path, 0, 1 << 30);

describe('cluster chains of files', () => {
  for (const bits of [12, 16, 32] as const) {
    test(`FAT${bits}: a loop, an entry out of range, free, bad, an early end, a chain longer than the size`, async () => {
      const clean = copyOf(bits);
      const big = clean.entry('BIG     BIN');
      const chain = clean.chain(clean.firstCluster(big));
      assert.equal(chain.length, Math.ceil(20_000 / 512));
      const max = bits === 12 ? 0xfff : bits === 16 ? 0xffff : 0x0fffffff;
      const bad = max - 8;

      let l = copyOf(bits);
      l.setFat(chain[20], chain[5]);
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /file \/BIG\.BIN: the cluster chain loops/);

      l = copyOf(bits);
      l.setFat(chain[3], chain[3]); // a cluster that names itself
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /loops/, new RegExp(`cluster ${chain[3]}`));

      l = copyOf(bits);
      const beyond = bits === 12 ? 0xff0 : bits === 16 ? 0xfff0 : 0x0ffffff0;
      l.setFat(chain[7], beyond);
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), new RegExp(`FAT entry of cluster ${chain[7]}.*is 0x0*${beyond.toString(16)}, which names no cluster`, 'i'));

      l = copyOf(bits);
      l.setFat(chain[7], 1);
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /which names no cluster/);

      l = copyOf(bits);
      l.setFat(chain[7], 0);
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /marks it free/);

      l = copyOf(bits);
      l.setFat(chain[7], bad);
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /marks it bad/);

      l = copyOf(bits);
      l.setFat(chain[10], max);
      const early = await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /chain ends after 11 cluster\(s\).*size is 20000 bytes/);
      assert.equal(early.data.clusters, 11);
      // What lies before the break still reads.
      assert.equal((await (await open(l)).read('/BIG.BIN', 0, 5000)).length, 5000);

      l = copyOf(bits);
      const free = chain[chain.length - 1] + 50;
      assert.equal(l.getFat(free), 0);
      l.setFat(chain[chain.length - 1], free);
      l.setFat(free, max);
      await assertCorrupt(async () => readAll(await open(l), '/BIG.BIN'), /goes on past the 40 cluster\(s\) its size of 20000 bytes needs/);
    });
  }

  test('a size that lies: larger than the volume, larger than the chain', async () => {
    let l = copyOf(16);
    const small = l.entry('SMALL   TXT');
    l.view.setUint32(small + 28, 0xfffffff0, true);
    await assertCorrupt(async () => (await open(l)).read('/SMALL.TXT', 0, 10), /size of 4294967280 bytes needs \d+ clusters, but the volume has only \d+/);
    l = copyOf(16);
    l.view.setUint32(small + 28, 100_000, true);
    await assertCorrupt(async () => readAll(await open(l), '/SMALL.TXT'), /ends after 1 cluster\(s\) \(512 bytes\), but the file's size is 100000/);
  });

  test('first cluster 0, 1 or past the end in a directory entry', async () => {
    for (const [c, why] of [[0, /first cluster 0, expected 2 to \d+ for a file of 100 bytes/], [1, /first cluster 1/], [0xfff0, /first cluster 65520/]] as const) {
      const l = copyOf(16);
      l.setFirstCluster(l.entry('SMALL   TXT'), c);
      await assertCorrupt(async () => readAll(await open(l), '/SMALL.TXT'), why);
    }
  });
});

describe('directories', () => {
  test('a subdirectory with first cluster 0 (FAT16: the root is no cluster)', async () => {
    const l = copyOf(16);
    l.setFirstCluster(l.entry('SUB        '), 0);
    const fs = await open(l);
    assert.ok((await fs.readdir('/')).some((e) => e.name === 'sub'), 'the parent still lists');
    await assertCorrupt(() => fs.readdir('/sub'), /directory \/sub: its directory entry names first cluster 0/);
  });

  test('directory cycles: a subdirectory whose first cluster is its parent\'s, or the FAT32 root\'s', async () => {
    let l = copyOf(16);
    const sub = l.firstCluster(l.entry('SUB        '));
    l.setFirstCluster(l.entry('INNER      '), sub);
    let fs = await open(l);
    assert.ok((await fs.readdir('/sub')).some((e) => e.name === 'inner'));
    await assertCorrupt(() => fs.readdir('/sub/inner'), /directory \/sub\/inner: its first cluster \d+ is that of its ancestor \/sub \(a directory cycle\)/);
    // A tree walk ends with that error instead of going round forever.
    await assertCorrupt(() => walkFs(fs), /directory cycle/);

    l = copyOf(32);
    const root = l.view.getUint32(44, true);
    l.setFirstCluster(l.entry('INNER      '), root);
    fs = await open(l);
    await assertCorrupt(() => fs.readdir('/sub/inner'), /is that of the root directory \(a directory cycle\)/);
  });

  test('a directory chain that loops, and one that never ends', async () => {
    let l = copyOf(16);
    const sub = l.firstCluster(l.entry('SUB        '));
    // Fill the directory's cluster with live-looking entries (no end mark) and point it at itself.
    const at = l.clusterOffset(sub);
    for (let e = 3; e < 16; e++) l.bytes.set(Buffer.from(`X${String(e).padStart(7, '0')}TXT`, 'latin1'), at + 32 * e);
    l.setFat(sub, sub);
    await assertCorrupt(async () => (await open(l)).readdir('/sub'), /directory \/sub: the cluster chain loops/);

    // A chain through 5 000 clusters of deleted entries: past 65 536 entries it must stop.
    l = copyOf(16);
    const start = 2000;
    for (let c = start; c < start + 5000; c++) {
      l.bytes.fill(0xe5, l.clusterOffset(c), l.clusterOffset(c) + 512);
      l.setFat(c, c + 1);
    }
    l.setFat(start + 4999, 0xffff);
    l.setFirstCluster(l.entry('SUB        '), start);
    await assertCorrupt(async () => (await open(l)).readdir('/sub'), /goes on past 4096 cluster\(s\), the most a directory may have \(65536 entries\)/);
  });

  test('orphaned and mismatched long-name entries fall back to the 8.3 name', async () => {
    let l = copyOf(16);
    const short = l.entry('ALONGN~1TXT');
    assert.equal(l.bytes[short - 32 + 11], 0x0f, 'a long-name entry precedes it');
    l.bytes[short - 32 + 13] ^= 0xff; // checksum mismatch
    let names = (await (await open(l)).readdir('/')).map((e) => e.name);
    assert.ok(names.includes('ALONGN~1.TXT') && !names.includes('A long name.txt'), names.join(', '));

    l = copyOf(16);
    l.bytes[short - 32] = 0x05; // sequence 5 with no "last" flag: an orphan
    names = (await (await open(l)).readdir('/')).map((e) => e.name);
    assert.ok(names.includes('ALONGN~1.TXT'), names.join(', '));
  });

  test('an 8.3 name with a "/" is skipped with a warning; 0x05 stands for 0xE5', async () => {
    const l = copyOf(16);
    const small = l.entry('SMALL   TXT');
    l.bytes[small + 2] = 0x2f;
    const big = l.entry('BIG     BIN');
    l.bytes[big] = 0x05;
    const fs = await open(l);
    const names = (await fs.readdir('/')).map((e) => e.name);
    assert.ok(!names.some((n) => n.startsWith('SM')), names.join(', '));
    assert.ok(names.includes('σIG.BIN'), names.join(', '));
    assert.equal(fs.warnings.length, 1);
    assert.match(fs.warnings[0], /directory \/: the entry at byte \d+ of the volume is skipped: a "\/" in the name "SM\/LL.TXT"/);
  });
});

describe('boot sector', () => {
  const cases: Array<[string, (l: Layout) => void, RegExp]> = [
    ['bytes per sector 0', (l) => l.view.setUint16(11, 0, true), /bytes per sector \(BPB_BytsPerSec\) is 0, expected 512, 1024, 2048 or 4096/],
    ['bytes per sector 100', (l) => l.view.setUint16(11, 100, true), /BPB_BytsPerSec\) is 100/],
    ['sectors per cluster 0', (l) => { l.bytes[13] = 0; }, /sectors per cluster \(BPB_SecPerClus\) is 0, expected a power of two/],
    ['sectors per cluster 3', (l) => { l.bytes[13] = 3; }, /BPB_SecPerClus\) is 3/],
    ['reserved sectors 0', (l) => l.view.setUint16(14, 0, true), /reserved sectors \(BPB_RsvdSecCnt\) is 0/],
    ['no FATs', (l) => { l.bytes[16] = 0; }, /number of FATs \(BPB_NumFATs\) is 0/],
    ['no sectors', (l) => { l.view.setUint16(19, 0, true); l.view.setUint32(32, 0, true); }, /total sectors .* is 0/],
    ['FAT size 0', (l) => { l.view.setUint16(22, 0, true); l.view.setUint32(36, 0, true); }, /sectors per FAT .* is 0/],
    ['FATs past the end', (l) => l.view.setUint16(22, 0xfff0, true), /first data sector .* is \d+, expected less than the \d+ sectors/],
    ['a FAT too small for its clusters', (l) => l.view.setUint16(22, 1, true), /sectors per FAT is 1, expected enough for \d+ FAT1[26] entries/],
    ['FAT16 root of 0 entries', (l) => l.view.setUint16(17, 0, true), /root directory entries \(BPB_RootEntCnt\) of a FAT\d+ is 0/],
    ['absurd total sectors', (l) => { l.view.setUint16(19, 0, true); l.view.setUint32(32, 0xffffffff, true); }, /count of data clusters is \d+, expected at most 268435445/],
  ];
  for (const [what, patch, pattern] of cases) {
    test(what, async () => {
      const l = copyOf(16);
      patch(l);
      await assertCorrupt(() => open(l), /FAT boot sector/, pattern);
    });
  }
  test('FAT32: root cluster 0 or past the end, version 1.0, an active FAT that does not exist', async () => {
    for (const [patch, pattern] of [
      [(l: Layout) => l.view.setUint32(44, 0, true), /root cluster \(BPB_RootClus\) is 0, expected 2 to \d+/],
      [(l: Layout) => l.view.setUint32(44, 0x0fffffff, true), /root cluster \(BPB_RootClus\) is 268435455/],
      [(l: Layout) => l.view.setUint16(42, 0x0100, true), /FAT32 version \(BPB_FSVer\) is 256, expected 0\.0/],
      [(l: Layout) => l.view.setUint16(40, 0x0085, true), /active FAT \(BPB_ExtFlags bits 0-3\) is 5, expected less than the 2 FATs/],
    ] as const) {
      const l = copyOf(32);
      patch(l);
      await assertCorrupt(() => open(l), pattern);
    }
  });
  test('a volume shorter than its boot sector says: a warning, and reads past the end fail', async () => {
    const l = copyOf(16);
    const cut = new Layout(l.bytes.subarray(0, l.clusterOffset(l.firstCluster(l.entry('BIG     BIN'))) + 4096), 16);
    const fs = await openFatDisk(memoryDisk(cut.bytes));
    assert.match(fs.warnings.join('\n'), /says the volume has 16777216 bytes, but it has only \d+/);
    assert.equal((await fs.read('/BIG.BIN', 0, 4096)).length, 4096);
    await assertCorrupt(() => readAll(fs, '/BIG.BIN'), /lie outside the volume/);
  });
});

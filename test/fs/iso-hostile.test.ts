// Hostile ISO 9660 images: an xorriso image (Rock Ridge + Joliet) with one structure broken by
// hand gives a PloopError('ECORRUPT') naming it, quickly; then a mutation campaign over the
// volume descriptors, directory records and Rock Ridge areas: a result or a PloopError, no hang.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../helpers/prng.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { PloopError } from '../../src/errors.ts';
import { openIso9660 } from '../../src/fs/iso9660/index.ts';
import { FileTree } from '../../src/fs/tree.ts';
import { volumeOf, type DiskReader } from '../../src/fs/volume.ts';
import { memoryDisk, overlayDisk, run } from './fat-images.ts';

const CASES = Number(process.env.ISO_FUZZ_CASES ?? 5000);
const SEED = Number(process.env.ISO_FUZZ_SEED ?? 0x150f022);
const CASE_TIMEOUT_MS = 5000;
const PVD = 16 * 2048;

let tmp: { dir: string; cleanup: () => Promise<void> };
let base: Uint8Array;
/** Volume offsets of every directory record of the tree (the inode numbers a clean walk gives). */
let records: number[] = [];

async function openBytes(disk: DiskReader): Promise<FileTree> {
  const volume = volumeOf(disk, 0, disk.size);
  return new FileTree(await openIso9660(volume), volume);
}

async function walk(fs: FileTree, dir = '/', out: number[] = [], limit = 5000): Promise<number[]> {
  for (const e of await fs.readdir(dir)) {
    if (out.length >= limit) break;
    out.push(e.inode);
    if (e.type === 'dir') await walk(fs, e.path, out, limit);
    else if (e.type === 'file') await fs.read(e, 0, Math.min(e.size, 1 << 20));
    else if (e.type === 'symlink') await fs.readlink(e);
  }
  return out;
}

before(async () => {
  tmp = await makeTempDir('ploop-iso-hostile-');
  const src = join(tmp.dir, 'src');
  const prng = new Prng(4);
  mkdirSync(join(src, 'sub', 'inner'), { recursive: true });
  writeFileSync(join(src, 'file.bin'), prng.bytes(5000));
  writeFileSync(join(src, 'sub', 'a long name with spaces.txt'), prng.bytes(100));
  writeFileSync(join(src, 'sub', 'inner', 'deep.txt'), prng.bytes(10));
  symlinkSync('sub/inner/deep.txt', join(src, 'link'));
  // A target this long needs a Rock Ridge continuation area (CE).
  symlinkSync('abcdefghij/'.repeat(30) + 'end', join(src, 'long link'));
  const iso = join(tmp.dir, 'base.iso');
  run('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-o', iso, src]);
  base = new Uint8Array(readFileSync(iso));
  records = await walk(await openBytes(memoryDisk(base)));
  assert.ok(records.length >= 6);
});
after(async () => {
  await tmp.cleanup();
});

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
/** Write a both-endian 32-bit number. */
function both32(b: Uint8Array, at: number, v: number): void {
  const view = new DataView(b.buffer, b.byteOffset);
  view.setUint32(at, v, true);
  view.setUint32(at + 4, v, false);
}
function recordNamed(b: Uint8Array, name: string): number {
  for (const at of records) if (new TextDecoder().decode(b.subarray(at + 33, at + 33 + b[at + 32])).startsWith(name)) return at;
  throw new Error(`no record ${name}`);
}

async function assertCorrupt(fn: () => Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof PloopError && e.code === 'ECORRUPT', String(e));
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
  assert.ok(performance.now() - t0 < 2000);
}

test('volume descriptors: no CD001, a bad block size, no primary descriptor', async () => {
  let b = base.slice();
  b.set([0x58], PVD + 1);
  await assertCorrupt(() => openBytes(memoryDisk(b)), /sector 16: standard identifier is "XD001", expected "CD001"/);
  b = base.slice();
  new DataView(b.buffer).setUint16(PVD + 128, 4096, true);
  await assertCorrupt(() => openBytes(memoryDisk(b)), /logical block size is 4096, expected 512, 1024 or 2048/);
  b = base.slice();
  b[PVD] = 3;
  await assertCorrupt(() => openBytes(memoryDisk(b)), /no primary volume descriptor/);
});

test('directory records: a length past its block, an identifier past its record', async () => {
  let b = base.slice();
  const at = recordNamed(b, 'FILE');
  b[at] = 20;
  await assertCorrupt(async () => (await openBytes(memoryDisk(b))).readdir('/'), /directory \/, record at byte \d+: length 20 does not fit \(expected 34 to \d+, within its block\)/);
  b = base.slice();
  b[at + 32] = 200;
  await assertCorrupt(async () => (await openBytes(memoryDisk(b))).readdir('/'), /identifier length 200 does not fit its record/);
});

test('a file extent past the end, a directory of 4 GiB, a directory cycle', async () => {
  let b = base.slice();
  both32(b, recordNamed(b, 'FILE') + 2, 0x7fffff00);
  await assertCorrupt(async () => (await openBytes(memoryDisk(b))).read('/file.bin', 0, 100), /file \/file\.bin: its extent at block 2147483392 of 5000 bytes runs past the volume's \d+ blocks/);
  b = base.slice();
  both32(b, recordNamed(b, 'SUB') + 10, 0xffffffff);
  await assertCorrupt(async () => (await openBytes(memoryDisk(b))).readdir('/sub'), /directory \/sub: its data length is 4294967295 bytes/);
  b = base.slice();
  const sub = recordNamed(b, 'SUB');
  const subExtent = u32(b, sub + 2);
  both32(b, recordNamed(b, 'INNER') + 2, subExtent);
  const fs = await openBytes(memoryDisk(b));
  await assertCorrupt(() => fs.readdir('/sub/inner'), /directory \/sub\/inner: its extent \(block \d+\) is that of its ancestor \/sub \(a directory cycle\)/);
});

test('a Rock Ridge continuation (CE) area that continues into itself', async () => {
  const b = base.slice();
  const at = recordNamed(b, 'LONG');
  const su = b.subarray(at, at + b[at]);
  const ce = Buffer.from(su).indexOf('CE');
  assert.ok(ce > 0, 'the long symlink has a CE entry');
  const block = u32(su, ce + 4);
  const offset = u32(su, ce + 12);
  // Write, at the start of the continuation area, a CE that points at that same area.
  const area = block * 2048 + offset;
  b.set([0x43, 0x45, 28, 1], area);
  both32(b, area + 4, block);
  both32(b, area + 12, offset);
  both32(b, area + 20, 28);
  await assertCorrupt(async () => (await openBytes(memoryDisk(b))).readdir('/'), /\/LONG_LIN.*Rock Ridge continuation \(CE\) chain is longer than 16 areas/);
});

test(`ISO metadata mutations: ${CASES} cases end in a result or a PloopError`, { timeout: 5 * 60_000 }, async () => {
  const prng = new Prng(SEED);
  let walked = 0;
  let refused = 0;
  const blocks = [...new Set(records.map((r) => Math.floor(r / 2048)))];
  for (let n = 0; n < CASES; n++) {
    const patch = new Map<number, number>();
    const what: string[] = [];
    for (let i = 0, count = 1 + prng.int(4); i < count; i++) {
      const k = prng.int(10);
      let at: number;
      if (k < 2) at = PVD + prng.pick([0, 1, 80, 81, 82, 83, 128, 129, 156, 158, 159, 166, 167, 168, 169, 181, 188, prng.int(2048)]);
      else if (k < 3) at = 17 * 2048 + prng.int(2048); // the Joliet descriptor
      else if (k < 7) at = prng.pick(records) + prng.pick([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 25, 32, 33, 34, 35, prng.int(120)]);
      else at = prng.pick(blocks) * 2048 + prng.int(2048);
      const v = prng.pick([0, 1, 2, 0x7f, 0x80, 0xff, 0x22, 0x34, prng.int(256)]);
      patch.set(at, v);
      what.push(`@${at}=${v}`);
    }
    const label = `case ${n} (seed ${SEED}): ${what.join(', ')}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        (async () => {
          await walk(await openBytes(overlayDisk(base, patch)));
          walked++;
        })(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${label}: no result after ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
        }),
      ]);
    } catch (e) {
      if (!(e instanceof PloopError)) assert.fail(`${label}: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
      refused++;
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(`${CASES} ISO cases: ${walked} walked whole, ${refused} refused with a PloopError`);
  assert.ok(walked > CASES / 10 && refused > CASES / 20, `${walked} walked, ${refused} refused`);
});

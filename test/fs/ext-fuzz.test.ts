// Mutation fuzzing of the ext reader: small real filesystems made by mkfs.ext4 -d (ext4 with
// metadata_csum, an htree directory and a depth-1 extent tree; ext2 with indirect blocks on
// 1 KiB blocks; ext4 with inline data), their metadata bytes mutated (superblock, group
// descriptors, inode tables, directory, index, extent and indirect blocks: the blocks a clean
// walk reads one at a time), then the whole tree walked, every path looked up and every file
// read. Each case returns or throws a PloopError, within a time bound; never another exception.
// Deterministic: FUZZ_SEED and FUZZ_CASES change the campaign; a failure names the case.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, symlinkSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { makeImage } from './ext-helpers.ts';
import { volumeOf } from '../../src/fs/volume.ts';
import { openExt } from '../../src/fs/ext/index.ts';
import { FileTree } from '../../src/fs/tree.ts';
import { PloopError } from '../../src/errors.ts';
import type { FsEntry } from '../../src/fs/types.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 0xe47f);
/** A case that takes longer than this fails (an async hang, or a hostile structure walked too long). */
const CASE_MS = 5000;
/** Bytes read of one file at most (a mutated size may claim terabytes of holes). */
const FILE_READ_LIMIT = 1 << 20;

interface Seed { name: string; bytes: Uint8Array; blockBytes: number; metadata: Array<[number, number]> }
let dir: string;
let cleanup: () => Promise<void>;
const seeds: Seed[] = [];

function memoryDisk(bytes: Uint8Array, log?: Array<[number, number]>) {
  return {
    size: bytes.length,
    read: async (offset: number, length: number) => {
      log?.push([offset, length]);
      return bytes.slice(offset, offset + length);
    },
  };
}

async function walk(bytes: Uint8Array, log?: Array<[number, number]>): Promise<number> {
  const volume = volumeOf(memoryDisk(bytes, log), 0, bytes.length);
  const tree = new FileTree(await openExt(volume), volume);
  let seen = 0;
  const dirs = new Set<number>();
  const visit = async (path: string): Promise<void> => {
    let entries: FsEntry[];
    try {
      entries = await tree.readdir(path);
    } catch (e) {
      if (e instanceof PloopError) return;
      throw e;
    }
    for (const e of entries) {
      // Every few entries also through a path lookup (the htree index, when there is one).
      if (seen++ % 7 === 0) await settle(tree.lstat(e.path));
      if (e.type === 'file') await settle(tree.read(e, 0, Math.min(e.size, FILE_READ_LIMIT)));
      if (e.type === 'symlink') await settle(tree.stat(e.path));
      // A directory seen before (a cycle, or a second link to it) is not walked again.
      if (e.type === 'dir' && !dirs.has(e.inode)) {
        dirs.add(e.inode);
        await visit(e.path);
      }
    }
  };
  await visit('/');
  return seen;
}

/** A PloopError is an answer; anything else is a bug and propagates. */
async function settle(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof PloopError)) throw e;
  }
}

before(async () => {
  ({ dir, cleanup } = await makeTempDir('ploop-ext-fuzz-'));
  const src = join(dir, 'src');
  mkdirSync(join(src, 'a/b/c'), { recursive: true });
  mkdirSync(join(src, 'many'));
  for (let i = 0; i < 150; i++) writeFileSync(join(src, 'many', `n${i}-${'q'.repeat(i % 40)}`), `${i}`);
  const rng = new Prng(7);
  writeFileSync(join(src, 'a/tiny'), 'tiny');
  writeFileSync(join(src, 'a/b/mid'), rng.bytes(3000));
  writeFileSync(join(src, 'a/b/c/big'), rng.bytes(300_000));
  const sparse = Buffer.alloc(12 * 8192);
  for (let i = 0; i < 12; i++) sparse.fill(i + 1, i * 8192, i * 8192 + 4096);
  writeFileSync(join(src, 'runs'), sparse);
  symlinkSync('a/tiny', join(src, 'fast'));
  symlinkSync('z'.repeat(200), join(src, 'slow'));
  linkSync(join(src, 'a/tiny'), join(src, 'hard'));
  for (const [name, options] of [
    ['ext4-csum', ['-b', '1024', '-O', '^has_journal']],
    ['ext2-indirect', ['-t', 'ext2', '-b', '1024']],
    ['ext4-inline', ['-O', 'inline_data,^has_journal', '-b', '4096', '-N', '256']],
  ] as const) {
    const path = makeImage(join(dir, `${name}.img`), src, [...options], 4);
    const bytes = new Uint8Array(readFileSync(path));
    const log: Array<[number, number]> = [];
    await walk(bytes, log);
    const blockBytes = name === 'ext4-inline' ? 4096 : 1024;
    // Metadata: the superblock and every block read alone (data comes in runs, metadata block by block).
    const metadata = log.filter(([, length]) => length === blockBytes || length === 2048);
    seeds.push({ name, bytes, blockBytes, metadata });
  }
});
after(() => cleanup());

function interesting(rng: Prng, current: number): number {
  return rng.pick([0, 1, 2, 7, 0x7f, 0x80, 0xff, 0x100, 0xfff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, current + 1, current - 1, current * 2, current >>> 1, current ^ (1 << rng.int(32)), rng.nextU32()]) >>> 0;
}

function mutate(rng: Prng, seed: Seed): { bytes: Uint8Array; what: string[] } {
  const b = seed.bytes.slice();
  const view = new DataView(b.buffer);
  const what: string[] = [];
  const count = 1 + (rng.chance(0.4) ? rng.int(4) : 0);
  for (let i = 0; i < count; i++) {
    const [start, length] = rng.chance(0.15) ? [1024, 1024] : rng.pick(seed.metadata);
    // Bias toward the structure heads: superblock fields, entry headers, extent headers.
    const off = start + (rng.chance(0.5) ? rng.int(Math.min(length, 128)) : rng.int(length)) & ~(rng.chance(0.5) ? 3 : 0);
    const kind = rng.pick(['byte', 'bit', 'u16', 'u32'] as const);
    if (off + 4 > b.length) continue;
    if (kind === 'byte') b[off] = rng.int(256);
    else if (kind === 'bit') b[off] ^= 1 << rng.int(8);
    else if (kind === 'u16') view.setUint16(off, interesting(rng, view.getUint16(off, true)) & 0xffff, true);
    else view.setUint32(off, interesting(rng, view.getUint32(off, true)), true);
    what.push(`${kind}@${off}`);
  }
  return { bytes: b, what };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

test(`ext fuzz: ${CASES} mutated filesystems each read through or refused with a PloopError`, { timeout: 10 * 60_000 }, async () => {
  for (const s of seeds) assert.ok((await walk(s.bytes)) > 150, `${s.name}: the clean seed walks`);
  const rng = new Prng(SEED);
  const tally = { opened: 0, refused: 0, slowestMs: 0 };
  for (let c = 0; c < CASES; c++) {
    const seed = seeds[c % seeds.length];
    const { bytes, what } = mutate(rng, seed);
    const label = `case ${c} (seed ${seed.name}, FUZZ_SEED=${SEED}): ${what.join(', ')}`;
    const started = performance.now();
    try {
      await withTimeout(walk(bytes), CASE_MS, label);
      tally.opened++;
    } catch (e) {
      if (!(e instanceof PloopError)) {
        const err = e instanceof Error ? e : new Error(String(e));
        err.message = `${label}: ${err.name}: ${err.message}`;
        throw err;
      }
      tally.refused++;
    }
    const ms = performance.now() - started;
    tally.slowestMs = Math.max(tally.slowestMs, ms);
    assert.ok(ms < CASE_MS, `${label}: took ${ms.toFixed(0)} ms`);
  }
  console.log(`ext fuzz: ${CASES} cases, ${tally.opened} walked through (errors inside answered with PloopError), ${tally.refused} refused at open, slowest ${tally.slowestMs.toFixed(0)} ms`);
});

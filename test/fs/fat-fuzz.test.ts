// Mutation fuzzing of FAT metadata: small real images (mkfs.fat + mcopy) get their boot sector,
// FAT entries and directory entries mutated; each case opens the image, walks the whole tree and
// reads every file. Every case ends in a result or a PloopError: never another exception type,
// never a hang (each case has a deadline).
//
// Deterministic: one seeded PRNG (test/helpers/prng.ts); a failure names the case, the seed
// image and the mutations. FAT_FUZZ_CASES / FAT_FUZZ_SEED change the campaign,
// FAT_FUZZ_ONLY=12,345 replays cases.

import { test, before, after } from 'node:test';
import { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../helpers/prng.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { PloopError } from '../../src/errors.ts';
import type { FileTree } from '../../src/fs/tree.ts';
import { Layout, mcopyTree, mkfsFat, openFatDisk, overlayDisk as overlay, walkFs } from './fat-images.ts';

const CASES = Number(process.env.FAT_FUZZ_CASES ?? 10000);
const SEED = Number(process.env.FAT_FUZZ_SEED ?? 0xfa7f022);
const only = process.env.FAT_FUZZ_ONLY ? new Set(process.env.FAT_FUZZ_ONLY.split(',').map(Number)) : null;
const CASE_TIMEOUT_MS = 5000;
/** A walk stops after this many entries (cross-linked directories can multiply a tree). */
const MAX_ENTRIES = 5000;
/** Of a file longer than this only both ends are read (a lying size can claim 4 GiB). */
const FULL_READ_LIMIT = 1 << 20;

interface Seed {
  name: string;
  bytes: Uint8Array;
  layout: Layout;
  /** Byte offsets of the short entries of the tree (the inode numbers a clean walk gives). */
  entries: number[];
  /** Clusters in use (FAT entry not 0). */
  used: number[];
  maxCluster: number;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
const seeds: Seed[] = [];

before(async () => {
  tmp = await makeTempDir('ploop-fat-fuzz-');
  const src = join(tmp.dir, 'src');
  const prng = new Prng(5);
  const files: Record<string, number> = {
    'readme.txt': 300, 'A long file name.txt': 2000, 'big.bin': 9000, 'empty': 0,
    'dir one/x.txt': 10, 'dir one/nested/y with long name.dat': 1500, 'dir one/nested/z': 600,
    'two/ünïcødé.txt': 40,
  };
  for (const [path, size] of Object.entries(files)) {
    mkdirSync(join(src, path, '..'), { recursive: true });
    writeFileSync(join(src, path), prng.bytes(size));
  }
  for (const [bits, sizeBytes] of [[12, 360 << 10], [16, 3 << 20], [32, 34 << 20]] as const) {
    const image = mkfsFat(join(tmp.dir, `seed${bits}.img`), { fat: bits, sizeBytes, clusterSectors: 1 });
    mcopyTree(image, src);
    const bytes = new Uint8Array(readFileSync(image));
    const layout = new Layout(bytes, bits);
    const fs = await openFatDisk(overlay(bytes, new Map()));
    const seen = await walkFs(fs);
    const entries = [...seen.values()].map((e) => e.entry!.inode);
    const totalSectors = layout.view.getUint16(19, true) || layout.view.getUint32(32, true);
    const maxCluster = Math.floor((totalSectors * layout.bytesPerSector - layout.dataOffset) / layout.clusterBytes) + 1;
    const used: number[] = [];
    for (let c = 2; c <= maxCluster; c++) if (layout.getFat(c) !== 0) used.push(c);
    seeds.push({ name: `FAT${bits}`, bytes, layout, entries, used, maxCluster });
  }
});
after(async () => {
  await tmp.cleanup();
});

/**
 * A promise deadline cannot stop a loop that never yields to the event loop (cached reads
 * resolve as microtasks), so a watchdog thread kills the process when the case counter stops
 * moving for WATCHDOG_MS, after printing the case: the run fails instead of hanging.
 */
const WATCHDOG_MS = 20_000;
function startWatchdog(): { beat: (label: string) => void; stop: () => void } {
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const label = new Uint8Array(new SharedArrayBuffer(1024));
  const worker = new Worker(`
    const { workerData: d } = require('node:worker_threads');
    const counter = new Int32Array(d.counter), label = new Uint8Array(d.label);
    let last = -1, since = Date.now();
    setInterval(() => {
      const now = Atomics.load(counter, 0);
      if (now !== last) { last = now; since = Date.now(); return; }
      if (Date.now() - since < d.ms) return;
      require('node:fs').writeSync(2, 'FAT fuzz watchdog: no progress in ' + d.ms + ' ms, stuck in ' + Buffer.from(label).toString().replace(/\\0+$/, '') + '\\n');
      process.kill(process.pid, 'SIGKILL');
    }, 500);
  `, { eval: true, workerData: { counter: counter.buffer, label: label.buffer, ms: WATCHDOG_MS } });
  worker.unref();
  return {
    beat(text) {
      label.fill(0);
      label.set(new TextEncoder().encode(text).subarray(0, 1023));
      Atomics.add(counter, 0, 1);
    },
    stop: () => void worker.terminate(),
  };
}

function put(patch: Map<number, number>, at: number, value: number, width: 1 | 2 | 4): void {
  for (let i = 0; i < width; i++) patch.set(at + i, (value >>> (8 * i)) & 0xff);
}

/** Values that sit on the edges FAT code gets wrong. */
function interesting(prng: Prng, seed: Seed): number {
  return prng.pick([
    0, 1, 2, 3, seed.maxCluster, seed.maxCluster + 1, seed.maxCluster - 1, prng.pick(seed.used),
    0xff7, 0xff8, 0xfff, 0xfff7, 0xfff8, 0xffff, 0x0ffffff7, 0x0ffffff8, 0x0fffffff, 0xffffffff,
    0x10000, 0x7fffffff, prng.nextU32(), prng.int(256),
  ]);
}

/** Apply 1-4 mutations to metadata; returns them, described. */
function mutate(prng: Prng, seed: Seed, patch: Map<number, number>): string[] {
  const l = seed.layout;
  const done: string[] = [];
  const count = 1 + prng.int(4);
  for (let i = 0; i < count; i++) {
    const kind = prng.int(10);
    if (kind < 2) {
      // Boot sector: a BPB field, or any byte of the first 90.
      const fields: Array<[number, 1 | 2 | 4]> = [[11, 2], [13, 1], [14, 2], [16, 1], [17, 2], [19, 2], [22, 2], [32, 4], [36, 4], [40, 2], [42, 2], [44, 4], [48, 2]];
      const [at, width] = prng.chance(0.8) ? prng.pick(fields) : [prng.range(0, 89), 1 as const];
      const v = prng.chance(0.5) ? interesting(prng, seed) : prng.nextU32();
      put(patch, at, v, width);
      done.push(`boot[${at}]:${width}=${v >>> 0}`);
    } else if (kind < 5) {
      // A FAT entry of a cluster in use (or any), in the first FAT.
      const c = prng.chance(0.8) ? prng.pick(seed.used) : prng.range(0, seed.maxCluster + 2);
      const v = interesting(prng, seed);
      const base = l.reserved * l.bytesPerSector;
      if (l.bits === 12) {
        const at = base + c + (c >> 1);
        const pair = l.bytes[at] | (l.bytes[at + 1] << 8);
        const next = c & 1 ? (pair & 0x000f) | ((v & 0xfff) << 4) : (pair & 0xf000) | (v & 0xfff);
        put(patch, at, next, 2);
      } else {
        put(patch, base + c * (l.bits / 8), v, (l.bits / 8) as 2 | 4);
      }
      done.push(`fat[${c}]=${v >>> 0}`);
    } else {
      // A directory entry, or the long-name entry before it.
      let at = prng.pick(seed.entries);
      if (prng.chance(0.3)) at -= 32 * prng.range(1, 3);
      const field = prng.pick([0, 0, 1, 11, 12, 13, 14, 16, 18, 20, 22, 24, 26, 26, 28, 28, prng.int(32)]);
      let v: number;
      let width: 1 | 2 | 4 = 1;
      if (field === 26 || field === 20) { v = interesting(prng, seed); width = 2; }
      else if (field === 28) { v = interesting(prng, seed); width = 4; }
      else if (field === 0) v = prng.pick([0, 0xe5, 0x05, 0x2e, 0x2f, 0x41, 0x01, 0x42, 0x43, prng.int(256)]);
      else if (field === 11) v = prng.pick([0x10, 0x0f, 0x08, 0x20, 0x01, 0x18, prng.int(256)]);
      else v = prng.int(256);
      put(patch, at + field, v, width);
      done.push(`entry@${at}+${field}:${width}=${v >>> 0}`);
    }
  }
  return done;
}

/** Walk the tree and read every file; stop after MAX_ENTRIES entries. */
async function exercise(fs: FileTree): Promise<number> {
  let seen = 0;
  const todo = ['/'];
  while (todo.length > 0 && seen < MAX_ENTRIES) {
    const dir = todo.pop() as string;
    for (const e of await fs.readdir(dir)) {
      if (++seen >= MAX_ENTRIES) break;
      if (e.type === 'dir') todo.push(e.path);
      else if (e.type === 'file') {
        if (e.size <= FULL_READ_LIMIT) {
          for await (const chunk of fs.stream(e, { chunkBytes: 64 << 10 })) void chunk;
        } else {
          await fs.read(e, 0, 64 << 10);
          await fs.read(e, e.size - (64 << 10), 64 << 10);
        }
      }
      await fs.lstat(e.path);
    }
  }
  return seen;
}

test(`FAT metadata mutations: ${CASES} cases end in a result or a PloopError, never a hang`, { timeout: 10 * 60_000 }, async () => {
  const prng = new Prng(SEED);
  const outcomes = { opened: 0, walked: 0, refused: 0 };
  const codes = new Map<string, number>();
  const watchdog = startWatchdog();
  for (let n = 0; n < CASES; n++) {
    const seed = seeds[n % seeds.length];
    const patch = new Map<number, number>();
    const mutations = mutate(prng, seed, patch);
    if (only && !only.has(n)) continue;
    const label = `case ${n} (seed ${SEED}, ${seed.name}): ${mutations.join(', ')}`;
    watchdog.beat(label);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${label}: no result after ${CASE_TIMEOUT_MS} ms (a hang?)`)), CASE_TIMEOUT_MS);
    });
    try {
      await Promise.race([
        (async () => {
          const fs = await openFatDisk(overlay(seed.bytes, patch));
          outcomes.opened++;
          await exercise(fs);
          outcomes.walked++;
        })(),
        deadline,
      ]);
    } catch (e) {
      if (!(e instanceof PloopError)) {
        assert.fail(`${label}: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
      }
      outcomes.refused++;
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      assert.ok(e.message.length > 20, `${label}: a message that says something: ${e.message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  watchdog.stop();
  const summary = `${CASES} cases: ${outcomes.opened} opened, ${outcomes.walked} walked whole, ${outcomes.refused} refused (${[...codes].map(([c, k]) => `${c} ${k}`).join(', ')})`;
  console.log(summary);
  if (!only) {
    // The campaign must exercise both sides: mutations that leave a readable tree, and ones refused.
    assert.ok(outcomes.walked > CASES / 10, summary);
    assert.ok(outcomes.refused > CASES / 10, summary);
  }
});

// Mutation fuzzing of the header, the BAT and the file length (docs/format.md, 'Open: what is
// refused', widened): every mutated image either opens, and then reads back exactly what its BAT
// maps, takes a write and a discard, and passes through check and check --repair, or is refused
// with a PloopError. Never a TypeError, RangeError or WebAssembly RuntimeError, never a hang, and
// no WebAssembly memory left behind.
//
// Deterministic: one seeded PRNG; a failure message names the case number, the seed image and
// the mutations, so a case can be replayed (FUZZ_CASES / FUZZ_SEED change the campaign).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { PloopImage } from '../../src/engine/image.ts';
import { createImage } from '../../src/engine/create.ts';
import { checkImage, type CheckReport } from '../../src/engine/check.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { getCore, type WasmCore } from '../../src/core/wasm.ts';
import { LEVEL_NONE } from '../../src/core/bat-map.ts';
import { newHeader, serializeHeader, MAX_TRACKS, INUSE_MAGIC, CLOSED_V21_MAGIC } from '../../src/format/header.ts';
import { PloopError } from '../../src/errors.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1e55);
/** A case that takes longer than this (an async hang) fails. */
const CASE_TIMEOUT_MS = 5000;
/** Holes longer than this are read at both ends only (a lying header can claim terabytes). */
const FULL_READ_LIMIT = 1 << 20;
/** Replay only these case numbers (comma-separated), e.g. FUZZ_ONLY=573,1598; FUZZ_SLOW=1 lists slow cases. */
const only = process.env.FUZZ_ONLY ? new Set(process.env.FUZZ_ONLY.split(',').map(Number)) : null;

/** sfc32: small, fast, good enough, and the same on every platform. */
function prng(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    const r = (t + d) | 0;
    c = (c + r) | 0;
    return (r >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)];

const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const setU32 = (b: Uint8Array, off: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(off, v >>> 0, true);

function pattern(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 + int(rng, 255);
  return out;
}

interface Seed { name: string; bytes: Uint8Array }

/** Make an image with the engine: create, write, discard, close. */
async function engineImage(rng: Rng, o: { format: 'v1' | 'v2'; clusterSize: number; size: number; writes: Array<[number, number]>; discards?: Array<[number, number]> }): Promise<Uint8Array> {
  const store = new MemoryStore();
  await createImage(store, { size: o.size, clusterSize: o.clusterSize, format: o.format });
  const img = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  for (const [offset, length] of o.writes) await img.write(offset, pattern(rng, length));
  for (const [offset, length] of o.discards ?? []) await img.discard(offset, length);
  await img.close();
  return store.bytes().slice();
}

async function makeSeeds(rng: Rng): Promise<Seed[]> {
  const K = 1024;
  const seeds: Seed[] = [];
  // v2, 4 KiB clusters, 64 entries: one BAT cluster; a discarded cluster leaves a hole inside.
  seeds.push({ name: 'v2-4k', bytes: await engineImage(rng, {
    format: 'v2', clusterSize: 4 * K, size: 256 * K,
    writes: [[0, 4 * K], [4 * K, 4 * K], [5 * 4 * K, 4 * K], [63 * 4 * K, 4 * K], [2 * 4 * K + 100, 5000]], discards: [[4 * K, 4 * K]],
  }) });
  // v1 (sector units), 4 KiB clusters, 2048 entries: header + BAT span three md pages.
  seeds.push({ name: 'v1-4k-3pages', bytes: await engineImage(rng, {
    format: 'v1', clusterSize: 4 * K, size: 8 << 20, writes: [[0, 4 * K], [1000 * 4 * K + 7, 4 * K], [2047 * 4 * K, 4 * K], [1500 * 4 * K, 100]],
  }) });
  // v2 with 512-byte clusters (tracks 1), data_off 2 sectors.
  seeds.push({ name: 'v2-512', bytes: await engineImage(rng, {
    format: 'v2', clusterSize: 512, size: 64 * K, writes: [[0, 512], [512 * 7, 1024], [64 * K - 512, 512], [3000, 2000]],
  }) });
  // v2 with a cluster that is not a power of two (3 KiB, tracks 6).
  seeds.push({ name: 'v2-3k', bytes: await engineImage(rng, {
    format: 'v2', clusterSize: 3 * K, size: 96 * K, writes: [[0, 3 * K], [10 * 3 * K, 3 * K], [31 * 3 * K, 3 * K]],
  }) });
  // v1 with data_off 0: data right after the sector-rounded BAT (byte 512), not cluster aligned.
  {
    const h = { ...newHeader({ size: 32 * K, clusterBytes: K, format: 'v1' }), dataOff: 0 };
    const bytes = new Uint8Array(512 + 4 * K);
    bytes.set(serializeHeader(h));
    for (let s = 0; s < 4; s++) {
      setU32(bytes, 64 + 4 * [0, 3, 9, 31][s], (512 + s * K) / 512);
      bytes.set(pattern(rng, K), 512 + s * K);
    }
    seeds.push({ name: 'v1-dataoff0', bytes });
  }
  // v2 closed with a format extension cluster (inuse "v2.1") and a leaked cluster after it.
  {
    const base = seeds[0].bytes;
    const bytes = new Uint8Array(base.length + 2 * 4096);
    bytes.set(base);
    bytes.set(pattern(rng, 4096), base.length);
    setU32(bytes, 56, base.length / 512);
    setU32(bytes, 44, CLOSED_V21_MAGIC);
    seeds.push({ name: 'v2-ext-leak', bytes });
  }
  // Not closed cleanly: in-use flag set.
  {
    const bytes = seeds[1].bytes.slice();
    setU32(bytes, 44, INUSE_MAGIC);
    seeds.push({ name: 'v1-unclean', bytes });
  }
  return seeds;
}

const HEADER_FIELDS = [16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60] as const;

function interesting(rng: Rng, current: number, fileBytes: number): number {
  return pick(rng, [
    () => 0, () => 1, () => 2, () => 8, () => 16, () => 0x7f, () => 0x80, () => 0xff, () => 0x100, () => 0xffff, () => 0x10000,
    () => 0x7fffffff, () => 0x80000000, () => 0xfffffffe, () => 0xffffffff,
    () => MAX_TRACKS, () => MAX_TRACKS + 1, () => 536870911, () => 536870912, () => 500_000_000,
    () => Math.floor(fileBytes / 512), () => Math.floor(fileBytes / 512) + 1, () => Math.floor(fileBytes / 4096), () => Math.floor(fileBytes / 4),
    () => current + 1, () => current - 1, () => current * 2, () => current >>> 1, () => current ^ (1 << int(rng, 32)),
    () => INUSE_MAGIC, () => CLOSED_V21_MAGIC,
    () => int(rng, 0x100000000), () => int(rng, 64),
  ])() >>> 0;
}

/** Apply 1-3 mutations; returns their descriptions. */
function mutate(rng: Rng, bytes: Uint8Array): { bytes: Uint8Array; what: string[] } {
  let b = bytes.slice();
  const what: string[] = [];
  const n = 1 + (rng() < 0.3 ? int(rng, 3) : 0);
  for (let i = 0; i < n; i++) {
    const batEntries = b.length >= 64 ? u32(b, 32) : 0;
    const batSlots = Math.max(0, Math.min(batEntries, Math.floor((b.length - 64) / 4)));
    const kind = pick(rng, ['hdrField', 'hdrField', 'hdrByte', 'hdrBit', 'batEntry', 'batEntry', 'batEntry', 'batByte', 'truncate', 'extend', 'dataByte'] as const);
    if (b.length < 64 && kind !== 'extend') continue;
    switch (kind) {
      case 'hdrField': {
        const off = pick(rng, HEADER_FIELDS);
        const v = interesting(rng, u32(b, off), b.length);
        setU32(b, off, v);
        what.push(`u32@${off}=${v}`);
        break;
      }
      case 'hdrByte': {
        const off = int(rng, 64);
        const v = int(rng, 256);
        b[off] = v;
        what.push(`byte@${off}=${v}`);
        break;
      }
      case 'hdrBit': {
        const bit = int(rng, 64 * 8);
        b[bit >> 3] ^= 1 << (bit & 7);
        what.push(`bit ${bit}`);
        break;
      }
      case 'batEntry': {
        if (batSlots === 0) break;
        const mapped: number[] = [];
        for (let e = 0; e < batSlots; e++) if (u32(b, 64 + 4 * e) !== 0) mapped.push(e);
        const e = mapped.length > 0 && rng() < 0.6 ? pick(rng, mapped) : int(rng, batSlots);
        const cur = u32(b, 64 + 4 * e);
        const v = rng() < 0.3 && mapped.length > 0 ? u32(b, 64 + 4 * pick(rng, mapped)) : interesting(rng, cur, b.length);
        setU32(b, 64 + 4 * e, v);
        what.push(`bat[${e}]=${v}`);
        break;
      }
      case 'batByte': {
        if (batSlots === 0) break;
        const off = 64 + int(rng, batSlots * 4);
        const v = int(rng, 256);
        b[off] = v;
        what.push(`batbyte@${off}=${v}`);
        break;
      }
      case 'truncate': {
        const tracks = u32(b, 28);
        const cluster = tracks > 0 && tracks < 8192 ? tracks * 512 : 4096;
        const len = rng() < 0.5 ? int(rng, b.length + 1) : Math.max(0, Math.min(b.length, (int(rng, Math.ceil(b.length / cluster)) + 1) * cluster + int(rng, 3) - 1));
        b = b.slice(0, len);
        what.push(`truncate ${len}`);
        break;
      }
      case 'extend': {
        const extra = rng() < 0.5 ? 4096 * (1 + int(rng, 3)) : 1 + int(rng, 1000);
        const grown = new Uint8Array(b.length + extra);
        grown.set(b);
        if (rng() < 0.5) grown.set(pattern(rng, extra), b.length);
        b = grown;
        what.push(`extend +${extra}`);
        break;
      }
      case 'dataByte': {
        const off = int(rng, b.length);
        b[off] ^= 0xff;
        what.push(`flip byte ${off}`);
        break;
      }
    }
  }
  return { bytes: b, what };
}

/** Anything but a PloopError is a bug: rethrow it with the case attached. */
function onlyPloopError(e: unknown, where: string): PloopError {
  if (e instanceof PloopError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  err.message = `${where}: not a PloopError: ${err.name}: ${err.message}`;
  throw err;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
    }),
  ]);
}

function assertZero(bytes: Uint8Array, what: string): void {
  const i = bytes.findIndex((x) => x !== 0);
  assert.equal(i, -1, `${what}: non-zero byte at ${i}`);
}

/** `n` bytes of the file at `host`, zeros past its end (what QEMU and we read there). */
function fileAt(file: Uint8Array, host: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  if (host < file.length) out.set(file.subarray(host, Math.min(file.length, host + n)));
  return out;
}

/** Did the open find the image damaged (it then reads as QEMU does, and refuses writers)? */
function damaged(img: PloopImage): boolean {
  const f = img.findings;
  return f.batProblemCount > 0 || !f.dataOffValid || !f.extOffValid || f.extProblem !== null;
}

/**
 * Read the whole virtual disk through the image and compare with what the BAT says: a mapped
 * extent reads the file's bytes at its host offset (zeros past the file's end, as QEMU reads a
 * cluster the file ends inside), a hole reads zeros. Holes past FULL_READ_LIMIT are sampled at
 * both ends. An undamaged image also has every mapped cluster past the header and BAT, starting
 * inside the file, and no host cluster used twice.
 */
async function readWholeDisk(img: PloopImage, file: Uint8Array): Promise<void> {
  const extents = img.map();
  const strict = !damaged(img);
  let pos = 0;
  const seen = new Set<number>();
  for (const e of extents) {
    assert.equal(e.offset, pos, 'extents cover the disk without gaps');
    pos += e.length;
    if (e.level === LEVEL_NONE) {
      if (e.length <= FULL_READ_LIMIT) assertZero(await img.read(e.offset, e.length), `hole at ${e.offset}`);
      else {
        assertZero(await img.read(e.offset, 65536), `hole head at ${e.offset}`);
        assertZero(await img.read(e.offset + e.length - 65536, 65536), `hole tail at ${e.offset + e.length - 65536}`);
      }
      continue;
    }
    if (strict) {
      assert.ok(e.hostOffset >= img.geometry.firstSlotByte, `extent at ${e.offset} maps host ${e.hostOffset}, inside the metadata`);
      assert.ok(e.hostOffset <= file.length, `extent at ${e.offset} maps host ${e.hostOffset}+${e.length}, past the file (${file.length})`);
      for (let c = e.firstClusterIndex; c * img.clusterSize < e.offset + e.length; c++) {
        const host = img.bat.lookup(c);
        assert.ok(!seen.has(host), `host ${host} mapped twice`);
        seen.add(host);
      }
    }
    // A mapped run longer than FULL_READ_LIMIT (a lying cluster size of up to 2 GiB) is sampled
    // at both ends, like a long hole.
    const pieces = e.length <= FULL_READ_LIMIT ? [[0, e.length]] : [[0, 65536], [e.length - 65536, 65536]];
    for (const [at, n] of pieces) {
      const got = await img.read(e.offset + at, n);
      assert.deepEqual(got, fileAt(file, e.hostOffset + at, n), `data at virtual ${e.offset + at}`);
    }
  }
  assert.equal(pos, img.size);
}

function assertReportSane(r: CheckReport, what: string): void {
  for (const k of ['corruptions', 'corruptionsFixed', 'leakedClusters', 'leakedBytes', 'leaksFixed', 'allocatedClusters', 'fragmentedClusters', 'freeClustersInside', 'imageEndOffset', 'fileSize'] as const) {
    assert.ok(Number.isSafeInteger(r[k]) && r[k] >= 0, `${what}: ${k} = ${r[k]}`);
  }
  assert.ok(r.corruptionsFixed <= r.corruptions, `${what}: fixed more than found`);
  assert.equal(r.clean, r.corruptions === 0 && r.leakedClusters === 0, `${what}: clean flag`);
}

/**
 * For an image that opened: check finds nothing but the in-use flag; then open it read-write,
 * discard the first cluster and write a run, close, and the image reopens, reads the run back
 * and the discarded range as zeros, and checks clean (close cleared the flag and trimmed the tail).
 */
async function writeCycle(bytes: Uint8Array, label: string): Promise<void> {
  const store = new MemoryStore(bytes.slice());
  const before = await checkImage(store);
  const unexpected = before.findings.filter((f) => f.severity === 'corruption' && f.kind !== 'unclean');
  assert.deepEqual(unexpected, [], `${label}: opened, yet check finds corruption`);
  const w = await PloopImage.open(store, { writable: true, keepStoreOpen: true, onWarning: () => {} });
  const discardLength = Math.min(w.size, w.clusterSize);
  const offset = Math.max(0, Math.floor(w.size / 3) - 100);
  const data = new Uint8Array(Math.min(1 + (bytes.length % 9000), w.size - offset)).fill(0xa5);
  try {
    await w.discard(0, discardLength);
    await w.write(offset, data);
  } finally {
    await w.close();
  }
  const r = await PloopImage.open(new MemoryStore(store.bytes().slice(), { writable: false }), { onWarning: () => {} });
  try {
    assert.deepEqual(await r.read(offset, data.length), data, `${label}: written run reads back`);
    if (offset >= discardLength) assertZero(await r.read(0, discardLength), `${label}: discarded range`);
  } finally {
    await r.close();
  }
  const after = await checkImage(store);
  assert.equal(after.clean, true, `${label}: after write and close: ${JSON.stringify(after.findings)}`);
}

interface Tally { cases: number; opened: number; damaged: number; refused: Map<string, number>; checked: number; repaired: number; repairedClean: number }

async function runCase(bytes: Uint8Array, label: string, tally: Tally): Promise<void> {
  // 1. Strict read-only open; on success, read everything.
  let img: PloopImage | null = null;
  try {
    img = await PloopImage.open(new MemoryStore(bytes.slice(), { writable: false }), { onWarning: () => {} });
  } catch (e) {
    const pe = onlyPloopError(e, `${label}: open`);
    tally.refused.set(pe.code, (tally.refused.get(pe.code) ?? 0) + 1);
  }
  let isDamaged = false;
  if (img) {
    tally.opened++;
    isDamaged = damaged(img);
    if (isDamaged) tally.damaged++;
    try {
      await readWholeDisk(img, bytes);
    } catch (e) {
      if (!(e instanceof PloopError)) {
        if (e instanceof Error) e.message = `${label}: read: ${e.message}`;
        throw e;
      }
    } finally {
      await img.close();
    }
  }
  if (img && !isDamaged) await writeCycle(bytes, label);
  if (img && isDamaged) {
    // A damaged image is read, never written before a repair.
    await assert.rejects(PloopImage.open(new MemoryStore(bytes.slice()), { writable: true, onWarning: () => {} }), (e: unknown) => e instanceof PloopError && e.code === 'ECORRUPT', `${label}: a writer is refused`);
  }
  // 2. check, read-only.
  try {
    assertReportSane(await checkImage(new MemoryStore(bytes.slice(), { writable: false })), `${label}: check`);
    tally.checked++;
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    onlyPloopError(e, `${label}: check`);
  }
  // 3. check --repair on a copy, then check again: what repair says it fixed stays fixed.
  const store = new MemoryStore(bytes.slice());
  let repaired: CheckReport | null = null;
  try {
    repaired = await checkImage(store, { repair: true });
  } catch (e) {
    onlyPloopError(e, `${label}: check --repair`);
  }
  if (repaired) {
    tally.repaired++;
    let again: CheckReport;
    try {
      again = await checkImage(store);
    } catch (e) {
      throw new Error(`${label}: check after a successful repair failed: ${e instanceof Error ? e.message : e}`);
    }
    if (repaired.clean) {
      assert.equal(again.clean, true, `${label}: repair reported clean but the next check finds ${JSON.stringify(again.findings.map((f) => f.message))}`);
      tally.repairedClean++;
      // And the strict open accepts it now.
      const reopened = await PloopImage.open(new MemoryStore(store.bytes().slice(), { writable: false }), { onWarning: () => {} });
      try {
        await readWholeDisk(reopened, store.bytes());
      } finally {
        await reopened.close();
      }
    }
  }
}

let core: WasmCore;
let baselineBytes: number;
let baselineMemory: number;

/**
 * A watchdog thread for synchronous hangs (a promise timeout cannot interrupt a loop that never
 * yields): the main thread beats a shared counter after each case; if it stops for 30 s the
 * watchdog prints the last case and kills the process, so the test run fails instead of hanging.
 */
function startWatchdog(): { beat: (label: string) => void; stop: () => void } {
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const labels = new SharedArrayBuffer(512);
  const w = new Worker(`
    const { workerData } = require('node:worker_threads');
    const beats = new Int32Array(workerData.shared);
    const label = new Uint8Array(workerData.labels);
    let last = -1, since = Date.now();
    setInterval(() => {
      const now = Atomics.load(beats, 0);
      if (now !== last) { last = now; since = Date.now(); return; }
      if (Date.now() - since > 30000) {
        const text = Buffer.from(label).toString('utf8').replace(/\\0+$/, '');
        // fs.writeSync, not process.stderr: a worker's stderr goes through the (stuck) main thread.
        require('node:fs').writeSync(2, 'fuzz watchdog: no progress for 30 s after ' + text + '\\n');
        process.kill(process.pid, 'SIGKILL');
      }
    }, 1000);
  `, { eval: true, workerData: { shared: shared.buffer, labels } });
  w.unref();
  const enc = new TextEncoder();
  const labelBytes = new Uint8Array(labels);
  return {
    beat(label: string) {
      labelBytes.fill(0);
      labelBytes.set(enc.encode(label).subarray(0, 511));
      Atomics.add(shared, 0, 1);
    },
    stop() {
      void w.terminate();
    },
  };
}

before(async () => {
  core = await getCore();
  baselineBytes = core.usedBytes;
});

describe('mutation fuzzing', () => {
  let watchdog: ReturnType<typeof startWatchdog>;
  before(() => (watchdog = startWatchdog()));
  after(() => watchdog.stop());

  test(`${CASES} random header, BAT and length mutations of valid v1/v2 images either open and read back correctly or fail with a PloopError`, async (t) => {
    const rng = prng(SEED);
    const seeds = await makeSeeds(rng);
    // The seeds themselves are valid: they open, read back and check clean.
    for (const s of seeds) {
      const img = await PloopImage.open(new MemoryStore(s.bytes.slice(), { writable: false }), { onWarning: () => {} });
      try {
        await readWholeDisk(img, s.bytes);
        assert.ok(img.allocatedClusters() >= 3, `${s.name} has data`);
      } finally {
        await img.close();
      }
      const report = await checkImage(new MemoryStore(s.bytes.slice(), { writable: false }));
      const expectClean = !s.name.includes('unclean') && !s.name.includes('leak');
      assert.equal(report.clean, expectClean, `${s.name}: ${JSON.stringify(report.findings)}`);
    }
    baselineMemory = core.memory.buffer.byteLength;
    const tally: Tally = { cases: 0, opened: 0, damaged: 0, refused: new Map(), checked: 0, repaired: 0, repairedClean: 0 };
    const started = performance.now();
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      const seed = seeds[i % seeds.length];
      const { bytes, what } = mutate(rng, seed.bytes);
      const label = `case ${i} (seed ${seed.name}, ${what.join(', ') || 'no-op'})`;
      if (only && !only.has(i)) {
        tally.cases++;
        continue;
      }
      watchdog.beat(label);
      const t0 = performance.now();
      await withTimeout(runCase(bytes, label, tally), CASE_TIMEOUT_MS, label);
      const took = performance.now() - t0;
      slowest = Math.max(slowest, took);
      if (process.env.FUZZ_SLOW && took > 200) t.diagnostic(`slow: ${Math.round(took)} ms for ${label}`);
      tally.cases++;
    }
    const refused = [...tally.refused.entries()].map(([code, n]) => `${code} ${n}`).join(', ');
    t.diagnostic(`fuzz: ${tally.cases} cases in ${Math.round(performance.now() - started)} ms (slowest ${Math.round(slowest)} ms); opened ${tally.opened} (${tally.damaged} damaged, read only); refused ${refused}; check finished ${tally.checked}; repair finished ${tally.repaired}, clean afterwards ${tally.repairedClean}`);
    assert.equal(tally.cases, CASES);
    if (only) return;
    // The campaign must exercise both outcomes and every kind of refusal that matters.
    assert.ok(tally.opened > CASES / 20, `only ${tally.opened} mutated images opened`);
    // Damaged images open read-only (their writers are refused with ECORRUPT in runCase).
    assert.ok((tally.refused.get('EFORMAT') ?? 0) > CASES / 50, `too few EFORMAT: ${refused}`);
    assert.ok(tally.damaged > CASES / 50, `only ${tally.damaged} damaged images opened read-only`);
    assert.ok(tally.repairedClean > CASES / 10, `repair ended clean only ${tally.repairedClean} times`);
  });

  test('after every image and check has closed, core.usedBytes is back at its starting value and memory did not grow during the campaign', () => {
    assert.equal(core.usedBytes, baselineBytes);
    assert.equal(core.memory.buffer.byteLength, baselineMemory, 'the WebAssembly memory grew while fuzzing small images');
  });
});

describe('lying size fields', () => {
  test('a 4 KiB file that claims 500 million BAT entries is refused in milliseconds without allocating', async () => {
    const h = { ...newHeader({ size: 4096 * 16, clusterBytes: 4096 }), batEntries: 500_000_000 };
    const file = new Uint8Array(4096);
    file.set(serializeHeader(h));
    const usedBefore = core.usedBytes;
    const memoryBefore = core.memory.buffer.byteLength;
    for (const attempt of [
      () => PloopImage.open(new MemoryStore(file.slice(), { writable: false }), { onWarning: () => {} }),
      () => PloopImage.open(new MemoryStore(file.slice()), { writable: true, lenient: true, onWarning: () => {} }),
      () => checkImage(new MemoryStore(file.slice()), { repair: true }),
    ]) {
      const t0 = performance.now();
      await assert.rejects(attempt(), (e: unknown) => {
        assert.ok(e instanceof PloopError);
        assert.equal(e.code, 'EFORMAT');
        assert.match(e.message, /bat_entries 500000000 needs a BAT ending at byte 2000000064, but the file has only 4096 bytes/);
        return true;
      });
      assert.ok(performance.now() - t0 < 200, `took ${performance.now() - t0} ms`);
      assert.equal(core.usedBytes, usedBefore);
      assert.equal(core.memory.buffer.byteLength, memoryBefore);
    }
  });

  test('huge clusters, huge nb_sectors and a huge ext_off on an 8 KiB file cost nothing in proportion to the claim', async () => {
    const base = newHeader({ size: 64 * 1024, clusterBytes: 4096 });
    const memoryBefore = core.memory.buffer.byteLength;
    const usedBefore = core.usedBytes;
    const fileOf = (patch: Partial<typeof base>) => {
      const file = new Uint8Array(8192);
      file.set(serializeHeader({ ...base, ...patch }));
      return file;
    };

    // v1 with data_off 0 is valid for any cluster size: a 32 GiB disk of 2 GiB clusters, all holes.
    const v1 = fileOf({ format: 'v1', tracks: MAX_TRACKS, nbSectors: 16 * MAX_TRACKS, dataOff: 0 });
    const img = await PloopImage.open(new MemoryStore(v1.slice(), { writable: false }), { onWarning: () => {} });
    try {
      assert.equal(img.size, 16 * MAX_TRACKS * 512);
      assert.deepEqual(img.map().map((e) => [e.offset, e.length, e.level]), [[0, img.size, LEVEL_NONE]]);
      assertZero(await img.read(img.size - 4096, 4096), 'last 4 KiB');
    } finally {
      await img.close();
    }
    const v1Store = new MemoryStore(v1.slice());
    const v1Report = await checkImage(v1Store, { repair: true });
    assert.equal(v1Report.leakedBytes, 8192 - 512, 'bytes after the sector-rounded BAT are a leak');
    assert.equal(await v1Store.size(), 512);

    // v2 needs data_off >= one 2 GiB cluster: refused for writing (read-only, it reads as QEMU
    // does: all zeros), and repair does not grow the file by 2 GiB.
    const v2 = fileOf({ tracks: MAX_TRACKS, nbSectors: 16 * MAX_TRACKS });
    await assert.rejects(PloopImage.open(new MemoryStore(v2.slice()), { writable: true }), { code: 'ECORRUPT', message: /data_off is 8 sectors/ });
    const v2Read = await PloopImage.open(new MemoryStore(v2.slice(), { writable: false }), { onWarning: () => {} });
    assertZero(await v2Read.read(0, 4096), 'v2 read-only');
    await v2Read.close();
    const v2Store = new MemoryStore(v2.slice());
    const v2Report = await checkImage(v2Store, { repair: true });
    assert.equal(v2Report.clean, false);
    assert.match(v2Report.findings.find((f) => f.kind === 'data-off')!.message, /not repaired: the file would have to grow by 2143288832 bytes/);
    assert.equal(await v2Store.size(), 8192);

    // ext_off 2^63 sectors: refused for writing, cleared by repair.
    const ext = fileOf({ extOff: 2 ** 63 });
    await assert.rejects(PloopImage.open(new MemoryStore(ext.slice()), { writable: true }), { code: 'ECORRUPT', message: /ext_off 9223372036854776000 sectors/ });
    const extStore = new MemoryStore(ext.slice());
    assert.equal((await checkImage(extStore, { repair: true })).clean, true);
    assert.equal((await checkImage(extStore)).clean, true);

    // nb_sectors 2^52 with 16 entries: refused before anything is allocated.
    await assert.rejects(PloopImage.open(new MemoryStore(fileOf({ tracks: MAX_TRACKS, nbSectors: 2 ** 52 }))), { code: 'EFORMAT', message: /nb_sectors is 4503599627370496/ });

    assert.equal(core.usedBytes, usedBefore);
    assert.equal(core.memory.buffer.byteLength, memoryBefore);
  });
});

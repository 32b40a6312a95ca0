// Hostile images, property-based (fast-check; issue #8). Where test/fuzz/mutate.test.ts flips
// bits of good images, this builds images from structured lies: header fields at and past their
// limits (tracks, bat_entries, nb_sectors against bat_entries, data_off, in-use, ext_off), v1 and
// v2 signatures over the same fields, BAT entries into the metadata, to one cluster twice, past
// the end, misaligned, near 2^32, and file lengths that end inside the header, the BAT or a
// cluster; plus engine-made images truncated or extended anywhere. Every data sector of a built
// file is stamped with its own file offset, so a read that returns another cluster's bytes is
// seen. Each case must end in a PloopError or a correct read — within a time limit, never a
// TypeError / RangeError / WebAssembly trap — and the WebAssembly memory must not grow with a
// lying field. "check --repair says clean" must mean "opens strictly". The interesting cases are
// kept in test/fixtures/hostile/ (cases.json says what each exercises and what must happen) and
// replayed on every run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { withTimeout } from '../helpers/hostile-http.ts';
import { PloopImage, MemoryStore, PloopError, checkImage, createImage } from '../../src/index.ts';
import { getCore, type WasmCore } from '../../src/core/wasm.ts';
import { MAX_TRACKS, MAX_BAT_ENTRIES, INUSE_MAGIC, CLOSED_V21_MAGIC, minDataOffSectors } from '../../src/format/header.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/hostile');
const CASE_TIMEOUT_MS = 5000;
/** Virtual disks up to this are read whole; bigger ones around every mapped cluster and at both ends. */
const WHOLE_READ_LIMIT = 4 << 20;
/** Largest file a case builds. */
const MAX_FILE = 1 << 20;
const RUNS = Number(process.env.HOSTILE_RUNS ?? 1000);

const tried = { images: 0, truncated: 0, corpus: 0, opened: 0, damaged: 0, refused: 0, repairedThenOpened: 0 };
let core: WasmCore;
let memoryAtStart = 0;

before(async () => {
  core = await getCore();
  memoryAtStart = core.memory.buffer.byteLength;
});

// ---- building images from structured lies ----

type EntryKind =
  | { kind: 'hole' }
  | { kind: 'slot'; n: number }
  | { kind: 'duplicate' }
  | { kind: 'metadata'; n: number }
  | { kind: 'past-end'; n: number }
  | { kind: 'misaligned'; n: number }
  | { kind: 'near-2^32'; n: number }
  | { kind: 'raw'; value: number };

interface ImageSpec {
  format: 'v1' | 'v2';
  version: number;
  tracks: number;
  batEntries: number;
  /** nb_sectors: consistent with bat_entries (minus `short` sectors) or a raw 64-bit lie. */
  nbSectors: { short: number } | { raw: number };
  dataOff: { min: true } | { delta: number } | { raw: number };
  inUse: number;
  extOff: { none: true } | { slot: number } | { raw: number };
  /** File length: the layout's own length plus `delta` bytes, or a raw length. */
  length: { slots: number; delta: number } | { raw: number };
  entries: EntryKind[];
}

const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const setU32 = (b: Uint8Array, off: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(off, v >>> 0, true);

/** The bytes a spec describes (null when its file would exceed MAX_FILE). */
function buildImage(s: ImageSpec): Uint8Array | null {
  const sector = 512;
  const cluster = s.tracks * sector;
  const unit = s.format === 'v1' ? sector : cluster;
  const minOff = s.tracks === 0 ? 1 : minDataOffSectors(s.batEntries, s.tracks);
  const dataOff = 'min' in s.dataOff ? minOff : 'delta' in s.dataOff ? Math.max(0, minOff + s.dataOff.delta) : s.dataOff.raw;
  const firstSlot = dataOff * sector;
  const length = 'raw' in s.length ? s.length.raw : firstSlot + s.length.slots * cluster + s.length.delta;
  if (!(length >= 0 && length <= MAX_FILE)) return null;
  const bytes = new Uint8Array(length);
  // Stamp every sector with its own file offset: another cluster's bytes never look right.
  for (let at = 0; at + 4 <= length; at += 4) setU32(bytes, at, (at >>> 2) ^ 0x5a5a0000);
  const head = new Uint8Array(64);
  head.set(Uint8Array.from(s.format === 'v1' ? 'WithoutFreeSpace' : 'WithouFreSpacExt', (c) => c.charCodeAt(0)));
  setU32(head, 16, s.version);
  setU32(head, 20, 16);
  setU32(head, 24, Math.max(1, Math.floor(s.batEntries * s.tracks / (16 * 32))));
  setU32(head, 28, s.tracks);
  setU32(head, 32, s.batEntries);
  const nb = 'short' in s.nbSectors ? Math.max(0, s.batEntries * s.tracks - s.nbSectors.short) : s.nbSectors.raw;
  setU32(head, 36, nb % 2 ** 32);
  setU32(head, 40, Math.floor(nb / 2 ** 32));
  setU32(head, 44, s.inUse);
  setU32(head, 48, dataOff);
  setU32(head, 52, 0);
  const ext = 'none' in s.extOff ? 0 : 'slot' in s.extOff ? (firstSlot + s.extOff.slot * cluster) / sector : s.extOff.raw;
  setU32(head, 56, ext % 2 ** 32);
  setU32(head, 60, Math.floor(ext / 2 ** 32));
  const entries = new Uint8Array(4 * s.entries.length);
  let lastSlot = 0;
  // Plain slots are handed out in order, so that only the lies of the spec make the BAT bad.
  const slotsInFile = cluster > 0 ? Math.max(0, Math.floor((length - firstSlot) / cluster)) : 0;
  let nextSlot = 0;
  s.entries.forEach((e, i) => {
    const slotValue = (n: number) => Math.floor((firstSlot + n * cluster) / unit);
    let v = 0;
    switch (e.kind) {
      case 'hole': v = 0; break;
      case 'slot': v = nextSlot < slotsInFile ? (lastSlot = slotValue(nextSlot++)) : 0; break;
      case 'duplicate': v = lastSlot; break;
      case 'metadata': v = Math.max(1, Math.floor(Math.min(firstSlot, 64 + 4 * s.batEntries) / unit) - e.n); break;
      case 'past-end': v = Math.ceil(length / unit) + e.n; break;
      case 'misaligned': v = slotValue(e.n) + (s.format === 'v1' ? 1 : 0) ; break;
      case 'near-2^32': v = 0xffffffff - e.n; break;
      case 'raw': v = e.value; break;
    }
    setU32(entries, 4 * i, v);
  });
  const meta = new Uint8Array(64 + entries.length);
  meta.set(head);
  meta.set(entries, 64);
  // Entries the spec does not list are holes.
  bytes.fill(0, Math.min(length, 64), Math.min(length, 64 + 4 * s.batEntries));
  bytes.set(meta.subarray(0, Math.min(length, meta.length)));
  return bytes;
}

const entryArb: fc.Arbitrary<EntryKind> = fc.oneof(
  { weight: 60, arbitrary: fc.constant({ kind: 'hole' as const }) },
  { weight: 90, arbitrary: fc.record({ kind: fc.constant('slot' as const), n: fc.nat(12) }) },
  fc.constant({ kind: 'duplicate' as const }),
  fc.record({ kind: fc.constant('metadata' as const), n: fc.nat(3) }),
  fc.record({ kind: fc.constant('past-end' as const), n: fc.nat(3) }),
  fc.record({ kind: fc.constant('misaligned' as const), n: fc.nat(12) }),
  fc.record({ kind: fc.constant('near-2^32' as const), n: fc.nat(2) }),
  fc.record({ kind: fc.constant('raw' as const), value: fc.nat(0xffffffff) }),
);

/** Mostly plausible images with one to a few lies; sometimes everything at a limit. */
const specArb: fc.Arbitrary<ImageSpec> = fc.record({
  format: fc.constantFrom('v1' as const, 'v2' as const),
  version: fc.oneof({ weight: 60, arbitrary: fc.constant(2) }, fc.constantFrom(0, 1, 3, 0xffffffff)),
  tracks: fc.oneof({ weight: 40, arbitrary: fc.constantFrom(1, 8, 16, 64, 128) }, fc.integer({ min: 1, max: 600 }), fc.constantFrom(0, 2048, 4096, MAX_TRACKS, MAX_TRACKS + 1, 0xffffffff)),
  batEntries: fc.oneof({ weight: 40, arbitrary: fc.integer({ min: 0, max: 40 }) }, fc.integer({ min: 0, max: 3000 }), fc.constantFrom(2 ** 20, 2 ** 29, MAX_BAT_ENTRIES, MAX_BAT_ENTRIES + 1, 2 ** 31, 0xffffffff)),
  nbSectors: fc.oneof({ weight: 30, arbitrary: fc.record({ short: fc.nat(600) }) }, fc.record({ raw: fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 41, 2 ** 53 - 1) })),
  dataOff: fc.oneof({ weight: 30, arbitrary: fc.constant({ min: true as const }) }, fc.record({ delta: fc.integer({ min: -9, max: 300 }) }), fc.record({ raw: fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff) })),
  inUse: fc.oneof({ weight: 20, arbitrary: fc.constant(0) }, fc.constantFrom(INUSE_MAGIC, CLOSED_V21_MAGIC, 1, 0xffffffff)),
  extOff: fc.oneof({ weight: 40, arbitrary: fc.constant({ none: true as const }) }, fc.record({ slot: fc.nat(14) }), fc.record({ raw: fc.constantFrom(1, 2 ** 32 - 1, 2 ** 40) })),
  length: fc.oneof({ weight: 30, arbitrary: fc.record({ slots: fc.nat(14), delta: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, fc.integer({ min: -700, max: 700 })) }) }, fc.record({ raw: fc.oneof(fc.nat(70), fc.nat(MAX_FILE)) })),
  entries: fc.array(entryArb, { maxLength: 24 }),
});

// ---- judging one image ----

function onlyPloopError(e: unknown, where: string): PloopError {
  if (e instanceof PloopError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  throw new Error(`${where}: not a PloopError: ${err.name}: ${err.message}`, { cause: e });
}


/** What a virtual range must read, computed from the raw bytes alone (valid once the engine accepted them). */
function referenceRead(file: Uint8Array, offset: number, length: number): Uint8Array {
  const v1 = String.fromCharCode(...file.subarray(0, 16)) === 'WithoutFreeSpace';
  const cluster = u32(file, 28) * 512;
  const unit = v1 ? 512 : cluster;
  const out = new Uint8Array(length);
  for (let pos = offset; pos < offset + length;) {
    const c = Math.floor(pos / cluster);
    const end = Math.min(offset + length, (c + 1) * cluster);
    const entry = c < u32(file, 32) ? u32(file, 64 + 4 * c) : 0;
    if (entry !== 0) {
      const host = entry * unit + (pos - c * cluster);
      out.set(file.subarray(host, host + (end - pos)), pos - offset);
    }
    pos = end;
  }
  return out;
}

/** Ranges to compare: the whole disk when small, else both ends and every cluster the BAT maps. */
function rangesToRead(file: Uint8Array, image: PloopImage): Array<[number, number]> {
  if (image.size <= WHOLE_READ_LIMIT) return [[0, image.size]];
  const c = image.clusterSize;
  const out: Array<[number, number]> = [[0, Math.min(image.size, 65536)], [image.size - Math.min(image.size, 65536), Math.min(image.size, 65536)]];
  const entries = Math.min(u32(file, 32), Math.floor((file.length - 64) / 4));
  for (let i = 0; i < entries && out.length < 64; i++) {
    if (u32(file, 64 + 4 * i) !== 0 && (i + 1) * c <= image.size) out.push([i * c, Math.min(c, 1 << 20)]);
  }
  return out;
}

/**
 * 'opened': sound, read back correctly, and a writer may open it; 'damaged': read back as QEMU
 * reads it (bad entries where they point), and a writer is refused with ECORRUPT naming the
 * damage; 'refused': not even a reader can open it (a header that cannot describe a disk).
 */
type Outcome = 'opened' | 'damaged' | 'refused';

const FIELD_NAMED = /signature|version|tracks|bat_entries|nb_sectors|inuse|data_off|ext_off|entry \d+|header needs|format extension/;

async function judge(file: Uint8Array, what: string): Promise<Outcome> {
  let outcome: Outcome = 'refused';
  // 1. Read-only open: a PloopError, or an image that reads what the BAT maps.
  try {
    const image = await PloopImage.open(new MemoryStore(file, { writable: false }), { onWarning: () => {} });
    outcome = image.findings.damage.length > 0 ? 'damaged' : 'opened';
    try {
      for (const [offset, length] of rangesToRead(file, image)) {
        const got = await image.read(offset, length);
        const want = referenceRead(file, offset, length);
        const at = got.findIndex((b, i) => b !== want[i]);
        assert.equal(at, -1, `${what}: virtual byte ${offset + at} reads ${got[at]}, the BAT maps ${want[at]}`);
      }
    } finally {
      await image.close();
    }
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    const err = onlyPloopError(e, `${what}: open`);
    assert.ok(['EFORMAT', 'ECORRUPT'].includes(err.code), `${what}: open refused with ${err.code}: ${err.message}`);
    assert.match(err.message, FIELD_NAMED, `${what}: the message names the field: ${err.message}`);
  }
  // 1b. A damaged image is never opened for writing: the error names what is wrong.
  if (outcome === 'damaged') {
    await assert.rejects(PloopImage.open(new MemoryStore(file.slice()), { writable: true, onWarning: () => {} }), (e: unknown) => {
      const err = onlyPloopError(e, `${what}: writable open`);
      assert.equal(err.code, 'ECORRUPT', `${what}: ${err.message}`);
      assert.match(err.message, FIELD_NAMED, `${what}: the message names the field: ${err.message}`);
      return true;
    }, `${what}: a writer must be refused`);
  }
  // 2. check, then check --repair on a copy: a report or a PloopError; "clean" after repair means it opens.
  try {
    await checkImage(new MemoryStore(file, { writable: false }));
    const copy = new MemoryStore(file.slice());
    const repaired = await checkImage(copy, { repair: true });
    if (repaired.clean) {
      const image = await PloopImage.open(copy, { onWarning: () => {} }).catch((e: unknown) => {
        throw new Error(`${what}: check --repair said clean, yet the image does not open: ${e instanceof Error ? e.message : e}`);
      });
      await image.close();
      tried.repairedThenOpened++;
    }
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    if (e instanceof Error && e.message.includes('check --repair said clean')) throw e;
    onlyPloopError(e, `${what}: check`);
  }
  return outcome;
}

test(`${RUNS} structured hostile images (lying header fields, bad BAT entries, v1/v2, odd lengths): a PloopError or a correct read, never a hang or trap`, { timeout: 150_000 }, async (t) => {
  await fc.assert(fc.asyncProperty(specArb, async (spec) => {
    const file = buildImage(spec);
    if (!file) return;
    tried.images++;
    const outcome = await withTimeout(judge(file, `image ${JSON.stringify(spec)}`), CASE_TIMEOUT_MS, 'case');
    tried[outcome]++;
  }), { numRuns: RUNS, seed: 0x40571e, endOnFailure: true });
  assert.ok(tried.opened > RUNS / 8 && tried.damaged > RUNS / 8 && tried.refused > RUNS / 50, `a mix of opened (${tried.opened}), damaged (${tried.damaged}) and refused (${tried.refused}) images`);
  t.diagnostic(`hostile images tried: ${tried.images} (${tried.opened} opened and read correctly, ${tried.damaged} damaged: read as QEMU does, writer refused; ${tried.refused} refused with a PloopError; ${tried.repairedThenOpened} repaired clean then opened)`);
});

test('engine-made images (v1/v2, several cluster sizes) truncated or extended anywhere: a PloopError or a correct read', { timeout: 60_000 }, async (t) => {
  const bases: Uint8Array[] = [];
  for (const [format, clusterSize, size] of [['v2', 4096, 256 << 10], ['v1', 4096, 4 << 20], ['v2', 512, 64 << 10], ['v2', 65536, 1 << 20]] as const) {
    const store = new MemoryStore();
    await createImage(store, { size, clusterSize, format });
    const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
    for (let i = 0; i < 6; i++) await image.write((i * 7919 * clusterSize) % (size - clusterSize), new Uint8Array(clusterSize + 100).fill(i + 1));
    await image.close();
    bases.push(store.bytes().slice());
  }
  await fc.assert(fc.asyncProperty(fc.nat(bases.length - 1), fc.double({ min: 0, max: 1.2, noNaN: true }), fc.nat(1023), async (b, where, jitter) => {
    const base = bases[b];
    const length = Math.max(0, Math.min(MAX_FILE, Math.floor(base.length * where) + jitter - 512));
    const file = new Uint8Array(length);
    file.set(base.subarray(0, Math.min(length, base.length)));
    tried.truncated++;
    await withTimeout(judge(file, `base ${b} cut to ${length} of ${base.length} bytes`), CASE_TIMEOUT_MS, 'case');
  }), { numRuns: 400, seed: 0x7c0, endOnFailure: true });
  t.diagnostic(`truncated/extended images tried: ${tried.truncated}`);
});

// ---- the corpus ----

interface CorpusCase {
  file: string;
  exercises: string;
  /** "opens" (and reads what the BAT maps), or the error code and a pattern its message must match. */
  expect: 'opens' | { code: string; message: string };
}

test('the hostile-image corpus (test/fixtures/hostile) replays with the recorded outcomes', async (t) => {
  const cases = JSON.parse(await readFile(join(FIXTURES, 'cases.json'), 'utf8')) as CorpusCase[];
  let n = 0;
  for (const c of cases.filter((x) => x.file.endsWith('.hds'))) {
    const file = new Uint8Array(await readFile(join(FIXTURES, c.file)));
    const what = `${c.file} (${c.exercises})`;
    const memoryBefore = core.memory.buffer.byteLength;
    const started = performance.now();
    const outcome = await withTimeout(judge(file, what), CASE_TIMEOUT_MS, what);
    if (c.expect === 'opens') assert.equal(outcome, 'opened', `${what}: expected to open`);
    else {
      const expect = c.expect;
      // ECORRUPT: damage a reader reads through and a writer is refused for; EFORMAT: no open at all.
      const damaged = expect.code === 'ECORRUPT';
      assert.equal(outcome, damaged ? 'damaged' : 'refused', `${what}: expected ${damaged ? 'a read-only open and a refused writer' : 'a refusal'}`);
      await assert.rejects(PloopImage.open(new MemoryStore(file.slice(), { writable: damaged }), { writable: damaged, onWarning: () => {} }), (e: unknown) => {
        assert.ok(e instanceof PloopError, `${what}: ${String(e)}`);
        assert.equal(e.code, expect.code, `${what}: ${e.message}`);
        assert.match(e.message, new RegExp(expect.message), what);
        return true;
      });
    }
    // A lying size field is refused before anything proportional to it is allocated.
    assert.ok(core.memory.buffer.byteLength - memoryBefore <= 16 << 20, `${what}: WebAssembly memory grew by ${core.memory.buffer.byteLength - memoryBefore} bytes`);
    assert.ok(performance.now() - started < 2000, `${what}: took ${performance.now() - started} ms`);
    n++;
  }
  tried.corpus += n;
  assert.ok(n >= 12, `corpus has ${n} image cases`);
  t.diagnostic(`corpus image cases replayed: ${n}`);
});

/** UPDATE_CORPUS=1 rewrites the corpus images from their specs (the outcomes in cases.json are kept by hand). */
test('corpus images are what their specs build', async () => {
  const specs = JSON.parse(await readFile(join(FIXTURES, 'specs.json'), 'utf8')) as Record<string, ImageSpec>;
  for (const [name, spec] of Object.entries(specs)) {
    const bytes = buildImage(spec);
    assert.ok(bytes, `${name}: spec builds a file`);
    if (process.env.UPDATE_CORPUS) await writeFile(join(FIXTURES, name), bytes);
    assert.deepEqual(new Uint8Array(await readFile(join(FIXTURES, name))), bytes, `${name} differs from its spec (UPDATE_CORPUS=1 rewrites it)`);
  }
});

after(() => {
  if (!core) return;
  const grown = core.memory.buffer.byteLength - memoryAtStart;
  // Images here are at most 1 MiB; claims of 2^31 BAT entries or 2^53 sectors must not reserve memory.
  assert.ok(grown <= 64 << 20, `the WebAssembly memory grew by ${grown} bytes over the hostile cases`);
  console.log(`hostile images: ${tried.images + tried.truncated + tried.corpus} cases tried (${tried.images} structured, ${tried.truncated} truncated/extended, ${tried.corpus} corpus); WebAssembly memory grew ${grown} bytes`);
});

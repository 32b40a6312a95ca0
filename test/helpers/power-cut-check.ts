// The four properties a folder must have after a power cut (issue #8), judged against the
// requests the workload made:
//   1. it opens strictly (the in-use flag may be set) and check finds nothing worse than the flag
//      and leaked clusters: no entry out of range, into metadata, misaligned or used twice;
//   2. every request acknowledged before a completed flush of its file reads back exactly;
//   3. every other sector reads a content some sequence of the requests issued before the cut
//      could have left there (old or new, never another cluster's bytes or garbage) — judged per
//      512-byte sector, the unit a torn write keeps or loses;
//   4. check --repair leaves every delta clean, the disk reads the same, and (on a sample)
//      qemu-img check calls the files clean.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { checkImage, descriptorChain, parseDescriptor, PloopImage, type MemoryDirectory } from '../../src/index.ts';
import type { ChainEntry } from '../../src/format/descriptor.ts';
import { assertBytesEqual, firstDifference } from './model.ts';
import { describeCheck, qemuCheck } from './qemu.ts';
import { assertPloopAccepts } from './ploop.ts';
import type { PcRequest } from './power-cut.ts';

const SECTOR = 512;
/** More alternative contents than this for one sector means the workload overlaps too much to judge. */
const MAX_CANDIDATES = 256;

export interface CrashExpectation {
  /** Requests issued before the cut, in issue order. */
  issued: PcRequest[];
  /** Ids of the requests that must read back exactly. */
  durable: ReadonlySet<number>;
  /** The disk's content before the logged workload (its length: the size before any resize). */
  initial: Uint8Array;
}

function apply(bytes: Uint8Array, r: PcRequest, base = 0): void {
  const lo = Math.max(base, r.kind === 'resize' ? 0 : r.offset);
  if (r.kind === 'write') {
    const hi = Math.min(base + bytes.length, r.offset + r.data.length);
    if (hi > lo) bytes.set(r.data.subarray(lo - r.offset, hi - r.offset), lo - base);
  } else if (r.kind === 'discard') {
    const hi = Math.min(base + bytes.length, r.offset + r.length);
    if (hi > lo) bytes.fill(0, lo - base, hi - base);
  }
}

function touches(r: PcRequest, lo: number, hi: number): boolean {
  if (r.kind === 'resize') return false;
  const end = r.offset + (r.kind === 'write' ? r.data.length : r.length);
  return r.offset < hi && end > lo;
}

function dedupe(list: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const c of list) if (!out.some((o) => firstDifference(o, c) < 0)) out.push(c);
  return out;
}

/** Sizes the disk may have: the last acknowledged resize's, or any later one's. */
export function allowedSizes(e: CrashExpectation): number[] {
  let sure = e.initial.length;
  const maybe: number[] = [];
  for (const r of e.issued) {
    if (r.kind !== 'resize') continue;
    if (r.ackedSeq !== undefined && e.durable.has(r.id)) {
      sure = r.size;
      maybe.length = 0;
    } else maybe.push(r.size);
  }
  return [sure, ...maybe];
}

/** The durable content of the last expectation judged, extended as cuts move forward. */
let last: { e: CrashExpectation; applied: Set<number>; bytes: Uint8Array } | null = null;

/** What the durable requests left: the content every sector must have unless a pending request touched it. */
export function durableContent(e: CrashExpectation, size: number): Uint8Array {
  if (last?.e === e && last.bytes.length === size) return last.bytes;
  // A later cut of the same run only adds durable requests, each acknowledged after every
  // earlier request it overlaps: applying the new ones on top gives the same bytes.
  const grows = last !== null && last.bytes.length === size && last.e.initial === e.initial && [...last.applied].every((id) => e.durable.has(id));
  const bytes = grows ? last!.bytes : new Uint8Array(size);
  const applied = grows ? last!.applied : new Set<number>();
  if (!grows) bytes.set(e.initial.subarray(0, size));
  for (const r of e.issued) {
    if (e.durable.has(r.id) && !applied.has(r.id)) {
      apply(bytes, r);
      applied.add(r.id);
    }
  }
  last = { e, applied, bytes };
  return bytes;
}

/**
 * Properties 2 and 3 on the disk's content `actual`; returns the number of sectors that differ
 * from the durable content (and were explained by pending requests).
 */
export function assertContentPlausible(actual: Uint8Array, e: CrashExpectation, what: string): number {
  const expected = durableContent(e, actual.length);
  let explained = 0;
  let from = 0;
  for (;;) {
    const d = firstDifference(actual.subarray(from), expected.subarray(from));
    if (d < 0) return explained;
    const lo = Math.floor((from + d) / SECTOR) * SECTOR;
    const hi = Math.min(actual.length, lo + SECTOR);
    const got = actual.subarray(lo, hi);
    // Every request touching the sector, in issue order: a durable one is on every candidate, a
    // pending one may or may not be (a failed request may precede a durable one).
    const writers = e.issued.filter((r) => touches(r, lo, hi));
    const touching = writers.filter((r) => !e.durable.has(r.id));
    let candidates: Uint8Array[] = [e.initial.length >= hi ? e.initial.slice(lo, hi) : new Uint8Array(hi - lo)];
    for (const r of writers) {
      const next = candidates.map((c) => {
        const copy = c.slice();
        apply(copy, r, lo);
        return copy;
      });
      if (e.durable.has(r.id)) candidates = dedupe(next);
      else candidates = dedupe([...candidates, ...next]);
      assert.ok(candidates.length <= MAX_CANDIDATES, `${what}: sector at ${lo} has over ${MAX_CANDIDATES} possible contents`);
    }
    if (!candidates.some((c) => firstDifference(c, got) < 0)) {
      const lastDurable = writers.filter((r) => e.durable.has(r.id)).pop();
      const kind = touching.length === 0 ? (lastDurable ? 'LOST acknowledged and flushed data' : 'garbage where nothing was written') : 'content no request could have left';
      assertBytesEqual(got, expected.subarray(lo, hi), `${what}: virtual sector at byte ${lo}: ${kind} (requests touching it: ${writers.map((r) => `#${r.id} ${r.kind}${e.durable.has(r.id) ? ' durable' : ''}`).join(', ') || 'none'})`);
      assert.fail(`${what}: sector at ${lo} matches none of ${candidates.length} candidates`);
    }
    explained++;
    from = hi;
  }
}

export interface StateOutcome {
  /** Sectors holding content of requests that were not durable yet. */
  pendingSectors: number;
  /** Leaked clusters check found (allowed, repaired). */
  leaks: number;
  /** The in-use flag was set. */
  unclean: boolean;
}

const buffers: ArrayBuffer[] = [];

/** A view of `size` bytes of reusable buffer `n` (fresh memory per state costs more than the check). */
function reused(n: number, size: number): Uint8Array {
  if (!buffers[n] || buffers[n].byteLength < size) buffers[n] = new ArrayBuffer(size);
  return new Uint8Array(buffers[n], 0, size);
}

const chains = new Map<string, ChainEntry[]>();

/** The folder's chain; parsed once per descriptor text (parsing costs more than the rest of a check). */
function chainOf(dir: MemoryDirectory): ChainEntry[] {
  const text = dir.texts.get('DiskDescriptor.xml');
  assert.ok(text !== undefined, `${dir.name}: no DiskDescriptor.xml`);
  let chain = chains.get(text);
  if (!chain) chains.set(text, (chain = descriptorChain(parseDescriptor(text))));
  return chain;
}

/** Open the folder's stack read-only, as openStackDir does. */
async function openChain(dir: MemoryDirectory): Promise<PloopImage> {
  const sources = [];
  for (const c of chainOf(dir)) sources.push({ store: await dir.openStore(c.file), kind: c.type === 'Plain' ? 'raw' as const : 'ploop' as const, name: c.file });
  return PloopImage.openStack(sources, { onWarning: () => {} });
}

const BAD_KINDS = new Set(['data-off', 'ext-off', 'metadata', 'outside', 'misaligned', 'duplicate']);

/**
 * All four properties on a crashed folder. `qemuDir`: also write the ploop deltas there after
 * the repair and run qemu-img check on each (do it on a sample: it costs ~10 ms a file).
 */
export async function assertCrashStateSound(dir: MemoryDirectory, e: CrashExpectation, what: string, qemuDir?: string): Promise<StateOutcome> {
  // 1. Opens strictly, read-only (leaves the folder as the cut did).
  const sizes = allowedSizes(e);
  let content: Uint8Array;
  const image = await openChain(dir).catch((err: unknown) => {
    assert.fail(`${what}: does not open: ${err instanceof Error ? err.message : String(err)}`);
  });
  try {
    assert.ok(sizes.includes(image.size), `${what}: virtual size ${image.size}, expected one of ${sizes.join(', ')}`);
    content = reused(0, image.size);
    await image.readInto(0, content);
  } finally {
    await image.close();
  }
  const outcome: StateOutcome = { pendingSectors: 0, leaks: 0, unclean: false };
  const chain = chainOf(dir).filter((c) => c.type !== 'Plain');
  for (const c of chain) {
    const report = await checkImage(await dir.openStore(c.file));
    const bad = report.findings.filter((f) => BAD_KINDS.has(f.kind));
    assert.deepEqual(bad.map((f) => f.message), [], `${what}: check of ${c.file} finds corruption`);
    outcome.leaks += report.leakedClusters;
    outcome.unclean ||= report.findings.some((f) => f.kind === 'unclean');
  }
  // 2 and 3.
  outcome.pendingSectors = assertContentPlausible(content, e, what);
  // 4. Repair, then clean, and the disk reads the same.
  for (const c of chain) {
    const store = await dir.openStore(c.file, { writable: true });
    const repaired = await checkImage(store, { repair: true });
    assert.ok(repaired.clean, `${what}: check --repair of ${c.file} left: ${JSON.stringify(repaired.findings)}`);
    const again = await checkImage(store);
    assert.ok(again.clean && again.leakedClusters === 0, `${what}: ${c.file} after repair: ${JSON.stringify(again.findings)}`);
  }
  const after = await openChain(dir);
  try {
    const again = reused(1, after.size);
    await after.readInto(0, again);
    assertBytesEqual(again, content, `${what}: the disk after check --repair vs before`);
  } finally {
    await after.close();
  }
  if (qemuDir) {
    for (const c of chain) {
      const path = join(qemuDir, c.file.replace(/[^\w.-]/g, '_'));
      await writeFile(path, dir.files.get(c.file)!.bytes());
      const q = await qemuCheck(path);
      assert.ok(q.clean, `${what}: qemu-img check ${c.file} after our repair: ${describeCheck(q)}`);
      await assertPloopAccepts(path, `${what}: ${c.file} after our repair`);
    }
  }
  return outcome;
}

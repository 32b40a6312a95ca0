// SPDX-License-Identifier: MIT
// Benchmark 4: BAT lookup over a 1 TiB virtual disk (1 Mi entries at 1 MiB clusters) in the
// WebAssembly core against the same loops in plain TypeScript over typed arrays.
//   - single-cluster lookups: one call per lookup (lookupCluster, the JS→WASM boundary every
//     time) and batched (lookupClusters: 4096 lookups per call, indices and results in WASM
//     memory), against a TypeScript loop over a Uint32Array BAT and Uint8Array levels;
//   - range → extents: random 8 MiB ranges split into extents by mapRange (the engine's
//     per-request call), against the same algorithm in TypeScript.
// Three quarters of the clusters are mapped, to shuffled slots, so that every mapped cluster is
// its own extent (the worst case for mapRange) and lookups cannot be predicted.
// Run alone: node --import tsx bench/lookup.ts (prints JSON rows).

import { getCore } from '../src/core/wasm.js';
import { BatMap, LEVEL_NONE, MD_PAGE_BYTES } from '../src/core/bat-map.js';
import { median, type Row, isMain, printRows } from './common.js';

const ENTRIES = 1 << 20;
const CLUSTER = 1 << 20;
const BATCH = 4096;
const RANGE_BYTES = 8 << 20;

export async function lookupBench(reps: number): Promise<Row[]> {
  const core = await getCore();
  const batEndByte = 64 + 4 * ENTRIES;
  const mdPageCount = Math.ceil(batEndByte / MD_PAGE_BYTES);
  const firstSlotByte = Math.ceil(batEndByte / CLUSTER) * CLUSTER;
  const bat = new BatMap(core, {
    batEntryCount: ENTRIES, clusterBytes: CLUSTER, mdPageCount, firstSlotByte,
    slotCapacity: ENTRIES + 2, topLevel: 0, unitBytesByLevel: [CLUSTER],
  });
  // Deterministic shuffle (xorshift32) of the slots; every fourth cluster is a hole.
  let seed = 12345;
  const rnd = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed; };
  const slots = new Uint32Array(ENTRIES);
  for (let i = 0; i < ENTRIES; i++) slots[i] = i;
  for (let i = ENTRIES - 1; i > 0; i--) { const j = rnd() % (i + 1); const t = slots[i]; slots[i] = slots[j]; slots[j] = t; }
  const batTs = new Uint32Array(ENTRIES);
  const levelsTs = new Uint8Array(ENTRIES).fill(LEVEL_NONE);
  const unitTs = new Float64Array(256);
  unitTs[0] = CLUSTER;
  const pageWords = new Uint32Array(bat.pages().buffer, bat.pages().byteOffset, (mdPageCount * MD_PAGE_BYTES) / 4);
  for (let c = 0; c < ENTRIES; c++) {
    if (c % 4 === 3) continue;
    const value = firstSlotByte / CLUSTER + slots[c];
    pageWords[16 + c] = value;
    batTs[c] = value;
    levelsTs[c] = 0;
  }
  const { problemCount } = bat.loadTop(firstSlotByte + ENTRIES * CLUSTER);
  if (problemCount !== 0) throw new Error(`lookup bench: synthetic BAT has ${problemCount} problems`);

  // Random cluster indices, in WASM memory for the batched call and in a JS array for the rest.
  const indicesAddr = core.alloc(BATCH * 4);
  const outAddr = core.alloc(BATCH * 8);
  const indices = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) indices[i] = rnd() % ENTRIES;
  core.u32.set(indices, indicesAddr >>> 2);
  const outTs = new Float64Array(BATCH);
  const rounds = 2000; // 8.2 M lookups per timed run

  const tsLookup = () => {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < BATCH; i++) {
        const c = indices[i];
        const level = levelsTs[c];
        outTs[i] = level === LEVEL_NONE ? -1 : batTs[c] * unitTs[level];
      }
    }
  };
  const wasmBatched = () => {
    const f = core.exports.lookupClusters;
    const ctx = bat.ctx;
    for (let r = 0; r < rounds; r++) if (f(ctx, indicesAddr, BATCH, outAddr) !== BATCH) throw new Error('lookupClusters failed');
  };
  const wasmSingle = () => {
    const f = core.exports.lookupCluster;
    const ctx = bat.ctx;
    for (let r = 0; r < rounds / 4; r++) for (let i = 0; i < BATCH; i++) outTs[i] = f(ctx, indices[i]);
  };
  // Same answers from all three (else the comparison is void).
  tsLookup();
  const wasmOut = core.f64.subarray(outAddr >>> 3, (outAddr >>> 3) + BATCH);
  wasmBatched();
  for (let i = 0; i < BATCH; i++) if (wasmOut[i] !== outTs[i]) throw new Error(`lookup bench: WASM and TS disagree at cluster ${indices[i]}`);

  // Interleaved repetitions (A, B, C, A, B, C, …) so that load from other processes hits all
  // alike; the first two rounds warm the JIT up and are dropped.
  const [single, batched, ts] = interleaved(reps, [
    [wasmSingle, (rounds / 4) * BATCH], [wasmBatched, rounds * BATCH], [tsLookup, rounds * BATCH],
  ]);

  // Range → extents: the engine's mapRange (into its scratch, up to 64 extents per call; no
  // JS objects) against the same algorithm in TypeScript into a Float64Array.
  const rangeCount = 20000;
  const starts = Float64Array.from({ length: rangeCount }, () => (rnd() % (ENTRIES - 8)) * CLUSTER + (rnd() % 256) * 4096);
  const extOut = new Float64Array(64 * 4);
  const passes = 10;
  const tsRanges = () => {
    let extents = 0;
    for (let p = 0; p < passes; p++) for (let r = 0; r < rangeCount; r++) extents += tsMapRange(batTs, levelsTs, unitTs, CLUSTER, starts[r], RANGE_BYTES, extOut);
    return extents;
  };
  const wasmRanges = () => {
    let extents = 0;
    for (let p = 0; p < passes; p++) for (let r = 0; r < rangeCount; r++) extents += bat.mapChunk(starts[r], RANGE_BYTES);
    return extents;
  };
  const extentsTotal = tsRanges();
  if (wasmRanges() !== extentsTotal) throw new Error('lookup bench: WASM and TS mapRange disagree on extent counts');
  const extentsPerRange = extentsTotal / passes / rangeCount;
  const [wasmExt, tsExt] = interleaved(reps, [[wasmRanges, extentsTotal], [tsRanges, extentsTotal]]);
  core.free(indicesAddr);
  core.free(outAddr);
  bat.dispose();
  return [
    { name: 'BAT lookups, WASM batched (4096/call)', ours: batched, theirs: ts, unit: 'lookups/s', ratio: batched / ts, against: 'same loop in TS' },
    { name: 'BAT lookups, WASM one call per lookup', ours: single, theirs: ts, unit: 'lookups/s', ratio: single / ts, against: 'same loop in TS' },
    { name: 'BAT lookups, WASM batched vs goal', ours: batched, theirs: 100e6, unit: 'lookups/s', ratio: batched / 100e6, against: 'goal 100 M/s' },
    { name: `range → extents, 8 MiB ranges (${extentsPerRange.toFixed(1)} ext.)`, ours: wasmExt, theirs: tsExt, unit: 'extents/s', ratio: wasmExt / tsExt, against: 'same algorithm in TS' },
  ];
}

/** Operations per second of each [function, operations] pair: medians of interleaved runs. */
function interleaved(reps: number, runs: Array<[() => unknown, number]>): number[] {
  const rates: number[][] = runs.map(() => []);
  for (let r = 0; r < reps + 2; r++) {
    runs.forEach(([fn, ops], i) => {
      const t = performance.now();
      fn();
      if (r >= 2) rates[i].push(ops / ((performance.now() - t) / 1000));
    });
  }
  return rates.map(median);
}

/** mapRange (assembly/bat.ts) in TypeScript: records of [offset, length, host, level] in `out`. */
function tsMapRange(bat: Uint32Array, levels: Uint8Array, units: Float64Array, clusterBytes: number, offset: number, length: number, out: Float64Array): number {
  let count = 0;
  let pos = offset;
  const end = offset + length;
  const max = out.length / 4;
  while (pos < end) {
    const c = Math.floor(pos / clusterBytes);
    const inCluster = pos - c * clusterBytes;
    const level = levels[c];
    const host = level === LEVEL_NONE ? -1 : bat[c] * units[level] + inCluster;
    const chunk = Math.min(clusterBytes - inCluster, end - pos);
    if (count > 0) {
      const p = (count - 1) * 4;
      if (out[p + 3] === level && (level === LEVEL_NONE || out[p + 2] + out[p + 1] === host)) {
        out[p + 1] += chunk;
        pos += chunk;
        continue;
      }
      if (count === max) break;
    }
    const r = count * 4;
    out[r] = pos;
    out[r + 1] = chunk;
    out[r + 2] = host;
    out[r + 3] = level;
    count++;
    pos += chunk;
  }
  return count;
}

if (isMain(import.meta.url)) printRows(await lookupBench(Number(process.env.BENCH_REPS ?? 5)));

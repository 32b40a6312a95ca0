// SPDX-License-Identifier: MIT
// Benchmark 5: reads from memory against the limit, a raw Uint8Array.set of the same bytes.
// A 256 MiB image (1 MiB clusters, every cluster allocated, slots shuffled so that the virtual
// disk is not the file) in a MemoryStore; random block-aligned reads of 4 KiB and 1 MiB, one
// at a time (awaited), through PloopImage.readInto and through MemoryStore.read alone, against
// `dst.set(file.subarray(host, host + n))` for the very same host ranges.
// Run alone: node --import tsx bench/memory.ts (prints JSON rows).

import { MemoryStore } from '../src/stores/memory.js';
import { createImage } from '../src/engine/create.js';
import { PloopImage } from '../src/engine/image.js';
import { median, type Row, isMain, printRows } from './common.js';

const DISK_BYTES = 256 << 20;
const CLUSTER = 1 << 20;

export async function memoryBench(reps: number): Promise<Row[]> {
  const store = new MemoryStore();
  await createImage(store, { size: DISK_BYTES, clusterSize: CLUSTER });
  const image = await PloopImage.open(store, { writable: true });
  let seed = 99;
  const rnd = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed; };
  // Allocate the clusters in a shuffled order: cluster order in the file ≠ virtual order.
  const order = Array.from({ length: DISK_BYTES / CLUSTER }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) { const j = rnd() % (i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  const fill = new Uint8Array(CLUSTER);
  for (const c of order) {
    fill.fill((c % 255) + 1); // never all zeros: zeros allocate nothing
    await image.write(c * CLUSTER, fill);
  }
  await image.flush();
  const rows: Row[] = [];
  for (const blockBytes of [4096, 1 << 20]) {
    const count = blockBytes === 4096 ? 200000 : 3000;
    const offsets = Float64Array.from({ length: count }, () => (rnd() % (DISK_BYTES / blockBytes)) * blockBytes);
    // The host byte of each virtual offset, looked up once, so that the raw loop copies the same bytes.
    const hosts = Float64Array.from(offsets, (o) => image.map(o, blockBytes)[0].hostOffset);
    const file = store.bytes();
    const into = new Uint8Array(blockBytes);
    const raw = async () => {
      for (let i = 0; i < count; i++) into.set(file.subarray(hosts[i], hosts[i] + blockBytes));
    };
    const storeOnly = async () => {
      for (let i = 0; i < count; i++) await store.read(hosts[i], into);
    };
    const engine = async () => {
      for (let i = 0; i < count; i++) await image.readInto(offsets[i], into);
    };
    // The engine must return what the raw copy does.
    const check = new Uint8Array(blockBytes);
    for (let i = 0; i < 100; i++) {
      await image.readInto(offsets[i], into);
      check.set(file.subarray(hosts[i], hosts[i] + blockBytes));
      if (Buffer.compare(into, check) !== 0) throw new Error(`memory bench: engine read at ${offsets[i]} differs from the raw bytes`);
    }
    const [rawRate, storeRate, engineRate] = await interleaved(reps, [raw, storeOnly, engine], count * blockBytes);
    const label = blockBytes === 4096 ? '4 KiB' : '1 MiB';
    rows.push({ name: `memory: PloopImage random ${label} reads`, ours: engineRate / 2 ** 20, theirs: rawRate / 2 ** 20, unit: 'MiB/s', ratio: engineRate / rawRate, against: 'Uint8Array.set' });
    rows.push({ name: `memory: MemoryStore.read ${label}`, ours: storeRate / 2 ** 20, theirs: rawRate / 2 ** 20, unit: 'MiB/s', ratio: storeRate / rawRate, against: 'Uint8Array.set' });
  }
  await image.close();
  return rows;
}

/** Bytes per second of each function: medians of interleaved runs after two warm-up rounds. */
async function interleaved(reps: number, fns: Array<() => Promise<void>>, bytes: number): Promise<number[]> {
  const rates: number[][] = fns.map(() => []);
  for (let r = 0; r < reps + 2; r++) {
    for (let i = 0; i < fns.length; i++) {
      const t = performance.now();
      await fns[i]();
      if (r >= 2) rates[i].push(bytes / ((performance.now() - t) / 1000));
    }
  }
  return rates.map(median);
}

if (isMain(import.meta.url)) printRows(await memoryBench(Number(process.env.BENCH_REPS ?? 5)));

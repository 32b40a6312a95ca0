// SPDX-License-Identifier: MIT
// Benchmark 7: the browser stores in real Chromium (headless, persistent profile: an incognito
// profile keeps OPFS and IndexedDB in memory), against the raw APIs doing the same bytes.
//   OPFS, in a dedicated worker: OpfsStore (holding the sync access handle itself) vs a raw
//     FileSystemSyncAccessHandle; sequential 1 MiB writes (+ flush) and reads, random 4 KiB
//     reads and writes (+ flush). Goal ≥ 0.8× raw.
//   IndexedDB, on the page: IdbStore vs raw idb-keyval with the same 64 KiB values; writes vs
//     setMany in 8 MiB batches (goal ≥ 0.8×) and vs one set() per chunk (batching, goal ≥ 5×),
//     with the browser's default durability and with 'strict' (the store's default, where a
//     commit waits for the disk and batching matters most); sequential 1 MiB reads vs getMany,
//     random 4 KiB reads vs get.
// The routines are in bench/browser/bench.mjs. Run alone: node --import tsx bench/browser.ts
// (needs npm run build for dist/web; prints JSON rows); with the argument read-cost it prints
// the µs of a random 4 KiB OPFS read, raw and with each part of a store call.

import { fileURLToPath } from 'node:url';
import { startBrowser } from '../test/helpers/browser.js';
import { median, type Row, isMain, printRows } from './common.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

interface Result { ok: boolean; value?: unknown; message?: string }

export async function browserBench(reps: number): Promise<Row[]> {
  // Cross-origin isolated: performance.now() then has 5 µs steps, not 100 µs (a slice of the OPFS
  // reads takes a few milliseconds).
  const session = await startBrowser({ isolated: true, mounts: { '/b/': here('./browser/'), '/idb-keyval/': here('../node_modules/idb-keyval/dist/') } });
  try {
    const page = await session.open('b/blank.html');
    const call = async <T>(name: string, arg: unknown): Promise<T> => {
      const r = await page.evaluate(async ([n, a]) => (await import(String('/b/bench.mjs'))).run(n, a), [name, arg] as const) as Result;
      if (!r.ok) throw new Error(`browser bench ${name}: ${r.message}`);
      return r.value as T;
    };
    type Pair = { raw: number[]; store: number[] };
    let t = performance.now();
    const inner = await call<Result>('inWorker', { name: 'opfs', arg: { fileBytes: 64 << 20, reps, smallOps: 5000 } });
    if (!inner.ok) throw new Error(`browser bench opfs (worker): ${inner.message}`);
    const o = inner.value as Record<'seqWrite' | 'seqRead' | 'randRead' | 'randWrite', Pair>;
    const opfsSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const i = await call<Record<string, number[]>>('idb', { totalBytes: 4 << 20, reps, smallOps: 200, durability: 'default' });
    const strict = await call<Record<string, number[]>>('idb', { totalBytes: 2 << 20, reps, smallOps: 20, durability: 'strict' });
    process.stderr.write(`browser bench: OPFS ${opfsSeconds.toFixed(1)} s, IndexedDB ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    const row = (name: string, ours: number[], theirs: number[], against: string): Row => {
      const a = median(ours);
      const b = median(theirs);
      return { name, ours: a, theirs: b, unit: 'MiB/s', ratio: a / b, against };
    };
    if (session.errors.length) throw new Error(`browser bench: page errors: ${session.errors.join('; ')}`);
    return [
      row('OPFS store seq 1 MiB writes + flush', o.seqWrite.store, o.seqWrite.raw, 'raw sync access handle'),
      row('OPFS store seq 1 MiB reads', o.seqRead.store, o.seqRead.raw, 'raw sync access handle'),
      row('OPFS store random 4 KiB reads', o.randRead.store, o.randRead.raw, 'raw sync access handle'),
      row('OPFS store random 4 KiB writes + flush', o.randWrite.store, o.randWrite.raw, 'raw sync access handle'),
      row('IDB store seq 1 MiB writes + close', i.storeWrite, i.rawSetMany, 'idb-keyval setMany 8 MiB'),
      row('IDB store writes: batching', i.storeWrite, i.rawSetEach, 'idb-keyval set per chunk'),
      row('IDB store writes (strict durability)', strict.storeWrite, strict.rawSetMany, 'setMany 8 MiB, strict'),
      row('IDB batching (strict durability)', strict.storeWrite, strict.rawSetEach, 'set per chunk, strict'),
      row('IDB store seq 1 MiB reads (cache off)', i.storeSeqRead, i.rawSeqRead, 'idb-keyval getMany'),
      row('IDB store random 4 KiB reads (cache off)', i.storeRandRead, i.rawRandRead, 'idb-keyval get'),
      row('IDB store random 4 KiB reads (its cache)', i.storeCachedRandRead, i.rawRandRead, 'idb-keyval get'),
    ];
  } finally {
    await session.close();
  }
}

/** The µs of a random 4 KiB OPFS read, raw and with each part of a store call (not a table row). */
export async function opfsReadCost(): Promise<Record<string, number>> {
  const session = await startBrowser({ isolated: true, mounts: { '/b/': here('./browser/'), '/idb-keyval/': here('../node_modules/idb-keyval/dist/') } });
  try {
    const page = await session.open('b/blank.html');
    const r = await page.evaluate(async () => (await import('/b/bench.mjs' as string)).run('inWorker', { name: 'opfsReadCost', arg: {} })) as Result;
    const inner = r.value as Result | undefined;
    if (!r.ok || !inner?.ok) throw new Error(`browser bench opfsReadCost: ${r.message ?? inner?.message}`);
    return inner.value as Record<string, number>;
  } finally {
    await session.close();
  }
}

if (isMain(import.meta.url)) {
  // `node --import tsx bench/browser.ts read-cost` prints where an OPFS read's time goes.
  if (process.argv[2] === 'read-cost') console.table(await opfsReadCost());
  else printRows(await browserBench(Number(process.env.BENCH_REPS ?? 3)));
}

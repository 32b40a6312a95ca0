// SPDX-License-Identifier: MIT
// Runner scaling: 4 KiB random reads and writes at depth 32 through ParallelImage with 1 and 2
// runners (and the in-thread image for reference), on the shared-memory store and on the file
// store, in this process. Each figure is the median of `reps` runs; the ratio 2 runners / 1
// runner is what the runner design is judged by (goal ≥ 1.7× for reads on 2 cores). The same
// through the batched API (readMany/writeMany: runnerBatchScaling). Run alone:
// `node --import tsx bench/runners.ts` (BENCH_REPS, BENCH_COUNT, BENCH_BATCH_COUNT, BENCH_BATCH,
// BENCH_BATCH_INFLIGHT, BENCH_FAST_PATH=0, BENCH_RUNNERS_ONLY=batch); bench/run.ts section 4 runs it as a child and reads its rows.

import { mkdtempSync, rmSync, writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImage, MemoryStore, PloopImage, NodeFileStore } from '../src/node.js';
import { ParallelImage } from '../src/runners/pool-node.js';
import { SharedMemoryStore } from '../src/stores/shared-memory.js';
import type { StoreSpec } from '../src/runners/protocol.js';
import { isMain, printRows, type Row } from './common.js';
import '../test/helpers/source-workers.js';

const DISK_BYTES = 256 << 20;
const CLUSTER_BYTES = 1 << 20;
const BLOCK = 4096;
const DEPTH = 32;

export interface ScalingRow {
  name: string;
  runners1: number;
  runners2: number;
  inThread: number;
  ratio: number;
  /** CPU time per request (µs) of this process's main thread and of its other threads, 2 runners. */
  mainCpuUs: number;
  otherCpuUs: number;
}

/** CPU seconds used so far by this process's main thread and by all its other threads (Linux /proc). */
function threadCpuSeconds(): { main: number; others: number; byThread: Map<string, number> } {
  const out = { main: 0, others: 0, byThread: new Map<string, number>() };
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      } catch {
        continue; // the thread ended meanwhile
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const seconds = (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ 100)
      if (Number(tid) === process.pid) out.main += seconds;
      else out.others += seconds;
      out.byThread.set(tid, seconds);
    }
  } catch {
    // not Linux: no per-thread figures
  }
  return out;
}

type Io = Pick<PloopImage, 'size' | 'readInto' | 'write' | 'flush' | 'close'>;

/** COUNT requests of 4 KiB at random block offsets, DEPTH in flight; returns requests per second. */
async function drive(image: Io, writing: boolean, count: number, seed: number): Promise<number> {
  const blocks = Math.floor(image.size / BLOCK);
  let s = seed >>> 0 || 1;
  const random = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const data = new Uint8Array(BLOCK).fill(0x5a);
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: DEPTH }, async () => {
    const buffer = new Uint8Array(BLOCK);
    while (next < count) {
      next++;
      const at = (random() % blocks) * BLOCK;
      if (writing) await image.write(at, data);
      else await image.readInto(at, buffer);
    }
  }));
  if (writing) await image.flush();
  return count / ((performance.now() - started) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A fully allocated image (random data in every cluster), as bytes. */
async function allocatedImageBytes(): Promise<Uint8Array> {
  const store = new MemoryStore();
  await createImage(store, { size: DISK_BYTES, clusterSize: CLUSTER_BYTES });
  const image = await PloopImage.open(store, { writable: true, onWarning: () => {} });
  const chunk = new Uint8Array(CLUSTER_BYTES);
  for (let at = 0; at < DISK_BYTES; at += CLUSTER_BYTES) await image.write(at, randomFillSync(chunk));
  await image.close();
  return store.bytes().slice();
}

export async function runnerScaling(options: { reps?: number; count?: number; log?: (line: string) => void } = {}): Promise<ScalingRow[]> {
  const reps = options.reps ?? 3;
  const count = options.count ?? 100_000;
  const log = options.log ?? ((l: string) => console.log(l));
  const dir = mkdtempSync(join(tmpdir(), 'ploop-runners-bench-'));
  const rows: ScalingRow[] = [];
  try {
    const bytes = await allocatedImageBytes();
    const file = join(dir, 'disk.hds');
    writeFileSync(file, bytes);
    const targets: Array<{ store: string; spec: (writable: boolean) => StoreSpec; inThread: (writable: boolean) => Promise<Io> }> = [
      {
        store: 'shared-memory store',
        spec: (writable) => SharedMemoryStore.from(bytes).spec(writable),
        inThread: (writable) => PloopImage.open(SharedMemoryStore.from(bytes), { writable, onWarning: () => {} }),
      },
      {
        store: 'file store',
        spec: (writable) => ({ kind: 'node-fs', path: file, writable }),
        inThread: async (writable) => PloopImage.open(await NodeFileStore.open(file, { writable }), { writable, onWarning: () => {} }),
      },
    ];
    for (const t of targets) {
      for (const writing of [false, true]) {
        let cpu = { main: 0, others: 0 };
        const measure = async (open: () => Promise<Io>) => {
          const xs: number[] = [];
          cpu = { main: 0, others: 0 };
          for (let r = 0; r < reps; r++) {
            const image = await open();
            try {
              const before = threadCpuSeconds();
              xs.push(await drive(image, writing, count, 0x9e37 + r));
              const after = threadCpuSeconds();
              cpu.main += after.main - before.main;
              cpu.others += Math.max(0, after.others - before.others);
            } finally {
              await image.close();
            }
          }
          return median(xs);
        };
        const pool = (n: number) => () => ParallelImage.open([t.spec(writing)], { writable: writing, runners: n, onWarning: () => {} });
        const inThread = await measure(() => t.inThread(writing));
        const runners1 = await measure(pool(1));
        const runners2 = await measure(pool(2));
        const perRequestUs = (seconds: number) => (seconds / (reps * count)) * 1e6;
        const row = {
          name: `4K random ${writing ? 'write (in place)' : 'read'}, depth ${DEPTH}, ${t.store}`, runners1, runners2, inThread, ratio: runners2 / runners1,
          mainCpuUs: perRequestUs(cpu.main), otherCpuUs: perRequestUs(cpu.others),
        };
        rows.push(row);
        log(`${row.name.padEnd(52)} in-thread ${Math.round(inThread).toString().padStart(7)}  1 runner ${Math.round(runners1).toString().padStart(7)}  2 runners ${Math.round(runners2).toString().padStart(7)} IOPS   2 vs 1: ${row.ratio.toFixed(2)}x   (2 runners: CPU/request main ${row.mainCpuUs.toFixed(1)} µs, runners+others ${row.otherCpuUs.toFixed(1)} µs; load average ${loadavg()[0].toFixed(1)})`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

type BatchIo = Pick<PloopImage, 'size' | 'readMany' | 'writeMany' | 'flush' | 'close'> & { allocShared?(bytes: number): Uint8Array; freeShared?(view: Uint8Array): void };

/**
 * COUNT requests of 4 KiB at random block offsets through readMany/writeMany: batches of
 * `batch` requests, `inFlight` batches at a time, each batch reusing its request objects and
 * its buffer (from allocShared when `shared`, so the runners fill it in place); requests per second.
 */
async function driveBatches(image: BatchIo, writing: boolean, count: number, seed: number, batch: number, inFlight: number, shared: boolean): Promise<number> {
  const blocks = Math.floor(image.size / BLOCK);
  let s = seed >>> 0 || 1;
  const random = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  let next = 0;
  const buffers: Uint8Array[] = [];
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    const memory = shared && image.allocShared ? image.allocShared(batch * BLOCK) : new Uint8Array(batch * BLOCK);
    memory.fill(0x5a);
    buffers.push(memory);
    const requests = Array.from({ length: batch }, (_, i) => ({ offset: 0, into: memory.subarray(i * BLOCK, (i + 1) * BLOCK), data: memory.subarray(i * BLOCK, (i + 1) * BLOCK) }));
    while (next < count) {
      const n = Math.min(batch, count - next);
      next += n;
      const list = n === batch ? requests : requests.slice(0, n);
      for (let i = 0; i < n; i++) list[i].offset = (random() % blocks) * BLOCK;
      if (writing) await image.writeMany(list);
      else await image.readMany(list);
    }
  }));
  if (writing) await image.flush();
  const iops = count / ((performance.now() - started) / 1000);
  if (shared && image.freeShared) for (const b of buffers) image.freeShared(b);
  return iops;
}

export interface BatchScalingRow extends ScalingRow {
  batch: number;
  inFlight: number;
  shared: boolean;
  /** CPU time per request (µs), 1 runner: this process's main thread and its other threads. */
  mainCpuUs1: number;
  otherCpuUs1: number;
  /**
   * 2 vs 1 as the CPU times predict it on 2 otherwise idle cores: 1 runner is bound by its
   * busiest thread, 2 runners by the busiest thread or by both cores' total. On a machine other
   * work keeps busy, the measured ratio says more about the scheduler than about the pool.
   */
  cpuBoundRatio: number;
}

/**
 * The batched API (readMany/writeMany): 4 KiB random reads and in-place writes, batches of
 * `batch` with `inFlight` batches in flight, in-thread vs 1 vs 2 runners, shared-memory and file
 * stores; reads also with private (copied) buffers to show what the in-place path saves.
 */
export async function runnerBatchScaling(options: { reps?: number; count?: number; batch?: number; inFlight?: number; ceiling?: boolean; log?: (line: string) => void } = {}): Promise<BatchScalingRow[]> {
  const reps = options.reps ?? 3;
  const count = options.count ?? 200_000;
  const batch = options.batch ?? 256;
  const inFlight = options.inFlight ?? 2;
  // BENCH_FAST_PATH=0: runners serve every request through ClusterIo (the generic path), to compare.
  const fastPath = process.env.BENCH_FAST_PATH !== '0';
  const log = options.log ?? ((l: string) => console.log(l));
  const dir = mkdtempSync(join(tmpdir(), 'ploop-runners-bench-'));
  const rows: BatchScalingRow[] = [];
  try {
    const bytes = await allocatedImageBytes();
    const file = join(dir, 'disk.hds');
    writeFileSync(file, bytes);
    if (options.ceiling !== false) await rawCeiling({ reps, count, file, log });
    const targets: BatchTarget[] = [
      {
        store: 'shared-memory store',
        spec: (writable) => SharedMemoryStore.from(bytes).spec(writable),
        inThread: (writable) => PloopImage.open(SharedMemoryStore.from(bytes), { writable, onWarning: () => {} }),
      },
      {
        store: 'file store',
        spec: (writable) => ({ kind: 'node-fs', path: file, writable, syncMaxBytes: 64 << 10 }),
        inThread: async (writable) => PloopImage.open(await NodeFileStore.open(file, { writable }), { writable, onWarning: () => {} }),
      },
    ];
    const cases: Array<{ t: typeof targets[number]; writing: boolean; shared: boolean }> = [];
    for (const t of targets) {
      cases.push({ t, writing: false, shared: true }, { t, writing: true, shared: true });
      if (t === targets[0]) cases.push({ t, writing: false, shared: false });
    }
    // BENCH_BATCH_READS_ONLY=1: the read rows only (the file store's in-place writes take minutes).
    for (const { t, writing, shared } of cases) {
      if (writing && process.env.BENCH_BATCH_READS_ONLY === '1') continue;
      const { row, r1 } = await batchCaseRow(t, writing, shared, { reps, count, batch, inFlight, fastPath });
      const [m1, o1, m2, o2] = [row.mainCpuUs1, row.otherCpuUs1, row.mainCpuUs, row.otherCpuUs];
      const { inThread, runners1, runners2 } = row;
      rows.push(row);
      log(`${row.name.padEnd(72)} in-thread ${Math.round(inThread).toString().padStart(7)}  1 runner ${Math.round(runners1).toString().padStart(7)}  2 runners ${Math.round(runners2).toString().padStart(7)} IOPS   2 vs 1: ${row.ratio.toFixed(2)}x   ` +
        `(CPU/request µs, main + runners/others: 1 runner ${m1.toFixed(2)} + ${o1.toFixed(2)} (the runner thread ${r1.toFixed(2)}), 2 runners ${m2.toFixed(2)} + ${o2.toFixed(2)}; 2 vs 1 on 2 idle cores by CPU ${row.cpuBoundRatio.toFixed(2)}x; load average ${loadavg()[0].toFixed(1)})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** A store the batch rows run on: its spec for runners, and the in-thread image over it. */
interface BatchTarget {
  store: string;
  spec: (writable: boolean) => StoreSpec;
  inThread: (writable: boolean) => Promise<BatchIo>;
}

/** One row of runnerBatchScaling: in-thread, 1 and 2 runners measured interleaved, `reps` times. */
async function batchCaseRow(t: BatchTarget, writing: boolean, shared: boolean, o: { reps: number; count: number; batch: number; inFlight: number; fastPath: boolean }): Promise<{ row: BatchScalingRow; r1: number }> {
  const { reps, count, batch, inFlight, fastPath } = o;
  const open = [
    () => t.inThread(writing),
    () => ParallelImage.open([t.spec(writing)], { writable: writing, runners: 1, onWarning: () => {}, fastPath }),
    () => ParallelImage.open([t.spec(writing)], { writable: writing, runners: 2, onWarning: () => {}, fastPath }),
  ];
  // Interleaved: rep r measures in-thread, 1 runner and 2 runners back to back, so a change
  // of load on the shared machine hits all three alike.
  const xs: number[][] = [[], [], []];
  const cpu = { main: 0, others: 0 };
  const cpu1 = { main: 0, others: 0 };
  /** CPU of the busiest thread other than main (the runner, with 1 runner). */
  let busiest1 = 0;
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < 3; k++) {
      const image = await open[k]();
      try {
        const before = threadCpuSeconds();
        xs[k].push(await driveBatches(image, writing, count, 0x51ed + r, batch, inFlight, shared));
        const after = threadCpuSeconds();
        if (k === 1) {
          let top = 0;
          for (const [tid, sec] of after.byThread) top = Math.max(top, tid === String(process.pid) ? 0 : sec - (before.byThread.get(tid) ?? 0));
          busiest1 += top;
        }
        const into = k === 2 ? cpu : k === 1 ? cpu1 : null;
        if (into) {
          into.main += after.main - before.main;
          into.others += Math.max(0, after.others - before.others);
        }
      } finally {
        await image.close();
      }
    }
  }
  const [inThread, runners1, runners2] = xs.map(median);
  const perRequestUs = (seconds: number) => (seconds / (reps * count)) * 1e6;
  const [m1, o1, m2, o2, r1] = [cpu1.main, cpu1.others, cpu.main, cpu.others, busiest1].map(perRequestUs);
  // 1 runner: the coordinator and the runner each have a core (V8's helper threads fit
  // beside them); 2 runners: each runner does half the work, and every thread of the
  // process shares the two cores.
  const oneRunnerBound = 1 / Math.max(m1, r1);
  const twoRunnerBound = Math.min(1 / m2, 2 / o2, 2 / (m2 + o2));
  const row: BatchScalingRow = {
    name: `4K random ${writing ? 'write (in place)' : 'read'}, batches of ${batch} ×${inFlight}, ${t.store}${shared ? '' : ', private buffers'}`,
    runners1, runners2, inThread, ratio: runners2 / runners1, mainCpuUs: m2, otherCpuUs: o2, batch, inFlight, shared,
    mainCpuUs1: m1, otherCpuUs1: o1, cpuBoundRatio: twoRunnerBound / oneRunnerBound,
  };
  return { row, r1 };
}

/**
 * What the machine allows before any engine work: the data movement of a random 4 KiB read
 * alone (a copy from a 256 MiB SharedArrayBuffer into a shared WebAssembly.Memory; a pread of the
 * same file into it), in 1 thread vs 2 threads at once, plain worker_threads with nothing else.
 * Both are memory-bound (a TLB and cache miss per 4 KiB), so 2 threads share the memory system:
 * this ratio bounds what 2 runners can reach on the same reads, whatever the pool does.
 */
export async function rawCeiling(options: { reps?: number; count?: number; file: string; log?: (line: string) => void }): Promise<Array<{ name: string; one: number; two: number; ratio: number }>> {
  const { Worker } = await import('node:worker_threads');
  const reps = options.reps ?? 3;
  const count = options.count ?? 200_000;
  const log = options.log ?? ((l: string) => console.log(l));
  const source = new SharedArrayBuffer(DISK_BYTES);
  randomFillSync(new Uint8Array(source, 0, 1 << 20));
  for (let at = 1 << 20; at < DISK_BYTES; at += 1 << 20) new Uint8Array(source, at, 1 << 20).set(new Uint8Array(source, 0, 1 << 20));
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { openSync, readSync, closeSync } = require('node:fs');
    const { source, kind, seed, count, file } = workerData;
    const src = new Uint8Array(source);
    const mem = new Uint8Array(new WebAssembly.Memory({ initial: 64, maximum: 1024, shared: true }).buffer);
    const fd = kind === 'pread' ? openSync(file, 'r') : -1;
    const blocks = src.length / 4096;
    let s = seed >>> 0 || 1;
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      const at = (s % blocks) * 4096;
      if (fd >= 0) readSync(fd, mem, (i & 511) * 4096, 4096, at);
      else mem.set(src.subarray(at, at + 4096), (i & 511) * 4096);
    }
    const ms = performance.now() - started;
    if (fd >= 0) closeSync(fd);
    parentPort.postMessage(ms);`;
  const run = (kind: string, threads: number, rep: number) => Promise.all(Array.from({ length: threads }, (_, k) => new Promise<number>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { source, kind, seed: 0x9e3779b1 * (rep * 2 + k + 1), count, file: options.file } });
    w.once('message', resolve);
    w.once('error', reject);
  }))).then((ms) => (threads * count) / (Math.max(...ms) / 1000));
  const rows = [];
  for (const kind of ['copy', 'pread']) {
    const one: number[] = [];
    const two: number[] = [];
    for (let r = 0; r < reps; r++) {
      one.push(await run(kind, 1, r));
      two.push(await run(kind, 2, r));
    }
    const row = { name: kind === 'copy' ? 'raw 4K random copy, SharedArrayBuffer → shared memory' : 'raw 4K random pread, file → shared memory', one: median(one), two: median(two), ratio: median(two) / median(one) };
    rows.push(row);
    log(`${row.name.padEnd(72)} 1 thread ${Math.round(row.one).toString().padStart(7)}  2 threads ${Math.round(row.two).toString().padStart(7)} per second   2 vs 1: ${row.ratio.toFixed(2)}x (the ceiling for 2 runners; load average ${loadavg()[0].toFixed(1)})`);
  }
  return rows;
}

export interface CoalescingRow {
  runners: number;
  allocations: number;
  batPageWrites: number;
  allocationsPerBatWrite: number;
  /** One allocating write on an idle queue, from call to resolve (ms, median of 5). */
  idleWriteMs: number;
}

/**
 * A burst of 1024 allocating 4 KiB writes that all land in md page 0 (64 KiB clusters: page 0
 * maps 1008 of them), issued together through the pool, then a flush: allocations per BAT page
 * write (goal ≥ 8 at default settings). Then single allocating writes on an idle queue: their
 * latency shows what the default submit delay adds when nothing else is waiting.
 */
export async function runnerCoalescing(runners: number, log: (line: string) => void = (l) => console.log(l)): Promise<CoalescingRow> {
  const created = new MemoryStore();
  await createImage(created, { size: 64 << 20, clusterSize: 64 << 10 });
  const store = SharedMemoryStore.from(created.bytes());
  const image = await ParallelImage.open([store.spec()], { writable: true, runners, onWarning: () => {} });
  try {
    const payload = new Uint8Array(4096).fill(0x3c);
    await Promise.all(Array.from({ length: 1024 }, (_, i) => image.write((i % 1000) * 65536 + Math.floor(i / 1000) * 8192, payload)));
    await image.flush();
    const stats = await image.stats();
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const t = performance.now();
      await image.write(1000 * 65536 + i * 65536, payload);
      latencies.push(performance.now() - t);
    }
    const row = {
      runners, allocations: stats.clustersAllocated, batPageWrites: stats.batPageWrites,
      allocationsPerBatWrite: stats.clustersAllocated / stats.batPageWrites, idleWriteMs: median(latencies),
    };
    log(`burst of 1024 allocating writes into one md page, ${runners} runner${runners === 1 ? '' : 's'}: ${row.allocations} allocations in ${row.batPageWrites} BAT page writes = ${row.allocationsPerBatWrite.toFixed(1)} per write (goal ≥ 8); one allocating write on an idle queue: ${row.idleWriteMs.toFixed(2)} ms`);
    return row;
  } finally {
    await image.close();
  }
}

/** Every runner figure as table rows (bench/run.ts section 4); the prose goes to stderr. */
export async function runnerRows(options: { reps?: number; count?: number; batchCount?: number; batch?: number; inFlight?: number; only?: string; log?: (line: string) => void } = {}): Promise<Row[]> {
  const log = options.log ?? ((l: string) => console.log(l));
  const rows: Row[] = [];
  if (options.only !== 'batch') {
    for (const n of [1, 2]) {
      const c = await runnerCoalescing(n, log);
      rows.push({ name: `allocations per BAT page write (burst of 1024, ${n} runner${n > 1 ? 's' : ''})`, ours: c.allocationsPerBatWrite, theirs: 8, unit: 'ratio', ratio: c.allocationsPerBatWrite / 8, against: 'goal 8' });
    }
    for (const r of await runnerScaling({ reps: options.reps, count: options.count, log })) {
      rows.push({ name: `${r.name}, 2 runners`, ours: r.runners2, theirs: r.runners1, unit: 'IOPS', ratio: r.ratio, against: '1 runner' });
    }
  }
  for (const r of await runnerBatchScaling({ reps: options.reps, count: options.batchCount, batch: options.batch, inFlight: options.inFlight, log })) {
    rows.push({ name: `${r.name}, 2 runners`, ours: r.runners2, theirs: r.runners1, unit: 'IOPS', ratio: r.ratio, against: '1 runner' });
    rows.push({ name: `${r.name}, 2 vs 1 runner by CPU time on 2 idle cores`, ours: r.cpuBoundRatio, theirs: 1.7, unit: 'ratio', ratio: r.cpuBoundRatio / 1.7, against: 'goal 1.7' });
    rows.push({ name: `${r.name}, 1 runner`, ours: r.runners1, theirs: r.inThread, unit: 'IOPS', ratio: r.runners1 / r.inThread, against: 'in-thread' });
  }
  return rows;
}

if (isMain(import.meta.url)) {
  const asChild = process.env.BENCH_JSON === '1';
  const rows = await runnerRows({
    reps: Number(process.env.BENCH_REPS ?? 3), count: Number(process.env.BENCH_COUNT ?? 100_000), batchCount: Number(process.env.BENCH_BATCH_COUNT ?? 200_000),
    batch: Number(process.env.BENCH_BATCH ?? 256), inFlight: Number(process.env.BENCH_BATCH_INFLIGHT ?? 2), only: process.env.BENCH_RUNNERS_ONLY,
    // As bench/run.ts's child, stdout carries only the JSON rows.
    log: asChild ? (l) => process.stderr.write(l + '\n') : undefined,
  });
  if (asChild) printRows(rows);
}

// SPDX-License-Identifier: MIT
// `npm run bench`: every figure is a ratio measured in this one run on this machine, each side
// the median of REPS repetitions (interleaved where the two sides run in turn); ratio > 1 means
// ploop-wasm is faster (or, for memory, uses more). Prints the table as it goes and again as
// Markdown at the end, and writes everything to bench/results.json. Needs qemu-img/qemu-io
// (qemu-utils), Chromium for the browser part, and npm run build (dist/) first.
//   1. 4 KiB reads, depth 1 and 32, vs qemu-img bench   (ours: --io async = NodeFileStore's
//      default, its I/O thread; the same with UV_USE_IO_URING=1; --io pool, libuv's pool; --io sync)
//   2. 4 KiB allocating writes vs qemu-img bench -w (--io async, pool, sync)
//   3. convert 1 GiB ploop → raw vs qemu-img convert and cp; raw → ploop; process start
//   4. runners: 1 vs 2 workers, per request and batched (readMany), BAT-write coalescing (bench/runners.ts)
//   5. WASM BAT lookup vs TypeScript (bench/lookup.ts)
//   6. memory store vs Uint8Array.set (bench/memory.ts); peak RSS of a 1 TiB sparse open (bench/rss.ts)
//   7. Chromium OPFS and IndexedDB stores vs the raw APIs (bench/browser.ts)
//   8. a real Linux guest in v86, Node and Chromium: boot time with the disk as a raw ArrayBuffer
//      vs through our adapter over a ploop image and a disk folder; HTTP traffic (bench/v86.ts)
//   8. the ext reader vs debugfs: list and extract a tree, one large file (bench/fs.ts)
// BENCH_REPS (default 3) sets the repetitions; BENCH_SKIP=browser,runners,… skips sections.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './common.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist/bin/ploop-wasm.js');
const REPS = Number(process.env.BENCH_REPS ?? 3);
const SKIP = new Set((process.env.BENCH_SKIP ?? '').split(',').filter(Boolean));
const GiB = 1 << 30;
const dir = mkdtempSync(join(tmpdir(), 'ploop-bench-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: Row[] = [];
const started = performance.now();

function run(cmd: string, args: string[], env?: Record<string, string>): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: env ? { ...process.env, ...env } : undefined });
}
function seconds(cmd: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with ${r.status}`);
  return (performance.now() - t) / 1000;
}
/** qemu-img bench prints "Run completed in X seconds." */
function qemuBench(args: string[]): number {
  const out = run('qemu-img', ['bench', '-f', 'parallels', '-t', 'writeback', ...args]);
  const m = /Run completed in ([\d.]+) seconds/.exec(out);
  if (!m) throw new Error(`unexpected qemu-img bench output: ${out}`);
  return Number(m[1]);
}
function ours(args: string[], env?: Record<string, string>): { iops: number; seconds: number } {
  return JSON.parse(run('node', [cli, 'bench', ...args, '--json'], env));
}
/** libuv's io_uring backend for fs requests: off by default in Node 20 (CVE-2024-22017), on when the process opts in. */
const IO_URING = { UV_USE_IO_URING: '1' };
/** Each function REPS times, in turn (A B C, A B C, …), so that load from elsewhere hits all alike; medians. */
function interleaved(fns: Array<() => number>, reps = REPS): number[] {
  const xs: number[][] = fns.map(() => []);
  for (let r = 0; r < reps; r++) fns.forEach((fn, i) => xs[i].push(fn()));
  return xs.map(median);
}
function record(name: string, oursValue: number, theirsValue: number, unit: string, against: string) {
  push({ name, ours: oursValue, theirs: theirsValue, unit, ratio: oursValue / theirsValue, against });
}
function push(row: Row) {
  rows.push(row);
  console.log(`${row.name.padEnd(46)} ours ${fmt(row.ours).padStart(10)} ${row.unit.padEnd(9)} ${row.against.padEnd(26)} ${fmt(row.theirs).padStart(10)}   ratio ${row.ratio.toFixed(2)}x`);
}
/** A bench module in its own process (a fresh JIT and heap): its JSON rows. */
function child(script: string, env?: Record<string, string>) {
  const out = run('node', ['--import', 'tsx', join(root, 'bench', script)], env);
  for (const row of JSON.parse(out.trim().split('\n').pop()!) as Row[]) push(row);
}
const fmt = (n: number) => (n >= 100 ? Math.round(n).toString() : n.toFixed(2));
const section = (name: string) => { console.log(`\n# ${name}`); return !SKIP.has(name.split(' ')[0]); };

try {
  const lscpu = run('lscpu', []);
  const model = /Model name:\s+(.*)/.exec(lscpu)?.[1] ?? cpus()[0]?.model;
  const machine = `${cpus().length}× ${model}, ${Math.round(totalmem() / GiB)} GiB, node ${process.version}, ${run('qemu-img', ['--version']).split('\n')[0]}`;
  console.log(`ploop-wasm bench, ${new Date().toISOString()}, ${machine}`);
  console.log(`median of ${REPS} runs; files in ${dir}`);
  // A fully allocated 1 GiB image from random data, made by qemu-img.
  const raw = join(dir, 'big.raw');
  const fd = openSync(raw, 'w');
  const chunk = new Uint8Array(16 << 20);
  for (let off = 0; off < GiB; off += chunk.length) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  const image = join(dir, 'big.hds');
  run('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', '-o', 'cluster_size=1M', raw, image]);
  const fresh = (name: string) => {
    const p = join(dir, name);
    run('node', [cli, 'create', p, '--size', '1G', '--force']); // the same name every round: replaced
    return p;
  };

  if (section('reads (1): 4 KiB, page cache warm')) {
    // Ours: --io async (what a library user gets: NodeFileStore's I/O thread), --io pool (each
    // pread through libuv's thread pool, the default before) and --io sync (positioned readSync
    // on the main thread, for a process that only does I/O). The io_uring rows set
    // UV_USE_IO_URING=1 with the default io (it changes only what still goes to libuv).
    const readCount = 100000;
    seconds('cat', [image]);
    for (const depth of [1, 32]) {
      const args = (pattern: string, io: string) => [image, '--pattern', pattern, '--block-size', '4K', '--depth', String(depth), '--count', String(readCount), '--io', io];
      const [q, seqA, rndA, seqU, rndU, seqP, rndP, seqS, rndS] = interleaved([
        () => readCount / qemuBench(['-c', String(readCount), '-s', '4k', '-d', String(depth), image]),
        () => ours(args('seqread', 'async')).iops,
        () => ours(args('randread', 'async')).iops,
        () => ours(args('seqread', 'async'), IO_URING).iops,
        () => ours(args('randread', 'async'), IO_URING).iops,
        () => ours(args('seqread', 'pool')).iops,
        () => ours(args('randread', 'pool')).iops,
        () => ours(args('seqread', 'sync')).iops,
        () => ours(args('randread', 'sync')).iops,
      ]);
      record(`4K seq read, depth ${depth}, io async`, seqA, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K random read, depth ${depth}, io async`, rndA, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K seq read, depth ${depth}, async+io_uring`, seqU, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K random read, depth ${depth}, async+io_uring`, rndU, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K seq read, depth ${depth}, io pool`, seqP, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K random read, depth ${depth}, io pool`, rndP, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K seq read, depth ${depth}, io sync`, seqS, q, 'IOPS', 'qemu-img bench (seq)');
      record(`4K random read, depth ${depth}, io sync`, rndS, q, 'IOPS', 'qemu-img bench (seq)');
    }
  }

  if (section('writes (2): 4 KiB allocating, empty 1 GiB image, 1 MiB clusters')) {
    // Ours never maps bytes that were not the cluster's: fresh clusters go to virgin slots of a
    // file grown ahead of the allocator (one fdatasync per 128 MiB chunk, docs/performance.md),
    // other allocations flush their data before their BAT page. qemu-img bench -w (writeback
    // cache) never syncs. The timed run includes our final flush.
    const writeCount = 30000;
    for (const depth of [1, 32]) {
      const args = (pattern: string, io: string) => [fresh('o.hds'), '--pattern', pattern, '--block-size', '4K', '--depth', String(depth), '--count', String(writeCount), '--io', io];
      const [q, seqA, rndA, seqP, rndP, seqS, rndS] = interleaved([
        () => writeCount / qemuBench(['-w', '-c', String(writeCount), '-s', '4k', '-d', String(depth), fresh('q.hds')]),
        () => ours(args('seqwrite', 'async')).iops,
        () => ours(args('randwrite', 'async')).iops,
        () => ours(args('seqwrite', 'pool')).iops,
        () => ours(args('randwrite', 'pool')).iops,
        () => ours(args('seqwrite', 'sync')).iops,
        () => ours(args('randwrite', 'sync')).iops,
      ]);
      record(`4K seq allocating write, depth ${depth}, io async`, seqA, q, 'IOPS', 'qemu-img bench -w');
      record(`4K random alloc. write, depth ${depth}, io async`, rndA, q, 'IOPS', 'qemu-img bench -w (seq)');
      record(`4K seq allocating write, depth ${depth}, io pool`, seqP, q, 'IOPS', 'qemu-img bench -w');
      record(`4K random alloc. write, depth ${depth}, io pool`, rndP, q, 'IOPS', 'qemu-img bench -w (seq)');
      record(`4K seq allocating write, depth ${depth}, io sync`, seqS, q, 'IOPS', 'qemu-img bench -w');
      record(`4K random alloc. write, depth ${depth}, io sync`, rndS, q, 'IOPS', 'qemu-img bench -w (seq)');
    }
  }

  if (section('convert (3): 1 GiB ploop → raw and back, whole processes')) {
    // Each run starts from the same state: the previous output removed and every dirty page
    // written back (untimed); else a run pays for the write-back of the run before it.
    // NODE_EXTRA_CA_CERTS, when set (this sandbox sets it), makes every node start read and parse
    // the CA bundle it names before any script runs (+50–60 ms per start here, nothing to do
    // with ploop-wasm): our processes run without it, and one row shows a start with it.
    const bareEnv = { ...process.env };
    delete bareEnv.NODE_EXTRA_CA_CERTS;
    const out = join(dir, 'out.raw');
    const back = join(dir, 'back.hds');
    const clean = () => { rmSync(out, { force: true }); rmSync(back, { force: true }); run('sync', []); };
    const caSet = !!process.env.NODE_EXTRA_CA_CERTS;
    const [convertOurs, convertQemu, copy, backOurs, backQemu, startOurs, startQemu, startNode, startCa] = interleaved([
      () => { clean(); return seconds('node', [cli, 'convert', image, out, '--to', 'raw'], bareEnv); },
      () => { clean(); return seconds('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', image, out]); },
      () => { clean(); return seconds('cp', ['--sparse=never', raw, out]); },
      () => { clean(); return seconds('node', [cli, 'convert', raw, back, '--to', 'ploop', '--cluster-size', '1M'], bareEnv); },
      () => { clean(); return seconds('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', '-o', 'cluster_size=1M', raw, back]); },
      // Process start alone, part of every convert time (node loads the CLI's bundle and the
      // command's chunk, compiles the WASM core, opens the image), and node's own start under it.
      () => seconds('node', [cli, 'info', image], bareEnv),
      () => seconds('qemu-img', ['info', image]),
      () => seconds('node', ['-e', '0'], bareEnv),
      () => (caSet ? seconds('node', [cli, 'info', image]) : 0),
      // At least 7 rounds: writing 1 GiB into fresh page-cache pages takes 0.3 s in most passes
      // and 1-3 s in some, for every writer alike (docs/performance.md, "Noise on this
      // machine"); with 3 rounds two such passes on one side decided a row (0.40x and 3.49x
      // in one run of 2026-11-26).
    ], Math.max(REPS, 7));
    record('convert 1 GiB ploop → raw', GiB / convertOurs / 2 ** 20, GiB / convertQemu / 2 ** 20, 'MiB/s', 'qemu-img convert');
    record('convert 1 GiB ploop → raw', GiB / convertOurs / 2 ** 20, GiB / copy / 2 ** 20, 'MiB/s', 'cp of the raw bytes');
    record('convert 1 GiB raw → ploop (1 MiB clusters)', GiB / backOurs / 2 ** 20, GiB / backQemu / 2 ** 20, 'MiB/s', 'qemu-img convert');
    record('process start: info of the image', 1 / startOurs, 1 / startQemu, 'runs/s', 'qemu-img info');
    record('process start: info of the image', 1 / startOurs, 1 / startNode, 'runs/s', 'node -e 0');
    if (caSet) record('process start: info, NODE_EXTRA_CA_CERTS set', 1 / startCa, 1 / startOurs, 'runs/s', 'info without it');
  }

  if (section('runners (4): coalescing, 1 vs 2 runners, per request and batched')) {
    // 4. Runners (bench/runners.ts in its own process): BAT-write coalescing under a burst of
    //    allocations; 4 KiB random reads and writes, 1 vs 2 workers, one request per call and
    //    batched (readMany/writeMany), shared-memory and file stores.
    child('runners.ts', { BENCH_JSON: '1' });
  }

  if (section('lookup (5): WASM BAT lookup, 1 TiB disk, 1 Mi entries')) child('lookup.ts');
  if (section('memory (6): memory store, 256 MiB image')) child('memory.ts');
  if (section('rss (6b): opening a 1 TiB sparse image')) child('rss.ts');
  if (section('browser (7): Chromium OPFS and IndexedDB stores')) child('browser.ts');
  if (section('v86 (8): Linux guest boot, raw ArrayBuffer vs ploop, Node and Chromium')) child('v86.ts');
  if (section('fs (8): ext reader vs debugfs, 1 GiB ext4')) child('fs.ts', { BENCH_REPS: String(REPS) });

  const totalSeconds = (performance.now() - started) / 1000;
  writeFileSync(join(root, 'bench/results.json'), JSON.stringify({ date: new Date().toISOString(), machine, cores: cpus().length, node: process.version, reps: REPS, totalSeconds, rows }, null, 2) + '\n');
  console.log(`\n| benchmark | ours | unit | against | theirs | ratio |\n|---|---:|---|---|---:|---:|`);
  for (const r of rows) console.log(`| ${r.name} | ${fmt(r.ours)} | ${r.unit} | ${r.against} | ${fmt(r.theirs)} | ${r.ratio.toFixed(2)}× |`);
  console.log(`\n${rows.length} rows in ${totalSeconds.toFixed(0)} s; written to bench/results.json`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

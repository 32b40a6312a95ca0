// SPDX-License-Identifier: MIT
// `npm run bench`: ploop-wasm against qemu-img on the same files in the same run. Each figure
// is the median of several repetitions; ratios > 1 mean ploop-wasm is faster. Writes a table to
// stdout and everything to bench/results.json. Needs qemu-img (apt-get install qemu-utils).

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir, cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist/bin/ploop-wasm.js');
const REPS = Number(process.env.BENCH_REPS ?? 3);
const GiB = 1 << 30;
const dir = mkdtempSync(join(tmpdir(), 'ploop-bench-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: Array<{ name: string; ours: number; theirs: number; unit: string; ratio: number; against: string }> = [];

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}
function seconds(cmd: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
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
function ours(args: string[]): { iops: number; seconds: number } {
  return JSON.parse(run('node', [cli, 'bench', ...args, '--json']));
}
function record(name: string, oursValue: number, theirsValue: number, unit: string, against: string) {
  rows.push({ name, ours: oursValue, theirs: theirsValue, unit, ratio: oursValue / theirsValue, against });
  console.log(`${name.padEnd(44)} ours ${fmt(oursValue).padStart(10)} ${unit.padEnd(6)} ${against.padEnd(22)} ${fmt(theirsValue).padStart(10)}   ratio ${(oursValue / theirsValue).toFixed(2)}x`);
}
const fmt = (n: number) => (n >= 100 ? Math.round(n).toString() : n.toFixed(2));

try {
  console.log(`ploop-wasm bench, ${new Date().toISOString()}, ${cpus().length}× ${cpus()[0]?.model}, node ${process.version}, ${run('qemu-img', ['--version']).split('\n')[0]}`);
  console.log(`median of ${REPS} runs; files in ${dir}\n`);
  // A fully allocated 1 GiB image from random data, made by qemu-img.
  const raw = join(dir, 'big.raw');
  const fd = openSync(raw, 'w');
  const chunk = new Uint8Array(16 << 20);
  for (let off = 0; off < GiB; off += chunk.length) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  const image = join(dir, 'big.hds');
  run('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', '-o', 'cluster_size=1M', raw, image]);

  // 1. 4 KiB reads, depth 1 and 32 (page cache warm: one untimed pass first).
  const readCount = 200000;
  seconds('cat', [image]);
  for (const depth of [1, 32]) {
    const q = median(Array.from({ length: REPS }, () => readCount / qemuBench(['-c', String(readCount), '-s', '4k', '-d', String(depth), image])));
    const seq = median(Array.from({ length: REPS }, () => ours([image, '--pattern', 'seqread', '--block-size', '4K', '--depth', String(depth), '--count', String(readCount)]).iops));
    const rnd = median(Array.from({ length: REPS }, () => ours([image, '--pattern', 'randread', '--block-size', '4K', '--depth', String(depth), '--count', String(readCount)]).iops));
    record(`4K seq read, depth ${depth}`, seq, q, 'IOPS', 'qemu-img bench (seq)');
    record(`4K random read, depth ${depth}`, rnd, q, 'IOPS', 'qemu-img bench (seq)');
  }

  // 2. 4 KiB allocating writes into an empty 1 GiB image (1 MiB clusters).
  const writeCount = 50000;
  const fresh = (name: string) => {
    const p = join(dir, name);
    run('node', [cli, 'create', p, '--size', '1G']);
    return p;
  };
  for (const depth of [1, 32]) {
    const q = median(Array.from({ length: REPS }, () => writeCount / qemuBench(['-w', '-c', String(writeCount), '-s', '4k', '-d', String(depth), fresh('q.hds')])));
    const seq = median(Array.from({ length: REPS }, () => ours([fresh('o.hds'), '--pattern', 'seqwrite', '--block-size', '4K', '--depth', String(depth), '--count', String(writeCount)]).iops));
    const rnd = median(Array.from({ length: REPS }, () => ours([fresh('o.hds'), '--pattern', 'randwrite', '--block-size', '4K', '--depth', String(depth), '--count', String(writeCount)]).iops));
    record(`4K seq allocating write, depth ${depth}`, seq, q, 'IOPS', 'qemu-img bench -w');
    record(`4K random allocating write, depth ${depth}`, rnd, q, 'IOPS', 'qemu-img bench -w (seq)');
  }

  // 3. Sequential convert ploop → raw, against qemu-img convert and a plain copy of the bytes.
  const out = join(dir, 'out.raw');
  const convertOurs = median(Array.from({ length: REPS }, () => seconds('node', [cli, 'convert', image, out, '--to', 'raw'])));
  const convertQemu = median(Array.from({ length: REPS }, () => seconds('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', image, out])));
  const copy = median(Array.from({ length: REPS }, () => seconds('cp', ['--sparse=never', raw, out])));
  record('convert 1 GiB ploop → raw', GiB / convertOurs / 2 ** 20, GiB / convertQemu / 2 ** 20, 'MiB/s', 'qemu-img convert');
  record('convert 1 GiB ploop → raw', GiB / convertOurs / 2 ** 20, GiB / copy / 2 ** 20, 'MiB/s', 'cp of the raw bytes');

  // 4. Runners: 1 vs 2 workers on 4 KiB random reads and writes (file store), and BAT-write
  //    coalescing under a burst of allocations.
  const scaleCount = 100000;
  const runnerIops = (pattern: string, runners: number, target: string) =>
    median(Array.from({ length: REPS }, () => ours([target, '--pattern', pattern, '--block-size', '4K', '--depth', '32', '--count', String(scaleCount), '--runners', String(runners)]).iops));
  const r1 = runnerIops('randread', 1, image);
  const r2 = runnerIops('randread', 2, image);
  record('4K random read depth 32, 2 runners', r2, r1, 'IOPS', '1 runner');
  const w1 = runnerIops('randwrite', 1, fresh('w1.hds'));
  const w2 = runnerIops('randwrite', 2, fresh('w2.hds'));
  record('4K random write depth 32, 2 runners', w2, w1, 'IOPS', '1 runner');
  const ops = join(dir, 'burst.jsonl');
  const burst = 1024;
  const payload = Buffer.alloc(4096, 0x3c).toString('base64');
  // 1024 allocating writes into the clusters of one md page (64 KiB clusters: page 0 maps 1008).
  const lines = Array.from({ length: burst }, (_, i) => JSON.stringify({ op: 'write', offset: (i % 1000) * 65536 + Math.floor(i / 1000) * 8192, data: payload }));
  writeFileSync(ops, lines.join('\n') + '\n{"op":"flush"}\n');
  const burstImage = join(dir, 'burst.hds');
  run('node', [cli, 'create', burstImage, '--size', '64M', '--cluster-size', '64K']);
  const replayed = JSON.parse(run('node', [cli, 'replay', burstImage, ops, '--json']));
  const coalescing = replayed.clustersAllocated / replayed.batPageWrites;
  rows.push({ name: 'allocations per BAT page write (burst of 1024)', ours: coalescing, theirs: 8, unit: 'ratio', ratio: coalescing / 8, against: 'goal 8' });
  console.log(`${'allocations per BAT page write (burst)'.padEnd(44)} ${coalescing.toFixed(1)} (${replayed.clustersAllocated} allocations, ${replayed.batPageWrites} BAT writes; goal ≥ 8)`);

  writeFileSync(join(root, 'bench/results.json'), JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, reps: REPS, rows }, null, 2) + '\n');
  console.log('\nwritten to bench/results.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// SPDX-License-Identifier: MIT
// A/B of two builds of ploop-wasm on this machine: `node --import tsx bench/ab.ts OTHER_CHECKOUT`
// runs `ploop-wasm bench` from this checkout's dist/ (B, the change) and OTHER_CHECKOUT's dist/
// (A, the commit before), interleaved A B A B … so load from elsewhere hits both alike, and
// prints each row's medians and B/A (> 1: the change is faster). Both need `npm run build`.
// AB_REPS (default 5) sets the repetitions; AB_ONLY=text runs the cases whose name has it.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const other = process.argv[2];
if (!other) throw new Error('usage: node --import tsx bench/ab.ts OTHER_CHECKOUT (the build to compare against)');
const REPS = Number(process.env.AB_REPS ?? 5);
const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const clis = { A: join(other, 'dist/bin/ploop-wasm.js'), B: join(here, 'dist/bin/ploop-wasm.js') };
const dir = mkdtempSync(join(tmpdir(), 'ploop-ab-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Case {
  name: string;
  /** Build the image the case runs on (fresh for each run of a write case). */
  image: 'filled' | 'empty';
  args: string[];
}

const CASES: Case[] = [
  { name: '4 KiB random reads, depth 1', image: 'filled', args: ['--pattern', 'randread', '--block-size', '4K', '--depth', '1', '--count', '20000'] },
  { name: '4 KiB random reads, depth 32', image: 'filled', args: ['--pattern', 'randread', '--block-size', '4K', '--depth', '32', '--count', '50000'] },
  { name: '4 KiB sequential allocating writes, depth 1', image: 'empty', args: ['--pattern', 'seqwrite', '--block-size', '4K', '--depth', '1', '--count', '20000'] },
  { name: '4 KiB sequential allocating writes, depth 32', image: 'empty', args: ['--pattern', 'seqwrite', '--block-size', '4K', '--depth', '32', '--count', '50000'] },
  { name: '4 KiB random allocating writes, depth 32', image: 'empty', args: ['--pattern', 'randwrite', '--block-size', '4K', '--depth', '32', '--count', '20000'] },
  { name: '4 KiB random reads, depth 32, 2 runners', image: 'filled', args: ['--pattern', 'randread', '--block-size', '4K', '--depth', '32', '--count', '50000', '--runners', '2'] },
  { name: '4 KiB random allocating writes, depth 32, 2 runners', image: 'empty', args: ['--pattern', 'randwrite', '--block-size', '4K', '--depth', '32', '--count', '20000', '--runners', '2'] },
];

function node(cli: string, args: string[]): string {
  return execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
}

function freshImage(kind: Case['image'], name: string): string {
  const path = join(dir, `${name}.hds`);
  rmSync(path, { force: true });
  node(clis.B, ['create', path, '--size', '256M', '--cluster-size', '1M']);
  if (kind === 'filled') node(clis.B, ['bench', path, '--pattern', 'seqwrite', '--block-size', '1M', '--depth', '4', '--count', '256']);
  return path;
}

try {
  const filled = freshImage('filled', 'filled');
  console.log(`A: ${other}\nB: ${here}\n${REPS} interleaved runs per side\n`);
  console.log('| case | A iops | B iops | B/A |\n|---|---|---|---|');
  for (const c of CASES.filter((x) => x.name.includes(process.env.AB_ONLY ?? ''))) {
    const iops: Record<'A' | 'B', number[]> = { A: [], B: [] };
    for (let r = 0; r < REPS; r++) {
      for (const side of ['A', 'B'] as const) {
        const path = c.image === 'filled' ? filled : freshImage('empty', 'empty');
        iops[side].push(JSON.parse(node(clis[side], ['bench', path, ...c.args, '--json'])).iops);
      }
    }
    const [a, b] = [median(iops.A), median(iops.B)];
    console.log(`| ${c.name} | ${Math.round(a)} | ${Math.round(b)} | ${(b / a).toFixed(2)} |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

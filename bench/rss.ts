// SPDX-License-Identifier: MIT
// Memory when opening a 1 TiB sparse image (1 MiB clusters: 1 Mi BAT entries, a 4 MiB BAT).
// A fresh child process (the built library in dist/, no TypeScript loader) loads the core,
// notes its resident set, opens the image, reads 2000 random 4 KiB blocks and a 64 MiB range,
// and reports how much the peak resident set (VmHWM in /proc/self/status) grew over the
// resident set before the open. The goal: the BAT plus a bounded amount (level bytes, slot
// bitmap, piwb pool), whatever the disk size. Beside it, qemu-io's peak RSS for the same open
// and reads (from /usr/bin/time) as a point of reference.
// Run alone: node --import tsx bench/rss.ts (prints JSON rows; needs npm run build first).

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { median, type Row, isMain, printRows } from './common.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TiB = 2 ** 40;

function childScript(nodeEntry: string, image: string): string {
  return `
import { readFileSync } from 'node:fs';
const lib = await import(${JSON.stringify(nodeEntry)});
const kib = (field) => Number(new RegExp(field + ':\\\\s+(\\\\d+)').exec(readFileSync('/proc/self/status', 'utf8'))[1]);
// Load the core first (as any process that opens an image does) so that only the open is measured.
const warm = new lib.MemoryStore();
await lib.createImage(warm, { size: 1 << 20 });
await (await lib.PloopImage.open(warm)).close();
// The 64 MiB read buffer is the caller's: allocated and touched before the baseline.
const big = new Uint8Array(64 << 20).fill(1);
globalThis.gc?.();
const rssBefore = kib('VmRSS');
const image = await lib.PloopImage.open(await lib.NodeFileStore.open(${JSON.stringify(image)}));
let s = 7;
const buf = new Uint8Array(4096);
for (let i = 0; i < 2000; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; await image.readInto((s % (image.size / 4096)) * 4096, buf); }
await image.readInto(image.size / 2, big);
const rssOpen = kib('VmRSS');
const hwm = kib('VmHWM');
const batBytes = 4 * image.geometry.batEntryCount;
await image.close();
process.stdout.write(JSON.stringify({ rssBefore, rssOpen, hwm, batBytes }) + '\\n');
`;
}

export function rssBench(reps: number): Row[] {
  const nodeEntry = pathToFileURL(join(root, 'dist/src/node.js')).href;
  if (!existsSync(join(root, 'dist/src/node.js'))) throw new Error('rss bench: run npm run build first (needs dist/src/node.js)');
  const dir = mkdtempSync(join(tmpdir(), 'ploop-rss-'));
  try {
    const image = join(dir, 'sparse-1t.hds');
    execFileSync('node', [join(root, 'dist/bin/ploop-wasm.js'), 'create', image, '--size', '1T']);
    const runs = Array.from({ length: reps }, () => {
      const out = execFileSync('node', ['--expose-gc', '--input-type=module', '-e', childScript(nodeEntry, image)], { encoding: 'utf8' });
      return JSON.parse(out) as { rssBefore: number; rssOpen: number; hwm: number; batBytes: number };
    });
    const growthKiB = median(runs.map((r) => r.hwm - r.rssBefore));
    const batKiB = runs[0].batBytes / 1024;
    // qemu-io: the whole process's peak (it has no "before"), for scale only.
    const qemuKiB = median(Array.from({ length: reps }, () => {
      const r = spawnSync('/usr/bin/time', ['-f', '%M', 'qemu-io', '-r', '-f', 'parallels', '-c', 'read 0 4k', '-c', `read ${TiB / 2} 64M`, image], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`qemu-io failed: ${r.stderr}`);
      return Number(r.stderr.trim().split('\n').pop());
    }));
    const totalKiB = median(runs.map((r) => r.hwm));
    return [
      { name: 'open 1 TiB sparse: peak RSS growth', ours: growthKiB / 1024, theirs: batKiB / 1024, unit: 'MiB', ratio: growthKiB / batKiB, against: 'its BAT (4 MiB)' },
      { name: 'open 1 TiB sparse: process peak RSS', ours: totalKiB / 1024, theirs: qemuKiB / 1024, unit: 'MiB', ratio: totalKiB / qemuKiB, against: 'qemu-io peak RSS' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) printRows(rssBench(Number(process.env.BENCH_REPS ?? 3)));

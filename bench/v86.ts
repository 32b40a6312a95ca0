// SPDX-License-Identifier: MIT
// Benchmark 8: what the ploop layer costs a real guest. The Linux test guest
// (test/helpers/linux-guest.ts: Debian's i386 kernel, busybox initramfs, ext4 root) boots in v86
// to its first userspace line, the disk given three ways, in Node and in headless Chromium:
//   raw     a raw ArrayBuffer (v86's own in-memory disk): the baseline;
//   ploop   our adapter (V86Disk over PersistentDisk) over the disk as one ploop image — in Node
//           a NodeFileStore, in Chromium a Blob in memory — with an empty delta in memory on top;
//   folder  our adapter over the disk as a ploop disk folder with a snapshot (root.hds + a top
//           delta), with its own delta on top: in Node a NodeDirectory; in Chromium the folder
//           read with HTTP ranges and the delta in OPFS, as the v86 page does it.
// Each boot is timed from `new V86` to "ploop-guest: userspace" on COM1; the variants run in
// turn (raw, ploop, folder; raw, ploop, folder…) and each row is the median. Goal: the ploop
// layer costs under 5 %. The folder boot in Chromium also reports the HTTP requests and bytes it
// fetched until then and until the guest is done (its token written).
// Run alone: node --import tsx bench/v86.ts (needs npm run build; prints JSON rows).

import { readdir, readFile, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { V86 } from 'v86';
import { PersistentDisk, MemoryDirectory, openBaseDirectory } from '../src/index.js';
import { NodeFileStore, NodeDirectory } from '../src/node.js';
import { startBrowser } from '../test/helpers/browser.js';
import { GUEST, GUEST_MEMORY_BYTES, guestFolder, linuxGuestDisk } from '../test/helpers/linux-guest.js';
import { cli } from '../test/helpers/cli.js';
import { median, type Row, isMain, printRows } from './common.js';

type Variant = 'raw' | 'ploop' | 'folder';
const VARIANTS: Variant[] = ['raw', 'ploop', 'folder'];
const TIMEOUT_MS = 300_000;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const require = createRequire(import.meta.url);

interface Paths { dir: string; raw: string; hds: string; folder: string }

/** The guest as a raw file, one ploop image, and a disk folder with a snapshot (as the tests serve it). */
async function guestFiles(): Promise<Paths> {
  const dir = await mkdtemp(join(tmpdir(), 'ploop-bench-v86-'));
  const guest = await linuxGuestDisk();
  const hds = join(dir, 'linux.hds');
  const r = await cli(['convert', guest.rawPath, hds, '--from', 'raw', '--cluster-size', '1M']);
  if (r.code !== 0) throw new Error(`convert: ${r.stderr}`);
  const folder = join(dir, 'linux');
  await guestFolder(folder, { topGreeting: 'from the snapshot top delta' });
  await symlink(guest.rawPath, join(dir, 'raw.img'));
  return { dir, raw: guest.rawPath, hds, folder };
}

/** One boot under Node; seconds to `marker`. */
async function nodeBoot(variant: Variant, p: Paths, marker = GUEST.userspace): Promise<number> {
  const [bios, vga] = await Promise.all(['bios.bin', 'vgabios-stdvga.bin'].map(async (f) => new Uint8Array(await readFile(`/usr/share/seabios/${f}`)).buffer));
  let hda: unknown;
  let close = async () => {};
  if (variant === 'raw') {
    hda = { buffer: new Uint8Array(await readFile(p.raw)).buffer };
  } else {
    const deltaDir = await mkdtemp(join(p.dir, 'delta-'));
    const disk = variant === 'ploop'
      ? await PersistentDisk.open({ base: await NodeFileStore.open(p.hds), dir: new MemoryDirectory('bench'), baseId: 'bench' })
      : await PersistentDisk.open({ base: (await openBaseDirectory(new NodeDirectory(p.folder))).levels, dir: new NodeDirectory(deltaDir), baseId: 'bench' });
    hda = disk.v86Disk();
    close = async () => {
      await disk.close();
      await rm(deltaDir, { recursive: true, force: true });
    };
  }
  let emulator: { destroy(): Promise<void>; add_listener(e: string, f: (b: number) => void): void } | undefined;
  try {
    const started = performance.now();
    // The options startV86 (src/adapters/v86/emulator.ts) uses, for every variant alike.
    emulator = new V86({
      wasm_path: require.resolve('v86/build/v86.wasm'), bios: { buffer: bios }, vga_bios: { buffer: vga }, hda, boot_order: 0x132,
      memory_size: GUEST_MEMORY_BYTES, vga_memory_size: 2 << 20, autostart: true, disable_keyboard: true, disable_mouse: true, disable_speaker: true,
    } as never) as unknown as typeof emulator;
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${variant}: no "${marker}" after ${TIMEOUT_MS} ms: ${text.slice(-400)}`)), TIMEOUT_MS);
      emulator!.add_listener('serial0-output-byte', (b) => {
        text += String.fromCharCode(b);
        if (text.endsWith(marker)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return (performance.now() - started) / 1000;
  } finally {
    await emulator?.destroy();
    await close();
  }
}

function rows(env: string, seconds: Record<Variant, number[]>): Row[] {
  const raw = median(seconds.raw);
  const label: Record<Variant, string> = { raw: '', ploop: 'ploop image', folder: env === 'Node' ? 'disk folder + delta' : 'folder over HTTP + OPFS delta' };
  // A time: the ratio is raw / ours, so that > 1 still means ploop-wasm is faster.
  return (['ploop', 'folder'] as const).map((v) => ({
    name: `Linux boot to userspace, ${env}, ${label[v]}`, ours: median(seconds[v]), theirs: raw, unit: 's', ratio: raw / median(seconds[v]), against: 'raw ArrayBuffer',
  }));
}

export async function v86Bench(reps: number, only: Set<string> = new Set(['node', 'browser'])): Promise<Row[]> {
  const p = await guestFiles();
  const out: Row[] = [];
  try {
    if (only.has('node')) {
      await nodeBoot('raw', p, 'SYSLINUX'); // compiles v86.wasm: not part of any timed boot
      const s: Record<Variant, number[]> = { raw: [], ploop: [], folder: [] };
      for (let r = 0; r < reps; r++) {
        for (const v of VARIANTS) {
          s[v].push(await nodeBoot(v, p));
          process.stderr.write(`v86 bench, Node, ${v}: ${s[v][r].toFixed(1)} s\n`);
        }
      }
      out.push(...rows('Node', s));
    }
    if (only.has('browser')) {
      const session = await startBrowser({ mounts: { '/b/': here('./browser/'), '/bios/': '/usr/share/seabios', '/guest/': p.dir } });
      try {
        const page = await session.open('b/blank.html');
        type Result = { seconds: number; fetched: { requests: number; bytes: number; reads: number } | null };
        const boot = (variant: Variant, marker: string) => page.evaluate(async ([v, o]) => (await import('/b/v86.mjs' as string)).bootOnce(v, o) as Promise<Result>,
          [variant, { raw: '/guest/raw.img', hds: '/guest/linux.hds', folder: '/guest/linux/', memoryBytes: GUEST_MEMORY_BYTES, marker, timeoutMs: TIMEOUT_MS }] as const);
        await boot('raw', 'SYSLINUX');
        const s: Record<Variant, number[]> = { raw: [], ploop: [], folder: [] };
        let fetched: Result['fetched'] = null;
        for (let r = 0; r < reps; r++) {
          for (const v of VARIANTS) {
            const result = await boot(v, GUEST.userspace);
            s[v].push(result.seconds);
            fetched ??= result.fetched;
            process.stderr.write(`v86 bench, Chromium, ${v}: ${result.seconds.toFixed(1)} s${result.fetched ? `, ${result.fetched.requests} requests, ${result.fetched.bytes} bytes` : ''}\n`);
          }
        }
        out.push(...rows('Chromium', s));
        // The whole boot (until the token is written) once more, for its HTTP traffic.
        const full = await boot('folder', GUEST.done);
        const servedBytes = await folderBytes(p.folder);
        for (const [when, f] of [['to userspace', fetched], ['whole boot', full.fetched]] as const) {
          if (!f) continue;
          out.push({ name: `HTTP bytes fetched, boot ${when}`, ours: f.bytes / 2 ** 20, theirs: servedBytes / 2 ** 20, unit: 'MiB', ratio: f.bytes / servedBytes, against: 'the served folder' });
          out.push({ name: `HTTP requests, boot ${when}`, ours: f.requests, theirs: f.reads, unit: 'requests', ratio: f.requests / f.reads, against: 'the guest\'s disk reads' });
        }
        if (session.errors.length) throw new Error(`v86 bench: page errors: ${session.errors.join('; ')}`);
      } finally {
        await session.close();
      }
    }
  } finally {
    await rm(p.dir, { recursive: true, force: true });
  }
  return out;
}

async function folderBytes(folder: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(folder)) if (f.includes('.hds')) total += (await stat(join(folder, f))).size;
  return total;
}

if (isMain(import.meta.url)) {
  const only = process.argv[2] ? new Set(process.argv.slice(2)) : undefined;
  printRows(await v86Bench(Number(process.env.BENCH_REPS ?? 3), only));
}

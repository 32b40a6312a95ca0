// SPDX-License-Identifier: MIT
// The ext reader (src/fs/ext) against debugfs (e2fsprogs) on the same raw filesystem image: list
// a whole tree (ours: readdir of every directory with each entry's stat; debugfs: one process
// running `ls -l` on every directory), extract it (ours: read every file and write it out,
// with symlinks; debugfs: rdump / OUT), and one large file (ours: stream to a file; debugfs:
// dump). Ours runs in this process (no process start), debugfs as a process per operation.
// Also the share of the image a listing of the root reads. Run alone:
// node --import tsx bench/fs.ts (prints JSON rows).

import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, type Row, isMain, printRows } from './common.js';
import { volumeOf } from '../src/fs/volume.js';
import { openExt } from '../src/fs/ext/index.js';
import { FileTree } from '../src/fs/tree.js';
import type { FsEntry } from '../src/fs/types.js';
import { openFilesystem } from '../src/fs/open.js';
import { HttpRangeStore } from '../src/stores/http-range.js';
import { PloopImage } from '../src/engine/image.js';
import { startStaticServer } from '../src/server/static-server.js';

const MiB = 1 << 20;

function openTree(image: string) {
  const fd = openSync(image, 'r');
  const counter = { bytes: 0 };
  const disk = {
    size: fstatSync(fd).size,
    read: async (offset: number, length: number) => {
      counter.bytes += length;
      const b = new Uint8Array(length);
      readSync(fd, b, 0, length, offset);
      return b;
    },
  };
  const volume = volumeOf(disk, 0, disk.size);
  return { counter, close: () => closeSync(fd), tree: openExt(volume).then((d) => new FileTree(d, volume)) };
}

async function listAll(tree: FileTree): Promise<FsEntry[]> {
  const out: FsEntry[] = [];
  const walk = async (path: string) => {
    for (const e of await tree.readdir(path)) {
      out.push(e);
      if (e.type === 'dir') await walk(e.path);
    }
  };
  await walk('/');
  return out;
}

async function extractAll(tree: FileTree, to: string): Promise<number> {
  let bytes = 0;
  for (const e of await listAll(tree)) {
    const dest = join(to, e.path);
    if (e.type === 'dir') mkdirSync(dest, { recursive: true });
    else if (e.type === 'symlink') symlinkSync(e.target!, dest);
    else if (e.type === 'file') {
      const fd = openSync(dest, 'w');
      for await (const chunk of tree.stream(e)) {
        writeSync(fd, chunk);
        bytes += chunk.length;
      }
      closeSync(fd);
    }
  }
  return bytes;
}

function seconds(cmd: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with ${r.status}`);
  return (performance.now() - t) / 1000;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export async function fsBench(reps: number): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ploop-fs-bench-'));
  try {
    // 6000 files of 1-64 KiB in 60 directories, symlinks, and one 256 MiB file; ext4 defaults.
    const src = join(dir, 'src');
    const chunk = Buffer.alloc(64 * 1024);
    for (let d = 0; d < 60; d++) {
      mkdirSync(join(src, `dir-${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(src, `dir-${d}`, f % 2 ? 'sub' : '', `file-${f}`), randomFillSync(chunk, 0, 1024 + ((f * 997) % 63) * 1024).subarray(0, 1024 + ((f * 997) % 63) * 1024));
      symlinkSync(`../dir-${(d + 1) % 60}`, join(src, `dir-${d}`, 'next'));
    }
    const bigFd = openSync(join(src, 'big.bin'), 'w');
    const block = Buffer.alloc(16 * MiB);
    for (let i = 0; i < 16; i++) writeSync(bigFd, randomFillSync(block));
    closeSync(bigFd);
    const image = join(dir, 'fs.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', src, image, '1G']);
    rmSync(src, { recursive: true });
    const { tree: treePromise, counter, close } = openTree(image);
    const tree = await treePromise;
    try {
      const entries = await listAll(tree);
      const dirs = ['/', ...entries.filter((e) => e.type === 'dir').map((e) => e.path)];
      const script = join(dir, 'ls.cmds');
      writeFileSync(script, dirs.map((d) => `ls -l ${d}\n`).join(''));
      const out = join(dir, 'out');
      const fresh = () => { rmSync(out, { recursive: true, force: true }); mkdirSync(out); };
      const treeBytes = entries.filter((e) => e.type === 'file' && e.path !== '/big.bin').reduce((s, e) => s + e.size, 0) + 256 * MiB;
      const listOurs: number[] = [], listTheirs: number[] = [], exOurs: number[] = [], exTheirs: number[] = [], bigOurs: number[] = [], bigTheirs: number[] = [];
      for (let r = 0; r < reps; r++) {
        listOurs.push(await timed(async () => listAll((await openTree(image).tree))));
        listTheirs.push(seconds('debugfs', ['-f', script, image]));
        fresh();
        exOurs.push(await timed(() => extractAll(tree, out)));
        fresh();
        exTheirs.push(seconds('debugfs', ['-R', `rdump / ${out}`, image]));
        fresh();
        bigOurs.push(await timed(async () => {
          const fd = openSync(join(out, 'big'), 'w');
          for await (const c of tree.stream('/big.bin')) writeSync(fd, c);
          closeSync(fd);
        }));
        bigTheirs.push(seconds('debugfs', ['-R', `dump /big.bin ${join(out, 'big2')}`, image]));
      }
      // What a listing of the root directory of a fresh open reads, against the image's size.
      const probe = openTree(image);
      await (await probe.tree).readdir('/');
      const listShare = probe.counter.bytes / fstatSync(openSync(image, 'r')).size;
      probe.close();
      void counter;
      const http = await httpListing(dir, image, dirs);
      const n = entries.length;
      const rows: Row[] = [
        { name: `list a tree (${n} entries, stat each)`, ours: n / median(listOurs), theirs: n / median(listTheirs), unit: 'entries/s', ratio: median(listTheirs) / median(listOurs), against: 'debugfs ls -l of every dir' },
        { name: `extract a tree (${(treeBytes / MiB).toFixed(0)} MiB, ${n} entries)`, ours: treeBytes / MiB / median(exOurs), theirs: treeBytes / MiB / median(exTheirs), unit: 'MiB/s', ratio: median(exTheirs) / median(exOurs), against: 'debugfs rdump' },
        { name: 'one 256 MiB file', ours: 256 / median(bigOurs), theirs: 256 / median(bigTheirs), unit: 'MiB/s', ratio: median(bigTheirs) / median(bigOurs), against: 'debugfs dump' },
        { name: 'listing / of a 1 GiB ext4: share of the image read', ours: listShare * 100, theirs: 1, unit: '%', ratio: listShare * 100, against: '1 % (the goal: well under)' },
        { name: 'listing / of the ext4 in a ploop image over HTTP (open included): share of the image fetched', ours: http.root.share * 100, theirs: 1, unit: '%', ratio: http.root.share * 100, against: `1 % (${(http.root.bytes / 1024).toFixed(0)} KiB in ${http.root.requests} requests)` },
        { name: `then every one of its ${dirs.length} directories (the whole tree, stat each entry): share fetched in all`, ours: http.tree.share * 100, theirs: 1, unit: '%', ratio: http.tree.share * 100, against: `1 % (${(http.tree.bytes / 1024).toFixed(0)} KiB in ${http.tree.requests} requests)` },
      ];
      return rows;
    } finally {
      close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The ext4 as a ploop image (qemu-img convert) behind an HTTP server: what listing every directory fetches. */
interface Fetched { bytes: number; requests: number; share: number }

async function httpListing(dir: string, raw: string, dirs: string[]): Promise<{ root: Fetched; tree: Fetched }> {
  const www = join(dir, 'www');
  mkdirSync(www);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', raw, join(www, 'fs.hds')]);
  const server = await startStaticServer({ root: www });
  try {
    const store = await HttpRangeStore.open(new URL('fs.hds', server.url).href);
    const image = await PloopImage.open(store);
    try {
      const fetched = (): Fetched => ({ bytes: store.stats.bytesFetched, requests: store.stats.requests, share: store.stats.bytesFetched / image.size });
      const fs = await openFilesystem(image);
      await fs.readdir('/');
      const root = fetched();
      for (const d of dirs) await fs.readdir(d);
      return { root, tree: fetched() };
    } finally {
      await image.close();
    }
  } finally {
    await server.close();
  }
}

if (isMain(import.meta.url)) printRows(await fsBench(Number(process.env.BENCH_REPS ?? 3)));

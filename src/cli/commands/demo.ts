// SPDX-License-Identifier: MIT
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { NodeFileStore } from '../../stores/node-fs.js';
import { createImage } from '../../engine/create.js';
import { PloopImage } from '../../engine/image.js';
import { checkImage } from '../../engine/check.js';
import { LEVEL_NONE } from '../../core/bat-map.js';
import { parse, formatSize, plural } from '../args.js';
import type { Command } from '../command.js';

export const demo: Command = {
  name: 'demo',
  summary: 'build a sample image, write to it and inspect it',
  usage: `ploop-wasm demo [--dir DIR]

  Creates sample.hds (64 MiB, 64 KiB clusters) in DIR (default: a new temporary directory),
  writes an MBR partition table, a text file's worth of bytes and a pattern, discards part of
  it, then shows the header, the BAT map, our check report and (when installed) qemu-img's.`,
  async run(argv) {
    const { values } = parse(argv, { dir: { type: 'string' } }, { min: 0, max: 0, names: 'no arguments' });
    if (values.help) return -1;
    let dir: string;
    if (typeof values.dir === 'string') {
      dir = values.dir;
      mkdirSync(dir, { recursive: true });
    } else dir = mkdtempSync(join(tmpdir(), 'ploop-demo-'));
    const path = join(dir, 'sample.hds');
    const say = (s: string) => process.stdout.write(s + '\n');
    say(`== creating ${path}`);
    const store = await NodeFileStore.open(path, { create: true });
    await createImage(store, { size: 64 << 20, clusterSize: 64 << 10 });
    const image = await PloopImage.open(store, { writable: true });
    await image.write(0, sampleMbr());
    const text = new TextEncoder().encode('Hello from ploop-wasm: this sector lives in a ploop cluster.\n');
    await image.write(1 << 20, text);
    const pattern = new Uint8Array(256 << 10).map((_, i) => (i * 7) & 0xff);
    await Promise.all([image.write(8 << 20, pattern), image.write(32 << 20, pattern)]);
    await image.discard(32 << 20, 128 << 10);
    await image.flush();
    const back = await image.read(1 << 20, text.length);
    say(`read back at 1 MiB: ${JSON.stringify(new TextDecoder().decode(back))}`);
    say(`\n== header`);
    const h = image.header;
    say(`format ${image.geometry.format}, virtual size ${formatSize(image.size)}, cluster ${formatSize(image.clusterSize)}, ${h.batEntries} BAT entries, data at byte ${h.dataOff * 512}, in use ${h.inUse !== 0}`);
    say(`\n== BAT map (virtual → file)`);
    for (const e of image.map()) {
      if (e.level !== LEVEL_NONE) say(`  ${formatSize(e.offset).padStart(10)} +${formatSize(e.length).padEnd(10)} → byte ${e.hostOffset}`);
    }
    const stats = image.stats;
    say(`\n== engine: ${plural(stats.clustersAllocated, 'cluster')} allocated, ${stats.clustersReleased} released, ${plural(stats.dataWrites, 'data write')}, ${plural(stats.batPageWrites, 'BAT page write')}`);
    await image.close();
    const checkStore = await NodeFileStore.open(path);
    const report = await checkImage(checkStore);
    await checkStore.close();
    say(`\n== ploop-wasm check: ${report.clean ? 'no errors' : 'PROBLEMS'}; ${report.allocatedClusters}/${report.totalClusters} clusters allocated, image end ${report.imageEndOffset}`);
    try {
      const out = execFileSync('qemu-img', ['check', '-f', 'parallels', path], { encoding: 'utf8' });
      say(`\n== qemu-img check\n${out.trim()}`);
    } catch (e) {
      const err = e as { code?: string; stdout?: string };
      say(err.code === 'ENOENT' ? '\n(qemu-img not installed: apt-get install qemu-utils to cross-check)' : `\n== qemu-img check FAILED\n${err.stdout ?? e}`);
      if (err.code !== 'ENOENT') return 1;
    }
    say(`\nThe image is at ${path}; try: ploop-wasm info ${path}`);
    return report.clean ? 0 : 1;
  },
};

/** An MBR with one Linux partition from 1 MiB to the end of the 64 MiB disk. */
function sampleMbr(): Uint8Array {
  const mbr = new Uint8Array(512);
  const dv = new DataView(mbr.buffer);
  const entry = 446;
  mbr[entry + 4] = 0x83;
  dv.setUint32(entry + 8, 2048, true);
  dv.setUint32(entry + 12, (64 << 20) / 512 - 2048, true);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

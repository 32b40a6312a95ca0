// SPDX-License-Identifier: MIT
// `ploop-wasm boot`: a headless smoke test for any ploop image. v86 (from npm) boots the image
// through the v86 adapter, with Debian's SeaBIOS, and the guest's COM1 goes to stdout.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse, parseSize, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { openImageFile, isPloopFile, stackDirOf } from '../open.js';
import { NodeFileStore } from '../../stores/node-fs.js';
import { MemoryStore } from '../../stores/memory.js';
import { createImage } from '../../engine/create.js';
import { PloopImage, type DeltaSource } from '../../engine/image.js';
import { readDescriptor } from '../../engine/stack.js';
import { descriptorChain } from '../../format/descriptor.js';
import { SECTOR_BYTES, HEADER_BYTES, parseHeader, deriveGeometry } from '../../format/header.js';
import { readFully } from '../../stores/block-store.js';
import { PloopError } from '../../errors.js';
import { imageBlockDevice } from '../../adapters/block-device.js';
import { V86Disk } from '../../adapters/v86/disk.js';
import { startV86, type V86Constructor } from '../../adapters/v86/emulator.js';

/** Where Debian's seabios package puts its files; PLOOP_WASM_BIOS_DIR names another folder. */
const BIOS_DIR = process.env.PLOOP_WASM_BIOS_DIR || '/usr/share/seabios';
const DEFAULT_BIOS = `${BIOS_DIR}/bios.bin`;
const DEFAULT_VGA_BIOS = `${BIOS_DIR}/vgabios-stdvga.bin`;
const DEFAULT_TIMEOUT_S = 30;
/** Cluster size of the temporary delta over a raw image (a ploop stack's own is used otherwise). */
const SNAPSHOT_CLUSTER_BYTES = 64 << 10;

export const boot: Command = {
  name: 'boot',
  summary: 'boot an image headless in v86 and print its serial port (smoke test)',
  usage: `ploop-wasm boot IMG|DIR [--timeout S] [--until TEXT] [--bios FILE] [--vga-bios FILE]
                 [--memory SIZE] [--snapshot]

  Boots the image (or the disk folder's delta stack) in the v86 emulator under Node, disk as
  the first IDE drive, and streams what the guest writes to COM1 to stdout.
  --until TEXT     exit 0 as soon as TEXT appeared on the serial port; exit 1 with a message
                   if it has not appeared after --timeout
  --timeout S      seconds (default ${DEFAULT_TIMEOUT_S}). Without --until the guest runs this long
                   and the exit status is 0
  --bios FILE      SeaBIOS image (default bios.bin in $PLOOP_WASM_BIOS_DIR, else in
                   /usr/share/seabios, from Debian's seabios package)
  --vga-bios FILE  VGA BIOS (default vgabios-stdvga.bin in the same folder)
  --memory SIZE    guest RAM (default 32M)
  --snapshot       the guest's writes go to a temporary delta in memory, dropped at exit;
                   the image is not modified. A raw IMG can only be booted this way
  Without --snapshot the writes go to the image (its top delta), flushed at exit.`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      timeout: { type: 'string' }, until: { type: 'string' }, bios: { type: 'string' }, 'vga-bios': { type: 'string' },
      memory: { type: 'string' }, snapshot: { type: 'boolean' },
    }, { min: 1, max: 1, names: 'IMG|DIR' });
    if (values.help) return -1;
    const timeoutS = Number(values.timeout ?? DEFAULT_TIMEOUT_S);
    if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError(`--timeout: "${values.timeout}" is not a positive number of seconds`);
    const memoryBytes = values.memory ? parseSize(values.memory as string, '--memory') : 32 << 20;
    if (memoryBytes < 1 << 20 || memoryBytes % (1 << 20) !== 0) throw new UsageError(`--memory: ${memoryBytes} bytes; expected whole MiB, at least 1M`);
    const until = values.until as string | undefined;
    if (until === '') throw new UsageError('--until: the text is empty');
    const [bios, vgaBios] = await Promise.all([
      readRom((values.bios as string | undefined) ?? DEFAULT_BIOS, '--bios', !values.bios),
      readRom((values['vga-bios'] as string | undefined) ?? DEFAULT_VGA_BIOS, '--vga-bios', !values['vga-bios']),
    ]);
    const image = values.snapshot ? await openWithTemporaryDelta(positionals[0]) : await openWritable(positionals[0]);
    try {
      return await bootImage(image, { bios, vgaBios, memoryBytes, until, timeoutMs: timeoutS * 1000 });
    } finally {
      await image.close();
    }
  },
};

async function readRom(path: string, option: string, isDefault: boolean): Promise<ArrayBuffer> {
  if (!existsSync(path)) {
    throw new UsageError(isDefault
      ? `${option}: ${path} not found; v86 ships no BIOS. Install Debian's SeaBIOS (apt-get install seabios) or pass ${option} FILE`
      : `${option}: ${path} not found`);
  }
  return new Uint8Array(await readFile(path)).buffer;
}

async function openWritable(path: string): Promise<PloopImage> {
  if (!(await isPloopFile(path))) {
    throw new UsageError(`${path} is not a ploop image or disk folder; boot a raw image with --snapshot, or convert it first (ploop-wasm convert)`);
  }
  return openImageFile(path, { writable: true });
}

/** The image's levels read-only, with an empty delta in memory on top for the guest's writes. */
async function openWithTemporaryDelta(path: string): Promise<PloopImage> {
  const sources: DeltaSource[] = [];
  try {
    const dir = await stackDirOf(path);
    if (dir) {
      for (const d of descriptorChain(await readDescriptor(dir))) {
        sources.push({ store: await dir.openStore(d.file), kind: d.type === 'Plain' ? 'raw' : 'ploop', name: d.file });
      }
    } else {
      const kind = (await isPloopFile(path)) ? 'ploop' : 'raw';
      sources.push({ store: await NodeFileStore.open(path), kind, name: path });
    }
    const geometry = await geometryOf(sources);
    const top = new MemoryStore();
    await createImage(top, geometry);
    sources.push({ store: top, kind: 'ploop', name: 'temporary delta' });
    return await PloopImage.openStack(sources, { writable: true, onWarning: (m) => process.stderr.write(`ploop-wasm: warning: ${m}\n`) });
  } catch (e) {
    for (const s of sources) await s.store.close();
    throw e;
  }
}

/** Size and cluster size of the stack as it is (the top ploop level, or the raw base). */
async function geometryOf(sources: DeltaSource[]): Promise<{ size: number; clusterSize: number; format: 'v1' | 'v2' }> {
  const top = sources[sources.length - 1];
  if (top.kind === 'raw') {
    const size = Math.ceil((await top.store.size()) / SECTOR_BYTES) * SECTOR_BYTES;
    if (size === 0) throw new PloopError('EINVAL', `boot: ${top.name} is empty`);
    return { size, clusterSize: SNAPSHOT_CLUSTER_BYTES, format: 'v2' };
  }
  const bytes = await top.store.size();
  const g = deriveGeometry(parseHeader(await readFully(top.store, 0, Math.min(HEADER_BYTES, bytes))), bytes);
  return { size: g.virtualSize, clusterSize: g.clusterBytes, format: g.format };
}

/**
 * A file of the v86 package: from this module's node_modules, else the working directory's. Loaded
 * by path at run time, never bundled: a bundled copy of the CLI (tests) must not inline v86.
 */
function v86File(file: string): string {
  for (const from of [import.meta.url, join(process.cwd(), 'package.json')]) {
    try {
      return createRequire(from).resolve(`v86/${file}`);
    } catch {
      // a bundled copy of the CLI has no node_modules beside it: try the next place
    }
  }
  throw new PloopError('ENOTSUP', 'boot: the v86 package is not installed: it is an optional peer dependency of ploop-wasm, needed only to boot (npm install v86)');
}

async function bootImage(image: PloopImage, o: { bios: ArrayBuffer; vgaBios: ArrayBuffer; memoryBytes: number; until?: string; timeoutMs: number }): Promise<number> {
  const { V86 } = (await import(pathToFileURL(v86File('build/libv86.mjs')).href)) as { V86: V86Constructor };
  const wasmPath = v86File('build/v86.wasm');
  let diskError: ((e: unknown) => void) | null = null;
  const failed = new Promise<never>((_, reject) => (diskError = reject));
  failed.catch(() => {});
  const disk = new V86Disk(imageBlockDevice(image), { onError: (e) => diskError?.(e) });
  // Bytes arrive one at a time; write them out in batches (one write per turn of the event loop).
  let pending: number[] = [];
  const writeOut = () => {
    if (pending.length > 0) process.stdout.write(Uint8Array.from(pending));
    pending = [];
  };
  const running = startV86({
    V86, disk, wasmPath, bios: { buffer: o.bios }, vgaBios: { buffer: o.vgaBios }, memoryBytes: o.memoryBytes,
    onSerialByte: (b) => {
      if (pending.push(b) === 1) setImmediate(writeOut);
    },
  });
  try {
    if (o.until === undefined) {
      await Promise.race([new Promise((done) => setTimeout(done, o.timeoutMs)), failed]);
      return 0;
    }
    try {
      await Promise.race([running.serial.waitFor(o.until, o.timeoutMs), failed]);
    } catch (e) {
      if (e instanceof PloopError && e.data.marker !== undefined) {
        process.stderr.write(`\nploop-wasm boot: timed out after ${o.timeoutMs / 1000} s waiting for ${JSON.stringify(o.until)} on the serial port (the guest printed ${running.serial.text.length} bytes)\n`);
        return 1;
      }
      throw e;
    }
    return 0;
  } finally {
    writeOut();
    await running.stop();
    await disk.flush();
  }
}

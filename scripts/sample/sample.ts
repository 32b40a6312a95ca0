// SPDX-License-Identifier: MIT
// The demo's built-in sample disk: a 32 MiB MBR disk with a FAT16 partition holding a few files
// and a swap partition, stored as a ploop stack (root.hds + one snapshot delta) in which the
// delta changes a file and adds one. Built entirely by this project's code.

import type { DeltaDirectory } from '../../src/stores/directory.js';
import { initStack, snapshotStack, openStackDir } from '../../src/engine/stack.js';
import { buildFat16, type FatFile } from './fat16.js';
import { buildMbrDisk, buildSwapHeader } from './disk.js';

const SECTOR_BYTES = 512;
export const SAMPLE_DISK_BYTES = 32 << 20;
export const SAMPLE_CLUSTER_BYTES = 64 << 10;
export const SAMPLE_FAT_LABEL = 'PLOOPSAMPLE';
export const SAMPLE_SWAP_LABEL = 'sample-swap';
/** Partition 1 (FAT16) and 2 (swap), in sectors. */
export const SAMPLE_PARTITIONS = [
  { startLba: 2048, sectors: 40960, type: 0x0e },
  { startLba: 43008, sectors: 22528, type: 0x82 },
] as const;

const text = (s: string) => new TextEncoder().encode(s);

/** DATA.BIN: bytes that say where they are (every 16 bytes: "@" + 15-digit offset), easy to spot in the hex view. */
export function sampleDataBin(bytes = 768 << 10): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let off = 0; off < bytes; off += 16) out.set(text(`@${off.toString().padStart(14, '0')}\n`), off);
  return out;
}

export const SAMPLE_HELLO_BASE = 'Hello from the base image of the ploop-wasm sample disk.\n';
export const SAMPLE_HELLO_TOP = 'Hello again: this text was changed in the snapshot delta on top of the base image.\n';
export const SAMPLE_CHANGES = 'CHANGES.TXT exists only in the top delta (added after the snapshot).\n';

/** The file tree before (base) and after (top delta) the snapshot. */
export function sampleFiles(state: 'base' | 'top'): FatFile[] {
  const files: FatFile[] = [
    { name: 'README.TXT', data: text('This FAT16 volume lives in a ploop image made by ploop-wasm (scripts/sample/).\nOpen it in the demo page: BAT picture, partitions, hex view.\n') },
    { name: 'HELLO.TXT', data: text(state === 'base' ? SAMPLE_HELLO_BASE : SAMPLE_HELLO_TOP) },
    { name: 'DATA.BIN', data: sampleDataBin() },
    { name: 'DOCS', children: [{ name: 'NOTES.TXT', data: text('Notes in a subdirectory.\n') }] },
  ];
  if (state === 'top') files.push({ name: 'CHANGES.TXT', data: text(SAMPLE_CHANGES) });
  return files;
}

/** The raw disk bytes of the sample in the given state. */
export function sampleRawDisk(state: 'base' | 'top'): Uint8Array {
  const [fatPart, swapPart] = SAMPLE_PARTITIONS;
  const fat = buildFat16(sampleFiles(state), { sizeSectors: fatPart.sectors, label: SAMPLE_FAT_LABEL, hiddenSectors: fatPart.startLba, serial: 0x20261125 });
  const swapUuid = Uint8Array.from({ length: 16 }, (_, i) => (i * 17 + 3) & 0xff);
  const swap = buildSwapHeader(swapPart.sectors * SECTOR_BYTES, SAMPLE_SWAP_LABEL, swapUuid);
  return buildMbrDisk(SAMPLE_DISK_BYTES / SECTOR_BYTES, [
    { ...fatPart, bootable: true, contents: fat },
    { ...swapPart, contents: swap },
  ]);
}

function clusterDiffers(a: Uint8Array, b: Uint8Array | null, off: number, length: number): boolean {
  for (let i = off; i < off + length; i++) if (a[i] !== (b ? b[i] : 0)) return true;
  return false;
}

/**
 * Write the sample into `dir`: DiskDescriptor.xml, root.hds (the base state) and a snapshot
 * delta holding only the clusters that differ in the top state. Returns the delta file names, base first.
 */
export async function writeSample(dir: DeltaDirectory): Promise<{ files: string[] }> {
  await initStack(dir, { size: SAMPLE_DISK_BYTES, clusterSize: SAMPLE_CLUSTER_BYTES });
  const base = sampleRawDisk('base');
  await writeClusters(dir, base, null);
  const { file } = await snapshotStack(dir);
  await writeClusters(dir, sampleRawDisk('top'), base);
  return { files: ['root.hds', file] };
}

/** Write every cluster of `disk` that differs from `below` (zeros when null) into the stack's top. */
async function writeClusters(dir: DeltaDirectory, disk: Uint8Array, below: Uint8Array | null): Promise<void> {
  const image = await openStackDir(dir, { writable: true });
  try {
    for (let off = 0; off < disk.length; off += SAMPLE_CLUSTER_BYTES) {
      if (clusterDiffers(disk, below, off, SAMPLE_CLUSTER_BYTES)) await image.write(off, disk.subarray(off, off + SAMPLE_CLUSTER_BYTES));
    }
  } finally {
    await image.close();
  }
}

// SPDX-License-Identifier: MIT
// An MBR-partitioned raw disk built in memory, and a Linux swap area to put in a partition.

import { PloopError } from '../../src/errors.js';

const SECTOR_BYTES = 512;

export interface MbrPartitionSpec {
  startLba: number;
  sectors: number;
  /** MBR type byte (0x0e FAT16 LBA, 0x82 Linux swap, …). */
  type: number;
  bootable?: boolean;
  contents?: Uint8Array;
}

/** A disk of `sizeSectors` with an MBR naming `partitions` (at most 4, primary) and their contents in place. */
export function buildMbrDisk(sizeSectors: number, partitions: MbrPartitionSpec[], diskSignature = 0x706c6f6f): Uint8Array {
  if (partitions.length > 4) throw new PloopError('EINVAL', `MBR: ${partitions.length} partitions, at most 4 primary ones`);
  const disk = new Uint8Array(sizeSectors * SECTOR_BYTES);
  const dv = new DataView(disk.buffer);
  dv.setUint32(440, diskSignature, true);
  partitions.forEach((p, i) => {
    if (p.startLba < 1 || p.startLba + p.sectors > sizeSectors) {
      throw new PloopError('EINVAL', `MBR: partition ${i + 1} (LBA ${p.startLba}+${p.sectors}) is outside the disk (${sizeSectors} sectors)`);
    }
    const e = 446 + 16 * i;
    disk[e] = p.bootable ? 0x80 : 0;
    // CHS fields say "use LBA" (the maximum 1023/254/63), as partitioners do past 8 GiB.
    disk.set([0xfe, 0xff, 0xff], e + 1);
    disk[e + 4] = p.type;
    disk.set([0xfe, 0xff, 0xff], e + 5);
    dv.setUint32(e + 8, p.startLba, true);
    dv.setUint32(e + 12, p.sectors, true);
    if (p.contents) {
      if (p.contents.length > p.sectors * SECTOR_BYTES) throw new PloopError('EINVAL', `MBR: partition ${i + 1} contents (${p.contents.length} bytes) exceed its ${p.sectors} sectors`);
      disk.set(p.contents, p.startLba * SECTOR_BYTES);
    }
  });
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/** The first page of a Linux swap area (version 1 header, as mkswap writes it). */
export function buildSwapHeader(sizeBytes: number, label: string, uuid: Uint8Array): Uint8Array {
  const page = new Uint8Array(4096);
  const dv = new DataView(page.buffer);
  dv.setUint32(1024, 1, true); // version
  dv.setUint32(1028, Math.floor(sizeBytes / 4096) - 1, true); // last_page
  page.set(uuid.subarray(0, 16), 1036);
  page.set(new TextEncoder().encode(label).subarray(0, 15), 1052);
  page.set(new TextEncoder().encode('SWAPSPACE2'), 4096 - 10);
  return page;
}

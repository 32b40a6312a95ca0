// SPDX-License-Identifier: MIT
// What is on a disk: its partition table and the filesystem (with label) in each partition, or
// a filesystem on the whole disk. Pure functions over a read callback (see bytes.ts).

import type { ReadAt } from './bytes.js';
import { detectFilesystem, type FilesystemInfo } from './filesystems.js';
import { readPartitionTable, type Partition, type PartitionScheme } from './partitions.js';

export type { ReadAt } from './bytes.js';
export { detectFilesystem, type FilesystemInfo, type FilesystemType } from './filesystems.js';
export { readPartitionTable, type Partition, type PartitionTable, type PartitionScheme } from './partitions.js';

export interface PartitionReport extends Partition {
  filesystem: FilesystemInfo | null;
}

export interface DiskReport {
  /** 'none' when sector 0 holds no partition table. */
  scheme: PartitionScheme | 'none';
  diskId: string | null;
  partitions: PartitionReport[];
  /** A filesystem on the whole disk (no partition table), else null. */
  filesystem: FilesystemInfo | null;
}

/** Inspect a disk of `diskBytes` bytes. */
export async function inspectDisk(readAt: ReadAt, diskBytes: number): Promise<DiskReport> {
  // Tables may point past the end of the disk (a truncated image): read zeros there instead of failing.
  const read: ReadAt = async (offset, length) => {
    if (offset + length <= diskBytes) return readAt(offset, length);
    const out = new Uint8Array(length);
    if (offset < diskBytes) out.set(await readAt(offset, diskBytes - offset));
    return out;
  };
  const table = await readPartitionTable(read, diskBytes);
  if (!table) {
    return { scheme: 'none', diskId: null, partitions: [], filesystem: await detectFilesystem(read, 0, diskBytes) };
  }
  const partitions: PartitionReport[] = [];
  for (const p of table.partitions) {
    // Extended MBR containers hold EBRs, not a filesystem; a partition past the disk end has none we can read.
    const container = p.scheme === 'mbr' && ['0x05', '0x0f', '0x85'].includes(p.typeId);
    const inside = p.startBytes < diskBytes;
    const size = Math.min(p.sizeBytes, diskBytes - p.startBytes);
    partitions.push({ ...p, filesystem: container || !inside ? null : await detectFilesystem(read, p.startBytes, size) });
  }
  return { scheme: table.scheme, diskId: table.diskId, partitions, filesystem: null };
}

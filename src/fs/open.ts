// SPDX-License-Identifier: MIT
// Opening the filesystem of a disk: on the whole disk, or on a partition the inspector found,
// numbered as Linux numbers them (/dev/sdaN: MBR 1–4 primary, 5+ logical; GPT entry index).
// Without a number, the disk's only filesystem that can be browsed, or an error that lists
// the partitions and what they hold.

import { PloopError } from '../errors.js';
import { inspectDisk, type DiskReport, type FilesystemInfo } from '../inspect/index.js';
import { readFully, type BlockStore } from '../stores/block-store.js';
import { FileTree } from './tree.js';
import type { Filesystem, FsDriver, FsKind, VolumeReader } from './types.js';
import { volumeOf, type DiskReader } from './volume.js';

export type { DiskReader } from './volume.js';

export interface OpenFilesystemOptions {
  /** Partition number as Linux numbers it; omitted: the disk's only browsable filesystem. */
  partition?: number;
  /** What inspectDisk already found on this disk (saves reading the tables again). */
  report?: DiskReport;
}

/** A filesystem that was opened, with where it lies on the disk. */
export interface OpenedFilesystem extends Filesystem {
  /** The partition's number, or null for a filesystem on the whole disk. */
  readonly partition: number | null;
  readonly startBytes: number;
}

/** Where one filesystem lies, as listed for a choice or an error message. */
export interface VolumeChoice {
  partition: number | null;
  startBytes: number;
  sizeBytes: number;
  typeName: string;
  filesystem: FilesystemInfo | null;
  browsable: boolean;
}

type DriverOpener = (volume: VolumeReader) => Promise<FsDriver>;

// Each format's reader is loaded only when a filesystem of that kind is opened.
const DRIVERS: Record<FsKind, () => Promise<DriverOpener>> = {
  ext2: async () => (await import('./ext/index.js')).openExt,
  ext3: async () => (await import('./ext/index.js')).openExt,
  ext4: async () => (await import('./ext/index.js')).openExt,
  fat12: async () => (await import('./fat/index.js')).openFat,
  fat16: async () => (await import('./fat/index.js')).openFat,
  fat32: async () => (await import('./fat/index.js')).openFat,
  iso9660: async () => (await import('./iso9660/index.js')).openIso9660,
};

export function isBrowsable(fs: FilesystemInfo | null): boolean {
  return fs !== null && fs.type in DRIVERS;
}

/** A raw disk held by a store (a raw image file, a Blob, an HTTP URL) as a DiskReader. */
export async function diskOfStore(store: BlockStore): Promise<DiskReader> {
  const size = await store.size();
  return { size, read: (offset, length) => readFully(store, offset, length) };
}

/** The filesystems on a disk: one per partition (containers and empty ones included), or the whole disk's. */
export async function listVolumes(disk: DiskReader, report?: DiskReport): Promise<VolumeChoice[]> {
  report ??= await inspectDisk((o, l) => disk.read(o, l), disk.size);
  if (report.scheme === 'none') {
    return [{ partition: null, startBytes: 0, sizeBytes: disk.size, typeName: 'whole disk', filesystem: report.filesystem, browsable: isBrowsable(report.filesystem) }];
  }
  return report.partitions.map((p) => ({
    partition: p.number, startBytes: p.startBytes, sizeBytes: p.sizeBytes, typeName: p.typeName, filesystem: p.filesystem, browsable: isBrowsable(p.filesystem),
  }));
}

/** Open the filesystem on `disk` (read-only). */
export async function openFilesystem(disk: DiskReader, options: OpenFilesystemOptions = {}): Promise<OpenedFilesystem> {
  const volumes = await listVolumes(disk, options.report);
  const choice = pickVolume(volumes, options.partition);
  const fs = choice.filesystem as FilesystemInfo;
  const volume = volumeOf(disk, choice.startBytes, choice.sizeBytes);
  const driver = await (await DRIVERS[fs.type as FsKind]())(volume);
  const tree = new FileTree(driver, volume);
  return Object.assign(tree, { partition: choice.partition, startBytes: choice.startBytes }) as FileTree & OpenedFilesystem;
}

function pickVolume(volumes: VolumeChoice[], partition: number | undefined): VolumeChoice {
  const where = (v: VolumeChoice) => (v.partition === null ? 'the disk' : `partition ${v.partition}`);
  if (partition !== undefined) {
    const v = volumes.find((c) => c.partition === partition);
    if (!v) {
      const numbers = volumes.filter((c) => c.partition !== null).map((c) => c.partition);
      throw new PloopError('EINVAL', `partition ${partition}: no such partition (the disk has ${numbers.length === 0 ? 'no partition table' : `partitions ${numbers.join(', ')}`})\n${describeVolumes(volumes)}`, { partition });
    }
    if (!v.browsable) throw unbrowsable(v, where(v));
    return v;
  }
  const browsable = volumes.filter((v) => v.browsable);
  if (browsable.length === 1) return browsable[0];
  if (volumes.length === 1) throw unbrowsable(volumes[0], where(volumes[0]));
  const why = browsable.length === 0 ? 'none of them holds a filesystem ploop-wasm can browse' : `${browsable.length} of them hold filesystems: choose one with a partition number`;
  throw new PloopError('EINVAL', `the disk has ${volumes.length} partitions and ${why}\n${describeVolumes(volumes)}`, { partitions: volumes.map((v) => v.partition) });
}

function unbrowsable(v: VolumeChoice, where: string): PloopError {
  const holds = v.filesystem ? `holds ${v.filesystem.name}, which ploop-wasm cannot browse` : 'holds no filesystem ploop-wasm recognizes';
  return new PloopError('ENOTSUP', `${where} ${holds} (it reads ext2/3/4, FAT12/16/32 and ISO 9660)\n${describeVolumes([v])}`, { partition: v.partition });
}

/** One line per volume: number, size, type and filesystem with its label. */
export function describeVolumes(volumes: VolumeChoice[]): string {
  return volumes.map((v) => {
    const fs = v.filesystem ? `${v.filesystem.name}${v.filesystem.label ? ` "${v.filesystem.label}"` : ''}` : 'no filesystem';
    const name = v.partition === null ? '  whole disk' : `  partition ${v.partition}`;
    return `${name}: ${mib(v.sizeBytes)} ${v.typeName}, ${fs}${v.browsable ? '' : ' (not browsable)'}`;
  }).join('\n');
}

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

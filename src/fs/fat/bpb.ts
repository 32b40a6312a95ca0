// SPDX-License-Identifier: MIT
// The boot sector's BIOS parameter block (BPB): where the FATs, the root directory and the data
// clusters lie. Offsets and rules are those of Microsoft's "FAT: General Overview of On-Disk
// Format": the FAT type follows from the count of data clusters alone, never from the
// "FAT12/FAT16/FAT32" text in the boot sector.

import { PloopError } from '../../errors.js';
import { u16, u32, textField } from '../../inspect/bytes.js';

export type FatKind = 'fat12' | 'fat16' | 'fat32';

/** Cluster counts below these make a FAT12 or a FAT16 (Microsoft's thresholds). */
export const FAT12_MAX_CLUSTERS = 4084;
export const FAT16_MAX_CLUSTERS = 65524;
/** FAT32 entries have 28 bits; 0x0FFFFFF7 and up are the bad and end-of-chain marks. */
export const FAT32_MAX_CLUSTERS = 0x0ffffff5;

export interface FatGeometry {
  kind: FatKind;
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterBytes: number;
  /** Byte offset of the FAT that is read (the active one, FAT32 mirroring off, else the first). */
  fatOffsetBytes: number;
  /** Bytes of one FAT. */
  fatBytes: number;
  fatCount: number;
  /** FAT12/16: the fixed root directory region (FAT32: 0). */
  rootDirOffsetBytes: number;
  rootDirEntries: number;
  /** FAT32: the root directory's first cluster (FAT12/16: 0). */
  rootCluster: number;
  /** Byte offset of cluster 2, the first data cluster. */
  dataOffsetBytes: number;
  /** Data clusters: valid cluster numbers are 2 … countClusters + 1. */
  countClusters: number;
  /** Bytes the BPB says the volume has. */
  sizeBytes: number;
  /** FAT32: sector of the FSInfo structure (0 when there is none). */
  fsInfoSector: number;
  label: string | null;
  /** Volume serial as "XXXX-XXXX", as blkid and Windows show it. */
  serial: string | null;
}

function corrupt(field: string, value: number, expected: string): PloopError {
  return new PloopError('ECORRUPT', `FAT boot sector: ${field} is ${value}, expected ${expected}`, { structure: 'FAT boot sector', field, value });
}

/** Parse and check the BPB in `boot` (the volume's first sector, at least 512 bytes). */
export function parseBootSector(boot: Uint8Array): FatGeometry {
  const bytesPerSector = u16(boot, 11);
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) throw corrupt('bytes per sector (BPB_BytsPerSec)', bytesPerSector, '512, 1024, 2048 or 4096');
  const sectorsPerCluster = boot[13];
  if (sectorsPerCluster === 0 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0) {
    throw corrupt('sectors per cluster (BPB_SecPerClus)', sectorsPerCluster, 'a power of two from 1 to 128');
  }
  const reservedSectors = u16(boot, 14);
  if (reservedSectors === 0) throw corrupt('reserved sectors (BPB_RsvdSecCnt)', 0, 'at least 1 (the boot sector)');
  const fatCount = boot[16];
  if (fatCount === 0) throw corrupt('number of FATs (BPB_NumFATs)', 0, 'at least 1');
  const rootDirEntries = u16(boot, 17);
  const totalSectors = u16(boot, 19) || u32(boot, 32);
  if (totalSectors === 0) throw corrupt('total sectors (BPB_TotSec16 and BPB_TotSec32)', 0, 'the volume size in sectors');
  const fatSectors = u16(boot, 22) || u32(boot, 36);
  if (fatSectors === 0) throw corrupt('sectors per FAT (BPB_FATSz16 and BPB_FATSz32)', 0, 'at least 1');

  const rootDirSectors = Math.ceil((rootDirEntries * 32) / bytesPerSector);
  const firstDataSector = reservedSectors + fatCount * fatSectors + rootDirSectors;
  if (firstDataSector >= totalSectors) {
    throw corrupt('first data sector (reserved + FATs + root directory)', firstDataSector, `less than the ${totalSectors} sectors of the volume`);
  }
  const countClusters = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  const kind: FatKind = countClusters <= FAT12_MAX_CLUSTERS ? 'fat12' : countClusters <= FAT16_MAX_CLUSTERS ? 'fat16' : 'fat32';
  if (countClusters > FAT32_MAX_CLUSTERS) throw corrupt('count of data clusters', countClusters, `at most ${FAT32_MAX_CLUSTERS}`);

  if (kind !== 'fat32' && rootDirEntries === 0) {
    throw corrupt(`root directory entries (BPB_RootEntCnt) of a ${kind.toUpperCase()}`, 0, 'at least 1');
  }

  // The FAT must hold an entry for every cluster (two reserved entries come first).
  const entryBits = kind === 'fat12' ? 12 : kind === 'fat16' ? 16 : 32;
  const fatBytes = fatSectors * bytesPerSector;
  const fatEntries = Math.floor((fatBytes * 8) / entryBits);
  if (fatEntries < countClusters + 2) {
    throw corrupt('sectors per FAT', fatSectors, `enough for ${countClusters + 2} ${kind.toUpperCase()} entries (it holds ${fatEntries})`);
  }

  const { rootCluster, fsInfoSector, activeFat } = kind === 'fat32'
    ? fat32Fields(boot, { reservedSectors, fatCount, rootDirEntries, countClusters })
    : { rootCluster: 0, fsInfoSector: 0, activeFat: 0 };
  const { label, serial } = volumeId(boot, kind === 'fat32' ? 64 : 36);

  const clusterBytes = bytesPerSector * sectorsPerCluster;
  return {
    kind,
    bytesPerSector,
    sectorsPerCluster,
    clusterBytes,
    fatOffsetBytes: (reservedSectors + activeFat * fatSectors) * bytesPerSector,
    fatBytes,
    fatCount,
    rootDirOffsetBytes: kind === 'fat32' ? 0 : (reservedSectors + fatCount * fatSectors) * bytesPerSector,
    rootDirEntries,
    rootCluster,
    dataOffsetBytes: firstDataSector * bytesPerSector,
    countClusters,
    sizeBytes: totalSectors * bytesPerSector,
    fsInfoSector,
    label,
    serial,
  };
}

/** The FAT32 part of the BPB: root cluster, FSInfo sector, and the FAT in use when mirroring is off. */
function fat32Fields(boot: Uint8Array, g: { reservedSectors: number; fatCount: number; rootDirEntries: number; countClusters: number }): { rootCluster: number; fsInfoSector: number; activeFat: number } {
  if (g.rootDirEntries !== 0) throw corrupt('root directory entries (BPB_RootEntCnt) of a FAT32', g.rootDirEntries, '0');
  const version = u16(boot, 42);
  if (version !== 0) throw corrupt('FAT32 version (BPB_FSVer)', version, '0.0');
  const rootCluster = u32(boot, 44);
  if (rootCluster < 2 || rootCluster > g.countClusters + 1) throw corrupt('root cluster (BPB_RootClus)', rootCluster, `2 to ${g.countClusters + 1}`);
  let fsInfoSector = u16(boot, 48);
  if (fsInfoSector >= g.reservedSectors) fsInfoSector = 0;
  // ExtFlags bit 7: mirroring off, and bits 0-3 name the one FAT that is kept up to date.
  const extFlags = u16(boot, 40);
  let activeFat = 0;
  if (extFlags & 0x80) {
    activeFat = extFlags & 0x0f;
    if (activeFat >= g.fatCount) throw corrupt('active FAT (BPB_ExtFlags bits 0-3)', activeFat, `less than the ${g.fatCount} FATs`);
  }
  return { rootCluster, fsInfoSector, activeFat };
}

/** Extended boot signature 0x29 at `ext` + 2: the serial number and the label follow it. */
function volumeId(boot: Uint8Array, ext: number): { label: string | null; serial: string | null } {
  if (boot[ext + 2] !== 0x29) return { label: null, serial: null };
  const id = u32(boot, ext + 3).toString(16).toUpperCase().padStart(8, '0');
  const text = textField(boot, ext + 7, 11);
  return { serial: `${id.slice(0, 4)}-${id.slice(4)}`, label: text === 'NO NAME' ? null : text };
}

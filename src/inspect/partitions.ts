// SPDX-License-Identifier: MIT
// Partition tables: MBR (with the extended/logical chain) and GPT (UEFI spec, chapter 5).
// 512-byte logical sectors, as every image this project makes or reads uses.

import { type ReadAt, u32, u64, utf16le, guidMixedEndian, isZero } from './bytes.js';
import { PloopError } from '../errors.js';

export const SECTOR_BYTES = 512;

export type PartitionScheme = 'mbr' | 'gpt';

export interface Partition {
  /** 1-based number as Linux names it (sda1…; logical MBR partitions from 5). */
  number: number;
  scheme: PartitionScheme;
  startBytes: number;
  sizeBytes: number;
  /** MBR type byte as "0x0c", or the GPT type GUID. */
  typeId: string;
  /** Human name of the type ("FAT32 (LBA)", "Linux filesystem", …). */
  typeName: string;
  /** GPT partition name (empty for MBR). */
  name: string;
  bootable: boolean;
}

export interface PartitionTable {
  scheme: PartitionScheme;
  /** Disk GUID (GPT) or the 32-bit disk signature (MBR). */
  diskId: string;
  partitions: Partition[];
}

const MBR_TYPES: Record<number, string> = {
  0x01: 'FAT12', 0x04: 'FAT16 <32M', 0x05: 'Extended', 0x06: 'FAT16', 0x07: 'HPFS/NTFS/exFAT', 0x0b: 'FAT32',
  0x0c: 'FAT32 (LBA)', 0x0e: 'FAT16 (LBA)', 0x0f: 'Extended (LBA)', 0x82: 'Linux swap', 0x83: 'Linux', 0x85: 'Linux extended',
  0x8e: 'Linux LVM', 0xa5: 'FreeBSD', 0xee: 'GPT protective', 0xef: 'EFI System', 0xfd: 'Linux RAID',
};

const GPT_TYPES: Record<string, string> = {
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI System',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  'A19D880F-05FC-4D3B-A006-743F0F84911E': 'Linux RAID',
  '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709': 'Linux root (x86-64)',
  '933AC7E1-2EB4-4F13-B844-0E14E2AEF915': 'Linux /home',
};

const EXTENDED = new Set([0x05, 0x0f, 0x85]);
/** Logical partitions followed at most (a looping EBR chain must not hang the inspector). */
const MAX_LOGICAL = 128;

/** Read the partition table, or null when sector 0 holds none (a bare filesystem, or nothing). */
export async function readPartitionTable(read: ReadAt, diskBytes: number): Promise<PartitionTable | null> {
  if (diskBytes < 2 * SECTOR_BYTES) return null;
  const mbr = await read(0, SECTOR_BYTES);
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) return null;
  const entries = [0, 1, 2, 3].map((i) => mbrEntry(mbr, 446 + 16 * i));
  // A boot sector of a filesystem (FAT, NTFS, exFAT) also ends in 55 AA: its "entries" are code
  // and BPB bytes, so every entry must look like one (status 0x00 or 0x80).
  if (entries.some((e) => e.status !== 0 && e.status !== 0x80)) return null;
  const used = entries.filter((e) => e.type !== 0 && e.sectors !== 0);
  if (used.length === 0) return null;
  if (used.some((e) => e.type === 0xee)) {
    const gpt = await readGpt(read, diskBytes);
    if (gpt) return gpt;
  }
  const diskId = u32(mbr, 440).toString(16).padStart(8, '0');
  const partitions: Partition[] = [];
  for (let i = 0; i < 4; i++) {
    const e = entries[i];
    if (e.type === 0 || e.sectors === 0) continue;
    partitions.push(mbrPartition(i + 1, e, e.lba));
    if (EXTENDED.has(e.type)) await readLogical(read, e.lba, diskBytes, partitions);
  }
  return { scheme: 'mbr', diskId, partitions };
}

interface MbrEntry {
  status: number;
  type: number;
  lba: number;
  sectors: number;
}

function mbrEntry(b: Uint8Array, off: number): MbrEntry {
  return { status: b[off], type: b[off + 4], lba: u32(b, off + 8), sectors: u32(b, off + 12) };
}

function mbrPartition(number: number, e: MbrEntry, startLba: number): Partition {
  return {
    number, scheme: 'mbr', startBytes: startLba * SECTOR_BYTES, sizeBytes: e.sectors * SECTOR_BYTES,
    typeId: '0x' + e.type.toString(16).padStart(2, '0'), typeName: MBR_TYPES[e.type] ?? 'unknown', name: '', bootable: e.status === 0x80,
  };
}

/** Logical partitions: a chain of EBRs; each names one partition (relative to itself) and the next EBR (relative to the extended partition). */
async function readLogical(read: ReadAt, extendedLba: number, diskBytes: number, out: Partition[]): Promise<void> {
  let ebrLba = extendedLba;
  const seen = new Set<number>();
  for (let n = 0; n < MAX_LOGICAL; n++) {
    if (seen.has(ebrLba) || (ebrLba + 1) * SECTOR_BYTES > diskBytes) return;
    seen.add(ebrLba);
    const ebr = await read(ebrLba * SECTOR_BYTES, SECTOR_BYTES);
    if (ebr[510] !== 0x55 || ebr[511] !== 0xaa) return;
    const part = mbrEntry(ebr, 446);
    const next = mbrEntry(ebr, 462);
    if (part.type !== 0 && part.sectors !== 0) out.push(mbrPartition(5 + n, part, ebrLba + part.lba));
    if (next.type === 0 || next.lba === 0) return;
    ebrLba = extendedLba + next.lba;
  }
}

/** GPT: header at LBA 1 ("EFI PART"), entries where it says. Falls back to the backup header at the last LBA. */
async function readGpt(read: ReadAt, diskBytes: number): Promise<PartitionTable | null> {
  const lastLba = Math.floor(diskBytes / SECTOR_BYTES) - 1;
  for (const lba of [1, lastLba]) {
    const h = await read(lba * SECTOR_BYTES, SECTOR_BYTES);
    if (String.fromCharCode(...h.subarray(0, 8)) !== 'EFI PART') continue;
    const entriesLba = u64(h, 72);
    const count = u32(h, 80);
    const entryBytes = u32(h, 84);
    if (entryBytes < 128 || entryBytes > 4096 || count > 16384) {
      throw new PloopError('EFORMAT', `GPT header at LBA ${lba}: ${count} entries of ${entryBytes} bytes, expected entries of 128..4096 bytes and at most 16384 of them`, { field: 'gpt', count, entryBytes });
    }
    const table = await read(entriesLba * SECTOR_BYTES, count * entryBytes);
    const partitions: Partition[] = [];
    for (let i = 0; i < count; i++) {
      const e = table.subarray(i * entryBytes, (i + 1) * entryBytes);
      if (isZero(e.subarray(0, 16))) continue;
      const typeId = guidMixedEndian(e, 0);
      const first = u64(e, 32);
      const last = u64(e, 40);
      partitions.push({
        number: i + 1, scheme: 'gpt', startBytes: first * SECTOR_BYTES, sizeBytes: (last - first + 1) * SECTOR_BYTES,
        typeId, typeName: GPT_TYPES[typeId] ?? 'unknown', name: utf16le(e, 56, 36),
        // Attribute bit 2: legacy BIOS bootable.
        bootable: (e[48] & 0x4) !== 0,
      });
    }
    return { scheme: 'gpt', diskId: guidMixedEndian(h, 56), partitions };
  }
  return null;
}

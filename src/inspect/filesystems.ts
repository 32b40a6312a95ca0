// SPDX-License-Identifier: MIT
// Filesystem detection from superblocks, with the volume label where the filesystem keeps one.
// Offsets are those of the on-disk specifications (Microsoft FAT/exFAT/NTFS, e2fsprogs, XFS,
// Btrfs, Linux swap, ECMA-119); each detector reads only the few sectors it needs.

import { type ReadAt, u16, u32, u64, ascii, textField, utf16le, uuidBigEndian } from './bytes.js';

export type FilesystemType =
  | 'fat12' | 'fat16' | 'fat32' | 'exfat' | 'ntfs' | 'ext2' | 'ext3' | 'ext4' | 'xfs' | 'btrfs' | 'swap' | 'iso9660';

export interface FilesystemInfo {
  type: FilesystemType;
  /** Display name: "FAT16", "ext4", "ISO 9660", … */
  name: string;
  /** Volume label, or null when the filesystem has none. */
  label: string | null;
  /** Volume UUID / serial number where there is one. */
  uuid: string | null;
}

const NAMES: Record<FilesystemType, string> = {
  fat12: 'FAT12', fat16: 'FAT16', fat32: 'FAT32', exfat: 'exFAT', ntfs: 'NTFS', ext2: 'ext2', ext3: 'ext3', ext4: 'ext4',
  xfs: 'XFS', btrfs: 'Btrfs', swap: 'Linux swap', iso9660: 'ISO 9660',
};

function info(type: FilesystemType, label: string | null, uuid: string | null = null): FilesystemInfo {
  return { type, name: NAMES[type], label, uuid };
}

/**
 * Name the filesystem that starts at byte `offset` of the disk (a partition, or the whole disk),
 * or null when none of the known superblocks is there. `sizeBytes` bounds the probes.
 */
export async function detectFilesystem(read: ReadAt, offset = 0, sizeBytes = Infinity): Promise<FilesystemInfo | null> {
  const at = (pos: number, length: number) => (pos + length <= sizeBytes ? read(offset + pos, length) : Promise.resolve(null));
  const boot = await at(0, 4096);
  if (!boot) return null;
  // Boot-sector filesystems first: their signatures sit at fixed places in sector 0.
  if (ascii(boot, 3, 8) === 'EXFAT   ') return exfat(boot, at);
  if (ascii(boot, 3, 8) === 'NTFS    ') return ntfs(boot, at);
  const fat = fatType(boot);
  if (fat) return fatInfo(fat, boot);
  if (ascii(boot, 0, 4) === 'XFSB') return info('xfs', textField(boot, 108, 12), uuidBigEndian(boot, 32));
  // ext2/3/4: the superblock is at byte 1024, magic 0xEF53 at +56.
  if (u16(boot, 1024 + 56) === 0xef53) return ext(boot.subarray(1024, 2048));
  const swapped = await swap(boot, at);
  if (swapped) return swapped;
  // Btrfs: superblock at 64 KiB, magic "_BHRfS_M" at +64, fsid at +32, label at +299 (256 bytes).
  const btrfs = await at(0x10000, 4096);
  if (btrfs && ascii(btrfs, 64, 8) === '_BHRfS_M') return info('btrfs', textField(btrfs, 299, 256, 'utf-8'), uuidBigEndian(btrfs, 32));
  // ISO 9660: volume descriptors from sector 16 (2048-byte sectors); type 1 is the primary one.
  for (let n = 16; n < 32; n++) {
    const vd = await at(n * 2048, 2048);
    if (!vd || ascii(vd, 1, 5) !== 'CD001') break;
    if (vd[0] === 1) return info('iso9660', textField(vd, 40, 32), null);
    if (vd[0] === 255) break;
  }
  return null;
}

/** FAT12/16/32 by the BPB (Microsoft FAT spec: the type follows from the cluster count alone). */
function fatType(b: Uint8Array): 'fat12' | 'fat16' | 'fat32' | null {
  if (u16(b, 510) !== 0xaa55) return null;
  if (b[0] !== 0xeb && b[0] !== 0xe9) return null;
  const bytesPerSector = u16(b, 11);
  const sectorsPerCluster = b[13];
  const reserved = u16(b, 14);
  const fats = b[16];
  const rootEntries = u16(b, 17);
  const total = u16(b, 19) || u32(b, 32);
  const fatSectors = u16(b, 22) || u32(b, 36);
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) return null;
  if (sectorsPerCluster === 0 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0) return null;
  if (reserved === 0 || fats === 0 || fatSectors === 0 || total === 0) return null;
  const rootSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const dataSectors = total - (reserved + fats * fatSectors + rootSectors);
  if (dataSectors <= 0) return null;
  const clusters = Math.floor(dataSectors / sectorsPerCluster);
  return clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32';
}

function fatInfo(type: 'fat12' | 'fat16' | 'fat32', b: Uint8Array): FilesystemInfo {
  // Extended BPB: signature 0x29 at 38 (FAT12/16) or 66 (FAT32), then the serial and 11-byte label.
  const base = type === 'fat32' ? 64 : 36;
  if (b[base + 2] !== 0x29) return info(type, null);
  const serial = u32(b, base + 3).toString(16).toUpperCase().padStart(8, '0');
  const label = textField(b, base + 7, 11);
  return info(type, label === 'NO NAME' ? null : label, `${serial.slice(0, 4)}-${serial.slice(4)}`);
}

type At = (pos: number, length: number) => Promise<Uint8Array | null>;

/** exFAT: the label is a directory entry (type 0x83) in the root directory, not in the boot sector. */
async function exfat(b: Uint8Array, at: At): Promise<FilesystemInfo> {
  const sectorShift = b[108];
  const clusterShift = b[109];
  const heapOffsetSectors = u32(b, 88);
  const rootCluster = u32(b, 96);
  const serial = u32(b, 100).toString(16).toUpperCase().padStart(8, '0');
  const uuid = `${serial.slice(0, 4)}-${serial.slice(4)}`;
  if (sectorShift < 9 || sectorShift > 12 || clusterShift > 25 || rootCluster < 2) return info('exfat', null, uuid);
  const clusterBytes = 2 ** (sectorShift + clusterShift);
  const rootPos = heapOffsetSectors * 2 ** sectorShift + (rootCluster - 2) * clusterBytes;
  const dir = await at(rootPos, Math.min(clusterBytes, 64 << 10));
  if (dir) {
    for (let e = 0; e + 32 <= dir.length; e += 32) {
      const type = dir[e];
      if (type === 0x00) break;
      if (type === 0x83) return info('exfat', utf16le(dir, e + 2, Math.min(dir[e + 1], 11)) || null, uuid);
    }
  }
  return info('exfat', null, uuid);
}

/** NTFS: the label is the $VOLUME_NAME attribute (0x60) of MFT record 3 ($Volume). */
async function ntfs(b: Uint8Array, at: At): Promise<FilesystemInfo> {
  const bytesPerSector = u16(b, 11);
  const spcRaw = b[13];
  // Values above 0x80 encode 2^(256 - n) sectors per cluster (clusters over 64 KiB).
  const sectorsPerCluster = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
  const clusterBytes = bytesPerSector * sectorsPerCluster;
  const mftCluster = u64(b, 48);
  const perRecord = (b[64] << 24) >> 24;
  // Positive: clusters per record; negative: 2^-n bytes.
  const recordBytes = perRecord > 0 ? perRecord * clusterBytes : 2 ** -perRecord;
  const serial = u64(b, 72).toString(16).toUpperCase().padStart(16, '0');
  if (clusterBytes === 0 || recordBytes < 512 || recordBytes > 65536) return info('ntfs', null, serial);
  const rec = await at(mftCluster * clusterBytes + 3 * recordBytes, recordBytes);
  if (!rec || ascii(rec, 0, 4) !== 'FILE') return info('ntfs', null, serial);
  // Update sequence array: the last two bytes of every sector were moved there; put them back.
  const usaOffset = u16(rec, 4);
  const usaCount = u16(rec, 6);
  for (let i = 1; i < usaCount && i * bytesPerSector <= rec.length; i++) {
    rec[i * bytesPerSector - 2] = rec[usaOffset + 2 * i];
    rec[i * bytesPerSector - 1] = rec[usaOffset + 2 * i + 1];
  }
  let pos = u16(rec, 20);
  while (pos + 24 <= rec.length) {
    const type = u32(rec, pos);
    const length = u32(rec, pos + 4);
    if (type === 0xffffffff || length < 16 || pos + length > rec.length) break;
    if (type === 0x60 && rec[pos + 8] === 0) {
      const valueLength = u32(rec, pos + 16);
      const valueOffset = u16(rec, pos + 20);
      return info('ntfs', utf16le(rec, pos + valueOffset, valueLength / 2) || null, serial);
    }
    pos += length;
  }
  return info('ntfs', null, serial);
}

/** ext2/3/4 by feature flags, as blkid tells them apart. `sb` is the 1024-byte superblock. */
function ext(sb: Uint8Array): FilesystemInfo {
  const compat = u32(sb, 92);
  const incompat = u32(sb, 96);
  const roCompat = u32(sb, 100);
  const label = textField(sb, 120, 16, 'utf-8');
  const uuid = uuidBigEndian(sb, 104);
  const HAS_JOURNAL = 0x4;
  // Features ext3 knows: incompat FILETYPE|RECOVER|META_BG, ro_compat SPARSE_SUPER|LARGE_FILE|BTREE_DIR.
  const EXT3_INCOMPAT = 0x2 | 0x4 | 0x10;
  const EXT3_RO_COMPAT = 0x1 | 0x2 | 0x4;
  if ((incompat & ~EXT3_INCOMPAT) !== 0 || (roCompat & ~EXT3_RO_COMPAT) !== 0) return info('ext4', label, uuid);
  return info(compat & HAS_JOURNAL ? 'ext3' : 'ext2', label, uuid);
}

/** Linux swap: "SWAPSPACE2" in the last 10 bytes of the first page; label at 1052 (16 bytes). */
async function swap(first: Uint8Array, at: At): Promise<FilesystemInfo | null> {
  for (const page of [4096, 8192, 16384, 65536]) {
    const tail = page <= first.length ? first.subarray(page - 10, page) : await at(page - 10, 10);
    if (!tail) break;
    const magic = ascii(tail, 0, 10);
    if (magic === 'SWAPSPACE2' || magic === 'SWAP-SPACE') {
      const v1 = magic === 'SWAPSPACE2';
      return info('swap', v1 ? textField(first, 1052, 16, 'utf-8') : null, v1 ? uuidBigEndian(first, 1036) : null);
    }
  }
  return null;
}

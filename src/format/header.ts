// SPDX-License-Identifier: MIT
// The 64-byte ploop header (docs/format.md, 'The header'): parse, validate against the file,
// serialize, and the geometry derived from it. Field names follow QEMU's spec; derived values carry
// units.
//
//   off  size  field        meaning
//   0    16    signature    "WithoutFreeSpace" (v1) | "WithouFreSpacExt" (v2)
//   16   4     version      2
//   20   4     heads        geometry only
//   24   4     cylinders    geometry only
//   28   4     tracks       cluster size in 512-byte sectors
//   32   4     batEntries   BAT entries = virtual clusters
//   36   8     nbSectors    virtual size in sectors (v1: low 32 bits only)
//   44   4     inUse        0x746F6E59 while open read-write; 0 or 0x312e3276 when closed
//   48   4     dataOff      start of the data area, sectors (v1 may say 0)
//   52   4     flags        bit0 CIF_Empty, bit1 CIF_FmtVersionConvert
//   56   8     extOff       format extension cluster, sectors (0 = none)

import { PloopError } from '../errors.js';

export const HEADER_BYTES = 64;
export const SECTOR_BYTES = 512;
export const SIGNATURE_V1 = 'WithoutFreeSpace';
export const SIGNATURE_V2 = 'WithouFreSpacExt';
export const HEADER_VERSION = 2;
export const INUSE_MAGIC = 0x746f6e59;
export const CLOSED_V21_MAGIC = 0x312e3276;
/**
 * m_Flags bit 0: the image holds no data cluster. ploop's own init sets it on every new image
 * and snapshot delta, and the ploop tools before 2020 (Debian's 1.15) refuse an image whose bit
 * disagrees with its BAT ("CIF_Empty flag is incorrect"). QEMU neither reads nor sets it.
 */
export const CIF_EMPTY = 1;
export const HEADS_NUMBER = 16;
export const SEC_IN_CYL = 32;
export const DEFAULT_CLUSTER_BYTES = 1 << 20;
/** QEMU's limits: tracks above INT32_MAX/513 is "Too big cluster", more entries "Catalog too large". */
export const MAX_TRACKS = Math.floor(0x7fffffff / 513);
export const MAX_BAT_ENTRIES = Math.floor(0x7fffffff / 4);
/** BAT u32 slots taken by the header (PLOOP_MAP_OFFSET). */
export const MAP_OFFSET_SLOTS = 16;

export type PloopFormat = 'v1' | 'v2';

/** The header exactly as stored (numbers, little-endian decoded). */
export interface PloopHeader {
  format: PloopFormat;
  version: number;
  heads: number;
  cylinders: number;
  tracks: number;
  batEntries: number;
  nbSectors: number;
  /** v1 only: the high word of the 8-byte size field, which v1 readers ignore. */
  nbSectorsHigh: number;
  inUse: number;
  dataOff: number;
  flags: number;
  extOff: number;
}

/** Values derived from a validated header, with units in their names. */
export interface Geometry {
  format: PloopFormat;
  clusterBytes: number;
  batEntryCount: number;
  virtualSize: number;
  /** End of the BAT entries in the file: 64 + 4 * batEntries. */
  batEndByte: number;
  /** File offset of the first data cluster (slot 0). */
  firstSlotByte: number;
  /** Bytes per BAT unit: 512 for v1 (sector entries), clusterBytes for v2. */
  unitBytes: number;
  /** The lowest data_off QEMU accepts, in sectors (acceptedMinDataOffSectors: sector-rounded for v1, cluster-rounded for v2). */
  minDataOffSectors: number;
  /** md pages (4 KiB) that hold header + BAT. */
  mdPageCount: number;
}

function fail(field: string, message: string, data: Record<string, unknown> = {}): never {
  throw new PloopError('EFORMAT', `invalid ploop header: ${field} ${message}`, { field, ...data });
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

/** Decode the first 64 bytes; rejects what is not a ploop header at all. */
export function parseHeader(bytes: Uint8Array): PloopHeader {
  if (bytes.length < HEADER_BYTES) {
    throw new PloopError('EFORMAT', `not a ploop image: ${bytes.length} bytes, a header needs ${HEADER_BYTES}`, { field: 'size' });
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const signature = String.fromCharCode(...bytes.subarray(0, 16));
  let format: PloopFormat;
  if (signature === SIGNATURE_V1) format = 'v1';
  else if (signature === SIGNATURE_V2) format = 'v2';
  else {
    fail('signature', `is ${JSON.stringify(signature.replace(/[^\x20-\x7e]/g, '.'))}, expected "${SIGNATURE_V1}" (v1) or "${SIGNATURE_V2}" (v2)`, { value: signature });
  }
  const u32 = (off: number) => dv.getUint32(off, true);
  const header: PloopHeader = {
    format,
    version: u32(16),
    heads: u32(20),
    cylinders: u32(24),
    tracks: u32(28),
    batEntries: u32(32),
    nbSectors: format === 'v1' ? u32(36) : u32(36) + u32(40) * 2 ** 32,
    nbSectorsHigh: format === 'v1' ? u32(40) : 0,
    inUse: u32(44),
    dataOff: u32(48),
    flags: u32(52),
    extOff: u32(56) + u32(60) * 2 ** 32,
  };
  if (header.version !== HEADER_VERSION) fail('version', `is ${header.version}, expected ${HEADER_VERSION}`, { value: header.version });
  if (header.tracks === 0) fail('tracks (cluster size in sectors)', 'is 0, expected at least 1', { value: 0 });
  if (header.tracks > MAX_TRACKS) {
    fail('tracks (cluster size in sectors)', `is ${header.tracks} (${header.tracks * SECTOR_BYTES} bytes), expected at most ${MAX_TRACKS}`, { value: header.tracks });
  }
  if (header.batEntries > MAX_BAT_ENTRIES) {
    fail('bat_entries', `is ${header.batEntries}, expected at most ${MAX_BAT_ENTRIES}`, { value: header.batEntries });
  }
  if (header.nbSectors > Number.MAX_SAFE_INTEGER / SECTOR_BYTES) {
    fail('nb_sectors', `is ${header.nbSectors}, too large for a byte offset`, { value: header.nbSectors });
  }
  const needed = Math.ceil(header.nbSectors / header.tracks);
  if (needed > header.batEntries) {
    fail('nb_sectors', `is ${header.nbSectors} (${needed} clusters of ${header.tracks} sectors), but bat_entries is only ${header.batEntries}`,
      { value: header.nbSectors, batEntries: header.batEntries });
  }
  // Any other in-use value is a damaged field, not a reason to refuse the image: QEMU reads it
  // as closed, check reports it (inUseValid) and its repair, or a clean close, rewrites it.
  return header;
}

/** Is the in-use field one of its three values (0, "Ynot" while open, "v2.1" closed with a format extension)? */
export function inUseValid(h: Pick<PloopHeader, 'inUse'>): boolean {
  return h.inUse === 0 || h.inUse === INUSE_MAGIC || h.inUse === CLOSED_V21_MAGIC;
}

/** What check and open say of an in-use field that is none of its three values. */
export function inUseMessage(h: Pick<PloopHeader, 'inUse'>): string {
  return `the in-use field (header byte 44) is ${hex(h.inUse)}, expected 0, ${hex(INUSE_MAGIC)} (in use) or ${hex(CLOSED_V21_MAGIC)} (closed, with a format extension)`;
}

/** data_off's lower bound in sectors: header + BAT rounded up to whole clusters (QEMU min_off). */
export function minDataOffSectors(batEntries: number, tracks: number): number {
  const sectors = Math.ceil((HEADER_BYTES + 4 * batEntries) / SECTOR_BYTES);
  return Math.ceil(sectors / tracks) * tracks;
}

/**
 * The lowest data_off QEMU accepts (parallels_test_data_off): the end of the BAT rounded up to a
 * sector for the old v1 magic, to a whole cluster for v2. What create writes is always the
 * cluster-rounded minDataOffSectors, as ploop's init and qemu-img create do.
 */
export function acceptedMinDataOffSectors(h: Pick<PloopHeader, 'format' | 'batEntries' | 'tracks'>): number {
  if (h.format === 'v1') return Math.ceil((HEADER_BYTES + 4 * h.batEntries) / SECTOR_BYTES);
  return minDataOffSectors(h.batEntries, h.tracks);
}

/** Is data_off acceptable for a file of `fileBytes` (QEMU parallels_test_data_off)? */
export function dataOffValid(h: PloopHeader, fileBytes: number): boolean {
  if (h.format === 'v1' && h.dataOff === 0) return true;
  return h.dataOff >= acceptedMinDataOffSectors(h) && h.dataOff * SECTOR_BYTES <= fileBytes;
}

/** The refusal of an invalid data_off: where it points, and the values that would do. */
export function dataOffError(h: PloopHeader, fileBytes: number): PloopError {
  const clusterBytes = h.tracks * SECTOR_BYTES;
  const batEndByte = HEADER_BYTES + 4 * h.batEntries;
  const minSectors = acceptedMinDataOffSectors(h);
  const where = h.dataOff * SECTOR_BYTES < batEndByte ? 'inside the header/BAT area' : h.dataOff * SECTOR_BYTES > fileBytes ? 'past the end of the file' : 'not rounded to a whole cluster';
  const fileSectors = Math.floor(fileBytes / SECTOR_BYTES);
  const rounding = h.format === 'v1' ? 'a sector' : `a ${clusterBytes}-byte cluster`;
  // A file shorter than the smallest valid data_off has no valid value to offer: say that.
  const expected = minSectors <= fileSectors
    ? `expected ${minSectors} to ${fileSectors} sectors`
    : `expected at least ${minSectors} sectors (header and BAT rounded up to ${rounding}), but the file has only ${fileSectors} sectors`;
  return new PloopError('ECORRUPT', `invalid ploop header: data_off is ${h.dataOff} sectors (${where}), ${expected}; run check --repair`,
    { field: 'data_off', value: h.dataOff, expected: minSectors });
}

/**
 * Derive the geometry. `fileBytes` bounds the BAT (checked before anything proportional to
 * bat_entries is allocated). With `lenient` an invalid data_off is replaced by the minimum
 * (for check/repair) instead of being refused.
 */
export function deriveGeometry(h: PloopHeader, fileBytes: number, lenient = false): Geometry {
  const clusterBytes = h.tracks * SECTOR_BYTES;
  const batEndByte = HEADER_BYTES + 4 * h.batEntries;
  if (batEndByte > fileBytes) {
    throw new PloopError('EFORMAT',
      `invalid ploop header: bat_entries ${h.batEntries} needs a BAT ending at byte ${batEndByte}, but the file has only ${fileBytes} bytes`,
      { field: 'bat_entries', value: h.batEntries, fileBytes });
  }
  const minSectors = acceptedMinDataOffSectors(h);
  let dataOffSectors = h.dataOff;
  if (!dataOffValid(h, fileBytes)) {
    if (!lenient) throw dataOffError(h, fileBytes);
    dataOffSectors = minSectors;
  }
  let firstSlotByte: number;
  if (h.format === 'v1') firstSlotByte = dataOffSectors === 0 ? Math.ceil(batEndByte / SECTOR_BYTES) * SECTOR_BYTES : dataOffSectors * SECTOR_BYTES;
  else firstSlotByte = Math.ceil((dataOffSectors * SECTOR_BYTES) / clusterBytes) * clusterBytes;
  return {
    format: h.format,
    clusterBytes,
    batEntryCount: h.batEntries,
    virtualSize: h.nbSectors * SECTOR_BYTES,
    batEndByte,
    firstSlotByte,
    unitBytes: h.format === 'v1' ? SECTOR_BYTES : clusterBytes,
    minDataOffSectors: minSectors,
    mdPageCount: Math.ceil(batEndByte / 4096),
  };
}

/** Encode a header into 64 bytes. */
export function serializeHeader(h: PloopHeader): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  const dv = new DataView(bytes.buffer);
  const signature = h.format === 'v1' ? SIGNATURE_V1 : SIGNATURE_V2;
  for (let i = 0; i < 16; i++) bytes[i] = signature.charCodeAt(i);
  const u32 = (off: number, v: number) => dv.setUint32(off, v >>> 0, true);
  const u64 = (off: number, v: number) => {
    u32(off, v % 2 ** 32);
    u32(off + 4, Math.floor(v / 2 ** 32));
  };
  u32(16, h.version);
  u32(20, h.heads);
  u32(24, h.cylinders);
  u32(28, h.tracks);
  u32(32, h.batEntries);
  if (h.format === 'v1') {
    u32(36, h.nbSectors);
    u32(40, h.nbSectorsHigh);
  } else u64(36, h.nbSectors);
  u32(44, h.inUse);
  u32(48, h.dataOff);
  u32(52, h.flags);
  u64(56, h.extOff);
  return bytes;
}

/** The header QEMU's `qemu-img create -f parallels` writes for this size and cluster size. */
export function newHeader(options: { size: number; clusterBytes?: number; format?: PloopFormat }): PloopHeader {
  const clusterBytes = options.clusterBytes ?? DEFAULT_CLUSTER_BYTES;
  const format = options.format ?? 'v2';
  if (!Number.isSafeInteger(clusterBytes) || clusterBytes <= 0 || clusterBytes % SECTOR_BYTES !== 0) {
    throw new PloopError('EINVAL', `cluster size ${clusterBytes} is not a positive multiple of ${SECTOR_BYTES} bytes`, { field: 'clusterBytes', value: clusterBytes });
  }
  if (clusterBytes / SECTOR_BYTES > MAX_TRACKS) {
    throw new PloopError('EINVAL', `cluster size ${clusterBytes} is too large, expected at most ${MAX_TRACKS * SECTOR_BYTES} bytes`, { field: 'clusterBytes', value: clusterBytes });
  }
  const size = options.size;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new PloopError('EINVAL', `size ${size} is not a whole number of bytes`, { field: 'size', value: size });
  }
  const nbSectors = Math.ceil(size / SECTOR_BYTES);
  const tracks = clusterBytes / SECTOR_BYTES;
  const batEntries = Math.ceil(nbSectors / tracks);
  if (batEntries > MAX_BAT_ENTRIES) {
    throw new PloopError('EINVAL', `size ${size} needs ${batEntries} BAT entries with ${clusterBytes}-byte clusters, at most ${MAX_BAT_ENTRIES} are allowed`, { field: 'size', value: size });
  }
  if (format === 'v1' && nbSectors > 0xffffffff) {
    throw new PloopError('EINVAL', `size ${size} exceeds the v1 limit of ${0xffffffff * SECTOR_BYTES} bytes (32-bit sector count)`, { field: 'size', value: size });
  }
  return {
    format,
    version: HEADER_VERSION,
    heads: HEADS_NUMBER,
    cylinders: Math.floor(nbSectors / HEADS_NUMBER / SEC_IN_CYL),
    tracks,
    batEntries,
    nbSectors,
    nbSectorsHigh: 0,
    inUse: 0,
    dataOff: minDataOffSectors(batEntries, tracks),
    // Empty, as ploop's init writes it (qemu-img create writes 0); the first allocation clears it.
    flags: CIF_EMPTY,
    extOff: 0,
  };
}

// SPDX-License-Identifier: MIT
// A small FAT16 formatter and writer (Microsoft "FAT: General Overview of On-Disk Format"): lays a
// volume out in memory with a label, 8.3 files and subdirectories. Enough to build the demo's
// sample disk with our own code; allocation is sequential, so the same tree always gives the
// same bytes and a changed file changes only the sectors it lives in.

import { PloopError } from '../../src/errors.js';

const SECTOR_BYTES = 512;
const DIR_ENTRY_BYTES = 32;
const ATTR_DIRECTORY = 0x10;
const ATTR_VOLUME_ID = 0x08;
const ATTR_ARCHIVE = 0x20;
/** FAT16 needs 4085..65524 clusters; fewer is FAT12 by definition, more FAT32. */
const MIN_FAT16_CLUSTERS = 4085;
const MAX_FAT16_CLUSTERS = 65524;

export interface FatFile {
  /** 8.3 name, e.g. "README.TXT" (upper case; at most 8 + 3 characters). */
  name: string;
  data?: Uint8Array;
  /** A subdirectory when set. */
  children?: FatFile[];
}

export interface Fat16Options {
  sizeSectors: number;
  /** Volume label, at most 11 characters. */
  label: string;
  /** Sectors before the volume on the disk (the partition's start LBA), stored in the BPB. */
  hiddenSectors?: number;
  serial?: number;
  sectorsPerCluster?: number;
  /** Timestamp of every entry (deterministic builds). */
  date?: Date;
}

interface Layout {
  reserved: number;
  fatSectors: number;
  rootEntries: number;
  rootSectors: number;
  dataStartSector: number;
  clusters: number;
  sectorsPerCluster: number;
}

function layout(sizeSectors: number, sectorsPerCluster: number): Layout {
  const reserved = 4;
  const rootEntries = 512;
  const rootSectors = (rootEntries * DIR_ENTRY_BYTES) / SECTOR_BYTES;
  // FAT size and cluster count depend on each other: iterate to the fixed point.
  let fatSectors = 1;
  for (;;) {
    const clusters = Math.floor((sizeSectors - reserved - 2 * fatSectors - rootSectors) / sectorsPerCluster);
    const needed = Math.ceil(((clusters + 2) * 2) / SECTOR_BYTES);
    if (needed <= fatSectors) {
      if (clusters < MIN_FAT16_CLUSTERS || clusters > MAX_FAT16_CLUSTERS) {
        throw new PloopError('EINVAL', `FAT16: ${sizeSectors} sectors with ${sectorsPerCluster} sectors per cluster give ${clusters} clusters, expected ${MIN_FAT16_CLUSTERS}..${MAX_FAT16_CLUSTERS}`, { sizeSectors, clusters });
      }
      return { reserved, fatSectors, rootEntries, rootSectors, dataStartSector: reserved + 2 * fatSectors + rootSectors, clusters, sectorsPerCluster };
    }
    fatSectors = needed;
  }
}

function shortName(name: string): Uint8Array {
  const m = /^([A-Z0-9_~!#$%&'()@^{}-]{1,8})(?:\.([A-Z0-9_~!#$%&'()@^{}-]{1,3}))?$/.exec(name);
  if (!m) throw new PloopError('EINVAL', `FAT16: file name ${JSON.stringify(name)} is not an upper-case 8.3 name`, { name });
  const out = new Uint8Array(11).fill(0x20);
  for (let i = 0; i < m[1].length; i++) out[i] = m[1].charCodeAt(i);
  for (let i = 0; i < (m[2]?.length ?? 0); i++) out[8 + i] = m[2]!.charCodeAt(i);
  return out;
}

function fatTime(d: Date): { date: number; time: number } {
  return {
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

/** Build a FAT16 volume holding `files`; returns its bytes (sizeSectors × 512). */
export function buildFat16(files: FatFile[], options: Fat16Options): Uint8Array {
  const spc = options.sectorsPerCluster ?? 4;
  const L = layout(options.sizeSectors, spc);
  const clusterBytes = spc * SECTOR_BYTES;
  const vol = new Uint8Array(options.sizeSectors * SECTOR_BYTES);
  const dv = new DataView(vol.buffer);
  const stamp = fatTime(options.date ?? new Date(Date.UTC(2026, 0, 1, 12, 0, 0)));
  if (options.label.length > 11) throw new PloopError('EINVAL', `FAT16: label ${JSON.stringify(options.label)} has ${options.label.length} characters, at most 11`, { label: options.label });
  const label = shortLabel(options.label);

  // Boot sector and BPB.
  vol.set([0xeb, 0x3c, 0x90], 0);
  vol.set(new TextEncoder().encode('PLOOPWSM'), 3);
  dv.setUint16(11, SECTOR_BYTES, true);
  vol[13] = spc;
  dv.setUint16(14, L.reserved, true);
  vol[16] = 2;
  dv.setUint16(17, L.rootEntries, true);
  if (options.sizeSectors < 65536) dv.setUint16(19, options.sizeSectors, true);
  else dv.setUint32(32, options.sizeSectors, true);
  vol[21] = 0xf8;
  dv.setUint16(22, L.fatSectors, true);
  dv.setUint16(24, 32, true); // sectors per track (CHS geometry; unused with LBA)
  dv.setUint16(26, 64, true); // heads
  dv.setUint32(28, options.hiddenSectors ?? 0, true);
  vol[36] = 0x80; // drive number
  vol[38] = 0x29; // extended boot signature: serial, label and type follow
  dv.setUint32(39, options.serial ?? 0x504c4f4f, true);
  vol.set(label, 43);
  vol.set(new TextEncoder().encode('FAT16   '), 54);
  // Boot code: "not a bootable disk" loop (int 18h), then the signature.
  vol.set([0xcd, 0x18, 0xeb, 0xfe], 62);
  vol[510] = 0x55;
  vol[511] = 0xaa;

  // FAT: entries 0 and 1 are reserved (media byte, end-of-chain marker); clusters from 2.
  const fat = new Uint16Array(L.clusters + 2);
  fat[0] = 0xfff8;
  fat[1] = 0xffff;
  let nextCluster = 2;
  const allocate = (bytes: number): number => {
    const count = Math.ceil(bytes / clusterBytes);
    if (count === 0) return 0;
    if (nextCluster + count > L.clusters + 2) throw new PloopError('ENOSPC', `FAT16: the volume is full (${L.clusters} clusters)`);
    const first = nextCluster;
    for (let i = 0; i < count; i++) fat[first + i] = i === count - 1 ? 0xffff : first + i + 1;
    nextCluster += count;
    return first;
  };
  const clusterOffset = (c: number) => (L.dataStartSector + (c - 2) * spc) * SECTOR_BYTES;

  const entry = (name: Uint8Array, attr: number, cluster: number, size: number): Uint8Array => {
    const e = new Uint8Array(DIR_ENTRY_BYTES);
    const ev = new DataView(e.buffer);
    e.set(name, 0);
    e[11] = attr;
    ev.setUint16(14, stamp.time, true); // creation time
    ev.setUint16(16, stamp.date, true); // creation date
    ev.setUint16(18, stamp.date, true); // last access date
    ev.setUint16(22, stamp.time, true); // write time
    ev.setUint16(24, stamp.date, true); // write date
    ev.setUint16(26, cluster, true);
    ev.setUint32(28, size, true);
    return e;
  };

  // Directories are written after their children have clusters: sizes first, then contents.
  const writeDir = (children: FatFile[], selfCluster: number, parentCluster: number, at: number, capacityEntries: number) => {
    const entries: Uint8Array[] = [];
    if (selfCluster !== 0) {
      entries.push(entry(dotName('.'), ATTR_DIRECTORY, selfCluster, 0));
      entries.push(entry(dotName('..'), ATTR_DIRECTORY, parentCluster, 0));
    } else {
      entries.push(entry(label, ATTR_VOLUME_ID, 0, 0));
    }
    const seen = new Set<string>();
    for (const child of children) {
      if (seen.has(child.name)) throw new PloopError('EINVAL', `FAT16: two entries named ${child.name} in one directory`, { name: child.name });
      seen.add(child.name);
      if (child.children) {
        const dirBytes = Math.max(1, Math.ceil(((child.children.length + 2) * DIR_ENTRY_BYTES) / clusterBytes)) * clusterBytes;
        const c = allocate(dirBytes);
        entries.push(entry(shortName(child.name), ATTR_DIRECTORY, c, 0));
        writeDir(child.children, c, selfCluster, clusterOffset(c), dirBytes / DIR_ENTRY_BYTES);
      } else {
        const data = child.data ?? new Uint8Array(0);
        const c = allocate(data.length);
        if (c !== 0) vol.set(data, clusterOffset(c));
        entries.push(entry(shortName(child.name), ATTR_ARCHIVE, c, data.length));
      }
    }
    if (entries.length > capacityEntries) throw new PloopError('ENOSPC', `FAT16: ${entries.length} entries do not fit a directory of ${capacityEntries}`);
    entries.forEach((e, i) => vol.set(e, at + i * DIR_ENTRY_BYTES));
  };
  writeDir(files, 0, 0, (L.reserved + 2 * L.fatSectors) * SECTOR_BYTES, L.rootEntries);

  const fatBytes = new Uint8Array(fat.buffer);
  for (let copy = 0; copy < 2; copy++) vol.set(fatBytes, (L.reserved + copy * L.fatSectors) * SECTOR_BYTES);
  return vol;
}

function dotName(dots: string): Uint8Array {
  const out = new Uint8Array(11).fill(0x20);
  for (let i = 0; i < dots.length; i++) out[i] = 0x2e;
  return out;
}

function shortLabel(label: string): Uint8Array {
  const out = new Uint8Array(11).fill(0x20);
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new PloopError('EINVAL', `FAT16: label ${JSON.stringify(label)} has a character outside printable ASCII`, { label });
    out[i] = c;
  }
  return out;
}

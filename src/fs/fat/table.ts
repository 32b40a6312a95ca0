// SPDX-License-Identifier: MIT
// The file allocation table: one entry per cluster, naming the next cluster of a chain, or the
// end of the chain, a free or a bad cluster. The table is read in windows through a block
// cache, so walking a chain costs one read per window, not one per cluster (over HTTP each
// read is a round trip).

import { PloopError } from '../../errors.js';
import { BlockCache } from '../volume.js';
import type { VolumeReader } from '../types.js';
import type { FatGeometry, FatKind } from './bpb.js';

/** Bytes of the FAT read at once: 8 192 FAT32 entries, 16 384 FAT16 ones. */
const WINDOW_BYTES = 32 << 10;

/** What a FAT entry says about the cluster after this one. */
export type NextCluster =
  | { kind: 'next'; cluster: number }
  | { kind: 'end' }
  | { kind: 'free' }
  | { kind: 'bad' }
  | { kind: 'invalid'; value: number };

const MARKS: Record<FatKind, { mask: number; bad: number; endFrom: number; digits: number }> = {
  fat12: { mask: 0xfff, bad: 0xff7, endFrom: 0xff8, digits: 3 },
  fat16: { mask: 0xffff, bad: 0xfff7, endFrom: 0xfff8, digits: 4 },
  // The top 4 bits of a FAT32 entry are reserved and ignored.
  fat32: { mask: 0x0fffffff, bad: 0x0ffffff7, endFrom: 0x0ffffff8, digits: 7 },
};

/**
 * The bytes [startBytes, startBytes + sizeBytes) of `volume`, read as zeros past their end, so
 * that a cache of fixed windows can serve a region whose size is not a multiple of the window.
 */
export function regionOf(volume: VolumeReader, startBytes: number, sizeBytes: number, what: string): VolumeReader {
  return {
    sizeBytes,
    async read(offset, length, label = what) {
      const inside = Math.max(0, Math.min(length, sizeBytes - offset));
      if (inside === length) return volume.read(startBytes + offset, length, label);
      const out = new Uint8Array(length);
      if (inside > 0) out.set(await volume.read(startBytes + offset, inside, label));
      return out;
    },
  };
}

export class FatTable {
  readonly kind: FatKind;
  readonly countClusters: number;
  readonly #cache: BlockCache;
  readonly #marks: (typeof MARKS)[FatKind];

  constructor(volume: VolumeReader, geometry: FatGeometry) {
    this.kind = geometry.kind;
    this.countClusters = geometry.countClusters;
    this.#marks = MARKS[geometry.kind];
    const fat = regionOf(volume, geometry.fatOffsetBytes, geometry.fatBytes, `${geometry.kind.toUpperCase()} table`);
    this.#cache = new BlockCache(fat, WINDOW_BYTES, 4 << 20);
  }

  /** The highest valid cluster number. */
  get maxCluster(): number {
    return this.countClusters + 1;
  }

  isValidCluster(cluster: number): boolean {
    return cluster >= 2 && cluster <= this.countClusters + 1;
  }

  /** A FAT entry's value as the spec prints it: 0xFFF, 0xFFF8, 0x0FFFFFF8. */
  hex(value: number): string {
    return '0x' + value.toString(16).toUpperCase().padStart(this.#marks.digits, '0');
  }

  /** The raw FAT entry of `cluster` (a valid cluster number). */
  async entry(cluster: number): Promise<number> {
    if (this.kind === 'fat12') {
      // Two entries share three bytes; an entry may straddle two windows (and two sectors).
      const pos = cluster + (cluster >>> 1);
      const lo = await this.#byte(pos);
      const hi = await this.#byte(pos + 1);
      const pair = lo | (hi << 8);
      return cluster & 1 ? pair >>> 4 : pair & 0xfff;
    }
    const width = this.kind === 'fat16' ? 2 : 4;
    const pos = cluster * width;
    const window = await this.#cache.get(Math.floor(pos / WINDOW_BYTES), `${this.kind.toUpperCase()} entry of cluster ${cluster}`);
    const at = pos % WINDOW_BYTES;
    const value = width === 2 ? window[at] | (window[at + 1] << 8) : (window[at] | (window[at + 1] << 8) | (window[at + 2] << 16) | (window[at + 3] << 24)) >>> 0;
    return value & this.#marks.mask;
  }

  /** What follows `cluster` in its chain. */
  async next(cluster: number): Promise<NextCluster> {
    return this.classify(await this.entry(cluster));
  }

  classify(value: number): NextCluster {
    if (value === 0) return { kind: 'free' };
    if (value >= this.#marks.endFrom) return { kind: 'end' };
    if (value === this.#marks.bad) return { kind: 'bad' };
    if (this.isValidCluster(value)) return { kind: 'next', cluster: value };
    return { kind: 'invalid', value };
  }

  async #byte(pos: number): Promise<number> {
    const window = await this.#cache.get(Math.floor(pos / WINDOW_BYTES), 'FAT12 table');
    return window[pos % WINDOW_BYTES];
  }

  /** The error for a chain whose entry at `cluster` is not a next cluster or an end mark. */
  corruptEntry(what: string, cluster: number, next: NextCluster): PloopError {
    const says =
      next.kind === 'free' ? 'marks it free (0)' :
      next.kind === 'bad' ? `marks it bad (${this.hex(this.#marks.bad)})` :
      next.kind === 'invalid' ? `is ${this.hex(next.value)}, which names no cluster` : 'is fine';
    return new PloopError('ECORRUPT', `${what}: the FAT entry of cluster ${cluster}, inside the chain, ${says}; expected the next cluster (2 to ${this.maxCluster}) or an end-of-chain mark`, {
      structure: `${this.kind.toUpperCase()} table`, cluster, value: next.kind === 'invalid' ? next.value : next.kind,
    });
  }
}

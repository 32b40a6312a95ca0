// Random workloads against the in-memory model: groups of concurrent, non-overlapping writes
// and discards (aligned and not, zero writes, writes crossing clusters), flushes now and then,
// and read-back checks while the image is open.

import type { PloopImage } from '../../src/index.ts';

/** What a workload needs of an image: PloopImage and the runner pool's ParallelImage both fit. */
export type WorkloadImage = Pick<PloopImage, 'size' | 'clusterSize' | 'write' | 'discard' | 'flush' | 'read'>;
import { DiskModel, assertBytesEqual } from './model.ts';
import { Prng } from './prng.ts';
import { INUSE_MAGIC } from './image-file.ts';

export type Op =
  | { kind: 'write'; offset: number; data: Uint8Array }
  | { kind: 'discard'; offset: number; length: number };

/** One random operation inside [lo, hi) of the disk (its own slice, so a group never overlaps). */
export function randomOp(rng: Prng, lo: number, hi: number, cluster: number): Op | null {
  const span = hi - lo;
  if (span <= 0) return null;
  const r = rng.int(100);
  const clampLen = (off: number, len: number) => Math.max(1, Math.min(len, hi - off));
  if (r < 20) {
    // Cluster-aligned write of whole clusters.
    const first = Math.ceil(lo / cluster) * cluster;
    if (first + cluster > hi) return null;
    const clusters = rng.range(1, Math.max(1, Math.min(3, Math.floor((hi - first) / cluster))));
    const slotsAvail = Math.floor((hi - first) / cluster) - clusters;
    const offset = first + rng.int(slotsAvail + 1) * cluster;
    return { kind: 'write', offset, data: rng.bytes(clusters * cluster) };
  }
  if (r < 50) {
    // Unaligned write, often crossing one or two cluster edges.
    const offset = lo + rng.int(span);
    const len = clampLen(offset, rng.range(1, Math.floor(cluster * 2.5)));
    return { kind: 'write', offset, data: rng.bytes(len) };
  }
  if (r < 62) {
    // Small write (a few bytes to a sector and a bit).
    const offset = lo + rng.int(span);
    return { kind: 'write', offset, data: rng.bytes(clampLen(offset, rng.range(1, 600))) };
  }
  if (r < 72) {
    // A write of zeros (allocates nothing in holes, overwrites data elsewhere).
    const offset = lo + rng.int(span);
    return { kind: 'write', offset, data: new Uint8Array(clampLen(offset, rng.range(1, cluster * 2))) };
  }
  if (r < 78) {
    // Mostly data with a zero run: part of it may fall on a whole unallocated cluster.
    const offset = lo + rng.int(span);
    const data = rng.bytes(clampLen(offset, rng.range(cluster, cluster * 3)));
    const z = rng.int(data.length);
    data.fill(0, z, Math.min(data.length, z + cluster + rng.int(cluster)));
    return { kind: 'write', offset, data };
  }
  if (r < 90) {
    // Whole-cluster discard.
    const first = Math.ceil(lo / cluster) * cluster;
    if (first + cluster > hi) return null;
    const clusters = rng.range(1, Math.max(1, Math.min(4, Math.floor((hi - first) / cluster))));
    const slotsAvail = Math.floor((hi - first) / cluster) - clusters;
    return { kind: 'discard', offset: first + rng.int(slotsAvail + 1) * cluster, length: clusters * cluster };
  }
  // Unaligned discard (partial clusters get zeros, whole ones inside are unmapped).
  const offset = lo + rng.int(span);
  return { kind: 'discard', offset, length: clampLen(offset, rng.range(1, cluster * 3)) };
}

export interface WorkloadResult {
  model: DiskModel;
  ops: number;
  discards: number;
  zeroWrites: number;
  sawInUseWhileOpen: boolean;
}

/**
 * Run `opCount` operations in groups of 1..6 concurrent, non-overlapping requests; flush now
 * and then (so discarded clusters get reused), verify random reads while open. `model` holds
 * the disk's current contents and is updated.
 */
export async function runWorkload(
  image: WorkloadImage, rng: Prng, opCount: number, readInUse: () => Promise<number>, model = new DiskModel(image.size),
): Promise<WorkloadResult> {
  const size = image.size;
  const cluster = image.clusterSize;
  let ops = 0;
  let discards = 0;
  let zeroWrites = 0;
  let sawInUseWhileOpen = false;
  // Work mostly in a window of the disk so that clusters are written, discarded and reused.
  while (ops < opCount) {
    const groupSize = rng.range(1, 6);
    // Cut a random window into groupSize disjoint slices.
    const windowLen = Math.min(size, cluster * rng.range(4, 48));
    const windowStart = rng.chance(0.1) ? size - windowLen : rng.int(size - windowLen + 1);
    const cuts = Array.from({ length: groupSize - 1 }, () => windowStart + rng.int(windowLen)).sort((a, b) => a - b);
    const bounds = [windowStart, ...cuts, windowStart + windowLen];
    const group: Op[] = [];
    for (let i = 0; i < groupSize; i++) {
      const op = randomOp(rng, bounds[i], bounds[i + 1], cluster);
      if (op) group.push(op);
    }
    await Promise.all(group.map((op) => (op.kind === 'write' ? image.write(op.offset, op.data) : image.discard(op.offset, op.length))));
    for (const op of group) {
      if (op.kind === 'write') {
        model.write(op.offset, op.data);
        if (op.data.every((b) => b === 0)) zeroWrites++;
      } else {
        model.discard(op.offset, op.length);
        discards++;
      }
    }
    ops += group.length;
    if (!sawInUseWhileOpen && group.length > 0) sawInUseWhileOpen = (await readInUse()) === INUSE_MAGIC;
    if (rng.chance(0.15)) await image.flush();
    if (rng.chance(0.1)) {
      const off = rng.int(size);
      const len = Math.min(size - off, rng.range(1, cluster * 4));
      assertBytesEqual(await image.read(off, len), model.read(off, len), `read-back while open at ${off}+${len} (seed ${rng.seed}, after ${ops} ops)`);
    }
  }
  return { model, ops, discards, zeroWrites, sawInUseWhileOpen };
}

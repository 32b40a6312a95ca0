// SPDX-License-Identifier: MIT
// BAT lookup: one virtual cluster, or a whole byte range turned into extents so that one call
// serves one request. The md pages hold the on-disk BAT values (v1: sectors, v2: clusters);
// the level array says which delta maps an entry and so which unit applies (format.md 1.5).

import {
  CTX_ENTRIES, CTX_CLUSTER, CTX_TOP, LEVEL_NONE, ctxU32, entryPtr, levelPtr, unitBytes,
} from "./layout";
import { STATUS_RANGE, STATUS_NO_ROOM } from "./status";

/** Bytes of one extent record written by mapRange. */
export const EXTENT_BYTES: u32 = 32;
//   +0  f64 virtual byte offset
//   +8  f64 length in bytes
//   +16 f64 host byte offset in the level's file (-1 for a hole)
//   +24 u32 level (0xFF for a hole)
//   +28 u32 first virtual cluster of the extent

/** Host byte offset of virtual cluster `clusterIndex`, or -1 when no delta maps it. */
export function lookupCluster(ctx: usize, clusterIndex: u32): f64 {
  if (clusterIndex >= ctxU32(ctx, CTX_ENTRIES)) return <f64>STATUS_RANGE;
  const level = <u32>load<u8>(levelPtr(ctx, clusterIndex));
  if (level == LEVEL_NONE) return -1;
  return <f64>load<u32>(entryPtr(ctx, clusterIndex)) * unitBytes(ctx, level);
}

/** Level of the delta mapping `clusterIndex` (255 = none), or STATUS_RANGE. */
export function levelOf(ctx: usize, clusterIndex: u32): i32 {
  if (clusterIndex >= ctxU32(ctx, CTX_ENTRIES)) return STATUS_RANGE;
  return <i32>load<u8>(levelPtr(ctx, clusterIndex));
}

/**
 * Split the byte range [offset, offset + length) into extents: runs of clusters that are all
 * holes, or all mapped by one level to contiguous host bytes. Writes at most `maxExtents`
 * records at `out` and returns how many; a caller that gets `maxExtents` back continues from
 * the end of the last extent.
 */
export function mapRange(ctx: usize, offset: f64, length: f64, out: usize, maxExtents: i32): i32 {
  if (maxExtents < 1) return STATUS_NO_ROOM;
  const clusterBytes = <f64>ctxU32(ctx, CTX_CLUSTER);
  const entries = ctxU32(ctx, CTX_ENTRIES);
  if (offset < 0 || length < 0 || offset + length > <f64>entries * clusterBytes) return STATUS_RANGE;
  let count: i32 = 0;
  let pos = offset;
  const end = offset + length;
  let rec: usize = out;
  while (pos < end) {
    const clusterIndex = <u32>Math.floor(pos / clusterBytes);
    const inCluster = pos - <f64>clusterIndex * clusterBytes;
    const level = <u32>load<u8>(levelPtr(ctx, clusterIndex));
    let host: f64 = -1;
    if (level != LEVEL_NONE) host = <f64>load<u32>(entryPtr(ctx, clusterIndex)) * unitBytes(ctx, level) + inCluster;
    const chunk = Math.min(clusterBytes - inCluster, end - pos);
    if (count > 0) {
      const prev = rec - EXTENT_BYTES;
      const prevLevel = load<u32>(prev, 24);
      const prevEnd = load<f64>(prev, 16) + load<f64>(prev, 8);
      if (prevLevel == level && (level == LEVEL_NONE || prevEnd == host)) {
        store<f64>(prev, load<f64>(prev, 8) + chunk, 8);
        pos += chunk;
        continue;
      }
      if (count == maxExtents) break;
    }
    store<f64>(rec, pos, 0);
    store<f64>(rec, chunk, 8);
    store<f64>(rec, host, 16);
    store<u32>(rec, level, 24);
    store<u32>(rec, clusterIndex, 28);
    rec += EXTENT_BYTES;
    count++;
    pos += chunk;
  }
  return count;
}

/** Number of virtual clusters mapped in the top delta. */
export function countTopMapped(ctx: usize): u32 {
  const entries = ctxU32(ctx, CTX_ENTRIES);
  const top = <u8>ctxU32(ctx, CTX_TOP);
  let n: u32 = 0;
  for (let c: u32 = 0; c < entries; c++) if (load<u8>(levelPtr(ctx, c)) == top) n++;
  return n;
}

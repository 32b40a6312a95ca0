// SPDX-License-Identifier: MIT
// BAT lookup: one virtual cluster, or a whole byte range turned into extents so that one call
// serves one request. The md pages hold the on-disk BAT values (v1: sectors, v2: clusters);
// the level array says which delta maps an entry and so which unit applies (docs/format.md,
// 'Units: sectors (v1) and clusters (v2)').

import {
  CTX_BAT, CTX_LEVELS, CTX_ENTRIES, CTX_CLUSTER, CTX_TOP, LEVEL_NONE, MAP_OFFSET, ctxU32, entryPtr, levelPtr, unitBytes,
} from "./layout";
import { STATUS_RANGE, STATUS_NO_ROOM } from "./status";

// The extent record mapRange writes: each EXTENT_* field constant is its byte offset in the record.
/** f64: virtual byte offset. */
export const EXTENT_OFFSET: u32 = 0;
/** f64: length in bytes. */
export const EXTENT_LENGTH: u32 = 8;
/** f64: host byte offset in the level's file (-1 for a hole). */
export const EXTENT_HOST: u32 = 16;
/** u32: level (LEVEL_NONE for a hole). */
export const EXTENT_LEVEL: u32 = 24;
/** u32: first virtual cluster of the extent. */
export const EXTENT_FIRST_CLUSTER: u32 = 28;
/** Bytes of one extent record. */
export const EXTENT_BYTES: u32 = 32;

/** Host byte offset of virtual cluster `clusterIndex`, or -1 when no delta maps it. */
export function lookupCluster(ctx: usize, clusterIndex: u32): f64 {
  if (clusterIndex >= ctxU32(ctx, CTX_ENTRIES)) return <f64>STATUS_RANGE;
  const level = <u32>load<u8>(levelPtr(ctx, clusterIndex));
  if (level == LEVEL_NONE) return -1;
  return <f64>load<u32>(entryPtr(ctx, clusterIndex)) * unitBytes(ctx, level);
}

/**
 * Many lookups in one call: for each of the `count` u32 cluster indices at `indices`, write
 * its host byte offset (f64, -1 for a hole) at `out`. A call from JavaScript costs more than a
 * lookup, so callers with many clusters to look up use this instead of lookupCluster. Returns
 * `count`, or STATUS_RANGE at the first index outside the BAT (the ones before it are written).
 */
export function lookupClusters(ctx: usize, indices: usize, count: u32, out: usize): i32 {
  const entries = ctxU32(ctx, CTX_ENTRIES);
  const bat = <usize>ctxU32(ctx, CTX_BAT) + (<usize>MAP_OFFSET << 2);
  const levels = <usize>ctxU32(ctx, CTX_LEVELS);
  for (let i: u32 = 0; i < count; i++) {
    const c = load<u32>(indices + (<usize>i << 2));
    if (c >= entries) return STATUS_RANGE;
    const level = <u32>load<u8>(levels + <usize>c);
    let host: f64 = -1;
    if (level != LEVEL_NONE) host = <f64>load<u32>(bat + (<usize>c << 2)) * unitBytes(ctx, level);
    store<f64>(out + (<usize>i << 3), host);
  }
  return <i32>count;
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
  // Everything the loop needs is in locals: the records it stores could alias the context in
  // the compiler's eyes, which would reload every field on every cluster.
  const bat = <usize>ctxU32(ctx, CTX_BAT) + (<usize>MAP_OFFSET << 2);
  const levels = <usize>ctxU32(ctx, CTX_LEVELS);
  const end = offset + length;
  let c = <u32>Math.floor(offset / clusterBytes);
  let clusterStart = <f64>c * clusterBytes;
  let pos = offset;
  let count: i32 = 0;
  let extOffset: f64 = 0, extLength: f64 = 0, extHost: f64 = 0, extLevel: u32 = 0, extFirst: u32 = 0;
  while (pos < end) {
    const inCluster = pos - clusterStart;
    const level = <u32>load<u8>(levels + <usize>c);
    let host: f64 = -1;
    if (level != LEVEL_NONE) host = <f64>load<u32>(bat + (<usize>c << 2)) * unitBytes(ctx, level) + inCluster;
    const chunk = Math.min(clusterBytes - inCluster, end - pos);
    if (count > 0 && level == extLevel && (level == LEVEL_NONE || extHost + extLength == host)) {
      extLength += chunk;
    } else {
      if (count == maxExtents) break;
      if (count > 0) writeExtent(out + <usize>(count - 1) * EXTENT_BYTES, extOffset, extLength, extHost, extLevel, extFirst);
      extOffset = pos;
      extLength = chunk;
      extHost = host;
      extLevel = level;
      extFirst = c;
      count++;
    }
    pos += chunk;
    clusterStart += clusterBytes;
    c++;
  }
  if (count > 0) writeExtent(out + <usize>(count - 1) * EXTENT_BYTES, extOffset, extLength, extHost, extLevel, extFirst);
  return count;
}

@inline function writeExtent(rec: usize, offset: f64, length: f64, host: f64, level: u32, first: u32): void {
  store<f64>(rec, offset, EXTENT_OFFSET);
  store<f64>(rec, length, EXTENT_LENGTH);
  store<f64>(rec, host, EXTENT_HOST);
  store<u32>(rec, level, EXTENT_LEVEL);
  store<u32>(rec, first, EXTENT_FIRST_CLUSTER);
}

/** Number of virtual clusters mapped in the top delta. */
export function countTopMapped(ctx: usize): u32 {
  const entries = ctxU32(ctx, CTX_ENTRIES);
  const top = <u8>ctxU32(ctx, CTX_TOP);
  let n: u32 = 0;
  for (let c: u32 = 0; c < entries; c++) if (load<u8>(levelPtr(ctx, c)) == top) n++;
  return n;
}

// SPDX-License-Identifier: MIT
// Loading the top delta's BAT: set each entry's level, mark used slots in the allocation
// bitmap, and report every entry that breaks the format's rules (docs/format.md, 'Entry
// rules') in one pass, so that open and check share it.

import {
  CTX_ENTRIES, CTX_CLUSTER, CTX_TOP, CTX_FIRST_SLOT, CTX_CAPACITY, LEVEL_NONE,
  ctxU32, ctxF64, entryPtr, levelPtr, unitBytes,
} from "./layout";
import { claimSlot } from "./alloc";

/** Entry points into the header/BAT area (below the data area). */
export const PROBLEM_METADATA: u32 = 1;
/**
 * Entry's cluster starts past the end of the file. One that starts inside and ends past it (a
 * file cut short) is QEMU's and ours to read: the bytes that exist, zeros after them.
 */
export const PROBLEM_OUTSIDE: u32 = 2;
/** Entry is not a whole number of clusters from the start of the data area. */
export const PROBLEM_MISALIGNED: u32 = 3;
/** Entry points at a cluster an earlier entry already uses. */
export const PROBLEM_DUPLICATE: u32 = 4;

// The problem record loadTopBat and loadLowerBat write: each PROBLEM_* field constant is its
// byte offset in the record.
/** u32: the kind, one of the PROBLEM_* kinds above. */
export const PROBLEM_KIND: u32 = 0;
/** u32: the BAT entry's index (its virtual cluster). */
export const PROBLEM_CLUSTER: u32 = 4;
/** f64: the host byte offset the entry names. */
export const PROBLEM_HOST: u32 = 8;
/** Bytes of one problem record. */
export const PROBLEM_BYTES: u32 = 16;

@inline function recordProblem(out: usize, index: u32, kind: u32, clusterIndex: u32, host: f64): void {
  const rec = out + <usize>index * <usize>PROBLEM_BYTES;
  store<u32>(rec, kind, PROBLEM_KIND);
  store<u32>(rec, clusterIndex, PROBLEM_CLUSTER);
  store<f64>(rec, host, PROBLEM_HOST);
}

/**
 * Scan the top BAT (already in the md pages). Every non-zero entry becomes mapped at the top
 * level; valid ones claim their slot. Records the first `maxOut` problems at `out` and returns
 * the total number of problems.
 */
export function loadTopBat(ctx: usize, fileBytes: f64, out: usize, maxOut: u32): u32 {
  const entries = ctxU32(ctx, CTX_ENTRIES);
  const clusterBytes = <f64>ctxU32(ctx, CTX_CLUSTER);
  const top = ctxU32(ctx, CTX_TOP);
  const unit = unitBytes(ctx, top);
  const firstSlot = ctxF64(ctx, CTX_FIRST_SLOT);
  const capacity = ctxU32(ctx, CTX_CAPACITY);
  let problems: u32 = 0;
  for (let c: u32 = 0; c < entries; c++) {
    const value = load<u32>(entryPtr(ctx, c));
    if (value == 0) {
      store<u8>(levelPtr(ctx, c), LEVEL_NONE);
      continue;
    }
    store<u8>(levelPtr(ctx, c), <u8>top);
    const host = <f64>value * unit;
    let kind: u32 = 0;
    if (host < firstSlot) kind = PROBLEM_METADATA;
    else if (host > fileBytes) kind = PROBLEM_OUTSIDE;
    else {
      const rel = (host - firstSlot) / clusterBytes;
      if (rel != Math.floor(rel)) kind = PROBLEM_MISALIGNED;
      else if (rel >= <f64>capacity || claimSlot(ctx, <u32>rel) != 1) kind = PROBLEM_DUPLICATE;
    }
    if (kind != 0) {
      if (problems < maxOut) recordProblem(out, problems, kind, c, host);
      problems++;
    }
  }
  return problems;
}

/**
 * Merge a lower delta's BAT (u32 values at `src`, `entries` of them, in that delta's units)
 * into the effective map: entries no newer level maps take this level. Entries that break the
 * rules are recorded like loadTopBat's (no duplicate check: lower deltas are never written) and
 * left unmapped. Call for the levels from newest to oldest. Returns the number of problems.
 */
export function loadLowerBat(ctx: usize, level: u32, src: usize, entries: u32, fileBytes: f64, firstSlotByte: f64, lowerLevels: usize, out: usize, maxOut: u32): u32 {
  const count = min(entries, ctxU32(ctx, CTX_ENTRIES));
  const clusterBytes = <f64>ctxU32(ctx, CTX_CLUSTER);
  const unit = unitBytes(ctx, level);
  let problems: u32 = 0;
  for (let c: u32 = 0; c < count; c++) {
    const value = load<u32>(src + (<usize>c << 2));
    if (value == 0) continue;
    const host = <f64>value * unit;
    let kind: u32 = 0;
    if (host < firstSlotByte) kind = PROBLEM_METADATA;
    else if (host > fileBytes) kind = PROBLEM_OUTSIDE;
    else if ((host - firstSlotByte) / clusterBytes != Math.floor((host - firstSlotByte) / clusterBytes)) kind = PROBLEM_MISALIGNED;
    if (kind == 0) {
      // lowerLevels[c]: the newest level below the top that maps c (discard must not expose it).
      if (load<u8>(lowerLevels + <usize>c) == LEVEL_NONE) store<u8>(lowerLevels + <usize>c, <u8>level);
      if (load<u8>(levelPtr(ctx, c)) == LEVEL_NONE) {
        store<u32>(entryPtr(ctx, c), value);
        store<u8>(levelPtr(ctx, c), <u8>level);
      }
    } else {
      if (problems < maxOut) recordProblem(out, problems, kind, c, host);
      problems++;
    }
  }
  return problems;
}

/**
 * A raw (Plain) base delta maps every cluster it covers to the same place in its file: entries
 * no newer level maps take `level` with value c (the level's unit is the cluster size).
 * `clusterCount` is how many clusters the raw file holds (a partial last one counts; it reads
 * short and the rest is zero-filled). Returns the number mapped.
 */
export function loadRawLevel(ctx: usize, level: u32, clusterCount: u32, lowerLevels: usize): u32 {
  const count = min(clusterCount, ctxU32(ctx, CTX_ENTRIES));
  let mapped: u32 = 0;
  for (let c: u32 = 0; c < count; c++) {
    if (load<u8>(lowerLevels + <usize>c) == LEVEL_NONE) store<u8>(lowerLevels + <usize>c, <u8>level);
    if (load<u8>(levelPtr(ctx, c)) != LEVEL_NONE) continue;
    store<u32>(entryPtr(ctx, c), c);
    store<u8>(levelPtr(ctx, c), <u8>level);
    mapped++;
  }
  return mapped;
}

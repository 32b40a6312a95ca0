// SPDX-License-Identifier: MIT
// The image context: a fixed-layout record in shared memory, written by the TypeScript side
// (src/core/bat-map.ts) and read by every runner. Nothing here is owned by a garbage collector.
//
//   ctx + 0    u32  batPtr        md pages: page p at batPtr + p*4096; BAT entry c at
//                                 batPtr + (c + 16) * 4 (page 0 starts with the 64-byte header)
//   ctx + 4    u32  levelsPtr     u8 per BAT entry: the delta level that maps it, 0xFF = none
//   ctx + 8    u32  statusPtr     i32 per md page: MD_* bits, changed only atomically
//   ctx + 12   u32  entryCount    BAT entries (virtual clusters)
//   ctx + 16   u32  clusterBytes
//   ctx + 20   u32  topLevel      the writable delta's level
//   ctx + 24   u32  bitmapPtr     u32 words, bit s set = physical slot s of the top delta used
//   ctx + 28   u32  slotCapacity  bits in the bitmap
//   ctx + 32   f64  firstSlotByte file offset of slot 0 (start of the data area)
//   ctx + 40   u32  freeHint      lowest slot that may be free
//   ctx + 44   u32  slotsEnd      1 + highest slot handed out or found in use
//   ctx + 48   u32  pageCount     md pages
//   ctx + 52   u32  piwbSlotsPtr  i32 per md page: the pending piwb's id, or -1
//   ctx + 56   u32  freeCount     bumped by every freeSlot (alloc.ts validates its hint with it)
//   ctx + 60   u32  piwbPoolPtr   piwb buffers: piwb id i at piwbPoolPtr + i*4096
//   ctx + 64   u32  piwbCount     buffers in the pool
//   ctx + 68   u32  piwbBitmapPtr u32 words, bit i set = piwb buffer i in use
//   ctx + 72   u32  attachPtr     i32 per md page: attachments made but not yet registered by the
//                                 writeback coordinator (the page is not submitted while > 0)
//   ctx + 76   u32  pristineFrom  slots from here on were never written: the file reads zeros there
//   ctx + 80   u32  lowerLevelsPtr u8 per entry: newest level below the top that maps it (0xFF none)
//   ctx + 84   u32  gatesPtr      i32 step gates for forced-interleaving tests (src/engine/step-gates.ts)
//   ctx + 88   i32  preallocEnd   the file's size is durable up to this slot (exclusive); set by
//                                 the coordinator after an extension's flush (TypeScript only)
//   ctx + 92   i32  preallocTarget the end an extension in progress will reach (TypeScript only)
//   ctx + 96   i32  preallocFillStart first slot the extension in progress zero-fills (TypeScript only)
//   ctx + 1024 u32[256]           bytes per BAT unit for each level (512 for v1, cluster for v2)

export const CTX_BAT: u32 = 0;
export const CTX_LEVELS: u32 = 4;
export const CTX_STATUS: u32 = 8;
export const CTX_ENTRIES: u32 = 12;
export const CTX_CLUSTER: u32 = 16;
export const CTX_TOP: u32 = 20;
export const CTX_BITMAP: u32 = 24;
export const CTX_CAPACITY: u32 = 28;
export const CTX_FIRST_SLOT: u32 = 32;
export const CTX_FREE_HINT: u32 = 40;
export const CTX_SLOTS_END: u32 = 44;
export const CTX_PAGES: u32 = 48;
export const CTX_PIWB_SLOTS: u32 = 52;
export const CTX_FREE_COUNT: u32 = 56;
export const CTX_PIWB_POOL: u32 = 60;
export const CTX_PIWB_COUNT: u32 = 64;
export const CTX_PIWB_BITMAP: u32 = 68;
export const CTX_ATTACH: u32 = 72;
export const CTX_PRISTINE_FROM: u32 = 76;
export const CTX_UNITS: u32 = 1024;
export const CTX_BYTES: u32 = 2048;

export const PAGE_BYTES: u32 = 4096;
export const SLOTS_PER_PAGE: u32 = 1024;
/** u32 slots the header occupies at the start of page 0 (PLOOP_MAP_OFFSET). */
export const MAP_OFFSET: u32 = 16;
export const LEVEL_NONE: u8 = 0xff;

@inline export function ctxU32(ctx: usize, field: u32): u32 {
  return load<u32>(ctx + <usize>field);
}
@inline export function ctxF64(ctx: usize, field: u32): f64 {
  return load<f64>(ctx + <usize>field);
}
@inline export function entryPtr(ctx: usize, clusterIndex: u32): usize {
  return <usize>ctxU32(ctx, CTX_BAT) + ((<usize>clusterIndex + MAP_OFFSET) << 2);
}
@inline export function levelPtr(ctx: usize, clusterIndex: u32): usize {
  return <usize>ctxU32(ctx, CTX_LEVELS) + <usize>clusterIndex;
}
@inline export function unitBytes(ctx: usize, level: u32): f64 {
  return <f64>load<u32>(ctx + <usize>CTX_UNITS + (<usize>level << 2));
}

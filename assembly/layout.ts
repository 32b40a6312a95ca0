// SPDX-License-Identifier: MIT
// The image context: a fixed-layout record in shared memory, written by the TypeScript side
// (src/core/bat-map.ts) and read by every runner. Nothing here is owned by a garbage collector.
// Each CTX_* constant is the byte offset of one field from the start of the record. These are
// the only copy of the layout: scripts/wasm-interface.ts turns every constant that index.ts
// exports into src/core/wasm-interface.generated.ts, and the module exports them as globals so
// that the TypeScript side can check a loaded module against the values it was built with.

/**
 * u32: md pages: page p at batPtr + p*4096; BAT entry c at batPtr + (c + 16) * 4 (page 0
 * starts with the 64-byte header).
 */
export const CTX_BAT: u32 = 0;
/** u32: u8 per BAT entry: the delta level that maps it, 0xFF = none. */
export const CTX_LEVELS: u32 = 4;
/** u32: i32 per md page: MD_* bits, changed only atomically. */
export const CTX_STATUS: u32 = 8;
/** u32: BAT entries (virtual clusters). */
export const CTX_ENTRIES: u32 = 12;
/** u32: bytes per cluster. */
export const CTX_CLUSTER: u32 = 16;
/** u32: the writable delta's level. */
export const CTX_TOP: u32 = 20;
/** u32: u32 words, bit s set = physical slot s of the top delta used. */
export const CTX_BITMAP: u32 = 24;
/** u32: bits in the bitmap. */
export const CTX_CAPACITY: u32 = 28;
/** f64: file offset of slot 0 (start of the data area). */
export const CTX_FIRST_SLOT: u32 = 32;
/** u32: lowest slot that may be free. */
export const CTX_FREE_HINT: u32 = 40;
/** u32: 1 + highest slot handed out or found in use. */
export const CTX_SLOTS_END: u32 = 44;
/** u32: md pages. */
export const CTX_PAGES: u32 = 48;
/** u32: i32 per md page: the pending piwb's id, or PIWB_NONE. */
export const CTX_PIWB_SLOTS: u32 = 52;
/** u32: bumped by every freeSlot (alloc.ts validates its hint with it). */
export const CTX_FREE_COUNT: u32 = 56;
/** u32: piwb buffers: piwb id i at piwbPoolPtr + i*4096. */
export const CTX_PIWB_POOL: u32 = 60;
/** u32: buffers in the pool. */
export const CTX_PIWB_COUNT: u32 = 64;
/** u32: u32 words, bit i set = piwb buffer i in use. */
export const CTX_PIWB_BITMAP: u32 = 68;
/**
 * u32: i32 per md page: attachments made but not yet registered by the writeback coordinator
 * (the page is not submitted while > 0).
 */
export const CTX_ATTACH: u32 = 72;
/** u32: slots from here on were never written: the file reads zeros there. */
export const CTX_PRISTINE_FROM: u32 = 76;
/** u32: u8 per entry: newest level below the top that maps it (0xFF none). TypeScript only. */
export const CTX_LOWER_LEVELS: u32 = 80;
/** u32: i32 step gates for forced-interleaving tests (src/engine/step-gates.ts). TypeScript only. */
export const CTX_GATES: u32 = 84;
/**
 * i32: the file's size is durable up to this slot (exclusive); set by the coordinator after an
 * extension's flush. TypeScript only.
 */
export const CTX_PREALLOC_END: u32 = 88;
/** i32: the end an extension in progress will reach. TypeScript only. */
export const CTX_PREALLOC_TARGET: u32 = 92;
/** i32: first slot the extension in progress zero-fills. TypeScript only. */
export const CTX_PREALLOC_FILL_START: u32 = 96;
/** u32[256]: bytes per BAT unit for each level (512 for v1, cluster for v2). */
export const CTX_UNITS: u32 = 1024;
/** Bytes of the whole record. */
export const CTX_BYTES: u32 = 2048;

/** Bytes of one md page (and of one piwb buffer). */
export const PAGE_BYTES: u32 = 4096;
/** u32 BAT slots in one md page. */
export const SLOTS_PER_PAGE: u32 = 1024;
/** u32 slots the header occupies at the start of page 0 (PLOOP_MAP_OFFSET). */
export const MAP_OFFSET: u32 = 16;
/** The level byte of an entry no delta maps (a hole). */
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

// SPDX-License-Identifier: MIT
// md page state words and the piwb page copy (docs/engine.md, 'The state word'). Every state change
// is one atomic operation on the page's i32 word, so JS `Atomics` on other threads and these
// functions agree.
//
// Rules kept here: an updater may only start on a page that is neither in WRITEBACK nor
// UPDATING; the submitter only takes a page that is neither; WRITEBACK is cleared by the
// completion path after the new entries are in the live page.

import {
  CTX_STATUS, CTX_PAGES, CTX_PIWB_SLOTS, CTX_ENTRIES, CTX_TOP, CTX_BAT, CTX_PIWB_POOL, CTX_PIWB_COUNT, CTX_PIWB_BITMAP,
  CTX_PRISTINE_FROM,
  PAGE_BYTES, SLOTS_PER_PAGE, MAP_OFFSET, LEVEL_NONE, ctxU32, levelPtr,
} from "./layout";
import { STATUS_BUSY, STATUS_BAD_PAGE } from "./status";

/** The live page has changes its piwb holds and the file does not have yet. */
export const MD_DIRTY: u32 = 1 << 1;
/** The page's piwb is being written; updaters wait. */
export const MD_WRITEBACK: u32 = 1 << 2;
/** A flush waits for this page: the coordinator writes it in its next cycle. */
export const MD_HIGHPRIO: u32 = 1 << 3;
/** An updater is changing the page's piwb; the submitter and other updaters wait. */
export const MD_UPDATING: u32 = 1 << 4;

/** The pending-piwb id of a page that has none. */
export const PIWB_NONE: i32 = -1;

/** mdTrySubmit: the page was taken (WRITEBACK set, DIRTY and HIGHPRIO cleared). */
export const SUBMIT_TAKEN: i32 = 1;
/** mdTrySubmit: the page is UPDATING or in WRITEBACK; the caller re-queues it. */
export const SUBMIT_BUSY: i32 = 0;
/** mdTrySubmit: the page is not DIRTY; there is nothing to write. */
export const SUBMIT_CLEAN: i32 = -1;

@inline function statusPtr(ctx: usize, page: u32): usize {
  return <usize>ctxU32(ctx, CTX_STATUS) + (<usize>page << 2);
}

/** Current state word of md page `page`. */
export function mdStatus(ctx: usize, page: u32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  return <i32>atomic.load<u32>(statusPtr(ctx, page));
}

/**
 * Start an update: if the page is neither WRITEBACK nor UPDATING, set UPDATING and return the
 * previous word (so the caller sees whether it was already DIRTY); else STATUS_BUSY.
 */
export function mdBeginUpdate(ctx: usize, page: u32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  const ptr = statusPtr(ctx, page);
  let old = atomic.load<u32>(ptr);
  while (true) {
    if ((old & (MD_WRITEBACK | MD_UPDATING)) != 0) return STATUS_BUSY;
    const seen = atomic.cmpxchg<u32>(ptr, old, old | MD_UPDATING);
    if (seen == old) return <i32>old;
    old = seen;
  }
  return STATUS_BUSY;
}

/** Set bits (MD_DIRTY, MD_HIGHPRIO); returns the previous word. */
export function mdSet(ctx: usize, page: u32, bits: u32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  return <i32>atomic.or<u32>(statusPtr(ctx, page), bits);
}

/** Clear bits (MD_UPDATING, MD_DIRTY on an error path, MD_WRITEBACK on completion). */
export function mdClear(ctx: usize, page: u32, bits: u32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  return <i32>atomic.and<u32>(statusPtr(ctx, page), ~bits);
}

/**
 * Writeback submission: if the page is UPDATING or already in WRITEBACK return SUBMIT_BUSY (the
 * caller re-queues it); if it is not DIRTY return SUBMIT_CLEAN (nothing to write); else set
 * WRITEBACK, clear DIRTY and HIGHPRIO in one step and return SUBMIT_TAKEN.
 */
export function mdTrySubmit(ctx: usize, page: u32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  const ptr = statusPtr(ctx, page);
  let old = atomic.load<u32>(ptr);
  while (true) {
    if ((old & (MD_WRITEBACK | MD_UPDATING)) != 0) return SUBMIT_BUSY;
    if ((old & MD_DIRTY) == 0) return SUBMIT_CLEAN;
    const seen = atomic.cmpxchg<u32>(ptr, old, (old | MD_WRITEBACK) & ~(MD_DIRTY | MD_HIGHPRIO));
    if (seen == old) return SUBMIT_TAKEN;
    old = seen;
  }
  return SUBMIT_BUSY;
}

/** Swap the page's pending-piwb id (PIWB_NONE = none); returns the previous id. */
export function mdExchangePiwb(ctx: usize, page: u32, piwbId: i32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  return atomic.xchg<i32>(<usize>ctxU32(ctx, CTX_PIWB_SLOTS) + (<usize>page << 2), piwbId);
}

/** Compare-and-swap the pending-piwb id; returns the id seen (== expected on success). */
export function mdCasPiwb(ctx: usize, page: u32, expected: i32, piwbId: i32): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  return atomic.cmpxchg<i32>(<usize>ctxU32(ctx, CTX_PIWB_SLOTS) + (<usize>page << 2), expected, piwbId);
}

/**
 * Prepare a piwb: copy live md page `page` into the 4 KiB buffer at `piwb`, then zero every
 * slot the top delta does not map (lower levels and holes are 0 on disk) and the tail past the
 * last BAT entry. The header slots of page 0 are copied as they are.
 */
export function piwbPrepare(ctx: usize, page: u32, piwb: usize): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  const live = <usize>ctxU32(ctx, CTX_BAT) + (<usize>page * <usize>PAGE_BYTES);
  memory.copy(piwb, live, PAGE_BYTES);
  const entries = ctxU32(ctx, CTX_ENTRIES);
  const top = <u8>ctxU32(ctx, CTX_TOP);
  const first: u32 = page == 0 ? MAP_OFFSET : 0;
  const base: i64 = <i64>page * SLOTS_PER_PAGE - MAP_OFFSET;
  for (let i: u32 = first; i < SLOTS_PER_PAGE; i++) {
    const c = base + i;
    if (c >= <i64>entries || load<u8>(levelPtr(ctx, <u32>c)) != top) store<u32>(piwb + (<usize>i << 2), 0);
  }
  return 0;
}

/**
 * After the piwb reached the file: copy its entries into the live page. A non-zero slot becomes
 * mapped at the top level; a zero slot that the top delta mapped becomes a hole (discard).
 * Slots mapped by lower levels are untouched. Returns the number of slots changed.
 */
export function piwbApply(ctx: usize, page: u32, piwb: usize): i32 {
  if (page >= ctxU32(ctx, CTX_PAGES)) return STATUS_BAD_PAGE;
  const live = <usize>ctxU32(ctx, CTX_BAT) + (<usize>page * <usize>PAGE_BYTES);
  const entries = ctxU32(ctx, CTX_ENTRIES);
  const top = <u8>ctxU32(ctx, CTX_TOP);
  const first: u32 = page == 0 ? MAP_OFFSET : 0;
  const base: i64 = <i64>page * SLOTS_PER_PAGE - MAP_OFFSET;
  let changed: i32 = 0;
  for (let i: u32 = first; i < SLOTS_PER_PAGE; i++) {
    const c = base + i;
    if (c >= <i64>entries) break;
    const value = load<u32>(piwb + (<usize>i << 2));
    const lp = levelPtr(ctx, <u32>c);
    const level = load<u8>(lp);
    if (value != 0) {
      if (level != top || load<u32>(live + (<usize>i << 2)) != value) {
        store<u32>(live + (<usize>i << 2), value);
        store<u8>(lp, top);
        changed++;
      }
    } else if (level == top) {
      store<u32>(live + (<usize>i << 2), 0);
      store<u8>(lp, LEVEL_NONE);
      changed++;
    }
  }
  return changed;
}

/** Take a free piwb buffer from the image's pool; returns its id, or STATUS_BUSY when all are in use. */
export function piwbAcquire(ctx: usize): i32 {
  const count = ctxU32(ctx, CTX_PIWB_COUNT);
  const bitmap = <usize>ctxU32(ctx, CTX_PIWB_BITMAP);
  for (let w: u32 = 0; w < (count + 31) >> 5; w++) {
    const ptr = bitmap + (<usize>w << 2);
    let word = atomic.load<u32>(ptr);
    while (word != 0xffffffff) {
      const bit = <u32>ctz<u32>(~word);
      const id = (w << 5) + bit;
      if (id >= count) break;
      const old = atomic.or<u32>(ptr, <u32>1 << bit);
      if ((old & (<u32>1 << bit)) == 0) return <i32>id;
      word = old | (<u32>1 << bit);
    }
  }
  return STATUS_BUSY;
}

/** Give a piwb buffer back to the pool. */
export function piwbRelease(ctx: usize, id: u32): i32 {
  if (id >= ctxU32(ctx, CTX_PIWB_COUNT)) return STATUS_BAD_PAGE;
  atomic.and<u32>(<usize>ctxU32(ctx, CTX_PIWB_BITMAP) + (<usize>(id >> 5) << 2), ~(<u32>1 << (id & 31)));
  return 0;
}

/** Address of piwb buffer `id`. */
export function piwbAddress(ctx: usize, id: u32): usize {
  return <usize>ctxU32(ctx, CTX_PIWB_POOL) + <usize>id * <usize>PAGE_BYTES;
}

/**
 * A slot was just allocated: returns 1 when it lies past every byte ever written (its cluster
 * reads as zeros, so only the payload needs writing) and raises the watermark past it.
 */
export function takePristine(ctx: usize, slot: u32): i32 {
  const ptr = ctx + <usize>CTX_PRISTINE_FROM;
  let from = atomic.load<u32>(ptr);
  while (slot >= from) {
    const seen = atomic.cmpxchg<u32>(ptr, from, slot + 1);
    if (seen == from) return 1;
    from = seen;
  }
  return 0;
}

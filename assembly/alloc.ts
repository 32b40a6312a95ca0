// SPDX-License-Identifier: MIT
// Physical cluster ("slot") allocation in the top delta. Slot s sits at file byte
// firstSlotByte + s * clusterBytes. A bit per slot, set with atomic operations so that two
// runners never receive the same slot. Holes left by discard are reused before the file grows.

import {
  CTX_BITMAP, CTX_CAPACITY, CTX_FREE_HINT, CTX_FREE_COUNT, CTX_SLOTS_END, ctxU32,
} from "./layout";
import { STATUS_NOSPACE, STATUS_BAD_SLOT, STATUS_OK } from "./status";

@inline function wordPtr(ctx: usize, slot: u32): usize {
  return <usize>ctxU32(ctx, CTX_BITMAP) + (<usize>(slot >> 5) << 2);
}

/** Set slot's bit; returns 1 if it was free (now ours), 0 if it was already used. */
export function claimSlot(ctx: usize, slot: u32): i32 {
  if (slot >= ctxU32(ctx, CTX_CAPACITY)) return STATUS_BAD_SLOT;
  const bit: u32 = 1 << (slot & 31);
  const old = atomic.or<u32>(wordPtr(ctx, slot), bit);
  if ((old & bit) != 0) return 0;
  const endPtr = ctx + <usize>CTX_SLOTS_END;
  // slotsEnd = max(slotsEnd, slot + 1)
  let end = atomic.load<u32>(endPtr);
  while (end < slot + 1) {
    const seen = atomic.cmpxchg<u32>(endPtr, end, slot + 1);
    if (seen == end) break;
    end = seen;
  }
  return 1;
}

/** 1 if the slot is in use, 0 if free. */
export function slotUsed(ctx: usize, slot: u32): i32 {
  if (slot >= ctxU32(ctx, CTX_CAPACITY)) return STATUS_BAD_SLOT;
  return (atomic.load<u32>(wordPtr(ctx, slot)) >> (slot & 31)) & 1;
}

/** hint = min(hint, slot): lowering the hint is always safe. */
function lowerHint(ctx: usize, slot: u32): void {
  const hintPtr = ctx + <usize>CTX_FREE_HINT;
  let hint = atomic.load<u32>(hintPtr);
  while (slot < hint) {
    const seen = atomic.cmpxchg<u32>(hintPtr, hint, slot);
    if (seen == hint) break;
    hint = seen;
  }
}

/**
 * Allocate one slot: the lowest free one below slotsEnd, else slotsEnd (the file grows).
 *
 * The hint ("no free slot below it") may only be raised past slots this scan saw in use. A
 * slot freed on another runner after the scan passed it would be skipped for good if the hint
 * jumped over it, so a free during the scan (freeCount changed) puts the hint back where the
 * scan started. freeSlot clears the bit, then bumps freeCount, then lowers the hint: whichever
 * order the two runners interleave in, the freed slot stays at or above the hint.
 */
export function allocSlot(ctx: usize): i32 {
  const capacity = ctxU32(ctx, CTX_CAPACITY);
  const bitmap = <usize>ctxU32(ctx, CTX_BITMAP);
  const hintPtr = ctx + <usize>CTX_FREE_HINT;
  const freesPtr = ctx + <usize>CTX_FREE_COUNT;
  while (true) {
    const frees = atomic.load<u32>(freesPtr);
    const end = atomic.load<u32>(ctx + <usize>CTX_SLOTS_END);
    const hint = atomic.load<u32>(hintPtr);
    let slot = hint & ~31;
    let found: i64 = -1;
    while (slot < end) {
      const word = atomic.load<u32>(bitmap + (<usize>(slot >> 5) << 2));
      if (word != 0xffffffff) {
        const s = slot + <u32>ctz<u32>(~word);
        if (s < end) found = s;
        break;
      }
      slot += 32;
    }
    if (found < 0) {
      // No hole below the end: append, or fail when the capacity is exhausted.
      if (end >= capacity) return STATUS_NOSPACE;
      found = end;
    } else if (<u32>found > hint) {
      // Raise only from the value this scan started at (a concurrent freeSlot may have lowered
      // it meanwhile), and undo the raise if any slot was freed while we scanned.
      if (atomic.cmpxchg<u32>(hintPtr, hint, <u32>found) == hint && atomic.load<u32>(freesPtr) != frees) lowerHint(ctx, hint);
    }
    const got = claimSlot(ctx, <u32>found);
    if (got == 1) return <i32>found;
    // Another runner took it between our look and our claim: look again.
  }
  return STATUS_NOSPACE;
}

/** Allocate `count` slots, writing them as u32 at `out`; returns how many (stops on NOSPACE). */
export function allocSlots(ctx: usize, count: u32, out: usize): i32 {
  for (let i: u32 = 0; i < count; i++) {
    const slot = allocSlot(ctx);
    if (slot < 0) return i > 0 ? <i32>i : slot;
    store<u32>(out + (<usize>i << 2), <u32>slot);
  }
  return <i32>count;
}

/** Return a slot to the free pool. */
export function freeSlot(ctx: usize, slot: u32): i32 {
  if (slot >= ctxU32(ctx, CTX_CAPACITY)) return STATUS_BAD_SLOT;
  atomic.and<u32>(wordPtr(ctx, slot), ~(<u32>1 << (slot & 31)));
  // Tell allocators scanning right now that a slot came free (see allocSlot), then lower the hint.
  atomic.add<u32>(ctx + <usize>CTX_FREE_COUNT, 1);
  lowerHint(ctx, slot);
  return STATUS_OK;
}

/** 1 + the highest used slot (0 when none): where the data area ends after a trim. */
export function usedSlotsEnd(ctx: usize): u32 {
  const bitmap = <usize>ctxU32(ctx, CTX_BITMAP);
  let words = (atomic.load<u32>(ctx + <usize>CTX_SLOTS_END) + 31) >> 5;
  while (words > 0) {
    const word = atomic.load<u32>(bitmap + (<usize>(words - 1) << 2));
    if (word != 0) return ((words - 1) << 5) + 32 - <u32>clz<u32>(word);
    words--;
  }
  return 0;
}

/** Reset slotsEnd to the used end (after a trim); also resets the free hint. */
export function trimSlotsEnd(ctx: usize): u32 {
  const end = usedSlotsEnd(ctx);
  atomic.store<u32>(ctx + <usize>CTX_SLOTS_END, end);
  atomic.store<u32>(ctx + <usize>CTX_FREE_HINT, 0);
  return end;
}

// SPDX-License-Identifier: MIT
// The WebAssembly ABI of ploop-wasm: BAT lookup, slot allocation, md page state bits and piwb
// copies over one shared memory. Only this file exports; see layout.ts for the context record.
//
// Everything exported here is the interface: scripts/wasm-interface.ts writes its TypeScript
// side (src/core/wasm-interface.generated.ts) from these lines, at every build. The constants
// are exported too (as immutable globals): WasmCore compares them with the values it was built
// with, so a module from another build of the sources is refused, not misread.

export { lookupCluster, lookupClusters, levelOf, mapRange, countTopMapped } from "./bat";
export { claimSlot, slotUsed, allocSlot, allocSlots, freeSlot, usedSlotsEnd, trimSlotsEnd } from "./alloc";
export {
  mdStatus, mdBeginUpdate, mdSet, mdClear, mdTrySubmit, mdExchangePiwb, mdCasPiwb,
  piwbPrepare, piwbApply, piwbAcquire, piwbRelease, piwbAddress, takePristine,
} from "./md";
export { loadTopBat, loadLowerBat, loadRawLevel } from "./scan";

export {
  CTX_BAT, CTX_LEVELS, CTX_STATUS, CTX_ENTRIES, CTX_CLUSTER, CTX_TOP, CTX_BITMAP, CTX_CAPACITY, CTX_FIRST_SLOT,
  CTX_FREE_HINT, CTX_SLOTS_END, CTX_PAGES, CTX_PIWB_SLOTS, CTX_FREE_COUNT, CTX_PIWB_POOL, CTX_PIWB_COUNT,
  CTX_PIWB_BITMAP, CTX_ATTACH, CTX_PRISTINE_FROM, CTX_LOWER_LEVELS, CTX_GATES, CTX_PREALLOC_END,
  CTX_PREALLOC_TARGET, CTX_PREALLOC_FILL_START, CTX_UNITS, CTX_BYTES,
  PAGE_BYTES, SLOTS_PER_PAGE, MAP_OFFSET, LEVEL_NONE,
} from "./layout";
export {
  STATUS_OK, STATUS_BUSY, STATUS_RANGE, STATUS_NOSPACE, STATUS_BAD_PAGE, STATUS_BAD_SLOT, STATUS_NO_ROOM,
} from "./status";
export {
  MD_DIRTY, MD_WRITEBACK, MD_HIGHPRIO, MD_UPDATING, PIWB_NONE, SUBMIT_TAKEN, SUBMIT_BUSY, SUBMIT_CLEAN,
} from "./md";
export {
  EXTENT_OFFSET, EXTENT_LENGTH, EXTENT_HOST, EXTENT_LEVEL, EXTENT_FIRST_CLUSTER, EXTENT_BYTES,
} from "./bat";
export {
  PROBLEM_METADATA, PROBLEM_OUTSIDE, PROBLEM_MISALIGNED, PROBLEM_DUPLICATE,
  PROBLEM_KIND, PROBLEM_CLUSTER, PROBLEM_HOST, PROBLEM_BYTES,
} from "./scan";

// SPDX-License-Identifier: MIT
// The WebAssembly ABI of ploop-wasm: BAT lookup, slot allocation, md page state bits and piwb
// copies over one shared memory. Only this file exports; see layout.ts for the context record.

export { lookupCluster, lookupClusters, levelOf, mapRange, countTopMapped } from "./bat";
export { claimSlot, slotUsed, allocSlot, allocSlots, freeSlot, usedSlotsEnd, trimSlotsEnd } from "./alloc";
export {
  mdStatus, mdBeginUpdate, mdSet, mdClear, mdTrySubmit, mdExchangePiwb, mdCasPiwb,
  piwbPrepare, piwbApply, piwbAcquire, piwbRelease, piwbAddress, takePristine,
} from "./md";
export { loadTopBat, loadLowerBat, loadRawLevel } from "./scan";

/** Version of the context layout; the TypeScript side refuses a module it does not match. */
export function layoutVersion(): i32 {
  return 2;
}

// SPDX-License-Identifier: MIT
// Status codes returned by every exported function. AssemblyScript cannot throw across the
// boundary, so each call returns one of these and src/core/wasm.ts turns it into an error
// that names the operation.

/** Success; functions that return a count or an index return a value >= 0 instead. */
export const STATUS_OK: i32 = 0;
/** The md page is busy (WRITEBACK or UPDATING); park the request and retry. */
export const STATUS_BUSY: i32 = -1;
/** A cluster index, byte offset or length lies outside the virtual disk. */
export const STATUS_RANGE: i32 = -2;
/** No free physical cluster left in the allocation bitmap's capacity. */
export const STATUS_NOSPACE: i32 = -3;
/** An md page number is beyond the BAT. */
export const STATUS_BAD_PAGE: i32 = -4;
/** A physical slot number is beyond the allocation bitmap. */
export const STATUS_BAD_SLOT: i32 = -5;
/** The output buffer was too small for even one record. */
export const STATUS_NO_ROOM: i32 = -6;

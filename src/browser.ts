// SPDX-License-Identifier: MIT
// Browser entry (bundled to dist/web/ploop.js): the portable API plus the browser storage backends
// and the Web Worker runner pool.

export * from './index.js';
export { setWasmUrl } from './core/wasm.js';

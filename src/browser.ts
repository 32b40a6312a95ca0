// SPDX-License-Identifier: MIT
// Browser entry (bundled to dist/web/ploop.js): the portable API plus the browser storage backends
// and the Web Worker runner pool.

export * from './index.js';
export { setWasmUrl } from './core/wasm.js';
export { OpfsStore, setOpfsWorkerUrl, type OpfsOpenOptions } from './stores/opfs.js';
export { OpfsDirectory } from './stores/opfs-dir.js';
export { IdbStore, type IdbOpenOptions } from './stores/idb.js';
export { IdbDirectory } from './stores/idb-dir.js';
export { SharedMemoryStore, type SharedMemorySpec, type SharedMemoryStoreOptions } from './stores/shared-memory.js';
export { ParallelImage, sharedMemoryAvailable, setRunnerWorkerUrl, type ParallelOpenOptions } from './runners/pool-browser.js';
export type { StoreSpec } from './runners/protocol.js';
export { openPersistentDisk, defaultDeltaStore, deltaFolderName, type OpenPersistentDiskOptions, type DeltaStoreKind } from './adapters/browser-disk.js';

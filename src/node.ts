// SPDX-License-Identifier: MIT
// Node entry: everything from the main entry plus the file store.

export * from './index.js';
export { NodeFileStore, type NodeFileStoreOptions, type NodeFileIo } from './stores/node-fs.js';
export { startIoThread, ioThreadStats } from './stores/node-io-thread.js';
export { NodeDirectory } from './stores/node-dir.js';
export { ParallelImage, sharedMemoryAvailable, type ParallelOpenOptions } from './runners/pool-node.js';
export { SharedMemoryStore, type SharedMemorySpec, type SharedMemoryStoreOptions } from './stores/shared-memory.js';
export type { StoreSpec } from './runners/protocol.js';

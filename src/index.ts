// SPDX-License-Identifier: MIT
// Public API of ploop-wasm (browser and Node). Node-only pieces are in ./node.ts.

export { PloopImage, type OpenOptions, type ImageStats, type DeltaSource, type LowerDelta, type ReadRequest, type WriteRequest } from './engine/image.js';
export type { Image } from './engine/image-interface.js';
export {
  initStack, openStackDir, snapshotStack, mergeStack, mergeAll, deleteSnapshotStack, resizeStack, readDescriptor, DESCRIPTOR_FILE,
} from './engine/stack.js';
export { resizeImage, type ResizeOptions, type ResizeResult } from './engine/resize.js';
export { serializeDescriptor, descriptorChain, type DiskDescriptor } from './format/descriptor.js';
export { parseDescriptor } from './format/descriptor-parse.js';
export { newDescriptor, addSnapshot } from './format/descriptor-edits.js';
export type { DeltaDirectory } from './stores/directory.js';
export { MemoryDirectory } from './stores/memory-dir.js';
export { createImage, type CreateOptions } from './engine/create.js';
export { checkImage, type CheckReport, type CheckFinding, type CheckOptions } from './engine/check.js';
export { MemoryStore } from './stores/memory.js';
export { BlobStore } from './stores/blob.js';
export { HttpRangeStore, type HttpRangeOptions, type HttpRangeStats } from './stores/http-range.js';
export { openOverlay, OVERLAY_FILE, type OverlayOptions } from './engine/overlay.js';
export { keptOpen, type BlockStore } from './stores/block-store.js';
export { PloopError, type PloopErrorCode } from './errors.js';
export {
  parseHeader, serializeHeader, newHeader, deriveGeometry,
  type PloopHeader, type Geometry, type PloopFormat,
} from './format/header.js';
export type { Extent } from './core/bat-map.js';

import { PloopImage, type OpenOptions } from './engine/image.js';
import type { BlockStore } from './stores/block-store.js';

/** Open the ploop image on `store` (shorthand for PloopImage.open). */
export function open(store: BlockStore, options?: OpenOptions): Promise<PloopImage> {
  return PloopImage.open(store, options);
}
export {
  inspectDisk, detectFilesystem, readPartitionTable,
  type DiskReport, type PartitionReport, type Partition, type PartitionTable, type FilesystemInfo, type FilesystemType, type ReadAt,
} from './inspect/index.js';

// The file browser (docs/filesystems.md): ext2/3/4, FAT12/16/32 and ISO 9660, read by path.
export {
  openFilesystem, listVolumes, describeVolumes, diskOfStore, isBrowsable, typeOfMode, walkTree, byName, treeBytes, modeString, timeString,
  type OpenFilesystemOptions, type OpenedFilesystem, type VolumeChoice, type DiskReader, type Filesystem, type FsEntry, type FsStat, type FsKind,
  type EntryType, type StreamOptions, type WalkOptions,
} from './fs/index.js';

// Emulator adapters (docs/emulators.md): the block-device facade, v86, persistence and export.
export { imageBlockDevice, checkDeviceRange, type BlockDevice } from './adapters/block-device.js';
export { V86Disk, type V86DiskOptions } from './adapters/v86/disk.js';
export { startV86, SerialLog, type StartV86Options, type RunningV86, type V86Constructor, type V86Emulator, type V86Rom } from './adapters/v86/emulator.js';
export { PersistentDisk, type PersistentDiskOptions, type FlushEvents } from './adapters/persistent-disk.js';
export { openBaseUrl, openBaseFiles, openBaseDirectory, openBaseStore, hasPloopSignature, type DiskBase, type UrlBaseOptions } from './adapters/disk-source.js';
export { exportMerged, exportDelta, exportRaw, exportBlob, type ExportKind } from './adapters/export.js';
export { createSyncChannel, serveBlockDevice, SyncBlockDevice, type SyncChannel } from './adapters/sync-bridge.js';

// SPDX-License-Identifier: MIT
// The file browser's public API: open a filesystem on a disk and read it by path.

export { openFilesystem, listVolumes, describeVolumes, diskOfStore, isBrowsable, type OpenFilesystemOptions, type OpenedFilesystem, type VolumeChoice, type DiskReader } from './open.js';
export { typeOfMode, type Filesystem, type FsEntry, type FsStat, type FsKind, type EntryType, type StreamOptions } from './types.js';
export { walkTree, byName, treeBytes, type WalkOptions } from './walk.js';
export { modeString, timeString } from './mode.js';

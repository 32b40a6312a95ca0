// SPDX-License-Identifier: MIT
// What `ploop init` writes, and the edits `ploop snapshot`, `snapshot-merge` and `snapshot-delete`
// make to the snapshot tree of a DiskDescriptor (docs/format.md, 'DiskDescriptor.xml'). Each edit
// checks its input and its result, so a folder never gets a descriptor the ploop tools refuse.

import { PloopError } from '../errors.js';
import {
  TOPDELTA_GUID, NONE_GUID, DEFAULT_ROOT_ELEMENT, isValidGuid, sameGuid, randomGuid, show, initChs, checkDescriptor, descriptorChain,
  type DiskDescriptor, type DescriptorImage, type DescriptorImageType, type DescriptorSnapshot,
} from './descriptor.js';

/** ploop refuses a snapshot once the top's chain holds more than 126 images (128 minus the base and one reserved). */
export const MAX_CHAIN_BEFORE_SNAPSHOT = 126;

/** Result of an edit that may make a delta file obsolete. */
export interface DescriptorEdit {
  descriptor: DiskDescriptor;
  /** The `<File>` the real tool deletes after storing the new descriptor, or null. */
  removedFile: string | null;
}

/** Options of `newDescriptor`. */
export interface NewDescriptorOptions {
  /** Virtual size in sectors; Compressed images round it up to a whole cluster as `ploop init` does. */
  sizeSectors: number;
  /** Cluster size in sectors (default 2048 = 1 MiB). */
  blocksizeSectors?: number;
  /** Base image file name (default `root.hds`). */
  file?: string;
  /** Default `Compressed`; `Plain` is `ploop init -f raw`. */
  type?: DescriptorImageType;
  /** `ploop init -f preallocated`. */
  preallocated?: boolean;
  /** Default `Virtuozzo_disk_image` (ploop 9); ploop 1.x writes `Parallels_disk_image`. */
  rootElement?: string;
  /**
   * Size the CHS values are computed from, when it differs from `sizeSectors`: `ploop init -v 1`
   * clamps Disk_size to 2^31 sectors but keeps the Cylinders of the requested size.
   */
  chsSizeSectors?: number;
}

/**
 * The descriptor `ploop init` writes: one image with the TOPDELTA GUID whose parent is NONE.
 * @example
 * serializeDescriptor(newDescriptor({ sizeSectors: 131072 })); // the 784-byte `ploop init -s 64M` file
 */
export function newDescriptor(options: NewDescriptorOptions): DiskDescriptor {
  const opts: Partial<NewDescriptorOptions> = options ?? {};
  const { sizeSectors, blocksizeSectors = 2048, file = 'root.hds', type = 'Compressed', preallocated = false, rootElement = DEFAULT_ROOT_ELEMENT } = opts;
  if (sizeSectors === undefined || !Number.isSafeInteger(sizeSectors) || sizeSectors <= 0) {
    throw new PloopError('EINVAL', `newDescriptor: sizeSectors is ${show(sizeSectors)}, expected a positive whole number of sectors`, { option: 'sizeSectors', value: sizeSectors });
  }
  const chsSizeSectors = opts.chsSizeSectors ?? sizeSectors;
  if (!Number.isSafeInteger(chsSizeSectors) || chsSizeSectors <= 0) {
    throw new PloopError('EINVAL', `newDescriptor: chsSizeSectors is ${show(chsSizeSectors)}, expected a positive whole number of sectors`, { option: 'chsSizeSectors', value: chsSizeSectors });
  }
  const diskSizeSectors = type === 'Compressed' && Number.isInteger(blocksizeSectors) && blocksizeSectors > 0
    ? Math.ceil(sizeSectors / blocksizeSectors) * blocksizeSectors
    : sizeSectors;
  const descriptor: DiskDescriptor = {
    rootElement,
    diskSizeSectors,
    ...initChs(diskSizeSectors, chsSizeSectors === sizeSectors ? diskSizeSectors : chsSizeSectors),
    padding: 0,
    blocksizeSectors,
    preallocated,
    images: [{ guid: TOPDELTA_GUID, type, file }],
    topGuid: TOPDELTA_GUID,
    snapshots: [{ guid: TOPDELTA_GUID, parentGuid: NONE_GUID }],
  };
  checkDescriptor(descriptor, 'EINVAL');
  return descriptor;
}

function cloneDescriptor(d: DiskDescriptor): DiskDescriptor {
  return {
    ...d,
    images: d.images.map((image) => ({ ...image })),
    snapshots: d.snapshots.map((shot) => ({ ...shot })),
  };
}

/** ploop's `ploop_di_change_guid`: rename a GUID in images, shots, parent links and TopGUID. */
function changeGuid(d: DiskDescriptor, from: string, to: string): void {
  for (const image of d.images) if (sameGuid(image.guid, from)) image.guid = to;
  for (const shot of d.snapshots) {
    if (sameGuid(shot.guid, from)) shot.guid = to;
    if (sameGuid(shot.parentGuid, from)) shot.parentGuid = to;
  }
  if (sameGuid(d.topGuid, from)) d.topGuid = to;
}

function requireTopDeltaFormat(d: DiskDescriptor, operation: string): void {
  if (!sameGuid(d.topGuid, TOPDELTA_GUID)) {
    throw new PloopError('EINVAL', `${operation}: TopGUID is ${d.topGuid}, not ${TOPDELTA_GUID}; ploop refuses this ("Snapshot is in old format") until the descriptor is stored again`,
      { value: d.topGuid });
  }
}

function findShot(d: DiskDescriptor, guid: string, operation: string): DescriptorSnapshot {
  const shot = d.snapshots.find((s) => sameGuid(s.guid, guid));
  if (!shot) throw new PloopError('EINVAL', `${operation}: no snapshot has the GUID ${show(guid)}`, { value: guid });
  return shot;
}

function findImage(d: DiskDescriptor, guid: string, operation: string): DescriptorImage {
  const image = d.images.find((i) => sameGuid(i.guid, guid));
  if (!image) throw new PloopError('EINVAL', `${operation}: no image has the GUID ${show(guid)}`, { value: guid });
  return image;
}

function childrenOf(d: DiskDescriptor, guid: string): DescriptorSnapshot[] {
  return d.snapshots.filter((s) => sameGuid(s.parentGuid, guid));
}

/** Options of `addSnapshot`. */
export interface AddSnapshotOptions {
  /** File of the new top delta; default `<first image's file>.<random GUID>`, as ploop names it. */
  newFile?: string;
  /** GUID the current top takes; default a random one. */
  snapshotGuid?: string;
  /** Mark the new snapshot `<Temporary/>` (ploop's temporary snapshots). */
  temporary?: boolean;
}

/**
 * The descriptor after an offline `ploop snapshot` (do_create_snapshot): the current top image
 * and its shot take `snapshotGuid`, and a new Compressed image with the TOPDELTA GUID, file
 * `newFile` and parent `snapshotGuid` is appended. The caller creates the empty delta file (same
 * version, cluster size and size as its parent) before storing this descriptor.
 * @throws PloopError EINVAL for an old-format descriptor, a GUID or file already in use, or a
 *   chain longer than ploop allows
 * @example
 * const next = addSnapshot(dd, { newFile: `root.hds.${randomGuid()}` });
 */
export function addSnapshot(d: DiskDescriptor, options: AddSnapshotOptions = {}): DiskDescriptor {
  checkDescriptor(d, 'EINVAL');
  const operation = 'addSnapshot';
  requireTopDeltaFormat(d, operation);
  const snapshotGuid = options.snapshotGuid ?? randomGuid();
  if (!isValidGuid(snapshotGuid)) {
    throw new PloopError('EINVAL', `${operation}: snapshotGuid is ${show(snapshotGuid)}, expected a GUID in braces`, { option: 'snapshotGuid', value: snapshotGuid });
  }
  if (d.snapshots.some((s) => sameGuid(s.guid, snapshotGuid)) || d.images.some((i) => sameGuid(i.guid, snapshotGuid))) {
    throw new PloopError('EINVAL', `${operation}: the snapshot ${snapshotGuid} already exists`, { option: 'snapshotGuid', value: snapshotGuid });
  }
  const newFile = options.newFile ?? `${d.images[0]!.file}.${randomGuid()}`;
  if (typeof newFile !== 'string' || newFile === '') {
    throw new PloopError('EINVAL', `${operation}: newFile is ${show(newFile)}, expected a file name`, { option: 'newFile', value: newFile });
  }
  if (d.images.some((i) => i.file === newFile)) {
    throw new PloopError('EINVAL', `${operation}: newFile ${show(newFile)} is already the file of an image`, { option: 'newFile', value: newFile });
  }
  // checkDescriptor has walked the chain already, so this cannot fail.
  const chainLength = descriptorChain(d).length;
  if (chainLength > MAX_CHAIN_BEFORE_SNAPSHOT) {
    throw new PloopError('EINVAL', `${operation}: the maximum number of snapshots (${chainLength - 1}) has been reached`, { value: chainLength });
  }
  const next = cloneDescriptor(d);
  changeGuid(next, TOPDELTA_GUID, snapshotGuid);
  if (options.temporary) findShot(next, snapshotGuid, operation).temporary = true;
  next.images.push({ guid: TOPDELTA_GUID, type: 'Compressed', file: newFile });
  next.snapshots.push({ guid: TOPDELTA_GUID, parentGuid: snapshotGuid });
  next.topGuid = TOPDELTA_GUID;
  checkDescriptor(next, 'EINVAL');
  return next;
}

/**
 * The descriptor after merging a delta into its parent offline (`ploop_di_merge_image`, used by
 * `snapshot-merge` and `snapshot-delete`): the parent file survives and its image and shot take
 * the child's GUID; the child's entries go and its file is to be deleted.
 * @param childGuid the delta whose clusters are copied down into its parent
 * @throws PloopError EINVAL if the child is unknown, is the base, or its parent has other children
 * @example
 * const { descriptor, removedFile } = mergeIntoParent(dd, dd.topGuid);
 */
export function mergeIntoParent(d: DiskDescriptor, childGuid: string): DescriptorEdit {
  checkDescriptor(d, 'EINVAL');
  const operation = 'mergeIntoParent';
  const shot = findShot(d, childGuid, operation);
  const image = findImage(d, childGuid, operation);
  if (sameGuid(shot.parentGuid, NONE_GUID)) {
    throw new PloopError('EINVAL', `${operation}: ${shot.guid} is the base image, it has no parent to merge into`, { value: childGuid });
  }
  const siblings = childrenOf(d, shot.parentGuid).length;
  if (siblings > 1) {
    throw new PloopError('EINVAL', `${operation}: the parent ${shot.parentGuid} has ${siblings} children, expected one`, { value: childGuid });
  }
  const next = cloneDescriptor(d);
  const parentGuid = shot.parentGuid;
  next.snapshots = next.snapshots.filter((s) => !sameGuid(s.guid, shot.guid));
  next.images = next.images.filter((i) => !sameGuid(i.guid, image.guid));
  for (const s of next.snapshots) if (sameGuid(s.guid, parentGuid)) s.guid = shot.guid;
  for (const i of next.images) if (sameGuid(i.guid, parentGuid)) i.guid = shot.guid;
  checkDescriptor(next, 'EINVAL');
  return { descriptor: next, removedFile: image.file };
}

/**
 * `ploop snapshot-merge DD` offline: the top delta merged into its parent, which becomes the top
 * with the TOPDELTA GUID.
 * @example
 * const { descriptor, removedFile } = mergeTopIntoParent(dd);
 */
export function mergeTopIntoParent(d: DiskDescriptor): DescriptorEdit {
  return mergeIntoParent(d, d?.topGuid);
}

/**
 * `ploop snapshot-delete -u GUID DD` offline (do_delete_snapshot): a leaf snapshot is dropped (its
 * data is lost; if it was the top, its parent becomes the top with the TOPDELTA GUID); a snapshot
 * with one child has that child merged into it; one with several children is only marked
 * `<Temporary/>`.
 * @throws PloopError EINVAL for the base image, an unknown GUID, or dropping a top whose parent is temporary
 * @example
 * const { descriptor, removedFile } = deleteSnapshot(dd, '{48378aa6-1fb4-4a91-9a82-06cd4c20041c}');
 */
export function deleteSnapshot(d: DiskDescriptor, guid: string): DescriptorEdit {
  checkDescriptor(d, 'EINVAL');
  const operation = 'deleteSnapshot';
  requireTopDeltaFormat(d, operation);
  const shot = findShot(d, guid, operation);
  const children = childrenOf(d, shot.guid);
  if (children.length === 1) return mergeIntoParent(d, children[0]!.guid);
  if (children.length > 1) {
    const next = cloneDescriptor(d);
    findShot(next, guid, operation).temporary = true;
    return { descriptor: next, removedFile: null };
  }
  if (sameGuid(shot.parentGuid, NONE_GUID)) {
    throw new PloopError('EINVAL', `${operation}: ${shot.guid} is the base image, it cannot be deleted`, { value: guid });
  }
  const isTop = sameGuid(shot.guid, d.topGuid);
  if (isTop && findShot(d, shot.parentGuid, operation).temporary) {
    throw new PloopError('EINVAL', `${operation}: cannot delete the top delta, its parent ${shot.parentGuid} is temporary`, { value: guid });
  }
  const image = findImage(d, shot.guid, operation);
  findImage(d, shot.parentGuid, operation);
  const next = cloneDescriptor(d);
  next.snapshots = next.snapshots.filter((s) => !sameGuid(s.guid, shot.guid));
  next.images = next.images.filter((i) => !sameGuid(i.guid, shot.guid));
  if (isTop) changeGuid(next, shot.parentGuid, TOPDELTA_GUID);
  checkDescriptor(next, 'EINVAL');
  return { descriptor: next, removedFile: image.file };
}

/**
 * Discard the top delta (its data is lost): `deleteSnapshot(d, d.topGuid)`. The parent becomes
 * the top and takes the TOPDELTA GUID.
 * @example
 * const { descriptor, removedFile } = removeTopDelta(dd);
 */
export function removeTopDelta(d: DiskDescriptor): DescriptorEdit {
  checkDescriptor(d, 'EINVAL');
  if (childrenOf(d, d.topGuid).length > 0) {
    throw new PloopError('EINVAL', `removeTopDelta: the top ${d.topGuid} has child snapshots`, { value: d.topGuid });
  }
  return deleteSnapshot(d, d.topGuid);
}
// SPDX-License-Identifier: MIT
// Where the v86 page's base disk comes from: the built-in sample (made here, no network), a URL
// (ploop image, disk folder or raw, read with HTTP ranges), picked or dropped files, or an image
// the inspector page stored in this browser (OPFS or IndexedDB). Each is read-only: the
// guest's writes go to a delta of their own.

import { BlobStore, openBaseStore, openBaseUrl, openBaseFiles, openBaseDirectory, type DiskBase } from '../../src/browser.js';
import { sampleBootDisk } from '../v86-sample-disk.js';
import { listStored, storedFolder, backendLabel, type StoredImage } from '../demo/persist.js';

const SAMPLE_NAME = 'sample-boot.img';

export function sampleBase(): Promise<DiskBase> {
  const bytes = sampleBootDisk();
  return openBaseStore(new BlobStore(new Blob([bytes as BlobPart]), { name: SAMPLE_NAME }), `sample:${SAMPLE_NAME}`, 'built-in sample');
}

export function urlBase(url: string): Promise<DiskBase> {
  return openBaseUrl(new URL(url, location.href));
}

export function filesBase(files: File[]): Promise<DiskBase> {
  return openBaseFiles(files);
}

export type { StoredImage };

export async function storedImages(): Promise<StoredImage[]> {
  return listStored();
}

export function storedLabel(s: StoredImage): string {
  return `${s.name} (stored in ${backendLabel(s.backend)} by the image inspector)`;
}

export async function storedBase(s: StoredImage): Promise<DiskBase> {
  return openBaseDirectory(await storedFolder(s.backend, s.name), storedLabel(s));
}

// SPDX-License-Identifier: MIT
// The small block-device facade emulator adapters wrap: byte offsets, a fixed size, promises.
// It hides whether the bytes come from one ploop image, a delta stack or anything else, so an
// adapter for another emulator needs only these four calls (docs/emulators.md).

import type { Image } from '../engine/image-interface.js';
import { PloopError } from '../errors.js';

export interface BlockDevice {
  /** Size of the virtual disk in bytes. */
  readonly sizeBytes: number;
  /** Read exactly `length` bytes at `offset`; a range past the end rejects (ERANGE), it never reads zeros. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Write all of `data` at `offset`; resolves once the write is in the image (not yet durable). */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Make every write that resolved before the call durable. */
  flush(): Promise<void>;
}

/** Throw ERANGE unless [offset, offset + length) lies inside a device of `sizeBytes`. */
export function checkDeviceRange(operation: string, offset: number, length: number, sizeBytes: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > sizeBytes) {
    throw new PloopError('ERANGE', `${operation}: bytes ${offset}..${offset + length} are outside the ${sizeBytes}-byte disk`, { offset, length, sizeBytes });
  }
}

/** An image (one delta or a stack, one runner or a pool of them) as a block device. */
export function imageBlockDevice(image: Image): BlockDevice {
  return {
    sizeBytes: image.size,
    read(offset, length) {
      // Checked here too, so that the message names the device and not the engine's internals.
      try {
        checkDeviceRange('read', offset, length, image.size);
      } catch (e) {
        return Promise.reject(e);
      }
      return image.read(offset, length);
    },
    write(offset, data) {
      try {
        checkDeviceRange('write', offset, data.length, image.size);
      } catch (e) {
        return Promise.reject(e);
      }
      return image.write(offset, data);
    },
    flush: () => image.flush(),
  };
}

// SPDX-License-Identifier: MIT
// Writes that an emulator considers done before the device has them. v86 raises the interrupt
// for a PIO write before it even calls `set`, and the guest may read the same sectors back at
// once; so a write is copied here synchronously, reads patch the copies over what the device
// returns, and the writes reach the device one at a time in the order they were issued (two
// writes to the same sectors must land in guest order).

import type { BlockDevice } from './block-device.js';

interface Pending {
  offset: number;
  data: Uint8Array;
}

export class PendingWrites {
  readonly #device: BlockDevice;
  /** Issued and not yet in the device, oldest first. */
  readonly #pending: Pending[] = [];
  #tail: Promise<void> = Promise.resolve();
  #failure: unknown = null;
  /** Called once for the first write the device refused (the emulator has no error path for it). */
  onError: (error: unknown) => void = () => {};

  constructor(device: BlockDevice) {
    this.#device = device;
  }

  /** Number of writes not yet in the device. */
  get count(): number {
    return this.#pending.length;
  }

  /** The first write failure, if any (later writes are still attempted). */
  get failure(): unknown {
    return this.#failure;
  }

  /** Copy `data` now and queue its write; the promise settles when the device has it. */
  write(offset: number, data: Uint8Array): Promise<void> {
    const entry: Pending = { offset, data: data.slice() };
    this.#pending.push(entry);
    const done = this.#tail.then(() => this.#device.write(offset, entry.data)).finally(() => {
      this.#pending.splice(this.#pending.indexOf(entry), 1);
    });
    this.#tail = done.catch((e) => {
      if (this.#failure === null) {
        this.#failure = e;
        this.onError(e);
      }
    });
    return done;
  }

  /**
   * Read through the device with the writes pending *now* laid over the result: a write that
   * lands while the read runs is still in this snapshot, so the read never sees older bytes.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const overlay = this.#pending.filter((p) => p.offset < offset + length && p.offset + p.data.length > offset);
    const bytes = await this.#device.read(offset, length);
    for (const p of overlay) patch(bytes, offset, p);
    return bytes;
  }

  /** Lay the pending writes over `bytes` (which hold the disk at `offset`), synchronously. */
  patch(bytes: Uint8Array, offset: number): void {
    for (const p of this.#pending) patch(bytes, offset, p);
  }

  /** Resolves once every write issued so far is in the device (failures are in `failure`). */
  settled(): Promise<void> {
    return this.#tail;
  }
}

function patch(bytes: Uint8Array, offset: number, p: Pending): void {
  const from = Math.max(offset, p.offset);
  const to = Math.min(offset + bytes.length, p.offset + p.data.length);
  if (from < to) bytes.set(p.data.subarray(from - p.offset, to - p.offset), from - offset);
}

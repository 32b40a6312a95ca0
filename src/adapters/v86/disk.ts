// SPDX-License-Identifier: MIT
// A ploop-backed disk that v86 accepts as `hda`/`hdb`. This file is the only place where v86's
// snake_case names and callbacks live; everything else speaks the BlockDevice facade.
//
// The contract (v86 0.5.462, src/buffer.js and src/ide.js; see docs/emulators.md):
// - `load()` then `onload(...)` before the emulator starts;
// - `get(start, length, cb, {signal})`: cb(bytes) once; a cancelled read must not call back;
// - `set(start, data, cb)`: for PIO writes v86 has already raised the interrupt and passes a
//   view into a buffer it reuses, so the bytes are copied before `set` returns and later gets
//   see them at once (PendingWrites);
// - `get_and_cache(0, 512)` before init and a synchronous `get_from_cache(0, 512)` while the
//   IDE derives the CHS geometry from the MBR;
// - `get_state()`/`set_state()` inside save_state/restore_state: the disk contents are not in
//   the state (they live in the ploop stack), only the image id and generation, so a state
//   saved before a "reset to base" cannot be restored onto the reset disk.

import type { BlockDevice } from '../block-device.js';
import { checkDeviceRange } from '../block-device.js';
import { PendingWrites } from '../pending-writes.js';
import { ReadAhead, patch, type ReadAheadOptions } from '../read-ahead.js';
import { PloopError } from '../../errors.js';

export interface V86DiskOptions {
  /** Names the disk contents (e.g. the base image's name and size); part of the saved state. */
  imageId?: string;
  /** Bumped whenever the disk is reset to its base; part of the saved state. */
  generation?: number;
  /** Builds the file `get_as_file` returns (e.g. the stack merged into one ploop image). */
  exportFile?: (name: string) => Promise<Blob>;
  /** A read or write the device refused; v86 has no error path, so the default logs it. */
  onError?: (error: unknown) => void;
  /**
   * Read-ahead for sequential reads (default: 1 MiB ahead in 256 KiB chunks; `{ aheadBytes: 0 }`
   * turns it off). Reads it already holds are answered synchronously, as from a disk in memory.
   */
  readAhead?: ReadAheadOptions;
}

type ReadCallback = (bytes: Uint8Array) => void;

/** v86's disk buffer interface on top of a BlockDevice. */
export class V86Disk {
  readonly byteLength: number;
  readonly imageId: string;
  readonly generation: number;
  onload: ((info: object) => void) | undefined = undefined;
  onprogress: ((event: object) => void) | undefined = undefined;
  /** Counters for tests and the page: requests as v86 made them. */
  readonly counters = { reads: 0, writes: 0, readsCancelled: 0, bytesRead: 0, bytesWritten: 0 };
  readonly #device: BlockDevice;
  readonly #writes: PendingWrites;
  readonly #ahead: ReadAhead;
  readonly #cache: Array<{ offset: number; bytes: Uint8Array }> = [];
  readonly #options: V86DiskOptions;
  #reported = false;

  constructor(device: BlockDevice, options: V86DiskOptions = {}) {
    this.#device = device;
    this.#options = options;
    this.byteLength = device.sizeBytes;
    this.imageId = options.imageId ?? 'ploop';
    this.generation = options.generation ?? 0;
    this.#writes = new PendingWrites(device);
    this.#writes.onError = (e) => this.#fail(e);
    this.#ahead = new ReadAhead(device, this.#writes, options.readAhead);
  }

  /** Read-ahead counters: reads answered from it, chunks fetched and dropped. */
  get readAhead(): ReadAhead['counters'] {
    return this.#ahead.counters;
  }

  load(): void {
    // Nothing to fetch up front: the stack is open and reads are lazy.
    this.onprogress?.({ loaded: this.byteLength, total: this.byteLength, lengthComputable: true });
    this.onload?.(Object.create(null));
  }

  get(start: number, length: number, cb: ReadCallback, options?: { signal?: AbortSignal }): void {
    checkDeviceRange('v86 disk get', start, length, this.byteLength);
    const signal = options?.signal;
    if (signal?.aborted) {
      this.counters.readsCancelled++;
      return;
    }
    this.counters.reads++;
    const held = this.#ahead.take(start, length);
    this.#ahead.after(start, length);
    if (held) {
      this.counters.bytesRead += length;
      cb(held);
      return;
    }
    this.#ahead.wait(start, length).then((bytes) => bytes ?? this.#writes.read(start, length)).then((bytes) => {
      // v86 cancels outstanding reads on an IDE reset; their data must not reach the device model.
      if (signal?.aborted) {
        this.counters.readsCancelled++;
        return;
      }
      this.counters.bytesRead += length;
      cb(bytes);
    }, (e) => this.#fail(e));
  }

  set(start: number, data: Uint8Array, cb?: () => void): void {
    checkDeviceRange('v86 disk set', start, data.length, this.byteLength);
    this.counters.writes++;
    this.counters.bytesWritten += data.length;
    for (const c of this.#cache) patch(c.bytes, c.offset, start, data);
    this.#ahead.wrote(start, data);
    this.#writes.write(start, data).then(() => cb?.(), () => {
      // reported once through onError by PendingWrites
    });
  }

  get_and_cache(start: number, length: number, cb: ReadCallback, options?: { signal?: AbortSignal }): void {
    this.get(start, length, (bytes) => {
      if (!this.#cache.some((c) => c.offset === start && c.bytes.length === length)) this.#cache.push({ offset: start, bytes: bytes.slice() });
      cb(bytes);
    }, options);
  }

  get_from_cache(start: number, length: number): Uint8Array | undefined {
    const hit = this.#cache.find((c) => c.offset <= start && c.offset + c.bytes.length >= start + length);
    return hit ? hit.bytes.slice(start - hit.offset, start - hit.offset + length) : undefined;
  }

  get_buffer(cb: (buffer?: ArrayBuffer) => void): void {
    // The image is not one buffer; v86 treats "no buffer" as "not available" (use get_as_file).
    cb(undefined);
  }

  /** v86 demo's export hook: the file `exportFile` builds, once v86's queued writes are in. */
  async get_as_file(name: string): Promise<Blob> {
    if (!this.#options.exportFile) throw new PloopError('ENOTSUP', 'v86 disk get_as_file: no export was configured for this disk (pass exportFile)');
    await this.#writes.settled();
    return this.#options.exportFile(name);
  }

  get_state(): [string, number] {
    return [this.imageId, this.generation];
  }

  set_state(state: unknown): void {
    if (!Array.isArray(state) || typeof state[0] !== 'string' || typeof state[1] !== 'number') {
      throw new PloopError('EINVAL', `v86 disk set_state: expected [imageId, generation] as saved by get_state, got ${JSON.stringify(state)}`);
    }
    const [imageId, generation] = state as [string, number];
    if (imageId !== this.imageId) {
      throw new PloopError('EINVAL', `v86 disk set_state: the state was saved with disk "${imageId}", this disk is "${this.imageId}"`, { imageId });
    }
    if (generation !== this.generation) {
      throw new PloopError('EINVAL', `v86 disk set_state: the state was saved at disk generation ${generation}, the disk is at generation ${this.generation} (it was reset to its base since); refusing to pair that machine state with different disk contents`, { generation });
    }
  }

  /** Writes v86 issued that the device does not have yet. */
  get pendingWrites(): number {
    return this.#writes.count;
  }

  /** Resolves once every write v86 issued so far reached the device (or failed). */
  settled(): Promise<void> {
    return this.#writes.settled();
  }

  /** Wait for every write v86 issued so far, then flush the device; rejects if a write failed. */
  async flush(): Promise<void> {
    await this.#writes.settled();
    if (this.#writes.failure) throw this.#writes.failure;
    await this.#device.flush();
  }

  #fail(e: unknown): void {
    if (this.#options.onError) this.#options.onError(e);
    else if (!this.#reported) console.error('ploop-wasm v86 disk:', e);
    this.#reported = true;
  }
}

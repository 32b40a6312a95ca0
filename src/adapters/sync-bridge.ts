// SPDX-License-Identifier: MIT
// A synchronous view of a BlockDevice for emulators that expect a sync, Uint8Array-like disk (read
// returns the bytes at once). The emulator's thread (a worker) posts a request into a
// SharedArrayBuffer and blocks in Atomics.wait; another thread runs serveBlockDevice, does the
// async read or write and wakes it. The serving thread must not be the waiting one (it could never
// run its async completions: they are events on the event loop of the thread that asked, and for
// IndexedDB that is a hard deadlock); the page's main thread is fine, since it waits with
// Atomics.waitAsync. Needs cross-origin isolation in browsers (SharedArrayBuffer).
//
// Channel layout: CONTROL_WORDS Int32 words (state, op, status, length, offset low/high,
// message length, stop), then the data area that carries the bytes of one request.

import type { BlockDevice } from './block-device.js';
import { checkDeviceRange } from './block-device.js';
import { PloopError, type PloopErrorCode } from '../errors.js';

const STATE = 0;
const OP = 1;
const STATUS = 2;
const LENGTH = 3;
const OFFSET_LOW = 4;
const OFFSET_HIGH = 5;
const MESSAGE_BYTES = 6;
const STOP = 7;
const CONTROL_WORDS = 8;
const CONTROL_BYTES = CONTROL_WORDS * 4;

const IDLE = 0;
const REQUEST = 1;
const DONE = 2;

const OP_READ = 1;
const OP_WRITE = 2;
const OP_FLUSH = 3;

const OK = 0;
const ERROR_CODES: PloopErrorCode[] = ['EIO', 'EFORMAT', 'ECORRUPT', 'ERANGE', 'EREADONLY', 'ENOSPC', 'EINVAL', 'ENOTSUP', 'ECLOSED', 'EBUSY'];

/** What the emulator's thread needs to talk to the server: post it to the worker. */
export interface SyncChannel {
  buffer: SharedArrayBuffer;
  sizeBytes: number;
}

/** A channel for a device of `sizeBytes`, moving at most `dataBytes` per round trip (default 1 MiB). */
export function createSyncChannel(sizeBytes: number, dataBytes = 1 << 20): SyncChannel {
  if (typeof SharedArrayBuffer !== 'function') {
    throw new PloopError('ENOTSUP', 'sync bridge: SharedArrayBuffer is not available (the page must be cross-origin isolated: COOP/COEP headers)');
  }
  if (!Number.isInteger(dataBytes) || dataBytes < 512) throw new PloopError('EINVAL', `sync bridge: dataBytes ${dataBytes}; expected a whole number >= 512`);
  return { buffer: new SharedArrayBuffer(CONTROL_BYTES + dataBytes), sizeBytes };
}

/**
 * Serve `device` on `channel` until stop(). Each request runs to completion before the next is
 * taken (the client waits for every answer anyway).
 */
export function serveBlockDevice(device: BlockDevice, channel: SyncChannel): { stop(): Promise<void> } {
  const control = new Int32Array(channel.buffer, 0, CONTROL_WORDS);
  const data = new Uint8Array(channel.buffer, CONTROL_BYTES);
  const loop = (async () => {
    while (Atomics.load(control, STOP) === 0) {
      const state = Atomics.load(control, STATE);
      if (state !== REQUEST) {
        const waited = Atomics.waitAsync(control, STATE, state);
        if (waited.async) await waited.value;
        continue;
      }
      await answer(device, control, data);
      Atomics.store(control, STATE, DONE);
      Atomics.notify(control, STATE);
    }
  })();
  return {
    async stop() {
      Atomics.store(control, STOP, 1);
      Atomics.notify(control, STATE);
      await loop;
    },
  };
}

async function answer(device: BlockDevice, control: Int32Array, data: Uint8Array): Promise<void> {
  const op = Atomics.load(control, OP);
  const length = Atomics.load(control, LENGTH);
  const offset = (Atomics.load(control, OFFSET_LOW) >>> 0) + (Atomics.load(control, OFFSET_HIGH) >>> 0) * 2 ** 32;
  try {
    if (op === OP_READ) data.set(await device.read(offset, length));
    // slice(): the device may keep the bytes past this call, and the next request reuses the area.
    else if (op === OP_WRITE) await device.write(offset, data.slice(0, length));
    else if (op === OP_FLUSH) await device.flush();
    else throw new PloopError('EINVAL', `sync bridge: unknown operation ${op}`);
    Atomics.store(control, STATUS, OK);
  } catch (e) {
    const code = e instanceof PloopError ? e.code : 'EIO';
    const message = new TextEncoder().encode(e instanceof Error ? e.message : String(e)).subarray(0, data.length);
    data.set(message);
    Atomics.store(control, MESSAGE_BYTES, message.length);
    Atomics.store(control, STATUS, 1 + Math.max(0, ERROR_CODES.indexOf(code)));
  }
}

/** The emulator's side: synchronous reads and writes (in a worker; Atomics.wait blocks). */
export class SyncBlockDevice {
  readonly sizeBytes: number;
  readonly #control: Int32Array;
  readonly #data: Uint8Array;
  readonly #timeoutMs: number;

  constructor(channel: SyncChannel, options: { timeoutMs?: number } = {}) {
    this.sizeBytes = channel.sizeBytes;
    this.#control = new Int32Array(channel.buffer, 0, CONTROL_WORDS);
    this.#data = new Uint8Array(channel.buffer, CONTROL_BYTES);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Fill `into` with the bytes at `offset`. */
  readInto(offset: number, into: Uint8Array): void {
    checkDeviceRange('sync read', offset, into.length, this.sizeBytes);
    for (let done = 0; done < into.length;) {
      const n = Math.min(this.#data.length, into.length - done);
      this.#call(OP_READ, offset + done, n);
      into.set(this.#data.subarray(0, n), done);
      done += n;
    }
  }

  /** `length` bytes at `offset` (Uint8Array-like get for emulators). */
  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(offset, out);
    return out;
  }

  /** Write `data` at `offset`; returns once the device has it. */
  write(offset: number, data: Uint8Array): void {
    checkDeviceRange('sync write', offset, data.length, this.sizeBytes);
    for (let done = 0; done < data.length;) {
      const n = Math.min(this.#data.length, data.length - done);
      this.#data.set(data.subarray(done, done + n));
      this.#call(OP_WRITE, offset + done, n);
      done += n;
    }
  }

  flush(): void {
    this.#call(OP_FLUSH, 0, 0);
  }

  #call(op: number, offset: number, length: number): void {
    const c = this.#control;
    if (Atomics.load(c, STATE) === REQUEST) throw new PloopError('EINVAL', 'sync bridge: a request is already in flight on this channel (one client per channel)');
    Atomics.store(c, OP, op);
    Atomics.store(c, LENGTH, length);
    Atomics.store(c, OFFSET_LOW, offset >>> 0);
    Atomics.store(c, OFFSET_HIGH, Math.floor(offset / 2 ** 32));
    Atomics.store(c, STATE, REQUEST);
    Atomics.notify(c, STATE);
    const deadline = Date.now() + this.#timeoutMs;
    while (Atomics.load(c, STATE) === REQUEST) {
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(c, STATE, REQUEST, left) === 'timed-out') {
        throw new PloopError('EIO', `sync bridge: no answer within ${this.#timeoutMs} ms; is serveBlockDevice running on another thread (not the one that waits)?`, { timeoutMs: this.#timeoutMs });
      }
    }
    const status = Atomics.load(c, STATUS);
    Atomics.store(c, STATE, IDLE);
    if (status !== OK) {
      const message = new TextDecoder().decode(this.#data.slice(0, Atomics.load(c, MESSAGE_BYTES)));
      throw new PloopError(ERROR_CODES[status - 1] ?? 'EIO', message);
    }
  }
}

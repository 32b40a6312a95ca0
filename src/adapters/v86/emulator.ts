// SPDX-License-Identifier: MIT
// Starting v86 on a V86Disk and watching its first serial port, in Node and in the browser alike.
// The V86 class is passed in (the npm package in Node, ./v86/libv86.mjs on the page), so that
// this library does not depend on v86 at all.

import type { V86Disk } from './disk.js';
import { PloopError } from '../../errors.js';

/** The part of v86's V86 class used here. */
export interface V86Emulator {
  add_listener(event: string, listener: (value: unknown) => void): void;
  destroy(): Promise<void>;
  is_running?(): boolean;
}

export type V86Constructor = new (options: Record<string, unknown>) => V86Emulator;

/** A BIOS image as v86 takes it: the bytes, or a URL (a file path under Node). */
export type V86Rom = { buffer: ArrayBuffer } | { url: string };

export interface StartV86Options {
  V86: V86Constructor;
  disk: V86Disk;
  bios: V86Rom;
  vgaBios: V86Rom;
  /** Where v86.wasm is (Node: resolve `v86/build/v86.wasm`; page: `./v86/v86.wasm`). */
  wasmPath?: string;
  /** Guest RAM in bytes (default 32 MiB). */
  memoryBytes?: number;
  /** Every byte the guest writes to COM1. */
  onSerialByte?: (byte: number) => void;
  /** Extra v86 options (screen_container, …). */
  extra?: Record<string, unknown>;
}

/** The guest's COM1 output as text (bytes as Latin-1), with waiting for a marker. */
export class SerialLog {
  text = '';
  #waiters: Array<{ marker: string; resolve: () => void }> = [];

  push(byte: number): void {
    this.text += String.fromCharCode(byte);
    this.#waiters = this.#waiters.filter((w) => {
      if (!this.text.includes(w.marker)) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once `marker` has appeared; rejects with what was seen after `timeoutMs`. */
  waitFor(marker: string, timeoutMs: number): Promise<void> {
    if (this.text.includes(marker)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new PloopError('EIO', `serial: "${marker}" did not appear within ${timeoutMs} ms; the guest printed ${this.text.length} bytes: ${JSON.stringify(this.text.slice(-300))}`, { marker, timeoutMs }));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiters.push({ marker, resolve: done });
    });
  }
}

export interface RunningV86 {
  emulator: V86Emulator;
  serial: SerialLog;
  /** Stop the emulator and wait for the disk's outstanding writes (not a flush). */
  stop(): Promise<void>;
}

/** Boot v86 from `disk` (as hda, booting from it) with the serial port captured. */
export function startV86(options: StartV86Options): RunningV86 {
  const serial = new SerialLog();
  const emulator = new options.V86({
    wasm_path: options.wasmPath,
    bios: options.bios,
    vga_bios: options.vgaBios,
    hda: options.disk,
    // Hard disk first; no floppy or CD is attached.
    boot_order: 0x132,
    memory_size: options.memoryBytes ?? 32 << 20,
    vga_memory_size: 2 << 20,
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    ...options.extra,
  });
  emulator.add_listener('serial0-output-byte', (byte) => {
    serial.push(byte as number);
    options.onSerialByte?.(byte as number);
  });
  let stopped: Promise<void> | null = null;
  return {
    emulator,
    serial,
    stop: () => {
      stopped ??= (async () => {
        await emulator.destroy();
        await options.disk.settled();
      })();
      return stopped;
    },
  };
}

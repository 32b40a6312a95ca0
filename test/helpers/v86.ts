// Booting v86 (the npm package) under Node on a V86Disk, with Debian's SeaBIOS.

import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { V86 } from 'v86';
import { startV86, type RunningV86, type V86Constructor } from '../../src/adapters/v86/emulator.js';
import type { V86Disk } from '../../src/adapters/v86/disk.js';

const require = createRequire(import.meta.url);
export const V86_WASM = require.resolve('v86/build/v86.wasm');
export const SEABIOS = '/usr/share/seabios/bios.bin';
export const VGABIOS = '/usr/share/seabios/vgabios-stdvga.bin';

let roms: Promise<{ bios: ArrayBuffer; vga: ArrayBuffer }> | null = null;

function loadRoms() {
  roms ??= (async () => {
    const [bios, vga] = await Promise.all([readFile(SEABIOS), readFile(VGABIOS)]);
    return { bios: new Uint8Array(bios).buffer, vga: new Uint8Array(vga).buffer };
  })();
  return roms;
}

/** Start v86 on `disk`; stop it with `running.stop()` (the tests always do, in finally). */
export async function bootV86(disk: V86Disk): Promise<RunningV86> {
  const { bios, vga } = await loadRoms();
  // A fresh copy per emulator: v86 may keep and modify the ROM buffers it is given.
  return startV86({
    V86: V86 as unknown as V86Constructor, disk, wasmPath: V86_WASM,
    bios: { buffer: bios.slice(0) }, vgaBios: { buffer: vga.slice(0) },
  });
}

/** Boot, wait for `marker` on COM1, stop; returns the serial text. */
export async function bootUntil(disk: V86Disk, marker: string, timeoutMs = 20_000): Promise<string> {
  const running = await bootV86(disk);
  try {
    await running.serial.waitFor(marker, timeoutMs);
    return running.serial.text;
  } finally {
    await running.stop();
  }
}

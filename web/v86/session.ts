// SPDX-License-Identifier: MIT
// One run of v86 on a PersistentDisk: the BIOS and v86 itself are fetched once, the disk is
// hda, COM1 goes to the page, and the boot is timed (first serial byte, and the moment a text
// given with ?until=TEXT appeared). Stopping the emulator leaves the disk open (restart, reset).

import { PloopError, startV86, type PersistentDisk, type RunningV86, type V86Constructor, type V86Disk } from '../../src/browser.js';

export interface BootOptions {
  biosBase: string;
  memoryBytes: number;
  /** A serial text whose appearance ends "booting" (the boot time shown), e.g. a login prompt. */
  until: string | null;
  screen: HTMLElement;
  onSerialByte: (byte: number) => void;
  onError: (e: unknown) => void;
}

let roms: Promise<{ bios: ArrayBuffer; vga: ArrayBuffer }> | null = null;
let v86Module: Promise<{ V86: V86Constructor }> | null = null;

async function fetchRom(biosBase: string, file: string): Promise<ArrayBuffer> {
  const url = new URL(file, new URL(biosBase, location.href)).href;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new PloopError('EIO', `BIOS ${url} could not be fetched (${(e as Error).message})`);
  }
  if (!response.ok) {
    throw new PloopError('EIO', `BIOS ${url}: HTTP ${response.status}. v86 needs SeaBIOS: install Debian's seabios (apt-get install seabios) and run "ploop-wasm serve", which serves /usr/share/seabios at /bios/, or pass ?bios=URL/ to a folder with bios.bin and vgabios-stdvga.bin`);
  }
  return response.arrayBuffer();
}

function loadRoms(biosBase: string) {
  roms ??= Promise.all([fetchRom(biosBase, 'bios.bin'), fetchRom(biosBase, 'vgabios-stdvga.bin')]).then(([bios, vga]) => ({ bios, vga }));
  roms.catch(() => (roms = null));
  return roms;
}

function loadV86() {
  // Loaded by URL at run time (not bundled): libv86.mjs and v86.wasm sit in ./v86/ of the build.
  const url = new URL('./v86/libv86.mjs', import.meta.url).href;
  v86Module ??= import(/* @vite-ignore */ url) as Promise<{ V86: V86Constructor }>;
  return v86Module;
}

export class Session {
  readonly label: string;
  readonly disk: PersistentDisk;
  readonly v86Disk: V86Disk;
  readonly running: RunningV86;
  /** performance.now() at the start, at the first serial byte, when `until` appeared. */
  readonly times: { started: number; firstSerial: number | null; until: number | null };
  readonly until: string | null;
  readonly #removeFlushPolicy: () => void;

  private constructor(label: string, disk: PersistentDisk, v86Disk: V86Disk, running: RunningV86, times: Session['times'], until: string | null) {
    this.label = label;
    this.disk = disk;
    this.v86Disk = v86Disk;
    this.running = running;
    this.times = times;
    this.until = until;
    // Flush every 2 s while the guest writes, and when the page is hidden or closed.
    this.#removeFlushPolicy = disk.installFlushPolicy(window, 2000);
  }

  static async boot(label: string, disk: PersistentDisk, o: BootOptions): Promise<Session> {
    const [{ bios, vga }, { V86 }] = await Promise.all([loadRoms(o.biosBase), loadV86()]);
    const v86Disk = disk.v86Disk({ onError: o.onError });
    const times: Session['times'] = { started: performance.now(), firstSerial: null, until: null };
    const until = o.until;
    const lastCode = until ? until.charCodeAt(until.length - 1) : -1;
    const running: RunningV86 = startV86({
      V86, disk: v86Disk, memoryBytes: o.memoryBytes,
      bios: { buffer: bios.slice(0) }, vgaBios: { buffer: vga.slice(0) },
      wasmPath: new URL('./v86/v86.wasm', import.meta.url).href,
      onSerialByte: (b) => {
        times.firstSerial ??= performance.now();
        // The text is in running.serial already; only a byte that ends `until` can complete it.
        if (until && times.until === null && b === lastCode && running.serial.text.endsWith(until)) times.until = performance.now();
        o.onSerialByte(b);
      },
      extra: { screen_container: o.screen },
    });
    return new Session(label, disk, v86Disk, running, times, o.until);
  }

  /** Type into the guest's COM1 (its serial console). */
  send(text: string): void {
    (this.running.emulator as unknown as { serial0_send(data: string): void }).serial0_send(text);
  }

  /** Stop the emulator, waiting for the writes it issued; the disk stays open. */
  async stop(): Promise<void> {
    this.#removeFlushPolicy();
    await this.running.stop();
  }
}

// Raw access to image files and the header fields the tests inspect or poke.

import { open, readFile } from 'node:fs/promises';

export const OFF = {
  magic: 0, version: 16, heads: 20, cylinders: 24, tracks: 28, batEntries: 32, nbSectors: 36,
  inUse: 44, dataOff: 48, flags: 52, extOff: 56, bat: 64,
} as const;
export const INUSE_MAGIC = 0x746f6e59;
export const SIGNATURE_V1 = 'WithoutFreeSpace';
export const SIGNATURE_V2 = 'WithouFreSpacExt';

/** Write `bytes` at `offset` of the file (like dd conv=notrunc). */
export async function pokeFile(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, offset);
  } finally {
    await fh.close();
  }
}

export function u32le(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  return b;
}

export function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
}

export async function pokeU32(path: string, offset: number, value: number): Promise<void> {
  await pokeFile(path, offset, u32le(value));
}

export async function readU32(path: string, offset: number): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const b = new Uint8Array(4);
    await fh.read(b, 0, 4, offset);
    return new DataView(b.buffer).getUint32(0, true);
  } finally {
    await fh.close();
  }
}

/** The decoded 64-byte header of raw file bytes. */
export function headerFields(bytes: Uint8Array) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 64);
  const u32 = (o: number) => dv.getUint32(o, true);
  return {
    magic: String.fromCharCode(...bytes.subarray(0, 16)),
    version: u32(16), heads: u32(20), cylinders: u32(24), tracks: u32(28), batEntries: u32(32),
    nbSectors: u32(36) + u32(40) * 2 ** 32, inUse: u32(44), dataOff: u32(48), flags: u32(52),
    extOff: u32(56) + u32(60) * 2 ** 32,
  };
}

/** BAT entry `i` of raw file bytes. */
export function batEntry(bytes: Uint8Array, i: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(64 + 4 * i, true);
}

export async function fileBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path));
}

/**
 * Where a cleanly closed image must end, computed from the raw bytes alone: the end of the
 * highest cluster any BAT entry maps (v1 entries are sectors, v2 entries clusters), or the start of
 * the data area when nothing is mapped (QEMU truncates there on close).
 */
export function expectedImageEnd(bytes: Uint8Array): number {
  const h = headerFields(bytes);
  const cluster = h.tracks * 512;
  const unit = h.magic === SIGNATURE_V1 ? 512 : cluster;
  // v1 may say data_off 0: data then starts at the first sector after the BAT.
  let end = h.dataOff === 0 ? Math.ceil((64 + 4 * h.batEntries) / 512) * 512 : h.dataOff * 512;
  for (let i = 0; i < h.batEntries; i++) {
    const v = batEntry(bytes, i);
    if (v !== 0) end = Math.max(end, v * unit + cluster);
  }
  return end;
}

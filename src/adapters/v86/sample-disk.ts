// SPDX-License-Identifier: MIT
// A tiny bootable disk for smoke tests and the v86 page: its boot sector uses INT 13h to read
// LBA 2 and LBA 1, prints them on COM1, and writes LBA 1 (first byte changed to 'W') to LBA 2.
// A first boot prints `BOOT LBA2=[] SECTOR1-DATA-FROM-PLOOP WRITE-OK`; once that write has
// persisted, a boot prints `LBA2=[WECTOR1-DATA-FROM-PLOOP]`. The machine code is assembled (with
// the instructions spelled out) by test/helpers/boot-sectors.ts, and a test keeps the two equal.

const BOOT_CODE_HEX =
  'fa31c08ed88ec08ed0bc007cfbfc88d3be9e7ce84c00be6e7cb8004288dacd137238be0080e83a00beaa7ce83400be7e' +
  '7cb8004288dacd137220be0082e82200c606008257be8e7cb8004388dacd137209bead7ce80b00f4ebfdbeb97ce80200' +
  'ebf5baf803ac84c07403eeebf8c310000100008000000200000000000000100001000082000001000000000000001000' +
  '0100008200000200000000000000424f4f54204c4241323d5b005d20002057524954452d4f4b0d0a0020494e5431332d' +
  '4641494c0d0a';

export const SAMPLE_LBA1_TEXT = 'SECTOR1-DATA-FROM-PLOOP';
const SECTOR_BYTES = 512;

/** The boot sector (512 bytes, 55 AA at the end). */
export function sampleBootSector(): Uint8Array {
  const sector = new Uint8Array(SECTOR_BYTES);
  for (let i = 0; i < BOOT_CODE_HEX.length / 2; i++) sector[i] = Number.parseInt(BOOT_CODE_HEX.slice(2 * i, 2 * i + 2), 16);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** A raw disk of `sizeBytes` (default 1 MiB): the boot sector, then SAMPLE_LBA1_TEXT at LBA 1. */
export function sampleBootDisk(sizeBytes = 1 << 20): Uint8Array {
  const disk = new Uint8Array(sizeBytes);
  disk.set(sampleBootSector(), 0);
  for (let i = 0; i < SAMPLE_LBA1_TEXT.length; i++) disk[SECTOR_BYTES + i] = SAMPLE_LBA1_TEXT.charCodeAt(i);
  return disk;
}

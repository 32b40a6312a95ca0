// SPDX-License-Identifier: MIT
// A tiny bootable disk for smoke tests and the v86 page. Its boot sector says in plain words,
// on the screen (BIOS teletype, INT 10h) and on COM1, what it does: it reads sector 1 and sector
// 2 with INT 13h and shows them, then writes a sentence into sector 2 through the BIOS, i.e.
// into the ploop image. A first boot shows
//
//   ploop-wasm sample: this boot sector came from a ploop image.
//   Sector 1 says: hello from the ploop image
//   Sector 2 says: nothing yet (first boot)
//   Wrote sector 2. Boot again to read it back.
//
// and once that write has persisted, a boot shows "Sector 2 says: written by an earlier boot,
// kept in the image". The machine code is assembled (with the instructions spelled out) by
// test/helpers/boot-sectors.ts, and a test keeps the two equal.

const BOOT_CODE_HEX =
  'fa31c08ed88ec08ed0bc007cfbfc89d5bed37ce87a00bea37cb8004289eacd137303e96300be127de86500be0082e85f' +
  '00beb37cb8004289eacd137303e94800be227de84a00803e0080007508be347de83d00eb06be0080e83500bf0084b900' +
  '0231c0f3aabe977dbf0084b92d00f3a4bec37cb8004389eacd137303e90900be4d7de80b00f4ebfdbe7d7de80200ebf5' +
  'ac84c0740dbaf803eeb40ebb0700cd10ebeec31000010000820000010000000000000010000100008000000200000000' +
  '00000010000100008400000200000000000000706c6f6f702d7761736d2073616d706c653a207468697320626f6f7420' +
  '736563746f722063616d652066726f6d206120706c6f6f7020696d6167652e0d0a00536563746f72203120736179733a' +
  '20000d0a536563746f72203220736179733a20006e6f7468696e67207965742028666972737420626f6f7429000d0a57' +
  '726f746520736563746f7220322e20426f6f7420616761696e20746f2072656164206974206261636b2e0d0a000d0a44' +
  '69736b206572726f722028494e5420313368292e0d0a007772697474656e20627920616e206561726c69657220626f6f' +
  '742c206b65707420696e2074686520696d616765';

export const SAMPLE_LBA1_TEXT = 'hello from the ploop image';
/** The last line the sample prints once its write to sector 2 is done (a marker to wait for). */
export const SAMPLE_DONE_TEXT = 'Wrote sector 2. Boot again to read it back.';
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

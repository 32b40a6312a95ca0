// A bootloader nobody here wrote boots from a ploop image through the adapter: Debian's SYSLINUX
// on a FAT filesystem (dosfstools + mtools), converted to ploop by our own converter. SYSLINUX
// reads ldlinux.sys, ldlinux.c32, its config and a "kernel" file through INT 13h, i.e. through
// v86's IDE model and our disk, then chain-loads that file: a boot sector that prints on COM1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PloopImage } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { imageBlockDevice } from '../../src/adapters/block-device.ts';
import { V86Disk } from '../../src/adapters/v86/disk.ts';
import { bootUntil } from '../helpers/v86.ts';
import { printBootSector, PRINT_SECTOR_TEXT } from '../helpers/boot-sectors.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { runOk } from '../helpers/qemu.ts';
import { cli, describeCli } from '../helpers/cli.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-syslinux-');
});
after(async () => {
  await tmp.cleanup();
});

/** A 16 MiB FAT16 "superfloppy" (no partition table) with SYSLINUX installed and configured. */
async function syslinuxDisk(): Promise<string> {
  const img = join(tmp.dir, 'fat.img');
  const cfg = join(tmp.dir, 'syslinux.cfg');
  const kernel = join(tmp.dir, 'print.bs');
  // SERIAL puts SYSLINUX's console on COM1; KERNEL x.bs boots the file as a boot sector.
  await writeFile(cfg, 'SERIAL 0 115200\nPROMPT 0\nDEFAULT ploop\nLABEL ploop\n  KERNEL print.bs\n');
  await writeFile(kernel, printBootSector());
  await runOk('mkfs.fat', ['-F', '16', '-n', 'PLOOPBOOT', '-C', img, String(16 * 1024)]);
  await runOk('mcopy', ['-i', img, cfg, kernel, '::']);
  await runOk('syslinux', ['--install', img]);
  const listing = await runOk('mdir', ['-a', '-i', img, '::']);
  assert.match(listing.stdout, /ldlinux\s+sys/, 'syslinux installed ldlinux.sys');
  return img;
}

test('SYSLINUX from Debian boots from a ploop image and chain-loads a file from its FAT filesystem', async () => {
  const raw = await syslinuxDisk();
  const hds = join(tmp.dir, 'syslinux.hds');
  const args = ['convert', raw, hds, '--cluster-size', '64k'];
  const r = await cli(args);
  assert.equal(r.code, 0, describeCli(args, r));
  const image = await PloopImage.open(await NodeFileStore.open(hds), {});
  try {
    const disk = new V86Disk(imageBlockDevice(image));
    const serial = await bootUntil(disk, PRINT_SECTOR_TEXT, 30_000);
    assert.match(serial, /SYSLINUX 6\.\d+ .*H\. Peter Anvin/, 'SYSLINUX printed its banner on COM1');
    assert.ok(serial.indexOf('SYSLINUX') < serial.indexOf(PRINT_SECTOR_TEXT), 'the chain-loaded file ran after SYSLINUX');
    // ldlinux.sys (~58 KiB) and ldlinux.c32 (~117 KiB) came through the adapter.
    assert.ok(disk.counters.bytesRead > 150_000, `${disk.counters.bytesRead} bytes read through the adapter`);
  } finally {
    await image.close();
  }
});

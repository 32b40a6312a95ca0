// v86 (npm) boots ploop images through the adapter, with Debian's SeaBIOS. The read/write boot
// sector's INT 13h write survives the emulator: a new emulator on the same stores sees it, and
// so do qemu-img check/convert on the exported image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createImage, PloopImage } from '../../src/index.ts';
import { NodeFileStore, NodeDirectory } from '../../src/node.ts';
import { imageBlockDevice } from '../../src/adapters/block-device.ts';
import { V86Disk } from '../../src/adapters/v86/disk.ts';
import { exportMerged, exportDelta, exportRaw } from '../../src/adapters/export.ts';
import { PersistentDisk } from '../../src/adapters/persistent-disk.ts';
import { bootUntil, bootV86 } from '../helpers/v86.ts';
import {
  printBootSector, readWriteBootSector, rawBootDisk, PRINT_SECTOR_TEXT, SECTOR_BYTES, WRITE_LBA,
  SAMPLE_FIRST_BOOT, SAMPLE_LATER_BOOT, SAMPLE_DONE, SAMPLE_WRITTEN,
} from '../helpers/boot-sectors.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { throwsWith, rejectsWith } from '../helpers/errors.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-v86-');
});
after(async () => {
  await tmp.cleanup();
});

const FIRST_BOOT = SAMPLE_FIRST_BOOT;
const LATER_BOOT = SAMPLE_LATER_BOOT;
/** The last line of the read/write boot sector, once its write is done. */
const DONE = `${SAMPLE_DONE}\r\n`;

/** A ploop image file holding `raw`, written through the engine (no qemu involved). */
async function ploopFile(name: string, raw: Uint8Array): Promise<string> {
  const path = join(tmp.dir, name);
  const store = await NodeFileStore.open(path, { create: true });
  await createImage(store, { size: raw.length, clusterSize: 64 << 10 });
  const image = await PloopImage.open(store, { writable: true });
  await image.write(0, raw.subarray(0, 64 << 10));
  await image.close();
  return path;
}

async function openFile(path: string, writable = true): Promise<PloopImage> {
  return PloopImage.open(await NodeFileStore.open(path, { writable }), { writable });
}

function lbaText(raw: Uint8Array, lba: number): string {
  const sector = raw.subarray(lba * SECTOR_BYTES, (lba + 1) * SECTOR_BYTES);
  return String.fromCharCode(...sector.subarray(0, sector.indexOf(0)));
}

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

test('a boot sector in a ploop image prints on COM1 through the adapter', async () => {
  const path = await ploopFile('print.hds', rawBootDisk(printBootSector()));
  const image = await openFile(path, false);
  try {
    const disk = new V86Disk(imageBlockDevice(image));
    const serial = await bootUntil(disk, PRINT_SECTOR_TEXT);
    assert.equal(serial, PRINT_SECTOR_TEXT);
    assert.ok(disk.counters.reads >= 2, `v86 read the disk through the adapter (${disk.counters.reads} reads)`);
  } finally {
    await image.close();
  }
});

test('an INT 13h write survives the emulator and shows in the exported image (qemu-img check/convert)', async () => {
  const path = await ploopFile('rw.hds', rawBootDisk(readWriteBootSector()));
  let image = await openFile(path);
  let disk = new V86Disk(imageBlockDevice(image));
  assert.equal(await bootUntil(disk, DONE), FIRST_BOOT);
  assert.equal(disk.counters.writes, 1);
  await image.close();

  // A new emulator on new stores over the same file.
  image = await openFile(path);
  disk = new V86Disk(imageBlockDevice(image));
  assert.equal(await bootUntil(disk, DONE), LATER_BOOT);
  const exported = join(tmp.dir, 'rw-export.hds');
  await writeFile(exported, await exportMerged(image));
  await image.close();

  for (const file of [path, exported]) {
    await assertToolsAccept(file, file);
    const raw = await qemuConvertToRaw(file, `${file}.raw`);
    assert.equal(lbaText(raw, WRITE_LBA), SAMPLE_WRITTEN, `${file}: LBA 2 holds the guest's write`);
  }
});

test('the sample says in plain words what it shows, on the screen (INT 10h) as on COM1', async () => {
  const { sampleBootDisk } = await import('../../web/v86-sample-disk.ts');
  const path = await ploopFile('screen.hds', sampleBootDisk());
  const image = await openFile(path);
  try {
    const running = await bootV86(new V86Disk(imageBlockDevice(image)));
    // v86 reports every character the VGA text mode shows: [row, column, character code].
    const rows: string[][] = [];
    running.emulator.add_listener('screen-put-char', (value) => {
      const [row, col, chr] = value as [number, number, number];
      (rows[row] ??= [])[col] = String.fromCharCode(chr);
    });
    try {
      await running.serial.waitFor(DONE, 20_000);
      // The BIOS prints what it prints; the sample's lines follow, as on the serial port.
      const screen = () => Array.from(rows, (r) => Array.from(r ?? [], (c) => c ?? ' ').join('').trimEnd()).join('\n');
      const want = FIRST_BOOT.trimEnd().split('\r\n').join('\n');
      for (let i = 0; i < 50 && !screen().includes(want); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(screen().includes(want), `the screen shows:\n${screen()}`);
    } finally {
      await running.stop();
    }
  } finally {
    await image.close();
  }
});

test('persistent disk: raw base untouched, writes in the delta folder survive a reopen, exports, reset to base', async () => {
  const basePath = join(tmp.dir, 'base.raw');
  await writeFile(basePath, rawBootDisk(readWriteBootSector(), 2 << 20));
  const baseHash = await sha256(basePath);
  const dir = new NodeDirectory(join(tmp.dir, 'delta'));
  await mkdir(dir.path(''), { recursive: true });
  const openDisk = async () => PersistentDisk.open({ base: await NodeFileStore.open(basePath), baseKind: 'raw', dir, baseId: 'base.raw' });

  let persistent = await openDisk();
  assert.equal(await bootUntil(persistent.v86Disk(), DONE), FIRST_BOOT);
  await persistent.close();

  persistent = await openDisk();
  const disk = persistent.v86Disk();
  const savedState = disk.get_state();
  assert.equal(await bootUntil(disk, DONE), LATER_BOOT);
  assert.equal(await sha256(basePath), baseHash, 'the base is never written');

  const merged = join(tmp.dir, 'merged.hds');
  const delta = join(tmp.dir, 'delta.hds');
  await writeFile(merged, await exportMerged(persistent.image));
  await writeFile(delta, await exportDelta(persistent.image));
  const raw = Buffer.concat(await exportRaw(persistent.image));
  for (const file of [merged, delta]) await assertToolsAccept(file, file);
  const mergedRaw = await qemuConvertToRaw(merged, `${merged}.raw`);
  assert.equal(lbaText(mergedRaw, WRITE_LBA), SAMPLE_WRITTEN);
  assert.ok(Buffer.from(mergedRaw).equals(raw), 'raw export equals qemu-img convert of the merged export');
  // The delta alone holds only the cluster the guest wrote (copied up from the base, then changed).
  const deltaRaw = await qemuConvertToRaw(delta, `${delta}.raw`);
  assert.equal(lbaText(deltaRaw, WRITE_LBA), SAMPLE_WRITTEN);
  assert.ok(deltaRaw.subarray(64 << 10).every((b) => b === 0), 'the delta maps only the written cluster');

  await persistent.resetToBase();
  assert.equal(persistent.generation, 1);
  const fresh = persistent.v86Disk();
  throwsWith(() => fresh.set_state(savedState), 'EINVAL', /generation 0, the disk is at generation 1/);
  assert.equal(await bootUntil(fresh, DONE), FIRST_BOOT);
  await persistent.close();
  // The generation is kept in the folder.
  persistent = await openDisk();
  assert.equal(persistent.generation, 1);
  await persistent.close();
  assert.equal(await sha256(basePath), baseHash);
  // The delta the folder keeps at rest, as the engine closed it.
  await assertToolsAccept(dir.path('top.hds'), 'the persistent delta at rest');
});

test('v86 save_state/restore_state carry the disk id and generation; a state from another generation is refused', async () => {
  const path = await ploopFile('state.hds', rawBootDisk(printBootSector()));
  const image = await openFile(path, false);
  const first = await bootV86(new V86Disk(imageBlockDevice(image), { imageId: 'state.hds', generation: 2 }));
  const second = await bootV86(new V86Disk(imageBlockDevice(image), { imageId: 'state.hds', generation: 3 }));
  try {
    await first.serial.waitFor(PRINT_SECTOR_TEXT, 20_000);
    const emulator = first.emulator as unknown as { save_state(): Promise<ArrayBuffer>; restore_state(s: ArrayBuffer): Promise<void> };
    const state = await emulator.save_state();
    await emulator.restore_state(state);
    await second.serial.waitFor(PRINT_SECTOR_TEXT, 20_000);
    await rejectsWith(() => (second.emulator as unknown as typeof emulator).restore_state(state), 'EINVAL',
      /saved at disk generation 2, the disk is at generation 3 \(it was reset to its base since\)/);
  } finally {
    await first.stop();
    await second.stop();
    await image.close();
  }
});

// Partition tables made by parted (MBR with logical partitions, GPT), with filesystems from
// mkfs.* copied into them; and the same disk converted to a ploop image by qemu-img, inspected
// through our engine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { makeTempDir } from '../helpers/tmp.ts';
import { runOk } from '../helpers/qemu.ts';
import { inspectDisk, readPartitionTable, PloopImage } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { readerOf, fileBytes } from './helpers.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-parts-');
});
after(() => tmp?.cleanup());

const MiB = 1 << 20;

async function fs(name: string, sizeMiB: number, program: string, args: string[]): Promise<Uint8Array> {
  const path = join(tmp.dir, name);
  await runOk('truncate', ['-s', `${sizeMiB}M`, path]);
  await runOk(program, [...args, path]);
  return fileBytes(path);
}

async function parted(name: string, sizeMiB: number, script: string[]): Promise<Uint8Array> {
  const path = join(tmp.dir, name);
  await runOk('truncate', ['-s', `${sizeMiB}M`, path]);
  await runOk('parted', ['-s', path, ...script]);
  return fileBytes(path);
}

test('MBR from parted: primary, extended and logical partitions with their filesystems', async () => {
  const disk = await parted('mbr.img', 64, ['mklabel', 'msdos', 'mkpart', 'primary', 'fat16', '1MiB', '9MiB', 'set', '1', 'boot', 'on',
    'mkpart', 'extended', '9MiB', '60MiB', 'mkpart', 'logical', 'ext4', '10MiB', '20MiB', 'mkpart', 'logical', 'linux-swap', '21MiB', '30MiB']);
  disk.set(await fs('p1.img', 8, 'mkfs.fat', ['-F', '16', '-s', '1', '-n', 'BOOT']), 1 * MiB);
  disk.set(await fs('p5.img', 10, 'mkfs.ext4', ['-q', '-F', '-L', 'data']), 10 * MiB);
  disk.set(await fs('p6.img', 9, 'mkswap', ['-L', 'sw']), 21 * MiB);
  const r = await inspectDisk(readerOf(disk), disk.length);
  assert.equal(r.scheme, 'mbr');
  assert.deepEqual(r.partitions.map((p) => [p.number, p.startBytes / MiB, p.sizeBytes / MiB, p.typeId, p.bootable, p.filesystem?.name ?? null, p.filesystem?.label ?? null]), [
    [1, 1, 8, '0x0e', true, 'FAT16', 'BOOT'],
    [2, 9, 51, '0x0f', false, null, null],
    [5, 10, 10, '0x83', false, 'ext4', 'data'],
    [6, 21, 9, '0x82', false, 'Linux swap', 'sw'],
  ]);
});

test('GPT from parted: type GUIDs, names and filesystems; through a ploop image made by qemu-img', async () => {
  const disk = await parted('gpt.img', 64, ['mklabel', 'gpt', 'mkpart', 'ESP', 'fat32', '1MiB', '41MiB', 'set', '1', 'esp', 'on',
    'mkpart', 'root', 'ext4', '41MiB', '63MiB']);
  disk.set(await fs('esp.img', 40, 'mkfs.fat', ['-F', '32', '-n', 'EFI']), 1 * MiB);
  disk.set(await fs('root.img', 22, 'mkfs.ext4', ['-q', '-F', '-L', 'rootfs']), 41 * MiB);
  const expected = [
    [1, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', 'EFI System', 'ESP', 'FAT32', 'EFI'],
    [2, '0FC63DAF-8483-4772-8E79-3D69D8477DE4', 'Linux filesystem', 'root', 'ext4', 'rootfs'],
  ];
  const summary = (r: Awaited<ReturnType<typeof inspectDisk>>) =>
    r.partitions.map((p) => [p.number, p.typeId, p.typeName, p.name, p.filesystem?.name, p.filesystem?.label]);
  const raw = await inspectDisk(readerOf(disk), disk.length);
  assert.equal(raw.scheme, 'gpt');
  assert.deepEqual(summary(raw), expected);

  const rawPath = join(tmp.dir, 'gpt-full.raw');
  const hds = join(tmp.dir, 'gpt.hds');
  writeFileSync(rawPath, disk);
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', '-o', 'cluster_size=64k', rawPath, hds]);
  const image = await PloopImage.open(await NodeFileStore.open(hds));
  try {
    const viaPloop = await inspectDisk((o, n) => image.read(o, n), image.size);
    assert.deepEqual(summary(viaPloop), expected);
    assert.equal(viaPloop.diskId, raw.diskId);
  } finally {
    await image.close();
  }
});

test('GPT with the primary header destroyed is read from the backup header at the last LBA', async () => {
  const disk = await parted('gpt-backup.img', 8, ['mklabel', 'gpt', 'mkpart', 'only', '1MiB', '7MiB']);
  disk.fill(0, 512, 1024);
  const t = await readPartitionTable(readerOf(disk), disk.length);
  assert.equal(t?.scheme, 'gpt');
  assert.deepEqual(t?.partitions.map((p) => [p.name, p.startBytes, p.sizeBytes]), [['only', MiB, 6 * MiB]]);
});

test('a bare filesystem is not mistaken for an MBR; a looping EBR chain ends; a hostile GPT entry size is refused by name', async () => {
  const fat = await fs('bare.img', 2, 'mkfs.fat', ['-F', '12', '-n', 'BARE']);
  const bare = await inspectDisk(readerOf(fat), fat.length);
  assert.equal(bare.scheme, 'none');
  assert.equal(bare.filesystem?.label, 'BARE');

  const loop = new Uint8Array(4 * MiB);
  const dv = new DataView(loop.buffer);
  loop[446 + 4] = 0x05;
  dv.setUint32(446 + 8, 2048, true);
  dv.setUint32(446 + 12, 4096, true);
  loop.set([0x55, 0xaa], 510);
  // EBR at LBA 2048: one logical partition, and a "next" link back to itself.
  const ebr = 2048 * 512;
  loop[ebr + 446 + 4] = 0x83;
  dv.setUint32(ebr + 446 + 8, 64, true);
  dv.setUint32(ebr + 446 + 12, 128, true);
  loop[ebr + 462 + 4] = 0x05;
  dv.setUint32(ebr + 462 + 8, 0, true);
  dv.setUint32(ebr + 462 + 12, 1, true);
  loop.set([0x55, 0xaa], ebr + 510);
  const t = await readPartitionTable(readerOf(loop), loop.length);
  assert.deepEqual(t?.partitions.map((p) => p.number), [1, 5]);

  const gpt = await parted('gpt-bad.img', 8, ['mklabel', 'gpt', 'mkpart', 'x', '1MiB', '7MiB']);
  new DataView(gpt.buffer).setUint32(512 + 84, 7, true);
  await assert.rejects(readPartitionTable(readerOf(gpt), gpt.length), /GPT header at LBA 1: 128 entries of 7 bytes, expected entries of 128\.\.4096 bytes/);
});

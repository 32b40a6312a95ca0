// Filesystem detection and labels. Real filesystems where Debian's tools are installed here
// (mkfs.fat, mkfs.ext4, mkswap); the others (exFAT, NTFS, XFS, Btrfs, ISO 9660) are crafted
// byte by byte from their on-disk specifications, with the field offsets named at each write.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.ts';
import { runOk } from '../helpers/qemu.ts';
import { detectFilesystem } from '../../src/index.ts';
import { readerOf, fileBytes } from './helpers.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-inspect-');
});
after(() => tmp?.cleanup());

async function made(name: string, sizeKiB: number, program: string, args: string[]): Promise<Uint8Array> {
  const path = join(tmp.dir, name);
  await runOk('truncate', ['-s', `${sizeKiB}K`, path]);
  await runOk(program, [...args, path]);
  return fileBytes(path);
}

for (const [bits, sizeKiB, expected] of [['12', 2048, 'FAT12'], ['16', 32768, 'FAT16'], ['32', 65536, 'FAT32']] as const) {
  test(`mkfs.fat -F ${bits}: ${expected} with its label and serial`, async () => {
    const disk = await made(`fat${bits}.img`, sizeKiB, 'mkfs.fat', ['-F', bits, '-n', `LBL${bits}`, '-i', '1234abcd']);
    const fs = await detectFilesystem(readerOf(disk), 0, disk.length);
    assert.deepEqual(fs, { type: `fat${bits}`, name: expected, label: `LBL${bits}`, uuid: '1234-ABCD' });
  });
}

test('mkfs.fat without a label: no label (not "NO NAME")', async () => {
  const disk = await made('fat-nolabel.img', 2048, 'mkfs.fat', ['-F', '12']);
  assert.equal((await detectFilesystem(readerOf(disk), 0, disk.length))?.label, null);
});

for (const kind of ['ext2', 'ext3', 'ext4'] as const) {
  test(`mkfs.ext4 -t ${kind}: ${kind} with its label and UUID`, async () => {
    const uuid = '0b2c7f4e-8a1d-4c3b-9e5f-6a7b8c9d0e1f';
    const disk = await made(`${kind}.img`, 16384, 'mkfs.ext4', ['-q', '-F', '-t', kind, '-L', `root-${kind}`, '-U', uuid]);
    assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length), { type: kind, name: kind, label: `root-${kind}`, uuid });
  });
}

test('mkswap: Linux swap with its label and UUID', async () => {
  const uuid = '11111111-2222-3333-4444-555555555555';
  const disk = await made('swap.img', 4096, 'mkswap', ['-L', 'myswap', '-U', uuid]);
  assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length), { type: 'swap', name: 'Linux swap', label: 'myswap', uuid });
});

test('a filesystem at an offset (a partition) is found there, and nothing is found on zeros', async () => {
  const fat = await made('fat-at.img', 2048, 'mkfs.fat', ['-F', '12', '-n', 'OFFSET']);
  const disk = new Uint8Array(3 << 20);
  disk.set(fat, 1 << 20);
  assert.equal((await detectFilesystem(readerOf(disk), 1 << 20, fat.length))?.label, 'OFFSET');
  assert.equal(await detectFilesystem(readerOf(new Uint8Array(1 << 20)), 0, 1 << 20), null);
});

const enc = (s: string) => new TextEncoder().encode(s);
function utf16(s: string): Uint8Array {
  const out = new Uint8Array(2 * s.length);
  for (let i = 0; i < s.length; i++) new DataView(out.buffer).setUint16(2 * i, s.charCodeAt(i), true);
  return out;
}

test('exFAT (crafted per the Microsoft exFAT spec): label from the root directory entry 0x83', async () => {
  const disk = new Uint8Array(1 << 20);
  const dv = new DataView(disk.buffer);
  disk.set([0xeb, 0x76, 0x90], 0);
  disk.set(enc('EXFAT   '), 3); // FileSystemName at 3
  dv.setUint32(88, 64, true); // ClusterHeapOffset (sectors) at 88
  dv.setUint32(96, 5, true); // FirstClusterOfRootDirectory at 96
  dv.setUint32(100, 0xcafe1234, true); // VolumeSerialNumber at 100
  disk[108] = 9; // BytesPerSectorShift at 108: 512-byte sectors
  disk[109] = 3; // SectorsPerClusterShift at 109: 4 KiB clusters
  disk[510] = 0x55;
  disk[511] = 0xaa;
  const root = 64 * 512 + (5 - 2) * 4096;
  disk[root] = 0x81; // allocation bitmap entry first, as mkfs.exfat writes
  disk[root + 32] = 0x83; // volume label entry: EntryType 0x83, CharacterCount at 1, VolumeLabel (UTF-16LE) at 2
  disk[root + 33] = 7;
  disk.set(utf16('Photos\u00e9'), root + 34);
  assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length), { type: 'exfat', name: 'exFAT', label: 'Photos\u00e9', uuid: 'CAFE-1234' });
});

test('NTFS (crafted per the NTFS layout): label from $Volume (MFT record 3) attribute 0x60, with the update sequence fixup', async () => {
  const disk = new Uint8Array(1 << 20);
  const dv = new DataView(disk.buffer);
  disk.set([0xeb, 0x52, 0x90], 0);
  disk.set(enc('NTFS    '), 3); // OEM ID at 3
  dv.setUint16(11, 512, true); // bytes per sector at 11
  disk[13] = 8; // sectors per cluster at 13: 4 KiB clusters
  dv.setUint32(48, 4, true); // $MFT cluster number (u64) at 48
  disk[64] = 0xf6; // clusters per MFT record at 64: -10 → 2^10 = 1024-byte records
  dv.setUint32(72, 0x89abcdef, true); // volume serial (u64) at 72
  disk[510] = 0x55;
  disk[511] = 0xaa;
  const rec = 4 * 4096 + 3 * 1024;
  disk.set(enc('FILE'), rec);
  dv.setUint16(rec + 4, 48, true); // update sequence array offset
  dv.setUint16(rec + 6, 3, true); // USA count: the number + one word per 512-byte sector
  dv.setUint16(rec + 20, 56, true); // first attribute offset
  // The label attribute: type 0x60, length 40, resident, value length 10 at +16, value offset 24 at +20.
  const attr = rec + 56;
  dv.setUint32(attr, 0x60, true);
  dv.setUint32(attr + 4, 40, true);
  disk[attr + 8] = 0;
  dv.setUint32(attr + 16, 10, true);
  dv.setUint16(attr + 20, 24, true);
  disk.set(utf16('WinXP'), attr + 24);
  dv.setUint32(attr + 40, 0xffffffff, true); // end marker
  // Fixup: sector ends hold the update sequence number; the real bytes live in the array.
  dv.setUint16(rec + 48, 0x0007, true);
  dv.setUint16(rec + 50, dv.getUint16(rec + 510, true), true);
  dv.setUint16(rec + 52, dv.getUint16(rec + 1022, true), true);
  dv.setUint16(rec + 510, 0x0007, true);
  dv.setUint16(rec + 1022, 0x0007, true);
  assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length), { type: 'ntfs', name: 'NTFS', label: 'WinXP', uuid: '0000000089ABCDEF' });
});

test('XFS (crafted per xfs_sb): magic XFSB, uuid at 32, label sb_fname at 108', async () => {
  const disk = new Uint8Array(64 << 10);
  disk.set(enc('XFSB'), 0);
  disk.set(Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i), 32);
  disk.set(enc('xfsdata'), 108);
  assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length),
    { type: 'xfs', name: 'XFS', label: 'xfsdata', uuid: 'a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf' });
});

test('Btrfs (crafted per btrfs_super_block at 64 KiB): magic at +64, fsid at +32, label at +299', async () => {
  const disk = new Uint8Array(128 << 10);
  const sb = 0x10000;
  disk.set(enc('_BHRfS_M'), sb + 64);
  disk.set(Uint8Array.from({ length: 16 }, (_, i) => i), sb + 32);
  disk.set(enc('pool'), sb + 299);
  assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length),
    { type: 'btrfs', name: 'Btrfs', label: 'pool', uuid: '00010203-0405-0607-0809-0a0b0c0d0e0f' });
});

test('ISO 9660 (crafted per ECMA-119): primary volume descriptor at sector 16, volume identifier at 40', async () => {
  const disk = new Uint8Array(20 * 2048);
  const pvd = 16 * 2048;
  disk[pvd] = 1; // type 1: primary
  disk.set(enc('CD001'), pvd + 1);
  disk[pvd + 6] = 1;
  disk.set(enc('DEBIAN_12_AMD64'.padEnd(32, ' ')), pvd + 40);
  disk[pvd + 2048] = 255; // set terminator
  disk.set(enc('CD001'), pvd + 2049);
  assert.deepEqual(await detectFilesystem(readerOf(disk), 0, disk.length), { type: 'iso9660', name: 'ISO 9660', label: 'DEBIAN_12_AMD64', uuid: null });
});

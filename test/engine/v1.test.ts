// v1 images ("WithoutFreeSpace": BAT entries in 512-byte sectors). qemu-img 7.2 creates v2 only, so
// the fixture is a qemu image with its magic patched (docs/format.md, 'Signature and version');
// qemu-io writes it, we read it, we write more, qemu judges the result. Plus a hand-built v1 image
// whose data_off is 0, so that data starts right after the BAT, sector aligned but not cluster
// aligned.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { MemoryStore, PloopImage } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw, qemuCheck, describeCheck } from '../helpers/qemu.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { openFile, readWhole } from '../helpers/images.ts';
import { runWorkload } from '../helpers/workload.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { ascii, batEntry, expectedImageEnd, headerFields, pokeFile, readU32, OFF, SIGNATURE_V1 } from '../helpers/image-file.ts';
import '../helpers/source-workers.ts';

test('a qemu image patched to the v1 magic and written by qemu-io has sector-unit BAT entries and reads like qemu-img convert', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'v1.hds');
    const c = 64 << 10;
    await qemuCreate(path, '8M', '64k');
    await pokeFile(path, OFF.magic, ascii(SIGNATURE_V1));
    await qemuIo(path, [ioWrite(0x31, 5, 100), ioWrite(0x32, 1 << 20, 4096), ioWrite(0x33, 3 * c - 17, c + 34), ioWrite(0x34, (8 << 20) - 1, 1)]);
    const bytes = new Uint8Array(await readFile(path));
    assert.equal(headerFields(bytes).magic, SIGNATURE_V1);
    // First allocation at data_off (128 sectors = 65536 bytes), second one cluster later: in sectors.
    assert.equal(batEntry(bytes, 0), 128);
    assert.equal(batEntry(bytes, 16), 256);
    const raw = await qemuConvertToRaw(path, join(dir, 'v1.raw'));
    const image = await openFile(path);
    try {
      assert.equal(image.geometry.format, 'v1');
      assert.equal(image.geometry.unitBytes, 512);
      assertBytesEqual(await readWhole(image), raw, 'our read vs qemu-img convert');
    } finally {
      await image.close();
    }
  });
});

test('after our writes and discards to a qemu-written v1 image, qemu-img check is clean and qemu-img convert equals the model', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'v1.hds');
    await qemuCreate(path, '6M', '64k');
    await pokeFile(path, OFF.magic, ascii(SIGNATURE_V1));
    await qemuIo(path, [ioWrite(0x41, 1000, 200000), ioWrite(0x42, 3 << 20, 65536 * 3 + 1)]);
    const model = new DiskModel(await qemuConvertToRaw(path, join(dir, 'before.raw')));

    const image = await openFile(path, { writable: true });
    const r = await runWorkload(image, new Prng(0x7e510001), 600, async () => readU32(path, OFF.inUse), model);
    assert.ok(r.sawInUseWhileOpen, 'in-use flag set while open');
    assertBytesEqual(await readWhole(image), model.bytes, 'our read before close');
    await image.close();

    const bytes = new Uint8Array(await readFile(path));
    const h = headerFields(bytes);
    assert.equal(h.magic, SIGNATURE_V1, 'still a v1 image');
    assert.equal(h.inUse, 0);
    for (let i = 0; i < h.batEntries; i++) {
      const v = batEntry(bytes, i);
      assert.equal(v % h.tracks, 0, `BAT[${i}] = ${v} sectors is a whole cluster from the file start`);
    }
    assert.equal(bytes.length, expectedImageEnd(bytes));
    await assertQemuAgrees(path, model.bytes, 'v1 after our workload', { ploop: false }); // qemu-img made the file
    // qemu-io reads back what we wrote, too.
    const off = 3 << 20;
    const probe = model.bytes[off];
    await qemuIo(path, [`read -P 0x${probe.toString(16)} ${off} 1`], { readOnly: true });
  });
});

/** A v1 image built byte by byte: 4 KiB clusters, 20 entries, data_off 0, a partial last cluster. */
function handBuiltV1(rng: Prng) {
  const cluster = 4096;
  const tracks = 8;
  const batEntries = 20;
  const nbSectors = 156; // 79872 bytes: the last cluster is half inside the disk
  const dataStart = 512; // 64 + 80 bytes of header and BAT, rounded up to a sector
  const mapping: Array<[number, number]> = [[0, 0], [3, 2], [19, 1], [7, 3]]; // [virtual cluster, slot]
  const file = new Uint8Array(dataStart + 4 * cluster);
  const dv = new DataView(file.buffer);
  file.set(ascii(SIGNATURE_V1), 0);
  dv.setUint32(16, 2, true); // version
  dv.setUint32(20, 16, true); // heads
  dv.setUint32(24, 0, true); // cylinders: 156 / 16 / 32 = 0
  dv.setUint32(28, tracks, true);
  dv.setUint32(32, batEntries, true);
  dv.setUint32(36, nbSectors, true);
  dv.setUint32(40, 0, true); // v1: high word unused
  dv.setUint32(44, 0, true); // in use
  dv.setUint32(48, 0, true); // data_off 0: data right after the BAT
  dv.setUint32(52, 0, true); // flags
  const expected = new Uint8Array(nbSectors * 512);
  for (const [virt, slot] of mapping) {
    const host = dataStart + slot * cluster;
    dv.setUint32(64 + 4 * virt, host / 512, true); // sectors from the file start
    const data = rng.bytes(cluster);
    file.set(data, host);
    const visible = Math.min(cluster, expected.length - virt * cluster);
    expected.set(data.subarray(0, visible), virt * cluster);
  }
  return { file, expected, cluster, dataStart };
}

test('a hand-built v1 image with data_off 0 (data right after the BAT, sector aligned) reads as built, on both stores and in qemu', async () => {
  await withTempDir(async (dir) => {
    const { file, expected } = handBuiltV1(new Prng(0x1b1));
    assert.equal(batEntry(file, 0), 1, 'BAT[0] is sector 1');
    const fromMemory = await PloopImage.open(new MemoryStore(file.slice(), { writable: false }));
    try {
      assert.equal(fromMemory.size, expected.length);
      assert.equal(fromMemory.geometry.firstSlotByte, 512);
      assertBytesEqual(await readWhole(fromMemory), expected, 'MemoryStore read');
      // Reads that cross from a mapped cluster into a hole and into the partial last cluster.
      assertBytesEqual(await fromMemory.read(4096 * 3 - 10, 4096 + 20), expected.subarray(4096 * 3 - 10, 4096 * 4 + 10), 'read across 2|3|4');
      assertBytesEqual(await fromMemory.read(expected.length - 2100, 2100), expected.subarray(expected.length - 2100), 'read to the end');
    } finally {
      await fromMemory.close();
    }
    const path = join(dir, 'hand.hds');
    await writeFile(path, file);
    const fromFile = await openFile(path);
    try {
      assertBytesEqual(await readWhole(fromFile), expected, 'NodeFileStore read');
    } finally {
      await fromFile.close();
    }
    await assertQemuAgrees(path, expected, 'hand-built v1');
  });
});

test('writing a hand-built v1 image with data_off 0 allocates sector-addressed clusters after the last one and keeps data_off 0', async () => {
  await withTempDir(async (dir) => {
    const { file, expected, cluster, dataStart } = handBuiltV1(new Prng(0x1b2));
    const path = join(dir, 'hand.hds');
    await writeFile(path, file);
    const model = new DiskModel(expected);
    const image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true });
    const payload = new Prng(5).bytes(300);
    await image.write(5 * cluster + 4000, payload); // crosses into cluster 6
    model.write(5 * cluster + 4000, payload);
    await image.write(0, payload.subarray(0, 10)); // overwrite in place
    model.write(0, payload.subarray(0, 10));
    assertBytesEqual(await readWhole(image), model.bytes, 'our read before close');
    await image.close();
    const bytes = new Uint8Array(await readFile(path));
    assert.equal(headerFields(bytes).dataOff, 0, 'data_off stays 0');
    assert.equal(batEntry(bytes, 0), 1, 'the in-place overwrite kept BAT[0]');
    assert.deepEqual([batEntry(bytes, 5), batEntry(bytes, 6)].sort((a, b) => a - b),
      [(dataStart + 4 * cluster) / 512, (dataStart + 5 * cluster) / 512], 'new clusters follow slot 3, in sectors');
    assert.equal(bytes.length, dataStart + 6 * cluster);
    const check = await qemuCheck(path);
    assert.ok(check.clean, describeCheck(check));
    assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'hand.raw')), model.bytes, 'qemu-img convert');
  });
});

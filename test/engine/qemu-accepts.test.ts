// What QEMU accepts, we accept and read the way it does (issue #19, items 2 and 6, re-enacting
// QEMU's parallels iotests 076, 131 and parallels-checks): a file cut inside its last cluster,
// v1 images whose data area is rounded to a sector (or data_off 0 with data further on), an
// invalid in-use value, and an image left in use. qemu-img 7.2 is the oracle for every byte.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, stat, truncate, writeFile } from 'node:fs/promises';
import '../helpers/source-workers.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuCheck, qemuConvertToRaw, describeCheck } from '../helpers/qemu.ts';
import { openFile, readWhole, checkFile } from '../helpers/images.ts';
import { cli, describeCli } from '../helpers/cli.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { OFF, INUSE_MAGIC, pokeU32, readU32 } from '../helpers/image-file.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Our read-only read of the whole disk, with the warnings the open gave. */
async function ourRead(path: string): Promise<{ bytes: Uint8Array; warnings: string[] }> {
  const warnings: string[] = [];
  const image = await openFile(path, { onWarning: (m) => warnings.push(m) });
  try {
    return { bytes: await readWhole(image), warnings };
  } finally {
    await image.close();
  }
}

/** Write with our engine, then the file must read back as `expected` in qemu-img too. */
async function ourWrite(path: string, offset: number, data: Uint8Array): Promise<void> {
  const image = await openFile(path, { writable: true });
  try {
    await image.write(offset, data);
  } finally {
    await image.close();
  }
}

test('a copy cut inside its last cluster reads as qemu-img reads it (its bytes, then zeros), check calls it harmless, and repair extends the file keeping every byte', async () => {
  await withTempDir(async (dir) => {
    const full = join(dir, 'full.hds');
    await qemuCreate(full, '4M', '1M');
    await qemuIo(full, [ioWrite(0x11, 0, MiB), ioWrite(0x22, 2 * MiB + 100, 700 * KiB)]);
    const path = join(dir, 'cut.hds');
    await writeFile(path, (await readFile(full)).subarray(0, 1_500_000 + 2 * MiB - 1 * MiB)); // inside cluster 2's slot (bytes 2 MiB..3 MiB)
    const qemuRaw = await qemuConvertToRaw(path, join(dir, 'q.raw'));
    assert.ok(qemuRaw.subarray(2 * MiB + 100, 2 * MiB + 1000).every((b) => b === 0x22), 'qemu reads the bytes that are there');
    assert.ok(qemuRaw.subarray(3 * MiB - 10, 3 * MiB).every((b) => b === 0), 'and zeros past the end of the file');
    const qemu = await qemuCheck(path);
    assert.ok(qemu.clean, `qemu-img calls the cut copy clean: ${describeCheck(qemu)}`);

    const { bytes, warnings } = await ourRead(path);
    assertBytesEqual(bytes, qemuRaw, 'our read of the cut copy vs qemu-img convert');
    assert.deepEqual(warnings, []);
    const report = await checkFile(path);
    assert.equal(report.clean, true, JSON.stringify(report.findings));
    assert.deepEqual(report.findings.map((f) => [f.kind, f.severity]), [['short-file', 'warning']]);
    assert.match(report.findings[0].message, /the file ends 597152 bytes before the end of its last used cluster \(byte 3145728\).*check --repair extends it with zeros/);

    const repaired = await checkFile(path, true);
    assert.equal(repaired.clean, true);
    assert.equal((await stat(path)).size, 3 * MiB, 'the file reaches the end of its last cluster');
    assertBytesEqual((await ourRead(path)).bytes, qemuRaw, 'the same bytes after the repair');
    assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'q2.raw')), qemuRaw, 'qemu-img reads the same after the repair');
    await assertToolsAccept(path, 'the repaired copy');
    assert.deepEqual((await checkFile(path)).findings, []);
  });
});

/**
 * A v1 image as QEMU's format description allows it: 64 MiB, 64 KiB clusters, 1024 entries in
 * sectors, data_off `dataOffSectors` (not a whole cluster), and guest clusters at the given sectors.
 */
async function v1Image(path: string, dataOffSectors: number, clusters: Array<[number, number]>, magic = 'WithoutFreeSpace'): Promise<Uint8Array> {
  const cluster = 64 * KiB;
  const end = Math.max(...clusters.map(([, sector]) => sector * 512 + cluster));
  const file = new Uint8Array(end);
  const view = new DataView(file.buffer);
  file.set(new TextEncoder().encode(magic), 0);
  view.setUint32(OFF.version, 2, true);
  view.setUint32(OFF.heads, 16, true);
  view.setUint32(OFF.cylinders, 256, true);
  view.setUint32(OFF.tracks, 128, true);
  view.setUint32(OFF.batEntries, 1024, true);
  view.setUint32(OFF.nbSectors, 131072, true);
  view.setUint32(OFF.dataOff, dataOffSectors, true);
  const rng = new Prng(dataOffSectors + 1);
  for (const [guest, sector] of clusters) {
    view.setUint32(OFF.bat + 4 * guest, sector, true);
    file.set(rng.bytes(cluster), sector * 512);
  }
  await writeFile(path, file);
  return file;
}

for (const [label, dataOff, clusters, magic] of [
  ['data_off 9 sectors, guest clusters 0 and 3 at sectors 9 and 137', 9, [[0, 9], [3, 137]], 'WithoutFreeSpace'],
  ['data_off 0 with the old magic and data from byte 65536', 0, [[0, 128], [5, 256]], 'WithoutFreeSpace'],
] as const) {
  test(`a v1 image with ${label}: read, check, write and convert agree with qemu-img`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'v1.hds');
      await v1Image(path, dataOff, clusters.map(([g, s]) => [g, s]), magic);
      const qemuRaw = await qemuConvertToRaw(path, join(dir, 'q.raw'));
      assert.ok(qemuRaw.subarray(0, 64 * KiB).some((b) => b !== 0), 'qemu reads guest cluster 0');
      const qemu = await qemuCheck(path);
      assert.ok(qemu.clean, describeCheck(qemu));

      const { bytes, warnings } = await ourRead(path);
      assertBytesEqual(bytes, qemuRaw, 'our read vs qemu-img convert');
      assert.deepEqual(warnings, []);
      const report = await checkFile(path);
      assert.equal(report.clean, true, JSON.stringify(report.findings));
      assert.deepEqual(report.findings, []);
      assert.equal(report.allocatedClusters, 2);

      const converted = join(dir, 'ours.raw');
      const r = await cli(['convert', path, converted, '--to', 'raw']);
      assert.equal(r.code, 0, describeCli(['convert'], r));
      assertBytesEqual(new Uint8Array(await readFile(converted)), qemuRaw, 'our convert vs qemu-img convert');

      // A write into a new cluster and one over guest cluster 0: qemu-img reads both back.
      const model = new DiskModel(qemuRaw);
      const data = new Prng(5).bytes(70 * KiB);
      await ourWrite(path, 20 * 64 * KiB - 3 * KiB, data);
      model.write(20 * 64 * KiB - 3 * KiB, data);
      await ourWrite(path, 100, data.subarray(0, 1000));
      model.write(100, data.subarray(0, 1000));
      assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'q2.raw')), model.bytes, 'qemu-img reads our writes');
      const after = await qemuCheck(path);
      assert.ok(after.clean, describeCheck(after));
      assert.equal((await checkFile(path)).clean, true);
      // And check --repair changes nothing in an image that QEMU calls clean.
      const before = await readFile(path);
      await checkFile(path, true);
      assertBytesEqual(new Uint8Array(await readFile(path)), new Uint8Array(before), 'repair leaves the image alone');
    });
  });
}

/** A 4 MiB image with 1 MiB clusters made by our CLI and engine (the ploop tools refuse qemu-img's partly written clusters: unaligned unwritten extents). */
async function ourImage(path: string, writes: Array<[number, number]>): Promise<void> {
  const r = await cli(['create', path, '--size', '4M', '--cluster-size', '1M']);
  assert.equal(r.code, 0, describeCli(['create'], r));
  for (const [offset, length] of writes) await ourWrite(path, offset, new Prng(offset + length).bytes(length));
}

test('an invalid in-use value (0x12345678): QEMU reads the image as closed; check reports it, repair clears it, and both tools then accept the image', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'u.hds');
    await ourImage(path, [[MiB, 4096]]);
    const raw = await qemuConvertToRaw(path, join(dir, 'q.raw'));
    await pokeU32(path, OFF.inUse, 0x12345678);
    assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'q2.raw')), raw, 'qemu-img reads it');
    assertBytesEqual((await ourRead(path)).bytes, raw, 'so do we');

    const report = await checkFile(path);
    assert.equal(report.clean, false);
    assert.deepEqual(report.findings.map((f) => f.kind), ['unclean']);
    assert.match(report.findings[0].message, /0x12345678/);
    const repaired = await checkFile(path, true);
    assert.equal(repaired.clean, true, JSON.stringify(repaired.findings));
    assert.equal(await readU32(path, OFF.inUse), 0);
    assert.deepEqual((await checkFile(path)).findings, []);
    await assertToolsAccept(path, 'after repairing the in-use value');
  });
});

test('an image left in use: a writer checks it first, opens it with a warning when it is sound, and closes it clean (trimmed, flag cleared); a damaged one is refused', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'crashed.hds');
    await ourImage(path, [[0, MiB]]);
    const raw = await qemuConvertToRaw(path, join(dir, 'q.raw'));
    // A crash after an allocation grew the file and before the BAT named the new cluster.
    await truncate(path, 3 * MiB);
    await pokeU32(path, OFF.inUse, INUSE_MAGIC);

    const warnings: string[] = [];
    const image = await openFile(path, { writable: true, onWarning: (m) => warnings.push(m) });
    const data = new Prng(9).bytes(5000);
    try {
      await image.write(3 * MiB, data);
    } finally {
      await image.close();
    }
    raw.set(data, 3 * MiB);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], /not closed cleanly/);
    assert.equal(await readU32(path, OFF.inUse), 0, 'the flag is cleared on close');
    assert.equal((await stat(path)).size, 3 * MiB, 'the leaked cluster was reused: the file ends at its last used cluster');
    assert.deepEqual((await checkFile(path)).findings, []);
    assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'q2.raw')), raw, 'qemu-img reads it');
    await assertToolsAccept(path, 'after a writer closed the crashed image');

    // In use and damaged (an entry past the end of the file): no writer until a repair.
    await pokeU32(path, OFF.inUse, INUSE_MAGIC);
    await pokeU32(path, OFF.bat + 4 * 2, 9);
    await assert.rejects(openFile(path, { writable: true }), /not closed cleanly and is damaged: .*entry 2.*run check --repair/);
    assert.equal(await readU32(path, OFF.inUse), INUSE_MAGIC, 'the refused open left the flag alone');
  });
});

// The format extension cluster's magic and MD5 (docs/format.md, 'Format extension'), judged by
// qemu-img 7.2, which refuses an image whose extension checksum is wrong (issue #19, item 6).
// The extensions here are built with node:crypto's MD5, not with ours.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { PloopError } from '../../src/index.ts';
import { md5 } from '../../src/format/md5.ts';
import '../helpers/source-workers.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw, qemuCheck, run, describeCheck } from '../helpers/qemu.ts';
import { openFile, readWhole, checkFile } from '../helpers/images.ts';
import { assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { OFF, readU32 } from '../helpers/image-file.ts';

const CLUSTER = 4096;
const CLOSED_V21 = 0x312e3276;

/** A qemu-made image (8 MiB, 4 KiB clusters, clusters 0 and 5 written) with an extension cluster appended and named by ext_off. */
async function imageWithExtension(dir: string, damage: boolean): Promise<{ path: string; raw: Uint8Array; extByte: number }> {
  const path = join(dir, damage ? 'bad.hds' : 'good.hds');
  await qemuCreate(path, '8M', CLUSTER);
  await qemuIo(path, [ioWrite(0x5a, 0, CLUSTER), ioWrite(0x6b, 5 * CLUSTER + 100, 300)]);
  const raw = await qemuConvertToRaw(path, join(dir, 'before.raw'));
  const bytes = new Uint8Array(await readFile(path));
  const ext = new Uint8Array(CLUSTER);
  const view = new DataView(ext.buffer);
  view.setBigUint64(0, 0xab234cef23dcea87n, true);
  view.setBigUint64(24, 0n, true); // feature magic 0: the end of the feature list
  ext.set(createHash('md5').update(ext.subarray(24)).digest(), 8);
  if (damage) ext[40] = 1; // after the checksum was taken
  const file = new Uint8Array(bytes.length + CLUSTER);
  file.set(bytes);
  file.set(ext, bytes.length);
  const header = new DataView(file.buffer);
  header.setUint32(OFF.extOff, bytes.length / 512, true);
  header.setUint32(OFF.inUse, CLOSED_V21, true);
  await writeFile(path, file);
  return { path, raw, extByte: bytes.length };
}

test('our MD5 equals node:crypto\'s on lengths around the 64-byte block and on a whole cluster', () => {
  const rng = new Prng(19);
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 4072, 65536 - 24]) {
    const data = rng.bytes(n);
    assert.deepEqual(md5(data), new Uint8Array(createHash('md5').update(data).digest()), `length ${n}`);
  }
});

test('an extension with the right magic and MD5: qemu-img opens it, and so do we for writing; the cluster is kept and never handed out', async () => {
  await withTempDir(async (dir) => {
    const { path, raw, extByte } = await imageWithExtension(dir, false);
    assert.equal((await run('qemu-img', ['info', '-f', 'parallels', path])).code, 0, 'qemu-img opens it');
    const extBefore = (await readFile(path)).subarray(extByte, extByte + CLUSTER);
    const image = await openFile(path, { writable: true });
    const data = new Prng(7).bytes(CLUSTER);
    await image.write(9 * CLUSTER, data);
    await image.close();
    raw.set(data, 9 * CLUSTER);
    const after = await readFile(path);
    assertBytesEqual(after.subarray(extByte, extByte + CLUSTER), extBefore, 'the extension cluster is untouched');
    assert.equal(await readU32(path, OFF.extOff), extByte / 512);
    assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'after.raw')), raw, 'qemu-img reads what we wrote');
    assert.equal((await checkFile(path)).clean, true);
  });
});

test('an extension with a wrong MD5: qemu-img refuses it; we refuse a writer, read it with a warning, check reports it, and repair drops the extension keeping every data byte', async () => {
  await withTempDir(async (dir) => {
    const { path, raw, extByte } = await imageWithExtension(dir, true);
    const qemu = await run('qemu-img', ['info', '-f', 'parallels', path]);
    assert.notEqual(qemu.code, 0);
    assert.match(qemu.stderr, /Wrong checksum in Format Extension header/);

    await assert.rejects(openFile(path, { writable: true }), (e: unknown) => {
      assert.ok(e instanceof PloopError);
      assert.equal(e.code, 'ECORRUPT');
      assert.match(e.message, new RegExp(`format extension at byte ${extByte}: its MD5 is [0-9a-f]{32}, but .* hash to [0-9a-f]{32}`));
      return true;
    });
    const warnings: string[] = [];
    const image = await openFile(path, { onWarning: (m) => warnings.push(m) });
    try {
      assertBytesEqual(await readWhole(image), raw, 'the data reads as written');
    } finally {
      await image.close();
    }
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /format extension .* MD5/);

    const report = await checkFile(path);
    assert.equal(report.clean, false);
    assert.deepEqual(report.findings.map((f) => f.kind), ['ext-checksum']);
    assert.match(report.findings[0].message, /QEMU refuses to open the image; the repair drops the extension/);

    const repaired = await checkFile(path, true);
    assert.equal(repaired.clean, true, JSON.stringify(repaired.findings));
    assert.equal(await readU32(path, OFF.extOff), 0, 'ext_off cleared');
    assert.equal(await readU32(path, OFF.inUse), 0, 'inuse no longer says v2.1');
    const after = await qemuCheck(path);
    assert.ok(after.clean, describeCheck(after));
    assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'after.raw')), raw, 'qemu-img opens the repaired image and reads the same data');
    assert.equal((await checkFile(path)).clean, true);
  });
});

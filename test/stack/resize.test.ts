// Resize (docs/format.md, 'Resize'; ploop's grow relocates the same way): growing so that the
// BAT needs more clusters relocates the data clusters in the way, then switches the header;
// v1 grows too; shrinking refuses to drop data unless forced; a disk folder's resize updates
// DiskDescriptor.xml and the grown stack still merges; and the CLI's resize command.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { open, readFile, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import {
  createImage, PloopImage, PloopError, resizeImage, initStack, openStackDir, snapshotStack, resizeStack, mergeAll, readDescriptor,
} from '../../src/index.ts';
import { NodeFileStore, NodeDirectory } from '../../src/node.ts';
import { LEVEL_NONE } from '../../src/core/bat-map.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw, qemuCheck, describeCheck } from '../helpers/qemu.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { DiskModel, assertBytesEqual, assertAllZero } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { readFileImage, openFile, readWhole } from '../helpers/images.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { headerFields, batEntry, expectedImageEnd, pokeFile, pokeU32, OFF, SIGNATURE_V1 } from '../helpers/image-file.ts';
import { assertPloopListsChain, assertQemuChainEquals, chainPaths, fileHash, qemuConvertChain, readStack } from '../helpers/stack.ts';
import { cli, describeCli } from '../helpers/cli.ts';
import '../helpers/source-workers.ts';

const K4 = 4096;

async function resizeFile(path: string, size: number, options: { force?: boolean } = {}) {
  const store = await NodeFileStore.open(path, { writable: true });
  try {
    return await resizeImage(store, size, options);
  } finally {
    await store.close();
  }
}

/** Write `pieces` of a disk of `size` bytes into a sparse raw file (zeros elsewhere). */
async function writeSparseRaw(path: string, size: number, pieces: Array<[number, Uint8Array]>): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (const [offset, data] of pieces) await fh.write(data, 0, data.length, offset);
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
}

test('growing a qemu-made image whose first data clusters sit right after the BAT relocates them, updates the header and keeps qemu-img check clean (scenario 18)', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'a.hds');
    // 3 MiB of 4 KiB clusters: 768 entries, the BAT fits one cluster, data_off = 8 sectors.
    await qemuCreate(path, '3M', '4k');
    await qemuIo(path, [ioWrite(0x11, 0, K4), ioWrite(0x22, 2 * K4 + 100, 3000), ioWrite(0x33, 500 * K4, 2 * K4), ioWrite(0x44, (3 << 20) - 10, 10)]);
    const before = new Uint8Array(await readFile(path));
    const h0 = headerFields(before);
    assert.deepEqual([h0.batEntries, h0.dataOff, batEntry(before, 0), batEntry(before, 2)], [768, 8, 1, 2], 'the fixture: clusters 0 and 2 in slots 1 and 2, right after the BAT');
    const model = new DiskModel(8 << 20);
    model.write(0, await qemuConvertToRaw(path, join(dir, 'before.raw')));

    const r = await resizeFile(path, 8 << 20);
    // 2048 entries need 64 + 8192 bytes of BAT: three clusters, so slots at 4096 and 8192 move.
    assert.deepEqual(r, { oldSize: 3 << 20, newSize: 8 << 20, clustersRelocated: 2, clustersDropped: 0 });
    const after = new Uint8Array(await readFile(path));
    const h = headerFields(after);
    assert.deepEqual({ batEntries: h.batEntries, nbSectors: h.nbSectors, dataOff: h.dataOff, inUse: h.inUse, cylinders: h.cylinders },
      { batEntries: 2048, nbSectors: 16384, dataOff: 24, inUse: 0, cylinders: 32 });
    for (let i = 0; i < 2048; i++) {
      const v = batEntry(after, i);
      if (v !== 0) assert.ok(v >= 3, `BAT[${i}] = ${v} points into the new BAT area`);
    }
    for (let i = 768; i < 2048; i++) assert.equal(batEntry(after, i), 0, `new BAT entry ${i} is zero`);
    // The old data clusters became BAT: zeroed, and nothing of 0x11 / 0x22 is left there.
    assertAllZero(after.subarray(64 + 4 * 768, 24 * 512), 'the old clusters now under the BAT');
    assert.equal(after.length, expectedImageEnd(after), 'the file ends at the last used cluster');
    await assertQemuAgrees(path, model.bytes, 'after the grow');

    // The new area reads zero through our engine and takes writes.
    const image = await openFile(path, { writable: true });
    try {
      assert.equal(image.size, 8 << 20);
      assertBytesEqual(await readWhole(image), model.bytes, 'our read after the grow');
      const tail = new Prng(18).bytes(5000);
      await image.write((8 << 20) - 5000, tail);
      model.write((8 << 20) - 5000, tail);
    } finally {
      await image.close();
    }
    await assertQemuAgrees(path, model.bytes, 'after writing the new area');
  });
});

test('a v1 image (sector-unit BAT) grows with relocation and qemu-img agrees', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'v1.hds');
    const rng = new Prng(0x5e1);
    const store = await NodeFileStore.open(path, { create: true });
    await createImage(store, { size: 3 << 20, clusterSize: K4, format: 'v1' });
    const model = new DiskModel(10 << 20);
    const image = await PloopImage.open(store, { writable: true });
    try {
      for (const [o, n] of [[0, 3 * K4], [700 * K4 + 5, 1000], [(3 << 20) - 1, 1]]) {
        const d = rng.bytes(n);
        await image.write(o, d);
        model.write(o, d);
      }
    } finally {
      await image.close();
    }
    const r = await resizeFile(path, 10 << 20);
    assert.equal(r.clustersRelocated, 2, 'slots 0 and 1 lie under the new BAT (2560 entries: 10304 bytes, three clusters)');
    const bytes = new Uint8Array(await readFile(path));
    const h = headerFields(bytes);
    assert.equal(h.magic, SIGNATURE_V1);
    assert.deepEqual([h.batEntries, h.nbSectors, h.dataOff], [2560, 20480, 24]);
    // v1 entries are sectors: every mapped one is on the cluster grid past data_off.
    for (let i = 0; i < h.batEntries; i++) {
      const v = batEntry(bytes, i);
      if (v !== 0) assert.ok(v >= 24 && v % 8 === 0, `BAT[${i}] = ${v} sectors`);
    }
    await assertQemuAgrees(path, model.bytes, 'v1 after the grow');
    assertBytesEqual(await readFileImage(path), model.bytes, 'our read of the grown v1 image');
  });
});

/** Put a format extension cluster with no features (magic, MD5 of the rest, terminator) at `offset` and name it in ext_off. */
async function addEmptyExtension(path: string, offset: number, clusterBytes: number): Promise<void> {
  const ext = new Uint8Array(clusterBytes);
  const dv = new DataView(ext.buffer);
  dv.setBigUint64(0, 0xab234cef23dcea87n, true);
  ext.set(createHash('md5').update(ext.subarray(24)).digest(), 8);
  await pokeFile(path, offset, ext);
  await pokeU32(path, OFF.extOff, offset / 512);
}

test('growing an image with a format extension where the BAT grows drops the extension (its bitmaps describe the old size) instead of zeroing it under ext_off', async () => {
  await withTempDir(async (dir) => {
    for (const where of ['first slot', 'end of file'] as const) {
      const path = join(dir, `ext-${where.replace(/ /g, '-')}.hds`);
      await qemuCreate(path, '3M', '4k');
      await qemuIo(path, [ioWrite(0x61, 0, 3 * K4), ioWrite(0x62, 600 * K4, K4)]);
      const model = new DiskModel(8 << 20);
      if (where === 'first slot') {
        // Cluster 0 sat in the first slot, right after the BAT: unmap it and put the extension there.
        await pokeU32(path, OFF.bat, 0);
        await addEmptyExtension(path, K4, K4);
        const check = await qemuCheck(path);
        assert.ok(check.clean, `the fixture is clean for qemu-img: ${describeCheck(check)}`);
      } else {
        // Where ploop writes it: after the last data cluster.
        await addEmptyExtension(path, (await stat(path)).size, K4);
      }
      model.write(0, await qemuConvertToRaw(path, join(dir, 'before.raw')));
      await resizeFile(path, 8 << 20);
      const bytes = new Uint8Array(await readFile(path));
      const h = headerFields(bytes);
      assert.deepEqual([h.extOff, h.inUse, h.batEntries, h.dataOff], [0, 0, 2048, 24], `${where}: extension dropped, BAT grown`);
      assert.equal(bytes.length, expectedImageEnd(bytes), `${where}: the dropped extension cluster is not left at the end of the file`);
      await assertQemuAgrees(path, model.bytes, `${where}: after the grow`);
      assertBytesEqual(await readFileImage(path), model.bytes, `${where}: our strict open and read`);
    }
  });
});

test('shrinking refuses with ERANGE while data lies past the new end, and with force drops it and leaves a clean image', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'a.hds');
    const rng = new Prng(0x5e2);
    const store = await NodeFileStore.open(path, { create: true });
    await createImage(store, { size: 8 << 20, clusterSize: K4 });
    const model = new DiskModel(8 << 20);
    const image = await PloopImage.open(store, { writable: true });
    try {
      for (const [o, n] of [[10, 3 * K4], [(4 << 20) - 100, 200], [(7 << 20) + 3, 5000]]) {
        const d = rng.bytes(n);
        await image.write(o, d);
        model.write(o, d);
      }
    } finally {
      await image.close();
    }
    const hash = await fileHash(path);
    await assert.rejects(resizeFile(path, 4 << 20), (e: unknown) => e instanceof PloopError && e.code === 'ERANGE' && /--force/.test(e.message));
    assert.equal(await fileHash(path), hash, 'a refused shrink changes nothing');
    // Shrinking over holes only needs no force.
    const r0 = await resizeFile(path, 7.5 * 2 ** 20);
    assert.equal(r0.clustersDropped, 0);
    await assertQemuAgrees(path, model.bytes.subarray(0, 7.5 * 2 ** 20), 'after shrinking over holes');

    const r = await resizeFile(path, 4 << 20, { force: true });
    assert.equal(r.clustersDropped, 3, 'cluster 1024 (the write across 4 MiB) and the two of the write at 7 MiB + 3');
    const bytes = new Uint8Array(await readFile(path));
    assert.deepEqual([headerFields(bytes).batEntries, headerFields(bytes).nbSectors], [1024, 8192]);
    assert.equal(bytes.length, expectedImageEnd(bytes), 'the dropped clusters were trimmed off the file');
    await assertQemuAgrees(path, model.bytes.subarray(0, 4 << 20), 'after the forced shrink');
  });
});

test('growing back after a shrink to a size inside a cluster reads zeros in the part that grew', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'a.hds');
    const store = await NodeFileStore.open(path, { create: true });
    await createImage(store, { size: 1 << 20, clusterSize: 64 << 10 });
    const image = await PloopImage.open(store, { writable: true });
    const data = new Prng(0x5e3).bytes(1 << 20);
    try {
      await image.write(0, data);
    } finally {
      await image.close();
    }
    // Cut the last cluster in half (no data is dropped: the cluster stays), then grow again.
    const cut = (1 << 20) - 32768 - 512;
    await resizeFile(path, cut);
    await resizeFile(path, 2 << 20);
    const model = new DiskModel(2 << 20);
    model.write(0, data.subarray(0, cut));
    assertBytesEqual(await readFileImage(path), model.bytes, 'our read after shrink and grow');
    await assertQemuAgrees(path, model.bytes, 'qemu after shrink and grow');
  });
});

test('a folder shrunk to a size inside a cluster, then snapshotted and grown, reads zeros past the old end in our engine and in QEMU', async () => {
  await withTempDir(async (path) => {
    const dir = new NodeDirectory(path);
    await initStack(dir, { size: 2 << 20, clusterSize: 32 << 10 });
    const data = new Prng(0x5e5).bytes(2 << 20);
    const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
    try {
      await image.write(0, data);
    } finally {
      await image.close();
    }
    const cut = (2 << 20) - 16384; // inside the last cluster: nothing is dropped whole, no --force needed
    assert.equal((await resizeStack(dir, cut)).clustersDropped, 0);
    await snapshotStack(dir);
    await resizeStack(dir, 4 << 20);
    const model = new DiskModel(4 << 20);
    model.write(0, data.subarray(0, cut));
    assertBytesEqual(await readStack(dir), model.bytes, 'our read of the grown stack');
    assertBytesEqual(await qemuConvertChain(await chainPaths(path, dir), join(path, 'c.raw')), model.bytes, 'QEMU backing chain');
    await assertPloopListsChain(path, dir, 'after shrink, snapshot and grow');
  });
});

test('resizing a disk folder grows the top delta (relocating its first cluster), updates Disk_size for ploop, and the grown stack still merges into root.hds', async () => {
  await withTempDir(async (path) => {
    const rng = new Prng(0x5e4);
    const dir = new NodeDirectory(path);
    const c = 32 << 10;
    await initStack(dir, { size: 4 << 20, clusterSize: c });
    const big = 300 << 20; // 9600 entries: more than one 32 KiB cluster of BAT (8176)
    const pieces: Array<[number, Uint8Array]> = [];
    const write = async (offset: number, n: number) => {
      const d = rng.bytes(n);
      const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
      try {
        await image.write(offset, d);
      } finally {
        await image.close();
      }
      pieces.push([offset, d]);
    };
    await write(0, 3 * c);
    await snapshotStack(dir);
    await write(c + 7, 100); // the top's first cluster sits right after its BAT
    const lower = (await chainPaths(path, dir))[0];
    const lowerHash = await fileHash(lower);

    const r = await resizeStack(dir, big);
    assert.equal(r.clustersRelocated, 1);
    assert.equal(await fileHash(lower), lowerHash, 'only the top delta is resized');
    const d = await readDescriptor(dir);
    assert.equal(d.diskSizeSectors, big / 512, 'Disk_size');
    await assertPloopListsChain(path, dir, 'after resizeStack');
    const top = (await chainPaths(path, dir))[1];
    assert.equal(headerFields(new Uint8Array(await readFile(top))).nbSectors, big / 512);
    await assertToolsAccept(top, 'the resized top');

    await write(big - 1000, 1000); // the new area takes writes
    const image = await openStackDir(dir, { onWarning: () => {} });
    try {
      assert.equal(image.size, big);
      for (const e of image.map(4 << 20, big - (4 << 20) - c)) assert.equal(e.level, LEVEL_NONE, `nothing mapped at ${e.offset} in the grown area`);
      const model = new DiskModel(4 << 20);
      for (const [o, p] of pieces) if (o < 4 << 20) model.write(o, p);
      assertBytesEqual(await image.read(0, 4 << 20), model.bytes, 'the old part of the disk');
    } finally {
      await image.close();
    }
    const raw = join(path, 'model.raw');
    await writeSparseRaw(raw, big, pieces);
    await assertQemuChainEquals(await chainPaths(path, dir), raw, big, 'QEMU chain after the grow');

    // The lower delta is smaller than the top now: merging must still work (ploop grows it).
    assert.equal(await mergeAll(dir), 1);
    const root = join(path, 'root.hds');
    assert.deepEqual(await chainPaths(path, dir), [root]);
    assert.equal(headerFields(new Uint8Array(await readFile(root))).nbSectors, big / 512, 'root.hds grew to the disk size');
    await assertToolsAccept(root, 'root.hds after merging the grown stack');
    await assertQemuChainEquals([root], raw, big, 'root.hds after merging the grown stack');
    await assertPloopListsChain(path, dir, 'after the merge');
    const stack = await openStackDir(dir, { onWarning: () => {} });
    try {
      assertBytesEqual(await stack.read(big - 4096, 4096), (await readFile(raw)).subarray(big - 4096), 'our read of the end of the merged disk');
    } finally {
      await stack.close();
    }
  });
});

test('the CLI resize command grows an image with relocation, refuses a data-dropping shrink, and shrinks with --force', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'a.hds');
    await qemuCreate(path, '3M', '4k');
    await qemuIo(path, [ioWrite(0x51, 0, 8192), ioWrite(0x52, (3 << 20) - 4096, 4096)]);
    const model = new DiskModel(8 << 20);
    model.write(0, await qemuConvertToRaw(path, join(dir, 'a.raw')));
    let args = ['resize', path, '--size', '8M'];
    let r = await cli(args);
    assert.equal(r.code, 0, describeCli(args, r));
    assert.match(r.stdout.toString(), /3 MiB to 8 MiB; 2 clusters relocated, 0 dropped/);
    await assertQemuAgrees(path, model.bytes, 'after CLI grow');

    args = ['resize', path, '--size', '1M'];
    r = await cli(args);
    assert.equal(r.code, 1, describeCli(args, r));
    assert.match(r.stderr, /ERANGE/);
    args = ['resize', path, '--size', '1M', '--force'];
    r = await cli(args);
    assert.equal(r.code, 0, describeCli(args, r));
    assert.match(r.stdout.toString(), /1 dropped/);
    await assertQemuAgrees(path, model.bytes.subarray(0, 1 << 20), 'after CLI forced shrink');
  });
});

test('resize IMG on images we made (32 KiB clusters): a grow that relocates clusters, and a forced shrink that drops every cluster, leave files qemu-img and ploop check accept, CIF_Empty set again', async () => {
  await withTempDir(async (dir) => {
    const C = 32 << 10;
    const ok = async (args: string[], stdin?: Uint8Array) => {
      const r = await cli(args, stdin);
      assert.equal(r.code, 0, describeCli(args, r));
      return r;
    };
    const flags = async (path: string) => headerFields(new Uint8Array(await readFile(path))).flags;
    // One BAT cluster holds 8176 entries (255 MiB of 32 KiB clusters); 300 MiB needs two.
    const grown = join(dir, 'grown.hds');
    await ok(['create', grown, '--size', '200M', '--cluster-size', '32K']);
    const model = new DiskModel(300 << 20);
    const rng = new Prng(0x5e1);
    for (const offset of [3 * C, 70 * C + 100, (150 << 20) + 5]) {
      const data = rng.bytes(40000);
      model.write(offset, data);
      await ok(['write', grown, '--offset', String(offset)], data);
    }
    const r = await ok(['resize', grown, '--size', '300M']);
    assert.match(r.stdout.toString(), /200 MiB to 300 MiB; [1-9]\d* clusters? relocated/);
    await assertQemuAgrees(grown, model.bytes, 'after the grow');
    assert.equal(await flags(grown), 0, 'data: CIF_Empty clear');

    const shrunk = join(dir, 'shrunk.hds');
    await ok(['create', shrunk, '--size', '8M', '--cluster-size', '32K']);
    await ok(['write', shrunk, '--offset', String(5 * C)], rng.bytes(70000));
    assert.equal(await flags(shrunk), 0, 'data: CIF_Empty clear');
    // Every cluster lies past the first 64 KiB: a forced shrink to 64 KiB drops them all.
    await ok(['resize', shrunk, '--size', '64K', '--force']);
    await assertQemuAgrees(shrunk, new Uint8Array(64 << 10), 'after the forced shrink');
    assert.equal(await flags(shrunk), 1, 'no data left: CIF_Empty set');
  });
});

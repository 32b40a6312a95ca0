// Copy-on-write through a stack opened from its files (docs/format.md, 'Deltas and stacks'), with
// 4 KiB clusters (below what a DiskDescriptor.xml allows): reads fall through to the newest
// level, a partial write copies the whole lower cluster up, lower files never change, zeros
// over a hole allocate nothing, zeros over lower data are copied up, discard never exposes
// lower data; and a raw (Plain) base under a ploop top. QEMU's backing chain is the oracle.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile, stat } from 'node:fs/promises';
import {
  createImage, PloopImage, PloopError, newDescriptor, addSnapshot, serializeDescriptor, openStackDir, mergeStack, type DeltaSource,
} from '../../src/index.ts';
import { NodeFileStore, NodeDirectory } from '../../src/node.ts';
import { LEVEL_NONE } from '../../src/core/bat-map.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { DiskModel, assertBytesEqual, assertAllZero } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { openFile, readWhole, readFileImage } from '../helpers/images.ts';
import { assertPloopListsChain, assertChecksClean, fileHash, qemuConvertChain, readStack } from '../helpers/stack.ts';
import '../helpers/source-workers.ts';

const C = 4096;
const SIZE = 4 << 20;

/** A ploop delta file with `writes` applied (through our engine), closed cleanly. */
async function makeDelta(path: string, writes: Array<[number, Uint8Array]>, size = SIZE): Promise<void> {
  const store = await NodeFileStore.open(path, { create: true });
  await createImage(store, { size, clusterSize: C });
  const image = await PloopImage.open(store, { writable: true });
  try {
    for (const [offset, data] of writes) await image.write(offset, data);
  } finally {
    await image.close();
  }
}

/** Open files as a stack, base first; only the top writable. */
async function openFiles(levels: Array<{ path: string; raw?: boolean }>, writable: boolean): Promise<PloopImage> {
  const sources: DeltaSource[] = [];
  for (let i = 0; i < levels.length; i++) {
    const top = i === levels.length - 1;
    sources.push({ store: await NodeFileStore.open(levels[i].path, { writable: top && writable }), kind: levels[i].raw ? 'raw' : 'ploop', name: levels[i].path });
  }
  return PloopImage.openStack(sources, { writable, onWarning: () => {} });
}

test('a partial write to a cluster only the lower delta maps copies the whole cluster up: untouched bytes come from below and the lower file does not change', async () => {
  await withTempDir(async (dir) => {
    const rng = new Prng(0xc0e1);
    const base = join(dir, 'base.hds');
    const top = join(dir, 'top.hds');
    const model = new DiskModel(SIZE);
    const baseData = rng.bytes(64 * C);
    model.write(0, baseData);
    await makeDelta(base, [[0, baseData]]);
    await makeDelta(top, []);
    const baseHash = await fileHash(base);

    const image = await openFiles([{ path: base }, { path: top }], true);
    const writes: Array<[number, Uint8Array]> = [
      [5 * C + 1000, rng.bytes(100)], // inside one cluster
      [10 * C + 3000, rng.bytes(6000)], // crossing cluster 11 into 12
      [20 * C - 17, rng.bytes(C + 34)], // the tail of 19, all of 20, the head of 21
      [5 * C + 3000, rng.bytes(50)], // cluster 5 again: now in the top, written in place
    ];
    try {
      for (const [offset, data] of writes) {
        await image.write(offset, data);
        model.write(offset, data);
      }
      assertBytesEqual(await readWhole(image), model.bytes, 'stack read after the partial writes');
      // Clusters 5, 10, 11, 12, 19, 20, 21 were copied up once each; cluster 20 was overwritten whole but still counts.
      assert.equal(image.stats.clustersCopied, 7, 'clusters copied up');
      assert.equal(image.allocatedClusters(), 7, 'clusters the top maps');
    } finally {
      await image.close();
    }
    assert.equal(await fileHash(base), baseHash, 'the lower delta file is byte-identical after writing through the stack');
    // The top holds whole clusters: its own copy of cluster 5 has the base bytes around the writes.
    const alone = await openFile(top);
    try {
      for (const c of [5, 10, 11, 12, 19, 20, 21]) {
        assert.equal(alone.bat.levelOf(c), alone.bat.topLevel, `cluster ${c} mapped in the top`);
        assertBytesEqual(await alone.read(c * C, C), model.read(c * C, C), `the top's own cluster ${c}`);
      }
      assert.equal(alone.bat.levelOf(6), LEVEL_NONE, 'cluster 6 was not touched, so the top does not map it');
    } finally {
      await alone.close();
    }
    await assertChecksClean([base, top], 'after COW');
    assertBytesEqual(await qemuConvertChain([base, top], join(dir, 'chain.raw')), model.bytes, 'QEMU backing chain vs model');
  });
});

test('an all-zero write to a cluster no delta maps allocates nothing, and one over a lower-mapped cluster reads back zeros because the cluster is copied up', async () => {
  await withTempDir(async (dir) => {
    const rng = new Prng(0xc0e2);
    const base = join(dir, 'base.hds');
    const top = join(dir, 'top.hds');
    const model = new DiskModel(SIZE);
    const baseData = rng.bytes(8 * C);
    model.write(0, baseData);
    await makeDelta(base, [[0, baseData]]);
    await makeDelta(top, []);
    const baseHash = await fileHash(base);
    const topSize = (await stat(top)).size;

    let image = await openFiles([{ path: base }, { path: top }], true);
    try {
      // Holes: a whole cluster, part of a cluster, and a run of clusters.
      await image.write(100 * C, new Uint8Array(C));
      await image.write(200 * C + 7, new Uint8Array(100));
      await image.write(300 * C - 5, new Uint8Array(3 * C));
      assert.equal(image.allocatedClusters(), 0, 'zeros over holes allocate nothing');
      assert.equal(image.stats.clustersAllocated, 0);
    } finally {
      await image.close();
    }
    assert.equal((await stat(top)).size, topSize, 'the top file did not grow');

    image = await openFiles([{ path: base }, { path: top }], true);
    try {
      // Part of lower cluster 2 and all of lower cluster 3.
      await image.write(2 * C + 100, new Uint8Array(200));
      model.write(2 * C + 100, new Uint8Array(200));
      await image.write(3 * C, new Uint8Array(C));
      model.write(3 * C, new Uint8Array(C));
      assertAllZero(await image.read(3 * C, C), 'cluster 3 after an all-zero write over lower data');
      assertAllZero(await image.read(2 * C + 100, 200), 'the zeroed part of cluster 2');
      assertBytesEqual(await readWhole(image), model.bytes, 'stack read');
      assert.equal(image.stats.clustersCopied, 2, 'both lower clusters were copied up');
      assert.equal(image.allocatedClusters(), 2, 'the top maps clusters 2 and 3');
    } finally {
      await image.close();
    }
    assert.equal(await fileHash(base), baseHash, 'the lower delta file is unchanged');
    await assertChecksClean([base, top], 'after zero writes');
    assertBytesEqual(await qemuConvertChain([base, top], join(dir, 'chain.raw')), model.bytes, 'QEMU backing chain vs model');
  });
});

test('discard through a stack never exposes lower data: lower-only clusters get zeros copied up, clusters both map keep a zeroed top copy, top-only clusters are unmapped', async () => {
  await withTempDir(async (dir) => {
    const rng = new Prng(0xc0e3);
    const base = join(dir, 'base.hds');
    const top = join(dir, 'top.hds');
    const model = new DiskModel(SIZE);
    const baseData = rng.bytes(16 * C);
    const topA = rng.bytes(4 * C); // clusters 8..11, over base data
    const topB = rng.bytes(4 * C); // clusters 40..43, nothing below
    model.write(0, baseData);
    model.write(8 * C, topA);
    model.write(40 * C, topB);
    await makeDelta(base, [[0, baseData]]);
    await makeDelta(top, []);
    let image = await openFiles([{ path: base }, { path: top }], true);
    try {
      await image.write(8 * C, topA);
      await image.write(40 * C, topB);
    } finally {
      await image.close();
    }
    const baseHash = await fileHash(base);

    image = await openFiles([{ path: base }, { path: top }], true);
    try {
      assert.equal(image.allocatedClusters(), 8);
      const discards: Array<[number, number]> = [
        [2 * C, 2 * C], // lower only, whole clusters
        [5 * C + 10, 300], // lower only, part of a cluster
        [8 * C, 2 * C], // both map it, whole clusters
        [11 * C + 1, 10], // both, partial
        [40 * C, 3 * C], // top only, whole clusters
        [43 * C + 5, 5], // top only, partial
      ];
      for (const [offset, length] of discards) {
        await image.discard(offset, length);
        model.discard(offset, length);
      }
      assertBytesEqual(await readWhole(image), model.bytes, 'stack read after the discards');
      // Copied up: 2, 3, 5. Kept (zeroed or partly): 8, 9, 11 and 10 untouched, 43. Unmapped: 40, 41, 42.
      for (const c of [2, 3, 5, 8, 9, 10, 11, 43]) assert.equal(image.bat.levelOf(c), image.bat.topLevel, `cluster ${c} is in the top`);
      for (const c of [40, 41, 42]) assert.equal(image.bat.levelOf(c), LEVEL_NONE, `cluster ${c} is unmapped`);
      assertAllZero(await image.read(2 * C, 2 * C), 'discarded lower-only clusters');
      assertAllZero(await image.read(8 * C, 2 * C), 'discarded clusters that the base also maps');
    } finally {
      await image.close();
    }
    assert.equal(await fileHash(base), baseHash, 'discard does not touch the lower delta');
    await assertChecksClean([base, top], 'after discards');
    assertBytesEqual(await qemuConvertChain([base, top], join(dir, 'chain.raw')), model.bytes, 'QEMU backing chain vs model');
  });
});

test('reads fall through to the newest level that maps a cluster, across three deltas', async () => {
  await withTempDir(async (dir) => {
    const rng = new Prng(0xc0e4);
    const paths = ['l0.hds', 'l1.hds', 'l2.hds'].map((f) => join(dir, f));
    const model = new DiskModel(SIZE);
    // Level 0 maps 0..5, level 1 maps 2..3, level 2 maps 3 and 7.
    const writes: Array<Array<[number, Uint8Array]>> = [[[0, rng.bytes(6 * C)]], [[2 * C, rng.bytes(2 * C)]], [[3 * C, rng.bytes(C)], [7 * C, rng.bytes(C)]]];
    for (let level = 0; level < 3; level++) {
      await makeDelta(paths[level], writes[level]);
      for (const [o, d] of writes[level]) model.write(o, d);
    }
    const image = await openFiles(paths.map((path) => ({ path })), false);
    try {
      const expectLevel = [0, 0, 1, 2, 0, 0, LEVEL_NONE, 2, LEVEL_NONE];
      expectLevel.forEach((level, c) => assert.equal(image.bat.levelOf(c), level, `cluster ${c} level`));
      // map() reports the same levels extent by extent.
      for (const e of image.map(0, 9 * C)) {
        for (let c = e.offset / C; c < (e.offset + e.length) / C; c++) assert.equal(e.level, expectLevel[c], `map() level of cluster ${c}`);
      }
      assertBytesEqual(await readWhole(image), model.bytes, 'stack read');
      await assert.rejects(image.write(0, new Uint8Array(1)), (e: unknown) => e instanceof PloopError && e.code === 'EREADONLY');
    } finally {
      await image.close();
    }
    assertBytesEqual(await qemuConvertChain(paths, join(dir, 'chain.raw')), model.bytes, 'QEMU backing chain vs model');
  });
});

test('a raw base under a ploop top reads through, is copied up on partial writes (short last cluster included) and never changes', async () => {
  await withTempDir(async (dir) => {
    const rng = new Prng(0xc0e5);
    const raw = join(dir, 'base.raw');
    const top = join(dir, 'top.hds');
    // Shorter than the disk and not a whole number of clusters: the disk reads zeros past it.
    const rawBytes = rng.bytes(3 * (1 << 20) + 1000);
    rawBytes.fill(0, 100 * C, 120 * C);
    await writeFile(raw, rawBytes);
    await makeDelta(top, []);
    const rawHash = await fileHash(raw);
    const model = new DiskModel(SIZE);
    model.write(0, rawBytes);
    const lastRaw = Math.floor(rawBytes.length / C); // the short cluster

    const image = await openFiles([{ path: raw, raw: true }, { path: top }], true);
    try {
      assert.equal(image.lowerDeltas[0].kind, 'raw');
      assertBytesEqual(await readWhole(image), model.bytes, 'the raw base read through the stack');
      const ops: Array<[number, Uint8Array]> = [
        [7 * C + 11, rng.bytes(300)],
        [lastRaw * C + 10, rng.bytes(20)], // inside the short last cluster
        [lastRaw * C + 2000, rng.bytes(5000)], // across the raw file's end
        [(SIZE >> 1) + 3 * C, rng.bytes(C)], // past the raw file, nothing below
        [110 * C + 5, new Uint8Array(10)], // zeros over a zero region the raw file covers: copied up
      ];
      for (const [o, d] of ops) {
        await image.write(o, d);
        model.write(o, d);
      }
      await image.discard(30 * C, 2 * C);
      model.discard(30 * C, 2 * C);
      assertBytesEqual(await readWhole(image), model.bytes, 'stack read after writes and a discard');
      for (const c of [7, lastRaw, lastRaw + 1, SIZE / 2 / C + 3, 110, 30, 31]) assert.equal(image.bat.levelOf(c), image.bat.topLevel, `cluster ${c} copied up`);
    } finally {
      await image.close();
    }
    assert.equal(await fileHash(raw), rawHash, 'the raw base is unchanged');
    await assertToolsAccept(top, 'the top over a raw base');
    assertBytesEqual(await qemuConvertChain([{ path: raw, raw: true }, top], join(dir, 'chain.raw')), model.bytes, 'QEMU chain with a raw backing file vs model');
    // Only the base may be raw.
    const bad = [{ store: await NodeFileStore.open(top), kind: 'ploop' as const }, { store: await NodeFileStore.open(raw), kind: 'raw' as const }];
    await assert.rejects(PloopImage.openStack(bad), (e: unknown) => e instanceof PloopError && e.code === 'EINVAL' && /raw/.test(e.message));
    for (const s of bad) await s.store.close();
  });
});

test('a disk folder whose base is a Plain (raw) image reads like QEMU, is accepted by ploop, and refuses to merge into the raw file', async () => {
  await withTempDir(async (path) => {
    const rng = new Prng(0xc0e6);
    const size = 2 << 20;
    const cluster = 32 << 10;
    const rawBytes = rng.bytes(size);
    await writeFile(join(path, 'root.raw'), rawBytes);
    const store = await NodeFileStore.open(join(path, 'top.hds'), { create: true });
    await createImage(store, { size, clusterSize: cluster });
    await store.close();
    const d = addSnapshot(newDescriptor({ sizeSectors: size / 512, blocksizeSectors: cluster / 512, file: 'root.raw', type: 'Plain' }), { newFile: 'top.hds' });
    await writeFile(join(path, 'DiskDescriptor.xml'), serializeDescriptor(d));
    const dir = new NodeDirectory(path);
    const model = new DiskModel(rawBytes);
    const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
    try {
      const data = rng.bytes(1000);
      await image.write(cluster + 500, data);
      model.write(cluster + 500, data);
    } finally {
      await image.close();
    }
    assertBytesEqual(await readStack(dir), model.bytes, 'our read of the folder');
    assertBytesEqual(await qemuConvertChain([{ path: join(path, 'root.raw'), raw: true }, join(path, 'top.hds')], join(path, 'chain.raw')), model.bytes, 'QEMU chain vs model');
    await assertPloopListsChain(path, dir, 'descriptor with a Plain base');
    await assert.rejects(mergeStack(dir), (e: unknown) => e instanceof PloopError && e.code === 'ENOTSUP');
    assertBytesEqual(await readFileImage(join(path, 'top.hds')).then((b) => b.subarray(cluster, 2 * cluster)), model.read(cluster, cluster), 'the top holds the whole copied cluster');
  });
});

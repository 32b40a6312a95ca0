// Request edges: writes far apart, overwrites in place, reads across holes and mapped runs,
// requests outside the disk (ERANGE) and writes to read-only images (EREADONLY).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { createImage, MemoryStore, PloopImage, PloopError, type PloopErrorCode } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { readWhole } from '../helpers/images.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { qemuCreate, qemuIo, ioWrite } from '../helpers/qemu.ts';
import '../helpers/source-workers.ts';

const C = 64 << 10;
const SIZE = 64 << 20;
const SIZE_8M = 8 << 20;

async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: PloopErrorCode, what: string): Promise<void> {
  await assert.rejects(typeof p === 'function' ? p() : p, (e: unknown) => {
    assert.ok(e instanceof PloopError, `${what}: expected a PloopError, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    return true;
  }, what);
}

test('writes far apart allocate one cluster each, in write order, and the file ends after the last one', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'far.hds');
    const store = await NodeFileStore.open(path, { create: true });
    await createImage(store, { size: SIZE, clusterSize: C });
    const image = await PloopImage.open(store, { writable: true });
    const model = new DiskModel(SIZE);
    const rng = new Prng(0xfa4);
    const writes: Array<[number, number]> = [[SIZE - 3, 3], [0, 5], [SIZE / 2 + 12345, 999], [17 * C - 1, 2]];
    for (const [off, len] of writes) {
      const data = rng.bytes(len);
      await image.write(off, data);
      model.write(off, data);
    }
    const first = image.geometry.firstSlotByte / C; // v2 entries count clusters from the file start
    assert.deepEqual(
      [SIZE / C - 1, 0, Math.floor((SIZE / 2 + 12345) / C), 16, 17].map((i) => image.bat.entryValue(i)),
      [first, first + 1, first + 2, first + 3, first + 4],
    );
    assert.equal(image.allocatedClusters(), 5);
    assertBytesEqual(await readWhole(image), model.bytes, 'whole disk');
    await image.close();
    assert.equal((await stat(path)).size, (first + 5) * C, 'the file ends after the fifth cluster');
    await assertQemuAgrees(path, model.bytes, 'far writes');
  });
});

test('an overwrite of allocated data stays in place: same BAT entry, no allocation, no growth', async () => {
  const store = new MemoryStore();
  await createImage(store, { size: 8 << 20, clusterSize: C });
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  const model = new DiskModel(8 << 20);
  const rng = new Prng(0x0e1);
  const a = rng.bytes(3 * C);
  await image.write(C, a);
  model.write(C, a);
  const entries = [1, 2, 3].map((i) => image.bat.entryValue(i));
  const allocated = image.stats.clustersAllocated;
  const size = await store.size();
  const pieces: Array<[number, number]> = [[C + 7, 100], [2 * C - 50, 100], [C, 3 * C], [4 * C - 1, 1]];
  for (const [off, len] of pieces) {
    const data = rng.bytes(len);
    await image.write(off, data);
    model.write(off, data);
  }
  assert.deepEqual([1, 2, 3].map((i) => image.bat.entryValue(i)), entries);
  assert.equal(image.stats.clustersAllocated, allocated);
  assert.equal(await store.size(), size);
  assertBytesEqual(await image.read(0, 5 * C), model.read(0, 5 * C), 'clusters 0..4');
  await image.close();
});

test('reads across holes and mapped runs, at every alignment, equal the model and qemu-io data', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'holes.hds');
    await qemuCreate(path, '8M', '64k');
    // Mapped: 1, 2 (contiguous on disk), 4, 7 (written in reverse order: not contiguous), 127 (last).
    await qemuIo(path, [ioWrite(0x71, 7 * C, C), ioWrite(0x41, 4 * C + 10, C - 20), ioWrite(0x11, C, 2 * C), ioWrite(0x7f, 127 * C + 5, C - 5)]);
    const model = new DiskModel(8 << 20);
    model.write(7 * C, new Uint8Array(C).fill(0x71));
    model.write(4 * C + 10, new Uint8Array(C - 20).fill(0x41));
    model.write(C, new Uint8Array(2 * C).fill(0x11));
    model.write(127 * C + 5, new Uint8Array(C - 5).fill(0x7f));
    const image = await PloopImage.open(await NodeFileStore.open(path));
    try {
      const extents = image.map(0, 9 * C);
      assert.deepEqual(extents.map((e) => [e.offset / C, e.length / C, e.hostOffset >= 0]),
        [[0, 1, false], [1, 2, true], [3, 1, false], [4, 1, true], [5, 2, false], [7, 1, true], [8, 1, false]]);
      const edges = [0, C - 1, C, C + 1, 3 * C - 1, 3 * C, 4 * C + 9, 4 * C + 10, 5 * C - 11, 7 * C + 1, 128 * C - 1];
      for (const from of edges) {
        for (const len of [1, 2, 513, C, 2 * C + 3, 5 * C]) {
          const n = Math.min(len, SIZE_8M - from);
          assertBytesEqual(await image.read(from, n), model.read(from, n), `read ${from}+${n}`);
        }
      }
      const rng = new Prng(0x4e1);
      for (let i = 0; i < 300; i++) {
        const from = rng.int(9 * C);
        const n = rng.range(0, 3 * C);
        assertBytesEqual(await image.read(from, n), model.read(from, n), `read ${from}+${n}`);
      }
      assertBytesEqual(await readWhole(image), model.bytes, 'whole disk');
    } finally {
      await image.close();
    }
  });
});
test('reads, writes and discards outside the virtual disk reject with ERANGE and change nothing', async () => {
  const store = new MemoryStore();
  const size = 4 * C + 512; // a partial last cluster
  await createImage(store, { size, clusterSize: C });
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  await image.write(0, new Uint8Array([1, 2, 3]));
  const before = store.bytes().slice();
  const bad: Array<[number, number]> = [[size, 1], [size - 1, 2], [-1, 1], [0, size + 1], [1.5, 1], [Number.NaN, 1], [2 ** 53, 1], [0, -1], [0, 2.5]];
  for (const [off, len] of bad) {
    await rejectsWith(() => image.read(off, len), 'ERANGE', `read(${off}, ${len})`);
    if (Number.isInteger(len) && len >= 0) {
      await rejectsWith(() => image.readInto(off, new Uint8Array(len)), 'ERANGE', `readInto(${off}, ${len})`);
      await rejectsWith(() => image.write(off, new Uint8Array(len).fill(9)), 'ERANGE', `write(${off}, ${len})`);
    }
    await rejectsWith(() => image.discard(off, len), 'ERANGE', `discard(${off}, ${len})`);
  }
  await rejectsWith(() => image.discard(0, 1.5), 'ERANGE', 'discard(0, 1.5)');
  assert.throws(() => image.map(size - 1, 2), (e: unknown) => e instanceof PloopError && e.code === 'ERANGE');
  await image.flush();
  assertBytesEqual(store.bytes(), before, 'the image after rejected requests');
  // The very end is reachable.
  await image.write(size - 1, new Uint8Array([0xee]));
  assert.deepEqual([...(await image.read(size - 2, 2))], [0, 0xee]);
  assert.equal((await image.read(size, 0)).length, 0);
  await image.close();
});

test('writes and discards on an image opened read-only reject with EREADONLY and leave the file unchanged', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'ro.hds');
    await qemuCreate(path, '4M', '64k');
    await qemuIo(path, [ioWrite(0x21, 100, 1000)]);
    const ro = await PloopImage.open(await NodeFileStore.open(path));
    const before = new Uint8Array(await readFile(path));
    try {
      assert.equal(ro.writable, false);
      await rejectsWith(() => ro.write(0, new Uint8Array([1])), 'EREADONLY', 'write');
      await rejectsWith(() => ro.write(C, new Uint8Array(C).fill(1)), 'EREADONLY', 'allocating write');
      await rejectsWith(() => ro.discard(0, C), 'EREADONLY', 'discard');
      await ro.flush();
      assert.equal((await ro.read(100, 1))[0], 0x21);
    } finally {
      await ro.close();
    }
    assertBytesEqual(new Uint8Array(await readFile(path)), before, 'file after rejected writes');
    // A writable open of a read-only store is refused up front.
    const roStore = await NodeFileStore.open(path);
    await rejectsWith(() => PloopImage.open(roStore, { writable: true }), 'EREADONLY', 'writable open of a read-only store');
    await roStore.close();
    const memory = new MemoryStore(before.slice(), { writable: false });
    await rejectsWith(() => PloopImage.open(memory, { writable: true }), 'EREADONLY', 'writable open of a read-only MemoryStore');
  });
});

// SPDX-License-Identifier: MIT
// exportDelta copies the top delta of an OPEN image: the copy must be a cleanly closed image, so
// it stops where the used bytes end — not at the file's end, which lies past the preallocated
// tail while the image is open (qemu-img check would call that tail leaked clusters).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { createImage, PloopImage, MemoryStore } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { exportDelta, exportMerged } from '../../src/adapters/export.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { headerFields } from '../helpers/image-file.ts';

test('exportDelta of an open image with a preallocated tail is a clean image that reads the same', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'open.hds');
    const store = await NodeFileStore.open(path, { create: true });
    const size = 8 << 20;
    await createImage(store, { size, clusterSize: 64 << 10 });
    const image = await PloopImage.open(store, { writable: true });
    for (const [i, offset] of [0, 3 << 20, (5 << 20) + 4096].entries()) await image.write(offset, new Uint8Array(5000).fill(i + 1));
    const fileBytes = await store.size();
    assert.ok(fileBytes > image.usedEndBytes(), `the open file (${fileBytes} bytes) has a preallocated tail past ${image.usedEndBytes()}`);

    const copy = await exportDelta(image);
    assert.equal(copy.length, image.usedEndBytes());
    const copyPath = join(dir, 'copy.hds');
    await writeFile(copyPath, copy);
    await assertToolsAccept(copyPath, 'the exported delta');
    const raw = await qemuConvertToRaw(copyPath, join(dir, 'copy.raw'));
    assert.ok(Buffer.from(raw).equals(Buffer.from(await image.read(0, size))), 'qemu-img reads the copy as the engine reads the image');
    await image.close();
  });
});

test('exportDelta and exportMerged of an image that holds no cluster say so in CIF_Empty (the ploop tools check it), and of one that does, not', async () => {
  await withTempDir(async (dir) => {
    const store = new MemoryStore();
    await createImage(store, { size: 8 << 20, clusterSize: 64 << 10 });
    const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
    try {
      await image.write(0, new Uint8Array(4096)); // zeros over a hole: the image is in use, still empty
      for (const [name, bytes] of [['delta', await exportDelta(image)], ['merged', await exportMerged(image)]] as const) {
        assert.equal(headerFields(bytes).flags, 1, `${name}: empty`);
        const path = join(dir, `empty-${name}.hds`);
        await writeFile(path, bytes);
        await assertToolsAccept(path, `empty ${name} export`);
      }
      await image.write(70000, new Uint8Array(100).fill(9));
      for (const [name, bytes] of [['delta', await exportDelta(image)], ['merged', await exportMerged(image)]] as const) {
        assert.equal(headerFields(bytes).flags, 0, `${name}: one cluster`);
        const path = join(dir, `one-${name}.hds`);
        await writeFile(path, bytes);
        await assertToolsAccept(path, `${name} export of one cluster`);
      }
    } finally {
      await image.close();
    }
  });
});

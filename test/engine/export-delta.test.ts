// SPDX-License-Identifier: MIT
// exportDelta copies the top delta of an OPEN image: the copy must be a cleanly closed image, so
// it stops where the used bytes end — not at the file's end, which lies past the preallocated
// tail while the image is open (qemu-img check would call that tail leaked clusters).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { createImage, PloopImage } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { exportDelta } from '../../src/adapters/export.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCheck, describeCheck, qemuConvertToRaw } from '../helpers/qemu.ts';

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
    const check = await qemuCheck(copyPath);
    assert.ok(check.clean, describeCheck(check));
    const raw = await qemuConvertToRaw(copyPath, join(dir, 'copy.raw'));
    assert.ok(Buffer.from(raw).equals(Buffer.from(await image.read(0, size))), 'qemu-img reads the copy as the engine reads the image');
    await image.close();
  });
});

// BlobStore in Node (Node 20 has Blob): a qemu-img image given as a Blob reads like qemu-img
// converts it; reads are short at the end; writes are refused with the store's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobStore } from '../../src/stores/blob.js';
import { PloopImage } from '../../src/engine/image.js';
import { withTempDir } from '../helpers/tmp.js';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw } from '../helpers/qemu.js';
import { rejectsWith } from '../helpers/errors.js';

test('a qemu-img image as a Blob reads like qemu-img convert', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'disk.hds');
    await qemuCreate(path, 16 << 20, 64 << 10);
    await qemuIo(path, [ioWrite(0x5a, 4096, 100_000), ioWrite(0xa5, 9 << 20, 65536)]);
    const raw = await qemuConvertToRaw(path, `${path}.raw`);
    const store = new BlobStore(new Blob([await readFile(path)]), { name: 'disk.hds' });
    const image = await PloopImage.open(store);
    assert.ok(Buffer.from(await image.read(0, 16 << 20)).equals(Buffer.from(raw)));
    await image.close();
  });
});

test('reads are short at the end; write and truncate are refused naming the store', async () => {
  const store = new BlobStore(new Blob([new Uint8Array([1, 2, 3, 4, 5])]));
  assert.equal(store.name, 'blob');
  assert.equal(store.writable, false);
  const buf = new Uint8Array(4).fill(9);
  assert.equal(await store.read(3, buf), 2);
  assert.deepEqual(Array.from(buf), [4, 5, 9, 9]);
  assert.equal(await store.read(10, buf), 0);
  await rejectsWith(() => store.write(0, new Uint8Array(1)), 'EREADONLY', /^blob: write refused, the store is read-only$/);
  await rejectsWith(() => store.truncate(0), 'EREADONLY', /^blob: truncate refused, the store is read-only$/);
  await rejectsWith(() => PloopImage.open(store, { writable: true }), 'EREADONLY', /store blob is read-only/);
});

// NodeFileStore.writeDurably (a write through a second descriptor opened with O_DSYNC, which the
// engine uses to grow a file ahead of its allocator without an fdatasync of the whole file) and
// writeZeros (real zeros, which back a sparse file's clusters as the ploop tools want them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeFileStore } from '../../src/node.ts';
import { createImage, PloopImage, checkImage } from '../../src/index.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import '../helpers/source-workers.ts';

/** This process's descriptors open on `path`, with their open flags (from /proc/self/fdinfo). */
function descriptorsOn(path: string): Array<{ fd: number; flags: number }> {
  const out: Array<{ fd: number; flags: number }> = [];
  for (const name of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // closed meanwhile (the directory's own descriptor)
    }
    if (target !== path) continue;
    const flags = parseInt(/^flags:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${name}`, 'utf8'))![1], 8);
    out.push({ fd: Number(name), flags });
  }
  return out;
}

test('writeDurably writes through one more descriptor, opened O_DSYNC on first use and closed with the store', () => withTempDir(async (dir) => {
  const path = join(dir, 'f.bin');
  await writeFile(path, new Uint8Array(4096).fill(7));
  const store = await NodeFileStore.open(path, { writable: true });
  assert.equal(descriptorsOn(path).length, 1);
  assert.ok(descriptorsOn(path).every((d) => (d.flags & constants.O_DSYNC) === 0), 'the main descriptor is not O_DSYNC');

  await store.writeDurably(1 << 20, new Uint8Array([0xab]));
  await store.writeDurably(8192, new Uint8Array(100).fill(0xcd));
  const fds = descriptorsOn(path);
  assert.equal(fds.length, 2, 'one O_DSYNC descriptor, opened once');
  assert.equal(fds.filter((d) => (d.flags & constants.O_DSYNC) !== 0).length, 1);

  // The same file through the store's own descriptor: grown, the gap zeros.
  assert.equal(await store.size(), (1 << 20) + 1);
  const back = new Uint8Array((1 << 20) + 1);
  assert.equal(await store.read(0, back), back.length);
  assert.ok(back.subarray(0, 4096).every((b) => b === 7));
  assert.ok(back.subarray(4096, 8192).every((b) => b === 0));
  assert.ok(back.subarray(8192, 8292).every((b) => b === 0xcd));
  assert.ok(back.subarray(8292, 1 << 20).every((b) => b === 0));
  assert.equal(back[1 << 20], 0xab);

  await store.close();
  assert.equal(descriptorsOn(path).length, 0, 'close() closed both descriptors');
  await assert.rejects(store.writeDurably(0, new Uint8Array(1)), { code: 'ECLOSED' });
}));

test('writeDurably is refused on a read-only store and at a negative offset, and a failing write names the file and the offset', () => withTempDir(async (dir) => {
  const path = join(dir, 'f.bin');
  await writeFile(path, new Uint8Array(512));
  const readOnly = await NodeFileStore.open(path);
  await assert.rejects(readOnly.writeDurably(0, new Uint8Array(1)), { code: 'EREADONLY' });
  await readOnly.close();
  assert.equal(descriptorsOn(path).length, 0);
  const store = await NodeFileStore.open(path, { writable: true });
  await assert.rejects(store.writeDurably(-5, new Uint8Array(1)), { code: 'EINVAL', message: /f\.bin: writeDurably at -5: expected a byte offset >= 0/ });
  // A write the kernel refuses (past the largest file size ext4 allows) comes back named.
  await assert.rejects(store.writeDurably(2 ** 52, new Uint8Array(1)), (e: Error) => /write .*f\.bin at 4503599627370496 \(O_DSYNC\)/.test(e.message));
  await store.close();
}));

// Checked once by hand (2026-11-26): with the O_DSYNC descriptor opened by path instead of
// through /proc/self/fd, this test fails (the newcomer gets the bytes).
test('writeDurably writes the open file even after its path was renamed and taken by another file', () => withTempDir(async (dir) => {
  const path = join(dir, 'disk.hds');
  const moved = join(dir, 'moved.hds');
  await writeFile(path, new Uint8Array(1024));
  const store = await NodeFileStore.open(path, { writable: true });
  await rename(path, moved);
  await writeFile(path, new Uint8Array(16).fill(0xee)); // a newcomer at the old path
  await store.writeDurably(2048, new Uint8Array([1, 2, 3]));
  await store.close();
  assert.deepEqual([...(await readFile(moved)).subarray(2048)], [1, 2, 3], 'the store\'s own file got the bytes');
  assert.deepEqual(new Uint8Array(await readFile(path)), new Uint8Array(16).fill(0xee), 'the newcomer is untouched');
}));

test('an image on a NodeFileStore grows ahead of its allocator through writeDurably, and checks clean for us and qemu-img', () => withTempDir(async (dir) => {
  const path = join(dir, 'disk.hds');
  const created = await NodeFileStore.open(path, { create: true });
  await createImage(created, { size: 64 << 20, clusterSize: 64 << 10 });
  await created.close();
  const store = await NodeFileStore.open(path, { writable: true });
  let durableWrites = 0;
  const writeDurably = store.writeDurably.bind(store);
  store.writeDurably = (offset, data) => {
    durableWrites++;
    return writeDurably(offset, data);
  };
  const image = await PloopImage.open(store, { writable: true, preallocBytes: 1 << 20 });
  for (let i = 0; i < 96; i += 16) {
    await Promise.all(Array.from({ length: 16 }, (_, j) => image.write((i + j) * (64 << 10) + 512, new Uint8Array(4096).fill(1 + j))));
  }
  await image.flush(); // also waits for an extension started ahead of the allocator
  const stats = image.stats;
  assert.equal(stats.virginAllocations, 96);
  assert.equal(stats.barriers, 0);
  assert.ok(stats.preallocations >= 6, `${stats.preallocations} preallocations`);
  assert.equal(durableWrites, stats.preallocations, 'each extension was one durable write');
  await image.close();
  const report = await checkImage(await NodeFileStore.open(path));
  assert.ok(report.clean && report.leakedClusters === 0, JSON.stringify(report.findings));
  await assertToolsAccept(path, 'after the preallocating writes');
}));

test('writeZeros writes real zeros (backed by disk blocks, over old bytes too) on this thread, on the I/O thread and on libuv\'s pool', () => withTempDir(async (dir) => {
  const { startIoThread, ioThreadStats } = await import('../../src/stores/node-io-thread.ts');
  assert.equal(await startIoThread(), true);
  const cases: Array<[string, { syncMaxBytes?: number; io?: 'thread' | 'pool' }]> = [['sync', { syncMaxBytes: 64 << 10 }], ['thread', {}], ['pool', { io: 'pool' }]];
  for (const [mode, options] of cases) {
    const path = join(dir, `${mode}.bin`);
    await writeFile(path, new Uint8Array(8192).fill(0xee));
    const store = await NodeFileStore.open(path, { writable: true, ...options });
    const served = ioThreadStats().served;
    // Over old bytes (4096..8192), then past the end of the file: 3 MiB + 5 bytes in all.
    await store.writeZeros(4096, (3 << 20) + 5);
    assert.equal(ioThreadStats().served - served, mode === 'thread' ? 1 : 0, `${mode}: requests the I/O thread served`);
    assert.equal(await store.size(), 4096 + (3 << 20) + 5);
    const { allocatedBytes, blockBytes } = await store.backing();
    assert.ok(allocatedBytes >= Math.ceil((await store.size()) / blockBytes) * blockBytes, `${mode}: ${allocatedBytes} bytes allocated: the zeros left holes`);
    await store.close();
    const bytes = await readFile(path);
    assert.ok(bytes.subarray(0, 4096).every((b) => b === 0xee), `${mode}: bytes before the range kept`);
    assert.ok(bytes.subarray(4096).every((b) => b === 0), `${mode}: zeros`);
  }
  const store = await NodeFileStore.open(join(dir, 'sync.bin'), { writable: true });
  await assert.rejects(store.writeZeros(-1, 10), { code: 'EINVAL' });
  await store.close();
  await assert.rejects(store.writeZeros(0, 10), { code: 'ECLOSED' });
  const readOnly = await NodeFileStore.open(join(dir, 'sync.bin'));
  await assert.rejects(readOnly.writeZeros(0, 10), { code: 'EREADONLY' });
  await readOnly.close();
}));

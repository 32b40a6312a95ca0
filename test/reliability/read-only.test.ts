// Read-only opening never writes (issue #8): not the in-use flag, not a trim, nothing — for a
// clean image and for one left in use, through the engine, a disk folder, the runner pool and
// the CLI's read-only commands. Judged by the file's SHA-256 and its mtime. And a read-only store
// refuses writes with an EREADONLY error that names the store and the operation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stat, utimes } from 'node:fs/promises';
import {
  PloopImage, MemoryStore, checkImage, createImage, initStack, openStackDir, snapshotStack,
} from '../../src/index.ts';
import { NodeFileStore, NodeDirectory, ParallelImage } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { fileHash } from '../helpers/stack.ts';
import { pokeU32, OFF, INUSE_MAGIC } from '../helpers/image-file.ts';
import { rejectsWith } from '../helpers/errors.ts';
import { cli } from '../helpers/cli.ts';
import '../helpers/source-workers.ts';

const C = 64 << 10;
const SIZE = 8 << 20;

async function fingerprint(path: string): Promise<string> {
  return `${await fileHash(path)} ${(await stat(path)).mtimeMs} ${(await stat(path)).size}`;
}

/** An image with data, closed cleanly or left with the in-use flag set; its mtime set in the past. */
async function makeImage(path: string, inUse: boolean): Promise<void> {
  const store = await NodeFileStore.open(path, { create: true });
  await createImage(store, { size: SIZE, clusterSize: C });
  const image = await PloopImage.open(store, { writable: true });
  await image.write(C + 7, new Uint8Array(3 * C).fill(9));
  await image.discard(2 * C, C);
  await image.close();
  if (inUse) await pokeU32(path, OFF.inUse, INUSE_MAGIC);
  // A second-old mtime: a write in the same clock tick could not hide.
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

for (const inUse of [false, true]) {
  test(`opening ${inUse ? 'an image left in use' : 'a clean image'} read-only — engine, check, runner pool, CLI info/check/read/map — leaves its bytes and mtime untouched`, { timeout: 60_000 }, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'ro.hds');
      await makeImage(path, inUse);
      const before = await fingerprint(path);
      const same = async (what: string) => assert.equal(await fingerprint(path), before, `${what} changed the file`);

      const image = await PloopImage.open(await NodeFileStore.open(path), { onWarning: () => {} });
      assert.equal(image.writable, false);
      await image.read(0, SIZE);
      image.map();
      await image.flush();
      await image.close();
      await same('PloopImage read, map, flush, close');

      const store = await NodeFileStore.open(path);
      const report = await checkImage(store);
      await store.close();
      assert.equal(report.clean, !inUse, 'check sees the in-use flag');
      await same('checkImage without repair');

      const pool = await ParallelImage.open([path], { runners: 2, onWarning: () => {} });
      await pool.read(0, SIZE);
      await pool.flush();
      await pool.close();
      await same('ParallelImage (2 runners) read, flush, close');

      for (const args of [['info', path, '--json'], ['check', path], ['read', path, '--offset', '0', '--length', String(4 * C)], ['map', path]]) {
        const r = await cli(args);
        assert.ok(r.code === 0 || (inUse && args[0] === 'check'), `ploop-wasm ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
        await same(`ploop-wasm ${args[0]}`);
      }
    });
  });
}

test('a disk folder opened read-only leaves every delta and the descriptor untouched', async () => {
  await withTempDir(async (dir) => {
    const folder = new NodeDirectory(dir);
    await initStack(folder, { size: SIZE, clusterSize: C });
    const w = await openStackDir(folder, { writable: true });
    await w.write(0, new Uint8Array(C).fill(1));
    await w.close();
    await snapshotStack(folder);
    const files = ['DiskDescriptor.xml', 'root.hds', ...(await import('node:fs/promises').then((fs) => fs.readdir(dir))).filter((f) => f.startsWith('root.hds.'))];
    const past = new Date(Date.now() - 60_000);
    for (const f of files) await utimes(join(dir, f), past, past);
    const before = await Promise.all(files.map((f) => fingerprint(join(dir, f))));
    const image = await openStackDir(folder, { onWarning: () => {} });
    await image.read(0, SIZE);
    await image.close();
    assert.deepEqual(await Promise.all(files.map((f) => fingerprint(join(dir, f)))), before, 'a file of the folder changed');
  });
});

test('read-only stores refuse writes with EREADONLY naming the store and the operation; a read-only image refuses changes', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'ro.hds');
    await makeImage(path, false);
    const before = await fingerprint(path);
    const file = await NodeFileStore.open(path);
    await rejectsWith(() => file.write(0, new Uint8Array(1)), 'EREADONLY', /ro\.hds: write refused, the file was opened read-only/);
    await rejectsWith(() => file.truncate(0), 'EREADONLY', /truncate refused/);
    await rejectsWith(() => PloopImage.open(file, { writable: true }), 'EREADONLY', /read-write requested but store node-fs is read-only/);
    const image = await PloopImage.open(file, { onWarning: () => {} });
    await rejectsWith(() => image.write(0, new Uint8Array(1)), 'EREADONLY', /write: the image was opened read-only/);
    await rejectsWith(() => image.discard(0, C), 'EREADONLY', /discard: the image was opened read-only/);
    await image.close();
    const memory = new MemoryStore(new Uint8Array(4096), { writable: false });
    await rejectsWith(() => memory.write(0, new Uint8Array(1)), 'EREADONLY', /memory store: write refused, the store is read-only/);
    const pool = await ParallelImage.open([path], { runners: 2, onWarning: () => {} });
    await rejectsWith(() => pool.write(0, new Uint8Array(1)), 'EREADONLY', /write: the image was opened read-only/);
    await pool.close();
    assert.equal(await fingerprint(path), before, 'the refused writes changed the file');
  });
});

// The CLI on disk folders: init, snapshot, merge (top, --level, --all), info --json with its
// per-delta list, and read / write / check given the folder or its DiskDescriptor.xml; ploop's
// snapshot-list and QEMU's backing chain judge the results.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import {
  initStack, openStackDir, snapshotStack, checkImage, createImage, newDescriptor, addSnapshot, serializeDescriptor, type DeltaDirectory,
} from '../../src/index.ts';
import { NodeDirectory, NodeFileStore } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { pokeU32, OFF, INUSE_MAGIC } from '../helpers/image-file.ts';
import { assertChecksClean, assertPloopListsChain, chainPaths, qemuConvertChain, readStack } from '../helpers/stack.ts';
import { cli, describeCli, type CliResult } from '../helpers/cli.ts';
import '../helpers/source-workers.ts';

const TOPDELTA_GUID = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';

async function ok(args: string[], stdin?: Uint8Array): Promise<CliResult> {
  const r = await cli(args, stdin);
  assert.equal(r.code, 0, describeCli(args, r));
  return r;
}

interface DeltaInfo { level: number; file: string; guid: string; type: string; allocatedClusters: number; fileSize: number }

/** Write through the folder's stack with the engine (the CLI's own write is tested once). */
async function writeThrough(dir: DeltaDirectory, offset: number, data: Uint8Array): Promise<void> {
  const image = await openStackDir(dir, { writable: true, onWarning: () => {} });
  try {
    await image.write(offset, data);
  } finally {
    await image.close();
  }
}

async function infoJson(path: string): Promise<{ virtualSize: number; clusterSize: number; allocatedClusters: number; deltas?: DeltaInfo[] }> {
  return JSON.parse((await ok(['info', path, '--json'])).stdout.toString());
}

test('init, write, snapshot, info --json and read work on a disk folder and on its DiskDescriptor.xml, and ploop and QEMU agree', async () => {
  await withTempDir(async (tmp) => {
    const path = join(tmp, 'disk');
    const dd = join(path, 'DiskDescriptor.xml');
    const dir = new NodeDirectory(path);
    const rng = new Prng(0xc11);
    const model = new DiskModel(4 << 20);

    // A cluster size a descriptor cannot name is refused before anything is made.
    let r = await cli(['init', path, '--size', '4M', '--cluster-size', '4K']);
    assert.equal(r.code, 2, describeCli(['init'], r));
    assert.match(r.stderr, /--cluster-size: "4K" is 4096 bytes; a disk folder needs a power of two from 32 KiB to 64 MiB/);
    await assert.rejects(readdir(path), /ENOENT/, 'a refused init leaves no folder');

    r = await ok(['init', path, '--size', String((4 << 20) - 1000), '--cluster-size', '64K']);
    assert.match(r.stdout.toString(), /created .*DiskDescriptor\.xml and root\.hds: 4 MiB, 64 KiB clusters/);
    // DiskDescriptor.xml.lck is the folder's writer lock (ploop's, which ploop leaves there too).
    assert.deepEqual((await readdir(path)).sort(), ['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds']);
    await assertPloopListsChain(path, dir, 'after init');
    await assertChecksClean([join(path, 'root.hds')], 'after init');
    r = await cli(['init', path, '--size', '4M']);
    assert.equal(r.code, 1, 'init refuses a folder that has a descriptor');

    const a = rng.bytes(200000);
    await ok(['write', path, '--offset', '70000'], a);
    model.write(70000, a);
    const snap = await ok(['snapshot', path]);
    const m = /snapshot (\{[0-9a-f-]+\}) created; new top delta (\S+)/.exec(snap.stdout.toString());
    assert.ok(m, snap.stdout.toString());
    const [, snapGuid, topFile] = m;
    await assertPloopListsChain(path, dir, 'after snapshot');
    // Through the descriptor's path this time: a write that copies part of a lower cluster up.
    const b = rng.bytes(1000);
    await ok(['write', dd, '--offset', '131000'], b);
    model.write(131000, b);

    const info = await infoJson(dd);
    assert.equal(info.virtualSize, 4 << 20, 'init rounded the size up to whole clusters');
    assert.deepEqual(info.deltas?.map((d) => [d.level, d.file, d.guid, d.type, d.allocatedClusters]), [
      [0, 'root.hds', snapGuid, 'Compressed', 4], // clusters 1..4 hold bytes 70000..270000
      [1, topFile, TOPDELTA_GUID, 'Compressed', 2], // 131000+1000 crosses from cluster 1 into 2
    ]);
    assert.equal(info.allocatedClusters, 4, 'clusters any delta maps');

    for (const p of [path, dd]) {
      const read = await ok(['read', p, '--offset', '0', '--length', String(4 << 20)]);
      assertBytesEqual(new Uint8Array(read.stdout), model.bytes, `read ${p}`);
    }
    assertBytesEqual(await qemuConvertChain(await chainPaths(path, dir), join(tmp, 'c.raw')), model.bytes, 'QEMU chain vs model');
    await assertChecksClean(await chainPaths(path, dir), 'after init, write, snapshot and write');
  });
});

test('check walks every delta of a folder (given as the folder or its descriptor), finds a top left in use, and repairs it', async () => {
  await withTempDir(async (tmp) => {
    const path = join(tmp, 'disk');
    const dir = new NodeDirectory(path);
    await mkdir(path);
    await initStack(dir, { size: 2 << 20, clusterSize: 32 << 10 });
    await writeThrough(dir, 5, new Prng(1).bytes(100000));
    await snapshotStack(dir);
    await writeThrough(dir, 40000, new Prng(2).bytes(5000));
    const files = (await chainPaths(path, dir)).map((p) => p.slice(path.length + 1));

    const r = await ok(['check', path]);
    assert.equal((r.stdout.toString().match(/No errors were found on the image\./g) ?? []).length, 2, r.stdout.toString());
    const reports = JSON.parse((await ok(['check', join(path, 'DiskDescriptor.xml'), '--json'])).stdout.toString()) as Array<{ file: string; clean: boolean }>;
    assert.deepEqual(reports.map((x) => [x.file, x.clean]), files.map((f) => [f, true]), 'one report per delta, base first');
    await pokeU32(join(path, files[1]), OFF.inUse, INUSE_MAGIC);
    const dirty = await cli(['check', path, '--json']);
    assert.equal(dirty.code, 2, describeCli(['check'], dirty));
    const dirtyReports = JSON.parse(dirty.stdout.toString()) as Array<{ file: string; clean: boolean; findings: Array<{ kind: string }> }>;
    assert.deepEqual(dirtyReports.map((x) => [x.file, x.clean, x.findings.map((f) => f.kind)]), [[files[0], true, []], [files[1], false, ['unclean']]]);
    const repair = await ok(['check', path, '--repair']);
    assert.match(repair.stdout.toString(), /\b1 corruption\n/);
    for (const f of files) {
      const store = await NodeFileStore.open(join(path, f));
      try {
        assert.ok((await checkImage(store)).clean, `${f} is clean after check --repair`);
      } finally {
        await store.close();
      }
    }
  });
});

test('merge --level, merge and merge --all take a four-delta folder down to root.hds without changing what it reads', async () => {
  await withTempDir(async (tmp) => {
    const path = join(tmp, 'disk');
    const dir = new NodeDirectory(path);
    const rng = new Prng(0xc12);
    const size = 2 << 20;
    const model = new DiskModel(size);
    await ok(['init', path, '--size', '2M', '--cluster-size', '32K', '--format', 'v1']);
    for (let level = 0; level < 4; level++) {
      if (level > 0) await ok(['snapshot', path]);
      const offset = rng.int(size - 300000);
      const data = rng.bytes(rng.range(1, 300000));
      await writeThrough(dir, offset, data);
      model.write(offset, data);
    }
    const verify = async (deltas: number, what: string) => {
      const paths = await chainPaths(path, dir);
      assert.equal(paths.length, deltas, `${what}: deltas`);
      assert.deepEqual((await readdir(path)).filter((f) => !f.endsWith('.lck')).sort(), ['DiskDescriptor.xml', ...paths.map((p) => p.slice(path.length + 1))].sort(), `${what}: files`);
      assertBytesEqual(await readStack(dir), model.bytes, `${what}: our read`);
      await assertPloopListsChain(path, dir, what);
      await assertChecksClean(paths, what);
      const qemu = deltas === 1 ? await qemuConvertToRaw(paths[0], join(tmp, 'r.raw')) : await qemuConvertChain(paths, join(tmp, 'r.raw'));
      assertBytesEqual(qemu, model.bytes, `${what}: QEMU`);
    };
    await verify(4, 'before merging');
    const before = await chainPaths(path, dir);
    let r = await ok(['merge', path, '--level', '1']);
    assert.match(r.stdout.toString(), new RegExp(`merged ${escapeRegExp(base(before[1]))} into root\\.hds \\(\\d+ clusters copied\\)`));
    await verify(3, 'after merge --level 1');
    r = await ok(['merge', join(path, 'DiskDescriptor.xml')]);
    assert.match(r.stdout.toString(), new RegExp(`merged ${escapeRegExp(base(before[3]))} into ${escapeRegExp(base(before[2]))}`));
    await verify(2, 'after merge');
    r = await ok(['merge', path, '--all']);
    assert.match(r.stdout.toString(), /merged 1 delta; one delta left/);
    await verify(1, 'after merge --all');
    const info = await infoJson(path);
    assert.deepEqual(info.deltas?.map((d) => [d.file, d.guid]), [['root.hds', TOPDELTA_GUID]], 'info --json after merge --all');
    assert.equal((await readFile(join(path, 'root.hds'))).subarray(0, 16).toString(), 'WithoutFreeSpace', 'root.hds is still v1');
    r = await cli(['merge', path]);
    assert.equal(r.code, 1, 'nothing left to merge');
    assert.match(r.stderr, /single delta/);
  });
});

test('info --json on a folder with a raw (Plain) base counts the raw file in clusters, like the stack does', async () => {
  await withTempDir(async (path) => {
    const cluster = 32 << 10;
    const raw = new Prng(0xc13).bytes((1 << 20) + 100); // 32 clusters and a bit of a 33rd
    await writeFile(join(path, 'root.raw'), raw);
    const store = await NodeFileStore.open(join(path, 'top.hds'), { create: true });
    await createImage(store, { size: 2 << 20, clusterSize: cluster });
    await store.close();
    const d = addSnapshot(newDescriptor({ sizeSectors: (2 << 20) / 512, blocksizeSectors: cluster / 512, file: 'root.raw', type: 'Plain' }), { newFile: 'top.hds' });
    await writeFile(join(path, 'DiskDescriptor.xml'), serializeDescriptor(d));
    const info = await infoJson(path);
    assert.deepEqual(info.deltas?.map((x) => [x.file, x.type, x.fileSize, x.allocatedClusters]), [
      ['root.raw', 'Plain', raw.length, 33],
      ['top.hds', 'Compressed', cluster, 0],
    ]);
    assert.equal(info.allocatedClusters, 33, 'clusters any delta maps');
    const read = await ok(['read', path, '--offset', '0', '--length', String(2 << 20)]);
    const model = new DiskModel(2 << 20);
    model.write(0, raw);
    assertBytesEqual(new Uint8Array(read.stdout), model.bytes, 'read through the raw base');
  });
});

function base(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('delete removes a snapshot by merging the delta above it into it; the disk reads the same and the top cannot be deleted', () => withTempDir(async (root) => {
  const folder = join(root, 'vm');
  await ok(['init', folder, '--size', '4M', '--cluster-size', '64K']);
  const dir = new NodeDirectory(folder);
  await writeThrough(dir, 0, new Uint8Array(70000).fill(1));
  await ok(['snapshot', folder]);
  await writeThrough(dir, 65536, new Uint8Array(100).fill(2));
  await ok(['snapshot', folder]);
  await writeThrough(dir, 200000, new Uint8Array(100).fill(3));
  const before = await readStack(dir);
  const info = JSON.parse((await ok(['info', folder, '--json'])).stdout.toString()) as { deltas: DeltaInfo[] };
  assert.equal(info.deltas.length, 3);
  const middle = info.deltas[1];
  const refused = await cli(['delete', folder, info.deltas[2].guid]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is the top delta, not a snapshot/);
  assert.equal((await cli(['delete', folder, '{00000000-0000-0000-0000-00000000abcd}'])).code, 1);
  await ok(['delete', folder, middle.guid]);
  const after = JSON.parse((await ok(['info', folder, '--json'])).stdout.toString()) as { deltas: DeltaInfo[] };
  assert.equal(after.deltas.length, 2);
  assert.ok(!after.deltas.some((d) => d.guid === middle.guid), 'the snapshot GUID is gone');
  assert.equal(after.deltas[1].file, middle.file, 'the snapshot file now holds the merged delta');
  assert.deepEqual(await readdir(folder).then((f) => f.filter((x) => x.startsWith('root.hds')).length), 2);
  assertBytesEqual(await readStack(dir), before, 'disk after delete');
  await assertPloopListsChain(folder, dir, "after delete");
  await assertChecksClean(await chainPaths(folder, dir), 'after delete');
}));

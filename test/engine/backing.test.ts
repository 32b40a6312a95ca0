// Every file the engine leaves at rest is one the ploop tools accept (issue #19, item 1): every
// cluster it maps is backed by disk blocks (no hole: "image is sparse"), the file ends at its
// last used cluster with no free slot left inside by a mere race, and CIF_Empty says whether
// any cluster is mapped. After a crash, check reports holes as a warning and --repair fills them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { createImage, PloopImage, checkImage, type BlockStore } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { assertToolsAccept, runPloop } from '../helpers/ploop.ts';
import { cli } from '../helpers/cli.ts';
import { headerFields, pokeU32, OFF, INUSE_MAGIC } from '../helpers/image-file.ts';
import '../helpers/source-workers.ts';

const MiB = 1 << 20;

async function newFile(path: string, size: number, clusterSize: number): Promise<void> {
  const store = await NodeFileStore.open(path, { create: true });
  try {
    await createImage(store, { size, clusterSize });
  } finally {
    await store.close();
  }
}

/** Disk space the file's blocks take, against its size rounded up to the file system's blocks. */
async function backing(path: string): Promise<{ allocated: number; size: number }> {
  const s = await stat(path);
  return { allocated: s.blocks * 512, size: Math.ceil(s.size / s.blksize) * s.blksize };
}

/** The same file, seen through a store that does not say it is sparse: the engine writes payloads only (as before #19). */
function notSparse(store: BlockStore): BlockStore {
  return {
    name: store.name, writable: store.writable,
    size: () => store.size(), read: (o, b) => store.read(o, b), write: (o, d) => store.write(o, d),
    flush: () => store.flush(), truncate: (n) => store.truncate(n), close: () => store.close(),
  };
}

test('two allocations racing with a one-cluster preallocation take slots back to back: no free slot is left inside the file', () => withTempDir(async (dir) => {
  // A 4 MiB disk preallocates one 1 MiB cluster at a time. The first allocation's extension used
  // to hold the next slot while it wrote the byte that ends it; the second allocation, issued
  // meanwhile, skipped it, and the clean close left a free slot inside the file.
  const path = join(dir, 'race.hds');
  await newFile(path, 4 * MiB, MiB);
  const image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true });
  const a = new Uint8Array(65536).fill(0xa1);
  const b = new Uint8Array(65536).fill(0xb2);
  await Promise.all([image.write(0, a), image.write(MiB, b)]);
  await image.close();
  const store = await NodeFileStore.open(path);
  try {
    const report = await checkImage(store);
    assert.equal(report.freeClustersInside, 0, JSON.stringify(report));
    assert.equal(report.allocatedClusters, 2);
  } finally {
    await store.close();
  }
  assert.equal((await stat(path)).size, 3 * MiB, 'the BAT cluster and two data clusters');
  const model = new DiskModel(4 * MiB);
  model.write(0, a);
  model.write(MiB, b);
  await assertQemuAgrees(path, model.bytes, 'two racing allocations');
}));

for (const runners of [0, 2]) {
  const who = runners === 0 ? 'the in-thread engine' : `${runners} runner workers`;
  test(`allocating writes, discards and rewrites by ${who} leave every byte of the file backed; qemu-img and ploop check accept it`, () => withTempDir(async (dir) => {
    const path = join(dir, 'backed.hds');
    const size = 48 * MiB;
    await newFile(path, size, 256 << 10);
    const model = new DiskModel(size);
    const rng = new Prng(0xbac0 + runners);
    const image = runners === 0
      ? await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true })
      : await ParallelImage.open([path], { writable: true, runners, onWarning: () => {} });
    try {
      for (let round = 0; round < 6; round++) {
        const requests: Promise<void>[] = [];
        for (let i = 0; i < 24; i++) {
          // Six requests in flight at a time, each in a sixth of the disk of its own: they may
          // complete in any order without overlapping.
          const lane = i % 6;
          const offset = lane * (size / 6) + rng.int(size / 6 - 600000);
          if (rng.chance(0.15)) {
            const length = rng.range(1, 600000);
            model.discard(offset, length);
            requests.push(image.discard(offset, length));
          } else {
            const data = rng.bytes(rng.range(1, 70000));
            model.write(offset, data);
            requests.push(image.write(offset, data));
          }
          if (lane === 5) await Promise.all(requests.splice(0));
        }
        await Promise.all(requests);
        await image.flush();
      }
      assertBytesEqual(await image.read(0, size), model.bytes, 'read back before close');
    } finally {
      await image.close();
    }
    const b = await backing(path);
    assert.ok(b.allocated >= b.size, `the file has holes: ${b.allocated} bytes allocated for ${b.size}`);
    await assertQemuAgrees(path, model.bytes, who);
  }));
}

test('check reports the holes of a sparse image as a warning (harmless to QEMU, refused by ploop); check --repair writes zeros over them, changing no byte', () => withTempDir(async (dir) => {
  const path = join(dir, 'holes.hds');
  await newFile(path, 32 * MiB, MiB);
  // Through a store that hides its sparseness the engine writes payloads only: the image of an
  // older ploop-wasm, or one whose zeros a power cut lost.
  const image = await PloopImage.open(notSparse(await NodeFileStore.open(path, { writable: true })), { writable: true });
  const model = new DiskModel(32 * MiB);
  for (const [offset, length, value] of [[4096, 5000, 1], [5 * MiB + 777, 300000, 2], [20 * MiB - 10, 20, 3]]) {
    const data = new Uint8Array(length).fill(value);
    model.write(offset, data);
    await image.write(offset, data);
  }
  await image.close();
  const before = await readFile(path);
  assert.ok((await backing(path)).allocated < before.length, 'the file has holes');
  const refused = await runPloop(['check', '-r', path]);
  assert.match(refused.stdout + refused.stderr, /is sparse/, 'ploop refuses it');

  const checked = await cli(['check', path, '--json']);
  assert.equal(checked.code, 0, 'holes are a warning: the exit status stays 0');
  const report = JSON.parse(checked.stdout.toString());
  assert.equal(report.clean, true);
  assert.ok(report.unbackedBytes > 0, `unbackedBytes ${report.unbackedBytes}`);
  const holes = report.findings.filter((f: { kind: string }) => f.kind === 'holes');
  assert.equal(holes.length, 1, JSON.stringify(report.findings));
  assert.equal(holes[0].severity, 'warning');
  assert.equal(holes[0].fixed, false);
  assert.match(holes[0].message, /holes .*harmless to QEMU.*ploop tools refuse.*\(header and BAT\).*cluster 0.*cluster 5.*check --repair writes zeros there/);
  const text = (await cli(['check', path])).stdout.toString();
  assert.match(text, /^Warning: \d+ bytes or more of the file are holes/m);

  const repaired = await cli(['check', path, '--repair', '--json']);
  assert.equal(repaired.code, 0, repaired.stderr);
  const fixed = JSON.parse(repaired.stdout.toString()).findings.find((f: { kind: string }) => f.kind === 'holes');
  assert.equal(fixed.fixed, true);
  assert.ok(Buffer.compare(await readFile(path), before) === 0, 'the repair changed no byte');
  const after = await backing(path);
  assert.ok(after.allocated >= after.size, `still holes after the repair: ${after.allocated} of ${after.size}`);
  const again = JSON.parse((await cli(['check', path, '--json'])).stdout.toString());
  assert.deepEqual(again.findings, []);
  assert.equal(again.unbackedBytes, 0);
  await assertQemuAgrees(path, model.bytes, 'after check --repair');
}));

test('CIF_Empty: set on a new image, cleared with the in-use flag before the first allocation, set again by a close that leaves no cluster, and by check --repair after a crash', () => withTempDir(async (dir) => {
  const path = join(dir, 'empty.hds');
  const flags = async () => headerFields(new Uint8Array(await readFile(path))).flags;
  await newFile(path, 8 * MiB, MiB);
  assert.equal(await flags(), 1, 'a new image is empty');
  await assertToolsAccept(path, 'a new image');

  let image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true });
  await image.write(2 * MiB, new Uint8Array(100).fill(7));
  assert.equal(await flags(), 0, 'cleared while in use (with the in-use flag)');
  await image.close();
  assert.equal(await flags(), 0);
  await assertToolsAccept(path, 'one cluster');

  image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true });
  await image.discard(0, 8 * MiB);
  await image.close();
  assert.equal(await flags(), 1, 'every cluster discarded: empty again');
  await assertToolsAccept(path, 'everything discarded');

  // A crash after the header write of a session that never allocated: in use, flag cleared.
  image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true });
  await image.write(0, new Uint8Array(10)); // zeros over a hole: the in-use flag, no allocation
  assert.equal(await flags(), 0);
  await image.close();
  assert.equal(await flags(), 1, 'close set it again');
  await pokeU32(path, OFF.inUse, INUSE_MAGIC);
  await pokeU32(path, OFF.flags, 0);
  const repaired = await cli(['check', path, '--repair']);
  assert.equal(repaired.code, 0, repaired.stdout.toString());
  assert.equal(await flags(), 1, 'check --repair sets it with the in-use flag cleared');
  await assertToolsAccept(path, 'after check --repair');

  // Wrong on an image nobody left in use: a warning, repaired.
  await pokeU32(path, OFF.flags, 0);
  const report = JSON.parse((await cli(['check', path, '--json'])).stdout.toString());
  assert.deepEqual(report.findings.map((f: { kind: string; severity: string }) => [f.kind, f.severity]), [['empty-flag', 'warning']]);
  assert.equal(report.clean, true);
  assert.equal((await cli(['check', path, '--repair'])).code, 0);
  assert.equal(await flags(), 1);
}));

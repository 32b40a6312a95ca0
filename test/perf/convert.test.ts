// convert's copy loop (2 MiB pieces, 4 in flight, straight from the delta files) against
// qemu-img: on a disk folder whose clusters come from two levels, on extents longer than a
// piece, and raw → ploop with many chunks in flight.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw, runOk } from '../helpers/qemu.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { cli, describeCli } from '../helpers/cli.ts';
import { NodeDirectory } from '../../src/stores/node-dir.ts';
import { qemuConvertChain, chainPaths } from '../helpers/stack.ts';
import { Prng } from '../helpers/prng.ts';

async function ok(args: string[], stdin?: Uint8Array) {
  const r = await cli(args, stdin);
  assert.equal(r.code, 0, describeCli(args, r));
  return r;
}

test('convert of a disk folder to raw reads each cluster from the delta that maps it (base and top), as qemu-img does', () => withTempDir(async (tmp) => {
  const path = join(tmp, 'disk');
  await ok(['init', path, '--size', '8M', '--cluster-size', '64K']);
  const rng = new Prng(21);
  await ok(['write', path, '--offset', '0'], rng.bytes(3 << 20)); // base: clusters 0..47
  await ok(['snapshot', path]);
  await ok(['write', path, '--offset', String(1 << 20)], rng.bytes(100000)); // top: copies up clusters 16..17
  await ok(['write', path, '--offset', String(6 << 20)], rng.bytes(70000)); // top only
  const ours = join(tmp, 'ours.raw');
  await ok(['convert', path, ours, '--to', 'raw']);
  const theirs = await qemuConvertChain(await chainPaths(path, new NodeDirectory(path)), join(tmp, 'theirs.raw'));
  assert.deepEqual(new Uint8Array(await readFile(ours)), theirs);
}));

test('convert ploop → raw of long extents (beyond one 2 MiB piece) and back to ploop matches qemu-img', () => withTempDir(async (dir) => {
  const img = join(dir, 'in.hds');
  await qemuCreate(img, '40M', '1M');
  // One 9 MiB run (several pieces, the last one short), a lone cluster, a partly written cluster.
  await qemuIo(img, [ioWrite(0x21, 1 << 20, 9 << 20), ioWrite(0x42, 20 << 20, 1 << 20), ioWrite(0x63, (30 << 20) + 4096, 8192)]);
  const ours = join(dir, 'ours.raw');
  await ok(['convert', img, ours]);
  const theirs = await qemuConvertToRaw(img, join(dir, 'theirs.raw'));
  assert.deepEqual(new Uint8Array(await readFile(ours)), theirs);
  // The output is sparse: the holes (28 of 40 MiB) take no blocks.
  assert.ok((await stat(ours)).blocks * 512 <= 13 << 20, `raw output uses ${(await stat(ours)).blocks * 512} bytes`);
  const back = join(dir, 'back.hds');
  await ok(['convert', ours, back, '--to', 'ploop', '--cluster-size', '1M']);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'parallels', ours, back]);
  await assertToolsAccept(back, 'raw → ploop');
  const info = JSON.parse((await ok(['info', back, '--json'])).stdout.toString());
  assert.equal(info.allocatedClusters, 11, '9 + 1 + 1 clusters hold data');
}));

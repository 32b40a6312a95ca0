// convert's copy paths against qemu-img: ploop → raw (the read-ahead pipeline with in-order
// writes, gathered fragmented extents, holes left sparse) for v1 and v2 images and a 3-level
// disk folder; raw → ploop → raw round trips; raw → ploop byte for byte as qemu-img writes it;
// a disk folder flattened into one ploop file; write failures in the middle of both pipelines.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { link, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withTempDir } from '../helpers/tmp.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { cli, describeCli } from '../helpers/cli.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw, qemuCheck, describeCheck, runOk } from '../helpers/qemu.ts';
import { qemuConvertChain, chainPaths } from '../helpers/stack.ts';
import { NodeDirectory } from '../../src/stores/node-dir.ts';
import { Prng } from '../helpers/prng.ts';

async function ok(args: string[], stdin?: Uint8Array) {
  const r = await cli(args, stdin);
  assert.equal(r.code, 0, describeCli(args, r));
  return r;
}

async function assertSameAsQemu(img: string, dir: string, what: string) {
  const ours = join(dir, 'ours.raw');
  await ok(['convert', img, ours, '--to', 'raw']);
  const theirs = await qemuConvertToRaw(img, join(dir, 'theirs.raw'));
  const mine = new Uint8Array(await readFile(ours));
  assert.equal(mine.length, theirs.length, `${what}: size`);
  assert.ok(Buffer.compare(mine, theirs) === 0, `${what}: bytes differ from qemu-img convert`);
  return ours;
}

test('ploop → raw of a fragmented v2 image (clusters allocated in reverse order) equals qemu-img convert and stays sparse', () => withTempDir(async (dir) => {
  const img = join(dir, 'frag.hds');
  await qemuCreate(img, '8M', '64k');
  // Clusters 40 down to 1 written last-first: each is its own extent (host order reversed),
  // virtually adjacent, so the reads are gathered into write buffers (2.5 MiB > one 2 MiB
  // buffer: the gathering breaks at the buffer's end). Then a hole, and a partial cluster.
  const writes: string[] = [];
  for (let c = 40; c >= 1; c--) writes.push(ioWrite(c & 0xff, c * 65536, 65536));
  writes.push(ioWrite(0xee, (6 << 20) + 4096, 1000));
  await qemuIo(img, writes);
  const ours = await assertSameAsQemu(img, dir, 'fragmented v2');
  const blocks = (await stat(ours)).blocks * 512;
  assert.ok(blocks <= (41 << 16) + (1 << 20), `the holes take no blocks: ${blocks} bytes used for 41 clusters of data`);
}));

test('ploop → raw of a v1 image with long extents, holes and a short last piece equals qemu-img convert', () => withTempDir(async (dir) => {
  const img = join(dir, 'v1.hds');
  await ok(['create', img, '--size', '24M', '--cluster-size', '1M', '--format', 'v1']);
  const rng = new Prng(7);
  await ok(['write', img, '--offset', String(1 << 20)], rng.bytes(5 << 20)); // 5 MiB: 2 + 2 + 1 MiB pieces
  await ok(['write', img, '--offset', String(12 << 20)], rng.bytes(300000)); // part of one cluster
  await ok(['write', img, '--offset', String(23 << 20)], rng.bytes(1 << 20)); // the last cluster
  const info = JSON.parse((await ok(['info', img, '--json'])).stdout.toString());
  assert.equal(info.format, 'v1');
  await assertSameAsQemu(img, dir, 'v1');
}));

test('ploop → raw of a 3-level disk folder reads each cluster from the newest level that maps it', () => withTempDir(async (dir) => {
  const path = join(dir, 'disk');
  await ok(['init', path, '--size', '6M', '--cluster-size', '64K']);
  const rng = new Prng(33);
  await ok(['write', path, '--offset', '0'], rng.bytes(3 << 20)); // base: clusters 0..47
  await ok(['snapshot', path]);
  await ok(['write', path, '--offset', String(512 << 10)], rng.bytes(200000)); // middle over base
  await ok(['write', path, '--offset', String(4 << 20)], rng.bytes(70000)); // middle only
  await ok(['snapshot', path]);
  await ok(['write', path, '--offset', String(600 << 10)], rng.bytes(65536)); // top over middle
  await ok(['write', path, '--offset', String((5 << 20) + 100)], rng.bytes(5000)); // top only
  const ours = join(dir, 'ours.raw');
  await ok(['convert', path, ours, '--to', 'raw']);
  const files = await chainPaths(path, new NodeDirectory(path));
  assert.equal(files.length, 3, 'three deltas');
  const theirs = await qemuConvertChain(files, join(dir, 'theirs.raw'));
  assert.ok(Buffer.compare(new Uint8Array(await readFile(ours)), theirs) === 0, 'bytes differ from qemu-img convert of the chain');
  // The folder named by its descriptor file converts the same.
  const viaDescriptor = join(dir, 'dd.raw');
  await ok(['convert', join(path, 'DiskDescriptor.xml'), viaDescriptor, '--to', 'raw']);
  assert.ok(Buffer.compare(new Uint8Array(await readFile(viaDescriptor)), theirs) === 0, 'via DiskDescriptor.xml: bytes differ');
}));

test('raw → ploop (v1 and v2) → raw round trips, and qemu-img sees the same disk', () => withTempDir(async (dir) => {
  const raw = join(dir, 'in.raw');
  const rng = new Prng(5);
  const bytes = new Uint8Array(20 << 20);
  bytes.set(rng.bytes(3 << 20), 1 << 20);
  bytes.set(rng.bytes(70000), 17 << 20);
  await writeFile(raw, bytes);
  for (const format of ['v1', 'v2']) {
    const hds = join(dir, `${format}.hds`);
    await ok(['convert', raw, hds, '--to', 'ploop', '--cluster-size', '256K', '--format', format]);
    await assertToolsAccept(hds, `raw → ploop ${format}`);
    await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'parallels', raw, hds]);
    const back = join(dir, `${format}.raw`);
    await ok(['convert', hds, back]);
    assert.ok(Buffer.compare(new Uint8Array(await readFile(back)), bytes) === 0, `${format}: round trip differs`);
  }
}));

test('raw → ploop writes the very file qemu-img convert writes: non-zero clusters in order, the BAT at the end', () => withTempDir(async (dir) => {
  const raw = join(dir, 'in.raw');
  const rng = new Prng(8);
  // Not a whole number of sectors; data in the first cluster, a run over several clusters (and
  // over convert's 2 MiB buffers), a lone partial cluster, and bytes in the short last cluster.
  const bytes = new Uint8Array((9 << 20) + 12345);
  bytes.set(rng.bytes(1000), 0);
  bytes.set(rng.bytes(3 << 20), (1 << 20) + 4096);
  bytes.set(rng.bytes(70000), 6 << 20);
  bytes.set(rng.bytes(100), bytes.length - 100);
  await writeFile(raw, bytes);
  for (const cluster of ['64K', '1M']) {
    const ours = join(dir, `ours-${cluster}.hds`);
    const theirs = join(dir, `theirs-${cluster}.hds`);
    await ok(['convert', raw, ours, '--to', 'ploop', '--cluster-size', cluster]);
    await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', '-o', `cluster_size=${cluster}`, raw, theirs]);
    const [mine, qemu] = [new Uint8Array(await readFile(ours)), new Uint8Array(await readFile(theirs))];
    assert.equal(mine.length, qemu.length, `${cluster}: file size`);
    assert.ok(Buffer.compare(mine, qemu) === 0, `${cluster}: bytes differ from qemu-img convert's output`);
  }
}));

test('ploop → ploop of a sparse 64 GiB image writes qemu-img convert\'s very file, reading only what the BAT maps', () => withTempDir(async (dir) => {
  const img = join(dir, 'sparse.hds');
  await qemuCreate(img, '64G', '1M');
  await qemuIo(img, [ioWrite(0x5a, 0, 1 << 20), ioWrite(0x33, 40 * 2 ** 30, 65536), ioWrite(0x44, 64 * 2 ** 30 - 4096, 4096)]);
  const ours = join(dir, 'ours.hds');
  const theirs = join(dir, 'theirs.hds');
  await ok(['convert', img, ours, '--to', 'ploop']);
  await runOk('qemu-img', ['convert', '-f', 'parallels', '-O', 'parallels', img, theirs]);
  const [mine, qemu] = [new Uint8Array(await readFile(ours)), new Uint8Array(await readFile(theirs))];
  assert.equal(mine.length, qemu.length, 'file size');
  assert.ok(Buffer.compare(mine, qemu) === 0, 'bytes differ from qemu-img convert\'s output');
  const info = JSON.parse((await ok(['info', ours, '--json'])).stdout.toString());
  assert.equal(info.allocatedClusters, 3);
  await assertToolsAccept(ours, 'ploop → ploop');
}));

test('a sparse raw input is read around the page cache (O_DIRECT) and converts to qemu-img\'s very file, and to a sparse raw copy', () => withTempDir(async (dir) => {
  // 1 GiB and a bit (not a whole number of sectors: the last direct read is cut at the end),
  // with data at the start, at an odd offset in the middle and in the last bytes; the rest holes.
  const raw = join(dir, 'sparse.raw');
  const size = 2 ** 30 + 12345;
  const rng = new Prng(19);
  const pieces: Array<[number, Uint8Array]> = [[0, rng.bytes(1000)], [(600 << 20) + 4196, rng.bytes(70000)], [size - 100, rng.bytes(100)]];
  const fd = await open(raw, 'w');
  try {
    await fd.truncate(size);
    for (const [at, bytes] of pieces) await fd.write(bytes, 0, bytes.length, at);
    await fd.sync();
  } finally {
    await fd.close();
  }
  // The holes are zeroed into convert's buffer by the kernel, not read through the page cache
  // (which would allocate and zero a cached page per 4 KiB of hole: 18 s for 10 GiB, cold).
  const cached = async () => Number((await runOk('fincore', ['--bytes', '--noheadings', '--output', 'RES', raw])).stdout.trim());
  const ours = join(dir, 'ours.hds');
  await ok(['convert', raw, ours, '--from', 'raw']);
  assert.ok(await cached() < 16 << 20, `convert left ${await cached()} bytes of the input in the page cache`);
  const theirs = join(dir, 'theirs.hds');
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', raw, theirs]);
  assert.ok(Buffer.compare(await readFile(ours), await readFile(theirs)) === 0, 'bytes differ from qemu-img convert\'s output');
  const copy = join(dir, 'copy.raw');
  await ok(['convert', raw, copy, '--from', 'raw']);
  assert.equal((await stat(copy)).size, size);
  // Sparse: only the three 2 MiB pieces that hold data are written.
  assert.ok((await stat(copy)).blocks * 512 <= 6 << 20, `the copy is sparse: ${(await stat(copy)).blocks * 512} bytes allocated`);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', raw, copy]);
}));

test('a disk folder converts to one ploop file (other cluster size) that holds the same disk', () => withTempDir(async (dir) => {
  const path = join(dir, 'disk');
  await ok(['init', path, '--size', '8M', '--cluster-size', '64K']);
  const rng = new Prng(12);
  await ok(['write', path, '--offset', '0'], rng.bytes(3 << 20));
  await ok(['snapshot', path]);
  await ok(['write', path, '--offset', String(1 << 20)], rng.bytes(100000));
  await ok(['write', path, '--offset', String(7 << 20)], rng.bytes(5000));
  const flat = join(dir, 'flat.hds');
  await ok(['convert', path, flat, '--to', 'ploop', '--cluster-size', '256K']);
  await assertToolsAccept(flat, 'disk folder → ploop');
  const theirs = await qemuConvertChain(await chainPaths(path, new NodeDirectory(path)), join(dir, 'theirs.raw'));
  assert.deepEqual(await qemuConvertToRaw(flat, join(dir, 'flat.raw')), theirs);
  const info = JSON.parse((await ok(['info', flat, '--json'])).stdout.toString());
  assert.equal(info.clusterSize, 256 << 10);
  assert.equal(info.allocatedClusters, 13, 'clusters 0-11 (3 MiB) and the one at 7 MiB');
}));

test('a write that fails in the middle of raw → ploop ends with a clear error, not a hang or a crash', () => withTempDir(async (dir) => {
  const raw = join(dir, 'in.raw');
  await writeFile(raw, new Prng(4).bytes(12 << 20));
  const r = await cli(['convert', raw, '/dev/full', '--to', 'ploop']);
  assert.equal(r.code, 1, describeCli(['convert', raw, '/dev/full'], r));
  assert.match(r.stderr, /ploop-wasm convert: .*\/dev\/full.*(ENOSPC|no space)/i);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}));

test('an OUT that is one of the input files (itself, a hard link, a delta of the folder) is refused with exit 2, and the input is untouched', () => withTempDir(async (dir) => {
  const img = join(dir, 'in.hds');
  await qemuCreate(img, '16M', '1M');
  await qemuIo(img, [ioWrite(0x11, 0, 1 << 20)]);
  const raw = join(dir, 'in.raw');
  await writeFile(raw, new Uint8Array(8192).fill(0x22));
  const folder = join(dir, 'disk');
  await ok(['init', folder, '--size', '4M', '--cluster-size', '64K']);
  await ok(['write', folder, '--offset', '0'], new Uint8Array(70000).fill(0x33));
  await ok(['snapshot', folder]);
  const deltas = (await readdir(folder)).filter((f) => f.startsWith('root.hds'));
  assert.equal(deltas.length, 2);
  await link(img, join(dir, 'hard.hds'));
  const cases: Array<[string, string, string[]]> = [
    [img, img, ['--to', 'ploop']],
    [img, join(dir, 'hard.hds'), []],
    [raw, raw, ['--to', 'raw']],
    [folder, join(folder, deltas.sort()[0]), ['--to', 'ploop']],
    [join(folder, 'DiskDescriptor.xml'), join(folder, deltas.sort()[1]), []],
  ];
  const files = [img, raw, ...deltas.map((f) => join(folder, f))];
  const before = await Promise.all(files.map((f) => readFile(f)));
  for (const [input, output, extra] of cases) {
    const args = ['convert', input, output, ...extra];
    const r = await cli(args);
    assert.equal(r.code, 2, describeCli(args, r));
    assert.match(r.stderr, /OUT .* is the input file .* itself \(device \d+, inode \d+\): convert creates OUT empty first, which would destroy the input/);
  }
  const after = await Promise.all(files.map((f) => readFile(f)));
  for (let i = 0; i < files.length; i++) assert.ok(Buffer.compare(before[i], after[i]) === 0, `${files[i]} changed`);
  const check = await qemuCheck(img);
  assert.ok(check.clean, describeCheck(check));
}));

test('a write that fails in the middle of ploop → raw ends with a clear error, not a hang or a crash', () => withTempDir(async (dir) => {
  const img = join(dir, 'in.hds');
  await qemuCreate(img, '16M', '1M');
  await qemuIo(img, [ioWrite(0x11, 0, 10 << 20)]);
  // /dev/full accepts the open (O_TRUNC is ignored there) and fails every write with ENOSPC,
  // while later pieces are being read: the failure must surface through the in-order chain.
  const r = await cli(['convert', img, '/dev/full', '--to', 'raw']);
  assert.equal(r.code, 1, describeCli(['convert', img, '/dev/full'], r));
  assert.match(r.stderr, /ploop-wasm convert: .*\/dev\/full.*(ENOSPC|no space)/i);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}));

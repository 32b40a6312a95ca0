// CLI contract tests: the built `ploop-wasm` (dist/bin/ploop-wasm.js, made by npm run build)
// against qemu-img. Other tools script against these outputs and exit codes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, stat, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withTempDir } from '../helpers/tmp.ts';
import { assertToolsAccept, runPloop } from '../helpers/ploop.ts';
import { cli } from '../helpers/cli.ts';
import { qemuCreate, qemuIo, ioWrite, runOk, qemuConvertToRaw } from '../helpers/qemu.ts';


async function cliJson(args: string[]): Promise<Record<string, unknown>> {
  const r = await cli(args);
  assert.equal(r.code, 0, `ploop-wasm ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString());
}

test('create makes the same file as qemu-img create but for CIF_Empty, and info --json reports its header', () => withTempDir(async (dir) => {
  const ours = join(dir, 'ours.hds');
  const theirs = join(dir, 'theirs.hds');
  assert.equal((await cli(['create', ours, '--size', '64M', '--cluster-size', '64K'])).code, 0);
  await qemuCreate(theirs, '64M', '64k');
  // ploop's init sets CIF_Empty (header flags bit 0) on a new image; qemu-img leaves it 0.
  const expected = await readFile(theirs);
  expected[52] |= 1;
  assert.deepEqual(await readFile(ours), expected);
  const info = await cliJson(['info', ours, '--json']);
  assert.deepEqual(
    { format: info.format, virtualSize: info.virtualSize, clusterSize: info.clusterSize, batEntries: info.batEntries, dataOffset: info.dataOffset, inUse: info.inUse, allocatedClusters: info.allocatedClusters },
    { format: 'v2', virtualSize: 64 << 20, clusterSize: 65536, batEntries: 1024, dataOffset: 65536, inUse: false, allocatedClusters: 0 },
  );
  const v1 = join(dir, 'v1.hds');
  assert.equal((await cli(['create', v1, '--size', '10M', '--format', 'v1'])).code, 0);
  const v1info = await cliJson(['info', v1, '--json']);
  assert.equal(v1info.format, 'v1');
  assert.equal(v1info.clusterSize, 1 << 20, 'default cluster size is 1 MiB like qemu-img');
}));

test('write puts stdin at the offset and read returns it; qemu-img sees the same bytes', () => withTempDir(async (dir) => {
  const img = join(dir, 'a.hds');
  await cli(['create', img, '--size', '8M', '--cluster-size', '4K']);
  const payload = new Uint8Array(10000).map((_, i) => (i * 31 + 7) & 0xff);
  const w = await cli(['write', img, '--offset', '4000'], payload);
  assert.equal(w.code, 0, w.stderr);
  const r = await cli(['read', img, '--offset', '4000', '--length', '10000']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(new Uint8Array(r.stdout), payload);
  const raw = await qemuConvertToRaw(img, join(dir, 'a.raw'));
  assert.deepEqual(raw.subarray(4000, 14000), payload);
  await assertToolsAccept(img, 'our image');
  // reads of holes are zeros
  const hole = await cli(['read', img, '--offset', '1048576', '--length', '4096']);
  assert.ok(hole.stdout.every((b) => b === 0));
}));

test('info reads an image qemu-io wrote and counts its allocated clusters', () => withTempDir(async (dir) => {
  const img = join(dir, 'q.hds');
  await qemuCreate(img, '16M', '64k');
  await qemuIo(img, [ioWrite(0xab, 0, 65536), ioWrite(0xcd, 5 << 20, 100)]);
  const info = await cliJson(['info', img, '--json']);
  assert.equal(info.allocatedClusters, 2);
  const map = (await cliJson(['map', img, '--json'])) as unknown as Array<{ start: number; length: number; data: boolean; offset?: number }>;
  const qmap = JSON.parse((await runOk('qemu-img', ['map', '-f', 'parallels', '--output=json', img])).stdout) as Array<{ start: number; length: number; data: boolean; offset?: number }>;
  const dataOnly = (xs: typeof map) => xs.filter((x) => x.data).map((x) => ({ start: x.start, length: x.length, offset: x.offset }));
  assert.deepEqual(dataOnly(map), dataOnly(qmap));
}));

test('check exits 0 on a clean image, 2 with a corruption, 3 with only a leak, and --repair fixes both', () => withTempDir(async (dir) => {
  const img = join(dir, 'c.hds');
  await qemuCreate(img, '4M', '1M');
  await qemuIo(img, [ioWrite(0x11, 0, 4096)]);
  assert.equal((await cli(['check', img])).code, 0);
  // Leak: one cluster of garbage appended.
  await appendFile(img, new Uint8Array(1 << 20).fill(0xee));
  const leak = await cli(['check', img, '--json']);
  assert.equal(leak.code, 3, leak.stdout.toString());
  const leakReport = JSON.parse(leak.stdout.toString());
  assert.equal(leakReport.leakedBytes, 1 << 20);
  assert.equal(leakReport.leakedClusters, 1);
  // Corruption: the in-use flag set by hand ("Ynot" at 0x2c).
  const bytes = await readFile(img);
  bytes.write('Ynot', 0x2c, 'latin1');
  await writeFile(img, bytes);
  const bad = await cli(['check', img]);
  assert.equal(bad.code, 2);
  assert.match(bad.stdout.toString(), /ERROR image was not closed correctly/);
  const fixed = await cli(['check', img, '--repair']);
  assert.equal(fixed.code, 0, fixed.stdout.toString());
  assert.match(fixed.stdout.toString(), /1 leaked cluster\n\s+1 corruption\n/);
  await assertToolsAccept(img, 'after check --repair');
  assert.equal((await stat(img)).size, 2 << 20);
}));

test('convert ploop → raw equals qemu-img convert, and raw → ploop allocates only non-zero clusters', () => withTempDir(async (dir) => {
  const img = join(dir, 'in.hds');
  await qemuCreate(img, '32M', '64k');
  await qemuIo(img, [ioWrite(0x5a, 100000, 200000), ioWrite(0x77, 20 << 20, 65536)]);
  const ours = join(dir, 'ours.raw');
  assert.equal((await cli(['convert', img, ours])).code, 0);
  const theirs = await qemuConvertToRaw(img, join(dir, 'theirs.raw'));
  assert.deepEqual(new Uint8Array(await readFile(ours)), theirs);
  const back = join(dir, 'back.hds');
  const c = await cli(['convert', ours, back, '--to', 'ploop', '--cluster-size', '64K']);
  assert.equal(c.code, 0, c.stderr);
  const info = await cliJson(['info', back, '--json']);
  assert.equal(info.allocatedClusters, 5, 'clusters 1..4 (100000..300000) and one at 20 MiB');
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'parallels', ours, back]);
  await assertToolsAccept(back, 'convert back');
}));

test('replay applies a workload, logs acknowledged flushes and prints its counters', () => withTempDir(async (dir) => {
  const img = join(dir, 'r.hds');
  await cli(['create', img, '--size', '16M', '--cluster-size', '64K']);
  const model = new Uint8Array(16 << 20);
  const lines: string[] = [];
  for (let g = 0; g < 5; g++) {
    for (let i = 0; i < 20; i++) {
      const offset = (g * 20 + i) * 100003 % ((16 << 20) - 5000);
      const data = new Uint8Array(3000).fill(g * 20 + i + 1);
      // keep ranges inside a group apart: stride 100003 > 3000
      model.set(data, offset);
      lines.push(JSON.stringify({ op: 'write', offset, data: Buffer.from(data).toString('base64') }));
    }
    lines.push(JSON.stringify({ op: 'flush' }));
  }
  lines.push(JSON.stringify({ op: 'discard', offset: 0, length: 1 << 20 }));
  model.fill(0, 0, 1 << 20);
  lines.push(JSON.stringify({ op: 'flush' }));
  const ops = join(dir, 'ops.jsonl');
  await writeFile(ops, lines.join('\n') + '\n');
  const ack = join(dir, 'ack.log');
  const r = await cli(['replay', img, ops, '--json', '--ack-log', ack]);
  assert.equal(r.code, 0, r.stderr);
  const counters = JSON.parse(r.stdout.toString());
  for (const key of ['ops', 'dataWrites', 'batPageWrites', 'clustersAllocated', 'seconds']) assert.equal(typeof counters[key], 'number', key);
  assert.equal(counters.ops, lines.length);
  assert.ok(counters.batPageWrites < counters.clustersAllocated, 'BAT writes are coalesced');
  const acks = (await readFile(ack, 'utf8')).trim().split('\n');
  assert.deepEqual(acks, [21, 42, 63, 84, 105, 107].map((k) => `flushed ${k}`));
  await assertToolsAccept(img, 'our image');
  assert.deepEqual(await qemuConvertToRaw(img, join(dir, 'r.raw')), model);
}));

test('replay rejects a malformed line with its line number and leaves the image clean', () => withTempDir(async (dir) => {
  const img = join(dir, 'r.hds');
  await cli(['create', img, '--size', '1M', '--cluster-size', '4K']);
  const ops = join(dir, 'ops.jsonl');
  await writeFile(ops, '{"op":"flush"}\n{"op":"write","offset":-4,"data":""}\n');
  const r = await cli(['replay', img, ops]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ops\.jsonl line 2: "offset" must be a whole number/);
  await writeFile(ops, `{"op":"write","offset":${1 << 20},"data":"AAEC"}\n`);
  const range = await cli(['replay', img, ops]);
  assert.equal(range.code, 1);
  assert.match(range.stderr, /line 1: write: range 1048576\+3 is outside the virtual disk/);
  await assertToolsAccept(img, 'our image');
}));

test('bench --json prints iops and bytesPerSecond', () => withTempDir(async (dir) => {
  const img = join(dir, 'b.hds');
  await cli(['create', img, '--size', '8M', '--cluster-size', '64K']);
  for (const pattern of ['randwrite', 'randread', 'seqread']) {
    const out = await cliJson(['bench', img, '--pattern', pattern, '--block-size', '4K', '--depth', '4', '--count', '500', '--json']);
    assert.ok((out.iops as number) > 0 && (out.bytesPerSecond as number) > 0, pattern);
    assert.equal(out.pattern, pattern);
    // Writes: the flush is timed apart (like qemu-img bench); reads have none.
    if (pattern.endsWith('write')) assert.ok((out.flushSeconds as number) > 0, `${pattern} flushSeconds`);
    else assert.equal(out.flushSeconds, 0);
  }
  await assertToolsAccept(img, 'our image');
}));

test('--help lists every command and each command has its own help; mistakes exit 2 with usage', async () => {
  const help = await cli(['--help']);
  assert.equal(help.code, 0);
  for (const c of ['create', 'info', 'check', 'convert', 'read', 'write', 'replay', 'bench']) {
    assert.match(help.stdout.toString(), new RegExp(`\\n  ${c} `));
    const h = await cli([c, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout.toString(), new RegExp(`usage: ploop-wasm ${c} `));
  }
  const bad = await cli(['create', 'x.hds', '--size', 'lots']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--size: "lots" is not a size/);
  const unknown = await cli(['frobnicate']);
  assert.equal(unknown.code, 2);
});

test('a file that is not a ploop image gets a clear error, not a crash', () => withTempDir(async (dir) => {
  const f = join(dir, 'junk.hds');
  await writeFile(f, new Uint8Array(4096).fill(0x41));
  const r = await cli(['info', f]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /signature is "AAAAAAAAAAAAAAAA", expected "WithoutFreeSpace" \(v1\) or "WithouFreSpacExt" \(v2\)/);
  const missing = await cli(['info', join(dir, 'nope.hds')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.hds/);
}));

test('write from a pipe allocates clusters back to back: 2 MiB into a 4 MiB image with 1 MiB clusters leaves no free cluster inside the file (5 runs)', () => withTempDir(async (dir) => {
  // The pipe hands the write its input in 64 KiB chunks, each an image.write of its own: the
  // chunk that starts cluster 1 used to find the slot after cluster 0's held back by the
  // preallocation (one-cluster chunks on a 4 MiB disk), take the one after it, and leave a free
  // slot inside the file (check --json freeClustersInside 1, ploop check -c "Hole at block 2").
  const data = new Uint8Array(2 << 20).map((_, i) => (i * 13 + 5) & 0xff);
  for (let run = 0; run < 5; run++) {
    const img = join(dir, `pipe-${run}.hds`);
    assert.equal((await cli(['create', img, '--size', '4M', '--cluster-size', '1M'])).code, 0);
    const w = await cli(['write', img, '--offset', '0'], data);
    assert.equal(w.code, 0, w.stderr);
    const report = await cliJson(['check', img, '--json']);
    assert.equal(report.freeClustersInside, 0, `run ${run}: free clusters inside the file`);
    assert.equal((await stat(img)).size, 3 << 20, `run ${run}: BAT cluster and two data clusters`);
    const detailed = await runPloop(['check', '-r', '-f', '-c', img]);
    assert.doesNotMatch(detailed.stdout + detailed.stderr, /Hole at block/, `run ${run}: ${detailed.stdout}${detailed.stderr}`);
    await assertToolsAccept(img, `run ${run}`);
    const back = await cli(['read', img, '--offset', '0', '--length', String(data.length)]);
    assert.ok(Buffer.from(back.stdout).equals(Buffer.from(data)), `run ${run}: read back`);
  }
}));

test('demo leaves a sample image that qemu-img and ploop check accept', () => withTempDir(async (dir) => {
  const r = await cli(['demo', '--dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  await assertToolsAccept(join(dir, 'sample.hds'), 'the demo image');
}));

test('info on a damaged image shows it as QEMU reads it and says which clusters are damaged (text and --json); read and convert work, write is refused', () => withTempDir(async (dir) => {
  const path = join(dir, 'd.hds');
  await qemuCreate(path, '4M', '1M');
  await qemuIo(path, [ioWrite(0x11, 0, 1 << 20), ioWrite(0x22, 1 << 20, 1 << 20)]);
  const bytes = await readFile(path);
  bytes.writeUInt32LE(bytes.readUInt32LE(64), 68); // BAT[1] := BAT[0]
  bytes.writeUInt32LE(40, 72); // BAT[2] past the end of the file
  await writeFile(path, bytes);

  const info = await cliJson(['info', path, '--json']);
  assert.deepEqual(info.damagedClusters, [
    { cluster: 1, problem: 'duplicate', hostOffset: 1 << 20 },
    { cluster: 2, problem: 'outside', hostOffset: 40 << 20 },
  ]);
  assert.deepEqual(info.damage, ['corrupt BAT: entry 1 (host byte 1048576) points at a cluster another entry already uses (2 bad entries in all)']);
  const text = (await cli(['info', path])).stdout.toString();
  assert.match(text, /^damage: corrupt BAT: entry 1 .*\n {2}cluster 1: duplicate \(host byte 1048576\)\n {2}cluster 2: outside \(host byte 41943040\)\n {2}reads return what QEMU reads; run `ploop-wasm check --repair` before writing$/m);

  const out = join(dir, 'd.raw');
  const convert = await cli(['convert', path, out, '--to', 'raw']);
  assert.equal(convert.code, 0, convert.stderr);
  assert.match(convert.stderr, /the image is damaged, reading it as QEMU does/);
  assert.deepEqual(new Uint8Array(await readFile(out)), await qemuConvertToRaw(path, join(dir, 'q.raw')));

  const write = await cli(['write', path, '--offset', '0'], new Uint8Array(512));
  assert.equal(write.code, 1);
  assert.match(write.stderr, /^ploop-wasm write: corrupt BAT: entry 1 .*run check --repair \[ECORRUPT\]\n$/);
  assert.deepEqual(await readFile(path), bytes, 'the refused write changed nothing');
}));

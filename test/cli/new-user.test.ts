// What a new user hit (issue #19, item 5), each as the user met it: errors as one line without a
// stack, nothing left behind by a failed create/init, no silent overwrite, sizes with suffixes
// everywhere, messages without doubled prefixes or internal names, replay validated before its
// first write, serve of a missing folder, map of a disk folder naming each delta file, --version.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withTempDir } from '../helpers/tmp.ts';
import { cli, cliCommand, describeCli, type CliResult } from '../helpers/cli.ts';
import { qemuCheck, describeCheck, run, runOk } from '../helpers/qemu.ts';
import { chainPaths, fileHash, qemuChainSpec } from '../helpers/stack.ts';
import { NodeDirectory } from '../../src/node.ts';
import { Prng } from '../helpers/prng.ts';

async function ok(args: string[], stdin?: Uint8Array): Promise<CliResult> {
  const r = await cli(args, stdin);
  assert.equal(r.code, 0, describeCli(args, r));
  return r;
}

/** A failure reported as the CLI's one line (no stack trace, no Node internals). */
function assertOneLineError(args: string[], r: CliResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, describeCli(args, r));
  assert.doesNotMatch(r.stderr, /\n\s+at |node:internal|Node\.js v\d/, `a stack trace: ${r.stderr}`);
  const first = r.stderr.split('\n')[0];
  assert.match(first, message, describeCli(args, r));
}

async function fails(args: string[], code: number, message: RegExp, stdin?: Uint8Array): Promise<CliResult> {
  const r = await cli(args, stdin);
  assertOneLineError(args, r, code, message);
  return r;
}

/** Run the CLI with custom stdio; kill it (and fail) if it has not ended after `timeoutMs`. */
async function spawnCli(args: string[], options: { stdin?: number | 'pipe'; onStdout?: (child: ReturnType<typeof spawn>) => void; timeoutMs?: number }): Promise<CliResult & { timedOut: boolean }> {
  const command = await cliCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...command, ...args], { stdio: [options.stdin ?? 'pipe', 'pipe', 'pipe'] });
    let err = '';
    const out: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, options.timeoutMs ?? 20000);
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.stdout!.once('data', () => options.onStdout?.(child));
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stdout!.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err, timedOut });
    });
    if (child.stdin) child.stdin.end();
  });
}

test('a write past the end of the disk is a one-line error, and the image stays clean', () => withTempDir(async (dir) => {
  const img = join(dir, 'w.hds');
  await ok(['create', img, '--size', '1M']);
  const r = await fails(['write', img, '--offset', '1048575'], 1, /^ploop-wasm write: range 1048575\+2 is outside the virtual disk \(0\.\.1048576 bytes\) \[ERANGE\]$/, new TextEncoder().encode('xx'));
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  const check = await qemuCheck(img);
  assert.ok(check.clean, describeCheck(check));
  // A larger stream (a file as stdin) whose later chunks fall outside: the first failure ends
  // it, in one line.
  const big = join(dir, 'big.bin');
  await writeFile(big, new Uint8Array(3 << 20).fill(7));
  const fd = openSync(big, 'r');
  try {
    const r2 = await spawnCli(['write', img, '--offset', '0'], { stdin: fd });
    assertOneLineError(['write'], r2, 1, /^ploop-wasm write: range \d+\+\d+ is outside the virtual disk/);
  } finally {
    closeSync(fd);
  }
  assert.ok((await qemuCheck(img)).clean);
}));

test('stdin that is a folder is an error; a reader that goes away (read | head) ends read quietly', () => withTempDir(async (dir) => {
  const img = join(dir, 's.hds');
  await ok(['create', img, '--size', '64M']);
  const fd = openSync(dir, 'r');
  try {
    const r = await spawnCli(['write', img, '--offset', '0'], { stdin: fd });
    assertOneLineError(['write'], r, 1, /^ploop-wasm write: stdin is a folder/);
  } finally {
    closeSync(fd);
  }
  // The reader closes the pipe after the first bytes: no EPIPE stack trace.
  const r = await spawnCli(['read', img, '--offset', '0', '--length', '64M'], { onStdout: (child) => child.stdout!.destroy() });
  assert.equal(r.timedOut, false);
  assert.equal(r.stderr, '', 'nothing on stderr');
}));

test('doubled prefixes, internal names, ENOENT tagged EIO, "Leak space leaked" and "1 clusters" are gone', () => withTempDir(async (dir) => {
  const folder = join(dir, 'st');
  await ok(['init', folder, '--size', '4M', '--cluster-size', '64K']);
  await ok(['snapshot', folder]);
  const m = await fails(['merge', folder, '--level', '5'], 1, /^ploop-wasm merge: level 5 does not exist/);
  assert.doesNotMatch(m.stderr, /merge: merge:/);
  const d = await fails(['delete', folder, '{00000000-0000-0000-0000-000000000000}'], 1, /^ploop-wasm delete: no snapshot/);
  assert.doesNotMatch(d.stderr, /delete: delete:/);
  // A shrink over data: the engine's message, once prefixed.
  const img = join(dir, 'r.hds');
  await ok(['create', img, '--size', '4M', '--cluster-size', '64K']);
  await ok(['write', img, '--offset', '3M'], new Uint8Array(10).fill(1));
  const r = await fails(['resize', img, '--size', '1M'], 1, /^ploop-wasm resize: cluster 48 /);
  assert.doesNotMatch(r.stderr, /resize: resize:/);
  // merge copies one cluster: "1 cluster", not "1 clusters".
  await ok(['write', folder, '--offset', '0'], new Uint8Array(10).fill(2));
  const merged = await ok(['merge', folder]);
  assert.match(merged.stdout.toString(), /\(1 cluster copied\)/);
  // An internal function name does not leak.
  const z = await fails(['init', join(dir, 'z'), '--size', '0'], 2, /^ploop-wasm init: --size: "0" is 0 bytes, expected at least 1/);
  assert.doesNotMatch(z.stderr, /newDescriptor|sizeSectors/);
  // Nor do the names of library functions the CLI called (addSnapshot, ParallelImage.open).
  const old = join(dir, 'old');
  await ok(['init', old, '--size', '4M']);
  const dd = join(old, 'DiskDescriptor.xml');
  await writeFile(dd, (await readFile(dd, 'utf8')).replaceAll('{5fbaabe3-6958-40ff-92a7-860e329aab41}', '{11111111-2222-3333-4444-555555555555}'));
  const s = await fails(['snapshot', old], 1, /^ploop-wasm snapshot: TopGUID is \{11111111-/);
  assert.doesNotMatch(s.stderr, /addSnapshot/);
  const ops = join(dir, 'empty.jsonl');
  await writeFile(ops, '');
  const runners = await fails(['replay', img, ops, '--runners', '100'], 1, /^ploop-wasm replay: runners 100, expected a whole number from 0 to 64/);
  assert.doesNotMatch(runners.stderr, /ParallelImage/);
  // A missing file: the system's own code, not EIO.
  const missing = await fails(['read', join(dir, 'nope.hds'), '--offset', '0', '--length', '1'], 1, /nope\.hds.*no such file or directory \[ENOENT\]$/);
  assert.doesNotMatch(missing.stderr, /EIO/);
  // A leak: said once, with its size; one cluster is "1 leaked cluster".
  await appendFile(img, new Uint8Array(100).fill(9));
  const leak = await cli(['check', img]);
  assert.equal(leak.code, 3, describeCli(['check'], leak));
  const text = leak.stdout.toString();
  assert.doesNotMatch(text, /Leak space leaked/);
  assert.match(text, /100 bytes/);
  assert.match(text, /^1 leaked cluster was found on the image\.$/m);
  const fixed = await ok(['check', img, '--repair']);
  assert.match(fixed.stdout.toString(), /\n\s+1 leaked cluster\n/);
}));

test('every size, offset and length takes K/M/G/T suffixes; negative sizes get a clear message', () => withTempDir(async (dir) => {
  const img = join(dir, 'z.hds');
  await ok(['create', img, '--size', '16M', '--cluster-size', '64K']);
  const data = new Prng(3).bytes(3000);
  await ok(['write', img, '--offset', '1M'], data);
  const back = await ok(['read', img, '--offset', '1M', '--length', '3000']);
  assert.deepEqual(new Uint8Array(back.stdout), data);
  const k = await ok(['read', img, '--offset', '1025K', '--length', '1K']);
  assert.deepEqual(new Uint8Array(k.stdout), data.subarray(1024, 2048));
  const hex = await ok(['read', img, '--offset', '0x100000', '--length', '0x10']);
  assert.deepEqual(new Uint8Array(hex.stdout), data.subarray(0, 16));
  await fails(['read', img, '--offset', '10G', '--length', '1'], 1, /^ploop-wasm read: range 10737418240\+1 is outside the virtual disk/);
  for (const [option, value] of [['--size', '-1G'], ['--size', '-5']] as const) {
    const r = await fails(['create', join(dir, 'n.hds'), option, value], 2, new RegExp(`^ploop-wasm create: ${option}: "${value}" is negative`));
    assert.doesNotMatch(r.stderr, /ambiguous/);
  }
  await fails(['read', img, '--offset', '-1', '--length', '1'], 2, /^ploop-wasm read: --offset: "-1" is negative/);
  await fails(['read', img, '--offset', '1.3', '--length', '1'], 2, /^ploop-wasm read: --offset: "1.3" is not a whole number of bytes/);
}));

test('a failed create or init leaves no file or folder behind', () => withTempDir(async (dir) => {
  for (const args of [['--size', '1000T'], ['--size', '1M', '--cluster-size', '1000']]) {
    const img = join(dir, 'bad.hds');
    await fails(['create', img, ...args], 1, /^ploop-wasm create: /);
    await assert.rejects(stat(img), /ENOENT/, `create ${args.join(' ')} left ${img}`);
    const folder = join(dir, 'bad-dir');
    await fails(['init', folder, ...args], 1, /^ploop-wasm init: /);
    await assert.rejects(stat(folder), /ENOENT/, `init ${args.join(' ')} left ${folder}`);
    // A folder that was there before stays, empty as it was.
    await mkdir(join(dir, 'kept'), { recursive: true });
    await fails(['init', join(dir, 'kept'), ...args], 1, /^ploop-wasm init: /);
    assert.deepEqual(await readdir(join(dir, 'kept')), []);
  }
}));

test('create refuses to replace an image that holds data unless --force; init refuses a non-empty folder likewise', () => withTempDir(async (dir) => {
  const img = join(dir, 'd.hds');
  await ok(['create', img, '--size', '4M']);
  await ok(['write', img, '--offset', '0'], new Uint8Array(512).fill(0x5a));
  const before = await fileHash(img);
  await fails(['create', img, '--size', '8M'], 1, /^ploop-wasm create: .*d\.hds already exists \(\d+ bytes\); --force replaces it/);
  assert.equal(await fileHash(img), before, 'the image is untouched');
  await ok(['create', img, '--size', '8M', '--force']);
  const info = JSON.parse((await ok(['info', img, '--json'])).stdout.toString());
  assert.equal(info.virtualSize, 8 << 20);
  assert.equal(info.allocatedClusters, 0);
  // An empty file (touch) is no data: created over without --force.
  const empty = join(dir, 'empty.hds');
  await writeFile(empty, '');
  await ok(['create', empty, '--size', '1M']);
  // init: a folder with something in it.
  const folder = join(dir, 'f');
  await mkdir(folder);
  await writeFile(join(folder, 'notes.txt'), 'mine');
  await writeFile(join(folder, 'DiskDescriptor.xml.lck'), ''); // ploop's lock file, left by a removed disk: not content
  const withoutLock = async () => (await readdir(folder)).filter((f) => f !== 'DiskDescriptor.xml.lck').sort();
  await fails(['init', folder, '--size', '4M'], 1, /^ploop-wasm init: .*f is not empty \(notes\.txt\); --force uses it anyway/);
  assert.deepEqual(await withoutLock(), ['notes.txt']);
  await ok(['init', folder, '--size', '4M', '--force']);
  assert.deepEqual(await withoutLock(), ['DiskDescriptor.xml', 'notes.txt', 'root.hds']);
  // A folder that already holds a disk is not replaced, even with --force.
  await fails(['init', folder, '--size', '4M', '--force'], 1, /DiskDescriptor\.xml already/);
  assert.ok((await qemuCheck(join(folder, 'root.hds'))).clean);
}));

test('convert picks the output format from --to, else from OUT\'s extension, and warns about input that is not ploop', () => withTempDir(async (dir) => {
  const garbage = join(dir, 'garbage.bin');
  const bytes = new Prng(11).bytes(100000);
  await writeFile(garbage, bytes);
  // .raw and .img are raw: the bytes themselves.
  for (const name of ['g.raw', 'g.img']) {
    const out = join(dir, name);
    const r = await ok(['convert', garbage, out]);
    assert.match(r.stderr, /^ploop-wasm: warning: .*garbage\.bin is not a ploop image \(no ploop signature\); reading it as raw \(--from raw says so and silences this\)$/m);
    assert.deepEqual(new Uint8Array(await readFile(out)), bytes, `${name} holds the input's bytes`);
  }
  // --from raw: no warning. .hds is ploop.
  const hds = join(dir, 'g.hds');
  const quiet = await ok(['convert', garbage, hds, '--from', 'raw']);
  assert.equal(quiet.stderr, '');
  const compare = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'parallels', garbage, hds]);
  assert.equal(compare.code, 0, compare.stdout + compare.stderr);
  // A ploop input to an .hds name stays ploop; --to wins over the extension.
  const copy = join(dir, 'copy.hds');
  await ok(['convert', hds, copy]);
  assert.equal((await readFile(copy)).subarray(0, 16).toString('latin1'), 'WithouFreSpacExt');
  const forced = join(dir, 'forced.raw');
  await ok(['convert', garbage, forced, '--to', 'ploop', '--from', 'raw']);
  assert.equal((await readFile(forced)).subarray(0, 16).toString('latin1'), 'WithouFreSpacExt');
  // --from ploop on something that is not: refused, and OUT is not created.
  await fails(['convert', garbage, join(dir, 'no.hds'), '--from', 'ploop'], 1, /garbage\.bin.*is not a ploop image/);
  await assert.rejects(stat(join(dir, 'no.hds')), /ENOENT/);
  await fails(['convert', garbage, join(dir, 'x.raw'), '--from', 'qcow2'], 2, /--from: "qcow2" is not raw or ploop/);
}));

test('replay validates the whole file before its first write and names the bad line', () => withTempDir(async (dir) => {
  const img = join(dir, 'r.hds');
  await ok(['create', img, '--size', '1M', '--cluster-size', '4K']);
  const before = await fileHash(img);
  const ops = join(dir, 'ops.jsonl');
  const good = JSON.stringify({ op: 'write', offset: 0, data: Buffer.from('hello').toString('base64') });
  for (const [bad, message] of [
    ['{"op":"write","offset":4096,"data":"!!notbase64"}', /ops\.jsonl line 3: "data" is not base64/],
    ['{"op":"write","offset":4096,"data":"QUJD="}', /ops\.jsonl line 3: "data" is not base64/],
    ['{"op":"flush"', /ops\.jsonl line 3: not JSON/],
  ] as const) {
    await writeFile(ops, `${good}\n{"op":"flush"}\n${bad}\n${good}\n`);
    await fails(['replay', img, ops], 1, message);
    assert.equal(await fileHash(img), before, `nothing was written before line 3 was found bad (${bad})`);
  }
  await writeFile(ops, `${good}\n{"op":"flush"}\n`);
  await ok(['replay', img, ops]);
  assert.equal((await ok(['read', img, '--offset', '0', '--length', '5'])).stdout.toString(), 'hello');
}));

test('serve of a missing folder (or of a file) exits with an error instead of serving 404s', () => withTempDir(async (dir) => {
  const missing = join(dir, 'nonexistent');
  const r = await spawnCli(['serve', missing, '--port', '0'], { timeoutMs: 15000 });
  assert.equal(r.timedOut, false, `serve ${missing} kept running: ${r.stdout}`);
  assertOneLineError(['serve'], r, 2, /^ploop-wasm serve: DIR: ".*nonexistent" does not exist/);
  await writeFile(join(dir, 'file'), 'x');
  const f = await spawnCli(['serve', join(dir, 'file'), '--port', '0'], { timeoutMs: 15000 });
  assert.equal(f.timedOut, false);
  assertOneLineError(['serve'], f, 2, /^ploop-wasm serve: DIR: ".*file" is not a folder/);
}));

test('map of a disk folder names the delta file of each extent, with qemu-img map\'s depth for the chain', () => withTempDir(async (dir) => {
  const folder = join(dir, 'disk');
  await ok(['init', folder, '--size', '8M', '--cluster-size', '64K']);
  await ok(['write', folder, '--offset', '0'], new Uint8Array(65536).fill(1));
  await ok(['snapshot', folder]);
  await ok(['write', folder, '--offset', '1M'], new Uint8Array(65536).fill(2));
  await ok(['write', folder, '--offset', '64K'], new Uint8Array(65536).fill(3));
  const files = await chainPaths(folder, new NodeDirectory(folder));
  assert.equal(files.length, 2);
  type Extent = { start: number; length: number; data: boolean; offset?: number; depth?: number; file?: string };
  const ours = JSON.parse((await ok(['map', folder, '--json'])).stdout.toString()) as Extent[];
  const theirs = JSON.parse((await runOk('qemu-img', ['map', '--output=json', qemuChainSpec(files)])).stdout) as Extent[];
  const shape = (xs: Extent[]) => xs.filter((x) => x.data).map((x) => ({ start: x.start, length: x.length, offset: x.offset, depth: x.depth }));
  assert.deepEqual(shape(ours), shape(theirs));
  assert.deepEqual(ours.filter((x) => x.data).map((x) => x.file), [files[0], files[1], files[1]]);
  // The table: the file column names the delta, never the folder.
  const table = (await ok(['map', folder])).stdout.toString().trim().split('\n');
  assert.equal(table.length, 4, table.join('\n'));
  assert.match(table[1], /^0 +0x10000 +0x[0-9a-f]+ +.*disk\/root\.hds$/);
  for (const line of table.slice(2)) assert.ok(line.endsWith(files[1]), line);
  // A single image: its own name, as before.
  const img = join(dir, 'one.hds');
  await ok(['create', img, '--size', '1M', '--cluster-size', '64K']);
  await ok(['write', img, '--offset', '0'], new Uint8Array(10).fill(1));
  assert.match((await ok(['map', img])).stdout.toString(), /\n0 +0x10000 +0x10000 +.*one\.hds\n$/);
  assert.match((await ok(['map', '--help'])).stdout.toString(), /map IMG\|DIR/);
}));

test('--version prints the version in package.json', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = await ok(['--version']);
  assert.equal(r.stdout.toString(), `ploop-wasm ${pkg.version}\n`);
});

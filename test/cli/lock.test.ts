// One writer at a time, with real processes: a `replay` that writes an image or a disk folder
// keeps a second writer out (EBUSY naming its pid, host, command and start) and lets readers in
// with a warning; a SIGKILLed holder's lock is gone at once; Debian's ploop and our folder
// writers see each other's lock (DiskDescriptor.xml.lck); QEMU's byte locks keep our writer
// out. The holder is paused with SIGSTOP once /proc/locks shows its lock, so nothing here
// depends on how long a command runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, cliCommand, describeCli, type CliResult } from '../helpers/cli.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuCheck, describeCheck } from '../helpers/qemu.ts';
import { ploopSnapshotList } from '../helpers/stack.ts';
import { Prng } from '../helpers/prng.ts';
import {
  NodeFileStore, NodeDirectory, PloopImage, ParallelImage, PloopError, createImage, initStack, openStackDir, snapshotStack,
} from '../../src/node.ts';
import '../helpers/source-workers.ts';

const IMAGE_BYTES = 64 << 20;
const CLUSTER = '1M';
const WRITE_BYTES = 4096;
/** ploop 1.15 crashes in ploop_create_image with a small environment (docs/format.md, "The oracles"). */
const PLOOP_ENV = { ...process.env, PLOOP_PAD: 'x'.repeat(8192) };

interface Running {
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function start(program: string, args: string[], env: NodeJS.ProcessEnv = process.env, stdin?: Uint8Array): Running {
  const child = spawn(program, args, { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env });
  if (stdin) child.stdin!.end(stdin);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

async function startCli(args: string[]): Promise<Running> {
  return start(process.execPath, [...(await cliCommand()), ...args]);
}

/**
 * Wait until /proc/locks shows a lock of `kind` on `path`'s inode (the holder has it), failing
 * if `holder` exits first.
 */
async function waitForLock(path: string, kind: 'FLOCK' | 'OFDLCK', holder: Running, timeoutMs = 30_000): Promise<void> {
  const ino = (await stat(path)).ino;
  const started = Date.now();
  for (;;) {
    const locks = await readFile('/proc/locks', 'utf8');
    if (locks.split('\n').some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === kind && f[5]?.endsWith(`:${ino}`);
    })) return;
    if (holder.child.exitCode !== null || holder.child.signalCode !== null) {
      const r = await holder.exited;
      throw new Error(`the holder exited (${r.code ?? r.signal}) before ${path} was locked\nstderr: ${r.stderr}`);
    }
    if (Date.now() - started > timeoutMs) throw new Error(`no ${kind} lock on ${path} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * A workload for `replay`: `count` 4 KiB writes at distinct offsets (a flush after every 16), and
 * the disk they leave.
 */
async function workload(path: string, count: number, seed: number): Promise<Uint8Array> {
  const rng = new Prng(seed);
  const model = new Uint8Array(IMAGE_BYTES);
  const slots = IMAGE_BYTES / WRITE_BYTES;
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    // Spread over the disk, one write per slot (the writes of a group never overlap).
    const offset = ((i * 7919) % slots) * WRITE_BYTES;
    const data = rng.bytes(WRITE_BYTES);
    model.set(data, offset);
    lines.push(JSON.stringify({ op: 'write', offset, data: Buffer.from(data).toString('base64') }));
    if (i % 16 === 15) lines.push('{"op":"flush"}');
  }
  lines.push('{"op":"flush"}');
  await writeFile(path, lines.join('\n') + '\n');
  return model;
}

async function ok(args: string[], stdin?: Uint8Array): Promise<CliResult> {
  const r = await cli(args, stdin);
  assert.equal(r.code, 0, describeCli(args, r));
  return r;
}

/** `args` fails with EBUSY naming the holder; returns stderr. */
async function refused(args: string[], stdin?: Uint8Array): Promise<string> {
  const r = await cli(args, stdin);
  assert.equal(r.code, 1, describeCli(args, r));
  assert.match(r.stderr, /for writing refused: the (image|disk folder) .*is in use by another writer \(.*\); close it there first, or open it read-only \[EBUSY\]\n$/, describeCli(args, r));
  return r.stderr;
}

/** The holder's part of a message: "pid N on host H: COMMAND, running since ISO". */
const holderText = (pid: number, command: RegExp) =>
  new RegExp(`pid ${pid} on host [^:]+: [^\\n]*${command.source}[^\\n]*, running since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ`);

test('while replay writes an image, write is refused naming replay (pid, host, command, since), a reader is warned, and the image ends intact', { timeout: 120_000 }, async () => {
  await withTempDir(async (tmp) => {
    const img = join(tmp, 'a.hds');
    await ok(['create', img, '--size', String(IMAGE_BYTES), '--cluster-size', CLUSTER]);
    const ops = join(tmp, 'ops.jsonl');
    const model = await workload(ops, 4000, 0x10c);
    const replay = await startCli(['replay', img, ops]);
    await waitForLock(img, 'FLOCK', replay);
    replay.child.kill('SIGSTOP');
    try {
      const pid = replay.child.pid!;
      const stderr = await refused(['write', img, '--offset', '0'], new Uint8Array(512).fill(0xee));
      assert.match(stderr, new RegExp(`^ploop-wasm write: open ${img} for writing refused: the image is in use by another writer`));
      assert.match(stderr, holderText(pid, /replay [^ ]*a\.hds/));
      // create --force would empty it: refused before anything is truncated (without --force,
      // create refuses an image that holds data whoever has it open).
      await refused(['create', img, '--size', '1M', '--force']);
      assert.equal((await stat(img)).size >= 1 << 20, true, 'the refused create left the image as it was');

      const read = await ok(['read', img, '--offset', '0', '--length', '4096']);
      assert.match(read.stderr, new RegExp(`warning: the image ${img} is open for writing by another writer \\(${holderText(pid, /replay/).source}\\): what this reader sees may change while it reads`));
    } finally {
      replay.child.kill('SIGCONT');
    }
    const done = await replay.exited;
    assert.equal(done.code, 0, done.stderr);
    assert.doesNotMatch(done.stderr, /another writer/, 'replay saw no other writer');
    // The refused writes changed nothing: the image holds exactly what replay wrote.
    const whole = await ok(['read', img, '--offset', '0', '--length', String(IMAGE_BYTES)]);
    assert.ok(Buffer.compare(whole.stdout, Buffer.from(model)) === 0, 'the image differs from the workload');
    assert.doesNotMatch(whole.stderr, /another writer/, 'no writer is left: no warning');
    const q = await qemuCheck(img);
    assert.ok(q.clean, describeCheck(q));
    await ok(['write', img, '--offset', '0'], new Uint8Array(512).fill(0xee));
  });
});

test('a SIGKILLed writer leaves no lock behind: the next write opens at once', { timeout: 120_000 }, async () => {
  await withTempDir(async (tmp) => {
    const img = join(tmp, 'k.hds');
    await ok(['create', img, '--size', String(IMAGE_BYTES), '--cluster-size', CLUSTER]);
    const ops = join(tmp, 'ops.jsonl');
    await workload(ops, 4000, 0x5ec);
    const replay = await startCli(['replay', img, ops]);
    await waitForLock(img, 'FLOCK', replay);
    replay.child.kill('SIGKILL');
    assert.equal((await replay.exited).signal, 'SIGKILL');
    const started = Date.now();
    const data = new Uint8Array(WRITE_BYTES).fill(0x6b);
    const w = await ok(['write', img, '--offset', '8192'], data);
    assert.doesNotMatch(w.stderr, /in use by another writer/);
    assert.ok(Date.now() - started < 10_000, `the write waited ${Date.now() - started} ms`);
    const back = await ok(['read', img, '--offset', '8192', '--length', String(WRITE_BYTES)]);
    assert.ok(Buffer.compare(back.stdout, Buffer.from(data)) === 0);
    await ok(['check', img, '--repair']);
    const q = await qemuCheck(img);
    assert.ok(q.clean, describeCheck(q));
  });
});

test('a disk folder written by replay (runners): snapshot, write of the folder and of its top file are refused, a reader is warned, ploop waits for the lock and snapshots after', { timeout: 180_000 }, async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, 'disk');
    const dd = join(dir, 'DiskDescriptor.xml');
    // v1: Debian's ploop snapshots a v2 image only with its kernel module loaded.
    await ok(['init', dir, '--size', String(IMAGE_BYTES), '--cluster-size', CLUSTER, '--format', 'v1']);
    const ops = join(tmp, 'ops.jsonl');
    const model = await workload(ops, 4000, 0xf01);
    const replay = await startCli(['replay', dir, ops, '--runners', '2']);
    await waitForLock(`${dd}.lck`, 'FLOCK', replay);
    // The runners' pool locks the top file too, when it opens it.
    await waitForLock(join(dir, 'root.hds'), 'FLOCK', replay);
    replay.child.kill('SIGSTOP');
    let ploop: Running | null = null;
    const descriptorBefore = await readFile(dd, 'utf8');
    try {
      const pid = replay.child.pid!;
      for (const args of [['snapshot', dir], ['write', dir, '--offset', '0'], ['merge', dir], ['resize', dir, '--size', '128M']]) {
        const stderr = await refused(args, new Uint8Array(512));
        assert.match(stderr, new RegExp(`open ${dir} for writing refused: the disk folder is in use by another writer \\(${holderText(pid, /replay/).source}\\)`), args.join(' '));
      }
      const top = await refused(['write', join(dir, 'root.hds'), '--offset', '0'], new Uint8Array(512));
      assert.match(top, new RegExp(`open ${join(dir, 'root.hds')} for writing refused: the image is in use by another writer \\(${holderText(pid, /replay/).source}\\)`));
      const read = await ok(['read', dir, '--offset', '0', '--length', '4096']);
      assert.match(read.stderr, new RegExp(`warning: the disk folder ${dir} is open for writing by another writer \\(${holderText(pid, /replay/).source}\\)`));

      // ploop sees our lock: its snapshot waits (up to 60 s) instead of changing the folder.
      ploop = start('ploop', ['snapshot', dd], PLOOP_ENV);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(ploop.child.exitCode, null, 'ploop snapshot did not wait for the lock');
      assert.equal(await readFile(dd, 'utf8'), descriptorBefore, 'ploop changed the descriptor under our writer');
    } finally {
      replay.child.kill('SIGCONT');
    }
    const done = await replay.exited;
    assert.equal(done.code, 0, done.stderr);
    const snap = await ploop!.exited;
    assert.equal(snap.code, 0, `ploop snapshot: ${snap.stdout}${snap.stderr}`);
    const list = await ploopSnapshotList(dd);
    assert.equal(list.rows.length, 2, list.output);
    const whole = await ok(['read', dir, '--offset', '0', '--length', String(IMAGE_BYTES)]);
    assert.ok(Buffer.compare(whole.stdout, Buffer.from(model)) === 0, 'the folder differs from the workload');
  });
});

test("our folder writers respect ploop's lock on DiskDescriptor.xml.lck: refused naming ploop while it holds it, warned as readers", { timeout: 120_000 }, async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, 'disk');
    const dd = join(dir, 'DiskDescriptor.xml');
    await ok(['init', dir, '--size', '16M', '--cluster-size', CLUSTER, '--format', 'v1']);
    // strace holds ploop right after its first flock (the folder's lock) for 4 s.
    const ploop = start('strace', ['-f', '-o', '/dev/null', '-e', 'trace=flock', '-e', 'inject=flock:delay_exit=4000000:when=1', 'ploop', 'snapshot', dd], PLOOP_ENV);
    await waitForLock(`${dd}.lck`, 'FLOCK', ploop);
    const stderr = await refused(['write', dir, '--offset', '0'], new Uint8Array(512));
    assert.match(stderr, /open .*disk for writing refused: the disk folder is in use by another writer \(pid \d+ on host [^:]+: ploop snapshot .*DiskDescriptor\.xml, running since /);
    await refused(['snapshot', dir]);
    const read = await ok(['read', dir, '--offset', '0', '--length', '512']);
    assert.match(read.stderr, /warning: the disk folder .* is open for writing by another writer \(pid \d+ on host [^:]+: ploop snapshot /);
    const done = await ploop.exited;
    assert.equal(done.code, 0, done.stderr);
    assert.equal((await ploopSnapshotList(dd)).rows.length, 2);
    // ploop is done: the folder is ours to write.
    await ok(['write', dir, '--offset', '0'], new Uint8Array(512).fill(1));
  });
});

test("QEMU's byte locks keep our writer out: qemu-io writing, and qemu-io reading (it denies writers); a reader is warned about the writing one", { timeout: 60_000 }, async () => {
  await withTempDir(async (tmp) => {
    const img = join(tmp, 'q.hds');
    await ok(['create', img, '--size', '16M', '--cluster-size', CLUSTER]);
    const qemu = start('qemu-io', ['-f', 'parallels', '-c', 'sleep 600000', img]);
    try {
      await waitForLock(img, 'OFDLCK', qemu);
      const stderr = await refused(['write', img, '--offset', '0'], new Uint8Array(512));
      assert.match(stderr, new RegExp(`\\(pid ${qemu.child.pid} on host [^:]+: qemu-io -f parallels -c sleep 600000 .*q\\.hds, running since .*, which keeps writers out with QEMU's byte locks\\)`));
      const read = await ok(['read', img, '--offset', '0', '--length', '512']);
      assert.match(read.stderr, new RegExp(`is open for writing by another writer \\(pid ${qemu.child.pid} on host `));
    } finally {
      qemu.child.kill('SIGKILL');
      await qemu.exited;
    }
    // qemu-io read-only denies writers (byte 201) without holding the write permission.
    const reader = start('qemu-io', ['-r', '-f', 'parallels', '-c', 'sleep 600000', img]);
    try {
      await waitForLock(img, 'OFDLCK', reader);
      await refused(['write', img, '--offset', '0'], new Uint8Array(512));
      const read = await ok(['read', img, '--offset', '0', '--length', '512']);
      assert.doesNotMatch(read.stderr, /another writer/, 'a QEMU reader is no writer');
    } finally {
      reader.child.kill('SIGKILL');
      await reader.exited;
    }
    await ok(['write', img, '--offset', '0'], new Uint8Array(512));
  });
});

test('in one process: a second writable store, stack or runner pool is refused naming this process; lock: false, readers and the image onWarning', async () => {
  await withTempDir(async (tmp) => {
    const img = join(tmp, 'lib.hds');
    const created = await NodeFileStore.open(img, { create: true });
    await createImage(created, { size: 8 << 20, clusterSize: 1 << 20 });
    await created.close();
    const bytes = (await stat(img)).size;

    const writer = await NodeFileStore.open(img, { writable: true });
    assert.deepEqual(writer.openWarnings, []);
    for (const options of [{ writable: true }, { create: true }]) {
      await assert.rejects(NodeFileStore.open(img, options), (e: unknown) => {
        assert.ok(e instanceof PloopError && e.code === 'EBUSY', String(e));
        assert.match(e.message, new RegExp(`^open ${img} for writing refused: the image is in use by another writer \\(this process, pid ${process.pid} on host `));
        assert.equal(e.data.path, img);
        return true;
      });
    }
    assert.equal((await stat(img)).size, bytes, 'a refused create truncated nothing');
    // A runner opens under its coordinator's lock.
    const underLock = await NodeFileStore.open(img, { writable: true, lock: false });
    await underLock.close();
    await assert.rejects(ParallelImage.open([{ kind: 'node-fs', path: img, writable: true }], { writable: true, runners: 1 }), /in use by another writer/);

    const reader = await NodeFileStore.open(img);
    assert.equal(reader.openWarnings.length, 1);
    assert.match(reader.openWarnings[0], new RegExp(`^the image ${img} is open for writing by another writer \\(this process, pid ${process.pid} `));
    const warnings: string[] = [];
    const readOnly = await PloopImage.open(reader, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(warnings, reader.openWarnings, 'the image passes the store\'s warning on');
    await readOnly.close();
    await writer.close();

    // Released with the store: a pool of runners writes it now, and keeps others out meanwhile.
    const pool = await ParallelImage.open([{ kind: 'node-fs', path: img, writable: true }], { writable: true, runners: 2 });
    try {
      await pool.write(0, new Uint8Array(4096).fill(7));
      await assert.rejects(NodeFileStore.open(img, { writable: true }), /in use by another writer/);
      const quiet = await NodeFileStore.open(img);
      assert.equal(quiet.openWarnings.length, 1, 'a reader beside the pool is warned');
      await quiet.close();
    } finally {
      await pool.close();
    }
    const after = await NodeFileStore.open(img);
    assert.deepEqual(after.openWarnings, [], 'no writer left');
    await after.close();

    // A disk folder: one writable stack at a time, and no snapshot under it.
    const folder = new NodeDirectory(join(tmp, 'disk'));
    await import('node:fs/promises').then((fs) => fs.mkdir(folder.name));
    await initStack(folder, { size: 8 << 20, clusterSize: 1 << 20 });
    const stack = await openStackDir(folder, { writable: true });
    try {
      await assert.rejects(openStackDir(folder, { writable: true }), (e: unknown) => e instanceof PloopError && e.code === 'EBUSY' && /^open .*disk for writing refused: the disk folder is in use by another writer \(this process/.test(e.message));
      await assert.rejects(snapshotStack(folder), /the disk folder is in use by another writer/);
      const folderWarnings: string[] = [];
      const view = await openStackDir(folder, { onWarning: (m) => folderWarnings.push(m) });
      await view.close();
      assert.equal(folderWarnings.length, 1, folderWarnings.join('\n'));
      assert.match(folderWarnings[0], /^the disk folder .*disk is open for writing by another writer \(this process/);
    } finally {
      await stack.close();
    }
    assert.match((await snapshotStack(folder)).file, /^root\.hds\./, 'the folder is free once the stack closed');
  });
});

test('without flock(1) a writer still opens, and says that no lock was taken', async () => {
  await withTempDir(async (tmp) => {
    const img = join(tmp, 'nolock.hds');
    await ok(['create', img, '--size', '4M', '--cluster-size', CLUSTER]);
    // A PATH without flock(1) (node itself is started by its full path).
    const write = start(process.execPath, [...(await cliCommand()), 'write', img, '--offset', '0'], { ...process.env, PATH: '/nonexistent' }, new Uint8Array(512).fill(3));
    const r = await write.exited;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, `ploop-wasm: warning: ${img} is opened for writing without a lock (flock(1) from util-linux is not installed): a second writer is not kept out\n`);
  });
});

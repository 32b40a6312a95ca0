// NodeFileStore's I/O thread (src/stores/node-io-thread.ts): a real worker thread doing
// positioned reads and writes on real files through shared memory. Byte-compared with a model
// at depth 1 and 32, past the slot limit (libuv's pool takes over), at the end of the file,
// with Node's error codes, with every slot taken, closing under requests in flight, the
// process lifetime (kept alive by a request in flight, free to exit when idle), several stores
// on the one thread, and an engine workload that qemu-img checks and compares.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { openSync, closeSync, readdirSync, readlinkSync, writeFileSync, readFileSync, copyFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pread, pwrite, ioThreadStats, IO_THREAD_MAX_BYTES } from '../../src/stores/node-io-thread.ts';
import { NodeFileStore } from '../../src/node.ts';
import { createImage, PloopImage } from '../../src/index.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { runWorkload } from '../helpers/workload.ts';
import { readWhole } from '../helpers/images.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import '../helpers/source-workers.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');
const FILE_BYTES = 4 << 20;

/** A file of FILE_BYTES random bytes and its model. */
function randomFile(dir: string, name: string, seed: number): { path: string; model: DiskModel } {
  const path = join(dir, name);
  const bytes = new Prng(seed).bytes(FILE_BYTES);
  writeFileSync(path, bytes);
  return { path, model: new DiskModel(bytes) };
}

/** The fd this process holds on `path` (to break it behind a store's back). */
function fdOf(path: string): number {
  const fds = readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
  assert.equal(fds.length, 1, `one fd on ${path}`);
  return Number(fds[0]);
}

/**
 * Start this process's I/O thread (pread starts it at once; a store alone only after a warm-up
 * of small requests on libuv's pool), so that a store's requests go to it from the first.
 */
async function threadRunning(): Promise<void> {
  const fd = openSync(process.execPath, 'r');
  try {
    await pread(fd, new Uint8Array(1), 0);
  } finally {
    closeSync(fd);
  }
  assert.ok(ioThreadStats().running, 'the I/O thread runs');
}

/** Run `count` random reads and writes, `depth` in flight, through `io`; compare with the model. */
async function mixedWorkload(
  io: { read: (offset: number, into: Uint8Array) => Promise<number>; write: (offset: number, data: Uint8Array) => Promise<unknown> },
  model: DiskModel, rng: Prng, count: number, depth: number,
): Promise<void> {
  // Requests in flight together never overlap (as the engine's never do): each lane owns a stripe.
  const stripe = Math.floor(FILE_BYTES / depth);
  let next = 0;
  const lane = async (l: number) => {
    while (next < count) {
      next++;
      const length = Math.min(stripe, rng.chance(0.5) ? 4096 : rng.range(1, IO_THREAD_MAX_BYTES));
      const offset = l * stripe + rng.int(stripe - length + 1);
      if (rng.chance(0.4)) {
        const data = rng.bytes(length);
        await io.write(offset, data);
        model.write(offset, data);
      } else {
        const into = new Uint8Array(length);
        assert.equal(await io.read(offset, into), length, `read ${length} at ${offset}`);
        assertBytesEqual(into, model.read(offset, length), `read ${length} at ${offset} (seed ${rng.seed}, depth ${depth})`);
      }
    }
  };
  await Promise.all(Array.from({ length: depth }, (_, l) => lane(l)));
}

test('pread/pwrite on the I/O thread match a model at depth 1 and 32, and the file ends as the model', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'a.bin', 1);
  const fd = openSync(path, 'r+');
  try {
    const before = ioThreadStats().served;
    for (const depth of [1, 32]) {
      const rng = new Prng(100 + depth);
      await mixedWorkload({ read: (o, into) => pread(fd, into, o), write: (o, d) => pwrite(fd, d, o) }, model, rng, 2000, depth);
    }
    assert.equal(ioThreadStats().served - before, 4000, 'every request went through the I/O thread');
    assert.ok(ioThreadStats().running);
  } finally {
    closeSync(fd);
  }
  assertBytesEqual(new Uint8Array(readFileSync(path)), model.bytes, 'file after the workload');
}));

test('NodeFileStore (default io) sends requests up to the slot size to the running thread, larger ones to libuv, and matches the model', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'b.bin', 2);
  await threadRunning();
  const store = await NodeFileStore.open(path, { writable: true });
  assert.equal(store.io, 'thread', 'the default');
  try {
    let served = ioThreadStats().served;
    await mixedWorkload(store, model, new Prng(7), 1500, 32);
    assert.equal(ioThreadStats().served - served, 1500, 'all 1500 requests (≤ 64 KiB) on the thread');

    served = ioThreadStats().served;
    const atLimit = new Uint8Array(IO_THREAD_MAX_BYTES);
    assert.equal(await store.read(12345, atLimit), IO_THREAD_MAX_BYTES);
    assertBytesEqual(atLimit, model.read(12345, IO_THREAD_MAX_BYTES), 'read of exactly the slot size');
    assert.equal(ioThreadStats().served - served, 1, 'a slot-size read is the thread\'s');

    served = ioThreadStats().served;
    const over = new Uint8Array(IO_THREAD_MAX_BYTES + 1);
    assert.equal(await store.read(777, over), over.length);
    assertBytesEqual(over, model.read(777, over.length), 'read of one byte more than a slot');
    const big = new Prng(8).bytes(3 * IO_THREAD_MAX_BYTES + 5);
    await store.write(FILE_BYTES - big.length, big);
    model.write(FILE_BYTES - big.length, big);
    assert.equal(ioThreadStats().served - served, 0, 'larger requests went to libuv\'s pool');
    const back = new Uint8Array(big.length);
    assert.equal(await store.read(FILE_BYTES - big.length, back), big.length);
    assertBytesEqual(back, big, 'large write read back');
  } finally {
    await store.close();
  }
  assertBytesEqual(new Uint8Array(readFileSync(path)), model.bytes, 'file after the store closed');
}));

test('reads at the end of the file come back short (the I/O thread reads until full or EOF), writes past it grow the store', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'c.bin', 3);
  await threadRunning();
  const fd = openSync(path, 'r');
  try {
    const into = new Uint8Array(4096).fill(0xee);
    assert.equal(await pread(fd, into, FILE_BYTES - 100), 100);
    assertBytesEqual(into.subarray(0, 100), model.read(FILE_BYTES - 100, 100), 'the last 100 bytes');
    assert.ok(into.subarray(100).every((b) => b === 0xee), 'bytes past EOF untouched');
    assert.equal(await pread(fd, into, FILE_BYTES), 0, 'a read at EOF');
    assert.equal(await pread(fd, into, FILE_BYTES + 10 * 4096), 0, 'a read past EOF');
  } finally {
    closeSync(fd);
  }
  const store = await NodeFileStore.open(path, { writable: true, io: 'thread' });
  try {
    await store.write(FILE_BYTES + 4096, new Uint8Array(512).fill(9));
    assert.equal(await store.size(), FILE_BYTES + 4096 + 512);
    const tail = new Uint8Array(8192);
    assert.equal(await store.read(FILE_BYTES, tail), 4096 + 512, 'short read at the new end');
    assert.ok(tail.subarray(0, 4096).every((b) => b === 0) && tail.subarray(4096, 4608).every((b) => b === 9));
  } finally {
    await store.close();
  }
}));

test('errors come back with Node\'s code, errno and syscall; NodeFileStore words them as on libuv\'s pool', () => withTempDir(async (dir) => {
  const { path } = randomFile(dir, 'd.bin', 4);
  await threadRunning();
  // A closed fd: EBADF from read and write.
  const fd = openSync(path, 'r');
  closeSync(fd);
  await assert.rejects(pread(fd, new Uint8Array(4096), 0), (e: NodeJS.ErrnoException) =>
    e.code === 'EBADF' && e.syscall === 'read' && e.errno === -9 && /^EBADF: bad file descriptor, read$/.test(e.message));
  // A write on a read-only fd: EBADF from write.
  const ro = openSync(path, 'r');
  try {
    await assert.rejects(pwrite(ro, new Uint8Array(10), 0), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.syscall === 'write');
  } finally {
    closeSync(ro);
  }
  // A full device: ENOSPC, through the store, worded as the pool's.
  const messages: Record<string, string> = {};
  for (const io of ['thread', 'pool'] as const) {
    const full = await NodeFileStore.open('/dev/full', { writable: true, io });
    try {
      await assert.rejects(full.write(4096, new Uint8Array(4096).fill(1)), (e: Error & { code?: string; cause?: NodeJS.ErrnoException }) => {
        messages[io] = e.message;
        return e.code === 'EIO' && e.cause?.code === 'ENOSPC';
      });
    } finally {
      await full.close();
    }
  }
  assert.equal(messages.thread, messages.pool);
  assert.match(messages.thread, /^write \/dev\/full at 4096 failed: ENOSPC: no space left on device, write$/);
  // The fd under a store closed behind its back: the same EBADF wording on both paths.
  for (const io of ['thread', 'pool'] as const) {
    const store = await NodeFileStore.open(path, { io });
    closeSync(fdOf(path));
    await assert.rejects(store.read(0, new Uint8Array(4096)), (e: Error & { cause?: NodeJS.ErrnoException }) => {
      messages[`read-${io}`] = e.message;
      return e.cause?.code === 'EBADF';
    });
    await assert.rejects(store.close(), /EBADF/);
  }
  assert.equal(messages['read-thread'], messages['read-pool']);
  assert.equal(messages['read-thread'], `read ${path} at 0 failed: EBADF: bad file descriptor, read`);
  // Requests the thread cannot take are refused with what was wrong.
  await assert.rejects(pread(3, new Uint8Array(IO_THREAD_MAX_BYTES + 1), 0), /65537 bytes is more than the I\/O thread's 65536-byte slot/);
  await assert.rejects(pread(-1, new Uint8Array(1), 0), /fd -1 is not a file descriptor/);
  await assert.rejects(pwrite(3, new Uint8Array(1), -5), /position -5 is not a byte offset/);
  await assert.rejects(NodeFileStore.open(path, { io: 'uring' as 'pool' }), (e: Error & { code?: string }) =>
    e.code === 'EINVAL' && /io "uring" is not one of thread, pool/.test(e.message));
}));

test('500 requests in flight at once (64 slots): the rest wait in order and all complete correctly', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'e.bin', 5);
  const fd = openSync(path, 'r+');
  try {
    const rng = new Prng(55);
    // 250 writes to disjoint 8 KiB blocks, 250 reads of other disjoint blocks, all issued at once.
    const blocks = Array.from({ length: FILE_BYTES / 8192 }, (_, i) => i);
    for (let i = blocks.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [blocks[i], blocks[j]] = [blocks[j], blocks[i]];
    }
    const served = ioThreadStats().served;
    const writes = blocks.slice(0, 250).map((b) => ({ offset: b * 8192, data: rng.bytes(8192) }));
    const reads = blocks.slice(250, 500).map((b) => ({ offset: b * 8192, into: new Uint8Array(8192) }));
    const all = [
      ...writes.map((w) => pwrite(fd, w.data, w.offset)),
      ...reads.map((r) => pread(fd, r.into, r.offset)),
    ];
    // Nothing completes before the caller's synchronous code ends: 64 in slots, the rest queued.
    assert.equal(ioThreadStats().served, served);
    assert.equal(ioThreadStats().pending, 500);
    assert.equal(ioThreadStats().waitingForSlot, 500 - 64);
    const results = await Promise.all(all);
    assert.ok(results.every((n) => n === 8192));
    for (const r of reads) assertBytesEqual(r.into, model.read(r.offset, 8192), `read at ${r.offset}`);
    for (const w of writes) model.write(w.offset, w.data);
  } finally {
    closeSync(fd);
  }
  assertBytesEqual(new Uint8Array(readFileSync(path)), model.bytes, 'file after 250 concurrent writes');
}));

test('close() waits for the store\'s requests still in the I/O thread before it closes the fd', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'f.bin', 6);
  const other = randomFile(dir, 'g.bin', 66);
  await threadRunning();
  const store = await NodeFileStore.open(path, { io: 'thread' });
  const order: string[] = [];
  const reads = Array.from({ length: 300 }, (_, i) => {
    const into = new Uint8Array(16384);
    const offset = (i * 16384) % (FILE_BYTES - 16384);
    return store.read(offset, into).then((n) => {
      order.push('read');
      assert.equal(n, into.length);
      assertBytesEqual(into, model.read(offset, into.length), `read ${i} at ${offset}`);
    });
  });
  const closing = store.close().then(() => order.push('close'));
  // Had the fd been closed at once, the reads still queued would fail (EBADF) or, once this
  // open or any other took the number, read another file.
  const otherFd = openSync(other.path, 'r');
  try {
    await Promise.all([...reads, closing]);
  } finally {
    closeSync(otherFd);
  }
  assert.equal(order.length, 301);
  assert.equal(order.indexOf('close'), 300, 'close resolved after every read');
  await assert.rejects(store.read(0, new Uint8Array(4)), /read after the store was closed/);
}));

test('several stores share the one I/O thread (no thread per store)', () => withTempDir(async (dir) => {
  const threads = () => readdirSync('/proc/self/task').length;
  const files = [1, 2, 3].map((i) => randomFile(dir, `s${i}.bin`, 10 + i));
  await threadRunning();
  const before = threads();
  const served = ioThreadStats().served;
  const stores = await Promise.all(files.map((f) => NodeFileStore.open(f.path, { writable: true, io: 'thread' })));
  try {
    await Promise.all(stores.map((s, i) => mixedWorkload(s, files[i].model, new Prng(20 + i), 400, 8)));
    assert.equal(ioThreadStats().served - served, 1200, 'all three stores\' requests on the thread');
    assert.equal(threads(), before, 'no thread was started for the stores');
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
  for (const f of files) assertBytesEqual(new Uint8Array(readFileSync(f.path)), f.model.bytes, f.path);
}));

/** Run a script (an ES module under tsx) in a fresh process. */
function script(dir: string, body: string) {
  const file = join(dir, `s${Math.random().toString(36).slice(2)}.mts`);
  const workers = JSON.stringify(join(ROOT, 'test/helpers/source-workers.ts'));
  writeFileSync(file, `import ${workers};\nimport { pread, ioThreadStats } from ${JSON.stringify(join(SRC, 'stores/node-io-thread.ts'))};\nimport { openSync } from 'node:fs';\n${body}\n`);
  const started = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', timeout: 30000 });
  return { ...r, seconds: (performance.now() - started) / 1000 };
}

test('a process whose only pending work is requests on the I/O thread stays alive until they complete, then exits by itself', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'h.bin', 7);
  // 500 reads of 64 KiB issued and not awaited: the module ends with them in flight or queued
  // (a pending Atomics.waitAsync alone would not keep Node's loop alive).
  const r = script(dir, `
    const fd = openSync(${JSON.stringify(path)}, 'r');
    await pread(fd, new Uint8Array(1), 0); // the thread runs
    const bufs = Array.from({ length: 500 }, () => new Uint8Array(65536));
    const all = Promise.all(bufs.map((b, i) => pread(fd, b, (i * 65536) % ${FILE_BYTES})));
    console.log('pending', ioThreadStats().pending);
    all.then((ns) => console.log('read', ns.reduce((a, n) => a + n, 0), bufs[499][0], bufs[499][65535]));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pending 500\n/, 'all 500 still pending when the module ended');
  const last = model.read((499 * 65536) % FILE_BYTES, 65536);
  assert.match(r.stdout, new RegExp(`read ${500 * 65536} ${last[0]} ${last[65535]}\\n`), 'the reads completed and printed');
  // Idle afterwards: the process ended by itself (the worker unref'd), well within the timeout.
  const idle = script(dir, `
    const fd = openSync(${JSON.stringify(path)}, 'r');
    const b = new Uint8Array(4096);
    for (let i = 0; i < 1000; i++) await pread(fd, b, i * 4096);
    await Promise.all(Array.from({ length: 64 }, (_, i) => pread(fd, new Uint8Array(4096), i * 4096)));
    console.log('done', ioThreadStats().served, b[0]);
  `);
  assert.equal(idle.status, 0, `${idle.stderr} (signal ${idle.signal})`);
  assert.match(idle.stdout, new RegExp(`done 1064 ${model.bytes[999 * 4096]}\\n`));
  assert.ok(idle.seconds < 20, `exited after ${idle.seconds.toFixed(1)} s`);
}));

test('no lost wake-up: 20 000 rounds of 1–8 requests, awaited while the caller spins and waits by turns, all complete and the process exits', () => withTempDir(async (dir) => {
  const { path, model } = randomFile(dir, 'w.bin', 11);
  // Liveness under every timing we can provoke. The caller watches the completion counter
  // even while a waitAsync is pending, and the worker notifies only while the caller's WAITING
  // word is set (node-io-layout.ts). Rounds vary their size and the pause before the next one
  // (none, a microtask, setImmediate, a timer) so that completions land in every phase: during
  // the spin, just before the wait, while it is pending. A wait never woken shows as a killed
  // run. (One such race — the worker clearing WAITING and so taking the 1 stored for the
  // caller's next wait — hung one bench run in ~60; this test did not hit that window in 5
  // runs against the broken version: the window is a few instructions wide. The rule that
  // closes it, only the caller clears WAITING, is argued in node-io-layout.ts.)
  const r = script(dir, `
    const fd = openSync(${JSON.stringify(path)}, 'r');
    let x = 12345, sum = 0;
    const rnd = (n) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let round = 0; round < 20000; round++) {
      const k = 1 + rnd(8);
      const bufs = Array.from({ length: k }, () => new Uint8Array(512));
      const at = Array.from({ length: k }, () => rnd(${FILE_BYTES / 512}) * 512);
      await Promise.all(bufs.map((b, i) => pread(fd, b, at[i])));
      sum = (sum + bufs[k - 1][7]) >>> 0;
      const pause = rnd(16);
      if (pause === 0) await new Promise((r) => setImmediate(r));
      else if (pause === 1) await new Promise((r) => setTimeout(r, 0));
      else if (pause < 6) await Promise.resolve();
    }
    console.log('rounds done', sum, ioThreadStats().pending);
  `);
  assert.equal(r.signal, null, `the run was killed (${r.signal}) after ${r.seconds.toFixed(1)} s: a wait that was never woken`);
  assert.equal(r.status, 0, r.stderr);
  // The same draw in this process: the sum of one byte per round proves every read landed.
  let x = 12345;
  let sum = 0;
  const rnd = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (let round = 0; round < 20000; round++) {
    const k = 1 + rnd(8);
    const at = Array.from({ length: k }, () => rnd(FILE_BYTES / 512) * 512);
    sum = (sum + model.bytes[at[k - 1] + 7]) >>> 0;
    rnd(16);
  }
  assert.equal(r.stdout, `rounds done ${sum} 0\n`);
}));

test('an image written through the engine on NodeFileStore\'s default io passes qemu-img check and compares equal to the model', () => withTempDir(async (dir) => {
  const path = join(dir, 'w.hds');
  await threadRunning();
  const store = await NodeFileStore.open(path, { create: true });
  await createImage(store, { size: 24 << 20, clusterSize: 64 << 10 });
  const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  const served = ioThreadStats().served;
  const readInUse = async () => readFileSync(path).readUInt32LE(44);
  const r = await runWorkload(image, new Prng(0x10e), 800, readInUse);
  assert.ok(ioThreadStats().served - served > 800, `the engine's requests went through the I/O thread (${ioThreadStats().served - served})`);
  assertBytesEqual(await readWhole(image), r.model.bytes, 'read-back before close');
  await image.close();
  await store.close();
  await assertQemuAgrees(path, r.model.bytes, 'engine workload on the I/O thread');
}));

test('the CLI bundle finds the I/O worker beside its chunks (bench serves its requests on the thread); without it the pool serves them after one warning', () => withTempDir(async (dir) => {
  // Built from the sources in the tree as scripts/build-cli.mjs builds dist/bin/cli/ (the
  // WASM core two levels up, as in dist/). Run under tsx, the tests above start the .ts worker.
  const out = join(dir, 'bin/cli');
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts/build-cli.mjs'), out], { encoding: 'utf8' });
  assert.equal(b.status, 0, `build-cli: ${b.stderr}`);
  copyFileSync(join(ROOT, 'dist/ploop.wasm'), join(dir, 'ploop.wasm'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(out, 'ploop-wasm.js'), ...args], { encoding: 'utf8', timeout: 60000 });
  const img = join(dir, 'b.hds');
  assert.equal(cli('create', img, '--size', '64M').status, 0);
  for (const [pattern, io, onThread] of [['randwrite', 'async', true], ['randread', 'async', true], ['randread', 'pool', false]] as const) {
    const r = cli('bench', img, '--pattern', pattern, '--count', '20000', '--depth', '4', '--io', io, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no warning (the thread started)');
    const served = JSON.parse(r.stdout).ioThreadRequests as number;
    // bench starts the thread before its clock (startIoThread), so every request of the run
    // goes to it (writes add their BAT pages), none to libuv's pool during the thread's start.
    if (onThread) assert.ok(served >= 20000, `${pattern} --io ${io}: ${served} of 20000 requests on the I/O thread`);
    else assert.equal(served, 0, `${pattern} --io ${io}: nothing on the I/O thread`);
  }
  // Without the worker file the thread cannot start: one warning, and the requests stay on the pool.
  rmSync(join(out, 'node-io-worker.js'));
  const r = cli('bench', img, '--pattern', 'randread', '--count', '3000', '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).ioThreadRequests, 0);
  assert.match(r.stderr, /Warning: ploop-wasm: the I\/O thread did not start \(Cannot find module .*node-io-worker\.js'\); small file requests stay on libuv's thread pool/);
  assert.equal(r.stderr.match(/did not start/g)?.length, 1, 'warned once');
}));

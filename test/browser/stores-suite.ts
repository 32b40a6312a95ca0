// The persistence suite every browser store runs (OPFS, IndexedDB): an image, raw store
// semantics, misuse errors, a disk folder and an overlay, each checked after a page reload byte
// for byte, and the files copied out and read by qemu-img (and ploop for the folder).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { BrowserSession } from '../helpers/browser.js';
import { makeTempDir } from '../helpers/tmp.js';
import { qemuCheck, describeCheck, qemuConvertToRaw, qemuCreate, qemuIo, ioWrite } from '../helpers/qemu.js';
import { assertPloopAccepts } from '../helpers/ploop.js';
import { qemuConvertChain, ploopSnapshotList } from '../helpers/stack.js';
import { writeFile, mkdir } from 'node:fs/promises';
import { startStoreBrowser, openPage, call, callInWorker, randomWrites, startUploads, assertNoMismatch, type Write, type Uploads } from './stores-shared.js';

export const SIZE = 4 << 20;
export const CLUSTER = 64 << 10;

export interface Verified { mode: string; mismatches: unknown[]; clean: boolean; sha256: string }

interface Err { code: string; message: string }
interface Errors { second: Err | null; readOnlyWrite: Err; readOnlyTruncate: Err; closedRead: Err; missing: Err }

// What storeSemantics (page.mjs) sees: a sparse write at 100000, a short read at the end, zeros in
// the gap, shrink then grow leaves zeros, and a reopen sees the same.
const SEMANTICS = [
  100003,
  5, [0, 0, 9, 8, 7, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0, 0, 0, 0, 0],
  4, [0, 9, 0, 0],
  200000,
  [3, 0, 0],
];

export interface SuiteContext {
  session: BrowserSession;
  page: Page;
  tmp: string;
  /** Where the page sends files back (verifyImage / verifyStack / overlayVerify with `upload`). */
  uploads: Uploads;
}

export interface StoreKind {
  kind: 'opfs' | 'idb';
  /** The store's `mode` on the page ('worker' for OPFS through the host worker). */
  pageMode: string;
  /** Second writable open while one is open: the error it gives, or null when allowed. */
  second: RegExp | null;
  /** Prefix of the store name in messages ('opfs:' / 'idb:'). */
  prefix: string;
}

/** Register the suite; returns the live context (session and page are set in before()). */
export function storeSuite(k: StoreKind): SuiteContext {
  const ctx = {} as SuiteContext;
  let cleanup: () => Promise<void>;
  before(async () => {
    const t = await makeTempDir(`ploop-${k.kind}-`);
    ctx.tmp = t.dir;
    cleanup = t.cleanup;
    // The temp folder is served under /files/: the page fetches base images from there.
    ctx.session = await startStoreBrowser({ mounts: { '/files/': t.dir } });
    ctx.uploads = await startUploads();
    ctx.page = await openPage(ctx.session);
  });
  after(async () => {
    await ctx.session?.close();
    await ctx.uploads?.close();
    await cleanup?.();
  });

  /** Save what the page uploaded as `name`, then qemu-img must find it clean and read `model`. */
  const assertQemuReads = async (name: string, model: Uint8Array) => {
    const path = join(ctx.tmp, name);
    await writeFile(path, ctx.uploads.take(name));
    const check = await qemuCheck(path);
    assert.ok(check.clean, `qemu-img check ${name}: ${describeCheck(check)}`);
    await assertPloopAccepts(path, name);
    const raw = await qemuConvertToRaw(path, `${path}.raw`);
    assert.ok(Buffer.from(raw).equals(Buffer.from(model)), `${name}: qemu-img convert output differs from the model`);
  };

  test(`${k.kind}: an image written on the page survives a reload byte for byte, and qemu-img reads the same`, async () => {
    const { writes, model } = randomWrites(1, SIZE, 30, 100_000);
    const w = await call<{ mode: string }>(ctx.page, 'writeImage', { kind: k.kind, path: 'tests/page.hds', size: SIZE, clusterSize: CLUSTER, writes });
    assert.equal(w.mode, k.pageMode);
    await ctx.page.reload();
    const name = `${k.kind}-page.hds`;
    const v = await call<Verified>(ctx.page, 'verifyImage', { kind: k.kind, path: 'tests/page.hds', writes, upload: ctx.uploads.url + name });
    assertNoMismatch(v.mismatches, 'after reload');
    assert.equal(v.clean, true, 'our check after reload');
    await assertQemuReads(name, model);
    assert.deepEqual(ctx.session.errors, []);
  });

  test(`${k.kind}: store semantics on the page and in a worker: sparse growth, short reads, truncate`, async () => {
    assert.deepEqual(await call(ctx.page, 'storeSemantics', { kind: k.kind, path: 'tests/sem.bin' }), SEMANTICS);
    assert.deepEqual(await callInWorker(ctx.page, 'storeSemantics', { kind: k.kind, path: 'tests/sem-w.bin' }), SEMANTICS);
  });

  test(`${k.kind}: misuse gives errors that name the file and the operation`, async () => {
    const e = await call<Errors>(ctx.page, 'storeErrors', { kind: k.kind, path: 'tests/err.bin' });
    if (k.second) {
      assert.equal(e.second?.code, 'EBUSY');
      assert.match(e.second.message, k.second);
    } else {
      assert.equal(e.second, null);
    }
    assert.equal(e.readOnlyWrite?.code, 'EREADONLY');
    assert.match(e.readOnlyWrite.message, new RegExp(`^${k.prefix}tests/err.bin: write refused, the store is read-only`));
    assert.equal(e.readOnlyTruncate?.code, 'EREADONLY');
    assert.match(e.readOnlyTruncate.message, /truncate refused, the store is read-only/);
    assert.equal(e.closedRead?.code, 'ECLOSED');
    assert.match(e.closedRead.message, /read refused, the store is closed/);
    assert.equal(e.missing?.code, 'EIO');
    assert.match(e.missing.message, /tests\/err\.bin\.missing.*no such file/);
  });

  test(`${k.kind}: one writer at a time and readers told, in the words of Node's lock: a store, and a disk folder (its Web Lock)`, async () => {
    type Refusal = { code: string; message: string } | null;
    const r = await call<{ storeWarnings: string[]; secondWriter: Refusal; freeStore: Refusal; secondStack: Refusal; snapshot: Refusal; folderWarning: string | null; folderAfter: string | null; freeFolder: Refusal }>(
      ctx.page, 'oneWriter', { kind: k.kind, path: 'tests/one.bin', dir: 'tests/one-dir' });
    const holder = (name: string) => `another page or worker, which holds the Web Lock "ploop-wasm:${k.kind}:${k.kind === 'idb' ? '[^"]+/' : ''}${name}"`;
    assert.equal(r.secondWriter?.code, 'EBUSY');
    assert.match(r.secondWriter!.message, new RegExp(`^open ${k.prefix}tests/one\\.bin for writing refused: the image is in use by another writer \\(${holder('tests/one\\.bin')}\\); close it there first, or open it read-only$`));
    assert.equal(r.storeWarnings.length, 1);
    assert.match(r.storeWarnings[0], new RegExp(`^the image ${k.prefix}tests/one\\.bin is open for writing by another writer \\(${holder('tests/one\\.bin')}\\): what this reader sees may change while it reads$`));
    assert.equal(r.freeStore, null, 'a writer opens once the first closed');
    for (const refusal of [r.secondStack, r.snapshot]) {
      assert.equal(refusal?.code, 'EBUSY');
      assert.match(refusal!.message, new RegExp(`^open ${k.prefix}tests/one-dir for writing refused: the disk folder is in use by another writer \\(${holder('tests/one-dir/DiskDescriptor\\.xml')}\\)`));
    }
    assert.match(r.folderWarning ?? '', new RegExp(`^the disk folder ${k.prefix}tests/one-dir is open for writing by another writer`));
    assert.equal(r.folderAfter, null);
    assert.equal(r.freeFolder, null);
    assert.deepEqual(ctx.session.errors, []);
  });

  test(`${k.kind}: a disk folder (init, write, snapshot, write) survives a reload; ploop and qemu-img read the same; merge`, async () => {
    const first = randomWrites(3, SIZE, 25, 80_000);
    const second = randomWrites(4, SIZE, 25, 80_000, new Uint8Array(first.model));
    const made = await call<{ snap: { file: string }; descriptor: string }>(ctx.page, 'writeStack', {
      kind: k.kind, dir: 'tests/vm', size: SIZE, clusterSize: CLUSTER, writesA: first.writes, writesB: second.writes,
    });
    await ctx.page.reload();
    const files = ['root.hds', made.snap.file];
    const v = await call<{ mismatches: unknown[]; levels: number; descriptor: string; files: Record<string, string>; list: string[] }>(ctx.page, 'verifyStack', {
      kind: k.kind, dir: 'tests/vm', writes: [...first.writes, ...second.writes], files, upload: `${ctx.uploads.url}vm/`,
    });
    assertNoMismatch(v.mismatches, 'stack after reload');
    assert.equal(v.levels, 2);
    assert.equal(v.descriptor, made.descriptor);
    assert.deepEqual(v.list, ['DiskDescriptor.xml', ...files].sort());
    const dir = join(ctx.tmp, 'vm');
    await mkdir(dir);
    await writeFile(join(dir, 'DiskDescriptor.xml'), v.descriptor);
    const paths = await Promise.all(files.map(async (f) => {
      await writeFile(join(dir, f), ctx.uploads.take(`vm/${f}`));
      return join(dir, f);
    }));
    for (const p of paths) {
      const c = await qemuCheck(p);
      assert.ok(c.clean, `qemu-img check ${p}: ${describeCheck(c)}`);
      await assertPloopAccepts(p, p);
    }
    const list = await ploopSnapshotList(join(dir, 'DiskDescriptor.xml'));
    assert.equal(list.code, 0, list.output);
    assert.deepEqual(list.rows.map((r) => r.fname.split('/').pop()).sort(), [...files].sort());
    const raw = await qemuConvertChain(paths, join(dir, 'chain.raw'));
    assert.ok(Buffer.from(raw).equals(Buffer.from(second.model)), 'qemu-img reading the chain differs from the model');
    // The snapshot froze the base delta: it holds the first workload only.
    assert.ok(Buffer.from(await qemuConvertToRaw(paths[0], join(dir, 'root.raw'))).equals(Buffer.from(first.model)));
    // Merging in the browser store removes the upper file and reads the same.
    const m = await call<{ mismatches: unknown[]; levels: number; list: string[] }>(ctx.page, 'mergeStack', { kind: k.kind, dir: 'tests/vm', writes: [...first.writes, ...second.writes] });
    assertNoMismatch(m.mismatches, 'after merge');
    assert.equal(m.levels, 1);
    assert.deepEqual(m.list, ['DiskDescriptor.xml', 'root.hds'].sort());
  });

  test(`${k.kind}: overlay on a qemu-img base given as a Blob; the changes survive a reload and a browser restart`, async () => {
    const basePath = join(ctx.tmp, 'base.hds');
    await qemuCreate(basePath, SIZE, CLUSTER);
    await qemuIo(basePath, [ioWrite(0xaa, 0, 1 << 20), ioWrite(0x55, 3 << 20, 300 << 10)]);
    const baseBytes = await readFile(basePath);
    const base = '/files/base.hds';
    const model = await qemuConvertToRaw(basePath, `${basePath}.raw`);
    const { writes } = randomWrites(5, SIZE, 25, 100_000, model);
    const w = await call<{ levels: number }>(ctx.page, 'overlayWrite', { kind: k.kind, dir: 'tests/overlay', base, baseKind: 'ploop', writes, reset: true });
    assert.equal(w.levels, 2);
    await ctx.page.reload();
    const v = await call<{ mismatches: unknown[]; top: string; record: string }>(ctx.page, 'overlayVerify', { kind: k.kind, dir: 'tests/overlay', base, baseKind: 'ploop', writes, upload: ctx.uploads.url + 'top.hds' });
    assertNoMismatch(v.mismatches, 'overlay after reload');
    assert.deepEqual(JSON.parse(v.record), { version: 1, topFile: 'top.hds', baseKind: 'ploop', baseBytes: baseBytes.length, baseId: 'base-1' });
    // The top is a valid delta by itself, and qemu-img reads base + top as a backing chain like we do.
    const topPath = join(ctx.tmp, 'top.hds');
    await writeFile(topPath, ctx.uploads.take('top.hds'));
    const c = await qemuCheck(topPath);
    assert.ok(c.clean, describeCheck(c));
    await assertPloopAccepts(topPath, 'the overlay top');
    const chain = await qemuConvertChain([basePath, topPath], join(ctx.tmp, 'overlay.raw'));
    assert.ok(Buffer.from(chain).equals(Buffer.from(model)), 'qemu-img reading base + top differs from the model');

    await ctx.session.relaunch();
    ctx.page = await openPage(ctx.session);
    const again = await call<{ mismatches: unknown[] }>(ctx.page, 'overlayVerify', { kind: k.kind, dir: 'tests/overlay', base, baseKind: 'ploop', writes });
    assertNoMismatch(again.mismatches, 'overlay after a browser restart');
    await assert.rejects(call(ctx.page, 'overlayVerify', { kind: k.kind, dir: 'tests/overlay', base, baseKind: 'ploop', writes: [], baseId: 'another' }),
      (e: Error & { code?: string }) => e.code === 'EINVAL' && /holds changes made over a base with baseId "base-1", but this base has "another"/.test(e.message));
    assert.deepEqual(ctx.session.errors, []);
  });

  return ctx;
}

export type { Write };

// Browser-side routines for the store tests (served under /t/ next to dist/web). Plain JS so that
// the code runs as written in Chromium, on the page or (through worker.mjs) in a module worker.
import * as lib from '/ploop.js';

export function encode(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function decode(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The bytes of a write {offset, length, tag}: the same formula as writeBytes in stores-shared.ts. */
function writeBytes(w) {
  const out = new Uint8Array(w.length);
  for (let j = 0; j < w.length; j++) out[j] = (w.tag * 73 + j * 7 + (j >>> 9) * 31 + (j >>> 16)) & 255;
  return out;
}

/**
 * Send file bytes to the test's upload server (a real HTTP PUT: megabytes through page.evaluate
 * take seconds); returns their SHA-256 in hex either way.
 */
async function ship(bytes, upload) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  if (upload) {
    // A Blob body: a Uint8Array body was seen to upload ten times slower from Chromium.
    const res = await fetch(upload, { method: 'PUT', body: new Blob([bytes]) });
    if (!res.ok) throw new Error(`PUT ${upload}: HTTP ${res.status}`);
  }
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readAll(store) {
  const out = new Uint8Array(await store.size());
  await store.read(0, out);
  return out;
}

async function writeAll(image, writes) {
  for (const w of writes) await image.write(w.offset, writeBytes(w));
}

/**
 * Compare the whole virtual disk with the expected contents: `start` (zeros, or the bytes of
 * `from`) with every write of `writes` applied in order. Node sends the writes, not the model,
 * because moving megabytes through page.evaluate is slow.
 */
async function compare(image, { writes, from }) {
  const model = from ? await from.read(0, from.size) : new Uint8Array(image.size);
  for (const w of writes) model.set(writeBytes(w), w.offset);
  const bad = [];
  const chunk = 1 << 20;
  for (let offset = 0; offset < image.size && bad.length < 5; offset += chunk) {
    const got = await image.read(offset, Math.min(chunk, image.size - offset));
    for (let i = 0; i < got.length; i++) {
      if (got[i] !== model[offset + i]) {
        bad.push({ offset: offset + i, want: model[offset + i], got: got[i] });
        break;
      }
    }
  }
  return bad;
}

/** The base image as a Blob: fetched from the test server (cheaper than passing it through evaluate). */
async function fetchBlob(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.blob();
}

const opener = {
  opfs: (path, o) => lib.OpfsStore.open(path, o),
  idb: (path, o) => lib.IdbStore.open(path, o),
};
const dirOpener = {
  opfs: (path) => lib.OpfsDirectory.open(path),
  idb: (path) => lib.IdbDirectory.open(path),
};
const dirRemover = {
  opfs: (path) => lib.OpfsDirectory.remove(path),
  idb: (path) => lib.IdbDirectory.remove(path),
};
const storeRemover = {
  opfs: (path) => lib.OpfsStore.remove(path),
  idb: (path) => lib.IdbStore.remove(path),
};

export const routines = {
  where: async () => ({ worker: typeof window === 'undefined', isolated: self.crossOriginIsolated }),

  /** A new image in a store of `kind` at `path`, with `writes`; returns the store's mode. */
  async writeImage({ kind, path, size, clusterSize, writes }) {
    await storeRemover[kind](path);
    const store = await opener[kind](path, { create: true });
    await lib.createImage(store, { size, clusterSize });
    const image = await lib.open(store, { writable: true });
    await writeAll(image, writes);
    await image.flush();
    await image.close();
    return { mode: store.mode ?? kind };
  },

  /** Reopen the image at `path`: mismatches against `regions`, the file's bytes, the check report. */
  async verifyImage({ kind, path, writes, upload }) {
    const t0 = performance.now();
    const store = await opener[kind](path, {});
    const report = await lib.checkImage(store, {});
    const t1 = performance.now();
    const image = await lib.open(store, {});
    const mismatches = await compare(image, { writes });
    const t2 = performance.now();
    const file = await readAll(store);
    await image.close();
    const sha256 = await ship(file, upload);
    const ms = { check: t1 - t0, compare: t2 - t1, file: performance.now() - t2 };
    return { mode: store.mode ?? kind, mismatches, clean: report.clean, sha256, ms };
  },

  /** Error messages of misuse: second writable open, write to read-only, use after close. */
  async storeErrors({ kind, path }) {
    const caught = async (fn) => {
      try {
        await fn();
        return null;
      } catch (e) {
        return { code: e.code, name: e.name, message: e.message };
      }
    };
    await storeRemover[kind](path);
    const a = await opener[kind](path, { create: true });
    await a.write(0, new Uint8Array([1, 2, 3]));
    const second = await caught(async () => (await opener[kind](path, { writable: true })).close());
    await a.close();
    const ro = await opener[kind](path, {});
    const readOnlyWrite = await caught(() => ro.write(0, new Uint8Array(1)));
    const readOnlyTruncate = await caught(() => ro.truncate(0));
    await ro.close();
    const closedRead = await caught(() => ro.read(0, new Uint8Array(1)));
    const missing = await caught(() => opener[kind](path + '.missing', {}));
    return { second, readOnlyWrite, readOnlyTruncate, closedRead, missing };
  },

  /**
   * One writer at a time, readers told: a second writer of a store and of a disk folder is
   * refused, a reader of the store gets a warning, the folder says who writes it.
   */
  async oneWriter({ kind, path, dir }) {
    const caught = async (fn) => {
      try {
        await fn();
        return null;
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    };
    await storeRemover[kind](path);
    // OPFS readers and writers share a file through 'readwrite-unsafe' handles only.
    const shared = kind === 'opfs' ? { shared: true } : {};
    const writer = await opener[kind](path, { create: true, ...shared });
    const reader = await opener[kind](path, { ...shared });
    const storeWarnings = reader.openWarnings;
    await reader.close();
    const secondWriter = await caught(async () => (await opener[kind](path, { writable: true })).close());
    await writer.close();
    const freeStore = await caught(async () => (await opener[kind](path, { writable: true })).close());

    await dirRemover[kind](dir);
    const folder = await dirOpener[kind](dir);
    await lib.initStack(folder, { size: 4 << 20, clusterSize: 1 << 20 });
    const stack = await lib.openStackDir(folder, { writable: true });
    const secondStack = await caught(async () => (await lib.openStackDir(folder, { writable: true })).close());
    const snapshot = await caught(() => lib.snapshotStack(folder));
    const folderWarning = await folder.writerWarning();
    await stack.close();
    const folderAfter = await folder.writerWarning();
    const freeFolder = await caught(async () => (await lib.openStackDir(folder, { writable: true })).close());
    return { storeWarnings, secondWriter, freeStore, secondStack, snapshot, folderWarning, folderAfter, freeFolder };
  },

  /** Raw store semantics: sparse growth, short reads at the end, truncate drops and zeroes. */
  async storeSemantics({ kind, path }) {
    await storeRemover[kind](path);
    const s = await opener[kind](path, { create: true });
    const log = [];
    await s.write(100000, new Uint8Array([9, 8, 7]));
    log.push(await s.size());
    const buf = new Uint8Array(10).fill(0xff);
    log.push(await s.read(99998, buf), Array.from(buf));
    const gap = new Uint8Array(5).fill(0xff);
    await s.read(50, gap);
    log.push(Array.from(gap));
    await s.truncate(100001);
    await s.truncate(200000);
    const tail = new Uint8Array(4).fill(0xff);
    log.push(await s.read(99999, tail), Array.from(tail));
    await s.write(0, new Uint8Array(70000).fill(3));
    await s.flush();
    await s.close();
    const again = await opener[kind](path, {});
    log.push(await again.size());
    const mid = new Uint8Array(3);
    await again.read(69999, mid);
    log.push(Array.from(mid));
    await again.close();
    return log;
  },

  /** A disk folder: init, write A, snapshot, write B; returns the descriptor. */
  async writeStack({ kind, dir, size, clusterSize, writesA, writesB }) {
    await dirRemover[kind](dir);
    const d = await dirOpener[kind](dir);
    await lib.initStack(d, { size, clusterSize });
    let image = await lib.openStackDir(d, { writable: true });
    await writeAll(image, writesA);
    await image.close();
    const snap = await lib.snapshotStack(d);
    image = await lib.openStackDir(d, { writable: true });
    await writeAll(image, writesB);
    await image.close();
    return { snap, descriptor: await d.readText('DiskDescriptor.xml') };
  },

  /** Reopen a disk folder: mismatches, and every file's bytes (for qemu-img / ploop). */
  async verifyStack({ kind, dir, writes, files, upload }) {
    const d = await dirOpener[kind](dir);
    const image = await lib.openStackDir(d, {});
    const mismatches = await compare(image, { writes });
    const levels = image.lowerDeltas.length + 1;
    await image.close();
    const out = {};
    for (const f of files) {
      const s = await d.openStore(f, {});
      out[f] = await ship(await readAll(s), upload && upload + encodeURIComponent(f));
      await s.close();
    }
    return { mismatches, levels, descriptor: await d.readText('DiskDescriptor.xml'), files: out, list: await d.list() };
  },

  /** Merge the top delta of a disk folder into the one below; the folder then reads the same. */
  async mergeStack({ kind, dir, writes }) {
    const d = await dirOpener[kind](dir);
    const merged = await lib.mergeStack(d);
    const image = await lib.openStackDir(d, {});
    const mismatches = await compare(image, { writes });
    const levels = image.lowerDeltas.length + 1;
    await image.close();
    return { merged, mismatches, levels, list: await d.list() };
  },

  /** Base from a Blob (fetched from `base`, a URL), top delta in `kind` storage; write then close. */
  async overlayWrite({ kind, dir, base, baseKind, writes, reset }) {
    if (reset) await dirRemover[kind](dir);
    const blob = await fetchBlob(base);
    const image = await lib.openOverlay({ base: new lib.BlobStore(blob, { name: 'base' }), baseKind, top: await dirOpener[kind](dir), baseId: 'base-1' });
    await writeAll(image, writes);
    await image.close();
    return { levels: image.lowerDeltas.length + 1 };
  },

  async overlayVerify({ kind, dir, base, baseKind, writes, baseId, upload }) {
    const d = await dirOpener[kind](dir);
    const blob = await fetchBlob(base);
    const image = await lib.openOverlay({ base: new lib.BlobStore(blob, { name: 'base' }), baseKind, top: d, writable: false, baseId });
    const from = baseKind === 'raw' ? { size: blob.size, read: async () => new Uint8Array(await blob.arrayBuffer()) } : await lib.open(new lib.BlobStore(blob), {});
    const padded = new Uint8Array(image.size);
    padded.set(await from.read(0, from.size));
    const mismatches = await compare(image, { writes, from: { size: image.size, read: async () => padded } });
    if (baseKind !== 'raw') await from.close();
    await image.close();
    const s = await d.openStore('top.hds', {});
    const top = await ship(await readAll(s), upload);
    await s.close();
    return { mismatches, top, record: await d.readText('overlay.json') };
  },

  /** Write from views on a SharedArrayBuffer (what the shared WASM memory gives) into IndexedDB. */
  async idbSharedWrite({ path }) {
    await lib.IdbStore.remove(path);
    const s = await lib.IdbStore.open(path, { create: true });
    const shared = new Uint8Array(new SharedArrayBuffer(200_000)).fill(0x42);
    await s.write(0, shared.subarray(0, 100_000));
    await s.write(100_000, shared.subarray(100_000));
    await s.close();
    return { isolated: self.crossOriginIsolated };
  },

  async idbSharedRead({ path }) {
    const s = await lib.IdbStore.open(path, {});
    const bytes = await readAll(s);
    await s.close();
    return { size: bytes.length, sum: bytes.reduce((a, b) => a + b, 0) };
  },

  /** Open an image over HTTP and read `regions` ([offset, length]); returns their bytes and the store's stats. */
  async httpRead({ url, regions, options }) {
    const store = await lib.HttpRangeStore.open(url, options);
    const image = await lib.open(store, { keepStoreOpen: true });
    const out = [];
    for (const [offset, length] of regions) out.push(encode(await image.read(offset, length)));
    await image.close();
    return { size: await store.size(), stats: store.stats, regions: out };
  },

  /** An HTTP base with the top delta in `kind` storage: write (reset first) or read regions back. */
  async httpOverlay({ url, kind, dir, writes, reset, regions }) {
    if (reset) await dirRemover[kind](dir);
    const base = await lib.HttpRangeStore.open(url);
    const image = await lib.openOverlay({ base, top: await dirOpener[kind](dir), baseId: url, writable: !regions });
    if (writes) await writeAll(image, writes);
    const out = [];
    for (const [offset, length] of regions ?? []) out.push(encode(await image.read(offset, length)));
    await image.close();
    return { regions: out, stats: base.stats };
  },

  /** Open the file picked in the page's <input type=file> as a BlobStore and read regions. */
  async pickedRead({ regions }) {
    const file = document.querySelector('input[type=file]').files[0];
    const store = new lib.BlobStore(file);
    const image = await lib.open(store, {});
    const out = [];
    for (const [offset, length] of regions) out.push(encode(await image.read(offset, length)));
    await image.close();
    return { name: store.name, size: await store.size(), regions: out, writable: store.writable };
  },

  /** Shared OPFS handles: the page and a worker write one file; each sees the other's bytes and size. */
  async opfsShared({ path }) {
    await lib.OpfsStore.remove(path);
    const a = await lib.OpfsStore.open(path, { create: true, shared: true });
    // No flush: another handle sees the bytes and the size at once.
    await a.write(0, new Uint8Array([1, 2, 3, 4]));
    const worker = await routines.inWorker({ name: 'opfsSharedWorker', arg: { path } });
    const size = await a.size();
    const seen = new Uint8Array(3);
    const n = await a.read(100000, seen);
    const refusal = async (options) => {
      try {
        await (await lib.OpfsStore.open(path, options)).close();
        return null;
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    };
    const exclusive = await refusal({ writable: true });
    // A second shared writer that wants the lock (another page's image) is refused by it.
    const locked = await refusal({ writable: true, shared: true });
    // A reader is let in, and told.
    const reader = await lib.OpfsStore.open(path, { shared: true });
    const readerWarnings = reader.openWarnings;
    await reader.close();
    await a.close();
    return { modes: [a.mode, worker.value?.mode], shared: [a.shared, worker.value?.shared], worker, size, n, seen: Array.from(seen), exclusive, locked, readerWarnings };
  },

  async opfsSharedWorker({ path }) {
    // Writes under the page's lock, as a runner does under its coordinator's.
    const b = await lib.OpfsStore.open(path, { writable: true, shared: true, lock: false });
    const head = new Uint8Array(4);
    await b.read(0, head);
    const sizeSeen = await b.size();
    await b.write(100000, new Uint8Array([5, 6, 7]));
    await b.flush();
    await b.close();
    return { mode: b.mode, shared: b.shared, head: Array.from(head), size: sizeSeen };
  },

  /** With the OPFS worker's URL wrong, opening fails with an error naming it (and does not hang). */
  async opfsBadWorker({ url }) {
    lib.setOpfsWorkerUrl(url);
    try {
      await lib.OpfsStore.open('tests/never.hds', { create: true });
      return null;
    } catch (e) {
      return { code: e.code, message: e.message };
    } finally {
      lib.setOpfsWorkerUrl(new URL('/opfs.worker.js', location.href));
    }
  },

  /** Run a routine in a module worker. */
  async inWorker({ name, arg }) {
    const worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
    try {
      return await new Promise((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => reject(new Error(`worker failed: ${e.message}`));
        worker.postMessage({ name, arg });
      });
    } finally {
      worker.terminate();
    }
  },
};

/** Run a routine; errors come back as data so that Node can assert on code and message. */
export async function run(name, arg) {
  try {
    return { ok: true, value: await routines[name](arg) };
  } catch (e) {
    return { ok: false, code: e?.code, message: e?.message ?? String(e), stack: e?.stack };
  }
}

// Browser side of bench/browser.ts (served under /b/ beside dist/web; plain JS so it runs as
// written, on the page or in a module worker through worker.mjs). Each routine times the
// library's store against the raw API doing the same bytes, interleaved repetition by
// repetition, and returns the rates of every repetition (Node takes the medians).
import * as lib from '/ploop.js';
import { createStore, set, setMany, get, getMany, clear, promisifyRequest } from '/idb-keyval/index.js';

const MiB = 1 << 20;

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
}

function fill(bytes, seed) {
  const r = rng(seed);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = r();
  return bytes;
}

function medianOf(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

async function time(fn) {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/**
 * OPFS in a worker: OpfsStore (sync mode: it holds the sync access handle itself) against a raw
 * FileSystemSyncAccessHandle on another file of the same size (the two swap files every
 * repetition), same buffers, same offsets.
 * Sequential 1 MiB writes + flush, sequential 1 MiB reads, random 4 KiB reads, random 4 KiB
 * writes + flush. Reads run in short slices (4 MiB, 100 requests) that alternate between the
 * two sides (which one goes first alternates too), and each side's rate is taken from its
 * median slice: on a machine shared with other work a preemption hits some slices for tens of
 * milliseconds, and the median of many short slices is what a request costs when it is not
 * preempted, on both sides alike. A write pass ends with a flush, so writes alternate pass by
 * pass (whole passes).
 */
async function opfs({ fileBytes, reps, smallOps }) {
  const root = await navigator.storage.getDirectory();
  // Two files; the sides swap them every repetition, so that neither keeps the file that happens
  // to read faster (a few tenths of a µs per 4 KiB read between two files were seen).
  const files = ['bench-a.bin', 'bench-b.bin'];
  let rawHandle = null;
  let store = null;
  const openSides = async (swap, create = false) => {
    rawHandle?.close();
    await store?.close();
    rawHandle = await (await root.getFileHandle(files[swap ? 1 : 0], { create })).createSyncAccessHandle();
    store = await lib.OpfsStore.open(files[swap ? 0 : 1], create ? { create } : { writable: true });
    if (store.mode !== 'sync') throw new Error(`OpfsStore in a worker is in ${store.mode} mode, expected sync`);
  };
  await openSides(false, true);
  const big = fill(new Uint8Array(MiB), 1);
  const small = fill(new Uint8Array(4096), 2);
  const offsets = (seed) => { const r = rng(seed); return Array.from({ length: smallOps }, () => (r() % (fileBytes / 4096)) * 4096); };
  const seqSlices = [];
  for (let at = 0; at < fileBytes; at += 4 * MiB) seqSlices.push([at, Math.min(fileBytes, at + 4 * MiB)]);
  const randSlices = (offs) => { const out = []; for (let i = 0; i < offs.length; i += 100) out.push(offs.slice(i, i + 100)); return out; };
  const raw = {
    seqWrite: () => { for (let at = 0; at < fileBytes; at += MiB) rawHandle.write(big, { at }); rawHandle.flush(); },
    seqRead: ([from, to]) => { for (let at = from; at < to; at += MiB) rawHandle.read(big, { at }); },
    randRead: (offs) => { for (const at of offs) rawHandle.read(small, { at }); },
    randWrite: (offs) => { for (const at of offs) rawHandle.write(small, { at }); rawHandle.flush(); },
  };
  const ours = {
    seqWrite: async () => { for (let at = 0; at < fileBytes; at += MiB) await store.write(at, big); await store.flush(); },
    seqRead: async ([from, to]) => { for (let at = from; at < to; at += MiB) await store.read(at, big); },
    randRead: async (offs) => { for (const at of offs) await store.read(at, small); },
    randWrite: async (offs) => { for (const at of offs) await store.write(at, small); await store.flush(); },
  };
  const out = {};
  try {
    for (const [name, bytes] of [['seqWrite', fileBytes], ['seqRead', fileBytes], ['randRead', smallOps * 4096], ['randWrite', smallOps * 4096]]) {
      out[name] = { raw: [], store: [] };
      for (let r = 0; r < reps + 1; r++) {
        const offs = offsets(100 + r);
        await openSides(r % 2 === 1);
        // Writes: one pass each (it ends with a flush); reads: slices, alternately.
        const slices = name === 'seqRead' ? seqSlices : name === 'randRead' ? randSlices(offs) : [offs];
        const tRaw = [];
        const tStore = [];
        for (let k = 0; k < slices.length; k++) {
          const rawFirst = (r + k) % 2 === 0;
          if (rawFirst) tRaw.push(await time(() => raw[name](slices[k])));
          tStore.push(await time(() => ours[name](slices[k])));
          if (!rawFirst) tRaw.push(await time(() => raw[name](slices[k])));
        }
        const sliceBytes = bytes / slices.length;
        const rate = (ts) => sliceBytes / medianOf(ts) / MiB;
        if (r > 0) { out[name].raw.push(rate(tRaw)); out[name].store.push(rate(tStore)); } // first round warms up
      }
    }
  } finally {
    rawHandle?.close();
    await store?.close();
    for (const f of files) await lib.OpfsStore.remove(f);
  }
  return out;
}

/**
 * Where the time of a random 4 KiB OPFS read goes (in a worker): the raw handle, the raw handle
 * plus one ingredient of a store call each (a subarray per call, awaiting a settled promise, an
 * async function frame), the old async store path re-enacted over the raw handle, and
 * OpfsStore.read. Slices of `per` reads rotate through the variants (order reversed every other
 * slice); the result is each variant's median µs per read over the slices after 10 warm-up ones.
 */
async function opfsReadCost({ fileBytes = 64 * MiB, slices = 310, per = 100 }) {
  const root = await navigator.storage.getDirectory();
  const h = await (await root.getFileHandle('bench-cost-raw.bin', { create: true })).createSyncAccessHandle();
  const store = await lib.OpfsStore.open('bench-cost-store.bin', { create: true });
  const big = fill(new Uint8Array(MiB), 4);
  const small = new Uint8Array(4096);
  try {
    for (let at = 0; at < fileBytes; at += MiB) { h.write(big, { at }); await store.write(at, big); }
    h.flush();
    await store.flush();
    // The store's read path before 2026-11-26: an async method, a size clamp, then a loop that
    // made a subarray per call.
    const oldSyncRead = (offset, into) => {
      let done = 0;
      while (done < into.length) {
        const n = h.read(into.subarray(done), { at: offset + done });
        if (n <= 0) break;
        done += n;
      }
      return done;
    };
    const oldStoreRead = async (offset, into) => {
      const length = Math.max(0, Math.min(into.length, fileBytes - offset));
      if (length === 0) return 0;
      return oldSyncRead(offset, length === into.length ? into : into.subarray(0, length));
    };
    const asyncRead = async (offset, into) => h.read(into, { at: offset });
    const variants = {
      'raw handle.read': async (offs) => { for (const at of offs) h.read(small, { at }); },
      '+ a subarray per call': async (offs) => { for (const at of offs) h.read(small.subarray(0), { at }); },
      '+ await of a settled promise': async (offs) => { for (const at of offs) await Promise.resolve(h.read(small, { at })); },
      '+ an async function frame': async (offs) => { for (const at of offs) await asyncRead(at, small); },
      'old store path over the raw handle': async (offs) => { for (const at of offs) await oldStoreRead(at, small); },
      'OpfsStore.read': async (offs) => { for (const at of offs) await store.read(at, small); },
    };
    const names = Object.keys(variants);
    const times = Object.fromEntries(names.map((n) => [n, []]));
    const r = rng(9);
    for (let k = 0; k < slices; k++) {
      const offs = Array.from({ length: per }, () => (r() % (fileBytes / 4096)) * 4096);
      for (const n of k % 2 ? [...names].reverse() : names) {
        const t = await time(() => variants[n](offs));
        if (k >= 10) times[n].push((t * 1e6) / per);
      }
    }
    return Object.fromEntries(names.map((n) => [n, medianOf(times[n])]));
  } finally {
    h.close();
    await store.close();
    await root.removeEntry('bench-cost-raw.bin');
    await lib.OpfsStore.remove('bench-cost-store.bin');
  }
}

/**
 * IndexedDB on the page: IdbStore (its default chunk size, 32 KiB, or `chunkKiB`; commits
 * batched up to 8 MiB with setMany) against raw idb-keyval doing the same bytes as values of the
 * same size: setMany in 8 MiB batches (the same batching by hand), and one set() per chunk (no
 * batching). Both sides use the same transaction durability: 'default' (idb-keyval's own;
 * relaxed in Chromium) or 'strict' (the IdbStore's default: a commit waits for the disk).
 * Reads: 1 MiB sequential (one getMany of the chunks) and random 4 KiB (get of one chunk).
 */
async function idb({ totalBytes, reps, smallOps, durability, chunkKiB = 0 }) {
  // The raw side uses the store's chunk size (its default unless chunkKiB says otherwise).
  const chunk = chunkKiB ? chunkKiB << 10 : lib.IdbStore.DEFAULT_CHUNK_BYTES;
  const chunks = totalBytes / chunk;
  const raw = durability === 'default' ? createStore('bench-raw', 'chunks') : storeWithDurability('bench-raw-' + durability, 'chunks', durability);
  const data = fill(new Uint8Array(MiB), 3);
  const small = new Uint8Array(4096);
  const offsets = (seed) => { const r = rng(seed); return Array.from({ length: smallOps }, () => (r() % (totalBytes / 4096)) * 4096); };
  const ops = {
    // Each write op starts from an empty database so that all do the same work.
    storeWrite: async () => {
      const store = await lib.IdbStore.open('bench/disk', { create: true, db: 'bench-store', durability, chunkBytes: chunk });
      for (let at = 0; at < totalBytes; at += MiB) await store.write(at, data);
      await store.close();
    },
    rawSetMany: async () => {
      await clear(raw);
      const batch = (8 * MiB) / chunk;
      for (let first = 0; first < chunks; first += batch) {
        const entries = [];
        for (let i = first; i < Math.min(chunks, first + batch); i++) entries.push([['bench/disk', i], data.slice((i % (MiB / chunk)) * chunk, (i % (MiB / chunk) + 1) * chunk)]);
        await setMany(entries, raw);
      }
    },
    rawSetEach: async () => {
      await clear(raw);
      for (let i = 0; i < chunks; i++) await set(['bench/disk', i], data.slice((i % (MiB / chunk)) * chunk, (i % (MiB / chunk) + 1) * chunk), raw);
    },
  };
  const out = { storeWrite: [], rawSetMany: [], rawSetEach: [], storeSeqRead: [], rawSeqRead: [], storeRandRead: [], rawRandRead: [], storeCachedRandRead: [] };
  // No warm-up round here: IndexedDB is slow enough that the JIT does not matter.
  for (let r = 0; r < reps; r++) {
    // The three writers take turns going first.
    const writers = ['storeWrite', 'rawSetMany', 'rawSetEach'];
    for (const name of [...writers.slice(r % 3), ...writers.slice(0, r % 3)]) {
      const t = await time(ops[name]);
      out[name].push(totalBytes / t / MiB);
    }
    // Reads, on what the two writers left, in slices that alternate between the store and the
    // raw loop (1 MiB, or 10 random reads; which goes first alternates), each side's median slice.
    // Like for like: the raw loop keeps nothing, so the store's chunk cache is off here (and
    // on, at its default size, for the last measurement).
    let store = await lib.IdbStore.open('bench/disk', { db: 'bench-store', durability, cacheBytes: 0 });
    const buf = new Uint8Array(MiB);
    if (await store.size() !== totalBytes) throw new Error(`IdbStore holds ${await store.size()} bytes, expected ${totalBytes}`);
    const storeSeq = async (at) => { if (await store.read(at, buf) !== MiB) throw new Error('short IdbStore read'); };
    const rawSeq = async (at) => {
      const first = at / chunk;
      const values = await getMany(Array.from({ length: MiB / chunk }, (_, k) => ['bench/disk', first + k]), raw);
      values.forEach((v, k) => buf.set(v, k * chunk));
    };
    const storeRand = async (offs) => { for (const at of offs) if (await store.read(at, small) !== 4096) throw new Error('short IdbStore read'); };
    const rawRand = async (offs) => {
      for (const at of offs) {
        const v = await get(['bench/disk', Math.floor(at / chunk)], raw);
        small.set(v.subarray(at % chunk, at % chunk + 4096));
      }
    };
    const alternate = async (slices, ours, theirs) => {
      const a = [];
      const b = [];
      for (let k = 0; k < slices.length; k++) {
        if ((r + k) % 2 === 0) { a.push(await time(() => ours(slices[k]))); b.push(await time(() => theirs(slices[k]))); }
        else { b.push(await time(() => theirs(slices[k]))); a.push(await time(() => ours(slices[k]))); }
      }
      return [medianOf(a) * slices.length, medianOf(b) * slices.length];
    };
    const seqSlices = Array.from({ length: totalBytes / MiB }, (_, k) => k * MiB);
    const [tStoreSeq, tRawSeq] = await alternate(seqSlices, storeSeq, rawSeq);
    const offs = offsets(200 + r);
    const randSlices = Array.from({ length: Math.ceil(offs.length / 10) }, (_, k) => offs.slice(k * 10, k * 10 + 10));
    const [tStoreRand, tRawRand] = await alternate(randSlices, storeRand, rawRand);
    await store.close();
    store = await lib.IdbStore.open('bench/disk', { db: 'bench-store', durability });
    const tCachedRand = await time(async () => { for (const at of offs) if (await store.read(at, small) !== 4096) throw new Error('short IdbStore read'); });
    await store.close();
    {
      out.storeCachedRandRead.push((smallOps * 4096) / tCachedRand / MiB);
      out.storeSeqRead.push(totalBytes / tStoreSeq / MiB);
      out.rawSeqRead.push(totalBytes / tRawSeq / MiB);
      out.storeRandRead.push((smallOps * 4096) / tStoreRand / MiB);
      out.rawRandRead.push((smallOps * 4096) / tRawRand / MiB);
    }
  }
  await clear(raw);
  await lib.IdbStore.remove('bench/disk', { db: 'bench-store' });
  return out;
}

/**
 * IndexedDB value size against throughput (raw idb-keyval, no store): for each chunk size and
 * value kind (Uint8Array or its ArrayBuffer), `totalBytes` written as one setMany per
 * `batchBytes` and as one set() per chunk, then read back with one getMany per batch. Chromium
 * wraps a serialized value above a threshold (64 KiB in Blink's IDBValueWrapper) into a Blob
 * kept as a file of its own; this shows where that costs.
 */
async function idbSizes({ totalBytes, sizesKiB, kinds = ['u8', 'ab'], durability = 'default', reps = 3, batchBytes = 8 * MiB, each = true }) {
  const raw = durability === 'default' ? createStore('bench-sizes', 'chunks') : storeWithDurability('bench-sizes-' + durability, 'chunks', durability);
  const data = fill(new Uint8Array(totalBytes), 5);
  const cases = [];
  for (const kib of sizesKiB) {
    for (const kind of kinds) {
      const chunk = Math.round(kib * 1024);
      const n = Math.floor(totalBytes / chunk);
      // Values made before the clock starts: both ways store the same objects.
      const values = Array.from({ length: n }, (_, i) => { const c = data.slice(i * chunk, (i + 1) * chunk); return kind === 'ab' ? c.buffer : c; });
      const perBatch = Math.max(1, Math.floor(batchBytes / chunk));
      cases.push({ rec: { kib, kind, chunks: n, perBatch, setMany: [], setEach: [], getMany: [] }, values, bytes: n * chunk });
    }
  }
  // Repetitions outermost: every size sees the same phases of the machine's other load.
  for (let r = 0; r < reps; r++) {
    for (const { rec, values, bytes } of cases) {
      const n = values.length;
      const perBatch = rec.perBatch;
      await clear(raw);
      rec.setMany.push(bytes / MiB / await time(async () => {
        for (let first = 0; first < n; first += perBatch) {
          await setMany(values.slice(first, first + perBatch).map((v, k) => [['d', first + k], v]), raw);
        }
      }));
      rec.getMany.push(bytes / MiB / await time(async () => {
        for (let first = 0; first < n; first += perBatch) {
          const got = await getMany(Array.from({ length: Math.min(perBatch, n - first) }, (_, k) => ['d', first + k]), raw);
          if (got.some((v) => !v)) throw new Error('idbSizes: a chunk is missing');
        }
      }));
      if (each) {
        await clear(raw);
        rec.setEach.push(bytes / MiB / await time(async () => { for (let i = 0; i < n; i++) await set(['d', i], values[i], raw); }));
      }
    }
  }
  await clear(raw);
  return cases.map((c) => c.rec);
}

/** idb-keyval's createStore with a durability hint on every transaction (as src/stores/idb.ts does). */
function storeWithDurability(db, store, durability) {
  let dbp;
  const open = () => {
    if (dbp) return dbp;
    const request = indexedDB.open(db);
    request.onupgradeneeded = () => request.result.createObjectStore(store);
    dbp = promisifyRequest(request);
    return dbp;
  };
  return (txMode, callback) => open().then((d) => callback(d.transaction(store, txMode, { durability }).objectStore(store)));
}

/** Run a routine in a fresh module worker. */
async function inWorker({ name, arg }) {
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
  try {
    return await new Promise((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
      worker.postMessage({ name, arg });
    });
  } finally {
    worker.terminate();
  }
}

const routines = { opfs, opfsReadCost, idb, idbSizes, inWorker };

/** { ok, value } or { ok: false, message } — errors cross postMessage/evaluate as data. */
export async function run(name, arg) {
  try {
    return { ok: true, value: await routines[name](arg) };
  } catch (e) {
    return { ok: false, message: String(e && e.stack || e) };
  }
}

// Page side of test/browser/runners-opfs.test.ts (served under /rt/, plain JS): ParallelImage
// over a writable OPFS image, the coordinator on the page (its handle in the OPFS host worker)
// and every runner with its own 'readwrite-unsafe' handle on the same file.
import * as lib from '/ploop.js';
import { randomRequests, findMismatch } from './workload.mjs';

const opened = new Map();

async function sha256(bytes) {
  return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The whole virtual disk, read through `image`. */
async function readDisk(image) {
  return image.read(0, image.size);
}

function spec(path) {
  return { kind: 'opfs', path, writable: true };
}

const routines = {
  /** A fresh empty image at `path`. */
  async create({ path, size, clusterSize }) {
    await lib.OpfsStore.remove(path);
    const store = await lib.OpfsStore.open(path, { create: true });
    await lib.createImage(store, { size, clusterSize });
    const bytes = await store.size();
    await store.close();
    return { bytes };
  },

  /**
   * Open `opens` times in a row (a fallback warning must come once), run the random workload
   * against a model, check the read-back, flush and close; reopen and check again; then send
   * the file's bytes and the model to the test's upload server.
   */
  async workload({ path, runners, seed, groups, opens, opfsSharedHandles, upload }) {
    const warnings = [];
    const options = { writable: true, runners, opfsSharedHandles, onWarning: (m) => warnings.push(m) };
    let image = null;
    for (let i = 0; i < opens; i++) {
      if (image) await image.close();
      image = await lib.ParallelImage.open([spec(path)], options);
    }
    const createdBytes = await image.image.store.size();
    const model = new Uint8Array(image.size);
    const { writes, discards } = await randomRequests(image, model, { seed, groups });
    const firstMismatch = await findMismatch(image, model);
    await image.flush();
    // Runners allocated and wrote every data cluster through their own handles: the
    // coordinator's handle must see the file grown past the last used slot.
    const bat = image.image.bat;
    const usedEndBytes = bat.slotOffset(bat.usedSlotsEnd());
    const coordinatorSizeBytes = await image.image.store.size();
    const stats = await image.stats();
    const runnerCount = image.runnerCount;
    const shared = image.image.store.shared;
    await image.close();

    const again = await lib.ParallelImage.open([spec(path)], options);
    const reopenMismatch = await findMismatch(again, model);
    await again.close();

    const file = await lib.OpfsStore.open(path);
    const bytes = new Uint8Array(await file.size());
    await file.read(0, bytes);
    await file.close();
    const check = await lib.checkImage(new lib.MemoryStore(bytes.slice(), { writable: false }));
    // A Blob body: a Uint8Array body was seen to upload ten times slower from Chromium.
    for (const [name, body] of [['image', bytes], ['model', model]]) {
      const r = await fetch(`${upload}${name}-${runners}-${seed}`, { method: 'PUT', body: new Blob([body]) });
      if (!r.ok) throw new Error(`upload of ${name}: HTTP ${r.status}`);
    }
    return {
      isolated: crossOriginIsolated, runnerCount, shared, warnings, writes, discards, firstMismatch, reopenMismatch,
      createdBytes, usedEndBytes, coordinatorSizeBytes, fileBytes: bytes.length,
      clustersAllocated: stats.clustersAllocated, clustersReleased: stats.clustersReleased, runnerRequests: stats.runnerRequests ?? [],
      check: { clean: check.clean, corruptions: check.corruptions, leakedClusters: check.leakedClusters },
      modelSha256: await sha256(model),
    };
  },

  /** SHA-256 of the disk read through runners (after a reload: nothing of the writer is left). */
  async diskSha256({ path, runners }) {
    const warnings = [];
    const image = await lib.ParallelImage.open([spec(path)], { writable: true, runners, onWarning: (m) => warnings.push(m) });
    try {
      return { runnerCount: image.runnerCount, warnings, sha256: await sha256(await readDisk(image)) };
    } finally {
      await image.close();
    }
  },

  /** Open with runners and keep the image open until `release`. */
  async hold({ path, runners }) {
    const image = await lib.ParallelImage.open([spec(path)], { writable: true, runners });
    opened.set(path, image);
    return { runnerCount: image.runnerCount };
  },

  async release({ path }) {
    await opened.get(path)?.close();
    opened.delete(path);
  },

  /** Try to open the image for writing with runners and alone (PloopImage); the errors, or null. */
  async tryOpen({ path, runners }) {
    const attempt = async (open) => {
      try {
        await (await open()).close();
        return null;
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    };
    return {
      runners: await attempt(() => lib.ParallelImage.open([spec(path)], { writable: true, runners })),
      alone: await attempt(async () => lib.PloopImage.open(await lib.OpfsStore.open(path, { writable: true }), { writable: true })),
    };
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

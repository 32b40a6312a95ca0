// Page side of test/browser/runners.test.ts (served under /rt/, plain JS so that nothing is
// transformed on the way): a random workload through ParallelImage against a model.

/** The workload, run in the page: see runners.test.ts. */
export async function run(args) {
  const lib = await import('/ploop.js');
  const C = 64 << 10;
  const SIZE = 4 << 20;
  const created = new lib.MemoryStore();
  await lib.createImage(created, { size: SIZE, clusterSize: C });
  const store = lib.SharedMemoryStore.from(created.bytes());
  const warnings = [];
  // Opened `opens` times in a row: the fallback's warning must come once, not per open.
  let image = null;
  for (let i = 0; i < args.opens; i++) {
    if (image) await image.close();
    image = await lib.ParallelImage.open([store.spec()], { writable: true, runners: args.runners, onWarning: (m) => warnings.push(m) });
  }
  const model = new Uint8Array(SIZE);
  const { writes, discards } = await randomRequests(image, model, args);
  const firstMismatch = await findMismatch(image, model);
  const stats = await image.stats();
  const runnerCount = image.runnerCount;
  await image.close();
  const bytes = store.bytes();
  const check = await lib.checkImage(new lib.MemoryStore(bytes.slice(), { writable: false }));
  const base64 = (b) => {
    let text = '';
    for (let at = 0; at < b.length; at += 32768) text += String.fromCharCode(...b.subarray(at, at + 32768));
    return btoa(text);
  };
  return {
    isolated: crossOriginIsolated, runnerCount, warnings, firstMismatch, writes, discards,
    clustersAllocated: stats.clustersAllocated, clustersReleased: stats.clustersReleased, batPageWrites: stats.batPageWrites,
    runnerRequests: stats.runnerRequests ?? [],
    check: { clean: check.clean, corruptions: check.corruptions, leakedClusters: check.leakedClusters },
    image: base64(bytes), model: base64(model),
  };
}

/**
 * `args.groups` groups of 16 concurrent random requests on `image`, mirrored into `model`: each
 * group has one request per slice of the disk (so they never overlap, but they share clusters'
 * md page and land on every runner): whole-cluster and unaligned discards, zero and random
 * writes of up to 3 clusters (crossing clusters) or 700 bytes; a flush every 8 groups.
 */
export async function randomRequests(image, model, args) {
  const C = image.clusterSize;
  const SIZE = model.length;
  let s = args.seed >>> 0 || 1;
  const rnd = (n) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s % n;
  };
  const randomBytes = (n) => {
    const out = new Uint8Array(n);
    for (let at = 0; at < n; at += 65536) crypto.getRandomValues(out.subarray(at, Math.min(n, at + 65536)));
    return out;
  };
  let writes = 0;
  let discards = 0;
  const SLICES = 16;
  const slice = SIZE / SLICES;
  for (let g = 0; g < args.groups; g++) {
    const tasks = [];
    for (let k = 0; k < SLICES; k++) {
      const lo = k * slice;
      const r = rnd(100);
      if (r < 15) {
        // Whole-cluster discard (unmaps), cluster-aligned.
        const first = lo + rnd(slice / C - 1) * C;
        const length = C * (1 + rnd(2));
        model.fill(0, first, first + length);
        tasks.push(image.discard(first, length));
        discards++;
        continue;
      }
      const offset = lo + rnd(slice - 1);
      const length = 1 + rnd(Math.min(lo + slice - offset, r < 60 ? 3 * C : 700) - 1);
      if (r < 25) {
        // Unaligned discard (zeros in partly covered clusters).
        model.fill(0, offset, offset + length);
        tasks.push(image.discard(offset, length));
        discards++;
      } else {
        const data = r < 30 ? new Uint8Array(length) : randomBytes(length);
        model.set(data, offset);
        tasks.push(image.write(offset, data));
        writes++;
      }
    }
    await Promise.all(tasks);
    if (g % 8 === 7) await image.flush();
  }
  return { writes, discards };
}

/** The first byte where the disk read back differs from `model`, or -1. */
export async function findMismatch(image, model) {
  for (let at = 0; at < model.length; at += 1 << 20) {
    const got = await image.read(at, Math.min(1 << 20, model.length - at));
    for (let i = 0; i < got.length; i++) if (got[i] !== model[at + i]) return at + i;
  }
  return -1;
}

// Correctness of the optimized hot paths (their speed is measured in bench/, never here):
// mapRange in WebAssembly against a TypeScript model of the BAT, the batched lookup against
// the single one, the engine's object-free read path against qemu-img, and NodeFileStore's
// callback and synchronous modes against the file's bytes.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getCore, type WasmCore } from '../../src/core/wasm.ts';
import { BatMap, LEVEL_NONE, MD_PAGE_BYTES, type Extent } from '../../src/core/bat-map.ts';
import { NodeFileStore } from '../../src/stores/node-fs.ts';
import { PloopImage } from '../../src/engine/image.ts';
import { Prng } from '../helpers/prng.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw } from '../helpers/qemu.ts';
import { rejectsWith } from '../helpers/errors.ts';
import '../helpers/source-workers.ts';

let core: WasmCore;
before(async () => {
  core = await getCore();
});

/** A random BAT: top level 1 (v2, units of clusters), level 0 in sectors (v1), holes, runs. */
function randomMap(prng: Prng, entries: number, clusterBytes: number): { bat: BatMap; model: Array<{ level: number; host: number }> } {
  const mdPageCount = Math.ceil(((16 + entries) * 4) / MD_PAGE_BYTES);
  const firstSlotByte = Math.ceil((mdPageCount * MD_PAGE_BYTES) / clusterBytes) * clusterBytes;
  const bat = new BatMap(core, {
    batEntryCount: entries, clusterBytes, mdPageCount, firstSlotByte, slotCapacity: 4 * entries + 8, topLevel: 1,
    unitBytesByLevel: [512, clusterBytes],
  });
  const model: Array<{ level: number; host: number }> = [];
  let nextSlot = 0;
  for (let c = 0; c < entries; c++) {
    const kind = prng.int(4);
    // Runs: a mapped cluster often follows its predecessor's slot, so extents merge.
    if (kind === 0) {
      model.push({ level: LEVEL_NONE, host: -1 });
      continue;
    }
    const level = kind === 3 ? 0 : 1;
    const slot = prng.int(3) === 0 ? nextSlot + prng.int(5) + 1 : nextSlot;
    nextSlot = slot + 1;
    const host = firstSlotByte + slot * clusterBytes;
    bat.setEntryValue(c, host / (level === 0 ? 512 : clusterBytes), level);
    model.push({ level, host });
  }
  return { bat, model };
}

/** The extents a reader expects: per cluster piece, merged when level and host bytes continue. */
function modelExtents(model: Array<{ level: number; host: number }>, clusterBytes: number, offset: number, length: number): Extent[] {
  const out: Extent[] = [];
  for (let pos = offset; pos < offset + length;) {
    const c = Math.floor(pos / clusterBytes);
    const inCluster = pos - c * clusterBytes;
    const n = Math.min(clusterBytes - inCluster, offset + length - pos);
    const { level, host } = model[c];
    const h = level === LEVEL_NONE ? -1 : host + inCluster;
    const last = out[out.length - 1];
    if (last && last.level === level && (level === LEVEL_NONE || last.hostOffset + last.length === h)) last.length += n;
    else out.push({ offset: pos, length: n, hostOffset: h, level, firstClusterIndex: c });
    pos += n;
  }
  return out;
}

describe('BAT map hot path (WebAssembly)', () => {
  test('mapRange, mapChunk and lookupMany agree with a model BAT on 300 random ranges (seed 7)', () => {
    const prng = new Prng(7);
    const clusterBytes = 65536;
    const entries = 3000;
    const { bat, model } = randomMap(prng, entries, clusterBytes);
    try {
      for (let i = 0; i < 300; i++) {
        const offset = prng.int(entries * clusterBytes);
        // Long ranges (past 64 extents) make mapRange call the core more than once.
        const length = Math.min(entries * clusterBytes - offset, prng.int(3) === 0 ? prng.int(400 * clusterBytes) : prng.int(3 * clusterBytes) + 1);
        const expected = modelExtents(model, clusterBytes, offset, length);
        assert.deepEqual(bat.mapRange(offset, length), expected, `seed 7, range ${offset}+${length}`);
        const n = bat.mapChunk(offset, length);
        assert.equal(n, Math.min(64, expected.length), `mapChunk count for ${offset}+${length}`);
        for (let k = 0; k < n; k++) {
          assert.deepEqual([bat.extentOffset(k), bat.extentLength(k), bat.extentHost(k), bat.extentLevel(k)],
            [expected[k].offset, expected[k].length, expected[k].hostOffset, expected[k].level], `extent ${k} of ${offset}+${length}`);
        }
      }
      const count = 1000;
      const indices = core.alloc(count * 4);
      const out = core.alloc(count * 8);
      try {
        for (let i = 0; i < count; i++) core.u32[(indices >>> 2) + i] = prng.int(entries);
        bat.lookupMany(indices, count, out);
        for (let i = 0; i < count; i++) {
          const c = core.u32[(indices >>> 2) + i];
          assert.equal(core.f64[(out >>> 3) + i], model[c].host, `lookupMany of cluster ${c}`);
          assert.equal(bat.lookup(c), model[c].host, `lookup of cluster ${c}`);
        }
        // An index past the BAT is ERANGE; the lookups before it are still written.
        core.u32[(indices >>> 2) + 5] = entries;
        core.f64[(out >>> 3) + 4] = 12345;
        assert.throws(() => bat.lookupMany(indices, count, out), (e: Error & { code?: string }) => e.code === 'ERANGE' && /BAT lookup/.test(e.message));
        assert.equal(core.f64[(out >>> 3) + 4], model[core.u32[(indices >>> 2) + 4]].host);
      } finally {
        core.free(indices);
        core.free(out);
      }
    } finally {
      bat.dispose();
    }
  });

  test('mapChunk refuses a range past the disk with ERANGE naming the range', () => {
    const { bat } = randomMap(new Prng(3), 10, 4096);
    try {
      assert.throws(() => bat.mapChunk(8 * 4096, 3 * 4096), (e: Error & { code?: string; data?: Record<string, unknown> }) =>
        e.code === 'ERANGE' && /BAT map/.test(e.message) && e.data?.offset === 8 * 4096 && e.data?.length === 3 * 4096);
    } finally {
      bat.dispose();
    }
  });
});

describe('NodeFileStore: callback and synchronous modes', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('ploop-perf-')));
  after(() => cleanup());

  for (const syncMaxBytes of [0, 8192]) {
    test(`syncMaxBytes ${syncMaxBytes}: reads and writes of 1 B to 64 KiB match the file; short read at the end`, async () => {
      const path = join(dir, `store-${syncMaxBytes}.bin`);
      const prng = new Prng(11 + syncMaxBytes);
      const expected = new Uint8Array(300000);
      for (let i = 0; i < expected.length; i++) expected[i] = prng.int(256);
      writeFileSync(path, expected);
      const store = await NodeFileStore.open(path, { writable: true, syncMaxBytes });
      try {
        for (let i = 0; i < 200; i++) {
          const length = prng.range(1, 65536);
          const offset = prng.int(expected.length - length);
          if (prng.int(2) === 0) {
            const got = new Uint8Array(length);
            assert.equal(await store.read(offset, got), length);
            assert.deepEqual(got, expected.subarray(offset, offset + length), `read ${offset}+${length}`);
          } else {
            const data = Uint8Array.from({ length }, () => prng.int(256));
            await store.write(offset, data);
            expected.set(data, offset);
          }
        }
        const tail = new Uint8Array(100).fill(9);
        assert.equal(await store.read(expected.length - 40, tail), 40);
        assert.deepEqual(tail.subarray(0, 40), expected.subarray(expected.length - 40));
        // Writing past the end grows the file and the size.
        await store.write(expected.length + 10, new Uint8Array([1, 2, 3]));
        assert.equal(await store.size(), expected.length + 13);
        await store.flush();
      } finally {
        await store.close();
      }
      const file = readFileSync(path);
      assert.deepEqual(new Uint8Array(file.subarray(0, expected.length)), expected);
      assert.deepEqual([...file.subarray(expected.length)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
    });

    test(`syncMaxBytes ${syncMaxBytes}: read-only and closed stores refuse with clear errors`, async () => {
      const path = join(dir, `ro-${syncMaxBytes}.bin`);
      writeFileSync(path, new Uint8Array(4096));
      const store = await NodeFileStore.open(path, { syncMaxBytes });
      await rejectsWith(() => store.write(0, new Uint8Array(1)), 'EREADONLY', /write refused, the file was opened read-only/);
      await store.close();
      await rejectsWith(() => store.read(0, new Uint8Array(16)), 'ECLOSED', /read after the store was closed/);
      await store.close(); // a second close is harmless
    });
  }

  test('open refuses a bad syncMaxBytes and names a missing file', async () => {
    await rejectsWith(() => NodeFileStore.open(join(dir, 'x'), { syncMaxBytes: -1 }), 'EINVAL', /syncMaxBytes -1/);
    await rejectsWith(() => NodeFileStore.open(join(dir, 'missing.bin')), 'EIO', /open .*missing\.bin failed: ENOENT/);
  });

  test('the engine over a synchronous store reads what qemu-img converts, across holes and extents', async () => {
    const path = join(dir, 'q.hds');
    const cluster = 65536;
    await qemuCreate(path, 64 * cluster, cluster);
    await qemuIo(path, [ioWrite(0x11, 3 * cluster, 2 * cluster + 512), ioWrite(0x22, 40 * cluster + 4096, 8192), ioWrite(0x33, 7 * cluster, cluster), ioWrite(0x44, 0, 4096)]);
    const expected = await qemuConvertToRaw(path, join(dir, 'q.raw'));
    const prng = new Prng(5);
    for (const syncMaxBytes of [0, 1 << 20]) {
      const image = await PloopImage.open(await NodeFileStore.open(path, { syncMaxBytes }));
      try {
        for (let i = 0; i < 150; i++) {
          const length = prng.range(1, 6 * cluster);
          const offset = prng.int(64 * cluster - length);
          const got = new Uint8Array(length).fill(0xee);
          await image.readInto(offset, got);
          assert.deepEqual(got, expected.subarray(offset, offset + length), `syncMaxBytes ${syncMaxBytes}: read ${offset}+${length}`);
        }
      } finally {
        await image.close();
      }
    }
  });
});

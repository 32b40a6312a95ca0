// docs/format.md, 'The oracles': our own random workloads (writes and discards, aligned and
// not, in concurrent groups) against an in-memory model; after close qemu-img check is clean,
// qemu-img convert equals the model, the in-use flag is cleared and the file ends at the last
// used cluster. v2 and v1, on MemoryStore and on NodeFileStore.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { createImage, MemoryStore, PloopImage, type BlockStore, type PloopFormat } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { assertBytesEqual } from '../helpers/model.ts';
import { Prng } from '../helpers/prng.ts';
import { readWhole } from '../helpers/images.ts';
import { runWorkload } from '../helpers/workload.ts';
import { expectedImageEnd, headerFields, SIGNATURE_V1, SIGNATURE_V2 } from '../helpers/image-file.ts';
import '../helpers/source-workers.ts';

interface Variant {
  format: PloopFormat;
  store: 'memory' | 'file';
  size: number;
  cluster: number;
  ops: number;
  seed: number;
}

const VARIANTS: Variant[] = [
  { format: 'v2', store: 'memory', size: 16 << 20, cluster: 4096, ops: 3000, seed: 0x5eed0001 },
  { format: 'v2', store: 'file', size: 32 << 20, cluster: 64 << 10, ops: 1500, seed: 0x5eed0002 },
  { format: 'v1', store: 'memory', size: 8 << 20, cluster: 4096, ops: 3000, seed: 0x5eed0003 },
  { format: 'v1', store: 'file', size: 12 * 2 ** 20 + 1536, cluster: 64 << 10, ops: 1500, seed: 0x5eed0004 },
  { format: 'v2', store: 'memory', size: 12 * 2 ** 20 + 512, cluster: 1536 << 10, ops: 150, seed: 0x5eed0005 },
];

for (const v of VARIANTS) {
  const label = `${v.format} image on ${v.store === 'memory' ? 'MemoryStore' : 'NodeFileStore'} (${v.size} bytes, ${v.cluster / 1024} KiB clusters)`;
  test(`a random workload of ${v.ops} writes and discards on a ${label} closes into an image qemu-img checks clean and converts to the model`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, `w-${v.format}.hds`);
      let store: BlockStore;
      let memory: MemoryStore | null = null;
      if (v.store === 'memory') store = memory = new MemoryStore();
      else store = await NodeFileStore.open(path, { create: true });
      await createImage(store, { size: v.size, clusterSize: v.cluster, format: v.format });
      const readInUse = async () => {
        const b = new Uint8Array(4);
        if (memory) b.set(memory.bytes().subarray(44, 48));
        else b.set((await readFile(path)).subarray(44, 48));
        return new DataView(b.buffer).getUint32(0, true);
      };
      assert.equal(await readInUse(), 0, 'in-use flag of a new image');
      const image = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
      const rng = new Prng(v.seed);
      const r = await runWorkload(image, rng, v.ops, readInUse);
      assert.ok(r.discards > 0 && r.zeroWrites > 0, 'the workload had discards and zero writes');
      assert.ok(r.sawInUseWhileOpen, 'bytes 44..47 read "Ynot" (0x746F6E59) while the image was open and written');
      assert.ok(image.stats.clustersReleased > 0, 'some clusters were unmapped by discard');
      assertBytesEqual(await readWhole(image), r.model.bytes, `read-back before close (seed ${v.seed})`);
      await image.close();
      await store.close();
      if (memory) await writeFile(path, memory.bytes());

      const bytes = new Uint8Array(await readFile(path));
      const h = headerFields(bytes);
      assert.equal(h.magic, v.format === 'v1' ? SIGNATURE_V1 : SIGNATURE_V2);
      assert.equal(h.inUse, 0, 'bytes 44..47 are 0 after close');
      assert.equal(bytes.length, expectedImageEnd(bytes), 'file ends at the end of the highest used cluster');

      await assertToolsAccept(path, `seed ${v.seed}`);
      assertBytesEqual(await qemuConvertToRaw(path, join(dir, 'w.raw')), r.model.bytes, `qemu-img convert vs model (seed ${v.seed})`);

      // Reopen and read everything back through our engine.
      const reopened = await PloopImage.open(await NodeFileStore.open(path), {});
      try {
        assertBytesEqual(await readWhole(reopened), r.model.bytes, `our read after reopen (seed ${v.seed})`);
      } finally {
        await reopened.close();
      }
    });
  });
}

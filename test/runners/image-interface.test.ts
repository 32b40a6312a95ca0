// One Image interface (issue #17, item 2): the same consumers (the block-device facade, the raw
// export, the file browser's openFilesystem) work over a PloopImage (one runner) and over a
// ParallelImage (two runner workers), with the same results. The disk is an ext4 made by
// mkfs.ext4 -d, converted to ploop by qemu-img.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { PloopImage, imageBlockDevice, exportRaw, openFilesystem, type Image } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import '../helpers/source-workers.ts';

const MiB = 1 << 20;

const sha = (parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** What the consumers see of `image`, all through the Image interface. */
async function consume(image: Image): Promise<{ names: string[]; hello: string; sector0: string; raw: string }> {
  const fs = await openFilesystem(image);
  const names = (await fs.readdir('/')).map((e) => e.name).sort();
  const hello = new TextDecoder().decode(await fs.read('/etc/hello.txt', 0, 100));
  const device = imageBlockDevice(image);
  const sector0 = sha([await device.read(1024, 1024)]);
  const raw = sha(await exportRaw(image));
  return { names, hello, sector0, raw };
}

test('the block device, the raw export and openFilesystem give the same answers over a PloopImage and over a ParallelImage with 2 runners; a write through the facade on the pool reads back through the engine', () => withTempDir(async (dir) => {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'etc'), { recursive: true });
  writeFileSync(join(src, 'etc/hello.txt'), 'hello from ext4\n');
  writeFileSync(join(src, 'big.bin'), Buffer.alloc(3 * MiB, 7));
  const raw = join(dir, 'disk.raw');
  execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'root_owner=0:0', '-d', src, raw, '16M']);
  const path = join(dir, 'disk.hds');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', raw, path]);
  const expected = { names: ['big.bin', 'etc', 'lost+found'], hello: 'hello from ext4\n', sector0: sha([readFileSync(raw).subarray(1024, 2048)]), raw: sha([readFileSync(raw)]) };

  const single = await PloopImage.open(await NodeFileStore.open(path), { onWarning: () => {} });
  try {
    assert.deepEqual(await consume(single), expected, 'PloopImage');
  } finally {
    await single.close();
  }
  const pool = await ParallelImage.open([path], { runners: 2, writable: true });
  try {
    assert.equal(pool.runnerCount, 2);
    assert.deepEqual(await consume(pool), expected, 'ParallelImage');
    await imageBlockDevice(pool).write(15 * MiB, new Uint8Array(4096).fill(0x5a));
    await pool.flush();
  } finally {
    await pool.close();
  }
  const again = await PloopImage.open(await NodeFileStore.open(path), { onWarning: () => {} });
  try {
    assert.ok((await again.read(15 * MiB, 4096)).every((b) => b === 0x5a), 'the pool\'s write reads back');
  } finally {
    await again.close();
  }
}));

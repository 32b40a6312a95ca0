// FAT filesystems in MBR partitions (a primary and two logical ones, laid out by sfdisk, made by
// mkfs.fat --offset, filled by mcopy -i DISK@@OFFSET), the disk converted to ploop by qemu-img,
// opened through openFilesystem by partition number as Linux numbers them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../helpers/prng.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { openFile } from '../helpers/images.ts';
import { PloopError } from '../../src/errors.ts';
import { openFilesystem } from '../../src/fs/open.ts';
import type { PloopImage } from '../../src/index.ts';
import { assertSameTree, run, walkFs, walkSource } from './fat-images.ts';

const SECTOR = 512;
/** Partition 1 (primary, FAT12), 5 (logical, FAT32), 6 (logical, FAT16): start and size in sectors. */
const LAYOUT = [
  { number: 1, start: 2048, sectors: 16384, fat: 12, label: 'PRIMARY' },
  { number: 5, start: 20480, sectors: 81920, fat: 32, label: 'LOGICAL5' },
  { number: 6, start: 104448, sectors: 32768, fat: 16, label: 'LOGICAL6' },
] as const;

let tmp: { dir: string; cleanup: () => Promise<void> };
let image: PloopImage;
const sources = new Map<number, string>();

before(async () => {
  tmp = await makeTempDir('ploop-fat-parts-');
  const raw = join(tmp.dir, 'disk.raw');
  run('truncate', ['-s', String(140 << 20), raw]);
  execFileSync('sfdisk', ['-q', raw], {
    input: 'label: dos\nstart=2048, size=16384, type=1\nstart=18432, type=5\nstart=20480, size=81920, type=c\nstart=104448, size=32768, type=6\n',
  });
  const prng = new Prng(9);
  for (const p of LAYOUT) {
    run('mkfs.fat', ['-F', String(p.fat), '-s', p.fat === 12 ? '8' : '1', '-n', p.label, '--offset', String(p.start), raw, String((p.sectors * SECTOR) / 1024)]);
    const src = join(tmp.dir, `src${p.number}`);
    mkdirSync(join(src, `dir of partition ${p.number}`), { recursive: true });
    writeFileSync(join(src, `hello from ${p.number}.txt`), `partition ${p.number}\n`);
    writeFileSync(join(src, `dir of partition ${p.number}`, 'data.bin'), prng.bytes(50_000 + p.number));
    run('mcopy', ['-s', '-m', '-i', `${raw}@@${p.start * SECTOR}`, join(src, `hello from ${p.number}.txt`), join(src, `dir of partition ${p.number}`), '::/']);
    sources.set(p.number, src);
  }
  const hds = join(tmp.dir, 'disk.hds');
  run('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', raw, hds]);
  image = await openFile(hds);
});
after(async () => {
  await image?.close();
  await tmp.cleanup();
});

test('each FAT partition of a ploop image opens by its number and reads back as its source', async () => {
  for (const p of LAYOUT) {
    const fs = await openFilesystem(image, { partition: p.number });
    assert.equal(fs.partition, p.number);
    assert.equal(fs.startBytes, p.start * SECTOR);
    assert.equal(fs.kind, `fat${p.fat}`);
    assert.equal(fs.label, p.label);
    assertSameTree(await walkFs(fs), walkSource(sources.get(p.number) as string), `partition ${p.number}`);
    assert.equal(new TextDecoder().decode(await fs.read(`/hello from ${p.number}.txt`, 0, 100)), `partition ${p.number}\n`);
  }
});

test('without a partition number the error lists the partitions and their filesystems', async () => {
  await assert.rejects(openFilesystem(image), (e: unknown) => {
    assert.ok(e instanceof PloopError && e.code === 'EINVAL', String(e));
    assert.match(e.message, /3 of them hold filesystems: choose one with a partition number/);
    assert.match(e.message, /partition 5: .*FAT32 "LOGICAL5"/);
    assert.match(e.message, /partition 6: .*FAT16 "LOGICAL6"/);
    return true;
  });
});

// The built-in sample disk (scripts/sample/, scripts/make-samples.ts): qemu-img accepts every delta,
// and after qemu-img converts the stack to raw, fsck.fat and mtools see the files of each state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.ts';
import { run, runOk } from '../helpers/qemu.ts';
import { assertPloopAccepts } from '../helpers/ploop.ts';
import { qemuConvertChain } from '../helpers/stack.ts';
import { inspectDisk, readDescriptor, descriptorChain } from '../../src/index.ts';
import { NodeDirectory } from '../../src/stores/node-dir.ts';
import {
  SAMPLE_PARTITIONS, SAMPLE_HELLO_BASE, SAMPLE_HELLO_TOP, SAMPLE_CHANGES, sampleDataBin, sampleRawDisk,
} from '../../scripts/sample/sample.ts';
import { buildFat16 } from '../../scripts/sample/fat16.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
let sampleDir: string;
let files: string[];
before(async () => {
  tmp = await makeTempDir('ploop-sample-');
  await runOk(process.execPath, ['--import', 'tsx', 'scripts/make-samples.ts', tmp.dir]);
  sampleDir = join(tmp.dir, 'sample');
  files = (JSON.parse(readFileSync(join(sampleDir, 'index.json'), 'utf8')) as { files: string[] }).files;
});
after(() => tmp?.cleanup());

const FAT_OFFSET = SAMPLE_PARTITIONS[0].startLba * 512;

async function mtype(raw: string, path: string): Promise<string> {
  const r = await runOk('mtype', ['-i', `${raw}@@${FAT_OFFSET}`, `::${path}`]);
  return r.stdout;
}

test('the descriptor names a base and one snapshot delta, and qemu-img check and ploop check accept both', async () => {
  const chain = descriptorChain(await readDescriptor(new NodeDirectory(sampleDir)));
  assert.deepEqual(chain.map((c) => c.file), files);
  assert.equal(files.length, 2);
  for (const f of files) {
    const r = await run('qemu-img', ['check', '-f', 'parallels', join(sampleDir, f)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /No errors were found/);
    await assertPloopAccepts(join(sampleDir, f), `sample ${f}`);
  }
  // The delta holds only what changed: far fewer clusters than the base.
  const info = JSON.parse((await runOk('qemu-img', ['check', '--output=json', '-f', 'parallels', join(sampleDir, files[1])])).stdout) as { 'allocated-clusters': number };
  assert.ok(info['allocated-clusters'] >= 1 && info['allocated-clusters'] <= 4, `delta allocates ${info['allocated-clusters']} clusters`);
});

for (const state of ['base', 'top'] as const) {
  test(`after qemu-img convert of the ${state} state, fsck.fat is clean and mtools reads the files`, async () => {
    const chain = state === 'base' ? [join(sampleDir, files[0])] : files.map((f) => join(sampleDir, f));
    const raw = await qemuConvertChain(chain, join(tmp.dir, `${state}.raw`));
    // Our generator's raw disk is exactly what QEMU reads back through the ploop stack.
    assert.ok(Buffer.from(raw).equals(Buffer.from(sampleRawDisk(state))), `${state}: the stack does not read as the generated disk`);
    const rawPath = join(tmp.dir, `${state}-disk.raw`);
    const partPath = join(tmp.dir, `${state}-fat.raw`);
    writeFileSync(rawPath, raw);
    writeFileSync(partPath, raw.subarray(FAT_OFFSET, FAT_OFFSET + SAMPLE_PARTITIONS[0].sectors * 512));
    const fsck = await run('fsck.fat', ['-n', '-v', partPath]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    assert.match(fsck.stdout, /2 FATs, 16 bit entries/);
    const dir = await runOk('mdir', ['-i', `${rawPath}@@${FAT_OFFSET}`, '-/', '::']);
    assert.match(dir.stdout, /Volume in drive : is PLOOPSAMPLE/);
    assert.match(dir.stdout, /README +TXT/);
    assert.match(dir.stdout, /NOTES +TXT/);
    assert.equal(/CHANGES +TXT/.test(dir.stdout), state === 'top');
    assert.equal(await mtype(rawPath, '/HELLO.TXT'), state === 'base' ? SAMPLE_HELLO_BASE : SAMPLE_HELLO_TOP);
    if (state === 'top') assert.equal(await mtype(rawPath, '/CHANGES.TXT'), SAMPLE_CHANGES);
    const data = await runOk('mcopy', ['-n', '-i', `${rawPath}@@${FAT_OFFSET}`, '::/DATA.BIN', join(tmp.dir, `${state}.bin`)]);
    assert.equal(data.code, 0);
    assert.ok(readFileSync(join(tmp.dir, `${state}.bin`)).equals(Buffer.from(sampleDataBin())));
    // Our own inspector agrees with the tools.
    const report = await inspectDisk(async (o, n) => raw.subarray(o, o + n), raw.length);
    assert.equal(report.scheme, 'mbr');
    assert.deepEqual(report.partitions.map((p) => [p.number, p.typeId, p.filesystem?.name, p.filesystem?.label]),
      [[1, '0x0e', 'FAT16', 'PLOOPSAMPLE'], [2, '0x82', 'Linux swap', 'sample-swap']]);
  });
}

test('the FAT16 writer refuses names, labels and sizes FAT16 cannot hold, naming the value', () => {
  assert.throws(() => buildFat16([{ name: 'lower.txt' }], { sizeSectors: 40960, label: 'X' }), /"lower\.txt" is not an upper-case 8\.3 name/);
  assert.throws(() => buildFat16([], { sizeSectors: 40960, label: 'TWELVE_CHARS' }), /has 12 characters, at most 11/);
  assert.throws(() => buildFat16([], { sizeSectors: 4096, label: 'X' }), /clusters, expected 4085\.\.65524/);
  assert.throws(() => buildFat16([{ name: 'A' }, { name: 'A' }], { sizeSectors: 40960, label: 'X' }), /two entries named A/);
});

// `ploop-wasm boot`: the CLI boots images headless in v86 and streams COM1 to stdout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, describeCli } from '../helpers/cli.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import {
  printBootSector, readWriteBootSector, rawBootDisk, PRINT_SECTOR_TEXT, SECTOR_BYTES, WRITE_LBA, SAMPLE_FIRST_BOOT, SAMPLE_DONE, SAMPLE_WRITTEN, SAMPLE_SECTOR_2, SAMPLE_EMPTY,
} from '../helpers/boot-sectors.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-boot-cli-');
});
after(async () => {
  await tmp.cleanup();
});

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

/** A raw disk file and its ploop conversion (by our CLI). */
async function disks(name: string, boot: Uint8Array): Promise<{ raw: string; hds: string }> {
  const raw = join(tmp.dir, `${name}.raw`);
  const hds = join(tmp.dir, `${name}.hds`);
  await writeFile(raw, rawBootDisk(boot, 1 << 20));
  const args = ['convert', raw, hds, '--cluster-size', '64k'];
  const r = await cli(args);
  assert.equal(r.code, 0, describeCli(args, r));
  return { raw, hds };
}

async function boot(args: string[], expectCode: number) {
  const full = ['boot', ...args];
  const r = await cli(full);
  assert.equal(r.code, expectCode, describeCli(full, r));
  return r;
}

test('--until: exits 0 once the text appeared, with the serial output on stdout', async () => {
  const { hds } = await disks('print', printBootSector());
  const r = await boot([hds, '--until', 'BOOT-OK', '--timeout', '60'], 0);
  assert.equal(r.stdout.toString(), PRINT_SECTOR_TEXT);
});

test('--until with a text that never comes: non-zero exit and a message naming the text and the timeout', async () => {
  const { hds } = await disks('print2', printBootSector());
  const r = await boot([hds, '--until', 'NEVER-PRINTED', '--timeout', '5', '--snapshot'], 1);
  assert.match(r.stderr, /timed out after 5 s waiting for "NEVER-PRINTED" on the serial port \(the guest printed 15 bytes\)/);
  assert.equal(r.stdout.toString().trim(), PRINT_SECTOR_TEXT.trim(), 'what the guest printed was streamed anyway');
});

test('without --until the guest runs until --timeout and the exit status is 0', async () => {
  const { hds } = await disks('print3', printBootSector());
  const started = Date.now();
  const r = await boot([hds, '--timeout', '4'], 0);
  assert.ok(Date.now() - started >= 4000, 'ran for the whole timeout');
  assert.equal(r.stdout.toString(), PRINT_SECTOR_TEXT);
});

test('--snapshot leaves the image untouched (by hash); without it the guest write lands in the image', async () => {
  const { hds } = await disks('rw', readWriteBootSector());
  const before = await sha256(hds);
  const first = await boot([hds, '--until', SAMPLE_DONE, '--snapshot', '--timeout', '60'], 0);
  assert.ok(first.stdout.toString().includes(SAMPLE_FIRST_BOOT), first.stdout.toString());
  assert.equal(await sha256(hds), before, '--snapshot: the image is byte for byte the same');
  await boot([hds, '--until', SAMPLE_DONE, '--timeout', '60'], 0);
  assert.notEqual(await sha256(hds), before);
  const raw = await qemuConvertToRaw(hds, `${hds}.raw`);
  const lba2 = raw.subarray(WRITE_LBA * SECTOR_BYTES, WRITE_LBA * SECTOR_BYTES + SAMPLE_WRITTEN.length);
  assert.equal(Buffer.from(lba2).toString('latin1'), SAMPLE_WRITTEN);
  const again = await boot([hds, '--until', SAMPLE_DONE, '--snapshot', '--timeout', '60'], 0);
  assert.ok(again.stdout.toString().includes(`${SAMPLE_SECTOR_2}${SAMPLE_WRITTEN}\r\n`), again.stdout.toString());
});

test('a raw image boots with --snapshot (base of a temporary delta) and is refused without it', async () => {
  const { raw } = await disks('rawboot', printBootSector());
  const before = await sha256(raw);
  const r = await boot([raw, '--until', 'BOOT-OK', '--snapshot', '--timeout', '60'], 0);
  assert.equal(r.stdout.toString(), PRINT_SECTOR_TEXT);
  assert.equal(await sha256(raw), before);
  const refused = await boot([raw, '--until', 'BOOT-OK'], 2);
  assert.match(refused.stderr, /is not a ploop image or disk folder; boot a raw image with --snapshot/);
});

test('a disk folder boots: writes go to the top delta; with --snapshot no file changes', async () => {
  const dir = join(tmp.dir, 'stackdir');
  await mkdir(dir);
  const steps: Array<[string[], Uint8Array?]> = [
    [['init', dir, '--size', '1M', '--cluster-size', '64k']],
    [['write', dir, '--offset', '0'], rawBootDisk(readWriteBootSector(), 4096)],
    [['snapshot', dir]],
  ];
  for (const [args, stdin] of steps) {
    const r = await cli(args, stdin);
    assert.equal(r.code, 0, describeCli(args, r));
  }
  const hashes = async () => {
    const names = (await readdir(dir)).sort();
    return Promise.all(names.map(async (n) => `${n} ${await sha256(join(dir, n))}`));
  };
  const base = await sha256(join(dir, 'root.hds'));
  const first = await boot([dir, '--until', SAMPLE_DONE, '--timeout', '60'], 0);
  assert.ok(first.stdout.toString().includes(`${SAMPLE_SECTOR_2}${SAMPLE_EMPTY}\r\n`), first.stdout.toString());
  assert.equal(await sha256(join(dir, 'root.hds')), base, 'the snapshot (lower delta) is not written');
  const before = await hashes();
  const second = await boot([dir, '--until', SAMPLE_DONE, '--timeout', '60', '--snapshot'], 0);
  assert.ok(second.stdout.toString().includes(`${SAMPLE_SECTOR_2}${SAMPLE_WRITTEN}\r\n`), second.stdout.toString());
  assert.deepEqual(await hashes(), before);
});

test('BIOS files: a missing default says how to get SeaBIOS; bad options are usage errors', async () => {
  const { hds } = await disks('bios', printBootSector());
  process.env.PLOOP_WASM_BIOS_DIR = join(tmp.dir, 'no-bios-here');
  let missing;
  try {
    missing = await boot([hds, '--until', 'BOOT-OK'], 2);
  } finally {
    delete process.env.PLOOP_WASM_BIOS_DIR;
  }
  assert.match(missing.stderr, /--bios: .*no-bios-here\/bios\.bin not found; v86 ships no BIOS\. Install Debian's SeaBIOS \(apt-get install seabios\) or pass --bios FILE/);
  const r = await boot([hds, '--bios', join(tmp.dir, 'no-such-bios.bin')], 2);
  assert.match(r.stderr, /--bios: .*no-such-bios\.bin not found/);
  const m = await boot([hds, '--memory', '1000'], 2);
  assert.match(m.stderr, /--memory: 1000 bytes; expected whole MiB/);
  const t = await boot([hds, '--timeout', 'soon'], 2);
  assert.match(t.stderr, /--timeout: "soon" is not a positive number of seconds/);
});

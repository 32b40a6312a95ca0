// A real Linux guest (Debian's i386 kernel, busybox, an ext4 root; test/helpers/linux-guest.ts)
// boots through `ploop-wasm boot` from a ploop disk folder: it writes a token to its ext4 root,
// a snapshot freezes that, the next boot reads the token back and writes another into the new
// top delta. Every delta passes qemu-img check and ploop check; the disk, converted to raw by
// our CLI, holds an ext4 that e2fsck -fn finds clean with both tokens in it (debugfs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, describeCli } from '../helpers/cli.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { GUEST, BASE_GREETING, guestFolder, bootGuestCli, carveRootPartition, rootTokens, serialTokens } from '../helpers/linux-guest.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('ploop-linux-cli-');
});
after(async () => {
  await tmp?.cleanup();
});

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
/** Generous, never infinite: a boot takes 15-35 s on the shared 2-core machine. */
const BOOT_TIMEOUT_S = 300;

async function bootGuest(dir: string): Promise<string> {
  const { serial, seconds } = await bootGuestCli(dir, BOOT_TIMEOUT_S);
  const userspace = serial.split('\n').find((l) => l.startsWith(GUEST.userspace))?.trim();
  process.stderr.write(`linux guest (ploop-wasm boot): ${seconds.toFixed(1)} s to "${GUEST.done}"; ${userspace}\n`);
  return serial;
}

test('ploop-wasm boot: the Linux guest writes to its ext4 root on a disk folder, a snapshot keeps it, the next boot reads it back', { timeout: 2 * (BOOT_TIMEOUT_S + 60) * 1000 }, async () => {
  const dir = join(tmp.dir, 'linux');
  await guestFolder(dir);
  const files = async () => (await readdir(dir)).filter((f) => f.endsWith('.hds') || f.includes('.hds.')).sort();
  const [root] = await files();
  assert.equal(root, 'root.hds');
  const rootHash = await sha256(join(dir, root));

  const first = serialTokens(await bootGuest(dir));
  assert.equal(first.greeting, BASE_GREETING);
  assert.ok(first.firstBoot, 'the first boot finds no token');
  assert.deepEqual(first.found, []);
  assert.match(first.wrote ?? '', /^[0-9a-f-]{36}$/);
  assert.equal(await sha256(join(dir, root)), rootHash, 'the frozen root.hds is not written');

  // Freeze what the first boot wrote; the second boot writes into a new top.
  const beforeSnapshot = await files();
  const snap = ['snapshot', dir];
  const s = await cli(snap);
  assert.equal(s.code, 0, describeCli(snap, s));
  const frozen = await files();
  assert.equal(frozen.length, 3, `root.hds, the first boot's delta and a new top: ${frozen.join(', ')}`);
  const frozenHashes = await Promise.all(frozen.map((f) => sha256(join(dir, f))));

  const second = serialTokens(await bootGuest(dir));
  assert.deepEqual(second.found, [first.wrote], 'the second boot reads the first boot\'s token back');
  assert.ok(!second.firstBoot);
  assert.ok(second.wrote && second.wrote !== first.wrote);
  const newTop = frozen.filter((f) => !beforeSnapshot.includes(f));
  assert.equal(newTop.length, 1);
  for (const [i, f] of frozen.entries()) {
    const changed = (await sha256(join(dir, f))) !== frozenHashes[i];
    assert.equal(changed, f === newTop[0], `${f}: only the new top delta is written by the second boot`);
  }
  for (const f of await files()) await assertToolsAccept(join(dir, f), `${f} after two boots`);

  // The whole stack as raw (our converter), its ext4 root checked by e2fsprogs.
  const raw = join(tmp.dir, 'linux.raw');
  const conv = ['convert', dir, raw, '--to', 'raw'];
  const c = await cli(conv);
  assert.equal(c.code, 0, describeCli(conv, c));
  const { tokens } = await rootTokens(await carveRootPartition(raw, join(tmp.dir, 'root.ext4')));
  assert.deepEqual(tokens, [first.wrote, second.wrote]);
});

// Indexed (htree) directories: one directory of 3000 entries with UTF-8 names on 1 KiB blocks
// (two index levels), re-indexed by e2fsck -fyD under each hash e2fsprogs offers (legacy,
// half_md4, tea) with signed and unsigned chars. Every name is found through the index, a
// missing one is not, and a lookup reads a handful of blocks while a listing reads them all.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.ts';
import { e2fsck, makeImage, openImage, run } from './ext-helpers.ts';

const ENTRIES = 3000;
let dir: string;
let cleanup: () => Promise<void>;
let base: string;
const names: string[] = [];

before(async () => {
  ({ dir, cleanup } = await makeTempDir('ploop-ext-htree-'));
  const src = join(dir, 'src');
  mkdirSync(join(src, 'big'), { recursive: true });
  // Bytes above 0x7f make signed and unsigned hashes differ.
  for (let i = 0; i < ENTRIES; i++) names.push(`${i % 7 === 0 ? 'ünïcødé-' : 'name-'}${i}-${'ж'.repeat(i % 23)}`);
  for (const n of names) writeFileSync(join(src, 'big', n), n);
  // mkfs -d links entries one by one into a linear directory (quadratic: 3000 take a few seconds, 10 000 twenty).
  base = makeImage(join(dir, 'base.img'), src, ['-b', '1024', '-N', String(ENTRIES + 200)], 32);
});
after(() => cleanup());

const HASHES = ['legacy', 'half_md4', 'tea'] as const;

for (const hash of HASHES) {
  for (const unsigned of [false, true]) {
    test(`htree with hash ${hash}, ${unsigned ? 'unsigned' : 'signed'} chars: every name found through the index`, async () => {
      const image = join(dir, `${hash}-${unsigned}.img`);
      copyFileSync(base, image);
      run('debugfs', ['-w', '-R', `ssv def_hash_version ${hash}`, image]);
      run('debugfs', ['-w', '-R', `ssv flags ${unsigned ? 2 : 1}`, image]);
      e2fsck(image, ['-fyD']);
      const dump = run('debugfs', ['-R', 'htree /big', image]);
      assert.match(dump, new RegExp(`Hash Version: ${HASHES.indexOf(hash)}\\b`));
      assert.match(dump, /Indirect levels: 1\b/, 'two index levels');

      const { tree, disk } = await openImage(image);
      try {
        const listed = await tree.readdir('/big');
        assert.deepEqual(listed.map((e) => e.name).sort(), [...names].sort());
        const inodeOf = new Map(listed.map((e) => [e.name, e.inode]));
        for (const n of names) assert.equal((await tree.lstat(`/big/${n}`)).inode, inodeOf.get(n), n);
        await assert.rejects(tree.lstat('/big/name-3000'), { code: 'ENOENT' });
        assert.deepEqual(tree.warnings, []);
      } finally {
        disk.close();
      }
      // A lookup on a fresh open reads a handful of blocks: the index root and node, one leaf, an
      // extent tree block of the directory, the inode table block and group descriptors of the entry.
      for (const n of [names[1], names[1234], names[ENTRIES - 1]]) {
        const fresh = await openImage(image);
        try {
          await fresh.tree.lstat('/big');
          const before = fresh.disk.reads;
          await fresh.tree.lstat(`/big/${n}`);
          const reads = fresh.disk.reads - before;
          assert.ok(reads <= 6, `lookup of ${n}: ${reads} block reads`);
          const listBefore = fresh.disk.bytesRead;
          await fresh.tree.readdir('/big');
          assert.ok(fresh.disk.bytesRead - listBefore > 150 * 1024, 'a listing reads every leaf');
        } finally {
          fresh.disk.close();
        }
      }
    });
  }
}

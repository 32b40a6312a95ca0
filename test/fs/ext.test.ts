// The ext reader against e2fsprogs: one awkward source tree, made into ext2, ext3 and ext4
// filesystems of every block size and layout mkfs.ext4 offers (extents or indirect blocks,
// 64bit, meta_bg, inline data, gdt_csum instead of metadata_csum, 128-byte inodes), indexed by
// e2fsck -fyD; every entry and every file's bytes compared with the source (find -printf,
// sha256), directory sizes and inode numbers with debugfs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.ts';
import { compareWithSource, makeImage, makeSourceTree, openImage, run } from './ext-helpers.ts';

let dir: string;
let cleanup: () => Promise<void>;
let src: string;

before(async () => {
  ({ dir, cleanup } = await makeTempDir('ploop-ext-'));
  src = join(dir, 'src');
  makeSourceTree(src);
});
after(() => cleanup());

const VARIANTS: Array<{ name: string; options: string[]; kind: string; mtimes?: boolean }> = [
  { name: 'ext4, 4 KiB blocks (defaults: extents, flex_bg, metadata_csum, 256-byte inodes)', options: [], kind: 'ext4' },
  { name: 'ext4, 1 KiB blocks', options: ['-b', '1024'], kind: 'ext4' },
  { name: 'ext4, 2 KiB blocks', options: ['-b', '2048'], kind: 'ext4' },
  { name: 'ext4, 64 KiB blocks', options: ['-b', '65536'], kind: 'ext4' },
  { name: 'ext4, 64bit and meta_bg, 1 KiB blocks', options: ['-b', '1024', '-O', '64bit,meta_bg,^resize_inode'], kind: 'ext4' },
  { name: 'ext4, inline_data', options: ['-O', 'inline_data'], kind: 'ext4' },
  { name: 'ext4 without extents (indirect blocks), gdt_csum', options: ['-O', '^extent,^64bit,^metadata_csum,uninit_bg'], kind: 'ext4' },
  { name: 'ext4, 128-byte inodes', options: ['-I', '128'], kind: 'ext4' },
  { name: 'ext3, 1 KiB blocks', options: ['-t', 'ext3', '-b', '1024'], kind: 'ext3' },
  { name: 'ext2, 4 KiB blocks', options: ['-t', 'ext2', '-b', '4096'], kind: 'ext2' },
];

for (const v of VARIANTS) {
  test(`${v.name}: every entry and every byte match the source tree`, async () => {
    const image = makeImage(join(dir, 'v.img'), src, v.options, 96);
    const { tree, disk } = await openImage(image);
    try {
      assert.equal(tree.kind, v.kind);
      assert.deepEqual(tree.warnings, []);
      const n = await compareWithSource(tree, src, v.name, { mtimes: v.mtimes });
      assert.ok(n > 1300, `${n} entries compared`);
      // Inode numbers, modes and directory sizes as debugfs stat sees them.
      const paths = ['/', '/many', '/modes/empty-dir', '/deep/n/n', '/links/hard-b', '/sizes/f150', '/special/tty'];
      for (const p of paths) {
        const out = run('debugfs', ['-R', `stat ${p}`, image]);
        const entry = await tree.lstat(p);
        assert.equal(entry.inode, Number(/Inode: (\d+)/.exec(out)![1]), `${p}: inode number`);
        assert.equal(entry.size, Number(/Size: (\d+)/.exec(out)![1]), `${p}: size`);
        assert.equal(entry.mode & 0o7777, parseInt(/Mode: +(\d+)/.exec(out)![1], 8), `${p}: mode`);
      }
      // (With 64 KiB blocks the directory fits in two blocks and e2fsck leaves it linear.)
      if (!v.options.includes('65536')) assert.ok(parseInt(/Flags: (0x[0-9a-f]+)/.exec(run('debugfs', ['-R', 'stat /many', image]))![1], 16) & 0x1000, '/many is indexed (htree)');
      // Special files: device numbers (major << 8 | minor).
      assert.equal((await tree.lstat('/special/tty')).rdev, (4 << 8) | 5);
      assert.equal((await tree.lstat('/special/disk')).rdev, (8 << 8) | 17);
      assert.ok(disk.bytesRead < disk.size, 'read less than the whole image');
    } finally {
      disk.close();
    }
  });
}

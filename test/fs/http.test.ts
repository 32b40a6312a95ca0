// The file browser over HTTP: a 4 GiB GPT disk with an ext4 partition, as a ploop image served by
// a real nginx, browsed with HttpRangeStore → PloopImage → openFilesystem. Listing directories
// and reading a small file must fetch a tiny part of the image: nginx's access log counts it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HttpRangeStore, PloopImage, openFilesystem } from '../../src/index.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { sh, sha256, fileSha256 } from '../helpers/fs-trees.ts';
import { startNginx, type Nginx } from '../stores/http-servers.ts';

const DISK_BYTES = 4 * 2 ** 30;
let tmp: { dir: string; cleanup: () => Promise<void> };
let nginx: Nginx;
let src: string;

before(async () => {
  tmp = await makeTempDir('ploop-fs-http-');
  src = join(tmp.dir, 'src');
  mkdirSync(join(src, 'etc/nginx'), { recursive: true });
  mkdirSync(join(src, 'var/log'), { recursive: true });
  writeFileSync(join(src, 'etc/hostname'), 'ct101\n');
  writeFileSync(join(src, 'etc/nginx/nginx.conf'), 'worker_processes 4;\n'.repeat(100));
  for (let i = 0; i < 500; i++) writeFileSync(join(src, 'etc', `conf-${i}`), `setting ${i}\n`);
  // Data the listing must not fetch: 64 MiB of incompressible bytes.
  const big = Buffer.alloc(64 << 20);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(src, 'var/log/big.log'), big);
  const part = join(tmp.dir, 'part.img');
  sh('mkfs.ext4', ['-q', '-F', '-d', src, '-E', 'lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0', part, `${DISK_BYTES / 2 ** 20 - 2}M`]);
  const disk = join(tmp.dir, 'disk.raw');
  sh('truncate', ['-s', String(DISK_BYTES), disk]);
  sh('sh', ['-c', `printf 'label: gpt\\nstart=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n' | sfdisk --quiet ${disk}`]);
  sh('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'parallels', disk, join(tmp.dir, 'disk.hds')]);
  // nginx's workers (an unprivileged user) can read the temporary folder, which it opens up.
  nginx = await startNginx(tmp.dir);
});

after(async () => {
  await nginx?.stop();
  await tmp?.cleanup();
});

test('listing directories of a 4 GiB image over HTTP fetches well under 1 % of it; reading a file fetches about its size', async () => {
  const store = await HttpRangeStore.open(nginx.url + 'disk.hds');
  const image = await PloopImage.open(store);
  const fileBytes = statSync(join(tmp.dir, 'disk.hds')).size;
  const fetched = async () => (await nginx.requests()).reduce((n, r) => n + r.bytes, 0);
  try {
    const fs = await openFilesystem(image);
    assert.equal(fs.partition, 1);
    const root = (await fs.readdir('/')).map((e) => e.name).sort();
    assert.deepEqual(root, ['etc', 'lost+found', 'var']);
    const etc = await fs.readdir('/etc');
    assert.equal(etc.length, 502);
    assert.equal((await fs.readdir('/var/log'))[0].size, 64 << 20);
    const listed = await fetched();
    // Reported by the test run, for docs/filesystems.md.
    console.log(`listing: ${listed} bytes fetched = ${(100 * listed / DISK_BYTES).toFixed(4)} % of the disk, ${(100 * listed / fileBytes).toFixed(3)} % of the ${fileBytes}-byte image file`);
    assert.ok(listed < DISK_BYTES / 1000, `the listing fetched ${listed} bytes, expected under 0.1 % of ${DISK_BYTES}`);
    assert.ok(listed < fileBytes / 20, `the listing fetched ${listed} bytes, expected under 5 % of the ${fileBytes}-byte image file`);
    assert.equal(new TextDecoder().decode(await fs.read('/etc/hostname', 0, 100)), 'ct101\n');
    const chunks: Uint8Array[] = [];
    for await (const c of fs.stream('/etc/nginx/nginx.conf')) chunks.push(c);
    assert.equal(sha256(Buffer.concat(chunks)), fileSha256(join(src, 'etc/nginx/nginx.conf')));
    const before = await fetched();
    let n = 0;
    const hash = (await import('node:crypto')).createHash('sha256');
    for await (const c of fs.stream('/var/log/big.log')) {
      hash.update(c);
      n += c.length;
    }
    assert.equal(n, 64 << 20);
    assert.equal(hash.digest('hex'), fileSha256(join(src, 'var/log/big.log')));
    const streamed = (await fetched()) - before;
    assert.ok(streamed >= 64 << 20 && streamed < (64 << 20) * 1.05, `streaming a 64 MiB file fetched ${streamed} bytes`);
  } finally {
    await image.close();
  }
});

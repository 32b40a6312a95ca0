// Where an emulator's base disk comes from (src/adapters/disk-source.ts) and the persistent disk
// over a whole stack of read-only levels: a disk folder over HTTP (as …/ and as
// …/DiskDescriptor.xml), a single image over HTTP, a folder in a DeltaDirectory, files; the
// identity that names the delta folder changes with the disk (a new snapshot, a rewritten
// file), and a delta made over one base is refused over another.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { initStack, openStackDir, snapshotStack, openBaseUrl, openBaseDirectory, openBaseFiles, PersistentDisk, MemoryDirectory, PloopError } from '../../src/index.ts';
import { deltaFolderName } from '../../src/adapters/browser-disk.ts';
import { NodeDirectory } from '../../src/node.ts';
import { startStaticServer, type StaticServer } from '../../src/server/static-server.ts';
import { makeTempDir } from '../helpers/tmp.ts';

let tmp: { dir: string; cleanup: () => Promise<void> };
let server: StaticServer;
let folder: string;
const bytes = (text: string) => new TextEncoder().encode(text);

before(async () => {
  tmp = await makeTempDir('ploop-disk-source-');
  folder = join(tmp.dir, 'disk');
  await mkdir(folder);
  const dir = new NodeDirectory(folder);
  await initStack(dir, { size: 4 << 20, clusterSize: 64 << 10 });
  let image = await openStackDir(dir, { writable: true });
  await image.write(0, bytes('base level'));
  await image.close();
  await snapshotStack(dir);
  image = await openStackDir(dir, { writable: true });
  await image.write(1 << 20, bytes('top level'));
  await image.close();
  server = await startStaticServer({ root: tmp.dir, isolated: false });
});
after(async () => {
  await server?.close();
  await tmp?.cleanup();
});

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
const text = async (disk: PersistentDisk, offset: number, length: number) => new TextDecoder().decode(await disk.image.read(offset, length));

test('a disk folder over HTTP: both levels read, writes go to the delta, the served files stay as they were', async () => {
  const files = (await readdir(folder)).filter((f) => f.includes('.hds')).sort();
  const hashes = await Promise.all(files.map((f) => sha256(join(folder, f))));
  const base = await openBaseUrl(`${server.url}disk/`);
  assert.equal(base.kind, 'folder');
  assert.equal(base.levels.length, 2);
  assert.equal(base.label, `${server.url}disk/`);
  const same = await openBaseUrl(`${server.url}disk/DiskDescriptor.xml`);
  assert.equal(same.id, base.id, 'the folder URL and its descriptor URL name the same disk');
  await same.close();

  const dir = new MemoryDirectory('delta');
  let disk = await PersistentDisk.open({ base: base.levels, dir, baseId: base.id });
  assert.equal(await text(disk, 0, 10), 'base level');
  assert.equal(await text(disk, 1 << 20, 9), 'top level');
  await disk.image.write(2 << 20, bytes('guest write'));
  await disk.flush();
  const fetched = base.fetched();
  assert.ok(fetched.requests > 0 && fetched.bytes > 0, `fetched ${JSON.stringify(fetched)}`);
  await disk.close();

  // The same delta folder over the same disk brings the write back.
  const again = await openBaseUrl(`${server.url}disk/`);
  disk = await PersistentDisk.open({ base: again.levels, dir, baseId: again.id });
  assert.equal(await text(disk, 2 << 20, 11), 'guest write');
  await disk.close();
  assert.deepEqual(await Promise.all(files.map((f) => sha256(join(folder, f)))), hashes);
});

test('the identity changes with the disk: a new snapshot, a rewritten image; a delta over another base is refused', async () => {
  const before = await openBaseDirectory(new NodeDirectory(folder));
  const dir = new MemoryDirectory('delta');
  await (await PersistentDisk.open({ base: before.levels, dir, baseId: before.id })).close();
  const copy = join(tmp.dir, 'disk2');
  await mkdir(copy);
  const d2 = new NodeDirectory(copy);
  await initStack(d2, { size: 4 << 20, clusterSize: 64 << 10 });
  await snapshotStack(d2);
  const other = await openBaseDirectory(d2);
  assert.notEqual(other.id, before.id);
  assert.notEqual(await deltaFolderName(other), await deltaFolderName(before));
  assert.equal(await deltaFolderName(before), await deltaFolderName({ id: before.id, label: before.label }), 'the folder name is stable');
  await assert.rejects(PersistentDisk.open({ base: other.levels, dir, baseId: other.id }), (e: unknown) => e instanceof PloopError && /delta holds changes made over a base with .*; use another directory for another base/.test(e.message));
  await other.close();

  // A single image over HTTP: the server's Last-Modified is part of the id.
  const url = `${server.url}disk/root.hds`;
  const first = await openBaseUrl(url);
  assert.equal(first.kind, 'ploop');
  await first.close();
  await utimes(join(folder, 'root.hds'), new Date(), new Date(Date.now() + 60_000));
  const second = await openBaseUrl(url);
  assert.notEqual(second.id, first.id, 'a file with a new date is another disk');
  await second.close();
});

test('files: a disk folder needs every delta its descriptor names; one file is an image', async () => {
  const names = (await readdir(folder)).filter((f) => !f.endsWith('.lck'));
  const files = await Promise.all(names.map(async (n) => new File([await readFile(join(folder, n))], n)));
  const base = await openBaseFiles(files);
  assert.equal(base.kind, 'folder');
  assert.equal(base.levels.length, 2);
  await base.close();
  await assert.rejects(openBaseFiles(files.filter((f) => f.name === 'DiskDescriptor.xml' || f.name === 'root.hds')),
    (e: unknown) => e instanceof PloopError && e.code === 'EINVAL' && /DiskDescriptor\.xml names root\.hds\.\{[0-9a-f-]+\}, which was not among the files given/.test(e.message));
  await assert.rejects(openBaseFiles(files.filter((f) => f.name !== 'DiskDescriptor.xml')),
    (e: unknown) => e instanceof PloopError && /2 files given without a DiskDescriptor\.xml/.test(e.message));
  const raw = await openBaseFiles([new File([new Uint8Array(4096)], 'disk.img')]);
  assert.equal(raw.kind, 'raw');
  await raw.close();
});

// Stores describe themselves (issue #17, item 3): BlockStore.spec() says how a runner in another
// thread opens the same store, with its options. An HTTP store that needs a header and a small
// cache is read by two runner workers through its own spec; before, the spec carried the URL
// alone and every runner's request was refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpRangeStore, BlobStore, MemoryStore } from '../../src/index.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { startTinyServer, answerRange } from '../stores/http-servers.ts';
import '../helpers/source-workers.ts';

const MiB = 1 << 20;

test('an HTTP store opened with an Authorization header and a 1 MiB cache gives runners a spec with both, and 2 runner workers read the image through it', () => withTempDir(async (dir) => {
  const path = join(dir, 'a.hds');
  execFileSync('qemu-img', ['create', '-q', '-f', 'parallels', '-o', 'cluster_size=1M', path, '8M']);
  execFileSync('qemu-io', ['-f', 'parallels', '-c', 'write -P 0x42 1M 2M', path], { stdio: 'ignore' });
  const bytes = new Uint8Array(readFileSync(path));
  let refused = 0;
  const server = await startTinyServer((req, res) => {
    if (req.headers.authorization !== 'Bearer s3cret') {
      refused++;
      res.writeHead(401).end();
      return;
    }
    answerRange(req, res, bytes);
  });
  try {
    const store = await HttpRangeStore.open(server.url + 'a.hds', { headers: { Authorization: 'Bearer s3cret' }, cacheBytes: MiB, timeoutMs: 5000 });
    const spec = store.spec();
    assert.deepEqual(spec, { kind: 'http', url: server.url + 'a.hds', options: { headers: { Authorization: 'Bearer s3cret' }, cacheBytes: MiB, timeoutMs: 5000 } });
    await store.close();
    const pool = await ParallelImage.open([spec], { runners: 2 });
    try {
      assert.equal(pool.runnerCount, 2);
      const got = await pool.read(0, 8 * MiB);
      assert.ok(got.subarray(MiB, 3 * MiB).every((b) => b === 0x42), 'the runners read the written clusters');
      assert.ok(got.subarray(0, MiB).every((b) => b === 0) && got.subarray(3 * MiB).every((b) => b === 0));
      assert.ok((await pool.stats()).runnerRequests.every((n) => n > 0), 'both runners served requests');
    } finally {
      await pool.close();
    }
    assert.equal(refused, 0, 'no request went out without the header');
  } finally {
    await server.close();
  }
}));

test('a Blob store describes itself as a blob spec; a private memory store has none (a pool serves it in its own thread)', () => {
  const blob = new Blob([new Uint8Array(512)]);
  assert.deepEqual(new BlobStore(blob, { name: 'x.hds' }).spec(), { kind: 'blob', blob, name: 'x.hds' });
  assert.equal((new MemoryStore() as { spec?: () => unknown }).spec, undefined);
});

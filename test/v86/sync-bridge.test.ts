// The sync bridge: an "emulator" in a worker thread reads and writes a ploop image synchronously
// (Atomics.wait) while this thread serves the image's async API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { MemoryStore, createImage, PloopImage } from '../../src/index.ts';
import { imageBlockDevice } from '../../src/adapters/block-device.ts';
import { createSyncChannel, serveBlockDevice, SyncBlockDevice, type SyncChannel } from '../../src/adapters/sync-bridge.ts';
import { throwsWith } from '../helpers/errors.ts';

const SIZE = 4 << 20;

/** Run `body` (the text of an async function of (SyncBlockDevice, channels)) in a worker; returns its result. */
function inWorker(body: string, channels: SyncChannel[]): Promise<unknown> {
  const bridge = new URL('../../src/adapters/sync-bridge.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = `
    const { workerData, parentPort } = await import('node:worker_threads');
    (await import(${JSON.stringify(tsx)})).register();
    const { SyncBlockDevice } = await import(${JSON.stringify(bridge)});
    const run = ${body};
    try { parentPort.postMessage({ ok: true, value: await run(SyncBlockDevice, workerData) }); }
    catch (e) { parentPort.postMessage({ ok: false, error: String(e && e.stack || e) }); }`;
  return new Promise((resolve, reject) => {
    const w = new Worker(`import(${JSON.stringify('data:text/javascript,' + encodeURIComponent(source))})`, { eval: true, workerData: channels });
    w.once('message', (m: { ok: boolean; value?: unknown; error?: string }) => {
      void w.terminate();
      if (m.ok) resolve(m.value);
      else reject(new Error(m.error));
    });
    w.once('error', reject);
  });
}

async function newImage(writable: boolean, store = new MemoryStore()): Promise<PloopImage> {
  if ((await store.size()) === 0) {
    await createImage(store, { size: SIZE, clusterSize: 64 << 10 });
    const init = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
    await init.write(0, new Uint8Array(512).fill(0x42));
    await init.close();
  }
  return PloopImage.open(store, { writable });
}

test('a worker reads and writes a ploop image synchronously through the bridge, in chunks, errors included', async () => {
  const store = new MemoryStore();
  const image = await newImage(true, store);
  const readOnly = await newImage(false, new MemoryStore(store.bytes().slice()));
  // A small data area, so that a 10000-byte request takes several round trips.
  const channel = createSyncChannel(image.size, 4096);
  const roChannel = createSyncChannel(readOnly.size, 4096);
  const server = serveBlockDevice(imageBlockDevice(image), channel);
  const roServer = serveBlockDevice(imageBlockDevice(readOnly), roChannel);
  try {
    const result = await inWorker(`async (SyncBlockDevice, [channel, roChannel]) => {
      const disk = new SyncBlockDevice(channel);
      const first = disk.read(0, 512);
      const pattern = new Uint8Array(10000).map((_, i) => (i * 7) & 0xff);
      disk.write(3 * 1024 * 1024 + 100, pattern);
      const back = disk.read(3 * 1024 * 1024 + 100, 10000);
      disk.flush();
      let range = null, readonly = null;
      try { disk.read(disk.sizeBytes - 512, 1024); } catch (e) { range = e.code + ': ' + e.message; }
      try { new SyncBlockDevice(roChannel).write(0, new Uint8Array(512)); } catch (e) { readonly = e.code + ': ' + e.message; }
      return { first: first[0], same: back.every((b, i) => b === pattern[i]), range, readonly };
    }`, [channel, roChannel]) as { first: number; same: boolean; range: string; readonly: string };
    assert.equal(result.first, 0x42);
    assert.equal(result.same, true);
    assert.match(result.range, /^ERANGE: sync read: bytes 4193792\.\.4194816 are outside the 4194304-byte disk/);
    assert.match(result.readonly, /^EREADONLY: /);
    const landed = await image.read(3 * 1024 * 1024 + 100, 10000);
    assert.ok(landed.every((b, i) => b === ((i * 7) & 0xff)), 'the writes reached the image');
  } finally {
    await server.stop();
    await roServer.stop();
    await image.close();
    await readOnly.close();
  }
});

test('a client without a server gets an error after its timeout instead of hanging', () => {
  const channel = createSyncChannel(SIZE, 4096);
  const disk = new SyncBlockDevice(channel, { timeoutMs: 200 });
  const started = Date.now();
  throwsWith(() => disk.read(0, 512), 'EIO', /no answer within 200 ms; is serveBlockDevice running on another thread/);
  assert.ok(Date.now() - started >= 190);
  throwsWith(() => createSyncChannel(SIZE, 100), 'EINVAL', /dataBytes 100; expected a whole number >= 512/);
});

// The v86 adapter's read-ahead (src/adapters/read-ahead.ts): sequential reads make it fetch the
// next chunks, and reads those chunks hold are answered synchronously with the disk's current
// bytes — also after a write that landed on a fetched chunk, or on one still in flight (which is
// dropped) — while scattered reads fetch nothing ahead, and { aheadBytes: 0 } turns it off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, createImage, PloopImage } from '../../src/index.ts';
import { imageBlockDevice, type BlockDevice } from '../../src/adapters/block-device.ts';
import { V86Disk } from '../../src/adapters/v86/disk.ts';

const SIZE = 4 << 20;
const READ = 48 << 10;

/** An image whose every byte says where it is (byte i = i * 7 mod 251), and a counting device. */
async function setup() {
  const store = new MemoryStore();
  await createImage(store, { size: SIZE, clusterSize: 64 << 10 });
  const image = await PloopImage.open(store, { writable: true });
  const pattern = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i++) pattern[i] = (i * 7) % 251;
  await image.write(0, pattern);
  const inner = imageBlockDevice(image);
  const reads: Array<[number, number]> = [];
  let hold: Promise<void> | null = null;
  const device: BlockDevice = {
    sizeBytes: inner.sizeBytes,
    read: async (o, l) => {
      reads.push([o, l]);
      if (hold) await hold;
      return inner.read(o, l);
    },
    write: (o, d) => inner.write(o, d),
    flush: () => inner.flush(),
  };
  return {
    image, pattern, device, reads,
    holdReads() {
      let release!: () => void;
      hold = new Promise<void>((r) => (release = r));
      return () => {
        hold = null;
        release();
      };
    },
  };
}

/** Run `fn` on a fresh setup, closing its image afterwards. */
async function withSetup(fn: (s: Awaited<ReturnType<typeof setup>>) => Promise<void>): Promise<void> {
  const s = await setup();
  try {
    await fn(s);
  } finally {
    await s.image.close();
  }
}

/** get(): the bytes, and whether the callback ran before get returned (a synchronous answer). */
function get(disk: V86Disk, start: number, length: number): Promise<{ bytes: Uint8Array; sync: boolean }> {
  return new Promise((resolve) => {
    let returned = false;
    disk.get(start, length, (bytes) => resolve({ bytes, sync: !returned }));
    returned = true;
  });
}

const settle = () => new Promise((r) => setTimeout(r, 20));

test('sequential reads are answered from read-ahead chunks, synchronously, with the disk\'s bytes', () => withSetup(async (s) => {
  const disk = new V86Disk(s.device);
  let sync = 0;
  for (let at = 0; at < 2 << 20; at += READ) {
    const r = await get(disk, at, READ);
    assert.deepEqual(r.bytes, s.pattern.subarray(at, at + READ), `bytes at ${at}`);
    if (r.sync) sync++;
    await settle();
  }
  const reads = Math.ceil((2 << 20) / READ);
  assert.ok(sync >= reads - 3, `${sync} of ${reads} reads answered synchronously`);
  assert.ok(disk.readAhead.hits >= sync);
  // The device saw 256 KiB chunks, not the guest's 48 KiB reads.
  assert.ok(s.reads.filter(([, l]) => l === 256 << 10).length >= 8, JSON.stringify(s.reads));
}));

test('a write to a fetched chunk is seen by the next read; a chunk in flight when a write lands is dropped', () => withSetup(async (s) => {
  const disk = new V86Disk(s.device);
  await get(disk, 0, READ);
  await get(disk, READ, READ); // sequential: chunks up to ~1 MiB ahead are fetched
  await settle();
  const written = new Uint8Array(512).fill(0xee);
  disk.set(3 * READ, written);
  const after = await get(disk, 2 * READ, 2 * READ);
  assert.ok(after.sync, 'answered from the chunks');
  assert.deepEqual(after.bytes.subarray(READ, READ + 512), written);
  assert.deepEqual(after.bytes.subarray(0, READ), s.pattern.subarray(2 * READ, 3 * READ));

  // Now chunks in flight: a write must win over what a chunk read before it.
  const fresh = new V86Disk(s.device);
  await get(fresh, 0, READ);
  const release = s.holdReads();
  const r = get(fresh, READ, READ); // sequential: fetches the chunks after it, held
  await settle();
  const far = 512 << 10;
  fresh.set(far, written);
  release();
  await r;
  await fresh.settled();
  await settle();
  const back = await get(fresh, far, 512);
  assert.deepEqual(back.bytes, written);
  assert.ok(fresh.readAhead.chunksDropped >= 1, `dropped ${fresh.readAhead.chunksDropped}`);
}));

test('scattered reads fetch nothing ahead; aheadBytes 0 turns read-ahead off; the disk\'s end is read exactly', () => withSetup(async (s) => {
  const disk = new V86Disk(s.device);
  for (const at of [3 << 20, 1 << 20, 2 << 20, 512 << 10]) await get(disk, at, READ);
  await settle();
  assert.equal(disk.readAhead.chunksFetched, 0);
  assert.equal(s.reads.length, 4);

  const off = new V86Disk(s.device, { readAhead: { aheadBytes: 0 } });
  for (let at = 0; at < 8 * READ; at += READ) assert.equal((await get(off, at, READ)).sync, false);
  assert.equal(off.readAhead.chunksFetched, 0);

  // Sequential reads up to the last byte: the chunks stop at the disk's end.
  for (let at = SIZE - 6 * READ; at < SIZE; at += READ) {
    const r = await get(disk, at, READ);
    assert.deepEqual(r.bytes, s.pattern.subarray(at, at + READ));
    await settle();
  }
  assert.ok(s.reads.every(([o, l]) => o + l <= SIZE));
}));

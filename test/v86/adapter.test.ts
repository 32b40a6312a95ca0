// The v86 disk adapter and the block-device facade without an emulator: the parts of v86's disk
// contract that a boot does not reliably exercise (cancelled reads, the range check, writes
// seen before the store confirms them, write order, the sector-0 cache, saved states).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, createImage, PloopImage } from '../../src/index.ts';
import { imageBlockDevice, type BlockDevice } from '../../src/adapters/block-device.ts';
import { V86Disk } from '../../src/adapters/v86/disk.ts';
import { rejectsWith, throwsWith } from '../helpers/errors.ts';

const SIZE = 1 << 20;

async function newImage(): Promise<PloopImage> {
  const store = new MemoryStore();
  await createImage(store, { size: SIZE, clusterSize: 64 << 10 });
  const image = await PloopImage.open(store, { writable: true });
  await image.write(0, new Uint8Array(512).fill(0x11));
  return image;
}

/** A device whose reads and writes wait until the test opens the gate. */
function gated(inner: BlockDevice) {
  let open!: () => void;
  let gate = new Promise<void>((r) => (open = r));
  return {
    device: {
      sizeBytes: inner.sizeBytes,
      read: async (o: number, l: number) => { await gate; return inner.read(o, l); },
      write: async (o: number, d: Uint8Array) => { await gate; return inner.write(o, d); },
      flush: () => inner.flush(),
    } satisfies BlockDevice,
    release: () => open(),
    close: () => { gate = new Promise<void>((r) => (open = r)); },
  };
}

function getAsync(disk: V86Disk, start: number, length: number): Promise<Uint8Array> {
  return new Promise((resolve) => disk.get(start, length, resolve));
}

const tick = () => new Promise((r) => setTimeout(r, 20));

test('a read past the end is an ERANGE error, not zeros (facade and adapter)', async () => {
  const image = await newImage();
  try {
    const device = imageBlockDevice(image);
    await rejectsWith(() => device.read(SIZE - 512, 1024), 'ERANGE', /bytes 1048064\.\.1049088 are outside the 1048576-byte disk/);
    await rejectsWith(() => device.write(SIZE, new Uint8Array(512)), 'ERANGE', /write/);
    const disk = new V86Disk(device);
    let called = false;
    throwsWith(() => disk.get(SIZE, 512, () => (called = true)), 'ERANGE', /v86 disk get.*outside/);
    throwsWith(() => disk.set(-512, new Uint8Array(512)), 'ERANGE', /v86 disk set/);
    await tick();
    assert.equal(called, false);
    assert.equal(disk.byteLength, SIZE);
  } finally {
    await image.close();
  }
});

test('get with an aborted signal drops the result, before or during the read', async () => {
  const image = await newImage();
  try {
    const g = gated(imageBlockDevice(image));
    const disk = new V86Disk(g.device);
    const results: string[] = [];
    const early = new AbortController();
    early.abort();
    disk.get(0, 512, () => results.push('early'), { signal: early.signal });
    const late = new AbortController();
    disk.get(0, 512, () => results.push('late'), { signal: late.signal });
    disk.get(0, 512, (b) => results.push(`kept ${b[0]}`), { signal: new AbortController().signal });
    late.abort();
    g.release();
    await tick();
    assert.deepEqual(results, ['kept 17']);
    assert.equal(disk.counters.readsCancelled, 2);
  } finally {
    await image.close();
  }
});

test('set copies the data at once and later gets see it before the device has it', async () => {
  const image = await newImage();
  try {
    const g = gated(imageBlockDevice(image));
    g.release();
    g.close(); // reads and writes now wait
    const disk = new V86Disk(g.device);
    // v86 passes a view into a transfer buffer it reuses for the next command.
    const transfer = new Uint8Array(1024).fill(0xaa);
    let confirmed = false;
    disk.set(512, transfer.subarray(0, 512), () => (confirmed = true));
    transfer.fill(0xbb);
    assert.equal(disk.pendingWrites, 1);
    const read = getAsync(disk, 0, 1024);
    g.release();
    const bytes = await read;
    assert.equal(bytes[0], 0x11);
    assert.ok(bytes.subarray(512).every((b) => b === 0xaa), 'the pending write is laid over the read');
    await disk.flush();
    assert.equal(confirmed, true);
    assert.equal(disk.pendingWrites, 0);
    assert.ok((await image.read(512, 512)).every((b) => b === 0xaa), 'the copy reached the image, not the reused buffer');
  } finally {
    await image.close();
  }
});

test('writes to the same sectors land in the order v86 issued them', async () => {
  const image = await newImage();
  try {
    // The first write is slow, the second fast: without ordering the first would win.
    let slow = true;
    const inner = imageBlockDevice(image);
    const device: BlockDevice = {
      ...inner,
      write: async (o, d) => {
        if (slow) {
          slow = false;
          await new Promise((r) => setTimeout(r, 50));
        }
        return inner.write(o, d);
      },
    };
    const disk = new V86Disk(device);
    disk.set(4096, new Uint8Array(512).fill(1));
    disk.set(4096, new Uint8Array(512).fill(2));
    assert.equal((await getAsync(disk, 4096, 512))[0], 2);
    await disk.flush();
    assert.equal((await image.read(4096, 1))[0], 2);
  } finally {
    await image.close();
  }
});

test('sector 0 is cached by get_and_cache, served synchronously, and follows writes', async () => {
  const image = await newImage();
  try {
    const disk = new V86Disk(imageBlockDevice(image));
    assert.equal(disk.get_from_cache(0, 512), undefined, 'nothing cached before get_and_cache');
    await new Promise((r) => disk.get_and_cache(0, 512, r));
    assert.equal(disk.get_from_cache(0, 512)?.[100], 0x11);
    disk.set(0, new Uint8Array(512).fill(0x22));
    assert.equal(disk.get_from_cache(0, 512)?.[100], 0x22);
    assert.equal(disk.get_from_cache(512, 512), undefined, 'only what was cached');
    await disk.flush();
  } finally {
    await image.close();
  }
});

test('get_state is the image id and generation; a state from another generation or disk is refused', async () => {
  const image = await newImage();
  try {
    const device = imageBlockDevice(image);
    const disk = new V86Disk(device, { imageId: 'base.img:1048576', generation: 3 });
    const state = disk.get_state();
    assert.deepEqual(state, ['base.img:1048576', 3]);
    disk.set_state(state);
    throwsWith(() => new V86Disk(device, { imageId: 'base.img:1048576', generation: 4 }).set_state(state), 'EINVAL',
      /saved at disk generation 3, the disk is at generation 4 \(it was reset to its base since\)/);
    throwsWith(() => new V86Disk(device, { imageId: 'other.img', generation: 3 }).set_state(state), 'EINVAL', /saved with disk "base.img:1048576", this disk is "other.img"/);
    throwsWith(() => disk.set_state(new Uint8Array(4)), 'EINVAL', /expected \[imageId, generation\]/);
    await rejectsWith(() => disk.get_as_file('x.img'), 'ENOTSUP', /no export was configured/);
  } finally {
    await image.close();
  }
});

test('a write the device refuses is reported through onError and by flush', async () => {
  const image = await newImage();
  try {
    const errors: unknown[] = [];
    const device: BlockDevice = { ...imageBlockDevice(image), write: async () => { throw new Error('disk full'); } };
    const disk = new V86Disk(device, { onError: (e) => errors.push(e) });
    disk.set(0, new Uint8Array(512));
    disk.set(512, new Uint8Array(512));
    await assert.rejects(disk.flush(), /disk full/);
    assert.equal(errors.length, 1);
  } finally {
    await image.close();
  }
});

test('the sample disk shipped for the page is the assembled read/write boot sector', async () => {
  const { sampleBootSector, sampleBootDisk, SAMPLE_LBA1_TEXT } = await import('../../web/v86-sample-disk.ts');
  const { readWriteBootSector, rawBootDisk, LBA1_TEXT } = await import('../helpers/boot-sectors.ts');
  assert.deepEqual(sampleBootSector(), readWriteBootSector());
  assert.equal(SAMPLE_LBA1_TEXT, LBA1_TEXT);
  assert.deepEqual(sampleBootDisk(), rawBootDisk(readWriteBootSector(), 1 << 20));
});

test('get_as_file exports once the writes v86 queued are in the image', async () => {
  const image = await newImage();
  try {
    const g = gated(imageBlockDevice(image));
    const disk = new V86Disk(g.device, { exportFile: async () => new Blob([(await image.read(0, 512)) as Uint8Array<ArrayBuffer>]) });
    disk.set(0, new Uint8Array(512).fill(0x33));
    const file = disk.get_as_file('disk.img');
    await tick();
    g.release();
    const bytes = new Uint8Array(await (await file).arrayBuffer());
    assert.equal(bytes[0], 0x33);
  } finally {
    await image.close();
  }
});

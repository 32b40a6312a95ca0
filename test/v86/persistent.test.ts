// PersistentDisk without an emulator: the flush policy (periodic while there were writes, and
// on the page's visibilitychange/pagehide/beforeunload), the generation record, and refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, MemoryDirectory } from '../../src/index.ts';
import { PersistentDisk } from '../../src/adapters/persistent-disk.ts';
import { sampleBootDisk } from '../../web/v86-sample-disk.ts';
import { rejectsWith, throwsWith } from '../helpers/errors.ts';

/** A MemoryDirectory that counts flushes of the stores it hands out. */
class CountingDirectory extends MemoryDirectory {
  flushes = 0;
  override async openStore(file: string, options?: { writable?: boolean; create?: boolean }): Promise<MemoryStore> {
    const store = await super.openStore(file, options);
    const flush = store.flush.bind(store);
    store.flush = async () => {
      this.flushes++;
      return flush();
    };
    return store;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const base = () => new MemoryStore(sampleBootDisk(), { writable: false });

test('flush policy: periodic only after writes, on visibilitychange/pagehide, and nothing once removed', async () => {
  const dir = new CountingDirectory();
  const disk = await PersistentDisk.open({ base: base(), baseKind: 'raw', dir, baseId: 'sample' });
  try {
    const events = new EventTarget();
    const remove = disk.installFlushPolicy(events, 40);
    let seen = dir.flushes;
    await sleep(150);
    assert.equal(dir.flushes, seen, 'no writes, no periodic flush');
    await disk.device.write(4096, new Uint8Array(512).fill(1));
    await sleep(150);
    assert.ok(dir.flushes > seen, 'a write is flushed by the timer');
    seen = dir.flushes;
    await sleep(120);
    assert.equal(dir.flushes, seen, 'once flushed, the timer stays quiet');
    for (const type of ['visibilitychange', 'pagehide', 'beforeunload']) {
      await disk.device.write(8192, new Uint8Array(512).fill(2));
      const before = dir.flushes;
      events.dispatchEvent(new Event(type));
      await sleep(5);
      assert.ok(dir.flushes > before, `${type} flushes`);
    }
    remove();
    seen = dir.flushes;
    await disk.device.write(4096, new Uint8Array(512).fill(3));
    events.dispatchEvent(new Event('visibilitychange'));
    await sleep(120);
    assert.equal(dir.flushes, seen, 'the removed policy no longer flushes');
  } finally {
    await disk.close();
  }
});

test('the generation is read from the folder; a bad record and a closed disk are refused clearly', async () => {
  const dir = new MemoryDirectory('vm');
  await dir.writeTextAtomic('generation.json', '{"generation": 7}\n');
  const disk = await PersistentDisk.open({ base: base(), baseKind: 'raw', dir, baseId: 'sample' });
  assert.equal(disk.generation, 7);
  assert.deepEqual(disk.v86Disk().get_state(), ['sample', 7]);
  await disk.resetToBase();
  assert.equal(disk.generation, 8);
  assert.equal(await dir.readText('generation.json'), '{"generation":8}\n');
  await disk.close();
  throwsWith(() => disk.export('raw'), 'ECLOSED', /persistent disk sample: already closed/);
  await dir.writeTextAtomic('generation.json', '{"generation": -1}');
  await rejectsWith(() => PersistentDisk.open({ base: base(), baseKind: 'raw', dir, baseId: 'sample' }), 'ECORRUPT',
    /vm\/generation\.json should hold \{"generation": N\} with N >= 0/);
});

test('a delta folder made over another base is refused (it only makes sense over its own base)', async () => {
  const dir = new MemoryDirectory('vm');
  const disk = await PersistentDisk.open({ base: base(), baseKind: 'raw', dir, baseId: 'sample-a' });
  await disk.close();
  await rejectsWith(() => PersistentDisk.open({ base: base(), baseKind: 'raw', dir, baseId: 'sample-b' }), 'EINVAL', /baseId "sample-a"/);
});

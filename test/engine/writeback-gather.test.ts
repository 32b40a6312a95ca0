// SPDX-License-Identifier: MIT
// The writeback's gather delay (GATHER_MS) waits for requests that are still writing data, so a
// burst leaves in one BAT write. Requests queued behind another request's allocation write
// nothing until it completes: once every request in flight is either attached or queued like
// that, the burst must leave at once (Writeback.nudge), not when the gather timer fires.
// The test freezes setTimeout (node:test's mock timers), so a burst that waited for the timer
// would never complete.

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, PloopImage, MemoryStore } from '../../src/index.ts';

/** A memory store that holds the next write until the test lets it go. */
class GatedStore extends MemoryStore {
  #gate: Promise<void> | null = null;
  holdNextWrite(): () => void {
    let open!: () => void;
    this.#gate = new Promise<void>((r) => (open = r));
    return open;
  }
  override async write(offset: number, data: Uint8Array): Promise<void> {
    const gate = this.#gate;
    this.#gate = null;
    if (gate) await gate;
    return super.write(offset, data);
  }
}

/** Let the event loop turn (setImmediate is not mocked) until `p` settles or `turns` pass. */
async function settledWithin(p: Promise<unknown>, turns: number): Promise<boolean> {
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < turns && !settled; i++) await new Promise((r) => setImmediate(r));
  return settled;
}

test('an allocation and the writes queued behind it leave as soon as the last other request stops writing data, without the gather timer (rule: nudge on completion)', async () => {
  const clusterBytes = 1 << 20;
  const store = new GatedStore(new Uint8Array(0), { writable: true });
  await createImage(store, { size: 64 << 20, clusterSize: clusterBytes });
  const image = await PloopImage.open(store, { writable: true });
  await image.write(0, new Uint8Array(4096).fill(1)); // cluster 0 mapped, in-use flag set
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const before = image.stats.batPageWrites;
    // A: an in-place write into cluster 0 whose data write is held: it is "still writing data"
    // when B's allocation attaches, so the writeback starts its gather timer.
    const openA = store.holdNextWrite();
    const a = image.write(8192, new Uint8Array(4096).fill(2));
    // B allocates cluster 1; C and D queue behind B's allocation (they write nothing until it completes).
    const burst = Promise.all([1, 2, 3].map((i) => image.write(clusterBytes + (i - 1) * 4096, new Uint8Array(4096).fill(10 + i))));
    assert.equal(await settledWithin(burst, 200), false, 'the burst completed while A was still writing: the test no longer sets up the gather');
    openA();
    await a;
    assert.ok(await settledWithin(burst, 2000), 'the burst waited for the gather timer after the last data writer completed');
    await burst;
    assert.equal(image.stats.batPageWrites - before, 1, 'one BAT page write for the allocation');
  } finally {
    mock.timers.reset();
  }
  const back = new Uint8Array(3 * 4096);
  await image.readInto(clusterBytes, back);
  for (let i = 0; i < 3; i++) assert.equal(back[i * 4096 + 17], 11 + i, `block ${i}`);
  await image.close();
});

test('a burst of 32 writes into one new cluster completes with the timers frozen', async () => {
  const store = new MemoryStore(new Uint8Array(0), { writable: true });
  await createImage(store, { size: 64 << 20, clusterSize: 1 << 20 });
  const image = await PloopImage.open(store, { writable: true });
  await image.write(8 << 20, new Uint8Array(4096).fill(1));
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const burst = Promise.all(Array.from({ length: 32 }, (_, i) => image.write(i * 4096, new Uint8Array(4096).fill(i + 2))));
    assert.ok(await settledWithin(burst, 2000), 'the burst waited for the gather timer');
    await burst;
  } finally {
    mock.timers.reset();
  }
  await image.close();
});

// Forced interleavings of the md page update protocol (docs/engine.md, 'The
// races'). Step gates in shared memory stop a runner inside its UPDATING window
// (GATE_UPDATING) or the writeback coordinator after its BAT writes (GATE_COMPLETE), so that
// each race is played out step by step instead of hoped for. Every scenario runs twice: with
// the in-thread PloopImage (the same state machine, one thread) and with a pool of 2 worker
// runners, where the two requests of a scenario sit on different threads (cluster c goes to
// runner c mod 2). submitDelayMs is 60 s, so only an explicit drain() writes a BAT page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PloopImage, PloopError } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { ParallelImage } from '../../src/runners/pool-node.ts';
import { BatMap, MD_DIRTY, MD_UPDATING, MD_WRITEBACK } from '../../src/core/bat-map.ts';
import { GATE_COMPLETE, GATE_SUBMIT, GATE_UPDATING } from '../../src/engine/step-gates.ts';
import { updateEntry } from '../../src/engine/writeback.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { DiskModel, assertBytesEqual } from '../helpers/model.ts';
import { readFileImage } from '../helpers/images.ts';
import { assertQemuAgrees } from '../helpers/oracle.ts';
import { createImageFile, fileBatEntries, sleep, track, waitFor, within, type Tracked } from '../helpers/race.ts';
import '../helpers/source-workers.ts';

const C = 4096;
const SIZE = 8 << 20; // 2048 BAT entries: md pages 0, 1 and 2
const ENTRIES = SIZE / C;
/** md page 1 holds clusters 1008..2031; the scenarios use it (page 0 also holds the header). */
const P = 1;
const c0 = 1008; // even: runner 0 of a 2-runner pool
const c1 = 1009; // odd: runner 1
const c2 = 1010; // even
const c3 = 1011; // odd
const HOLD_MS = 100; // how long a parked step must keep the other side waiting
const SETTLE_MS = 5000;

interface Harness {
  name: string;
  path: string;
  /** The coordinator's image: its BAT map (shared memory), writeback and stats. */
  image: PloopImage;
  bat: BatMap;
  write(offset: number, data: Uint8Array): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
  model: DiskModel;
}

type Variant = 'in-thread' | '2 runners';
const VARIANTS: Variant[] = ['in-thread', '2 runners'];

async function open(variant: Variant): Promise<Harness & { cleanupDir(): Promise<void> }> {
  const { dir, cleanup } = await makeTempDir('ploop-race-');
  const path = join(dir, 'disk.hds');
  await createImageFile(path, SIZE, C);
  const model = new DiskModel(SIZE);
  if (variant === 'in-thread') {
    const image = await PloopImage.open(await NodeFileStore.open(path, { writable: true }), { writable: true, submitDelayMs: 60_000, onWarning: () => {} });
    return {
      name: variant, path, image, bat: image.bat, model, cleanupDir: cleanup,
      write: (o, d) => image.write(o, d), discard: (o, l) => image.discard(o, l), read: (o, l) => image.read(o, l), close: () => image.close(),
    };
  }
  const pool = await ParallelImage.open([path], { writable: true, runners: 2, submitDelayMs: 60_000, onWarning: () => {} });
  return {
    name: variant, path, image: pool.image, bat: pool.image.bat, model, cleanupDir: cleanup,
    write: (o, d) => pool.write(o, d), discard: (o, l) => pool.discard(o, l), read: (o, l) => pool.read(o, l), close: () => pool.close(),
  };
}

/**
 * Run a scenario; afterwards release every gate, write back what is pending and close (with
 * deadlines: a broken rule must fail the test, not hang it), then check the file with QEMU.
 */
/** Request A failed at the step gate armed to fail, with the injected EIO. */
async function rejectsWithInjectedFailure(a: Promise<unknown>): Promise<void> {
  await assert.rejects(within(a, SETTLE_MS, 'A'), (e: unknown) => {
    assert.ok(e instanceof PloopError, `A rejects with a PloopError, got ${e}`);
    assert.equal(e.code, 'EIO');
    assert.match(e.message, /injected failure at step gate/);
    return true;
  });
}

/** Request B: a whole-cluster write to c0 on page P, once it is attached to P's piwb. */
async function attachB(h: Harness, pattern: number) {
  const dataB = fill(C, pattern);
  const B = track(h.write(c0 * C, dataB));
  await waitFor(() => h.image.writeback.stats.updates === 1, SETTLE_MS, 'B attached');
  return { dataB, B };
}

async function scenario(variant: Variant, body: (h: Harness) => Promise<void>): Promise<void> {
  const h = await open(variant);
  let failed = false;
  try {
    await body(h);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    const gates = h.bat.gates;
    for (const g of [GATE_UPDATING, GATE_SUBMIT, GATE_COMPLETE]) gates.release(g);
    try {
      await within(h.image.writeback.drain(), SETTLE_MS, 'final drain');
      await within(h.close(), SETTLE_MS, 'close');
    } catch (e) {
      // biome-ignore lint/correctness/noUnsafeFinally: a cleanup that fails must fail the test, unless the test failed already
      if (!failed) throw e;
    }
  }
  try {
    assertBytesEqual(await readFileImage(h.path), h.model.bytes, `${variant}: whole disk after reopening`);
    await assertQemuAgrees(h.path, h.model.bytes, variant);
  } finally {
    await h.cleanupDir();
  }
}

/** Drain until the request settled (its attachment may still be on its way from a runner). */
async function settle<T>(h: Harness, t: Tracked<T>, what: string): Promise<T> {
  const deadline = Date.now() + SETTLE_MS;
  while (!t.settled) {
    if (Date.now() > deadline) throw new Error(`${what}: did not settle within ${SETTLE_MS} ms of draining`);
    await h.image.writeback.drain();
    await sleep(1);
  }
  return t.promise;
}

/** Write and wait until it is durable (a write resolves only after its BAT page is written). */
async function writeDurably(h: Harness, offset: number, data: Uint8Array): Promise<void> {
  await settle(h, track(h.write(offset, data)), `write at ${offset}`);
  h.model.write(offset, data);
}

const has = (word: number, bit: number) => (word & bit) !== 0;
/** The value of `cluster`'s slot in piwb buffer `id`. */
const piwbEntry = (bat: BatMap, id: number, cluster: number) => bat.core.u32[(bat.piwbAddress(id) >>> 2) + BatMap.slotInPage(cluster)];
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

for (const variant of VARIANTS) {
  // Race 1, submit during update. Rule: the submitter skips a page that is UPDATING
  // (mdTrySubmit returns 0 and the page stays queued), so an updater's entry can never miss
  // the BAT write its request completes with.
  test(`race 1 (${variant}): the writeback does not submit an md page while a runner is inside its UPDATING window, and then one BAT write carries both requests`, { timeout: 30_000 }, async () => {
    await scenario(variant, async (h) => {
      const { bat, image } = h;
      const wb = image.writeback;
      const gates = bat.gates;
      const dataB = fill(C, 0xb1);
      const B = track(h.write(c0 * C, dataB));
      await waitFor(() => wb.stats.updates === 1, SETTLE_MS, 'B attached to the piwb of page P');
      assert.ok(has(bat.mdStatus(P), MD_DIRTY), 'page P is DIRTY with B queued');
      const writesBefore = image.stats.batPageWrites;

      gates.arm(GATE_UPDATING);
      const dataA = fill(300, 0xa1);
      const A = track(h.write(c1 * C + 100, dataA));
      await gates.arrived(GATE_UPDATING);
      assert.ok(has(bat.mdStatus(P), MD_UPDATING), 'A holds UPDATING on page P');

      const drained = track(wb.drain());
      await sleep(HOLD_MS);
      assert.equal(image.stats.batPageWrites, writesBefore, 'no BAT page was written while A was inside UPDATING');
      assert.equal(B.settled, false, 'B did not complete while A was inside UPDATING');
      assert.equal(drained.settled, false, 'drain waits for the page');
      assert.equal((await fileBatEntries(h.path, ENTRIES))[c0], 0, "B's entry is not on disk yet");

      gates.release(GATE_UPDATING);
      await within(drained.promise, SETTLE_MS, 'drain after A left UPDATING');
      await within(A.promise, SETTLE_MS, 'A');
      await within(B.promise, SETTLE_MS, 'B');
      h.model.write(c0 * C, dataB);
      h.model.write(c1 * C + 100, dataA);
      assert.equal(image.stats.batPageWrites, writesBefore + 1, 'one BAT page write carried both entries');
      const disk = await fileBatEntries(h.path, ENTRIES);
      for (const c of [c0, c1]) {
        assert.notEqual(disk[c], 0, `entry ${c} is on disk`);
        assert.equal(disk[c], bat.entryValue(c), `entry ${c} on disk equals the live page`);
      }
    });
  });

  // Race 2, stale piwb pointer. Rule: the submitter detaches the piwb from the page
  // (exchange with -1), so nothing can attach to a piwb in flight and completion never
  // touches the page's pointer; the next update prepares a new piwb from the updated page.
  test(`race 2 (${variant}): a page in writeback no longer points at the piwb being written, and the next update gets a new piwb holding the completed entries`, { timeout: 30_000 }, async () => {
    await scenario(variant, async (h) => {
      const { bat, image } = h;
      const wb = image.writeback;
      const gates = bat.gates;
      const { dataB, B } = await attachB(h, 0xb2);
      const piwbB = bat.mdPiwb(P);
      assert.ok(piwbB >= 0, 'page P has a pending piwb');

      gates.arm(GATE_COMPLETE);
      const drained = track(wb.drain());
      await gates.arrived(GATE_COMPLETE);
      assert.equal(bat.mdPiwb(P), -1, 'the piwb in writeback was detached from page P at submit');
      const s = bat.mdStatus(P);
      assert.ok(has(s, MD_WRITEBACK) && !has(s, MD_DIRTY), `page P is WRITEBACK and not DIRTY (state ${s})`);

      gates.release(GATE_COMPLETE);
      await within(drained.promise, SETTLE_MS, 'drain');
      await within(B.promise, SETTLE_MS, 'B');
      h.model.write(c0 * C, dataB);
      assert.equal(bat.mdPiwb(P), -1, 'completion left the page without a piwb');

      const dataA = fill(C, 0xa2);
      const A = track(h.write(c1 * C, dataA));
      await waitFor(() => wb.stats.updates === 2, SETTLE_MS, 'A attached');
      const piwbA = bat.mdPiwb(P);
      assert.ok(piwbA >= 0, 'A prepared a new piwb');
      assert.equal(piwbEntry(bat, piwbA, c0), bat.entryValue(c0), "A's piwb was copied from a page that holds B's entry");
      await settle(h, A, 'A');
      h.model.write(c1 * C, dataA);
      const disk = await fileBatEntries(h.path, ENTRIES);
      assert.ok(disk[c0] !== 0 && disk[c1] !== 0 && disk[c0] !== disk[c1], 'both entries on disk, distinct');
    });
  });

  // Race 3, alloc and discard on one page. Rule: one flag, UPDATING, excludes every other
  // updater of the page (mdBeginUpdate refuses an UPDATING page) instead of comparing piwb
  // types, so a discard cannot prepare or change a piwb while an allocation is preparing it.
  test(`race 3 (${variant}): a discard waits while an allocating write holds UPDATING on the same md page, then both leave in one BAT write and the BAT equals the model`, { timeout: 30_000 }, async () => {
    await scenario(variant, async (h) => {
      const { bat, image } = h;
      const wb = image.writeback;
      const gates = bat.gates;
      // Cluster c0 is mapped and durable before the race; c2 too (it stays mapped).
      await writeDurably(h, c0 * C, fill(C, 0xd0));
      await writeDurably(h, c2 * C + 7, fill(100, 0xd2));
      const mappedC0 = bat.entryValue(c0);
      assert.equal(bat.mdStatus(P) & (MD_DIRTY | MD_UPDATING | MD_WRITEBACK), 0, 'page P is clean before the race');
      const updatesBefore = wb.stats.updates;
      const writesBefore = image.stats.batPageWrites;

      gates.arm(GATE_UPDATING);
      const dataA = fill(2000, 0xa3);
      const A = track(h.write(c1 * C + 50, dataA));
      await gates.arrived(GATE_UPDATING);
      const piwbA = bat.mdPiwb(P);
      assert.ok(piwbA >= 0 && has(bat.mdStatus(P), MD_DIRTY | MD_UPDATING), 'A made page P DIRTY and holds UPDATING');

      const B = track(h.discard(c0 * C, C));
      await sleep(HOLD_MS);
      assert.equal(B.settled, false, 'the discard did not complete while A held UPDATING');
      assert.equal(wb.stats.updates, updatesBefore, 'the discard attached nothing while A held UPDATING');
      assert.equal(bat.attachPending(P), 0, 'no attachment on its way for page P');
      assert.ok(has(bat.mdStatus(P), MD_UPDATING), "A's UPDATING bit is still set (nobody else cleared it)");
      assert.equal(bat.mdPiwb(P), piwbA, "the page still holds A's piwb (the discard prepared none)");
      assert.equal(piwbEntry(bat, piwbA, c0), mappedC0, "the discard did not change A's piwb");

      gates.release(GATE_UPDATING);
      await waitFor(() => wb.stats.updates === updatesBefore + 2, SETTLE_MS, 'A and the discard attached after A left UPDATING');
      assert.equal(piwbEntry(bat, piwbA, c0), 0, "the discard joined A's piwb");
      await within(wb.drain(), SETTLE_MS, 'drain');
      await within(A.promise, SETTLE_MS, 'A');
      await within(B.promise, SETTLE_MS, 'discard');
      h.model.write(c1 * C + 50, dataA);
      h.model.discard(c0 * C, C);
      assert.equal(image.stats.batPageWrites, writesBefore + 1, 'one BAT write carried the allocation and the discard');
      // The BAT on disk equals the model: exactly c1 and c2 mapped, to distinct clusters.
      const disk = await fileBatEntries(h.path, ENTRIES);
      const mapped = disk.flatMap((v, c) => (v !== 0 ? [c] : []));
      assert.deepEqual(mapped, [c1, c2], 'mapped entries on disk');
      assert.equal(disk[c1], bat.entryValue(c1), 'entry of A on disk equals the live page');
      assert.notEqual(disk[c1], disk[c2], 'distinct clusters');
      assert.equal(bat.lookup(c0), -1, 'the discarded cluster is a hole in the live map');
      assertBytesEqual(await h.read(c0 * C, 3 * C), h.model.read(c0 * C, 3 * C), 'clusters c0..c2 read back');
    });
  });

  // Races 4 and 5, an error in one updater while another added to the same piwb. Rules: the
  // error path breaks only a piwb it prepared itself (race 4) and clears DIRTY only if it set
  // it (race 5), so B's pending change is neither freed nor forgotten.
  test(`races 4 and 5 (${variant}): an update that fails on a page another request made DIRTY rejects with EIO and frees its slot, while that request keeps its piwb and its entry reaches the disk`, { timeout: 30_000 }, async () => {
    await scenario(variant, async (h) => {
      const { bat, image } = h;
      const wb = image.writeback;
      const gates = bat.gates;
      const { dataB, B } = await attachB(h, 0xb4);
      const piwbB = bat.mdPiwb(P);
      assert.ok(piwbB >= 0 && has(bat.mdStatus(P), MD_DIRTY), 'B made page P DIRTY');
      // A takes the lowest free slot.
      let slotA = 0;
      while (bat.slotUsed(slotA)) slotA++;

      gates.armFailure(GATE_UPDATING);
      const A = track(h.write(c1 * C, fill(C, 0xa4)));
      await rejectsWithInjectedFailure(A.promise);
      assert.equal(bat.slotUsed(slotA), false, "A's slot is free again");
      const s = bat.mdStatus(P);
      assert.ok(has(s, MD_DIRTY), `page P is still DIRTY after A's failure (race 5; state ${s})`);
      assert.ok(!has(s, MD_UPDATING), 'A cleared UPDATING');
      assert.equal(bat.mdPiwb(P), piwbB, "page P still holds B's piwb (race 4)");
      assert.equal(piwbEntry(bat, piwbB, c1), 0, "A's entry never reached B's piwb");
      assert.equal(B.settled, false, 'B is still waiting for its BAT write');

      await within(wb.drain(), SETTLE_MS, 'drain');
      await within(B.promise, SETTLE_MS, 'B');
      h.model.write(c0 * C, dataB);
      const disk = await fileBatEntries(h.path, ENTRIES);
      assert.equal(disk[c0], bat.entryValue(c0), "B's entry is on disk");
      assert.notEqual(disk[c0], 0, "B's entry is mapped");
      assert.equal(disk[c1], 0, 'A mapped nothing');

      // A's slot is reused by the next allocation: the file does not grow past what is mapped.
      const dataA2 = fill(C, 0xa5);
      await writeDurably(h, c1 * C, dataA2);
      assert.equal(bat.lookup(c1), bat.slotOffset(slotA), "the retried write reuses A's slot");
    });
  });

  // The shortfall upstream keeps: a waiter parked behind UPDATING on a clean page is woken when
  // the updater fails (no writeback follows to wake it). Also the other side of races 4/5: the
  // failing path did prepare the piwb and make the page DIRTY, so it breaks that piwb (frees the
  // buffer) and clears DIRTY; a page left DIRTY without a piwb would send C's entry nowhere.
  test(`races 4 and 5, clean page (${variant}): an updater that made the page DIRTY and failed drops its piwb and un-dirties the page, and the request waiting behind its UPDATING is woken and completes`, { timeout: 30_000 }, async () => {
    await scenario(variant, async (h) => {
      const { bat, image } = h;
      const wb = image.writeback;
      const gates = bat.gates;
      let slotA = 0;
      while (bat.slotUsed(slotA)) slotA++;
      // Hold every piwb buffer: A then sits inside UPDATING, before making the page DIRTY,
      // until the buffers come back, and C queues up behind it meanwhile.
      const held: number[] = [];
      for (let id = bat.piwbAcquire(); id >= 0; id = bat.piwbAcquire()) held.push(id);
      const poolSize = held.length;
      let A!: Tracked;
      let C1!: Tracked;
      const dataC = fill(C, 0xc5);
      try {
        A = track(h.write(c1 * C, fill(C, 0xa5)));
        await waitFor(() => has(bat.mdStatus(P), MD_UPDATING), SETTLE_MS, 'A inside UPDATING');
        C1 = track(h.write(c2 * C, dataC));
        await sleep(HOLD_MS);
        assert.equal(C1.settled, false, 'C waits behind A');
        assert.equal(wb.stats.updates, 0, 'nobody attached while A held UPDATING');
        gates.armFailure(GATE_UPDATING);
      } finally {
        for (const id of held) bat.piwbRelease(id);
      }
      await rejectsWithInjectedFailure(A.promise);
      assert.equal(bat.slotUsed(slotA), false, "A's slot is free again");
      // Woken without any writeback: C attaches with no BAT write in between.
      await waitFor(() => wb.stats.updates === 1, SETTLE_MS, 'C woken and attached after A failed');
      assert.equal(image.stats.batPageWrites, 0, 'no writeback happened to wake C');
      assert.ok(has(bat.mdStatus(P), MD_DIRTY) && bat.mdPiwb(P) >= 0, "C prepared a piwb of its own and made page P DIRTY");
      await within(wb.drain(), SETTLE_MS, 'drain');
      await within(C1.promise, SETTLE_MS, 'C');
      h.model.write(c2 * C, dataC);
      assert.equal(bat.mdStatus(P) & (MD_DIRTY | MD_UPDATING | MD_WRITEBACK), 0, 'page P is clean');
      assert.equal(bat.mdPiwb(P), -1, 'page P holds no piwb');
      // A's piwb was given back: every buffer of the pool is free again.
      const all: number[] = [];
      for (let id = bat.piwbAcquire(); id >= 0; id = bat.piwbAcquire()) all.push(id);
      for (const id of all) bat.piwbRelease(id);
      assert.equal(all.length, poolSize, 'every piwb buffer is back in the pool');
      const disk = await fileBatEntries(h.path, ENTRIES);
      assert.equal(disk[c1], 0, 'A mapped nothing');
      assert.equal(disk[c2], bat.entryValue(c2), "C's entry is on disk");
    });
  });

  // Race 6, completion vs new update. Rule: WRITEBACK is cleared last, after the written piwb
  // was copied into the live page, so a new update cannot copy its piwb from a page that lacks
  // the entries just written (its BAT write would erase them on disk).
  test(`race 6 (${variant}): an update of a page whose BAT write is done but not yet applied waits for the completion, and the page on disk then holds both entries`, { timeout: 30_000 }, async () => {
    await scenario(variant, async (h) => {
      const { bat, image } = h;
      const wb = image.writeback;
      const gates = bat.gates;
      const { dataB, B } = await attachB(h, 0xb6);

      gates.arm(GATE_COMPLETE);
      const drained = track(wb.drain());
      await gates.arrived(GATE_COMPLETE);
      assert.equal(image.stats.batPageWrites, 1, "B's BAT page was written");
      assert.notEqual((await fileBatEntries(h.path, ENTRIES))[c0], 0, "B's entry is on disk");
      assert.equal(bat.lookup(c0), -1, 'the live page does not hold it yet');

      const dataA = fill(500, 0xa6);
      const A = track(h.write(c1 * C + 9, dataA));
      await sleep(HOLD_MS);
      assert.equal(A.settled, false, 'A did not complete');
      assert.equal(wb.stats.updates, 1, 'A did not attach to a piwb copied from a page that lacks B\'s entry');
      const s = bat.mdStatus(P);
      assert.ok(has(s, MD_WRITEBACK) && !has(s, MD_UPDATING) && !has(s, MD_DIRTY), `A did not start its update (state ${s})`);

      gates.release(GATE_COMPLETE);
      await within(drained.promise, SETTLE_MS, 'drain');
      await within(B.promise, SETTLE_MS, 'B');
      h.model.write(c0 * C, dataB);
      await waitFor(() => wb.stats.updates === 2, SETTLE_MS, 'A attached after the completion');
      const piwbA = bat.mdPiwb(P);
      assert.equal(piwbEntry(bat, piwbA, c0), bat.entryValue(c0), "A's piwb was copied from the page with B's entry applied");
      await settle(h, A, 'A');
      h.model.write(c1 * C + 9, dataA);
      const disk = await fileBatEntries(h.path, ENTRIES);
      assert.equal(disk[c0], bat.entryValue(c0), "B's entry is still on disk after A's BAT write");
      assert.equal(disk[c1], bat.entryValue(c1), "A's entry is on disk");
      assert.ok(disk[c0] !== 0 && disk[c1] !== 0, 'both mapped');
    });
  });
}

// A page whose attachment is still on its way (a runner counted it, the coordinator has not
// registered it yet) is not submitted: its piwb already holds the entry, and submitting it
// would complete the BAT write without the request that put the entry there.
test('the writeback does not submit a page while an attachment to its piwb is still on its way to the coordinator', { timeout: 30_000 }, async () => {
  await scenario('in-thread', async (h) => {
    const { bat, image } = h;
    const wb = image.writeback;
    const { dataB, B } = await attachB(h, 0xb7);
    // A second update of page P whose attachment reaches the coordinator only 150 ms later,
    // as a message from a busy runner might.
    const slot = bat.allocSlot();
    const value = bat.slotValue(slot, C);
    const dataLate = fill(C, 0x1a);
    bat.takePristine(slot);
    await image.store.write(bat.slotOffset(slot), dataLate);
    let late: Promise<void> | null = null;
    const attached = updateEntry(bat, c3, { value, allocatedSlot: slot }, (a) => {
      late = sleep(150).then(() => wb.register(a));
      return late;
    });
    await within(attached, SETTLE_MS, 'late update');
    assert.equal(bat.attachPending(P), 1, 'one attachment counted, not registered');
    const drained = track(wb.drain());
    await sleep(60);
    assert.equal(image.stats.batPageWrites, 0, 'no BAT write while the attachment is on its way');
    assert.equal(B.settled, false, 'B waits with the page');
    await within(drained.promise, SETTLE_MS, 'drain');
    await within(late!, SETTLE_MS, 'late completion');
    await within(B.promise, SETTLE_MS, 'B');
    h.model.write(c0 * C, dataB);
    h.model.write(c3 * C, dataLate);
    assert.equal(image.stats.batPageWrites, 1, 'one BAT write, after the attachment arrived');
    const disk = await fileBatEntries(h.path, ENTRIES);
    assert.equal(disk[c3], value, 'the late entry is on disk');
    assert.equal(disk[c0], bat.entryValue(c0), "B's entry is on disk");
  });
});

// SPDX-License-Identifier: MIT
// md page updates and BAT writeback (docs/engine.md): two roles that may run on different threads:
//
// - updateEntry (any runner): change one BAT entry through its md page's pending piwb, under
//   the page's UPDATING bit; the first updater that made the page DIRTY prepares the piwb.
// - Writeback (the coordinator, one per image): registers attachments, and its cycle takes
//   queued pages, makes the data durable (store flush), writes each piwb as one BAT write,
//   copies it into the live page, completes the requests, and only then clears WRITEBACK.
//
// The data a new entry maps is written before updateEntry runs. A cycle flushes it (the barrier)
// before its BAT writes only when one of its entries needs that: an entry whose slot may hold
// bytes other than what the cluster read before (a reused slot, a copy-on-write). An entry that
// maps a virgin slot (never used, inside durable preallocation, so it reads zeros) over a
// cluster that read zeros needs none: losing its data leaves the cluster reading zeros, its
// previous content. A burst of updates to one page leaves as one BAT write.

import { BatMap, MD_DIRTY, MD_HIGHPRIO, MD_PAGE_BYTES, MD_UPDATING, MD_WRITEBACK } from '../core/bat-map.js';
import { PIWB_NONE, STATUS_BUSY, SUBMIT_BUSY, SUBMIT_TAKEN } from '../core/wasm-interface.generated.js';
import { ioError } from '../errors.js';
import { GATE_COMPLETE, GATE_SUBMIT, GATE_UPDATING } from './step-gates.js';

/** One request's change, as the runner that made it reports it to the coordinator. */
export interface Attachment {
  page: number;
  piwbId: number;
  clusterIndex: number;
  /** Slot the new value maps (given back if the BAT write fails), or -1. */
  allocatedSlot: number;
  /** Slot the change unmaps (discard): reusable once the change is durable, or -1. */
  releasedSlot: number;
  /** This update made the page DIRTY (prepared the piwb): the page goes on the batch list. */
  madeDirty: boolean;
  /**
   * The data this entry maps must be durable before the BAT page is written (false only for a
   * virgin slot over a cluster that read zeros, and for entries that unmap). Absent = true.
   */
  needsBarrier?: boolean;
}

/** What an update writes: the new BAT value and the slots it maps / unmaps. */
export interface UpdatePlan {
  value: number;
  allocatedSlot?: number;
  releasedSlot?: number;
  /** See Attachment.needsBarrier (default true). */
  needsBarrier?: boolean;
}

/**
 * Change BAT entry `clusterIndex` (docs/engine.md, 'One update'). Waits while the page is in
 * WRITEBACK or UPDATING. `attach` hands the change to the coordinator and returns the promise of
 * its BAT write. Resolves, once the change is in the piwb, to that promise (wrapped, so that a
 * failure before the change was attached is told apart from a failed BAT write: the caller still
 * owns its slot only in the first case).
 */
export async function updateEntry(bat: BatMap, clusterIndex: number, plan: UpdatePlan, attach: (a: Attachment) => Promise<void>): Promise<{ completion: Promise<void> }> {
  const page = BatMap.pageOf(clusterIndex);
  let previous: number;
  for (;;) {
    previous = bat.mdBeginUpdate(page);
    if (previous !== STATUS_BUSY) break;
    const seen = bat.mdStatus(page);
    if ((seen & (MD_WRITEBACK | MD_UPDATING)) !== 0) await bat.waitPage(page, seen);
  }
  let madeDirty = false;
  let piwbId = PIWB_NONE;
  let completion: Promise<void>;
  try {
    if ((previous & MD_DIRTY) === 0) {
      piwbId = bat.piwbAcquire();
      if (piwbId < 0) piwbId = await acquirePiwb(bat);
      bat.piwbPrepare(page, bat.piwbAddress(piwbId));
      bat.mdExchangePiwb(page, piwbId);
      bat.mdSet(page, MD_DIRTY);
      madeDirty = true;
    } else {
      piwbId = bat.mdPiwb(page);
    }
    const gate = bat.gates.pass(GATE_UPDATING);
    if (gate) await gate;
    bat.core.u32[(bat.piwbAddress(piwbId) >>> 2) + BatMap.slotInPage(clusterIndex)] = plan.value;
    // Counted before UPDATING clears: the coordinator does not submit the page until it has
    // registered this attachment (the message may still be on its way from another thread).
    bat.attachAdd(page, 1);
    try {
      completion = attach({
        page, piwbId, clusterIndex, allocatedSlot: plan.allocatedSlot ?? -1, releasedSlot: plan.releasedSlot ?? -1, madeDirty,
        needsBarrier: plan.needsBarrier ?? true,
      });
    } catch (e) {
      bat.attachAdd(page, -1);
      throw e;
    }
  } catch (e) {
    if (madeDirty) {
      // Break only the piwb this path prepared, and un-dirty only what it dirtied (races 4, 5).
      if (bat.mdCasPiwb(page, piwbId, PIWB_NONE) === piwbId) bat.piwbRelease(piwbId);
      bat.mdClear(page, MD_DIRTY);
    }
    // Clearing UPDATING wakes the page's waiters even though no writeback follows (upstream
    // left them parked until a writeback that never came).
    bat.mdClear(page, MD_UPDATING);
    throw e;
  }
  bat.mdClear(page, MD_UPDATING);
  return { completion };
}

async function acquirePiwb(bat: BatMap): Promise<number> {
  for (;;) {
    // Every buffer is pending or in writeback; one comes back when a BAT write completes.
    const released = bat.waitPiwb();
    const id = bat.piwbAcquire();
    if (id >= 0) return id;
    await released;
  }
}

/** How long a cycle waits for a burst's other requests to attach, when requests are in flight (ms). */
const GATHER_MS = 2;

export interface WritebackIo {
  /** Make every data write so far durable. */
  barrier(): Promise<void>;
  /** Write BAT bytes at `offset` of the top delta file. */
  writeBat(offset: number, bytes: Uint8Array): Promise<void>;
  /** A discarded cluster's slot is no longer mapped on disk; it may be reused after the next flush. */
  released(slot: number): void;
  /** An attachment that allocated `slot` was registered (the image preallocates ahead). */
  allocated?(slot: number): void;
}

export interface WritebackStats {
  batPageWrites: number;
  cycles: number;
  updates: number;
  /** Cycles that flushed the data before their BAT writes (the others needed no barrier). */
  barriers: number;
}

interface Registered {
  a: Attachment;
  resolve(): void;
  reject(e: unknown): void;
}

interface PiwbRecord {
  id: number;
  page: number;
  attached: Registered[];
}

/** The writeback coordinator of one image. */
export class Writeback {
  readonly stats: WritebackStats = { batPageWrites: 0, cycles: 0, updates: 0, barriers: 0 };
  readonly #bat: BatMap;
  readonly #io: WritebackIo;
  readonly #batEndByte: number;
  readonly #submitDelayMs: number;
  #piwbs = new Map<number, PiwbRecord>();
  #batch = new Set<number>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<void> | null = null;
  /** The last cycle took pages (a cycle that took none must not be retried without yielding). */
  #lastTook = true;

  readonly #requestsInFlight: () => number;
  /** Attachments registered whose BAT write has not completed yet. */
  #waiting = 0;
  /** Resolves the promise of #nextRegister() (null: nobody waits for one). */
  #onRegister: (() => void) | null = null;
  #registered: Promise<void> | null = null;

  /**
   * `requestsInFlight` counts the image's requests not yet complete: when more are in flight
   * than wait for a BAT write, some are still writing data and will attach soon.
   */
  constructor(bat: BatMap, io: WritebackIo, options: { batEndByte: number; submitDelayMs?: number; requestsInFlight?: () => number }) {
    this.#bat = bat;
    this.#io = io;
    this.#batEndByte = options.batEndByte;
    this.#submitDelayMs = options.submitDelayMs ?? 0;
    this.#requestsInFlight = options.requestsInFlight ?? (() => 0);
  }

  /** Take over an attachment made by updateEntry; resolves when its BAT page is written. */
  register(a: Attachment): Promise<void> {
    let record = this.#piwbs.get(a.piwbId);
    if (!record) this.#piwbs.set(a.piwbId, (record = { id: a.piwbId, page: a.page, attached: [] }));
    const done = new Promise<void>((resolve, reject) => record.attached.push({ a, resolve, reject }));
    this.stats.updates++;
    this.#waiting++;
    this.#bat.attachAdd(a.page, -1);
    if (a.madeDirty) this.#batch.add(a.page);
    if (a.allocatedSlot >= 0) this.#io.allocated?.(a.allocatedSlot);
    this.#schedule();
    if (this.#onRegister !== null) {
      const wake = this.#onRegister;
      this.#onRegister = null;
      this.#registered = null;
      wake();
    }
    return done;
  }

  /** Resolves when the next attachment is registered. */
  #nextRegister(): Promise<void> {
    return (this.#registered ??= new Promise<void>((resolve) => (this.#onRegister = resolve)));
  }

  /**
   * Submit every queued page now (HIGHPRIO) and wait until all writeback has completed. With
   * `until` (the requests a flush waits for), keep doing so until those have settled as well:
   * they may still attach to a page, and a flush must not wait for submitDelayMs (HIGHPRIO
   * bypass for flush, docs/engine.md 'The writeback cycle') while they wait for their BAT page.
   */
  async drain(until?: Promise<unknown>): Promise<void> {
    if (until) {
      let settled = false;
      const done = until.then(() => { settled = true; }, () => { settled = true; });
      while (!settled) {
        await this.drain();
        // Those requests queue pages only by attaching: wait for that, or for them to settle.
        if (!settled && this.#batch.size === 0 && !this.#running) await Promise.race([done, this.#nextRegister()]);
      }
    }
    for (;;) {
      if (this.#running) {
        await this.#running;
        continue;
      }
      if (this.#batch.size === 0) return;
      for (const page of this.#batch) this.#bat.mdSet(page, MD_HIGHPRIO);
      const cycles = this.stats.cycles;
      this.#startCycle();
      await this.#running;
      // A page still UPDATING or with an attachment on its way stays queued: wait until that
      // changes. (A cycle that took nothing settles in microtasks, so retrying at once would
      // spin without ever yielding to the event loop, starving the very work that frees the
      // page: a runner's attachment message, a timer, a step gate's wake-up.)
      if (this.stats.cycles === cycles) await this.#queuedPageMoved();
    }
  }

  /**
   * Resolves when a page a cycle could not take may be ready: an attachment on its way was
   * registered, or a page's UPDATING (or WRITEBACK) bit cleared (mdClear notifies its waiters).
   */
  #queuedPageMoved(): Promise<unknown> {
    const bat = this.#bat;
    const waits: Array<Promise<unknown>> = [this.#nextRegister()];
    for (const page of this.#batch) {
      if (bat.attachPending(page) > 0) continue;
      const seen = bat.mdStatus(page);
      // Ready already (it changed since the cycle looked): retrying takes it.
      if ((seen & (MD_UPDATING | MD_WRITEBACK)) === 0) return Promise.resolve();
      waits.push(bat.waitPage(page, seen));
    }
    return Promise.race(waits);
  }

  /** Pages queued or in writeback (for tests and stats). */
  get pending(): number {
    return this.#batch.size + (this.#running ? 1 : 0);
  }

  /**
   * One cycle at a time (group commit): while a cycle's flush and BAT writes are in flight, new
   * changes gather on the batch list and leave together in the next one, so coalescing grows
   * with the load and an idle image adds no latency (beyond submitDelayMs, default 0).
   */
  #schedule(): void {
    if (this.#timer !== null || this.#running || this.#batch.size === 0) return;
    // Without a configured delay: submit at once when nothing else is coming (an idle image
    // adds no latency), else give the requests still writing their data a moment to attach so
    // that a burst leaves in few BAT writes. The timer is not restarted by later updates.
    const gathering = this.#requestsInFlight() > this.#waiting ? GATHER_MS : 0;
    const delay = this.#submitDelayMs > 0 ? this.#submitDelayMs : gathering;
    if (delay === 0 && this.#lastTook) {
      // Nothing to wait for: start now (the cycle runs after the caller's synchronous part,
      // which clears the page's UPDATING bit). A timer of 0 ms is at least 1 ms in Node, which
      // at depth 1 cost more than the BAT write itself.
      this.#startCycle();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#startCycle();
    }, delay);
  }

  /**
   * A request stopped writing data (it completed, or it now waits behind another request's
   * allocation): if a gather timer is waiting for requests that no longer write anything, the
   * burst is complete, so submit it now instead of when the timer fires. (Sequential writes at
   * depth 32: the requests behind a cluster's allocation reach its lock a few microtasks after
   * the allocation attached; without this, each cluster paid the whole gather delay.)
   */
  nudge(): void {
    if (this.#timer === null || this.#submitDelayMs > 0 || this.#running) return;
    if (this.#requestsInFlight() > this.#waiting) return;
    this.#startCycle();
  }

  #startCycle(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#running) return;
    this.#running = this.#cycle().finally(() => {
      this.#running = null;
      this.#schedule();
    });
  }

  async #cycle(): Promise<void> {
    const bat = this.#bat;
    // Take pages after the caller's synchronous part: register() may run inside updateEntry (a
    // runner in this thread), which clears the page's UPDATING bit only once attach returned.
    await null;
    const submitGate = bat.gates.pass(GATE_SUBMIT);
    if (submitGate) await submitGate;
    const taken: PiwbRecord[] = [];
    for (const page of [...this.#batch]) {
      // An attachment still on its way from a runner: its piwb must wait for it.
      if (bat.attachPending(page) > 0) continue;
      const r = bat.mdTrySubmit(page);
      if (r === SUBMIT_BUSY) continue; // UPDATING or WRITEBACK: stays queued for the next cycle (race 1)
      if (r === SUBMIT_TAKEN && bat.attachPending(page) > 0) {
        // A runner on another thread did its whole update between the check above and the
        // submit (it counts its attachment before it clears UPDATING, and the submit saw
        // UPDATING clear, so the count is visible now). Its entry is in the piwb but its
        // request is not registered yet: give the page back (WRITEBACK kept updaters out
        // meanwhile) and take it in a later cycle, or that request would never complete.
        bat.mdSet(page, MD_DIRTY);
        bat.mdClear(page, MD_WRITEBACK);
        continue;
      }
      this.#batch.delete(page);
      if (r === SUBMIT_TAKEN) {
        // Detach the piwb: completion never touches the page's pointer (race 2).
        const id = bat.mdExchangePiwb(page, PIWB_NONE);
        const record = this.#piwbs.get(id);
        if (record) {
          this.#piwbs.delete(id);
          taken.push(record);
        }
      }
    }
    this.#lastTook = taken.length > 0;
    if (taken.length === 0) return;
    this.stats.cycles++;
    // 1. Barrier: the data every new entry maps was written before it was attached; make it
    // durable unless no entry needs that (all virgin slots or unmaps, see the file comment).
    let cycleError: unknown = null;
    try {
      if (taken.some((p) => p.attached.some((r) => r.a.needsBarrier !== false))) {
        this.stats.barriers++;
        await this.#io.barrier();
      }
    } catch (e) {
      // Name the flush: the BAT writes that wait for it were never attempted.
      cycleError = ioError(`flush before the BAT write of md page${taken.length > 1 ? 's' : ''} ${taken.map((p) => p.page).join(', ')}`, e);
    }
    // 2. BAT pages, each clipped to the BAT area (page 0 without the header).
    const results = await Promise.all(taken.map(async (piwb) => {
      if (cycleError) return cycleError;
      const start = Math.max(piwb.page * MD_PAGE_BYTES, 64);
      const end = Math.min((piwb.page + 1) * MD_PAGE_BYTES, this.#batEndByte);
      const address = bat.piwbAddress(piwb.id) + (start - piwb.page * MD_PAGE_BYTES);
      // Copy out of shared memory: stores may keep the bytes.
      const bytes = bat.core.u8.slice(address, address + (end - start));
      try {
        await this.#io.writeBat(start, bytes);
        this.stats.batPageWrites++;
        return null;
      } catch (e) {
        return e;
      }
    }));
    const completeGate = bat.gates.pass(GATE_COMPLETE);
    if (completeGate) await completeGate;
    // 3. Completion, WRITEBACK cleared last (race 6).
    taken.forEach((piwb, i) => this.#complete(piwb, results[i]));
  }

  #complete(piwb: PiwbRecord, error: unknown): void {
    const bat = this.#bat;
    if (!error) bat.piwbApply(piwb.page, bat.piwbAddress(piwb.id));
    this.#waiting -= piwb.attached.length;
    for (const { a, resolve, reject } of piwb.attached) {
      if (error) {
        // Free the physical slot this request took (upstream freed the virtual index).
        if (a.allocatedSlot >= 0) bat.freeSlot(a.allocatedSlot);
        reject(ioError(`BAT write of md page ${piwb.page} (cluster ${a.clusterIndex})`, error));
      } else {
        if (a.releasedSlot >= 0) this.#io.released(a.releasedSlot);
        resolve();
      }
    }
    bat.piwbRelease(piwb.id);
    bat.mdClear(piwb.page, MD_WRITEBACK);
  }
}

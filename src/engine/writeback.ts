// SPDX-License-Identifier: MIT
// md page updates and BAT writeback (engine.md): requests that change a BAT entry go through
// a piwb (a private copy of the md page), the page is queued once, and a writeback cycle
// writes every queued page after the data those pages map is durable:
//
//   data writes done → store flush (barrier) → BAT page writes → live pages updated →
//   requests complete → WRITEBACK cleared (last, so no new piwb copies a stale page).
//
// A burst of updates to one page leaves as one BAT write. A request that must update a page in
// WRITEBACK or UPDATING waits and retries; waiters are woken whenever those bits clear.

import { BatMap, MD_DIRTY, MD_HIGHPRIO, MD_PAGE_BYTES, MD_UPDATING, MD_WRITEBACK } from '../core/bat-map.js';
import { PloopError, ioError } from '../errors.js';

export interface WritebackIo {
  /** Make every data write so far durable (and the file long enough for appended slots). */
  barrier(): Promise<void>;
  /** Write BAT bytes at `offset` of the top delta file. */
  writeBat(offset: number, bytes: Uint8Array): Promise<void>;
  /** A discarded cluster's slot is no longer mapped on disk; it may be reused after the next flush. */
  released(slot: number): void;
}

export interface WritebackStats {
  batPageWrites: number;
  cycles: number;
  updates: number;
}

interface Attached {
  clusterIndex: number;
  /** Slot this update allocated (freed again if the update fails), or -1. */
  allocatedSlot: number;
  /** Slot this update unmaps (discard), or -1. */
  releasedSlot: number;
  /** Value the piwb slot had before this update, restored if its data write fails. */
  previousValue: number;
  dataWrite: Promise<void> | null;
  failure: unknown;
  resolve(): void;
  reject(e: unknown): void;
}

interface Piwb {
  id: number;
  page: number;
  address: number;
  attached: Attached[];
}

/** What an update does to the piwb: returns the new BAT value and the work to wait for. */
export interface UpdatePlan {
  value: number;
  allocatedSlot?: number;
  releasedSlot?: number;
  dataWrite?: Promise<void>;
}

export class Writeback {
  readonly stats: WritebackStats = { batPageWrites: 0, cycles: 0, updates: 0 };
  readonly #bat: BatMap;
  readonly #io: WritebackIo;
  readonly #batEndByte: number;
  readonly #submitDelayMs: number;
  #piwbs = new Map<number, Piwb>();
  #nextPiwbId = 0;
  #batch = new Set<number>();
  #waiters = new Map<number, Array<() => void>>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #cycles = new Set<Promise<void>>();

  constructor(bat: BatMap, io: WritebackIo, options: { batEndByte: number; submitDelayMs?: number }) {
    this.#bat = bat;
    this.#io = io;
    this.#batEndByte = options.batEndByte;
    this.#submitDelayMs = options.submitDelayMs ?? 0;
  }

  /**
   * Change BAT entry `clusterIndex` through its md page's piwb. `plan` runs while the page is
   * UPDATING and returns the new value; the promise resolves once that value is on disk.
   */
  async update(clusterIndex: number, plan: (currentValue: number) => UpdatePlan): Promise<void> {
    const page = BatMap.pageOf(clusterIndex);
    const bat = this.#bat;
    let previous: number;
    while ((previous = bat.mdBeginUpdate(page)) === -1) await this.#waitPage(page);
    let madeDirty = false;
    let piwb: Piwb;
    let done: Promise<void>;
    try {
      if ((previous & MD_DIRTY) === 0) {
        piwb = this.#preparePiwb(page);
        bat.mdExchangePiwb(page, piwb.id);
        bat.mdSet(page, MD_DIRTY);
        madeDirty = true;
      } else {
        piwb = this.#piwbs.get(bat.mdPiwb(page))!;
      }
      const index = (piwb.address >>> 2) + BatMap.slotInPage(clusterIndex);
      const u32 = bat.core.u32;
      const previousValue = u32[index];
      const change = plan(previousValue);
      u32[index] = change.value;
      done = new Promise<void>((resolve, reject) => {
        piwb.attached.push({
          clusterIndex,
          allocatedSlot: change.allocatedSlot ?? -1,
          releasedSlot: change.releasedSlot ?? -1,
          previousValue,
          dataWrite: change.dataWrite ?? null,
          failure: null,
          resolve,
          reject,
        });
      });
      this.stats.updates++;
      // Queue only now that the change is complete (race 1 of engine.md).
      if (madeDirty) this.#batch.add(page);
    } catch (e) {
      if (madeDirty) {
        // Break only the piwb this path prepared, and un-dirty only what it dirtied (races 4, 5).
        if (bat.mdCasPiwb(page, piwb!.id, -1) === piwb!.id) this.#dropPiwb(piwb!);
        bat.mdClear(page, MD_DIRTY);
      }
      bat.mdClear(page, MD_UPDATING);
      this.#wake(page);
      throw e;
    }
    bat.mdClear(page, MD_UPDATING);
    // A page that stays clean gets no writeback to wake its waiters: wake them now.
    if ((bat.mdStatus(page) & MD_DIRTY) === 0) this.#wake(page);
    this.#schedule();
    return done;
  }

  /** Submit every queued page now and wait until all writeback has completed. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.#batch.size > 0) {
        for (const page of this.#batch) this.#bat.mdSet(page, MD_HIGHPRIO);
        this.#startCycle();
      }
      if (this.#cycles.size === 0 && this.#batch.size === 0) return;
      await Promise.race([...this.#cycles, new Promise((r) => setTimeout(r, 1))]);
    }
  }

  /** Pages queued or in writeback (for tests and stats). */
  get pending(): number {
    return this.#batch.size + this.#cycles.size;
  }

  #preparePiwb(page: number): Piwb {
    const address = this.#bat.core.alloc(MD_PAGE_BYTES, MD_PAGE_BYTES);
    this.#bat.piwbPrepare(page, address);
    const piwb: Piwb = { id: this.#nextPiwbId++ & 0x7fffffff, page, address, attached: [] };
    this.#piwbs.set(piwb.id, piwb);
    return piwb;
  }

  #dropPiwb(piwb: Piwb): void {
    this.#piwbs.delete(piwb.id);
    this.#bat.core.free(piwb.address);
  }

  #waitPage(page: number): Promise<void> {
    return new Promise((resolve) => {
      let list = this.#waiters.get(page);
      if (!list) this.#waiters.set(page, (list = []));
      list.push(resolve);
    });
  }

  #wake(page: number): void {
    const list = this.#waiters.get(page);
    if (!list) return;
    this.#waiters.delete(page);
    for (const resolve of list) resolve();
  }

  #schedule(): void {
    if (this.#timer !== null || this.#batch.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#startCycle();
    }, this.#submitDelayMs);
  }

  #startCycle(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const cycle = this.#cycle().finally(() => this.#cycles.delete(cycle));
    this.#cycles.add(cycle);
  }

  async #cycle(): Promise<void> {
    const bat = this.#bat;
    const taken: Piwb[] = [];
    for (const page of [...this.#batch]) {
      const r = bat.mdTrySubmit(page);
      if (r === 0) continue; // UPDATING or WRITEBACK: stays queued for the next cycle
      this.#batch.delete(page);
      if (r === 1) {
        // Detach the piwb: completion never touches the page's pointer (race 2).
        const id = bat.mdExchangePiwb(page, -1);
        taken.push(this.#piwbs.get(id)!);
      }
    }
    if (this.#batch.size > 0) this.#schedule();
    if (taken.length === 0) return;
    this.stats.cycles++;

    // 1. Data first. A failed data write takes its entry back out of the piwb.
    for (const piwb of taken) {
      for (const a of piwb.attached) {
        if (!a.dataWrite) continue;
        try {
          await a.dataWrite;
        } catch (e) {
          a.failure = e;
          bat.core.u32[(piwb.address >>> 2) + BatMap.slotInPage(a.clusterIndex)] = a.previousValue;
        }
      }
    }
    // 2. Barrier: nothing maps data that is not durable.
    let cycleError: unknown = null;
    try {
      await this.#io.barrier();
    } catch (e) {
      cycleError = e;
    }
    // 3. BAT pages, each clipped to the BAT area (page 0 without the header).
    const results = await Promise.all(taken.map(async (piwb) => {
      if (cycleError) return cycleError;
      const start = Math.max(piwb.page * MD_PAGE_BYTES, 64);
      const end = Math.min((piwb.page + 1) * MD_PAGE_BYTES, this.#batEndByte);
      const offsetInPage = start - piwb.page * MD_PAGE_BYTES;
      // Copy out of shared memory: stores may hold on to the bytes.
      const bytes = bat.core.u8.slice(piwb.address + offsetInPage, piwb.address + offsetInPage + (end - start));
      try {
        await this.#io.writeBat(start, bytes);
        this.stats.batPageWrites++;
        return null;
      } catch (e) {
        return e;
      }
    }));
    // 4. Completion, WRITEBACK cleared last (race 6).
    taken.forEach((piwb, i) => this.#complete(piwb, results[i]));
  }

  #complete(piwb: Piwb, error: unknown): void {
    const bat = this.#bat;
    if (!error) bat.piwbApply(piwb.page, piwb.address);
    for (const a of piwb.attached) {
      const failure = a.failure ?? error;
      if (failure) {
        // Free the physical slot this request took (upstream freed the virtual index).
        if (a.allocatedSlot >= 0) bat.freeSlot(a.allocatedSlot);
        a.reject(error && !a.failure
          ? ioError(`BAT write of md page ${piwb.page} (cluster ${a.clusterIndex})`, error)
          : failure instanceof PloopError ? failure : ioError(`data write of cluster ${a.clusterIndex}`, failure));
      } else {
        if (a.releasedSlot >= 0) this.#io.released(a.releasedSlot);
        a.resolve();
      }
    }
    this.#dropPiwb(piwb);
    bat.mdClear(piwb.page, MD_WRITEBACK);
    this.#wake(piwb.page);
  }
}

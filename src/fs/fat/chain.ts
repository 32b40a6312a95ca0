// SPDX-License-Identifier: MIT
// A cluster chain, followed lazily: only as far as a read needs, remembered as runs of
// contiguous clusters so that file data is read in one piece per run. A hostile FAT cannot make
// the walk go on forever: a loop is caught by Brent's cycle detection (constant memory, found
// within a few times the loop's length), and every chain has a length limit (the clusters a
// file's size needs, or the most a directory may have).

import { PloopError } from '../../errors.js';
import type { FatTable } from './table.js';

/** Contiguous clusters of a chain: clusters [cluster, cluster + count) at positions [index, index + count). */
export interface ClusterRun {
  cluster: number;
  index: number;
  count: number;
}

export class ClusterChain {
  readonly #table: FatTable;
  readonly #what: string;
  readonly #limit: number;
  readonly #limitWhy: string;
  /** Runs found so far, in chain order. */
  readonly #runs: ClusterRun[] = [];
  #known = 0;
  #last = 0;
  #ended = false;
  // Brent: the tortoise sits at positions 0, 1, 3, 7, … and is compared with the next `power` clusters.
  #tortoise: number;
  #power = 1;
  #lam = 0;
  /** Steps run one at a time: two reads of one file must not walk the chain at once. */
  #queue: Promise<unknown> = Promise.resolve();
  #failure: unknown = null;

  /**
   * The chain that starts at `first` (already checked to be a valid cluster). `what` names its
   * owner in errors ("file /a/b"); it may have at most `limit` clusters, `limitWhy` says why.
   */
  constructor(table: FatTable, first: number, what: string, limit: number, limitWhy: string) {
    this.#table = table;
    this.#what = what;
    this.#limit = limit;
    this.#limitWhy = limitWhy;
    this.#tortoise = first;
    this.#append(first);
  }

  /** The most clusters the chain may have (a file: exactly this many). */
  get limit(): number {
    return this.#limit;
  }

  /** Clusters known so far. */
  get known(): number {
    return this.#known;
  }

  /** True once the end-of-chain mark after the last known cluster has been seen. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Follow the chain until `count` clusters are known or it ends; returns the clusters known. */
  ensure(count: number): Promise<number> {
    return this.#serial(async () => {
      while (this.#known < count && !this.#ended) await this.#step();
      return this.#known;
    });
  }

  /**
   * Follow the chain to its end, which must come after exactly its `limit` clusters (a file: the
   * clusters its size needs). A chain that goes on is as corrupt as one that ends early.
   */
  ensureEndsAtLimit(): Promise<void> {
    return this.#serial(async () => {
      while (this.#known < this.#limit && !this.#ended) await this.#step();
      if (this.#ended) return;
      const next = await this.#table.next(this.#last);
      if (next.kind === 'end') {
        this.#ended = true;
        return;
      }
      if (next.kind === 'next') {
        throw new PloopError('ECORRUPT', `${this.#what}: the cluster chain goes on past the ${this.#limit} cluster(s) ${this.#limitWhy} (cluster ${this.#last} is followed by ${next.cluster}, expected an end-of-chain mark)`, {
          structure: 'cluster chain', cluster: this.#last, next: next.cluster, limit: this.#limit,
        });
      }
      throw this.#table.corruptEntry(this.#what, this.#last, next);
    });
  }

  /** The runs that cover positions [from, to) (all known). */
  runs(from: number, to: number): ClusterRun[] {
    const out: ClusterRun[] = [];
    // Binary search for the run holding position `from`.
    let lo = 0;
    let hi = this.#runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#runs[mid].index <= from) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < this.#runs.length && this.#runs[i].index < to; i++) {
      const run = this.#runs[i];
      const start = Math.max(from, run.index);
      const end = Math.min(to, run.index + run.count);
      if (end > start) out.push({ cluster: run.cluster + (start - run.index), index: start, count: end - start });
    }
    return out;
  }

  /** The cluster at position `index` (known). */
  clusterAt(index: number): number {
    const [run] = this.runs(index, index + 1);
    return run.cluster;
  }

  async #step(): Promise<void> {
    const next = await this.#table.next(this.#last);
    if (next.kind === 'end') {
      this.#ended = true;
      return;
    }
    if (next.kind !== 'next') throw this.#table.corruptEntry(this.#what, this.#last, next);
    const cluster = next.cluster;
    if (cluster === this.#tortoise) {
      throw new PloopError('ECORRUPT', `${this.#what}: the cluster chain loops (cluster ${cluster} comes round again, this time after cluster ${this.#last}, ${this.#known} clusters into the chain)`, {
        structure: 'cluster chain', cluster: this.#last, next: cluster,
      });
    }
    if (++this.#lam === this.#power) {
      this.#tortoise = cluster;
      this.#power *= 2;
      this.#lam = 0;
    }
    if (this.#known >= this.#limit) {
      throw new PloopError('ECORRUPT', `${this.#what}: the cluster chain goes on past ${this.#limit} cluster(s), ${this.#limitWhy} (cluster ${this.#last} is followed by ${cluster})`, {
        structure: 'cluster chain', cluster: this.#last, next: cluster, limit: this.#limit,
      });
    }
    this.#append(cluster);
  }

  #append(cluster: number): void {
    const last = this.#runs[this.#runs.length - 1];
    if (last && last.cluster + last.count === cluster) last.count++;
    else this.#runs.push({ cluster, index: this.#known, count: 1 });
    this.#known++;
    this.#last = cluster;
  }

  /** Run `fn` after every earlier call; once a walk failed, every later call fails the same way. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      if (this.#failure !== null) throw this.#failure;
      try {
        return await fn();
      } catch (e) {
        this.#failure = e;
        throw e;
      }
    });
    this.#queue = run.catch(() => {});
    return run;
  }
}

// SPDX-License-Identifier: MIT
// Exclusive per-cluster locks (dm-ploop's exclusive_pios): a cluster being allocated, discarded
// or repaired is held by one request; others touching it wait and then look the BAT up again.

export class ClusterLocks {
  #held = new Map<number, Promise<void>>();
  #waiters = 0;
  readonly #onWait: (() => void) | undefined;

  /** `onWait` runs each time a request starts waiting for a held cluster. */
  constructor(onWait?: () => void) {
    this.#onWait = onWait;
  }

  /** Wait for the cluster to be free, take it, and return the function that releases it. */
  async acquire(clusterIndex: number): Promise<() => void> {
    for (;;) {
      const current = this.#held.get(clusterIndex);
      if (!current) break;
      this.#waiters++;
      this.#onWait?.();
      try {
        await current;
      } finally {
        this.#waiters--;
      }
    }
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    this.#held.set(clusterIndex, held);
    return () => {
      this.#held.delete(clusterIndex);
      release();
    };
  }

  get size(): number {
    return this.#held.size;
  }

  /** Requests waiting for a held cluster (they write nothing until it is released). */
  get waiters(): number {
    return this.#waiters;
  }
}

// SPDX-License-Identifier: MIT
// Step points for forced-interleaving tests: a test arms a gate in shared memory, a runner (any
// thread) that reaches that point parks there until the test releases it, or fails there when
// the test asked for an injected error. Disarmed gates cost one atomic load.

import { PloopError } from '../errors.js';

export const GATE_UPDATING = 0; // runner inside its UPDATING window, before changing the piwb
export const GATE_SUBMIT = 1; // coordinator about to take pages off the batch list
export const GATE_COMPLETE = 2; // coordinator after a BAT write, before the live page is updated
export const GATE_COUNT = 4;

const DISARMED = 0;
const ARMED = 1;
const ARRIVED = 2;
const FAIL = 3;

/** Gates over an Int32Array in shared memory (GATE_COUNT words). */
export class StepGates {
  readonly #words: Int32Array;

  constructor(words: Int32Array) {
    this.#words = words;
  }

  /**
   * Called at the step point: parks while armed, throws when armed to fail. A disarmed gate
   * returns undefined at once, so callers do not yield (`const g = gates.pass(n); if (g) await g;`):
   * a yield inside the UPDATING window would make every other updater of the page wait a turn.
   */
  pass(gate: number): Promise<void> | undefined {
    if (Atomics.load(this.#words, gate) === DISARMED) return undefined;
    return this.#park(gate);
  }

  async #park(gate: number): Promise<void> {
    const state = Atomics.load(this.#words, gate);
    if (state === DISARMED) return;
    if (state === FAIL) {
      Atomics.store(this.#words, gate, DISARMED);
      throw new PloopError('EIO', `injected failure at step gate ${gate}`);
    }
    if (Atomics.compareExchange(this.#words, gate, ARMED, ARRIVED) !== ARMED) return;
    Atomics.notify(this.#words, gate);
    while (Atomics.load(this.#words, gate) === ARRIVED) {
      const r = Atomics.waitAsync(this.#words, gate, ARRIVED, 50);
      if (r.async) await r.value;
    }
  }

  /** The next thread to reach `gate` parks there. */
  arm(gate: number): void {
    Atomics.store(this.#words, gate, ARMED);
  }

  /** The next thread to reach `gate` fails there with an EIO error. */
  armFailure(gate: number): void {
    Atomics.store(this.#words, gate, FAIL);
  }

  /** Resolve once a thread is parked at `gate`. */
  async arrived(gate: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Atomics.load(this.#words, gate) !== ARRIVED) {
      if (Date.now() > deadline) throw new Error(`no thread reached step gate ${gate} within ${timeoutMs} ms`);
      const r = Atomics.waitAsync(this.#words, gate, Atomics.load(this.#words, gate), 20);
      if (r.async) await r.value;
    }
  }

  /** Let the parked thread go on (and disarm). */
  release(gate: number): void {
    Atomics.store(this.#words, gate, DISARMED);
    Atomics.notify(this.#words, gate);
  }
}

// SPDX-License-Identifier: MIT
// The write side of convert's copy loops: the caller fills buffers (with positioned reads on its
// own thread) while earlier buffers are written by libuv's thread pool, one write at a time and in
// order, like qemu-img convert without -W. ext4 takes the inode lock for every buffered write, and
// concurrent writers to one file spin on it (perf: rwsem_spin_on_owner) instead of copying, so one
// writer it is; reads and writes of the page cache then run on two cores at once. Bytes bound for
// adjacent output offsets are gathered in one buffer and leave as one write.

import type { BlockStore } from '../stores/block-store.js';

export class OrderedWriter {
  readonly #out: BlockStore;
  readonly #buffers: Uint8Array[];
  /** The write of each buffer still in flight (awaited when that buffer comes round again). */
  readonly #writes: Array<Promise<void> | null>;
  readonly #onWritten: (bytes: number) => void;
  /** The buffer being filled, the output offset of its first byte, and how much it holds. */
  #current = 0;
  #start = 0;
  #filled = 0;
  /** The last write handed out: the next one starts after it (after a failed one, none does). */
  #previous: Promise<void> = Promise.resolve();

  constructor(out: BlockStore, bufferBytes: number, bufferCount: number, onWritten: (bytes: number) => void = () => {}) {
    this.#out = out;
    this.#buffers = Array.from({ length: bufferCount }, () => new Uint8Array(bufferBytes));
    this.#writes = new Array<Promise<void> | null>(bufferCount).fill(null);
    this.#onWritten = onWritten;
  }

  /**
   * The place for `length` bytes bound for output offset `offset`: after the gathered bytes when
   * they follow them and fit, else at the start of the next free buffer (the gathered bytes are
   * handed to the writer first). Nothing goes out until commit(); asking again without a commit
   * gives the same place, so a caller may fill it, look, and drop it (a zero cluster).
   */
  async room(offset: number, length: number): Promise<Uint8Array> {
    const capacity = this.#buffers[0].length;
    if (length > capacity) throw new RangeError(`OrderedWriter.room: ${length} bytes do not fit a ${capacity}-byte buffer`);
    if (this.#filled > 0 && (this.#start + this.#filled !== offset || this.#filled + length > capacity)) await this.#writeOut();
    if (this.#filled === 0) this.#start = offset;
    return this.#buffers[this.#current].subarray(this.#filled, this.#filled + length);
  }

  /** Keep the `length` bytes just put in the last room. */
  commit(length: number): void {
    this.#filled += length;
  }

  /** Write what is gathered and wait for every write; rejects with the first write's error. */
  async finish(): Promise<void> {
    await this.#writeOut();
    await Promise.all(this.#writes);
  }

  /** Wait for the writes still in flight, whatever they end with (after a failure elsewhere). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.#writes);
  }

  async #writeOut(): Promise<void> {
    if (this.#filled === 0) return;
    const at = this.#start;
    const data = this.#buffers[this.#current].subarray(0, this.#filled);
    const write = this.#previous.then(() => this.#out.write(at, data)).then(() => this.#onWritten(data.length));
    this.#previous = write;
    // Awaited when its buffer comes round again (or at the end); until then a failure must not
    // count as unhandled, which would end the process without the CLI's message.
    write.catch(() => {});
    this.#writes[this.#current] = write;
    this.#current = (this.#current + 1) % this.#buffers.length;
    this.#filled = 0;
    await this.#writes[this.#current]; // the next buffer is free once its previous write is done
    this.#writes[this.#current] = null;
  }
}

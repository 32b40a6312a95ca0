// SPDX-License-Identifier: MIT
// A one-line progress bar on a stream (stderr by default), shown only when it is a terminal.

export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #stream: NodeJS.WritableStream;
  readonly #tty: boolean;
  #last = -1;

  constructor(label: string, total: number, stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr) {
    this.#label = label;
    this.#total = Math.max(1, total);
    this.#stream = stream;
    this.#tty = !!stream.isTTY;
  }

  update(done: number): void {
    if (!this.#tty) return;
    const pct = Math.floor((1000 * done) / this.#total) / 10;
    if (pct === this.#last) return;
    this.#last = pct;
    const width = 30;
    const fill = Math.round((width * done) / this.#total);
    this.#stream.write(`\r${this.#label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct.toFixed(1)}%`);
  }

  done(): void {
    if (this.#tty) this.#stream.write(`\r${this.#label} [${'#'.repeat(30)}] 100.0%\n`);
  }
}

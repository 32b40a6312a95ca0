// SPDX-License-Identifier: MIT
// Writing to stdout with backpressure: a big listing or file waits for the pipe instead of
// piling up in memory.

/** Write to stdout; resolves when the stream can take more. */
export function writeOut(data: string | Uint8Array): Promise<void> {
  if (process.stdout.write(data)) return Promise.resolve();
  return new Promise((resolve) => process.stdout.once('drain', resolve));
}

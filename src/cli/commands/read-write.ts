// SPDX-License-Identifier: MIT
import { fstatSync } from 'node:fs';
import { openImageFile } from '../open.js';
import { parse, parseSize, required } from '../args.js';
import type { Command } from '../command.js';

const CHUNK_BYTES = 4 << 20;
/** Writes of stdin chunks in flight at most (their completion order does not matter). */
const WRITES_IN_FLIGHT = 64;

export const read: Command = {
  name: 'read',
  summary: 'write bytes of the virtual disk to stdout',
  usage: `ploop-wasm read IMG|DIR --offset N --length N

  Writes LENGTH bytes of the virtual disk, starting at byte OFFSET, to stdout. Both take
  bytes or K, M, G, T suffixes (1M, 10G) or 0x hex.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { offset: { type: 'string' }, length: { type: 'string' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const offset = parseSize(required(values, 'offset'), '--offset');
    const length = parseSize(required(values, 'length'), '--length');
    const image = await openImageFile(positionals[0]);
    try {
      for (let pos = 0; pos < length; pos += CHUNK_BYTES) {
        const bytes = await image.read(offset + pos, Math.min(CHUNK_BYTES, length - pos));
        if (!process.stdout.write(bytes)) await new Promise((r) => process.stdout.once('drain', r));
      }
    } finally {
      await image.close();
    }
    return 0;
  },
};

export const write: Command = {
  name: 'write',
  summary: 'write stdin into the virtual disk',
  usage: `ploop-wasm write IMG|DIR --offset N

  Writes all of stdin into the virtual disk at byte OFFSET (bytes or K, M, G, T suffixes, or
  0x hex), then closes the image cleanly. A write that fails (past the end of the disk, …)
  ends it: the chunks already written stay written.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { offset: { type: 'string' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const offset = parseSize(required(values, 'offset'), '--offset');
    // Node reads a folder given as stdin as an empty stream: nothing would be written, silently.
    if (fstatSync(0).isDirectory()) throw new Error('stdin is a folder, expected the bytes to write (a file or a pipe)');
    const image = await openImageFile(positionals[0], { writable: true });
    try {
      let pos = offset;
      // Each write's failure is kept here as it happens (a rejection nobody awaits yet would end
      // the process with a stack trace); the first one stops the copy.
      let failure: unknown = null;
      const inFlight = new Set<Promise<void>>();
      for await (const chunk of process.stdin) {
        const bytes = chunk as Buffer;
        const p: Promise<void> = image.write(pos, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length))
          .catch((e: unknown) => { failure ??= e; })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        pos += bytes.length;
        if (inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(inFlight);
        if (failure) break;
      }
      await Promise.all(inFlight);
      if (failure) throw failure;
    } finally {
      await image.close();
    }
    return 0;
  },
};

// SPDX-License-Identifier: MIT
import { openImageFile } from '../open.js';
import { parse, parseCount, required } from '../args.js';
import type { Command } from '../command.js';

const CHUNK_BYTES = 4 << 20;

export const read: Command = {
  name: 'read',
  summary: 'write bytes of the virtual disk to stdout',
  usage: `ploop-wasm read IMG --offset N --length N

  Writes LENGTH bytes of the virtual disk, starting at byte OFFSET, to stdout.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { offset: { type: 'string' }, length: { type: 'string' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const offset = parseCount(required(values, 'offset'), '--offset');
    const length = parseCount(required(values, 'length'), '--length');
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
  usage: `ploop-wasm write IMG --offset N

  Writes all of stdin into the virtual disk at byte OFFSET, then closes the image cleanly.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { offset: { type: 'string' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const offset = parseCount(required(values, 'offset'), '--offset');
    const image = await openImageFile(positionals[0], { writable: true });
    try {
      let pos = offset;
      const pending: Promise<void>[] = [];
      for await (const chunk of process.stdin) {
        const bytes = chunk as Buffer;
        pending.push(image.write(pos, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)));
        pos += bytes.length;
        if (pending.length >= 64) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
    } finally {
      await image.close();
    }
    return 0;
  },
};

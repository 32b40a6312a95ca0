// SPDX-License-Identifier: MIT
import { NodeFileStore } from '../../stores/node-fs.js';
import { createImage } from '../../engine/create.js';
import { PloopImage } from '../../engine/image.js';
import { isAllZero } from '../../engine/zero.js';
import { LEVEL_NONE } from '../../core/bat-map.js';
import { openImageFile, isPloopFile } from '../open.js';
import { parse, parseSize, UsageError } from '../args.js';
import { Progress } from '../progress.js';
import type { Command } from '../command.js';

const CHUNK_BYTES = 8 << 20;

export const convert: Command = {
  name: 'convert',
  summary: 'convert between ploop and raw',
  usage: `ploop-wasm convert IN OUT [--to raw|ploop] [--cluster-size SIZE] [--format v1|v2]

  The input format is detected from its signature (ploop v1/v2, otherwise raw). The output is
  raw by default for a ploop input and ploop for a raw input. Raw output is sparse; ploop output
  allocates no cluster for all-zero data.
  --to raw|ploop       output format
  --cluster-size SIZE  cluster size of ploop output (default: the input's, or 1M)
  --format v1|v2       header version of ploop output (default v2)`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      to: { type: 'string' }, 'cluster-size': { type: 'string' }, format: { type: 'string' },
    }, { min: 2, max: 2, names: 'IN OUT' });
    if (values.help) return -1;
    const [input, output] = positionals;
    const inputIsPloop = await isPloopFile(input);
    const to = (values.to as string | undefined) ?? (inputIsPloop ? 'raw' : 'ploop');
    if (to !== 'raw' && to !== 'ploop') throw new UsageError(`--to: "${to}" is not raw or ploop`);
    const format = (values.format as string | undefined) ?? 'v2';
    if (format !== 'v1' && format !== 'v2') throw new UsageError(`--format: "${format}" is not v1 or v2`);
    const source = inputIsPloop ? await openImageFile(input) : null;
    const rawIn = source ? null : await NodeFileStore.open(input);
    try {
      const size = source ? source.size : await rawIn!.size();
      const clusterSize = values['cluster-size'] ? parseSize(values['cluster-size'] as string, '--cluster-size') : source?.clusterSize;
      const outStore = await NodeFileStore.open(output, { create: true });
      const progress = new Progress(`converting ${input}`, size);
      if (to === 'raw') {
        await toRaw(source, rawIn, size, outStore, progress);
        await outStore.close();
      } else {
        await createImage(outStore, { size, clusterSize, format });
        const image = await PloopImage.open(outStore, { writable: true });
        try {
          await copyChunks(size, progress, (offset, chunk) => (source ? source.readInto(offset, chunk) : rawIn!.read(offset, chunk).then((n) => { chunk.fill(0, n); })),
            async (offset, chunk) => { if (!isAllZero(chunk)) await image.write(offset, chunk); });
        } finally {
          await image.close();
        }
      }
      progress.done();
    } finally {
      await source?.close();
      await rawIn?.close();
    }
    return 0;
  },
};

/**
 * Bytes per request of the copy and requests in flight: qemu-img convert uses 2 MiB buffers
 * and 8 requests; large requests keep syscalls few, and several in flight overlap the reads
 * with the writes (measured in docs/performance.md).
 */
const PIECE_BYTES = 2 << 20;
const IN_FLIGHT = 4;

/** Raw output: copy only what is allocated (ploop input) or non-zero (raw input), then set the size. */
async function toRaw(source: PloopImage | null, rawIn: NodeFileStore | null, size: number, out: NodeFileStore, progress: Progress): Promise<void> {
  // No truncate(0) here: the store was opened with create (O_TRUNC) and is empty. On ext4 a
  // truncate to 0 marks the file for "replace via truncate" (auto_da_alloc), and close() then
  // forces the allocation and write-out of every delayed block (0.25 s per GiB measured).
  if (source) {
    // Straight from the delta files: each mapped extent (adjacent clusters with adjacent host
    // bytes are one extent) in pieces of up to 2 MiB, read from the level that maps it and
    // written at its virtual offset. Holes are never written: the output stays sparse.
    const stores = [...source.lowerDeltas.map((d) => d.store), source.store];
    const pieces: Array<{ level: number; host: number; offset: number; length: number }> = [];
    for (const e of source.map()) {
      if (e.level === LEVEL_NONE) continue;
      for (let pos = 0; pos < e.length; pos += PIECE_BYTES) {
        pieces.push({ level: e.level, host: e.hostOffset + pos, offset: e.offset + pos, length: Math.min(PIECE_BYTES, e.length - pos) });
      }
    }
    let next = 0;
    let copied = 0;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      const buffer = new Uint8Array(PIECE_BYTES);
      while (next < pieces.length) {
        const p = pieces[next++];
        const chunk = buffer.subarray(0, p.length);
        const got = await stores[p.level].read(p.host, chunk);
        chunk.fill(0, got);
        await out.write(p.offset, chunk);
        copied += p.length;
        progress.update(copied);
      }
    }));
  } else {
    await copyChunks(size, progress, (offset, chunk) => rawIn!.read(offset, chunk).then((n) => { chunk.fill(0, n); }),
      async (offset, chunk) => { if (!isAllZero(chunk)) await out.write(offset, chunk); });
  }
  await out.truncate(size);
  // Like qemu-img convert and cp, leave write-back to the kernel: no fsync of the whole output.
}

/**
 * Read [0, size) chunk by chunk and hand each chunk to `write`, IN_FLIGHT chunks at a time (for
 * ploop output their allocations then share BAT writeback cycles).
 */
async function copyChunks(size: number, progress: Progress, read: (offset: number, chunk: Uint8Array) => Promise<void>, write: (offset: number, chunk: Uint8Array) => Promise<void>): Promise<void> {
  let next = 0;
  let copied = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    const buffer = new Uint8Array(CHUNK_BYTES);
    while (next < size) {
      const offset = next;
      next = Math.min(size, next + CHUNK_BYTES);
      const chunk = buffer.subarray(0, next - offset);
      await read(offset, chunk);
      await write(offset, chunk);
      copied += chunk.length;
      progress.update(copied);
    }
  }));
}

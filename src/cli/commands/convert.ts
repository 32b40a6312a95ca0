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

/** Raw output: copy only what is allocated (ploop input) or non-zero (raw input), then set the size. */
async function toRaw(source: PloopImage | null, rawIn: NodeFileStore | null, size: number, out: NodeFileStore, progress: Progress): Promise<void> {
  await out.truncate(0);
  if (source) {
    const buffer = new Uint8Array(CHUNK_BYTES);
    for (const e of source.map()) {
      if (e.level === LEVEL_NONE) continue;
      for (let pos = 0; pos < e.length; pos += CHUNK_BYTES) {
        const n = Math.min(CHUNK_BYTES, e.length - pos);
        const chunk = buffer.subarray(0, n);
        const got = await source.store.read(e.hostOffset + pos, chunk);
        chunk.fill(0, got);
        await out.write(e.offset + pos, chunk);
        progress.update(e.offset + pos + n);
      }
    }
  } else {
    await copyChunks(size, progress, (offset, chunk) => rawIn!.read(offset, chunk).then((n) => { chunk.fill(0, n); }),
      async (offset, chunk) => { if (!isAllZero(chunk)) await out.write(offset, chunk); });
  }
  await out.truncate(size);
  // Like qemu-img convert and cp, leave write-back to the kernel: no fsync of the whole output.
}

async function copyChunks(size: number, progress: Progress, read: (offset: number, chunk: Uint8Array) => Promise<void>, write: (offset: number, chunk: Uint8Array) => Promise<void>): Promise<void> {
  // Two buffers: read the next chunk while the previous one is written.
  const buffers = [new Uint8Array(CHUNK_BYTES), new Uint8Array(CHUNK_BYTES)];
  let pending: Promise<void> = Promise.resolve();
  for (let offset = 0, i = 0; offset < size; offset += CHUNK_BYTES, i++) {
    const chunk = buffers[i % 2].subarray(0, Math.min(CHUNK_BYTES, size - offset));
    await read(offset, chunk);
    await pending;
    const at = offset;
    pending = write(at, chunk).then(() => progress.update(at + chunk.length));
  }
  await pending;
}

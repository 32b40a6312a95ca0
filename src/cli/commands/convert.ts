// SPDX-License-Identifier: MIT
import { NodeFileStore } from '../../stores/node-fs.js';
import type { BlockStore } from '../../stores/block-store.js';
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
        const unordered = withoutBarriers(outStore);
        await createImage(unordered, { size, clusterSize, format });
        const image = await PloopImage.open(unordered, { writable: true });
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
 * The ploop output of a convert is a new file that nothing uses until the convert has ended: a
 * crash leaves an incomplete copy whatever the order of its writes, so the engine's barriers
 * (an fdatasync before each BAT write, which forced the whole GiB to the disk as it went, 4–10 s
 * against qemu-img's 1.2 s) buy nothing here. Like qemu-img convert and the raw output, it
 * leaves write-back to the kernel: flush() does nothing. Live images keep their ordering.
 * A truncate to the size the file already has is skipped: createImage truncates to 0 first, and
 * on ext4 a truncate to 0 arms auto_da_alloc, so that close() allocates and writes out every
 * delayed block of the GiB just written (see toRaw).
 */
function withoutBarriers(store: NodeFileStore): BlockStore {
  return {
    name: store.name,
    writable: store.writable,
    size: () => store.size(),
    read: (offset, into) => store.read(offset, into),
    write: (offset, data) => store.write(offset, data),
    flush: async () => {},
    truncate: async (size) => {
      if (size !== (await store.size())) await store.truncate(size);
    },
    close: () => store.close(),
  };
}

/**
 * Chunks in flight for raw → ploop (and raw → raw): several at once let the allocations of
 * ploop output share BAT writeback cycles.
 */
const IN_FLIGHT = 4;

/**
 * ploop → raw is a two-stage pipeline: this thread reads pieces of PIECE_BYTES with positioned
 * readSync (no thread hop per read) and hands each filled buffer to libuv's thread pool to be
 * written while it reads the next ones; WRITE_BUFFERS buffers circulate. The writes go one at a
 * time, in order, like qemu-img convert's (without -W): ext4 takes the inode lock for every
 * buffered write, and concurrent writers to one file spin on it (perf: rwsem_spin_on_owner)
 * instead of copying. Reads and writes of the page cache thus run on two cores at once.
 * Measured against all-async and all-sync loops in docs/performance.md.
 */
const PIECE_BYTES = 2 << 20;
const WRITE_BUFFERS = 3;

/** One read from a delta file into the piece buffer, to be written at `offset`. */
interface Piece { level: number; host: number; offset: number; length: number }

/**
 * The copy plan of a ploop image: each mapped extent (adjacent clusters with adjacent host bytes
 * are one extent, from the BAT in one pass) cut into reads of at most PIECE_BYTES, in virtual
 * order. Holes have no piece: they are never written and the raw output stays sparse.
 */
function copyPieces(source: PloopImage, pieceBytes = PIECE_BYTES): Piece[] {
  const pieces: Piece[] = [];
  for (const e of source.map()) {
    if (e.level === LEVEL_NONE) continue;
    for (let pos = 0; pos < e.length; pos += pieceBytes) {
      pieces.push({ level: e.level, host: e.hostOffset + pos, offset: e.offset + pos, length: Math.min(pieceBytes, e.length - pos) });
    }
  }
  return pieces;
}

/** Raw output: copy only what is allocated (ploop input) or non-zero (raw input), then set the size. */
async function toRaw(source: PloopImage | null, rawIn: NodeFileStore | null, size: number, out: NodeFileStore, progress: Progress): Promise<void> {
  // No truncate(0) here: the store was opened with create (O_TRUNC) and is empty. On ext4 a
  // truncate to 0 marks the file for "replace via truncate" (auto_da_alloc), and close() then
  // forces the allocation and write-out of every delayed block (0.25 s per GiB measured).
  if (source) {
    // Straight from the delta files (each cluster from the level that maps it, so disk folders
    // read lower levels from their own files), through second handles on the same files that
    // serve pieces synchronously. Reads that follow each other in virtual offset (extents whose
    // host bytes are not adjacent: a fragmented image) are gathered in the buffer and written
    // with one write.
    const deltas = [...source.lowerDeltas.map((d) => d.store), source.store];
    const opened: NodeFileStore[] = [];
    const writes: Array<Promise<void> | null> = new Array(WRITE_BUFFERS).fill(null);
    try {
      const readers: BlockStore[] = [];
      for (const store of deltas) {
        if (store instanceof NodeFileStore) {
          const reader = await NodeFileStore.open(store.path, { syncMaxBytes: PIECE_BYTES });
          opened.push(reader);
          readers.push(reader);
        } else {
          readers.push(store);
        }
      }
      const buffers = Array.from({ length: WRITE_BUFFERS }, () => new Uint8Array(PIECE_BYTES));
      let current = 0; // the buffer being filled
      let start = 0; // virtual offset of its first byte
      let filled = 0;
      let copied = 0;
      let previous: Promise<void> = Promise.resolve();
      const writeOut = async () => {
        if (filled === 0) return;
        const [at, data] = [start, buffers[current].subarray(0, filled)];
        // After the previous write (in order, never two at once); after a failed one, none.
        const write = previous.then(() => out.write(at, data)).then(() => {
          copied += data.length;
          progress.update(copied);
        });
        previous = write;
        // Awaited when its buffer comes round again (or at the end); until then a failure must
        // not count as unhandled, which would end the process without the CLI's message.
        write.catch(() => {});
        writes[current] = write;
        current = (current + 1) % WRITE_BUFFERS;
        filled = 0;
        await writes[current]; // the next buffer is free once its previous write is done
        writes[current] = null;
      };
      for (const p of copyPieces(source)) {
        if (filled > 0 && (start + filled !== p.offset || filled + p.length > PIECE_BYTES)) await writeOut();
        if (filled === 0) start = p.offset;
        const chunk = buffers[current].subarray(filled, filled + p.length);
        const got = await readers[p.level].read(p.host, chunk);
        chunk.fill(0, got);
        filled += p.length;
      }
      await writeOut();
      await Promise.all(writes);
    } finally {
      await Promise.allSettled(writes);
      for (const reader of opened) await reader.close();
    }
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

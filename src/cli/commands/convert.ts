// SPDX-License-Identifier: MIT
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { NodeFileStore } from '../../stores/node-fs.js';
import type { BlockStore } from '../../stores/block-store.js';
import { createImage, type CreateOptions } from '../../engine/create.js';
import type { PloopImage } from '../../engine/image.js';
import { LEVEL_NONE } from '../../core/bat-map.js';
import { deriveGeometry, serializeHeader, HEADER_BYTES, SECTOR_BYTES, CIF_EMPTY, type PloopFormat } from '../../format/header.js';
import { PloopError } from '../../errors.js';
import { openImageFile, isPloopFile } from '../open.js';
import { parse, parseSize, UsageError } from '../args.js';
import { Progress } from '../progress.js';
import { OrderedWriter } from '../ordered-writer.js';
import { RawInput, isZeroFast } from '../raw-input.js';
import type { Command } from '../command.js';

export const convert: Command = {
  name: 'convert',
  summary: 'convert between ploop and raw',
  usage: `ploop-wasm convert IN OUT [--to raw|ploop] [--from raw|ploop] [--cluster-size SIZE] [--format v1|v2]

  IN is a ploop image, a disk folder, or a raw disk image. Its format is detected from its
  signature (ploop v1/v2); a file without one is read as raw, with a warning unless --from raw
  says that is meant. The output format is --to, else OUT's extension (.raw or .img: raw,
  .hds: ploop), else the other one than IN's. Raw output is sparse; ploop output allocates no
  cluster for all-zero data.
  --to raw|ploop       output format
  --from raw|ploop     input format: raw copies IN's bytes as they are (even a ploop file's);
                       ploop refuses an IN without a ploop signature
  --cluster-size SIZE  cluster size of ploop output (default: the input's, or 1M)
  --format v1|v2       header version of ploop output (default v2)`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      to: { type: 'string' }, from: { type: 'string' }, 'cluster-size': { type: 'string' }, format: { type: 'string' },
    }, { min: 2, max: 2, names: 'IN OUT' });
    if (values.help) return -1;
    const [input, output] = positionals;
    const from = values.from as string | undefined;
    if (from !== undefined && from !== 'raw' && from !== 'ploop') throw new UsageError(`--from: "${from}" is not raw or ploop`);
    if (values.to !== undefined && values.to !== 'raw' && values.to !== 'ploop') throw new UsageError(`--to: "${values.to}" is not raw or ploop`);
    const format = (values.format as string | undefined) ?? 'v2';
    if (format !== 'v1' && format !== 'v2') throw new UsageError(`--format: "${format}" is not v1 or v2`);
    const clusterSizeOption = values['cluster-size'] ? parseSize(values['cluster-size'] as string, '--cluster-size') : undefined;
    const signed = await isPloopFile(input);
    if (from === 'ploop' && !signed) {
      throw new PloopError('EFORMAT', `${input} is not a ploop image (no ploop signature at byte 0), expected one with --from ploop`, { path: input });
    }
    if (from === undefined && !signed) {
      process.stderr.write(`ploop-wasm: warning: ${input} is not a ploop image (no ploop signature); reading it as raw (--from raw says so and silences this)\n`);
    }
    const inputIsPloop = from ? from === 'ploop' : signed;
    const to = (values.to as 'raw' | 'ploop' | undefined) ?? formatOfName(output) ?? (inputIsPloop ? 'raw' : 'ploop');
    const source = inputIsPloop ? await openImageFile(input) : null;
    // A raw input is only read, piece by piece, on this thread (see OrderedWriter and RawInput).
    const rawIn = source ? null : RawInput.open(input, PIECE_BYTES);
    try {
      const size = source ? source.size : rawIn!.size;
      const clusterSize = clusterSizeOption ?? source?.clusterSize;
      const read: ReadPiece = source
        ? async (offset, into) => { await source.readInto(offset, into); return !isZeroFast(into); }
        : async (offset, into) => rawIn!.readUnlessZero(offset, into);
      // The output is created empty: were it one of the input's files, the input would be gone.
      await refuseInputAsOutput(output, source ? inputFiles(source) : [input]);
      const outStore = await NodeFileStore.open(output, { create: true });
      const progress = new Progress(`converting ${input}`, size);
      try {
        if (to === 'raw') await (source ? ploopToRaw(source, outStore, progress) : rawToRaw(read, size, outStore, progress));
        else await toPloop(read, size, outStore, { size, clusterSize, format: format as PloopFormat }, progress, source ? mappedRanges(source) : undefined);
      } finally {
        await outStore.close();
      }
      progress.done();
    } finally {
      await source?.close();
      rawIn?.close();
    }
    return 0;
  },
};

/** The output format OUT's name asks for: .raw and .img are raw, .hds is ploop; else null. */
function formatOfName(path: string): 'raw' | 'ploop' | null {
  const ext = extname(path).toLowerCase();
  return ext === '.raw' || ext === '.img' ? 'raw' : ext === '.hds' ? 'ploop' : null;
}

/** The files a ploop input reads: every delta of its stack that is a file. */
function inputFiles(source: PloopImage): string[] {
  return [...source.lowerDeltas.map((d) => d.store), source.store].flatMap((s) => (s instanceof NodeFileStore ? [s.path] : []));
}

/** Refuse an output path that names one of the input files (the same inode: a hard link or symlink too). */
async function refuseInputAsOutput(output: string, inputs: readonly string[]): Promise<void> {
  let out;
  try {
    out = await stat(output);
  } catch {
    return; // a new file (or one the open will report)
  }
  for (const path of inputs) {
    const s = await stat(path);
    if (s.dev === out.dev && s.ino === out.ino) {
      throw new UsageError(`OUT ${output} is the input file ${path} itself (device ${s.dev}, inode ${s.ino}): convert creates OUT empty first, which would destroy the input; choose another name`);
    }
  }
}

/**
 * The store createImage writes through: a flush does nothing and a truncate to the size the file
 * already has is skipped. The output is a new file that nothing uses until the convert has
 * ended, so its writes need no barrier (qemu-img convert syncs nothing either), and the store was
 * opened with O_TRUNC: the truncate to 0 that createImage starts with would, on ext4, arm
 * auto_da_alloc ("replace via truncate"), so that close() allocated and wrote out every delayed
 * block of the GiB just written.
 */
function withoutBarriers(store: NodeFileStore): BlockStore {
  return {
    name: store.name,
    writable: store.writable,
    sparse: store.sparse,
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
 * Convert's copy loops read on this thread with positioned readSync into buffers that an
 * OrderedWriter writes in order on libuv's pool: PIECE_BYTES per buffer, WRITE_BUFFERS of them
 * circulating. Measured against all-async and all-sync loops in docs/performance.md.
 */
const PIECE_BYTES = 2 << 20;
const WRITE_BUFFERS = 3;
/**
 * Fill `into` with the input's bytes at `offset` (zeros past its end) and say whether one of
 * them is not zero; when none is, `into` may be left as it was (the piece is skipped).
 */
type ReadPiece = (offset: number, into: Uint8Array) => Promise<boolean>;

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

/*
 * Raw output is never truncated to 0 after the create (the store was opened with O_TRUNC and is
 * empty): on ext4 a truncate to 0 marks the file for "replace via truncate" (auto_da_alloc), and
 * close() then forces the allocation and write-out of every delayed block (0.25 s per GiB
 * measured). Like qemu-img convert and cp, no output is fsynced: write-back is the kernel's.
 */

/**
 * ploop → raw: only what is allocated is copied, straight from the delta files (each cluster
 * from the level that maps it, so disk folders read lower levels from their own files), through
 * second handles on the same files that serve pieces synchronously. Pieces that follow each
 * other in virtual offset (extents whose host bytes are not adjacent: a fragmented image) leave
 * as one write.
 */
async function ploopToRaw(source: PloopImage, out: NodeFileStore, progress: Progress): Promise<void> {
  const deltas = [...source.lowerDeltas.map((d) => d.store), source.store];
  const opened: NodeFileStore[] = [];
  let copied = 0;
  const writer = new OrderedWriter(out, PIECE_BYTES, WRITE_BUFFERS, (bytes) => progress.update((copied += bytes)));
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
    for (const p of copyPieces(source)) {
      const room = await writer.room(p.offset, p.length);
      room.fill(0, await readers[p.level].read(p.host, room));
      writer.commit(p.length);
    }
    await writer.finish();
  } finally {
    await writer.settle();
    for (const reader of opened) await reader.close();
  }
  await out.truncate(source.size);
}

/** raw → raw: pieces that are all zeros are not written (sparse output). */
async function rawToRaw(read: ReadPiece, size: number, out: NodeFileStore, progress: Progress): Promise<void> {
  const writer = new OrderedWriter(out, PIECE_BYTES, WRITE_BUFFERS);
  try {
    for (let offset = 0; offset < size; offset += PIECE_BYTES) {
      const length = Math.min(PIECE_BYTES, size - offset);
      const room = await writer.room(offset, length);
      if (await read(offset, room)) writer.commit(length);
      progress.update(offset + length);
    }
    await writer.finish();
  } finally {
    await writer.settle();
  }
  await out.truncate(size);
}

/**
 * ploop output, written the way qemu-img convert writes it: clusters that hold a non-zero byte
 * in virtual order, one after the other from the first data slot, then the BAT once at the end.
 * The engine's allocating writes (a BAT page write per writeback cycle, clusters placed in the
 * order concurrent chunks claimed them) are not needed for a file that nothing uses until the
 * convert has ended: a crash leaves an incomplete copy whatever the order of its writes, and one
 * that stops before the BAT leaves an image that reads as zeros (its data clusters are leaks
 * that check --repair trims).
 */
/** The virtual ranges a ploop input maps at some level, in order (the rest reads as zeros). */
function mappedRanges(source: PloopImage): Array<{ offset: number; length: number }> {
  return source.map().filter((e) => e.level !== LEVEL_NONE);
}

async function toPloop(read: ReadPiece, size: number, out: NodeFileStore, options: CreateOptions, progress: Progress,
  mapped?: ReadonlyArray<{ offset: number; length: number }>): Promise<void> {
  const header = await createImage(withoutBarriers(out), options);
  const g = deriveGeometry(header, header.dataOff * SECTOR_BYTES);
  const clusterBytes = g.clusterBytes;
  const bat = new DataView(new ArrayBuffer(4 * g.batEntryCount));
  // Clusters are read a piece at a time (one read for 32 clusters of 64 KiB), straight into
  // the writer's buffer at the next free slot; all-zero ones are squeezed out in place.
  const perPiece = Math.max(1, Math.floor(PIECE_BYTES / clusterBytes));
  const writer = new OrderedWriter(out, perPiece * clusterBytes, WRITE_BUFFERS);
  let host = g.firstSlotByte;
  let next = 0; // the first mapped range that may reach the current piece
  try {
    for (let first = 0; first < g.batEntryCount; first += perPiece) {
      const count = Math.min(perPiece, g.batEntryCount - first);
      const offset = first * clusterBytes;
      const length = Math.min(count * clusterBytes, size - offset);
      if (mapped) {
        // A piece no range of a ploop input maps reads as zeros: nothing to read or write (a
        // sparse 64 GiB image would otherwise be read and scanned whole, 18 s against 0.05 s).
        while (next < mapped.length && mapped[next].offset + mapped[next].length <= offset) next++;
        if (next === mapped.length || mapped[next].offset >= offset + length) {
          progress.update(offset + length);
          continue;
        }
      }
      const room = await writer.room(host, count * clusterBytes);
      const nonZero = await read(offset, room.subarray(0, length));
      progress.update(offset + length);
      if (!nonZero) continue; // all zeros: no cluster (a hole of a sparse raw input, mostly)
      room.fill(0, length);
      let kept = 0;
      for (let j = 0; j < count; j++) {
        const from = j * clusterBytes;
        if (isZeroFast(room.subarray(from, from + clusterBytes))) continue;
        if (kept !== j) room.copyWithin(kept * clusterBytes, from, from + clusterBytes);
        const at = host + kept * clusterBytes;
        const entry = at / g.unitBytes;
        if (entry > 0xffffffff) {
          throw new PloopError('ENOSPC', `convert: ${out.path}: cluster ${first + j} would start at byte ${at}, beyond what a ${g.format} BAT entry (32 bits of ${g.unitBytes}-byte units) can address`, { field: 'bat', value: at });
        }
        bat.setUint32(4 * (first + j), entry, true);
        kept++;
      }
      writer.commit(kept * clusterBytes); // the rest of the room is the next piece's
      host += kept * clusterBytes;
    }
    await writer.finish();
  } finally {
    await writer.settle();
  }
  await out.write(HEADER_BYTES, new Uint8Array(bat.buffer));
  if (host > g.firstSlotByte) {
    // Data was written: the image is no longer empty (createImage set CIF_Empty, as ploop's init does).
    header.flags &= ~CIF_EMPTY;
    await out.write(0, serializeHeader(header));
  }
}

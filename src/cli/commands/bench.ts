// SPDX-License-Identifier: MIT
import { openForIo, stackDirOf, type CliImage } from '../open.js';
import { NodeFileStore, type NodeFileStoreOptions } from '../../stores/node-fs.js';
import { ioThreadStats, startIoThread } from '../../stores/node-io-thread.js';
import { PloopImage } from '../../engine/image.js';
import { parse, parseSize, parseCount, UsageError, formatSize } from '../args.js';
import type { Command } from '../command.js';

const PATTERNS = ['randread', 'randwrite', 'seqread', 'seqwrite'] as const;
type Pattern = (typeof PATTERNS)[number];

export const bench: Command = {
  name: 'bench',
  summary: 'measure I/O on an image',
  usage: `ploop-wasm bench IMG|DIR --pattern randread|randwrite|seqread|seqwrite --block-size SIZE --depth N --count N [--json] [--seed N] [--runners N]

  Runs COUNT requests of BLOCK-SIZE bytes with DEPTH of them in flight. Random offsets are
  block-aligned over the whole virtual disk (seeded, repeatable); sequential ones wrap.
  Write patterns write non-zero data (so clusters are allocated) and close the image cleanly.
  The time runs until the last request completed (a write completes when its data and the BAT
  page that maps it are written), as qemu-img bench's "Run completed"; the flush that makes a
  write pattern durable follows and is timed on its own (flushSeconds), as qemu-img flushes
  at close, untimed.
  --runners N  serve the requests with N runner workers (see replay --help)
  --io async|pool|sync  how the file store does requests of up to 64 KiB (no runners, image
               file only): async (default) is what a library user gets by default: NodeFileStore
               hands them to a dedicated I/O thread through shared memory (after a warm-up of
               128 requests on libuv's pool, while it starts); pool hands each pread/pwrite to
               libuv's thread pool (io: 'pool', the default before the I/O thread); sync runs it
               on this thread (readSync/writeSync, NodeFileStore's syncMaxBytes): the same
               syscalls without any thread hop, fine for a process that does nothing else.
               Flushes (fdatasync) stay on libuv's pool.
  --json  print iops, bytesPerSecond, seconds, flushSeconds, count, blockSize, depth, pattern,
          runners, io, ioThreadRequests (requests this process's I/O thread served)`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      pattern: { type: 'string' }, 'block-size': { type: 'string' }, depth: { type: 'string' }, count: { type: 'string' },
      json: { type: 'boolean' }, seed: { type: 'string' }, runners: { type: 'string' }, io: { type: 'string' },
    }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const pattern = (values.pattern as string | undefined) ?? 'randread';
    if (!PATTERNS.includes(pattern as Pattern)) throw new UsageError(`--pattern: "${pattern}" is not one of ${PATTERNS.join(', ')}`);
    const blockSize = parseSize((values['block-size'] as string | undefined) ?? '4K', '--block-size');
    const depth = parseCount((values.depth as string | undefined) ?? '1', '--depth');
    const count = parseCount((values.count as string | undefined) ?? '10000', '--count');
    if (blockSize < 1 || depth < 1) throw new UsageError('--block-size and --depth must be at least 1');
    let seed = parseCount((values.seed as string | undefined) ?? '1', '--seed') >>> 0 || 1;
    const writing = pattern.endsWith('write');
    const runners = typeof values.runners === 'string' ? parseCount(values.runners, '--runners') : undefined;
    const io = (values.io as string | undefined) ?? 'async';
    if (io !== 'async' && io !== 'pool' && io !== 'sync') throw new UsageError(`--io: "${io}" is not async, pool or sync`);
    if (io !== 'async' && runners !== undefined) throw new UsageError(`--io ${io}: runners use their own stores; drop --runners or use --io async`);
    const image =
      io === 'sync' ? await openWith(positionals[0], writing, io, { syncMaxBytes: 64 << 10 })
      : io === 'pool' ? await openWith(positionals[0], writing, io, { io: 'pool' })
      : await openForIo(positionals[0], { writable: writing, runners });
    let seconds: number;
    let flushSeconds = 0;
    try {
      const blocks = Math.floor(image.size / blockSize);
      if (blocks < 1) throw new UsageError(`--block-size ${blockSize} is larger than the disk (${image.size} bytes)`);
      const random = () => {
        // xorshift32: cheap and repeatable
        seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
        return seed;
      };
      const data = new Uint8Array(blockSize).fill(0x5a);
      let next = 0;
      // The I/O thread (--io async without runners) starts once per process (≈ 90 ms, its own V8
      // isolate); start it before the clock, as the image is opened before it, so that a short
      // run measures requests and not the first 128 of them on libuv's pool during the start.
      if (io === 'async' && runners === undefined) await startIoThread();
      const started = performance.now();
      const worker = async () => {
        const buffer = new Uint8Array(blockSize);
        while (next < count) {
          const i = next++;
          const block = pattern.startsWith('rand') ? random() % blocks : i % blocks;
          if (writing) await image.write(block * blockSize, data);
          else await image.readInto(block * blockSize, buffer);
        }
      };
      await Promise.all(Array.from({ length: depth }, worker));
      // Timed like qemu-img bench's "Run completed": until the last request completed (ours
      // complete when their data and the BAT page that maps it are written). The flush that
      // makes them durable comes after, timed on its own (qemu-img flushes at close, untimed).
      const completed = performance.now();
      seconds = (completed - started) / 1000;
      if (writing) {
        await image.flush();
        flushSeconds = (performance.now() - completed) / 1000;
      }
    } finally {
      await image.close();
    }
    const out = { pattern, blockSize, depth, count, runners: runners ?? null, io, seconds, flushSeconds, iops: count / seconds, bytesPerSecond: (count * blockSize) / seconds, ioThreadRequests: ioThreadStats().served };
    if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
    else process.stdout.write(`${pattern} ${formatSize(blockSize)} depth ${depth}: ${count} requests in ${seconds.toFixed(3)} s, ${Math.round(out.iops)} IOPS, ${formatSize(Math.round(out.bytesPerSecond))}/s${writing ? `, then flush ${flushSeconds.toFixed(3)} s` : ''}\n`);
    return 0;
  },
};

/** An image file on a store that serves small requests another way (see --io). */
async function openWith(path: string, writable: boolean, io: string, storeOptions: NodeFileStoreOptions): Promise<CliImage> {
  if (await stackDirOf(path)) throw new UsageError(`--io ${io}: works on an image file, not a disk folder`);
  const store = await NodeFileStore.open(path, { ...storeOptions, writable });
  let image: PloopImage;
  try {
    image = await PloopImage.open(store, { writable, onWarning: (m) => process.stderr.write(`ploop-wasm: warning: ${m}\n`) });
  } catch (e) {
    await store.close();
    throw e;
  }
  return Object.assign(image, { counters: async () => image.stats });
}

// SPDX-License-Identifier: MIT
import { createReadStream, openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { openForIo, type CliImage } from '../open.js';
import { parse, parseCount } from '../args.js';
import type { Command } from '../command.js';

/** Requests in flight at most inside one flush group (keeps memory bounded on huge groups). */
const MAX_IN_FLIGHT = 1024;

export const replay: Command = {
  name: 'replay',
  summary: 'apply a workload file (JSON lines) to an image',
  usage: `ploop-wasm replay IMG|DIR OPS.jsonl [--json] [--ack-log FILE] [--runners N]

  One JSON object a line:
    {"op":"write","offset":N,"data":"<base64>"}
    {"op":"discard","offset":N,"length":N}
    {"op":"flush"}
  Operations between two flushes may run concurrently and complete in any order (ranges inside
  one group must not overlap); a flush waits for everything before it.
  --ack-log FILE  append "flushed K" (and fsync) once the flush on line K is durable
  --runners N     serve the requests with N runner workers over shared memory (0 = one
                  in-thread runner of the pool); without it, the single-runner engine
  --json          print counters at the end: ops, writes, discards, flushes, bytesWritten,
                  dataWrites, batPageWrites, clustersAllocated, clustersReleased, seconds`,
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' }, 'ack-log': { type: 'string' }, runners: { type: 'string' } }, { min: 2, max: 2, names: 'IMG OPS.jsonl' });
    if (values.help) return -1;
    const [path, opsPath] = positionals;
    const ackFd = typeof values['ack-log'] === 'string' ? openSync(values['ack-log'], 'a') : -1;
    const started = performance.now();
    const runners = typeof values.runners === 'string' ? parseCount(values.runners, '--runners') : undefined;
    const image = await openForIo(path, { writable: true, runners });
    const counters = { ops: 0, writes: 0, discards: 0, flushes: 0, bytesWritten: 0 };
    let failure: unknown = null;
    try {
      const group = new Set<Promise<void>>();
      const add = (lineNo: number, p: Promise<void>) => {
        const tracked = p.catch((e) => {
          failure ??= new Error(`${opsPath} line ${lineNo}: ${e instanceof Error ? e.message : e}`, { cause: e });
        }).finally(() => group.delete(tracked));
        group.add(tracked);
      };
      let lineNo = 0;
      for await (const line of createInterface({ input: createReadStream(opsPath), crlfDelay: Infinity })) {
        lineNo++;
        if (failure) break;
        if (line.trim() === '') continue;
        const op = parseOp(line, `${opsPath} line ${lineNo}`);
        counters.ops++;
        if (op.op === 'flush') {
          await Promise.all(group);
          if (failure) break;
          await image.flush();
          counters.flushes++;
          if (ackFd >= 0) {
            writeSync(ackFd, `flushed ${lineNo}\n`);
            fsyncSync(ackFd);
          }
          continue;
        }
        if (group.size >= MAX_IN_FLIGHT) await Promise.race(group);
        if (op.op === 'write') {
          counters.writes++;
          counters.bytesWritten += op.data.length;
          add(lineNo, image.write(op.offset, op.data));
        } else {
          counters.discards++;
          add(lineNo, image.discard(op.offset, op.length));
        }
      }
      await Promise.all(group);
    } finally {
      await closeQuietly(image, failure);
      if (ackFd >= 0) closeSync(ackFd);
    }
    if (failure) throw failure;
    const s = await image.counters();
    const out = {
      ...counters, dataWrites: s.dataWrites, batPageWrites: s.batPageWrites, clustersAllocated: s.clustersAllocated,
      clustersReleased: s.clustersReleased, seconds: (performance.now() - started) / 1000,
    };
    if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
    else process.stdout.write(`replayed ${out.ops} ops (${out.writes} writes, ${out.discards} discards, ${out.flushes} flushes) in ${out.seconds.toFixed(3)} s; ${out.clustersAllocated} clusters allocated, ${out.batPageWrites} BAT page writes\n`);
    return 0;
  },
};

async function closeQuietly(image: CliImage, failure: unknown): Promise<void> {
  try {
    await image.close();
  } catch (e) {
    if (!failure) throw e;
  }
}

type Op = { op: 'write'; offset: number; data: Uint8Array } | { op: 'discard'; offset: number; length: number } | { op: 'flush' };

function parseOp(line: string, where: string): Op {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message})`);
  }
  if (typeof o !== 'object' || o === null) throw new Error(`${where}: expected a JSON object`);
  const r = o as Record<string, unknown>;
  const whole = (name: string) => {
    const v = r[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`${where}: "${name}" must be a whole number ≥ 0, got ${JSON.stringify(v)}`);
    return v;
  };
  switch (r.op) {
    case 'write': {
      if (typeof r.data !== 'string') throw new Error(`${where}: "data" must be a base64 string`);
      const buf = Buffer.from(r.data, 'base64');
      return { op: 'write', offset: whole('offset'), data: new Uint8Array(buf.buffer, buf.byteOffset, buf.length) };
    }
    case 'discard':
      return { op: 'discard', offset: whole('offset'), length: whole('length') };
    case 'flush':
      return { op: 'flush' };
    default:
      throw new Error(`${where}: "op" is ${JSON.stringify(r.op)}, expected "write", "discard" or "flush"`);
  }
}

// SPDX-License-Identifier: MIT
import { createReadStream, openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { openForIo, type CliImage } from '../open.js';
import { parse, parseCount, plural } from '../args.js';
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
  one group must not overlap); a flush waits for everything before it. The whole file is
  checked first (JSON, base64, ranges inside the disk): a bad line is named and nothing is
  written.
  --ack-log FILE  append "flushed K" (and fsync) once the flush on line K is durable
  --runners N     serve the requests with N runner workers over shared memory (0 = one
                  in-thread runner of the pool); without it, the single-runner engine
  --json          print counters at the end: ops, writes, discards, flushes, bytesWritten,
                  dataWrites, batPageWrites, clustersAllocated, clustersReleased, seconds`,
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' }, 'ack-log': { type: 'string' }, runners: { type: 'string' } }, { min: 2, max: 2, names: 'IMG OPS.jsonl' });
    if (values.help) return -1;
    const [path, opsPath] = positionals;
    const runners = typeof values.runners === 'string' ? parseCount(values.runners, '--runners') : undefined;
    const ackFd = typeof values['ack-log'] === 'string' ? openSync(values['ack-log'], 'a') : -1;
    const started = performance.now();
    const counters = { ops: 0, writes: 0, discards: 0, flushes: 0, bytesWritten: 0 };
    let failure: unknown = null;
    let image: CliImage | null = null;
    try {
      image = await openForIo(path, { writable: true, runners });
      // The whole file is checked before the first write (a bad line half-way would otherwise
      // leave the image with half of the workload). A regular file is read twice; anything
      // else (a pipe) can be read once only, so its lines are kept for the second pass.
      const kept = (await stat(opsPath)).isFile() ? null : [] as string[];
      let lineNo = 0;
      for await (const line of readLines(opsPath)) {
        lineNo++;
        kept?.push(line);
        if (line.trim() !== '') checkRange(parseOp(line, `${opsPath} line ${lineNo}`, false), image.size, `${opsPath} line ${lineNo}`);
      }
      const group = new Set<Promise<void>>();
      const add = (lineNo: number, p: Promise<void>) => {
        const tracked = p.catch((e) => {
          failure ??= new Error(`${opsPath} line ${lineNo}: ${e instanceof Error ? e.message : e}`, { cause: e });
        }).finally(() => group.delete(tracked));
        group.add(tracked);
      };
      lineNo = 0;
      for await (const line of kept ?? readLines(opsPath)) {
        lineNo++;
        if (failure) break;
        if (line.trim() === '') continue;
        const op = parseOp(line, `${opsPath} line ${lineNo}`, true);
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
    } catch (e) {
      failure ??= e;
    } finally {
      if (image) await closeQuietly(image, failure);
      if (ackFd >= 0) closeSync(ackFd);
    }
    if (failure) throw failure;
    const s = await image!.counters();
    const out = {
      ...counters, dataWrites: s.dataWrites, batPageWrites: s.batPageWrites, clustersAllocated: s.clustersAllocated,
      clustersReleased: s.clustersReleased, seconds: (performance.now() - started) / 1000,
    };
    if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
    else {
      process.stdout.write(`replayed ${plural(out.ops, 'op')} (${plural(out.writes, 'write')}, ${plural(out.discards, 'discard')}, ${plural(out.flushes, 'flush', 'flushes')}) in ${out.seconds.toFixed(3)} s; `
        + `${plural(out.clustersAllocated, 'cluster')} allocated, ${plural(out.batPageWrites, 'BAT page write')}\n`);
    }
    return 0;
  },
};

function readLines(path: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(path), crlfDelay: Infinity });
}

function checkRange(op: Op | CheckedOp, diskBytes: number, where: string): void {
  if (op.op === 'flush') return;
  const length = op.op === 'write' ? op.data.length : op.length;
  if (op.offset + length > diskBytes) throw new Error(`${where}: ${op.op}: range ${op.offset}+${length} is outside the virtual disk (0..${diskBytes} bytes)`);
}

async function closeQuietly(image: CliImage, failure: unknown): Promise<void> {
  try {
    await image.close();
  } catch (e) {
    if (!failure) throw e;
  }
}

type Op = { op: 'write'; offset: number; data: Uint8Array } | { op: 'discard'; offset: number; length: number } | { op: 'flush' };
/** A line as the first pass checks it: the data's length, not its bytes. */
type CheckedOp = { op: 'write'; offset: number; data: { length: number } } | { op: 'discard'; offset: number; length: number } | { op: 'flush' };

/**
 * Standard base64 (RFC 4648 section 4), padded or not. Buffer.from(text, 'base64') skips what
 * is not base64, so "!!notbase64" would be written as the bytes of "notbase64".
 */
function base64Bytes(text: string): number | null {
  const body = text.endsWith('==') ? text.slice(0, -2) : text.endsWith('=') ? text.slice(0, -1) : text;
  if (!/^[A-Za-z0-9+/]*$/.test(body)) return null;
  if (body.length !== text.length ? text.length % 4 !== 0 : body.length % 4 === 1) return null;
  return Math.floor((body.length * 3) / 4);
}

function parseOp(line: string, where: string, decode: true): Op;
function parseOp(line: string, where: string, decode: false): CheckedOp;
function parseOp(line: string, where: string, decode: boolean): Op | CheckedOp {
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
      if (typeof r.data !== 'string') throw new Error(`${where}: "data" must be a base64 string, got ${JSON.stringify(r.data)}`);
      const offset = whole('offset');
      if (!decode) {
        const length = base64Bytes(r.data);
        if (length === null) throw new Error(`${where}: "data" is not base64 (${JSON.stringify(r.data.length > 40 ? r.data.slice(0, 40) + '…' : r.data)}), expected the letters A-Z a-z 0-9 + / with = padding`);
        return { op: 'write', offset, data: { length } };
      }
      const buf = Buffer.from(r.data, 'base64');
      return { op: 'write', offset, data: new Uint8Array(buf.buffer, buf.byteOffset, buf.length) };
    }
    case 'discard':
      return { op: 'discard', offset: whole('offset'), length: whole('length') };
    case 'flush':
      return { op: 'flush' };
    default:
      throw new Error(`${where}: "op" is ${JSON.stringify(r.op)}, expected "write", "discard" or "flush"`);
  }
}

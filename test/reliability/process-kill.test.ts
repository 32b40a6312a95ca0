// Process crashes (issue #8): the built CLI's `replay --ack-log` killed with SIGKILL at many
// points of a workload (after 0, 1, … acknowledged flushes, plus a random few milliseconds), with
// the single-thread engine and with runner workers. After each kill: `check --repair` (the CLI)
// leaves an image qemu-img check calls clean, every write acknowledged by a `flushed K` line
// reads back exactly, and every other sector holds old or new content (power-cut-check.ts).
// A killed process keeps everything it handed to the kernel, so this is a weaker cut than a
// power cut; it exercises the real file store, the real CLI and the real exit path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { cli, cliCommand, describeCli } from '../helpers/cli.ts';
import { createImage } from '../../src/index.ts';
import { NodeFileStore } from '../../src/node.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { Prng } from '../helpers/prng.ts';
import { randomOp } from '../helpers/workload.ts';
import { qemuConvertToRaw } from '../helpers/qemu.ts';
import { assertToolsAccept } from '../helpers/ploop.ts';
import { assertContentPlausible } from '../helpers/power-cut-check.ts';
import type { PcRequest } from '../helpers/power-cut.ts';

const SIZE = 4 << 20;
const C = 64 << 10;
const KILLS_PER_MODE = 10;

interface Workload {
  lines: string[];
  /** Request of each line (null for flushes), line numbers from 1. */
  requests: Array<PcRequest | null>;
}

/** Groups of non-overlapping writes and discards, a flush after each group. */
function makeWorkload(seed: number, groups: number): Workload {
  const rng = new Prng(seed);
  const lines: string[] = [];
  const requests: Array<PcRequest | null> = [];
  for (let g = 0; g < groups; g++) {
    const windowStart = rng.int(SIZE / C - 24 + 1) * C;
    const cuts = Array.from({ length: 5 }, () => windowStart + rng.int(24 * C)).sort((a, b) => a - b);
    const bounds = [windowStart, ...cuts, windowStart + 24 * C];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const op = randomOp(rng, bounds[i], bounds[i + 1], C);
      if (!op) continue;
      const id = requests.length;
      if (op.kind === 'write') {
        lines.push(JSON.stringify({ op: 'write', offset: op.offset, data: Buffer.from(op.data).toString('base64') }));
        requests.push({ id, kind: 'write', offset: op.offset, data: op.data, file: 'img', issuedSeq: id });
      } else {
        lines.push(JSON.stringify({ op: 'discard', offset: op.offset, length: op.length }));
        requests.push({ id, kind: 'discard', offset: op.offset, length: op.length, file: 'img', issuedSeq: id });
      }
    }
    lines.push(JSON.stringify({ op: 'flush' }));
    requests.push(null);
  }
  return { lines, requests };
}

/** Run replay and SIGKILL it once the ack log holds `acks` lines and `extraMs` more passed. */
async function replayKilled(args: string[], ackLog: string, acks: number, extraMs: number): Promise<{ killed: boolean; stderr: string }> {
  const child = spawn(process.execPath, [...await cliCommand(), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 20_000;
  while (!done && Date.now() < deadline) {
    const text = await readFile(ackLog, 'utf8').catch(() => '');
    if (text.split('\n').filter(Boolean).length >= acks) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  if (!done && extraMs > 0) await new Promise((r) => setTimeout(r, extraMs));
  const killed = !done && child.kill('SIGKILL');
  await exited;
  assert.ok(killed || done, 'replay finished or was killed');
  return { killed, stderr };
}

for (const runners of [undefined, 2]) {
  const mode = runners === undefined ? 'the single-thread engine' : `${runners} runner workers`;
  test(`replay --ack-log killed with SIGKILL at ${KILLS_PER_MODE} points (${mode}): check --repair, qemu-img check clean, every acknowledged write reads back`, { timeout: 150_000 }, async (t) => {
    await withTempDir(async (dir) => {
      const work = makeWorkload(runners === undefined ? 0x4b11 : 0x4b12, 40);
      const opsPath = join(dir, 'ops.jsonl');
      await writeFile(opsPath, work.lines.join('\n') + '\n');
      const flushes = work.requests.filter((r) => r === null).length;
      const rng = new Prng(0x4b00 + (runners ?? 0));
      let killedMidway = 0;
      let acknowledged = 0;
      for (let n = 0; n < KILLS_PER_MODE; n++) {
        const img = join(dir, `k${n}.hds`);
        const ackLog = join(dir, `k${n}.ack`);
        const store = await NodeFileStore.open(img, { create: true });
        await createImage(store, { size: SIZE, clusterSize: C });
        await store.close();
        const acks = Math.floor((n * flushes) / KILLS_PER_MODE);
        const args = ['replay', img, opsPath, '--ack-log', ackLog, ...(runners === undefined ? [] : ['--runners', String(runners)])];
        const { killed, stderr } = await replayKilled(args, ackLog, acks, rng.int(15));
        if (!killed) assert.equal(stderr, '', `replay ran to the end without an error (kill ${n})`);
        if (killed) killedMidway++;
        const what = `kill ${n} (after ${acks} acks + a few ms, ${mode})`;
        // The last `flushed K` line: everything on lines before K was acknowledged as durable.
        const ackText = await readFile(ackLog, 'utf8').catch(() => '');
        const ackLines = ackText.split('\n').filter(Boolean);
        for (const l of ackLines) assert.match(l, /^flushed \d+$/, `${what}: ack log line`);
        const lastK = ackLines.length > 0 ? Number(ackLines[ackLines.length - 1].split(' ')[1]) : 0;
        acknowledged += ackLines.length;
        const repair = await cli(['check', img, '--repair']);
        assert.equal(repair.code, 0, `${what}: ${describeCli(['check', img, '--repair'], repair)}`);
        await assertToolsAccept(img, `${what}: after check --repair`);
        const issued = work.requests.filter((r): r is PcRequest => r !== null);
        const durable = new Set(work.requests.slice(0, lastK).filter((r): r is PcRequest => r !== null).map((r) => r.id));
        const content = await qemuConvertToRaw(img, `${img}.raw`);
        assert.equal(content.length, SIZE, `${what}: virtual size`);
        assertContentPlausible(content, { issued, durable, initial: new Uint8Array(SIZE) }, what);
      }
      assert.ok(killedMidway >= KILLS_PER_MODE - 2, `only ${killedMidway} of ${KILLS_PER_MODE} runs were killed before the end`);
      t.diagnostic(`${mode}: ${KILLS_PER_MODE} SIGKILLs (${killedMidway} mid-workload), ${acknowledged} acknowledged flushes checked, ${work.requests.length - flushes} requests in the workload`);
    });
  });
}

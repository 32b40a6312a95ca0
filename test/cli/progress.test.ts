// The convert progress bar writes to the stream it is given, only when that stream is a terminal.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Progress } from '../../src/cli/progress.ts';

/** A stream that says it is a terminal (as a tty.WriteStream does) and keeps what it gets. */
function terminal(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = Object.assign(new PassThrough(), { isTTY }) as unknown as NodeJS.WriteStream;
  let text = '';
  (stream as unknown as PassThrough).on('data', (d: Buffer) => (text += d));
  return { stream, text: () => text };
}

test('Progress draws on the stream it was given, and draws nothing on a stream that is not a terminal', async () => {
  const tty = terminal(true);
  const stderrWrite = process.stderr.write;
  let onStderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => { onStderr += String(chunk); return true; }) as typeof process.stderr.write;
  try {
    const p = new Progress('copying', 200, tty.stream);
    p.update(100);
    p.done();
    const quiet = terminal(false);
    const q = new Progress('copying', 200, quiet.stream);
    q.update(100);
    q.done();
    await new Promise((r) => setImmediate(r));
    assert.equal(quiet.text(), '');
  } finally {
    process.stderr.write = stderrWrite;
  }
  assert.equal(onStderr, '', 'nothing went to process.stderr');
  assert.match(tty.text(), /\rcopying \[#{15}\.{15}\] 50\.0%/);
  assert.match(tty.text(), /\rcopying \[#{30}\] 100\.0%\n$/);
});

// SPDX-License-Identifier: MIT
// The I/O thread of node-io-thread.ts: takes requests from the shared submission ring, runs
// them as positioned readSync/writeSync (the syscall the libuv pool would run, without the
// pool's callback hop back), and puts each finished slot in the completion ring.
//
// After the ring runs empty it keeps looking for a while before it sleeps in Atomics.wait: a
// caller at depth 1 submits its next request a few µs after the last completed, and a sleeping
// thread costs a futex wake (tens of µs) to get back. Named -worker, not .worker: the web build
// bundles every *.worker.ts for the browser, and this one is Node only.

import { workerData } from 'node:worker_threads';
import {
  SUBMITTED, SLEEPING, COMPLETED, READY, WAITING, RING_MASK, SUBMIT_RING_BYTES, COMPLETE_RING_BYTES, SLOT_COUNT, SLOT_BYTES,
  H_OP, H_FD, H_LENGTH, H_RESULT, H_ERROR_BYTES, H_POSITION_F64, OP_READ, OP_WRITE, OP_ZERO, headerIndex, dataOffset, watchWord,
} from './node-io-layout.js';
import { preadFully, pwriteFully } from './node-sync-io.js';

const { buffer, spinMs } = workerData as { buffer: SharedArrayBuffer; spinMs: number };
const control = new Int32Array(buffer);
const submitRing = new Int32Array(buffer, SUBMIT_RING_BYTES, SLOT_COUNT);
const completeRing = new Int32Array(buffer, COMPLETE_RING_BYTES, SLOT_COUNT);
const f64 = new Float64Array(buffer);
const bytes = new Uint8Array(buffer);
const encoder = new TextEncoder();
/** OP_ZERO writes from here; 256 KiB pieces backed fresh clusters faster than 1 MiB ones (docs/performance.md). */
const zeros = new Uint8Array(256 << 10);

function serve(slot: number): void {
  const h = headerIndex(slot);
  const op = control[h + H_OP];
  const fd = control[h + H_FD];
  const length = control[h + H_LENGTH];
  const position = f64[(h >> 1) + H_POSITION_F64];
  try {
    if (op === OP_READ) {
      // Until full or end of file: the caller gets a short count only at the end of the file.
      control[h + H_RESULT] = preadFully(fd, bytes, dataOffset(slot), length, position);
    } else if (op === OP_WRITE) {
      pwriteFully(fd, bytes, dataOffset(slot), length, position);
      control[h + H_RESULT] = length;
    } else if (op === OP_ZERO) {
      for (let done = 0; done < length; done += zeros.length) pwriteFully(fd, zeros, 0, Math.min(zeros.length, length - done), position + done);
      control[h + H_RESULT] = length;
    } else {
      throw Object.assign(new Error(`node-io-worker: unknown op ${op} in slot ${slot}`), { code: 'EINVAL' });
    }
  } catch (e) {
    // The caller rebuilds the error with Node's own code and message (EBADF: bad file
    // descriptor, read), so stores word it as they would a libuv error.
    const err = e as NodeJS.ErrnoException;
    const json = encoder.encode(JSON.stringify({ code: err.code, errno: err.errno, syscall: err.syscall, message: err.message ?? String(e) }));
    const into = bytes.subarray(dataOffset(slot), dataOffset(slot) + SLOT_BYTES);
    const n = Math.min(json.length, into.length);
    into.set(json.subarray(0, n));
    control[h + H_ERROR_BYTES] = n;
    control[h + H_RESULT] = -1;
  }
}

let taken = 0;
let completed = 0;
Atomics.store(control, READY, 1);
Atomics.notify(control, READY);
for (;;) {
  let submitted = Atomics.load(control, SUBMITTED);
  if (submitted === taken) {
    submitted = watchWord(control, SUBMITTED, taken, spinMs);
    if (submitted === taken) {
      // Dekker with the caller: it stores SUBMITTED then loads SLEEPING; we store SLEEPING
      // then load SUBMITTED (inside wait). One of us sees the other's store.
      Atomics.store(control, SLEEPING, 1);
      Atomics.wait(control, SUBMITTED, taken);
      Atomics.store(control, SLEEPING, 0);
      continue;
    }
  }
  while (taken !== submitted) {
    const slot = submitRing[taken & RING_MASK];
    taken = (taken + 1) | 0;
    serve(slot);
    completeRing[completed & RING_MASK] = slot;
    completed = (completed + 1) | 0;
    Atomics.store(control, COMPLETED, completed);
    // Dekker with the caller: it stores WAITING then checks COMPLETED (inside waitAsync); we
    // store COMPLETED then look at WAITING. Either its waitAsync sees our count, or we see its
    // flag and wake it.
    if (Atomics.load(control, WAITING) !== 0) Atomics.notify(control, COMPLETED);
  }
}

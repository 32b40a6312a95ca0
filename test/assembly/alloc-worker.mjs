// Worker for wasm.test.ts: instantiates the compiled core over the shared memory it is handed
// and calls the slot allocator on one BatMap context, so that two threads really race.
//
// workerData: { module, memory, ctx, n, mode }
//   mode 'alloc'  (default): call allocSlot n times; post the results (slots or status codes)
//   mode 'fill':  call allocSlot until it returns a negative status; post the slots and the status
//   mode 'churn': n rounds of allocating k slots then freeing them all; post the highest slot seen
//   mode 'signal': set the i32 at `flag`, call allocSlot once, set the i32 at `flag + 4`

import { parentPort, workerData } from 'node:worker_threads';

const { module, memory, ctx, n, mode = 'alloc', k = 0 } = workerData;
const core = new WebAssembly.Instance(module, { env: { memory } }).exports;

if (mode === 'alloc') {
  const slots = new Int32Array(n);
  for (let i = 0; i < n; i++) slots[i] = core.allocSlot(ctx);
  parentPort.postMessage({ slots: Array.from(slots) });
} else if (mode === 'fill') {
  const slots = [];
  let status;
  for (;;) {
    const s = core.allocSlot(ctx);
    if (s < 0) {
      status = s;
      break;
    }
    slots.push(s);
  }
  parentPort.postMessage({ slots, status });
} else if (mode === 'churn') {
  let maxSlot = -1;
  let failures = 0;
  const held = new Int32Array(k);
  for (let round = 0; round < n; round++) {
    for (let i = 0; i < k; i++) {
      held[i] = core.allocSlot(ctx);
      if (held[i] < 0) failures++;
      if (held[i] > maxSlot) maxSlot = held[i];
    }
    for (let i = 0; i < k; i++) if (held[i] >= 0) core.freeSlot(ctx, held[i]);
  }
  parentPort.postMessage({ maxSlot, failures });
} else if (mode === 'signal') {
  // Raise flag word 0, then allocate once; raise flag word 1 when allocSlot has returned.
  const i32 = new Int32Array(memory.buffer);
  const flag = workerData.flag >>> 2;
  // Compile allocSlot/freeSlot first (on a scratch context) so the scan starts right after the flag.
  for (let i = 0; i < 64; i++) core.freeSlot(workerData.warmCtx, core.allocSlot(workerData.warmCtx));
  Atomics.store(i32, flag, 1);
  Atomics.notify(i32, flag);
  const slot = core.allocSlot(ctx);
  Atomics.store(i32, flag + 1, 1);
  parentPort.postMessage({ slots: [slot] });
} else {
  throw new Error(`unknown mode ${mode}`);
}

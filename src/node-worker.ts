// SPDX-License-Identifier: MIT
// Starting the library's Node worker threads (the runners, NodeFileStore's I/O thread). Each
// entry lies beside the module that starts it: NAME.js in the built library (dist/src/…) and in
// the CLI bundle (dist/bin/cli/, where scripts/build-cli.mjs puts every entry beside the
// chunks), NAME.ts when the TypeScript sources run. A worker runs a .ts entry only through a
// loader registered in that worker, and Node 20 registers none there (tsx, for one, registers
// itself in the main thread only). The library names no loader: whoever runs the sources says
// how their workers start (setNodeWorkerStarter; the tests do in test/helpers/source-workers.ts).

import type { Worker, WorkerOptions } from 'node:worker_threads';
import { createRequire } from 'node:module';

/** Starts a worker from `entry` (a file: URL) with `options`. */
export type NodeWorkerStarter = (entry: URL, options: WorkerOptions) => Worker;

let starter: NodeWorkerStarter | null = null;

/** Start the library's workers through `start` from now on (null: plain `new Worker`); returns the one before. */
export function setNodeWorkerStarter(start: NodeWorkerStarter | null): NodeWorkerStarter | null {
  const before = starter;
  starter = start;
  return before;
}

/** Start the worker entry `name` that lies beside the module `from` (its import.meta.url). */
export function startNodeWorker(name: string, from: string, options: WorkerOptions = {}): Worker {
  const entry = new URL(`./${name}${new URL(from).pathname.endsWith('.ts') ? '.ts' : '.js'}`, from);
  if (starter) return starter(entry, options);
  // Loaded here, not imported: a process that never starts a worker never loads worker_threads.
  const id = 'node:worker_threads';
  const { Worker } = (process.getBuiltinModule?.(id) as typeof import('node:worker_threads') | undefined) ?? (createRequire(import.meta.url)(id) as typeof import('node:worker_threads'));
  return new Worker(entry, options);
}

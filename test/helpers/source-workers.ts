// Tests (and benches) run the library from its TypeScript sources under tsx, whose loader Node
// 20's worker threads do not get: start the library's workers (runners, NodeFileStore's I/O
// thread) through a bootstrap that registers tsx in the worker before it loads the entry
// (src/node-worker.ts says why the library does not). Imported for its effect, by every test
// file that starts a worker from the sources, directly or after many small file requests.

import { Worker } from 'node:worker_threads';
import { setNodeWorkerStarter } from '../../src/node-worker.ts';

const tsxApi = import.meta.resolve('tsx/esm/api');

setNodeWorkerStarter((entry, options) => {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
});

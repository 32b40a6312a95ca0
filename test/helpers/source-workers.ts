// Tests (and benches) run the library from its TypeScript sources under tsx, whose loader Node
// 20's worker threads do not get: start the library's workers (runners, NodeFileStore's I/O
// thread) through a bootstrap that registers tsx in the worker and sets this starter there too
// (a runner's file store starts its own I/O thread), then loads the entry. src/node-worker.ts
// says why the library does not do this itself. Imported for its effect, by every test file
// that starts a worker from the sources, directly or after many small file requests.

import { Worker } from 'node:worker_threads';
import { setNodeWorkerStarter } from '../../src/node-worker.ts';

const tsxApi = JSON.stringify(import.meta.resolve('tsx/esm/api'));
const self = JSON.stringify(import.meta.url);

setNodeWorkerStarter((entry, options) => {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const bootstrap = `import(${tsxApi}).then((tsx) => { tsx.register(); return import(${self}); }).then(() => import(${JSON.stringify(entry.href)}));`;
  return new Worker(bootstrap, { ...options, eval: true });
});

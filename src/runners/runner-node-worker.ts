// SPDX-License-Identifier: MIT
// Node entry of a runner (a worker_thread): the runner body of runner-core.ts, exposed with
// comlink on the parent port, opening 'node-fs' stores itself and the portable kinds as the
// browser does. A 'node-fs' store with syncMaxBytes also gets the fast path's synchronous access
// (fast-path.ts): its own descriptor on the file, read and written by address in the shared
// memory with readSync/writeSync (no view of the payload per request).

import * as Comlink from 'comlink';
import { parentPort } from 'node:worker_threads';
import { NodeFileStore } from '../stores/node-fs.js';
import { createRunner } from './runner-core.js';
import { openPortableStore } from './store-spec.js';
import { nodeEndpoint } from './node-endpoint.js';
import { portableSyncAccess } from './fast-path.js';
import { nodeFileAccess } from './node-sync-access.js';

const runner = createRunner(
  // A writable file is opened under the lock its coordinator holds (it would refuse a second lock).
  async (spec) => (spec.kind === 'node-fs' ? NodeFileStore.open(spec.path, { writable: spec.writable, syncMaxBytes: spec.syncMaxBytes ?? 0, lock: false }) : openPortableStore(spec)),
  (spec, store) => (spec.kind === 'node-fs' ? (spec.syncMaxBytes ? nodeFileAccess(spec.path, spec.writable, spec.syncMaxBytes) : null) : portableSyncAccess(store)),
);

Comlink.expose(runner, nodeEndpoint(parentPort!));

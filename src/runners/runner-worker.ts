// SPDX-License-Identifier: MIT
// Node entry of a runner (a worker_thread): the runner body of runner-core.ts, exposed with
// comlink on the parent port, opening 'node-fs' stores itself and the portable kinds as the
// browser does.

import * as Comlink from 'comlink';
import { parentPort } from 'node:worker_threads';
import { NodeFileStore } from '../stores/node-fs.js';
import { createRunner } from './runner-core.js';
import { openPortableStore } from './store-spec.js';
import { nodeEndpoint } from './node-endpoint.js';

const runner = createRunner(async (spec) =>
  spec.kind === 'node-fs' ? NodeFileStore.open(spec.path, { writable: spec.writable, syncMaxBytes: spec.syncMaxBytes ?? 0 }) : openPortableStore(spec));

Comlink.expose(runner, nodeEndpoint(parentPort!));

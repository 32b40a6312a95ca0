// SPDX-License-Identifier: MIT
// Browser entry of a runner (a module Web Worker, bundled to dist/web/runner.worker.js): the
// runner body of runner-core.ts exposed with comlink on the worker's global scope. The Node
// entry is runner-node-worker.ts.

import * as Comlink from 'comlink';
import { createRunner } from './runner-core.js';
import { openPortableStore } from './store-spec.js';

Comlink.expose(createRunner(openPortableStore), globalThis as unknown as Comlink.Endpoint);

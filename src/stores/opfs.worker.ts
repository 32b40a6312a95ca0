// SPDX-License-Identifier: MIT
// The OPFS host worker: holds FileSystemSyncAccessHandles for OpfsStores opened on the page's
// main thread (where sync handles do not exist). Built to dist/web/opfs.worker.js.

import { serveOpfs } from './opfs-remote.js';

serveOpfs(self as unknown as Parameters<typeof serveOpfs>[0]);

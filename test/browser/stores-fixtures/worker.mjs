// Runs a routine of page.mjs inside a dedicated module worker (where OPFS sync handles exist).
import { run } from './page.mjs';

self.onmessage = async (e) => self.postMessage(await run(e.data.name, e.data.arg));
